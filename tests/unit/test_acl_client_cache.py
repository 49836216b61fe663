"""A client agent's token resolution (``acl/clientcache.py``) against a server's ``acl_resolve``
endpoint (``server/aclclient.py``), without sockets: a manual clock, the server's ACL tables in
memory, and a switch that makes the server unreachable."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from muster.acl.authorizer import Authorizer
from muster.acl.clientcache import DOWN_RETRY, ClientACLCache
from muster.acl.model import ACLPolicy, ACLRole, ACLToken, Link
from muster.acl.resolver import ACLNotFound, Resolver
from muster.errors import MusterError, PermissionDenied
from muster.server.aclclient import ACLResolveEndpoint

TTL = 30.0


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Tables:
    """A server's ACL tables (the ``ACLTables`` protocol), edited directly by the tests."""

    def __init__(self) -> None:
        self.tokens: dict[str, ACLToken] = {}
        self.policies: dict[str, ACLPolicy] = {}
        self.roles: dict[str, ACLRole] = {}

    def acl_table_index(self) -> int:
        return 0

    def acl_token_by_secret(self, secret: str) -> ACLToken | None:
        return self.tokens.get(secret)

    def acl_policy_get(self, policy_id: str) -> ACLPolicy | None:
        return self.policies.get(policy_id)

    def acl_role_get(self, role_id: str) -> ACLRole | None:
        return self.roles.get(role_id)


class FakeACLService:
    """What the endpoint reads of ``ACLService`` on a server."""

    def __init__(self, tables: Tables) -> None:
        self.enabled = True
        self.resolver = Resolver(tables, enabled=True, default_policy="deny", datacenter="dc1", now=lambda: 0.0)

    async def prepare(self, secret: str) -> None:
        return None


class Server:
    """The endpoint behind a fetch function that counts calls and can be made unreachable."""

    def __init__(self) -> None:
        self.tables = Tables()
        self.endpoint = ACLResolveEndpoint(FakeACLService(self.tables))  # type: ignore[arg-type]
        self.up = True
        self.calls: list[dict[str, Any]] = []
        self.gate: asyncio.Event | None = None

    async def fetch(self, request: dict[str, Any]) -> Any:
        self.calls.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if not self.up:
            raise MusterError("No known Consul servers")
        return await self.endpoint.rpc_acl_resolve(request)

    def add(self, secret: str, rules: str = 'key_prefix "app/" { policy = "write" }', via_role: bool = False) -> None:
        pid = f"p-{secret}"
        self.tables.policies[pid] = ACLPolicy(ID=pid, Name=pid, Rules=rules)
        if via_role:
            self.tables.roles[f"r-{secret}"] = ACLRole(ID=f"r-{secret}", Name=f"r-{secret}", Policies=[Link(pid)])
            tok = ACLToken(AccessorID=f"a-{secret}", SecretID=secret, Roles=[Link(f"r-{secret}")])
        else:
            tok = ACLToken(AccessorID=f"a-{secret}", SecretID=secret, Policies=[Link(pid)])
        self.tables.tokens[secret] = tok


def client(server: Server, clock: Clock, down: str = "extend-cache", default: str = "deny",
           **kw: Any) -> tuple[ClientACLCache, Resolver]:
    cache = ClientACLCache(server.fetch, token_ttl=kw.pop("token_ttl", TTL), policy_ttl=kw.pop("policy_ttl", TTL),
                           role_ttl=kw.pop("role_ttl", TTL), down_policy=down, default_policy=default, now=clock, **kw)
    resolver = Resolver(cache, enabled=True, default_policy=default, datacenter="dc1", now=lambda: 0.0)
    resolver.remote = cache
    return cache, resolver


async def authz(cache: ClientACLCache, resolver: Resolver, secret: str) -> Authorizer:
    await cache.prepare(secret)
    return resolver.resolve(secret)


async def test_resolves_through_the_server_and_caches_for_the_ttl() -> None:
    srv, clock = Server(), Clock()
    srv.add("s1")
    srv.add("s2", via_role=True)
    cache, resolver = client(srv, clock)
    for secret in ("s1", "s2"):
        a = await authz(cache, resolver, secret)
        assert a.allowed("key", "app/x", "write") and not a.allowed("key", "other", "read")
    assert len(srv.calls) == 2 and all(c["links"] for c in srv.calls)
    assert cache.sizes() == (2, 2, 1)
    clock.t += TTL - 1
    await authz(cache, resolver, "s1")
    assert len(srv.calls) == 2  # still fresh: no call
    with pytest.raises(ACLNotFound):
        await authz(cache, resolver, "nope")  # unknown to the server
    assert cache.acl_token_by_secret("nope") is None and len(srv.calls) == 3
    with pytest.raises(ACLNotFound):
        await authz(cache, resolver, "nope")  # the negative answer is cached too
    assert len(srv.calls) == 3


