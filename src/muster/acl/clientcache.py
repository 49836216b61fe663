"""Token resolution on a client agent: tokens, policies and roles read from a server and cached.

A client agent holds no replica of the ACL tables (``server/remote.py``), so, as Consul's
clients do (its ``ACLResolver`` reads tokens, policies and roles from a server with the
``ACL.TokenRead``, ``ACL.PolicyResolve`` and ``ACL.RoleResolve`` RPCs and caches them), this
cache asks a server for what a request's token needs and keeps it:

* a **token** (looked up by its secret, the only key a client may use) for ``acl.token_ttl``;
  its **roles** for ``acl.role_ttl`` and its **policies** (its own and its roles') for
  ``acl.policy_ttl`` (all three 30 s by default).  A server answers "no such token" for a
  deleted or expired one; that answer is cached too (for ``token_ttl``), so a token deleted on
  the servers stops working on a client at the latest ``token_ttl`` after the deletion has
  reached the server that answers.  Entries are never invalidated early: the TTLs bound how
  stale a client's view may be.
* ``prepare(secret)`` runs before a request is served: it does nothing while every entry the
  token needs is fresh, otherwise asks a server (one ``acl_resolve`` call: the token and, when
  the token itself was due, every role and policy it links; else only the due ones).
  Concurrent requests with the same secret share one call.
* The cache is the resolver's ``ACLTables`` (``acl/resolver.py``): after ``prepare`` the
  resolver compiles the authorizer from it exactly as a server does from its replica.
  ``acl_table_index`` moves whenever the cache's content changes, which drops the resolver's
  compiled authorizers.

When no server answers (``acl.down_policy``, Consul's semantics):

* ``extend-cache`` (the default): a token whose entries are all cached keeps being used, however
  old, and its age starts again (so the servers are asked again one TTL later);
* ``async-cache``: the same, and a due entry is served at once while a server is asked in the
  background (also when the servers are healthy);
* for a token with nothing (or not everything) cached, both answer with ``acl.default_policy``;
* ``allow`` allows everything but the ACL system itself, ``deny`` denies everything, for any token.

That decision is kept for ``min(token_ttl, DOWN_RETRY)``, then a server is asked again.  A server
that refuses the request (it names a policy or role the token no longer links: the cached token
is out of date) makes the cache drop the token and read it again at once, once.

Bounds: at most ``max_tokens`` tokens (least recently used dropped first, Consul's clients keep
1024 identities); a policy or role is kept only while a cached token links it, so the cache
never holds more than the links of ``max_tokens`` tokens.  ``now`` is a monotonic clock, injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from ..errors import MusterError
from .authorizer import Authorizer
from .model import ACLPolicy, ACLRole, ACLToken

log = logging.getLogger("muster.acl.client")

__all__ = ["ClientACLCache", "DOWN_POLICIES", "DOWN_RETRY", "MAX_TOKENS", "Fetch"]

#: ``fetch(request) -> answer``: one ``acl_resolve`` call to a server (``server/aclclient.py``).
#: Raises ``MusterError``: status 403 when the server refused the request, anything else when no
#: server could answer it.
Fetch = Callable[[dict[str, Any]], Awaitable[Any]]

DOWN_POLICIES = ("allow", "deny", "extend-cache", "async-cache")
#: Longest time a down-policy decision stands before a server is asked again (seconds).
DOWN_RETRY = 5.0
#: Tokens kept at most (Consul's client agents keep 1024 identities).
MAX_TOKENS = 1024


@dataclass(slots=True)
class _Entry:
    """A cached row (None: the server said there is none) and when a server last confirmed it."""

    row: Any
    fetched: float


class ClientACLCache:
    """The client's ACL cache (module doc).  Implements ``ACLTables`` and ``RemoteSource`` of
    ``acl/resolver.py``."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        token_ttl: float,
        policy_ttl: float,
        role_ttl: float,
        down_policy: str,
        default_policy: str,
        now: Callable[[], float],
        local: Callable[[str], bool] = lambda _s: False,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        if down_policy not in DOWN_POLICIES:
            raise ValueError(f"invalid ACL down policy {down_policy!r}")
        self._fetch = fetch
        self.token_ttl = max(0.0, float(token_ttl))
        self.policy_ttl = max(0.0, float(policy_ttl))
        self.role_ttl = max(0.0, float(role_ttl))
        self.down_policy = down_policy
        self.default_policy = "deny" if default_policy == "deny" else "allow"
        self.now = now
        #: Secrets this agent resolves itself (its agent recovery token): never sent to a server.
        self.local = local
        self.max_tokens = max(1, max_tokens)
        self._tokens: OrderedDict[str, _Entry] = OrderedDict()
        self._policies: dict[str, _Entry] = {}
        self._roles: dict[str, _Entry] = {}
        #: Secrets under a down-policy decision: (the authorizer it gives, since when).
        self._down: OrderedDict[str, tuple[Authorizer, float]] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.version = 0
        self.counters = {"hits": 0, "fetches": 0, "refused": 0, "unreachable": 0, "extended": 0}

    # ------------------------------------------------------------------ ACLTables / RemoteSource

    def acl_table_index(self) -> int:
        return self.version

    def acl_token_by_secret(self, secret: str) -> ACLToken | None:
        if secret in self._down:
            return None
        e = self._tokens.get(secret)
        return e.row if e is not None else None

    def acl_policy_get(self, policy_id: str) -> ACLPolicy | None:
        e = self._policies.get(policy_id)
        return e.row if e is not None else None

    def acl_role_get(self, role_id: str) -> ACLRole | None:
        e = self._roles.get(role_id)
        return e.row if e is not None else None

    def token(self, secret: str) -> ACLToken | None:
        """Everything cached is already visible through ``acl_token_by_secret``."""
        return None

    def down(self, secret: str) -> Authorizer | None:
        """The authorizer of the down-policy decision standing for ``secret`` (None: there is none)."""
        d = self._down.get(secret)
        return d[0] if d is not None else None

    # ------------------------------------------------------------------ freshness

    def _due(self, secret: str) -> tuple[bool, list[str], list[str]] | None:
        """What a server must be asked for ``secret``: (the token itself, due policies, due
        roles); None when everything it needs is fresh."""
        now = self.now()
        d = self._down.get(secret)
        if d is not None and now - d[1] < min(self.token_ttl, DOWN_RETRY):
            return None
        e = self._tokens.get(secret)
        if e is None or d is not None or now - e.fetched > self.token_ttl:
            return True, [], []
        tok: ACLToken | None = e.row
        if tok is None:
            return None
        roles = [r for r in _role_ids(tok) if _stale(self._roles.get(r), now, self.role_ttl)]
        policies = [p for p in self._policy_ids(tok) if _stale(self._policies.get(p), now, self.policy_ttl)]
        if roles or policies:
            return False, policies, roles
        return None

    def _complete(self, secret: str) -> bool:
        """Whether the token and everything it links is cached (fresh or not)."""
        e = self._tokens.get(secret)
        if e is None:
            return False
        tok: ACLToken | None = e.row
        if tok is None:
            return True
        return all(r in self._roles for r in _role_ids(tok)) and all(p in self._policies for p in self._policy_ids(tok))

    def _policy_ids(self, tok: ACLToken) -> list[str]:
        """The token's policies and those of its cached roles."""
        out = dict.fromkeys(link.ID for link in tok.Policies)
        for rid in _role_ids(tok):
            e = self._roles.get(rid)
            if e is not None and e.row is not None:
                out.update(dict.fromkeys(link.ID for link in e.row.Policies))
        return [p for p in out if p]

    # ------------------------------------------------------------------ resolving

    async def prepare(self, secret: str) -> None:
        """Before a request with ``secret`` is served: make the cache hold what it needs (module
        doc).  Never raises: a failure becomes a down-policy decision."""
        if not secret or self.local(secret):
            return
        if secret in self._tokens:
            self._tokens.move_to_end(secret)
        if self._due(secret) is None:
            self.counters["hits"] += 1
            return
        if self.down_policy == "async-cache" and self._complete(secret) and secret not in self._down:
            self.refresh_soon(secret)
            return
        task = self._inflight.get(secret)
        if task is None:
            task = self._start(secret)
        await asyncio.shield(task)

    def refresh_soon(self, secret: str) -> None:
        """Ask a server in the background when ``secret``'s entries are due (for callers that
        cannot wait, such as DNS: they use what is cached meanwhile)."""
        if not secret or self.local(secret) or secret in self._inflight or self._due(secret) is None:
            return
        self._start(secret)

    def _start(self, secret: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._refresh(secret), name="acl-client-resolve")
        self._inflight[secret] = task
        task.add_done_callback(lambda _t: self._inflight.pop(secret, None))
        return task

    async def close(self) -> None:
        """Cancel every call under way (the agent stops)."""
        tasks = list(self._inflight.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def _refresh(self, secret: str) -> None:
        for attempt in range(2):
            due = self._due(secret)
            if due is None:
                return
            whole, policies, roles = due
            request = {"secret": secret, "links": whole, "policies": policies, "roles": roles}
            self.counters["fetches"] += 1
            try:
                answer = await self._fetch(request)
            except MusterError as err:
                if err.status == 403 and attempt == 0:
                    # The server refused a policy or role the cached token no longer links: read
                    # the token again (Consul drops the identity from its cache in that case).
                    self.counters["refused"] += 1
                    self._drop_token(secret)
                    continue
                self._unreachable(secret, whole, policies, roles, err.message)
                return
            try:
                self._store(secret, answer, whole, policies, roles)
            except (msgspec.ValidationError, TypeError, ValueError, KeyError) as err:
                self._unreachable(secret, whole, policies, roles, f"malformed answer: {err}")
            return

    def _store(self, secret: str, answer: Any, whole: bool, policies: list[str], roles: list[str]) -> None:
        if not isinstance(answer, dict):
            raise TypeError("not a map")
        now = self.now()
        raw = answer.get("token")
        tok = msgspec.convert(raw, ACLToken) if raw is not None else None
        if tok is not None and tok.SecretID != secret:
            raise ValueError("the answer is about another token")
        got_roles = {r.ID: r for r in (msgspec.convert(x, ACLRole) for x in answer.get("roles") or ())}
        got_policies = {p.ID: p for p in (msgspec.convert(x, ACLPolicy) for x in answer.get("policies") or ())}
        changed = self._put(self._tokens, secret, tok, now)
        self._tokens.move_to_end(secret)
        if self._down.pop(secret, None) is not None:
            changed = True
        if tok is not None:
            want_roles = _role_ids(tok) if whole else roles
            for rid in want_roles:
                changed |= self._put(self._roles, rid, got_roles.get(rid), now)
            want_policies = self._policy_ids(tok) if whole else policies
            for pid in want_policies:
                changed |= self._put(self._policies, pid, got_policies.get(pid), now)
        if len(self._tokens) > self.max_tokens:
            self._evict()
            changed = True
        if changed:
            self.version += 1

    @staticmethod
    def _put(table: dict[str, _Entry], key: str, row: Any, now: float) -> bool:
        e = table.get(key)
        if e is not None and e.row == row:
            e.fetched = now
            return False
        table[key] = _Entry(row, now)
        return True

    def _unreachable(self, secret: str, whole: bool, policies: list[str], roles: list[str], why: str) -> None:
        """No server answered: apply ``down_policy`` (module doc)."""
        self.counters["unreachable"] += 1
        now = self.now()
        if self.down_policy in ("extend-cache", "async-cache") and self._complete(secret):
            e = self._tokens[secret]
            e.fetched = now
            for rid in roles:
                self._roles[rid].fetched = now
            for pid in policies:
                self._policies[pid].fetched = now
            if whole and e.row is not None:
                for rid in _role_ids(e.row):
                    self._roles[rid].fetched = now
                for pid in self._policy_ids(e.row):
                    self._policies[pid].fetched = now
            self.counters["extended"] += 1
            log.warning("ACL: no server resolved a token (%s): down_policy=%s keeps the cached one", why, self.down_policy)
            return
        if self.down_policy == "allow":
            authz = Authorizer(None, "allow", "")
        elif self.down_policy == "deny":
            authz = Authorizer(None, "deny", "")
        else:
            authz = Authorizer(None, self.default_policy, "")
        self._down[secret] = (authz, now)
        self._down.move_to_end(secret)
        while len(self._down) > self.max_tokens:
            self._down.popitem(last=False)
        self.version += 1
        log.warning("ACL: no server resolved a token (%s): down_policy=%s decides", why, self.down_policy)

    def _drop_token(self, secret: str) -> None:
        if self._tokens.pop(secret, None) is not None:
            self.version += 1

    def _evict(self) -> None:
        """Drop the least recently used eighth of the tokens, then every policy and role no
        remaining token links."""
        for _ in range(max(1, len(self._tokens) - self.max_tokens + self.max_tokens // 8)):
            if not self._tokens:
                break
            self._tokens.popitem(last=False)
        keep_roles: set[str] = set()
        keep_policies: set[str] = set()
        for e in self._tokens.values():
            if e.row is not None:
                keep_roles.update(_role_ids(e.row))
                keep_policies.update(self._policy_ids(e.row))
        for rid in [r for r in self._roles if r not in keep_roles]:
            del self._roles[rid]
        for pid in [p for p in self._policies if p not in keep_policies]:
            del self._policies[pid]

    def sizes(self) -> tuple[int, int, int]:
        """(tokens, policies, roles) cached now."""
        return len(self._tokens), len(self._policies), len(self._roles)


def _role_ids(tok: ACLToken) -> list[str]:
    return [link.ID for link in tok.Roles if link.ID]


def _stale(e: _Entry | None, now: float, ttl: float) -> bool:
    return e is None or now - e.fetched > ttl
