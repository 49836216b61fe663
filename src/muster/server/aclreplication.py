"""ACLs across datacenters: replication from the primary datacenter, and remote token
resolution governed by ``down_policy`` (Consul's ``agent/consul/acl_replication*.go`` and
``acl.go`` ``ACLResolver``).  docs/compat/acl.md#datacenters-and-down_policy.

The primary datacenter (``primary_datacenter``) is authoritative.  In a secondary datacenter:

* the **leader replicates** the primary's policies and roles (and its global tokens when
  ``enable_token_replication`` is set) into its own Raft log: a blocking read of the primary's
  ``/v1/acl/policies`` (any ACL write there wakes it) followed by the lists it needs, with the
  ``replication`` token; rows whose ``Hash`` differs are written, rows the primary no longer has
  are deleted (local tokens are never touched).  Every replica of the secondary, client agents
  included, then holds them.  The status is ``/v1/acl/replication``'s.
* **tokens** are resolved from the local tables when token replication is on, or when the token
  is local to this datacenter; otherwise the token is read from the primary
  (``/v1/acl/token/self`` with that secret) before the request is served and cached for
  ``acl.token_ttl``.  When the primary cannot be reached, ``down_policy`` decides:
  ``extend-cache`` keeps using a cached token however old, ``async-cache`` does too but serves
  an expired entry at once while refreshing it in the background, and both fall back to
  ``default_policy`` for a token never seen; ``allow`` allows everything but ACL management;
  ``deny`` denies everything.  A token the primary reports unknown is refused (``ACL not found``).

Calls to the primary are forwarded HTTP requests (the ``?dc=`` forwarding payload of
``server/federation.py``), so the primary answers them exactly as its API would.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from ..acl.authorizer import Authorizer
from ..acl.model import GLOBAL_MANAGEMENT_ID, ACLPolicy, ACLRole, ACLToken, rfc3339
from ..errors import MusterError
from ..structs import (
    ACLPolicyDeleteCommand,
    ACLPolicySetCommand,
    ACLRoleDeleteCommand,
    ACLRoleSetCommand,
    ACLTokenDeleteCommand,
    ACLTokenSetCommand,
)

log = logging.getLogger("muster.acl.replication")

#: (status, content type, headers, body) of a forwarded request (``federation.Answer``).
Answer = tuple[int, str, list[tuple[str, str]], bytes]
#: ``remote(method, path, query, token, timeout)`` -> the primary's answer; raises MusterError
#: when no server of the primary could be reached.
Remote = Callable[[str, str, str, str, float], Awaitable[Answer]]

ZERO_TIME = "0001-01-01T00:00:00Z"
BLOCK_WAIT = "30s"
BLOCK_TIMEOUT = 60.0
LOOKUP_TIMEOUT = 10.0
RETRY_MIN = 0.5
RETRY_MAX = 30.0


class RemoteUnavailable(MusterError):
    """The primary datacenter did not answer (no reachable server, or a 5xx)."""


def _index(headers: list[tuple[str, str]]) -> int:
    for k, v in headers:
        if k.lower() == "x-consul-index":
            try:
                return int(v)
            except ValueError:
                return 0
    return 0


async def _get_json(remote: Remote, path: str, query: str, token: str, timeout: float) -> tuple[int, Any]:
    status, _ctype, headers, body = await remote("GET", path, query, token, timeout)
    if status >= 500:
        raise RemoteUnavailable(f"{path}: {status} {body.decode('utf-8', 'replace').strip()}")
    if status != 200:
        raise MusterError(f"{path}: {status} {body.decode('utf-8', 'replace').strip()}", status)
    try:
        return _index(headers), json.loads(body)
    except ValueError as err:
        raise MusterError(f"{path}: invalid JSON from the primary datacenter: {err}") from None


def _policy(d: dict[str, Any]) -> ACLPolicy:
    return ACLPolicy(
        ID=str(d["ID"]),
        Name=str(d["Name"]),
        Description=str(d.get("Description") or ""),
        Rules=str(d.get("Rules") or ""),
        Datacenters=list(d.get("Datacenters") or []),
        Hash=str(d.get("Hash") or ""),
    )


def _links(raw: Any) -> list[dict[str, str]]:
    return [{"ID": str(x["ID"])} for x in raw or [] if isinstance(x, dict) and x.get("ID")]


def _role(d: dict[str, Any]) -> ACLRole:
    clean = {k: v for k, v in d.items() if k not in ("CreateIndex", "ModifyIndex")}
    clean["Policies"] = _links(d.get("Policies"))
    return msgspec.convert(clean, ACLRole)


def token_from_json(d: dict[str, Any]) -> ACLToken:
    """A token row from the primary's JSON (links keep only their IDs; names are looked up)."""
    keep = {k: v for k, v in d.items() if k in ACLToken.__struct_fields__ and k not in ("CreateIndex", "ModifyIndex")}
    keep["Policies"] = _links(d.get("Policies"))
    keep["Roles"] = _links(d.get("Roles"))
    return msgspec.convert(keep, ACLToken)


