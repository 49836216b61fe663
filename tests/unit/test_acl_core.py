"""The pure ACL core: rule parsing, the authorizer's precedence, identities, the resolver cache."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from muster.acl.authorizer import MANAGE_ALL, Authorizer, Decision, PolicyRules, enforce
from muster.acl.model import (
    ANONYMOUS_ACCESSOR,
    GLOBAL_MANAGEMENT_ID,
    ACLPolicy,
    ACLRole,
    ACLToken,
    Link,
    NodeIdentity,
    ServiceIdentity,
    TemplatedPolicy,
    builtin_management_policy,
    fnv128a,
    parse_rfc3339,
    render_template,
    rfc3339,
)
from muster.acl.resolver import ACLNotFound, Resolver
from muster.acl.rules import NAMED, Rule, RulesError, parse_rules, translate_legacy
from muster.errors import PermissionDenied

# ---------------------------------------------------------------------- parsing


def test_parse_hcl_every_resource_kind() -> None:
    text = "\n".join(
        [f'{k} "a" {{\n  policy = "read"\n}}\n{k}_prefix "" {{ policy = "write" }}' for k in NAMED]
        + [f'{u} = "read"' for u in ("acl", "operator", "keyring", "mesh", "peering")]
    )
    rules = parse_rules(text)
    for k in NAMED:
        assert any(r.resource == k and r.segment == "a" and not r.prefix and r.access == "read" for r in rules)
        assert any(r.resource == k and r.segment == "" and r.prefix and r.access == "write" for r in rules)
    for u in ("acl", "operator", "keyring", "mesh", "peering"):
        assert Rule(u, None, False, "read") in rules


def test_parse_json_forms_match_hcl() -> None:
    as_hcl = parse_rules('key_prefix "" { policy = "read" }\nservice "web" {\n policy = "write"\n intentions = "deny"\n}')
    as_json = parse_rules(json.dumps({"key_prefix": {"": {"policy": "read"}}, "service": {"web": {"policy": "write", "intentions": "deny"}}}))
    as_list = parse_rules(json.dumps({"key_prefix": [{"": {"policy": "read"}}], "service": [{"web": [{"policy": "write", "intentions": "deny"}]}]}))
    assert sorted(map(repr, as_hcl)) == sorted(map(repr, as_json)) == sorted(map(repr, as_list))


def test_parse_comments_and_one_line_blocks() -> None:
    rules = parse_rules('# c\n// d\n/* e */\nnode_prefix "" { policy = "read"}\nkey "private/" { policy = "deny" }\n')
    assert Rule("node", "", True, "read") in rules
    assert Rule("key", "private/", False, "deny") in rules


@pytest.mark.parametrize(
    "text, needle",
    [
        ('key "a" { policy = "bogus" }', "Invalid key policy"),
        ('node_prefix "" { policy = "list" }', "Invalid node_prefix policy"),
        ('acl = "bogus"', "Invalid acl policy"),
        ('service "a" { policy = "read"\n intentions = "list"\n}', "Invalid service intentions policy"),
        ('key "a" {', "Failed to parse ACL rules"),
        ('{"key": ', "Failed to parse ACL rules"),
        ('key "a" { policy = 3 }', "Failed to parse ACL rules"),
    ],
)
def test_parse_errors(text: str, needle: str) -> None:
    with pytest.raises(RulesError) as ei:
        parse_rules(text)
    assert needle in ei.value.message
    assert ei.value.status == 500


def test_list_only_for_keys_and_service_intentions_default() -> None:
    assert parse_rules('key_prefix "a/" { policy = "list" }') == [Rule("key", "a/", True, "list")]
    assert parse_rules('service "w" { policy = "write" }') == [Rule("service", "w", False, "write", "read")]
    assert parse_rules('service "w" { policy = "deny" }') == [Rule("service", "w", False, "deny", "deny")]


def test_legacy_syntax_means_prefix() -> None:
    rules = parse_rules('key "foo/" { policy = "read" }\nacl = "write"', legacy=True)
    assert rules == [Rule("key", "foo/", True, "read")]


def test_translate_legacy_exact_format() -> None:
    assert translate_legacy('agent "" { policy = "write" }') == 'agent_prefix "" {\n  policy = "write"\n}'
    out = translate_legacy('key "a" { policy = "read" }\nservice "b" { policy = "write" }')
    assert out == 'key_prefix "a" {\n  policy = "read"\n}\n\nservice_prefix "b" {\n  policy = "write"\n}'


# ---------------------------------------------------------------------- authorizer


def _authz(text: str, default: str = "deny") -> Authorizer:
    return Authorizer(PolicyRules(parse_rules(text)), default, "acc")


def test_enforce_levels() -> None:
    assert enforce("write", "list") is Decision.ALLOW
    assert enforce("list", "read") is Decision.ALLOW
    assert enforce("list", "write") is Decision.DENY
    assert enforce("read", "list") is Decision.DENY
    assert enforce("deny", "read") is Decision.DENY
    assert enforce("", "read") is Decision.DEFAULT


def test_exact_beats_prefix_and_longest_prefix_wins() -> None:
    a = _authz('key_prefix "" { policy = "read" }\nkey_prefix "app/" { policy = "write" }\n'
               'key_prefix "app/secret/" { policy = "deny" }\nkey "app/secret/open" { policy = "read" }')
    assert a.allowed("key", "other", "read") and not a.allowed("key", "other", "write")
    assert a.allowed("key", "app/x", "write")
    assert not a.allowed("key", "app/secret/x", "read")
    assert a.allowed("key", "app/secret/open", "read")
    assert not a.allowed("key", "app/secret/open", "write")


def test_deny_wins_at_equal_specificity_across_policies() -> None:
    rules = parse_rules('key_prefix "a/" { policy = "write" }') + parse_rules('key_prefix "a/" { policy = "deny" }')
    assert not Authorizer(PolicyRules(rules), "allow", "x").allowed("key", "a/b", "read")
    rules = parse_rules('key_prefix "a/" { policy = "read" }') + parse_rules('key_prefix "a/" { policy = "write" }')
    assert Authorizer(PolicyRules(rules), "deny", "x").allowed("key", "a/b", "write")


def test_default_policy_fallthrough() -> None:
    allow = Authorizer(PolicyRules([]), "allow", "x")
    assert allow.allowed("key", "k", "write") and allow.allowed("operator", "", "write")
    assert not allow.allowed("acl", "", "read") and not allow.allowed("snapshot", "", "write")
    assert not allow.management
    deny = Authorizer(PolicyRules([]), "deny", "x")
    assert not deny.allowed("key", "k", "read")
    assert MANAGE_ALL.allowed("acl", "", "write") and MANAGE_ALL.management


def test_management_and_snapshot() -> None:
    m = Authorizer(PolicyRules(parse_rules(builtin_management_policy().Rules)), "deny", "x")
    assert m.management
    for res in NAMED:
        assert m.allowed(res, "anything", "write")
    assert m.allowed("snapshot", "", "write") and m.allowed("intention", "web", "write")
    reader = _authz('acl = "read"')
    assert reader.allowed("acl", "", "read") and not reader.allowed("snapshot", "", "read")


def test_mesh_and_peering_fall_back_to_operator() -> None:
    a = _authz('operator = "write"')
    assert a.allowed("mesh", "", "write") and a.allowed("peering", "", "write")
    b = _authz('operator = "write"\nmesh = "read"')
    assert not b.allowed("mesh", "", "write") and not b.allowed("peering", "", "write")


def test_intentions_follow_service_rules() -> None:
    a = _authz('service_prefix "" { policy = "write" }\nservice "db" { policy = "deny" }')
    assert a.allowed("intention", "web", "read") and not a.allowed("intention", "web", "write")
    assert not a.allowed("intention", "db", "read")


def test_key_write_prefix() -> None:
    a = _authz('key_prefix "a/" { policy = "write" }\nkey "a/b/locked" { policy = "read" }')
    assert not a.key_write_prefix_allowed("a/")
    assert a.key_write_prefix_allowed("a/c/")
    assert not a.key_write_prefix_allowed("z/")  # default deny
    assert _authz("", "allow").key_write_prefix_allowed("z/")


def test_denial_texts() -> None:
    a = Authorizer(PolicyRules([]), "deny", "abc")
    with pytest.raises(PermissionDenied) as ei:
        a.require("key", "write", "foo")
    assert ei.value.message == "Permission denied: token with AccessorID 'abc' lacks permission 'key:write' on \"foo\""
    anon = Authorizer(PolicyRules([]), "deny", ANONYMOUS_ACCESSOR)
    with pytest.raises(PermissionDenied) as ei:
        anon.require("key", "write", "foo")
    assert ei.value.message == (
        "Permission denied: anonymous token lacks permission 'key:write' on \"foo\". The anonymous token is "
        "used implicitly when a request does not specify a token."
    )
    with pytest.raises(PermissionDenied) as ei:
        a.require("operator", "read")
    assert ei.value.message.endswith("lacks permission 'operator:read'")
    with pytest.raises(PermissionDenied) as ei:
        a.require("snapshot", "write")
    assert ei.value.message.endswith("lacks permission 'acl:write'")


# ---------------------------------------------------------------------- properties

_segment = st.text(alphabet="ab/", max_size=5)
_kind = st.sampled_from(NAMED)
_level = st.sampled_from(["read", "write", "deny"])


@st.composite
def _rule(draw: st.DrawFn) -> Rule:
    kind = draw(_kind)
    lvl = draw(st.sampled_from(["read", "write", "deny", "list"])) if kind == "key" else draw(_level)
    return Rule(kind, draw(_segment), draw(st.booleans()), lvl)


@settings(max_examples=300, deadline=None)
@given(st.lists(_rule(), max_size=8), _kind, _segment, _segment, _kind)
def test_prop_deny_never_overridden_by_another_kind(others: list[Rule], kind: str, seg: str, name_tail: str, other_kind: str) -> None:
    """A deny prefix rule on one resource kind is never overridden by any rule of another kind,
    however long or strong, nor by the default policy."""
    deny = Rule(kind, seg, True, "deny")
    foreign = [r for r in others if r.resource != kind]
    foreign += [Rule(other_kind, seg + name_tail, True, "write")] if other_kind != kind else []
    a = Authorizer(PolicyRules([deny, *foreign]), "allow", "x")
    for need in ("read", "write"):
        assert not a.allowed(kind, seg + name_tail, need)


@settings(max_examples=300, deadline=None)
@given(st.lists(_rule(), max_size=8), _kind, _segment, _segment)
def test_prop_deny_beats_allow_at_equal_specificity(others: list[Rule], kind: str, seg: str, tail: str) -> None:
    """Merging policies: at the same resource, segment and match kind, deny wins whatever else
    is merged, so the name it governs (when no longer or exact rule of that kind exists) is denied."""
    rules = [Rule(kind, seg, True, "write"), Rule(kind, seg, True, "deny"), *others]
    name = seg + tail
    pr = PolicyRules(rules)
    tree = pr.trees[kind]
    longer = any(
        r.resource == kind and ((not r.prefix and r.segment == name) or (r.prefix and len(r.segment or "") > len(seg) and name.startswith(r.segment or "")))
        for r in others
    )
    if not longer:
        assert tree.lookup(name) == "deny"
        assert pr.decide(kind, name, "read") is Decision.DENY


@settings(max_examples=300, deadline=None)
@given(st.lists(_rule(), max_size=10), _kind, _segment)
def test_prop_lookup_matches_reference(rules: list[Rule], kind: str, name: str) -> None:
    """The compiled lookup equals a naive scan: exact first, else the longest prefix, merged."""
    pr = PolicyRules(rules)
    prec = {"deny": 4, "write": 3, "list": 2, "read": 1}
    same = [r for r in rules if r.resource == kind]
    exact = [r.access for r in same if not r.prefix and r.segment == name]
    if exact:
        want: str | None = max(exact, key=prec.__getitem__)
    else:
        cands = [r for r in same if r.prefix and name.startswith(r.segment or "")]
        if cands:
            longest = max(len(r.segment or "") for r in cands)
            want = max((r.access for r in cands if len(r.segment or "") == longest), key=prec.__getitem__)
        else:
            want = None
    got = pr.trees[kind].lookup(name) if kind in pr.trees else None
    assert got == want


# ---------------------------------------------------------------------- model and resolver


class _Tables:
    def __init__(self) -> None:
        self.index = 1
        self.tokens: dict[str, ACLToken] = {}
        self.policies: dict[str, ACLPolicy] = {GLOBAL_MANAGEMENT_ID: builtin_management_policy()}
        self.roles: dict[str, ACLRole] = {}

    def acl_table_index(self) -> int:
        return self.index

    def acl_token_by_secret(self, secret: str) -> ACLToken | None:
        return self.tokens.get(secret)

    def acl_policy_get(self, policy_id: str) -> ACLPolicy | None:
        return self.policies.get(policy_id)

    def acl_role_get(self, role_id: str) -> ACLRole | None:
        return self.roles.get(role_id)


def _resolver(t: _Tables, clock: list[float], default: str = "deny") -> Resolver:
    return Resolver(t, enabled=True, default_policy=default, datacenter="dc1", now=lambda: clock[0])


def test_resolver_policies_roles_identities_and_cache_invalidation() -> None:
    t = _Tables()
    clock = [1000.0]
    t.policies["p1"] = ACLPolicy(ID="p1", Name="kv", Rules='key_prefix "app/" { policy = "write" }')
    t.policies["p2"] = ACLPolicy(ID="p2", Name="other-dc", Rules='key_prefix "" { policy = "write" }', Datacenters=["dc2"])
    t.roles["r1"] = ACLRole(ID="r1", Name="role", ServiceIdentities=[ServiceIdentity("web")])
    t.tokens["s1"] = ACLToken(
        AccessorID="a1",
        SecretID="s1",
        Policies=[Link("p1"), Link("p2"), Link("missing")],
        Roles=[Link("r1")],
        NodeIdentities=[NodeIdentity("n1", "dc1"), NodeIdentity("n2", "dc2")],
        TemplatedPolicies=[TemplatedPolicy("builtin/service", {"name": "api"})],
    )
    r = _resolver(t, clock)
    a = r.resolve("s1")
    assert a.allowed("key", "app/x", "write") and not a.allowed("key", "other", "read")
    assert a.allowed("service", "web", "write") and a.allowed("service", "web-sidecar-proxy", "write")
    assert a.allowed("service", "api", "write") and a.allowed("service", "zzz", "read")
    assert a.allowed("node", "n1", "write") and not a.allowed("node", "n2", "write")
    assert r.resolve("s1") is a  # cached
    t.policies["p1"] = ACLPolicy(ID="p1", Name="kv", Rules='key_prefix "app/" { policy = "read" }')
    assert r.resolve("s1") is a  # the index did not move: still the cached authorizer
    t.index = 2
    b = r.resolve("s1")
    assert b is not a and not b.allowed("key", "app/x", "write")
    del t.tokens["s1"]
    t.index = 3
    with pytest.raises(ACLNotFound) as ei:
        r.resolve("s1")
    assert ei.value.status == 403 and ei.value.message == "ACL not found"


def test_resolver_expiry_default_and_anonymous() -> None:
    t = _Tables()
    clock = [1000.0]
    t.tokens["s"] = ACLToken(AccessorID="a", SecretID="s", Policies=[Link(GLOBAL_MANAGEMENT_ID)], ExpirationTime=rfc3339(1010.0))
    r = _resolver(t, clock)
    assert r.resolve("s").management
    clock[0] = 1011.0
    with pytest.raises(ACLNotFound):
        r.resolve("s")
    anon = r.resolve("")
    assert anon.accessor == ANONYMOUS_ACCESSOR and not anon.allowed("key", "x", "read")
    r.default_token = "s2"
    t.tokens["s2"] = ACLToken(AccessorID="a2", SecretID="s2", Policies=[Link(GLOBAL_MANAGEMENT_ID)])
    t.index += 1
    assert r.resolve("").management
    off = Resolver(t, enabled=False, default_policy="deny", datacenter="dc1", now=lambda: 0.0)
    assert off.resolve("bogus") is MANAGE_ALL


def test_legacy_tokens() -> None:
    t = _Tables()
    t.tokens["m"] = ACLToken(AccessorID="a", SecretID="m", Type="management")
    t.tokens["c"] = ACLToken(AccessorID="b", SecretID="c", Type="client", Rules='key "pub" { policy = "read" }')
    r = _resolver(t, [0.0])
    assert r.resolve("m").management
    c = r.resolve("c")
    assert c.allowed("key", "pub/x", "read") and not c.allowed("key", "pub/x", "write")


def test_templates_and_time() -> None:
    assert 'service "web"' in render_template("builtin/service", {"name": "web"})
    assert len(fnv128a(b"x")) == 32
    assert fnv128a(b"") == "6c62272e07bb014262b821756295c58d"
    ts = 1700000000.25
    assert parse_rfc3339(rfc3339(ts)) == ts
    assert parse_rfc3339("2023-11-14T22:13:20.123456789Z") == pytest.approx(1700000000.123456)
