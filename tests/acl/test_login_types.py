"""Auth method types and Config decoding as Consul CE has them, and the ``aws-iam`` login.

``aws-iam`` logins replay the bearer token's signed STS (and IAM) request; here a fake STS/IAM
on 127.0.0.1 (``STSEndpoint`` / ``IAMEndpoint``) checks what it is sent and answers AWS's XML.
docs/compat/acl.md#login.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web

from muster.process import AgentProcess
from muster.structs import ACLAuthMethodSetCommand
from muster_testkit.webfake import serve

from .test_login import RSA_KEY, M, claims, pem, put, sign

ACCOUNT = "123456789012"
SERVER_ID = "muster.test"
Handler = Callable[[web.Request], Awaitable[web.Response]]


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def iam_token(
    body: str = "Action=GetCallerIdentity&Version=2011-06-15",
    headers: dict[str, list[str]] | None = None,
    url: str = "https://sts.amazonaws.com/",
) -> str:
    """A bearer token as ``consul login -type aws-iam`` builds it (the signature is the fake's
    business: the server only replays the request)."""
    h = {
        "Authorization": ["AWS4-HMAC-SHA256 Credential=AKIA/x, SignedHeaders=host;x-amz-date;x-consul-iam-serverid, Signature=ab"],
        "X-Amz-Date": ["20260101T000000Z"],
        "X-Consul-Iam-Serverid": [SERVER_ID],
    }
    h.update(headers or {})
    return json.dumps(
        {
            "iam_http_request_method": "POST",
            "iam_request_url": _b64(url),
            "iam_request_headers": _b64(json.dumps(h)),
            "iam_request_body": _b64(body),
        }
    )


def caller_xml(arn: str, user_id: str) -> str:
    return (
        '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>'
        f"<Arn>{arn}</Arn><UserId>{user_id}</UserId><Account>{ACCOUNT}</Account>"
        "</GetCallerIdentityResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
    )


def xml_response(text: str, status: int = 200) -> web.Response:
    """As AWS answers: ``Content-Type: text/xml`` exactly (iamauth insists on it)."""
    return web.Response(body=text.encode(), status=status, headers={"Content-Type": "text/xml"})


@pytest.fixture
async def aws() -> AsyncIterator[tuple[dict[str, Handler], list[web.Request], str]]:
    """A plain-HTTP fake on 127.0.0.1: ``handlers["sts"|"iam"]`` answer by the signed Host."""
    handlers: dict[str, Handler] = {}
    seen: list[web.Request] = []

    async def dispatch(request: web.Request) -> web.Response:
        await request.read()
        seen.append(request)
        service = request.host.split(".", 1)[0]
        if service not in handlers:
            return web.Response(status=404)
        return await handlers[service](request)

    async with serve(dispatch) as port:
        yield handlers, seen, f"http://127.0.0.1:{port}"


async def _login(c: httpx.AsyncClient, method: str, bearer: str) -> httpx.Response:
    return await c.post("/v1/acl/login", json={"AuthMethod": method, "BearerToken": bearer})


async def test_aws_iam_login_replays_the_signed_sts_request(deny: httpx.AsyncClient, aws: tuple[dict[str, Handler], list[web.Request], str]) -> None:
    handlers, seen, url = aws
    arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/app/session-1"

    async def sts(request: web.Request) -> web.Response:
        return xml_response(caller_xml(arn, "AROAAPP:session-1"))

    handlers["sts"] = sts
    cfg = {"BoundIAMPrincipalARNs": [f"arn:aws:iam::{ACCOUNT}:role/app"], "STSEndpoint": url, "ServerIDHeaderValue": SERVER_ID}
    await put(deny, "/v1/acl/auth-method", {"Name": "aws", "Type": "aws-iam", "Config": cfg})
    rule = {"AuthMethod": "aws", "BindType": "service", "BindName": "${entity_name}", "Selector": f'account_id == "{ACCOUNT}"'}
    await put(deny, "/v1/acl/binding-rule", rule)

    r = await _login(deny, "aws", iam_token())
    assert r.status_code == 200, r.text
    assert r.json()["ServiceIdentities"] == [{"ServiceName": "app"}] and r.json()["AuthMethod"] == "aws"
    sent = seen[-1]
    # The request went to STSEndpoint with the signed Host, URI, headers and body kept.
    assert (sent.method, sent.path, sent.host) == ("POST", "/", "sts.amazonaws.com")
    assert sent.headers["X-Amz-Date"] == "20260101T000000Z"
    assert (await sent.read()) == b"Action=GetCallerIdentity&Version=2011-06-15"

    async def refused(*a: Any, **kw: Any) -> tuple[int, str]:
        r = await _login(deny, "aws", iam_token(*a, **kw))
        return r.status_code, r.text

    n = len(seen)
    assert await refused(body="Action=GetUser") == (500, "iam_request_body error: unexpected value Action=[GetUser]")
    assert await refused(body="Action=GetCallerIdentity&Extra=1") == (500, 'iam_request_body error: unexpected field "Extra"')
    assert await refused(headers={"X-Amz-Evil": ["1"]}) == (500, "invalid request header: X-Amz-Evil")
    assert await refused(headers={"X-Consul-Iam-Serverid": ["other"]}) == (500, f'expected "{SERVER_ID}" but got "other"')
    r = await _login(deny, "aws", "not json")
    assert r.status_code == 500 and r.text.startswith("invalid token: ")
    assert len(seen) == n  # refused before anything was sent

    arn = f"arn:aws:iam::{ACCOUNT}:role/other"
    assert await refused() == (500, f"IAM principal arn:aws:iam::{ACCOUNT}:role/other is not trusted")

    async def sts_denied(request: web.Request) -> web.Response:
        return xml_response("<ErrorResponse>denied</ErrorResponse>", status=403)

    handlers["sts"] = sts_denied
    assert await refused() == (500, "received error code 403 from STS: <ErrorResponse>denied</ErrorResponse>")

    # Without STSEndpoint the signed URL must be an AWS STS host (no proxying elsewhere).
    await put(deny, "/v1/acl/auth-method/aws", {"Name": "aws", "Type": "aws-iam", "Config": {"BoundIAMPrincipalARNs": cfg["BoundIAMPrincipalARNs"]}})
    assert await refused(url=url + "/") == (500, 'invalid STS hostname: "127.0.0.1"')


async def test_aws_iam_entity_details_and_tags(deny: httpx.AsyncClient, aws: tuple[dict[str, Handler], list[web.Request], str]) -> None:
    handlers, seen, url = aws
    user_arn = f"arn:aws:iam::{ACCOUNT}:user/team/alice"
    entity_id = ["AIDAALICE"]

    async def sts(request: web.Request) -> web.Response:
        return xml_response(caller_xml(user_arn, "AIDAALICE"))

    async def iam(request: web.Request) -> web.Response:
        assert (await request.read()) == b"Action=GetUser&UserName=alice&Version=2010-05-08"
        xml = (
            '<GetUserResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><GetUserResult><User>'
            f"<Path>/team/</Path><Arn>{user_arn}</Arn><UserName>alice</UserName><UserId>{entity_id[0]}</UserId>"
            "<Tags><member><Value>web</Value><Key>team</Key></member><member><Value>x</Value><Key>other</Key></member></Tags>"
            "</User></GetUserResult></GetUserResponse>"
        )
        return xml_response(xml)

    handlers["sts"], handlers["iam"] = sts, iam
    cfg = {
        "BoundIAMPrincipalARNs": [f"arn:aws:iam::{ACCOUNT}:user/team/*"],
        "EnableIAMEntityDetails": True,
        "IAMEntityTags": ["team"],
        "STSEndpoint": url,
        "IAMEndpoint": url,
    }
    await put(deny, "/v1/acl/auth-method", {"Name": "aws", "Type": "aws-iam", "Config": cfg})
    rule = {"AuthMethod": "aws", "BindType": "service", "BindName": "${entity_name}-${entity_tags.team}", "Selector": 'entity_tags.team == "web"'}
    await put(deny, "/v1/acl/binding-rule", rule)
    entity = {
        "X-Consul-Iam-Getentity-Method": ["POST"],
        "X-Consul-Iam-Getentity-Url": ["https://iam.amazonaws.com/"],
        "X-Consul-Iam-Getentity-Headers": [json.dumps({"X-Amz-Date": ["20260101T000000Z"]})],
        "X-Consul-Iam-Getentity-Body": ["Action=GetUser&UserName=alice&Version=2010-05-08"],
    }
    r = await _login(deny, "aws", iam_token(headers=entity))
    assert r.status_code == 200, r.text
    assert r.json()["ServiceIdentities"] == [{"ServiceName": "alice-web"}]
    assert seen[-1].host == "iam.amazonaws.com"

    entity_id[0] = "AIDAMALLORY"
    r = await _login(deny, "aws", iam_token(headers=entity))
    assert (r.status_code, r.text) == (500, "unique id mismatch in login token")
    r = await _login(deny, "aws", iam_token())
    assert (r.status_code, r.text) == (500, 'missing header "X-Consul-IAM-GetEntity-Method"')
    bad = dict(entity, **{"X-Consul-Iam-Getentity-Body": ["Action=GetUser&RoleName=alice"]})
    r = await _login(deny, "aws", iam_token(headers=bad))
    expected = 'iam_request_headers["X-Consul-IAM-GetEntity-Body"] error: invalid request body "Action=GetUser&RoleName=alice"'
    assert (r.status_code, r.text) == (500, expected)


async def test_types_and_config_keys_as_consul_ce(deny: httpx.AsyncClient, deny_agent: AgentProcess) -> None:
    async def bad(body: dict[str, Any]) -> tuple[int, str]:
        r = await deny.put("/v1/acl/auth-method", json=body, headers=M)
        return r.status_code, r.text

    # oidc is Consul Enterprise's: CE registers aws-iam, jwt and kubernetes only.
    assert await bad({"Name": "o", "Type": "oidc", "Config": {}}) == (500, "Invalid Auth Method: Type should be one of: [aws-iam jwt kubernetes]")
    # Unknown Config keys are refused (mapstructure ErrorUnused), sorted; OIDC-only keys are unknown to a jwt method in CE.
    keys = {"JWTValidationPubKeys": [pem(RSA_KEY)]}
    want = "Invalid Auth Method: error decoding config: 1 error(s) decoding:\n\n* '' has invalid keys: OIDCClientID, Zeta"
    assert await bad({"Name": "j", "Type": "jwt", "Config": dict(keys, Zeta=1, OIDCClientID="c")}) == (500, want)
    want = "Invalid Auth Method: error decoding config: 1 error(s) decoding:\n\n* '' has invalid keys: Hots"
    assert await bad({"Name": "k", "Type": "kubernetes", "Config": {"Hots": "https://k8s"}}) == (500, want)
    want = "Invalid Auth Method: error decoding config: 1 error(s) decoding:\n\n* '' has invalid keys: Region"
    assert await bad({"Name": "a", "Type": "aws-iam", "Config": {"BoundIAMPrincipalARNs": ["arn:aws:iam::1:role/x"], "Region": "x"}}) == (500, want)
    # aws-iam's own checks (iamauth Config.Validate).
    assert await bad({"Name": "a", "Type": "aws-iam", "Config": {}}) == (
        500,
        "Invalid Auth Method: BoundIAMPrincipalARNs is required and must have at least 1 entry",
    )
    assert await bad({"Name": "a", "Type": "aws-iam", "Config": {"BoundIAMPrincipalARNs": ["arn:aws:iam::1:role/*"]}}) == (
        500,
        "Invalid Auth Method: Must set EnableIAMEntityDetails=true to use wildcards in BoundIAMPrincipalARNs",
    )
    assert await bad({"Name": "a", "Type": "aws-iam", "Config": {"BoundIAMPrincipalARNs": ["arn:aws:ec2::1:x/y"]}}) == (
        500,
        'Invalid Auth Method: Invalid principal ARN: "arn:aws:ec2::1:x/y"',
    )
    # A key matching a field but for case is that field (mapstructure's case-insensitive match).
    await put(deny, "/v1/acl/auth-method", {"Name": "j", "Type": "jwt", "Config": {"jwtvalidationpubkeys": [pem(RSA_KEY)], "BOUNDISSUER": "https://x"}})
    await put(deny, "/v1/acl/binding-rule", {"AuthMethod": "j", "BindType": "service", "BindName": "s"})
    r = await _login(deny, "j", sign(RSA_KEY, claims(aud=None)))
    assert r.status_code == 500 and "iss" in r.text  # BoundIssuer was read from BOUNDISSUER

    # A stored row this version cannot use (an Enterprise snapshot's oidc method): Consul's
    # loadAuthMethodValidator text for logins and binding-rule writes.
    await deny_agent.server.apply(ACLAuthMethodSetCommand(methods=[{"Name": "o", "Type": "oidc", "Config": {"OIDCClientID": "c"}}]))
    want = 'auth method validator for "o" could not be initialized: no auth method registered with type: oidc'
    r = await _login(deny, "o", "anything")
    assert (r.status_code, r.text) == (500, want)
    r = await deny.put("/v1/acl/binding-rule", json={"AuthMethod": "o", "BindType": "service", "BindName": "x"}, headers=M)
    assert (r.status_code, r.text) == (500, want)