@dataclass
class Status:
    """``/v1/acl/replication`` (Consul's ``ACLReplicationStatus``)."""

    enabled: bool = False
    running: bool = False
    source: str = ""
    kind: str = ""
    index: int = 0
    role_index: int = 0
    token_index: int = 0
    last_success: str = ZERO_TIME
    last_error: str = ZERO_TIME
    last_error_message: str = ""

    def render(self) -> dict[str, Any]:
        return {
            "Enabled": self.enabled,
            "Running": self.running,
            "SourceDatacenter": self.source,
            "ReplicationType": self.kind,
            "ReplicatedIndex": self.index,
            "ReplicatedRoleIndex": self.role_index,
            "ReplicatedTokenIndex": self.token_index,
            "LastSuccess": self.last_success,
            "LastError": self.last_error,
            "LastErrorMessage": self.last_error_message,
        }


class Replicator:
    """The secondary leader's replication loop.  ``apply`` proposes a command locally; ``tables``
    returns the current ACL table; ``is_leader`` gates every round."""

    def __init__(
        self,
        primary: str,
        remote: Remote,
        token: Callable[[], str],
        replicate_tokens: bool,
        apply: Callable[[Any], Awaitable[Any]],
        tables: Callable[[], Any],
        is_leader: Callable[[], bool],
        now: Callable[[], float],
    ) -> None:
        self.primary = primary
        self.remote = remote
        self.token = token
        self.replicate_tokens = replicate_tokens
        self.apply = apply
        self.tables = tables
        self.is_leader = is_leader
        self.now = now
        self.status = Status(enabled=True, source=primary, kind="tokens" if replicate_tokens else "policies")
        #: Bumped after every round that changed something (tests and waiters read it).
        self.rounds = 0

    async def run(self) -> None:
        """Forever: one round whenever the primary's ACL index moves (bounded waits), with a
        growing pause after failures.  Idle while this server does not lead."""
        delay = RETRY_MIN
        while True:
            if not self.is_leader():
                self.status.running = False
                await asyncio.sleep(1.0)
                continue
            self.status.running = True
            try:
                await self.round(block=True)
                delay = RETRY_MIN
            except MusterError as err:
                self.status.last_error = rfc3339(self.now())
                self.status.last_error_message = err.message
                log.warning("ACL replication from %s failed: %s", self.primary, err.message)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def round(self, block: bool = False) -> None:
        """Bring the local policies, roles (and global tokens) to the primary's state."""
        tok = self.token()
        query = f"index={self.status.index}&wait={BLOCK_WAIT}" if block and self.status.index else ""
        idx, stubs = await _get_json(self.remote, "/v1/acl/policies", query, tok, BLOCK_TIMEOUT)
        t = self.tables()
        want = {str(s["ID"]): s for s in stubs}
        gone = [pid for pid in t.policies if pid not in want and pid != GLOBAL_MANAGEMENT_ID]
        changed: list[ACLPolicy] = []
        for pid, stub in want.items():
            cur = t.policies.get(pid)
            if cur is None or cur.Hash != stub.get("Hash") or cur.Name != stub.get("Name"):
                _, full = await _get_json(self.remote, f"/v1/acl/policy/{pid}", "", tok, LOOKUP_TIMEOUT)
                changed.append(_policy(full))
        if gone:
            await self.apply(ACLPolicyDeleteCommand(ids=gone))
        if changed:
            await self.apply(ACLPolicySetCommand(policies=changed))
        ridx, roles = await _get_json(self.remote, "/v1/acl/roles", "", tok, LOOKUP_TIMEOUT)
        t = self.tables()
        rwant = {str(r["ID"]): r for r in roles}
        rgone = [rid for rid in t.roles if rid not in rwant]
        rchanged = [_role(r) for rid, r in rwant.items() if (cur := t.roles.get(rid)) is None or cur.Hash != r.get("Hash") or cur.Name != r.get("Name")]
        if rgone:
            await self.apply(ACLRoleDeleteCommand(ids=rgone))
        if rchanged:
            await self.apply(ACLRoleSetCommand(roles=rchanged))
        tidx = 0
        if self.replicate_tokens:
            tidx, toks = await _get_json(self.remote, "/v1/acl/tokens", "", tok, LOOKUP_TIMEOUT)
            t = self.tables()
            remote_global = {str(x["AccessorID"]): x for x in toks if not x.get("Local")}
            if any(x.get("SecretID") == "<hidden>" for x in remote_global.values()):
                raise MusterError("the replication token lacks acl:write, which token replication needs")
            tgone = [acc for acc, cur in t.tokens.items() if not cur.Local and acc not in remote_global]
            tchanged = [
                token_from_json(x)
                for acc, x in remote_global.items()
                if (cur := t.tokens.get(acc)) is None or cur.Hash != x.get("Hash") or cur.ExpirationTime != x.get("ExpirationTime", "")
            ]
            if tgone:
                await self.apply(ACLTokenDeleteCommand(accessors=tgone))
            if tchanged:
                await self.apply(ACLTokenSetCommand(tokens=tchanged))
        self.status.index, self.status.role_index, self.status.token_index = idx, ridx, tidx
        self.status.last_success = rfc3339(self.now())
        self.rounds += 1


