"""The ``aws-iam`` method's pure parts (``muster.acl.iam``): ARNs, header names, the Config's
checks and the binding of ARNs (cases after Consul's ``internal/iamauth`` tests)."""

from __future__ import annotations

import pytest

from muster.acl.iam import (
    IAMConfig,
    IAMError,
    canonical_header,
    client_arn,
    parse_caller_identity,
    parse_entity,
)


@pytest.mark.parametrize(
    ("arn", "canonical", "name"),
    [
        ("arn:aws:sts::000000000000:assumed-role/my-role/session-name", "arn:aws:iam::000000000000:role/my-role", "my-role"),
        ("arn:aws:iam::000000000000:role/path/to/my-role", "arn:aws:iam::000000000000:role/my-role", "my-role"),
        ("arn:aws:iam::000000000000:user/my-user", "arn:aws:iam::000000000000:user/my-user", "my-user"),
        ("arn:aws-cn:iam::000000000000:user/p/my-user", "arn:aws-cn:iam::000000000000:user/my-user", "my-user"),
    ],
)
def test_client_arn(arn: str, canonical: str, name: str) -> None:
    assert client_arn(arn) == (canonical, name)


@pytest.mark.parametrize(
    ("arn", "text"),
    [
        ("", "unrecognized arn: contains 1 colon-separated parts, expected 6"),
        (":aws:sts::0:assumed-role/r/s", 'unrecognized arn: does not begin with "arn:"'),
        ("arn::sts::0:assumed-role/r/s", 'unrecognized arn: "arn::sts::0:assumed-role/r/s" is missing the partition'),
        ("arn:aws:ecs::0:task/t/x", "unrecognized service: ecs, not one of iam or sts"),
        ("arn:aws:sts:::assumed-role/r/s", 'unrecognized arn: "arn:aws:sts:::assumed-role/r/s" is missing the account number'),
        ("arn:aws:sts::0:assumed-role/r", 'unrecognized arn: "assumed-role/r" contains fewer than 3 slash-separated parts'),
        ("arn:aws:sts::0:role", 'unrecognized arn: "role" contains fewer than 2 slash-separated parts'),
        ("arn:aws:sts::0:user/", 'unrecognized arn: "arn:aws:sts::0:user/" is missing the resource name'),
        ("arn:aws:iam::0:group/g", 'unrecognized principal type: "group"'),
    ],
)
def test_client_arn_refusals(arn: str, text: str) -> None:
    with pytest.raises(IAMError) as err:
        client_arn(arn)
    assert str(err.value) == text


def test_canonical_header() -> None:
    assert canonical_header("x-amz-date") == "X-Amz-Date"
    assert canonical_header("X-Consul-IAM-ServerID") == "X-Consul-Iam-Serverid"
    assert canonical_header("bad header") == "bad header"


def test_config_and_trust() -> None:
    exact = IAMConfig(["arn:aws:iam::1:role/app"])
    exact.validate()
    exact.trusts("arn:aws:iam::1:role/app")
    with pytest.raises(IAMError, match="is not trusted"):
        exact.trusts("arn:aws:iam::1:role/app2")
    wild = IAMConfig(["arn:aws:iam::1:role/team/*"], entity_details=True)
    wild.validate()
    wild.trusts("arn:aws:iam::1:role/team/app")
    with pytest.raises(IAMError, match="is not trusted"):
        wild.trusts("arn:aws:iam::1:role/other/app")
    for bad, text in (
        (IAMConfig(["arn:aws:iam::1:role/*/x"], entity_details=True), "Only one wildcard is allowed at the end"),
        (IAMConfig(["nope"]), 'Invalid principal ARN: "nope"'),
        (IAMConfig(["arn:aws:iam::1:role/x"], entity_tags=["t"]), "Must set EnableIAMEntityDetails=true to use IAMUserTags"),
    ):
        with pytest.raises(IAMError, match=text):
            bad.validate()


def test_aws_answers() -> None:
    ok = "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>a</Arn><UserId>u</UserId><Account>1</Account></GetCallerIdentityResult></GetCallerIdentityResponse>"
    assert parse_caller_identity("  " + ok) == ("a", "u", "1")
    with pytest.raises(IAMError, match="received 0 identities in STS response but expected 1"):
        parse_caller_identity("<GetCallerIdentityResponse></GetCallerIdentityResponse>")
    with pytest.raises(IAMError, match="error parsing STS response"):
        parse_caller_identity("<Other/>")
    role = "<GetRoleResponse><GetRoleResult><Role><Arn>r</Arn><Path>/p/</Path><RoleId>ID</RoleId></Role></GetRoleResult></GetRoleResponse>"
    assert parse_entity(role, "GetRole") == ("r", "/p/", "ID", {})
    with pytest.raises(IAMError, match="expected element type <GetUserResponse>"):
        parse_entity(role, "GetUser")