async def test_a_token_deleted_on_the_servers_stops_working_within_token_ttl() -> None:
    srv, clock = Server(), Clock()
    srv.add("s1")
    cache, resolver = client(srv, clock, token_ttl=5.0)
    assert (await authz(cache, resolver, "s1")).allowed("key", "app/x", "write")
    del srv.tables.tokens["s1"]
    clock.t += 4.0
    assert (await authz(cache, resolver, "s1")).allowed("key", "app/x", "write")  # within the TTL: cached
    clock.t += 1.5
    with pytest.raises(ACLNotFound):
        await authz(cache, resolver, "s1")


async def test_policy_and_role_ttls_refresh_only_what_is_due() -> None:
    srv, clock = Server(), Clock()
    srv.add("s1", via_role=True)
    cache, resolver = client(srv, clock, token_ttl=100.0, role_ttl=50.0, policy_ttl=10.0)
    await authz(cache, resolver, "s1")
    srv.tables.policies["p-s1"] = ACLPolicy(ID="p-s1", Name="p-s1", Rules='key_prefix "app/" { policy = "read" }')
    clock.t += 11.0
    a = await authz(cache, resolver, "s1")
    assert srv.calls[-1] == {"secret": "s1", "links": False, "policies": ["p-s1"], "roles": []}
    assert a.allowed("key", "app/x", "read") and not a.allowed("key", "app/x", "write")  # the edit is seen
    clock.t += 40.0
    await authz(cache, resolver, "s1")
    assert srv.calls[-1] == {"secret": "s1", "links": False, "policies": ["p-s1"], "roles": ["r-s1"]}
    # A role that no longer links the policy: the server refuses that policy, the cache reads
    # the token again at once and the role's new content (no policy) applies.
    srv.tables.roles["r-s1"] = ACLRole(ID="r-s1", Name="r-s1")
    clock.t += 11.0
    a = await authz(cache, resolver, "s1")
    assert not a.allowed("key", "app/x", "read")
    assert srv.calls[-1]["links"] is True and cache.counters["refused"] == 1


async def test_a_request_for_unlinked_policies_is_refused_and_the_token_read_again() -> None:
    srv, clock = Server(), Clock()
    srv.add("s1")
    srv.add("s2")
    with pytest.raises(PermissionDenied):
        await srv.endpoint.rpc_acl_resolve({"secret": "s1", "policies": ["p-s2"]})
    with pytest.raises(PermissionDenied):
        await srv.endpoint.rpc_acl_resolve({"secret": "s1", "roles": ["r-x"]})
    for bad in (None, {"secret": ""}, {"secret": "s1", "policies": "p-s1"}, {"secret": "s1", "roles": ["x"] * 5000}):
        with pytest.raises(MusterError) as err:
            await srv.endpoint.rpc_acl_resolve(bad)
        assert err.value.status == 400
    assert (await srv.endpoint.rpc_acl_resolve({"secret": "s1", "policies": ["p-s1"]}))["token"]["SecretID"] == "s1"
    cache, resolver = client(srv, clock, token_ttl=100.0, policy_ttl=10.0)
    await authz(cache, resolver, "s1")
    # The token now links p-s2 instead: the cached token still names p-s1, which the server
    # refuses once its policy is due; the cache then reads the whole token again.
    srv.tables.tokens["s1"] = ACLToken(AccessorID="a-s1", SecretID="s1", Policies=[Link("p-s2")])
    srv.tables.policies["p-s2"] = ACLPolicy(ID="p-s2", Name="p-s2", Rules='key_prefix "b/" { policy = "write" }')
    clock.t += 11.0
    a = await authz(cache, resolver, "s1")
    assert cache.counters["refused"] == 1
    assert a.allowed("key", "b/x", "write") and not a.allowed("key", "app/x", "read")


async def test_extend_cache_keeps_a_known_token_while_no_server_answers() -> None:
    srv, clock = Server(), Clock()
    srv.add("s1")
    cache, resolver = client(srv, clock, token_ttl=5.0)
    await authz(cache, resolver, "s1")
    srv.up = False
    for _ in range(3):
        clock.t += 6.0
        a = await authz(cache, resolver, "s1")
        assert a.allowed("key", "app/x", "write") and not a.allowed("key", "other", "read")
    assert cache.counters["extended"] == 3
    # A token never seen gets the default policy (deny here); so does one whose links were
    # never read.
    a = await authz(cache, resolver, "unseen")
    assert not a.allowed("key", "app/x", "read")
    srv.up = True
    clock.t += DOWN_RETRY + 0.1
    with pytest.raises(ACLNotFound):
        await authz(cache, resolver, "unseen")  # the decision lapses: the server says unknown


