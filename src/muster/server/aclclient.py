"""The server's side of token resolution for client agents: the ``acl_resolve`` RPC.

A client agent holds no ACL tables; its cache (``acl/clientcache.py``) asks a server of its
datacenter for a token and what the token links.  One call stands for Consul's ``ACL.TokenRead``
(by secret), ``ACL.PolicyResolve`` and ``ACL.RoleResolve``, which Consul's clients send with
``AllowStale``: any server answers from its own replica, without a round trip to the leader
(like ``catalog_mirror``, ``server/remote.py``), so resolution keeps working during an election.

Request: ``{"secret", "links", "policies", "roles"}``.  Answer: ``{"token", "policies",
"roles"}`` - the token whose secret was presented (None when there is no live one: unknown,
deleted or expired), then, with ``links``, every role the token links and every policy the token
or one of those roles links; without it only the ``policies`` and ``roles`` asked for.  A
deleted policy or role is simply absent.

What is refused (a client learns nothing it could not learn through the HTTP API with the same
secret, as ``/v1/acl/token/self`` and Consul's resolve RPCs allow):

* a token is only ever looked up by its own secret, never by accessor, and never listed;
* policies and roles are only answered for a token that links them (directly, or a policy
  through one of the token's roles): asking for any other is "Permission denied" (403), as
  Consul's ``PolicyResolve``/``RoleResolve`` answer;
* a malformed or oversized request is a 400; with ACLs disabled on this server the answer is
  Consul's "ACL support disabled" (401), which the client treats as a server failure.

In a secondary datacenter the server may itself resolve a token through the primary
(``server/aclreplication.py``); when the primary cannot be reached the call fails (503), so the
client's own ``down_policy`` decides rather than a guess made here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ..acl.model import ACLToken
from ..errors import BadRequest, MusterError, PermissionDenied
from .acl import ACLService

__all__ = ["ACLResolveEndpoint", "MAX_IDS", "MAX_SECRET"]

#: Policy or role IDs one request may name at most.
MAX_IDS = 1024
#: Longest secret accepted (Consul's are UUIDs; "anonymous" and agent-set secrets are short).
MAX_SECRET = 512


def _ids(raw: Any, what: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, (list, tuple)) or len(raw) > MAX_IDS or not all(isinstance(x, str) for x in raw):
        raise BadRequest(f"acl_resolve: {what} must be a list of at most {MAX_IDS} IDs")
    return list(raw)


class ACLResolveEndpoint:
    """Serves ``acl_resolve`` from this server's ACL tables (module doc)."""

    def __init__(self, acl: ACLService) -> None:
        self.acl = acl

    def handlers(self) -> dict[str, Callable[[Any], Any]]:
        return {"acl_resolve": self.rpc_acl_resolve}

    async def rpc_acl_resolve(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise BadRequest("acl_resolve: malformed request")
        secret = payload.get("secret")
        if not isinstance(secret, str) or not secret or len(secret) > MAX_SECRET:
            raise BadRequest("acl_resolve: a token secret is required")
        policies = _ids(payload.get("policies"), "policies")
        roles = _ids(payload.get("roles"), "roles")
        links = bool(payload.get("links"))
        acl = self.acl
        if not acl.enabled:
            raise MusterError("ACL support disabled", 401)
        await acl.prepare(secret)
        resolver = acl.resolver
        remote = resolver.remote
        if remote is not None and remote.down(secret) is not None:
            raise MusterError("the primary datacenter could not resolve the token", 503)
        tok = resolver.token(secret)
        if tok is None:
            return {"token": None, "policies": [], "roles": []}
        return self.answer(tok, policies, roles, links)

    def answer(self, tok: ACLToken, policies: list[str], roles: list[str], links: bool) -> dict[str, Any]:
        tables = self.acl.resolver.tables
        role_rows = {link.ID: tables.acl_role_get(link.ID) for link in tok.Roles if link.ID}
        linked_policies = {link.ID for link in tok.Policies if link.ID}
        for role in role_rows.values():
            if role is not None:
                linked_policies.update(link.ID for link in role.Policies if link.ID)
        if not set(roles) <= role_rows.keys() or not set(policies) <= linked_policies:
            raise PermissionDenied("Permission denied")
        if links:
            roles, policies = sorted(role_rows), sorted(linked_policies)
        out_roles = [msgspec.to_builtins(r) for rid in roles if (r := role_rows.get(rid)) is not None]
        out_policies = [msgspec.to_builtins(p) for pid in policies if (p := tables.acl_policy_get(pid)) is not None]
        return {"token": msgspec.to_builtins(tok), "policies": out_policies, "roles": out_roles}
