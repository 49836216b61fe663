"""From a request's secret to an ``Authorizer``, without a Raft round trip.

Every server holds the replicated ACL tables, so resolution is local: look the secret up, expand
its policies, roles and identities into rules, compile them.  The compiled authorizer is cached
per secret; the cache is dropped whole whenever the ACL tables' index moves (any token, policy
or role write, a snapshot restore), so a revoked token or an edited policy takes effect on the
next request on every server that has applied the change, and the hot path is one dict probe.

Expiry needs the clock, which the resolver receives injected (``now``): the tables never read it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from ..errors import MusterError
from .authorizer import MANAGE_ALL, Authorizer, PolicyRules
from .model import (
    ANONYMOUS_ACCESSOR,
    ANONYMOUS_SECRET,
    BUILTIN_POLICY_RULES,
    MANAGEMENT_RULES,
    ACLPolicy,
    ACLRole,
    ACLToken,
    Link,
    NodeIdentity,
    ServiceIdentity,
    TemplatedPolicy,
    TemplateError,
    node_identity_rules,
    parse_rfc3339,
    render_template,
    service_identity_rules,
)
from .rules import Rule, RulesError, parse_rules


class ACLNotFound(MusterError):
    """A secret that names no token (or an expired one): 403 ``ACL not found``."""

    status = 403

    def __init__(self) -> None:
        super().__init__("ACL not found")


class ACLTables(Protocol):
    """The read side of the replicated ACL tables the resolver needs."""

    def acl_table_index(self) -> int: ...

    def acl_token_by_secret(self, secret: str) -> ACLToken | None: ...

    def acl_policy_get(self, policy_id: str) -> ACLPolicy | None: ...

    def acl_role_get(self, role_id: str) -> ACLRole | None: ...


class RemoteSource(Protocol):
    """Tokens this agent does not hold but read from elsewhere (a secondary datacenter reads
    them from the primary): the token, or the authorizer ``down_policy`` gives it."""

    def token(self, secret: str) -> ACLToken | None: ...

    def down(self, secret: str) -> Authorizer | None: ...


_MAX_PARSED = 4096
_MAX_CACHED = 65536


class Resolver:
    """Resolves secrets for one agent.  ``enabled`` False answers ``MANAGE_ALL`` for everything."""

    def __init__(
        self,
        tables: ACLTables,
        *,
        enabled: bool,
        default_policy: str,
        datacenter: str,
        now: Callable[[], float],
        default_token: str = "",
        agent_recovery_token: str = "",
    ) -> None:
        self.tables = tables
        self.enabled = enabled
        self.default_policy = "deny" if default_policy == "deny" else "allow"
        self.datacenter = datacenter
        self.now = now
        self.default_token = default_token
        self.agent_recovery_token = agent_recovery_token
        self._index = -1
        self._cache: dict[str, tuple[Authorizer, float | None]] = {}
        self._parsed: dict[tuple[str, bool], list[Rule]] = {}
        #: Consulted for a secret the local tables do not know (None: such a secret is unknown).
        self.remote: RemoteSource | None = None

    # ------------------------------------------------------------------ public

    def effective_secret(self, secret: str) -> str:
        """The secret a request acts with: its own, else the agent's default, else anonymous."""
        return secret or self.default_token or ANONYMOUS_SECRET

    def resolve(self, secret: str) -> Authorizer:
        """The authorizer for ``secret`` (may be ""); ``ACLNotFound`` for an unknown secret."""
        if not self.enabled:
            return MANAGE_ALL
        if not secret:
            secret = self.default_token or ANONYMOUS_SECRET
        idx = self.tables.acl_table_index()
        if idx != self._index:
            self._cache.clear()
            self._index = idx
        hit = self._cache.get(secret)
        if hit is not None:
            expires = hit[1]
            if expires is None or self.now() < expires:
                return hit[0]
        authz, expires = self._build(secret)
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[secret] = (authz, expires)
        return authz

    def forget(self) -> None:
        """Drop every cached authorizer (the agent's default or recovery token changed)."""
        self._cache.clear()

    def token(self, secret: str) -> ACLToken | None:
        """The live token for ``secret`` (None when unknown or expired)."""
        tok = self.tables.acl_token_by_secret(secret)
        if tok is None and self.remote is not None:
            tok = self.remote.token(secret)
        if tok is None or self.expired(tok):
            return None
        return tok

    def expired(self, tok: ACLToken) -> bool:
        if not tok.ExpirationTime:
            return False
        try:
            return self.now() >= parse_rfc3339(tok.ExpirationTime)
        except ValueError:
            return False

    # ------------------------------------------------------------------ building

    def _build(self, secret: str) -> tuple[Authorizer, float | None]:
        if self.agent_recovery_token and secret == self.agent_recovery_token:
            return Authorizer(PolicyRules(MANAGEMENT_RULES), self.default_policy, ""), None
        tok = self.tables.acl_token_by_secret(secret)
        if tok is None and self.remote is not None:
            down = self.remote.down(secret)
            if down is not None:
                return down, None
            tok = self.remote.token(secret)
        if tok is None:
            if secret == ANONYMOUS_SECRET:
                # Before the leader has created the anonymous token, anonymous has no rules.
                return Authorizer(None, self.default_policy, ANONYMOUS_ACCESSOR), None
            raise ACLNotFound()
        expires: float | None = None
        if tok.ExpirationTime:
            try:
                expires = parse_rfc3339(tok.ExpirationTime)
            except ValueError:
                expires = None
            if expires is not None and self.now() >= expires:
                raise ACLNotFound()
        rules = PolicyRules(self.token_rules(tok))
        empty = not rules.trees and not rules.unnamed
        return Authorizer(None if empty else rules, self.default_policy, tok.AccessorID), expires

    def token_rules(self, tok: ACLToken) -> list[Rule]:
        """Every rule a token carries: policies, roles, identities, templated policies."""
        out: list[Rule] = []
        if tok.Type == "management":
            out.extend(MANAGEMENT_RULES)
        elif tok.Type == "client" and tok.Rules:
            out.extend(self._parse(tok.Rules, legacy=True))
        out.extend(self._policy_rules(tok.Policies))
        for link in tok.Roles:
            role = self.tables.acl_role_get(link.ID)
            if role is not None:
                out.extend(self.role_rules(role))
        out.extend(self._identity_rules(tok.ServiceIdentities, tok.NodeIdentities, tok.TemplatedPolicies))
        return out

    def role_rules(self, role: ACLRole) -> list[Rule]:
        out = self._policy_rules(role.Policies)
        out.extend(self._identity_rules(role.ServiceIdentities, role.NodeIdentities, role.TemplatedPolicies))
        return out

    def _policy_rules(self, links: Iterable[Link]) -> list[Rule]:
        out: list[Rule] = []
        for link in links:
            pol = self.tables.acl_policy_get(link.ID)
            if pol is None:
                continue
            if pol.Datacenters and self.datacenter not in pol.Datacenters:
                continue
            builtin = BUILTIN_POLICY_RULES.get(pol.ID)
            out.extend(builtin if builtin is not None else self._parse(pol.Rules, legacy=False))
        return out

    def _identity_rules(
        self,
        services: Iterable[ServiceIdentity],
        nodes: Iterable[NodeIdentity],
        templated: Iterable[TemplatedPolicy],
    ) -> list[Rule]:
        out: list[Rule] = []
        for si in services:
            if not si.Datacenters or self.datacenter in si.Datacenters:
                out.extend(service_identity_rules(si.ServiceName))
        for ni in nodes:
            if ni.Datacenter == self.datacenter:
                out.extend(node_identity_rules(ni.NodeName))
        for tp in templated:
            if tp.Datacenters and self.datacenter not in tp.Datacenters:
                continue
            try:
                text = render_template(tp.TemplateName, tp.TemplateVariables or {})
            except TemplateError:
                continue
            out.extend(self._parse(text, legacy=False))
        return out

    def _parse(self, text: str, legacy: bool) -> list[Rule]:
        key = (text, legacy)
        hit = self._parsed.get(key)
        if hit is not None:
            return hit
        try:
            rules = parse_rules(text, legacy=legacy)
        except RulesError:
            rules = []  # validated on write; a row from an older version that fails grants nothing
        if len(self._parsed) >= _MAX_PARSED:
            self._parsed.clear()
        self._parsed[key] = rules
        return rules