@pytest.mark.parametrize("down", ["allow", "deny"])
async def test_allow_and_deny_apply_to_every_token(down: str) -> None:
    srv, clock = Server(), Clock()
    srv.add("s1")
    cache, resolver = client(srv, clock, down=down, token_ttl=5.0)
    await authz(cache, resolver, "s1")
    srv.up = False
    clock.t += 6.0
    for secret in ("s1", "unseen"):
        a = await authz(cache, resolver, secret)
        assert a.allowed("key", "other", "write") is (down == "allow")
        assert not a.allowed("acl", None, "write")  # allow never extends to the ACL system
    calls = len(srv.calls)
    await authz(cache, resolver, "s1")
    assert len(srv.calls) == calls  # the decision stands for a while: no call per request
    srv.up = True
    clock.t += min(5.0, DOWN_RETRY) + 0.1
    a = await authz(cache, resolver, "s1")
    assert a.allowed("key", "app/x", "write") and not a.allowed("key", "other", "write")


async def test_async_cache_serves_the_stale_entry_and_refreshes_in_the_background() -> None:
    srv, clock = Server(), Clock()
    srv.add("s1")
    cache, resolver = client(srv, clock, down="async-cache", token_ttl=5.0)
    await authz(cache, resolver, "s1")
    del srv.tables.tokens["s1"]
    srv.gate = asyncio.Event()
    clock.t += 6.0
    a = await authz(cache, resolver, "s1")  # returns at once with the cached token
    assert a.allowed("key", "app/x", "write")
    await asyncio.sleep(0)
    assert len(srv.calls) == 2  # the background call is under way (held at the gate)
    srv.gate.set()
    for _ in range(10):
        await asyncio.sleep(0)
    with pytest.raises(ACLNotFound):
        resolver.resolve("s1")


async def test_concurrent_requests_share_one_call() -> None:
    srv, clock = Server(), Clock()
    srv.add("s1")
    srv.gate = asyncio.Event()
    cache, resolver = client(srv, clock)
    waiters = [asyncio.ensure_future(authz(cache, resolver, "s1")) for _ in range(20)]
    await asyncio.sleep(0)
    srv.gate.set()
    for a in await asyncio.gather(*waiters):
        assert a.allowed("key", "app/x", "write")
    assert len(srv.calls) == 1


async def test_size_is_bounded_and_unlinked_policies_are_dropped() -> None:
    srv, clock = Server(), Clock()
    cache, resolver = client(srv, clock, max_tokens=16)
    for i in range(100):
        srv.add(f"s{i}", via_role=i % 2 == 0)
        assert (await authz(cache, resolver, f"s{i}")).allowed("key", "app/x", "write")
        tokens, policies, roles = cache.sizes()
        assert tokens <= 16 and policies <= tokens and roles <= tokens
    # The most recent tokens are still cached; an evicted one is read again when used.
    calls = len(srv.calls)
    await authz(cache, resolver, "s99")
    assert len(srv.calls) == calls
    await authz(cache, resolver, "s0")
    assert len(srv.calls) == calls + 1


async def test_local_secrets_are_never_sent() -> None:
    srv, clock = Server(), Clock()
    cache, _ = client(srv, clock, local=lambda s: s == "recovery")
    await cache.prepare("recovery")
    await cache.prepare("")
    cache.refresh_soon("recovery")
    assert srv.calls == []


async def test_acls_disabled_on_the_server_and_a_malformed_answer_count_as_failures() -> None:
    srv, clock = Server(), Clock()
    srv.endpoint.acl.enabled = False
    with pytest.raises(MusterError) as err:
        await srv.endpoint.rpc_acl_resolve({"secret": "s1"})
    assert (err.value.status, err.value.message) == (401, "ACL support disabled")

    async def wrong(request: dict[str, Any]) -> Any:
        return {"token": {"AccessorID": "a", "SecretID": "someone-else"}}

    cache = ClientACLCache(wrong, token_ttl=5, policy_ttl=5, role_ttl=5, down_policy="deny", default_policy="allow",
                           now=clock)
    await cache.prepare("s1")
    assert cache.acl_token_by_secret("s1") is None
    down = cache.down("s1")
    assert down is not None and not down.allowed("key", "k", "read")
    with pytest.raises(ValueError):
        ClientACLCache(wrong, token_ttl=5, policy_ttl=5, role_ttl=5, down_policy="nope", default_policy="allow", now=clock)