@dataclass
class _Entry:
    token: ACLToken | None
    fetched: float


class RemoteTokens:
    """Tokens read from the primary, cached per secret, and the ``down_policy`` decision.

    ``prepare(secret)`` runs before a request is served (it may wait for the primary);
    ``token(secret)`` and ``down(secret)`` are the resolver's synchronous view of the result."""

    def __init__(
        self,
        remote: Remote,
        ttl: float,
        down_policy: str,
        default_policy: str,
        now: Callable[[], float],
        changed: Callable[[], None],
        local_secret: Callable[[str], bool],
    ) -> None:
        self.remote = remote
        self.ttl = ttl
        self.down_policy = down_policy
        self.default_policy = "deny" if default_policy == "deny" else "allow"
        self.now = now
        self.changed = changed
        self.local_secret = local_secret
        self._cache: dict[str, _Entry] = {}
        self._down: set[str] = set()
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    def token(self, secret: str) -> ACLToken | None:
        e = self._cache.get(secret)
        return e.token if e is not None else None

    def down(self, secret: str) -> Authorizer | None:
        """The authorizer ``down_policy`` gives a token the primary could not confirm (None:
        not in that state)."""
        if secret not in self._down:
            return None
        if self.down_policy == "allow":
            return Authorizer(None, "allow", "")
        if self.down_policy == "deny":
            return Authorizer(None, "deny", "")
        return Authorizer(None, self.default_policy, "")

    async def prepare(self, secret: str) -> None:
        if not secret or secret == "anonymous" or self.local_secret(secret):
            return
        e = self._cache.get(secret)
        if e is not None and self.now() - e.fetched <= self.ttl:
            return
        if e is not None and self.down_policy == "async-cache":
            if secret not in self._refreshing:
                task = asyncio.create_task(self._refresh(secret))
                self._refreshing[secret] = task
                task.add_done_callback(lambda _t: self._refreshing.pop(secret, None))
            return
        await self._refresh(secret)

    async def _refresh(self, secret: str) -> None:
        try:
            status, _ctype, _headers, body = await self.remote("GET", "/v1/acl/token/self", "", secret, LOOKUP_TIMEOUT)
        except MusterError as err:
            self._unreachable(secret, err.message)
            return
        if status >= 500:
            self._unreachable(secret, f"{status} {body.decode('utf-8', 'replace').strip()}")
            return
        tok: ACLToken | None = None
        if status == 200:
            try:
                tok = token_from_json(json.loads(body))
            except (ValueError, TypeError, KeyError, msgspec.ValidationError):
                tok = None
            if tok is not None and tok.Local:
                tok = None  # a token local to the primary datacenter is not valid here
        self._cache[secret] = _Entry(tok, self.now())
        self._down.discard(secret)
        self.changed()

    def _unreachable(self, secret: str, why: str) -> None:
        e = self._cache.get(secret)
        log.warning("ACL: cannot resolve a token with the primary datacenter (%s); down_policy=%s", why, self.down_policy)
        if e is not None and self.down_policy in ("extend-cache", "async-cache"):
            e.fetched = self.now()  # keep using the cached token, as if just read (Consul's extension)
            return
        if e is not None:
            del self._cache[secret]
        self._down.add(secret)
        self.changed()
