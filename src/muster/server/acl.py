"""The ACL endpoint's server side: validate a request, build the row, propose the command.

Every write is validated here, against the local copy of the replicated tables, *before*
anything is proposed (a refused write changes nothing anywhere); the tables re-check what could
race (name and secret uniqueness) when the command is applied.  Texts follow Consul's
``agent/consul/acl_endpoint.go`` and ``auth/token_writer.go``; see docs/compat/acl.md.

Leader duties (``initialize``): start the expired-token reaper (once per server; it acts only
while this server leads), make sure the ``global-management`` policy and the anonymous
token exist, and create the configured initial management token, through the bootstrap
command while bootstrap is still possible (so that a later ``/v1/acl/bootstrap`` answers 403),
as Consul's ``initializeACLs`` does.  Idempotent, run on every leadership gain.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Iterable
from typing import Any

import msgspec

from ..acl.authorizer import Authorizer
from ..acl.clientcache import ClientACLCache, Fetch
from ..acl.model import (
    ANONYMOUS_ACCESSOR,
    GLOBAL_MANAGEMENT_ID,
    RESERVED_PREFIX,
    TEMPLATES,
    ACLPolicy,
    ACLRole,
    ACLToken,
    Link,
    NodeIdentity,
    ServiceIdentity,
    TemplatedPolicy,
    TemplateError,
    anonymous_token,
    builtin_management_policy,
    content_hash,
    render_template,
    rfc3339,
    synthetic_policy,
    template_variables,
)
from ..acl.resolver import ACLNotFound, Resolver
from ..acl.rules import RulesError, parse_rules, translate_legacy
from ..durations import format_duration, parse_body_duration, parse_duration
from ..errors import BadRequest, MusterError, NotFound, PermissionDenied
from ..state.acl import ACLTable
from ..structs import (
    ACLAuthMethodDeleteCommand,
    ACLAuthMethodSetCommand,
    ACLBindingRuleDeleteCommand,
    ACLBindingRuleSetCommand,
    ACLBootstrapCommand,
    ACLPolicyDeleteCommand,
    ACLPolicySetCommand,
    ACLRoleDeleteCommand,
    ACLRoleSetCommand,
    ACLTokenDeleteCommand,
    ACLTokenSetCommand,
)
from .aclreplication import Remote, RemoteTokens, Replicator
from .authmethods import TYPES as AUTH_METHOD_TYPES
from .authmethods import ConfigError, Validators, bind, check_binding_rule, validate_config

log = logging.getLogger("muster.acl")

BOOTSTRAP_RESET_FILE = "acl-bootstrap-reset"
TOKENS_FILE = "acl-tokens.json"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_POLICY_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,128}$")
_ROLE_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,256}$")
_IDENTITY_NAME = re.compile(r"^[a-z0-9]([a-z0-9\-_]*[a-z0-9])?$")
BIND_TYPES = ("service", "node", "role", "templated-policy", "policy")
MIN_TTL = 60.0
MAX_TTL = 24 * 3600.0
#: Consul's ``aclTokenReapingRateLimit`` (one pass a second) and ``aclBatchDeleteSize``.
REAP_INTERVAL = 1.0
REAP_BATCH = 4096

#: ``PUT /v1/agent/token/<type>``: accepted names (legacy on the right) -> canonical.
AGENT_TOKEN_TYPES = {
    "default": "default",
    "acl_token": "default",
    "agent": "agent",
    "acl_agent_token": "agent",
    "agent_recovery": "agent_recovery",
    "agent_master": "agent_recovery",
    "acl_agent_master_token": "agent_recovery",
    "replication": "replication",
    "acl_replication_token": "replication",
    "config_file_service_registration": "config_file_service_registration",
    "dns": "dns",
}


def is_uuid(s: str) -> bool:
    return bool(_UUID.match(s))


def _uuid_lookup_error(what: str, s: str) -> MusterError:
    """Consul's index error for a malformed ID: a 500, never a 404 (clients map 404 to None)."""
    return MusterError(f"failed acl {what} lookup: index error: UUID must be 36 characters")


class ACLService:
    """ACL operations of one agent.  ``server`` proposes commands (``await server.apply``)."""

    def __init__(
        self,
        server: Any,
        acl_config: Any,
        datacenter: str,
        data_dir: str | None,
        initial_management_description: str = "Initial Management Token",
        primary_datacenter: str = "",
        client_fetch: Fetch | None = None,
    ) -> None:
        self.server = server
        self.store = server.store
        self.enabled = bool(acl_config.enabled)
        self.config = acl_config
        self.datacenter = datacenter
        self.primary_datacenter = primary_datacenter or datacenter
        self.data_dir = data_dir
        self.initial_management_description = initial_management_description
        tokens = acl_config.tokens
        self.agent_tokens: dict[str, str] = {
            "default": tokens.default,
            "agent": tokens.agent,
            "agent_recovery": tokens.agent_recovery,
            "replication": tokens.replication,
            "config_file_service_registration": tokens.config_file_service_registration,
            "dns": tokens.dns,
        }
        #: Moves whenever an agent token changes (answers cached per token, such as DNS, follow it).
        self.token_generation = 0
        self._reaper: asyncio.Task[None] | None = None
        #: A secondary datacenter replicates from, and resolves unknown tokens with, the primary.
        self.secondary = self.enabled and self.primary_datacenter != datacenter
        self.replicator: Replicator | None = None
        self.remote_tokens: RemoteTokens | None = None
        self._replicating: asyncio.Task[None] | None = None
        if self.enabled and acl_config.enable_token_persistence:
            self._load_persisted_tokens()
        self.validators = Validators(lambda: self.resolver.now())
        #: A stateless client agent's tokens, policies and roles, read from its servers
        #: (``acl/clientcache.py``); None on servers and -dev agents, which hold the tables.
        self.client_cache: ClientACLCache | None = None
        if self.enabled and client_fetch is not None:
            self.client_cache = ClientACLCache(
                client_fetch,
                token_ttl=float(acl_config.token_ttl),
                policy_ttl=float(acl_config.policy_ttl),
                role_ttl=float(acl_config.role_ttl),
                down_policy=str(acl_config.down_policy),
                default_policy=str(acl_config.default_policy),
                now=server.clock.monotonic,
                local=lambda s: s == self.agent_tokens["agent_recovery"],
            )
        self.resolver = Resolver(
            self.client_cache if self.client_cache is not None else _LiveTables(self.store),
            enabled=self.enabled,
            default_policy=acl_config.default_policy,
            datacenter=datacenter,
            now=server.clock.wall,
            default_token=self.agent_tokens["default"],
            agent_recovery_token=self.agent_tokens["agent_recovery"],
        )
        if self.client_cache is not None:
            self.resolver.remote = self.client_cache

    # ------------------------------------------------------------------ helpers

    @property
    def tables(self) -> ACLTable:
        """The current ACL table (a snapshot restore swaps in a new one)."""
        return self.store.tables.acl

    def now(self) -> float:
        return float(self.server.clock.wall())

    def uuid(self) -> str:
        return str(self.server.rng.uuid())

    def authorize(self, secret: str) -> Authorizer:
        return self.resolver.resolve(secret)

    def generation(self) -> int:
        """Changes whenever an authorization could change: an ACL write, a restore, a new
        agent token."""
        return hash((self.resolver.tables.acl_table_index(), self.token_generation))

    def dns_authorizer(self) -> Authorizer:
        """DNS acts with the ``dns`` token, else the default token, else anonymous.  On a
        client DNS cannot wait for a server: it uses what the cache holds while a due token
        is read in the background (until the first answer the token is unknown: DNS shows
        nothing)."""
        secret = self.agent_tokens["dns"] or self.agent_tokens["default"]
        if self.client_cache is not None:
            self.client_cache.refresh_soon(self.resolver.effective_secret(secret))
        return self.resolver.resolve(secret)

    async def _apply(self, cmd: Any) -> Any:
        """Propose ``cmd``; on a follower also wait until the local tables hold the write, so
        the answer (rendered from them) and this server's next check see it."""
        res = await self.server.apply(cmd)
        if not self.server.is_leader():
            await self.server.check_read("consistent")
        return res

    # ------------------------------------------------------------------ leader duties

    def attach_remote(self, remote: Remote) -> None:
        """Give a secondary datacenter its way to the primary (``Federation.http_call``).  A
        client agent needs none: its servers resolve its tokens, the primary's included."""
        if not self.secondary or self.client_cache is not None:
            return

        async def primary(method: str, path: str, query: str, token: str, timeout: float) -> Any:
            return await remote(method, path, query, token, timeout)

        self.replicator = Replicator(
            self.primary_datacenter,
            primary,
            lambda: self.agent_tokens["replication"],
            bool(self.config.enable_token_replication),
            self._apply,
            lambda: self.tables,
            self.server.is_leader,
            self.now,
        )
        if not self.config.enable_token_replication:
            self.remote_tokens = RemoteTokens(
                primary,
                float(self.config.token_ttl),
                str(self.config.down_policy),
                str(self.config.default_policy),
                lambda: self.resolver.now(),
                self.resolver.forget,
                lambda s: s == self.agent_tokens["agent_recovery"] or self.tables.acl_token_by_secret(s) is not None,
            )
            self.resolver.remote = self.remote_tokens

    @property
    def needs_prepare(self) -> bool:
        """Whether a request's token must be read from elsewhere before it is served."""
        return self.remote_tokens is not None or self.client_cache is not None

    async def prepare(self, secret: str) -> None:
        """Before serving a request: read its token from the servers (a client agent) or from
        the primary (a secondary datacenter) if needed."""
        if self.client_cache is not None:
            await self.client_cache.prepare(self.resolver.effective_secret(secret))
            return
        if self.remote_tokens is not None:
            await self.remote_tokens.prepare(secret or self.agent_tokens["default"])

    def replication_status(self) -> dict[str, Any] | None:
        return self.replicator.status.render() if self.replicator is not None else None

    async def initialize(self) -> None:
        """Leader: builtin policy, anonymous token, initial management token (idempotent); in a
        secondary datacenter, replication instead of the tokens (they are the primary's)."""
        if not self.enabled:
            return
        if self._reaper is None or self._reaper.done():
            self._reaper = self.server.spawn(self._reap_loop(), "acl-token-reaper")
        if self.secondary:
            if self.replicator is not None and (self._replicating is None or self._replicating.done()):
                self._replicating = self.server.spawn(self.replicator.run(), "acl-replication")
            return
        t = self.tables
        cur = t.policies.get(GLOBAL_MANAGEMENT_ID)
        want = builtin_management_policy()
        if cur is None or cur.Rules != want.Rules:
            if cur is not None:  # keep a user's rename
                want = msgspec.structs.replace(want, Name=cur.Name)
            await self._apply(ACLPolicySetCommand(policies=[want]))
        if ANONYMOUS_ACCESSOR not in t.tokens:
            anon = msgspec.structs.replace(anonymous_token(), CreateTime=rfc3339(self.now()))
            await self._apply(ACLTokenSetCommand(tokens=[anon]))
        secret = self.config.tokens.initial_management
        if secret and t.acl_token_by_secret(secret) is None:
            tok = ACLToken(
                AccessorID=self.uuid(),
                SecretID=secret,
                Description=self.initial_management_description,
                Policies=[Link(GLOBAL_MANAGEMENT_ID)],
                CreateTime=rfc3339(self.now()),
                Type="management",
            )
            tok.Hash = content_hash(tok, "CreateTime")
            if t.bootstrap_index == 0:
                await self._apply(ACLBootstrapCommand(token=tok))
            else:
                await self._apply(ACLTokenSetCommand(tokens=[tok]))
            log.info("ACL: created the initial management token")

    async def reap_expired(self) -> int:
        """Leader: delete, through Raft, the tokens whose ExpirationTime has passed (at most
        ``REAP_BATCH`` per call); returns how many.  Resolution refuses an expired token at once
        whether or not it was reaped yet; this only removes the rows."""
        if not self.enabled or not self.server.is_leader():
            return 0
        due = self.tables.expired(self.resolver.now(), REAP_BATCH)
        if not due:
            return 0
        await self._apply(ACLTokenDeleteCommand(accessors=due))
        log.info("ACL: reaped %d expired token(s)", len(due))
        return len(due)

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            try:
                await self.reap_expired()
            except MusterError as err:
                log.warning("ACL: expired token reaping failed: %s", err)

    # ------------------------------------------------------------------ agent tokens

    def _load_persisted_tokens(self) -> None:
        if not self.data_dir:
            return
        path = os.path.join(self.data_dir, TOKENS_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            log.warning("ACL: ignoring unreadable %s: %s", path, err)
            return
        if isinstance(data, dict):
            for k, v in data.items():
                canon = AGENT_TOKEN_TYPES.get(k)
                if canon is not None and isinstance(v, str) and v:
                    self.agent_tokens[canon] = v

    def set_agent_token(self, kind: str, secret: str) -> None:
        canon = AGENT_TOKEN_TYPES.get(kind)
        if canon is None:
            raise NotFound(f'Token "{kind}" is unknown')
        self.agent_tokens[canon] = secret
        self.resolver.default_token = self.agent_tokens["default"]
        self.resolver.agent_recovery_token = self.agent_tokens["agent_recovery"]
        self.resolver.forget()
        self.token_generation += 1
        if self.config.enable_token_persistence and self.data_dir:
            path = os.path.join(self.data_dir, TOKENS_FILE)
            tmp = path + ".tmp"
            os.makedirs(self.data_dir, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({k: v for k, v in self.agent_tokens.items() if v}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)

    # ------------------------------------------------------------------ rendering

    def _links(self, links: Iterable[Link], policies: bool) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for link in links:
            row = self.tables.policies.get(link.ID) if policies else self.tables.roles.get(link.ID)
            if row is not None:
                out.append({"ID": row.ID, "Name": row.Name})
        return out

    def render_token(self, tok: ACLToken, authz: Authorizer | None, stub: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "AccessorID": tok.AccessorID,
            "SecretID": tok.SecretID if authz is None or authz.management else "<hidden>",
            "Description": tok.Description,
        }
        pols = self._links(tok.Policies, True)
        if pols:
            d["Policies"] = pols
        roles = self._links(tok.Roles, False)
        if roles:
            d["Roles"] = roles
        if tok.ServiceIdentities:
            d["ServiceIdentities"] = msgspec.to_builtins(tok.ServiceIdentities)
        if tok.NodeIdentities:
            d["NodeIdentities"] = msgspec.to_builtins(tok.NodeIdentities)
        if tok.TemplatedPolicies:
            d["TemplatedPolicies"] = msgspec.to_builtins(tok.TemplatedPolicies)
        d["Local"] = tok.Local
        if tok.AuthMethod:
            d["AuthMethod"] = tok.AuthMethod
        if tok.ExpirationTime:
            d["ExpirationTime"] = tok.ExpirationTime
        d["CreateTime"] = tok.CreateTime or "0001-01-01T00:00:00Z"
        d["Hash"] = tok.Hash
        if stub:
            d["Legacy"] = False
        d["CreateIndex"] = tok.CreateIndex
        d["ModifyIndex"] = tok.ModifyIndex
        return d

    @staticmethod
    def render_policy(p: ACLPolicy, stub: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"ID": p.ID, "Name": p.Name, "Description": p.Description}
        if not stub:
            d["Rules"] = p.Rules
        d["Datacenters"] = p.Datacenters or None
        d["Hash"] = p.Hash
        d["CreateIndex"] = p.CreateIndex
        d["ModifyIndex"] = p.ModifyIndex
        return d

    def render_role(self, r: ACLRole) -> dict[str, Any]:
        d: dict[str, Any] = {"ID": r.ID, "Name": r.Name, "Description": r.Description}
        pols = self._links(r.Policies, True)
        if pols:
            d["Policies"] = pols
        if r.ServiceIdentities:
            d["ServiceIdentities"] = msgspec.to_builtins(r.ServiceIdentities)
        if r.NodeIdentities:
            d["NodeIdentities"] = msgspec.to_builtins(r.NodeIdentities)
        if r.TemplatedPolicies:
            d["TemplatedPolicies"] = msgspec.to_builtins(r.TemplatedPolicies)
        d["Hash"] = r.Hash
        d["CreateIndex"] = r.CreateIndex
        d["ModifyIndex"] = r.ModifyIndex
        return d

    @staticmethod
    def render_legacy(tok: ACLToken) -> dict[str, Any]:
        return {
            "ID": tok.SecretID,
            "Name": tok.Description,
            "Type": tok.Type,
            "Rules": tok.Rules,
            "CreateIndex": tok.CreateIndex,
            "ModifyIndex": tok.ModifyIndex,
        }

    # ------------------------------------------------------------------ bootstrap

    async def bootstrap(self, body: dict[str, Any]) -> ACLToken:
        """Consul's ``ACL.BootstrapTokens``.  Only the primary datacenter bootstraps: the HTTP
        handler asks its own datacenter, and a secondary answers ``ACL support disabled`` (500;
        its management tokens are the primary's, through replication)."""
        if self.secondary:
            raise MusterError("ACL support disabled")
        reset = 0
        # Consul joins its data dir and the file name; a -dev agent has no data dir, so the file
        # is read from the agent's working directory (python-consul2's bootstrap test writes it there).
        path = os.path.join(self.data_dir or "", BOOTSTRAP_RESET_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                raw = f.read().strip()
            reset = int(raw)
        except FileNotFoundError:
            reset = 0
        except (OSError, ValueError):
            log.warning("ACL: ignoring unreadable %s", path)
        t = self.tables
        if t.bootstrap_index and reset == 0:
            raise PermissionDenied(f"Permission denied: ACL bootstrap no longer allowed (reset index: {t.bootstrap_index})")
        if t.bootstrap_index and reset != t.bootstrap_index:
            raise MusterError(f"Invalid bootstrap reset index (specified {reset}, reset index: {t.bootstrap_index})")
        secret = str(body.get("BootstrapSecret") or "")
        if secret:
            if not is_uuid(secret):
                raise BadRequest("Invalid bootstrap secret: must be a UUID")
            if t.acl_token_by_secret(secret) is not None:
                raise MusterError("Invalid bootstrap secret: already in use")
        tok = ACLToken(
            AccessorID=self.uuid(),
            SecretID=secret or self.uuid(),
            Description="Bootstrap Token (Global Management)",
            Policies=[Link(GLOBAL_MANAGEMENT_ID)],
            CreateTime=rfc3339(self.now()),
        )
        tok.Hash = content_hash(tok, "CreateTime")
        out = await self._apply(ACLBootstrapCommand(token=tok, reset_index=reset))
        if reset and self.data_dir:
            try:
                os.remove(os.path.join(self.data_dir, BOOTSTRAP_RESET_FILE))
            except OSError:
                pass
        return out if isinstance(out, ACLToken) else self.tables.tokens.get(tok.AccessorID, tok)

    # ------------------------------------------------------------------ tokens

    def _resolve_policy_links(self, raw: Any) -> list[Link]:
        out: list[Link] = []
        seen: set[str] = set()
        for item in _objects(raw, "Policies"):
            pid = str(_ci(item, "ID") or "")
            name = str(_ci(item, "Name") or "")
            if pid:
                if pid not in self.tables.policies:
                    raise MusterError(f'No such ACL policy with ID "{pid}"')
            elif name:
                p = self.tables.policy_by_name(name)
                if p is None:
                    raise MusterError(f'No such ACL policy with name "{name}"')
                pid = p.ID
            else:
                raise MusterError("Policy link is missing both an ID and a name")
            if pid not in seen:
                seen.add(pid)
                out.append(Link(pid))
        return out

    def _resolve_role_links(self, raw: Any) -> list[Link]:
        out: list[Link] = []
        seen: set[str] = set()
        for item in _objects(raw, "Roles"):
            rid = str(_ci(item, "ID") or "")
            name = str(_ci(item, "Name") or "")
            if rid:
                if rid not in self.tables.roles:
                    raise MusterError(f'No such ACL role with ID "{rid}"')
            elif name:
                r = self.tables.role_by_name(name)
                if r is None:
                    raise MusterError(f'No such ACL role with name "{name}"')
                rid = r.ID
            else:
                raise MusterError("Role link is missing both an ID and a name")
            if rid not in seen:
                seen.add(rid)
                out.append(Link(rid))
        return out

    @staticmethod
    def _service_identities(raw: Any, local: bool, what: str = "token") -> list[ServiceIdentity]:
        out: dict[str, ServiceIdentity] = {}
        for item in _objects(raw, "ServiceIdentities"):
            name = str(_ci(item, "ServiceName") or "")
            dcs = _ci(item, "Datacenters") or []
            if not name:
                raise MusterError(f"Service identity is missing the service name field on this {what}")
            if not _IDENTITY_NAME.match(name) or len(name) > 256:
                raise MusterError(
                    f'Service identity "{name}" has an invalid name. Only lowercase alphanumeric characters, '
                    "'-' and '_' are allowed"
                )
            if not isinstance(dcs, list) or not all(isinstance(x, str) for x in dcs):
                raise BadRequest("Request decode failed: ServiceIdentities.Datacenters must be a list of strings")
            if local and dcs:
                raise MusterError(f'Service identity "{name}" cannot specify a list of datacenters on a local token')
            prev = out.get(name)
            merged = sorted(set(dcs) | set(prev.Datacenters)) if prev is not None and dcs and prev.Datacenters else (
                [] if prev is not None and (not dcs or not prev.Datacenters) else list(dcs)
            )
            out[name] = ServiceIdentity(name, merged)
        return list(out.values())

    @staticmethod
    def _node_identities(raw: Any, what: str = "token") -> list[NodeIdentity]:
        out: dict[tuple[str, str], NodeIdentity] = {}
        for item in _objects(raw, "NodeIdentities"):
            name = str(_ci(item, "NodeName") or "")
            dc = str(_ci(item, "Datacenter") or "")
            if not name:
                raise MusterError(f"Node identity is missing the node name field on this {what}")
            if not dc:
                raise MusterError(f"Node identity is missing the datacenter field on this {what}")
            if not _IDENTITY_NAME.match(name) or len(name) > 256:
                raise MusterError(
                    'Node identity has an invalid name. Only lowercase alphanumeric characters, '
                    "'-' and '_' are allowed"
                )
            out[(name, dc)] = NodeIdentity(name, dc)
        return list(out.values())

    @staticmethod
    def _templated(raw: Any) -> list[TemplatedPolicy]:
        out: list[TemplatedPolicy] = []
        for item in _objects(raw, "TemplatedPolicies"):
            name = str(_ci(item, "TemplateName") or "")
            try:
                variables = template_variables(_ci(item, "TemplateVariables"))
                render_template(name, variables)
            except TemplateError as err:
                raise MusterError(str(err)) from None
            dcs = _ci(item, "Datacenters") or []
            out.append(TemplatedPolicy(name, variables or None, list(dcs) if isinstance(dcs, list) else []))
        return out

    def _check_user_id(self, value: str, field: str) -> None:
        if not is_uuid(value):
            raise MusterError(f"Invalid Token: {field} must be a valid UUID")
        if value.lower().startswith(RESERVED_PREFIX):
            raise MusterError(f'Invalid Token: UUIDs with the prefix "{RESERVED_PREFIX}" are reserved')

    def _expiration(self, body: dict[str, Any]) -> str:
        ttl_raw = body.get("ExpirationTTL")
        exp_raw = body.get("ExpirationTime")
        if ttl_raw not in (None, "", 0) and exp_raw not in (None, ""):
            raise MusterError("Expiration TTL and Expiration Time cannot both be set")
        if ttl_raw not in (None, "", 0):
            if isinstance(ttl_raw, (int, float)) and not isinstance(ttl_raw, bool):
                ttl = float(ttl_raw) / 1e9
            else:
                try:
                    ttl = parse_duration(str(ttl_raw))
                except ValueError as err:
                    raise BadRequest(f"Token decoding failed: {err}") from None
            if ttl < 0:
                raise MusterError("Token Expiration TTL must be positive")
            if ttl < MIN_TTL or ttl > MAX_TTL:
                raise MusterError(f"Token Expiration TTL '{ttl_raw}' should be between 1m0s and 24h0m0s")
            return rfc3339(self.now() + ttl)
        if exp_raw not in (None, ""):
            from ..acl.model import parse_rfc3339

            try:
                when = parse_rfc3339(str(exp_raw))
            except ValueError as err:
                raise BadRequest(f"Token decoding failed: {err}") from None
            if when < self.now():
                raise MusterError("ExpirationTime cannot be in the past")
            if when - self.now() < MIN_TTL or when - self.now() > MAX_TTL:
                raise MusterError("ExpirationTime should be between 1m0s and 24h0m0s in the future")
            return rfc3339(when)
        return ""

    async def token_create(self, body: dict[str, Any]) -> ACLToken:
        t = self.tables
        acc = str(body.get("AccessorID") or "")
        sec = str(body.get("SecretID") or "")
        if acc:
            self._check_user_id(acc, "AccessorID")
            if acc in t.tokens:
                raise MusterError("Invalid Token: AccessorID is already in use")
        else:
            acc = self._fresh_accessor()
        if sec:
            self._check_user_id(sec, "SecretID")
            if t.acl_token_by_secret(sec) is not None:
                raise MusterError("Invalid Token: SecretID is already in use")
        else:
            sec = self.uuid()
        local = bool(body.get("Local") or False)
        tok = ACLToken(
            AccessorID=acc,
            SecretID=sec,
            Description=str(body.get("Description") or ""),
            Policies=self._resolve_policy_links(body.get("Policies")),
            Roles=self._resolve_role_links(body.get("Roles")),
            ServiceIdentities=self._service_identities(body.get("ServiceIdentities"), local),
            NodeIdentities=self._node_identities(body.get("NodeIdentities")),
            TemplatedPolicies=self._templated(body.get("TemplatedPolicies")),
            Local=local,
            ExpirationTime=self._expiration(body),
            CreateTime=rfc3339(self.now()),
        )
        tok.Hash = content_hash(tok, "CreateTime")
        await self._apply(ACLTokenSetCommand(tokens=[tok]))
        return t.tokens.get(acc, tok)

    def _fresh_accessor(self) -> str:
        while True:
            acc = self.uuid()
            if acc not in self.tables.tokens:
                return acc

    def token_is_local(self, accessor: str) -> bool:
        """Whether ``accessor`` names a token local to this datacenter (its writes stay here)."""
        tok = self.tables.tokens.get(accessor)
        return tok is not None and tok.Local

    def token_get(self, accessor: str) -> ACLToken:
        if not is_uuid(accessor):
            raise _uuid_lookup_error("token", accessor)
        tok = self.tables.tokens.get(accessor)
        if tok is None or self.resolver.expired(tok):
            raise ACLNotFound()
        return tok

    async def token_update(self, accessor: str, body: dict[str, Any]) -> ACLToken:
        body_acc = str(body.get("AccessorID") or "")
        if body_acc and body_acc != accessor:
            raise BadRequest("Token Accessor ID in URL and payload do not match")
        if not is_uuid(accessor):
            raise MusterError("AccessorID is not a valid UUID")
        cur = self.tables.tokens.get(accessor)
        if cur is None or self.resolver.expired(cur):
            raise MusterError(f'Cannot find token "{accessor}"')
        sec = str(body.get("SecretID") or "")
        if sec and sec != cur.SecretID:
            raise MusterError("Changing a token's SecretID is not permitted")
        if "Local" in body and body["Local"] is not None and bool(body["Local"]) != cur.Local:
            raise MusterError(f"Cannot toggle local mode of {accessor}")
        if body.get("AuthMethod") and body.get("AuthMethod") != cur.AuthMethod:
            raise MusterError(f"Cannot change AuthMethod of {accessor}")
        exp = body.get("ExpirationTime")
        if body.get("ExpirationTTL") not in (None, "", 0):
            raise MusterError(f"Cannot change expiration time of {accessor}")
        if exp not in (None, "") and str(exp) != cur.ExpirationTime:
            from ..acl.model import parse_rfc3339

            try:
                same = bool(cur.ExpirationTime) and parse_rfc3339(str(exp)) == parse_rfc3339(cur.ExpirationTime)
            except ValueError:
                same = False
            if not same:
                raise MusterError(f"Cannot change expiration time of {accessor}")
        tok = msgspec.structs.replace(
            cur,
            Description=str(body.get("Description") or ""),
            Policies=self._resolve_policy_links(body.get("Policies")),
            Roles=self._resolve_role_links(body.get("Roles")),
            ServiceIdentities=self._service_identities(body.get("ServiceIdentities"), cur.Local),
            NodeIdentities=self._node_identities(body.get("NodeIdentities")),
            TemplatedPolicies=self._templated(body.get("TemplatedPolicies")),
            Type=cur.Type if cur.Type == "management" else "",
            Rules="" if cur.Type != "client" else cur.Rules,
        )
        if tok.Type == "client" or cur.Type == "client":
            tok = msgspec.structs.replace(tok, Type="", Rules="")
        tok.Hash = content_hash(tok, "CreateTime")
        await self._apply(ACLTokenSetCommand(tokens=[tok]))
        return self.tables.tokens.get(accessor, tok)

    async def token_clone(self, accessor: str, body: dict[str, Any]) -> ACLToken:
        if not is_uuid(accessor):
            raise _uuid_lookup_error("token", accessor)
        cur = self.tables.tokens.get(accessor)
        if cur is None or self.resolver.expired(cur):
            raise ACLNotFound()
        if cur.AuthMethod:
            raise MusterError("Cannot clone a token created from an auth method")
        desc = str(body.get("Description") or "") or cur.Description
        tok = msgspec.structs.replace(
            cur,
            AccessorID=self._fresh_accessor(),
            SecretID=self.uuid(),
            Description=desc,
            Policies=[p for p in cur.Policies if p.ID in self.tables.policies],
            Roles=[r for r in cur.Roles if r.ID in self.tables.roles],
            CreateTime=rfc3339(self.now()),
            CreateIndex=0,
            ModifyIndex=0,
        )
        tok.Hash = content_hash(tok, "CreateTime")
        await self._apply(ACLTokenSetCommand(tokens=[tok]))
        return self.tables.tokens.get(tok.AccessorID, tok)

    async def token_delete(self, accessor: str, requester_secret: str) -> None:
        if accessor == ANONYMOUS_ACCESSOR:
            raise MusterError("Delete operation not permitted on the anonymous token")
        if not is_uuid(accessor):
            raise _uuid_lookup_error("token", accessor)
        cur = self.tables.tokens.get(accessor)
        if cur is None:
            return
        if requester_secret and cur.SecretID == requester_secret:
            raise MusterError("Deletion of the request's authorization token is not permitted")
        await self._apply(ACLTokenDeleteCommand(accessors=[accessor]))

    def token_list(self, policy: str = "", role: str = "", authmethod: str = "", servicename: str = "") -> list[ACLToken]:
        out: list[ACLToken] = []
        for tok in self.tables.tokens.values():
            if self.resolver.expired(tok):
                continue
            if policy and not any(p.ID == policy for p in tok.Policies):
                continue
            if role and not any(r.ID == role for r in tok.Roles):
                continue
            if authmethod and tok.AuthMethod != authmethod:
                continue
            if servicename and not any(s.ServiceName == servicename for s in tok.ServiceIdentities):
                continue
            out.append(tok)
        out.sort(key=lambda x: x.AccessorID)
        return out

    # ------------------------------------------------------------------ policies

    def _validate_policy_body(self, body: dict[str, Any]) -> tuple[str, str, str, list[str]]:
        name = str(body.get("Name") or "")
        if not name:
            raise MusterError("Invalid Policy: no Name is set")
        if not _POLICY_NAME.match(name):
            raise MusterError("Invalid Policy: invalid Name. Only alphanumeric characters, '-' and '_' are allowed")
        rules = body.get("Rules") or ""
        if not isinstance(rules, str):
            raise BadRequest("Policy decoding failed: json: cannot unmarshal into Go struct field ACLPolicy.Rules of type string")
        try:
            parse_rules(rules)
        except RulesError as err:
            raise MusterError(err.message) from None
        dcs = body.get("Datacenters") or []
        if not isinstance(dcs, list) or not all(isinstance(x, str) for x in dcs):
            raise BadRequest("Policy decoding failed: Datacenters must be a list of strings")
        return name, str(body.get("Description") or ""), rules, list(dcs)

    async def policy_create(self, body: dict[str, Any]) -> ACLPolicy:
        if body.get("ID"):
            raise BadRequest("Cannot specify the ID when creating a new policy")
        name, desc, rules, dcs = self._validate_policy_body(body)
        if self.tables.policy_by_name(name) is not None:
            raise MusterError(f'Invalid Policy: A Policy with Name "{name}" already exists')
        pid = self.uuid()
        while pid in self.tables.policies:
            pid = self.uuid()
        p = ACLPolicy(ID=pid, Name=name, Description=desc, Rules=rules, Datacenters=dcs)
        p.Hash = content_hash(p)
        await self._apply(ACLPolicySetCommand(policies=[p]))
        return self.tables.policies.get(pid, p)

    async def policy_update(self, pid: str, body: dict[str, Any]) -> ACLPolicy:
        if body.get("ID") and body["ID"] != pid:
            raise BadRequest("Policy ID in URL and payload do not match")
        if not is_uuid(pid):
            raise _uuid_lookup_error("policy", pid)
        cur = self.tables.policies.get(pid)
        if cur is None:
            raise MusterError(f"Cannot find policy {pid}")
        name, desc, rules, dcs = self._validate_policy_body(body)
        other = self.tables.policy_by_name(name)
        if other is not None and other.ID != pid:
            raise MusterError(f'Invalid Policy: A Policy with Name "{name}" already exists')
        if pid == GLOBAL_MANAGEMENT_ID:
            if rules != cur.Rules:
                raise MusterError("Changing the Rules for the builtin global-management policy is not permitted")
            if dcs:
                raise MusterError("Changing the Datacenters of the builtin global-management policy is not permitted")
        p = msgspec.structs.replace(cur, Name=name, Description=desc, Rules=rules, Datacenters=dcs)
        p.Hash = content_hash(p)
        await self._apply(ACLPolicySetCommand(policies=[p]))
        return self.tables.policies.get(pid, p)

    def policy_get(self, pid: str) -> ACLPolicy:
        if not is_uuid(pid):
            raise _uuid_lookup_error("policy", pid)
        p = self.tables.policies.get(pid)
        if p is None:
            raise NotFound("Requested policy does not exist: ACL not found")
        return p

    def policy_get_by_name(self, name: str) -> ACLPolicy:
        p = self.tables.policy_by_name(name)
        if p is None:
            raise NotFound("Requested policy does not exist: ACL not found")
        return p

    async def policy_delete(self, pid: str) -> None:
        if pid == GLOBAL_MANAGEMENT_ID:
            raise MusterError("Delete operation not permitted on the builtin global-management policy")
        if not is_uuid(pid):
            raise _uuid_lookup_error("policy", pid)
        if pid not in self.tables.policies:
            return
        await self._apply(ACLPolicyDeleteCommand(ids=[pid]))

    def policy_list(self) -> list[ACLPolicy]:
        return sorted(self.tables.policies.values(), key=lambda p: p.ID)

    # ------------------------------------------------------------------ roles

    def _role_row(self, rid: str, body: dict[str, Any], cur: ACLRole | None) -> ACLRole:
        name = str(body.get("Name") or "")
        if not name:
            raise MusterError("Invalid Role: no Name is set")
        if not _ROLE_NAME.match(name):
            raise MusterError("Invalid Role: invalid Name. Only alphanumeric characters, '-' and '_' are allowed")
        other = self.tables.role_by_name(name)
        if other is not None and other.ID != rid:
            raise MusterError(f'Invalid Role: A Role with Name "{name}" already exists')
        r = ACLRole(
            ID=rid,
            Name=name,
            Description=str(body.get("Description") or ""),
            Policies=self._resolve_policy_links(body.get("Policies")),
            ServiceIdentities=self._service_identities(body.get("ServiceIdentities"), False, "role"),
            NodeIdentities=self._node_identities(body.get("NodeIdentities"), "role"),
            TemplatedPolicies=self._templated(body.get("TemplatedPolicies")),
            CreateIndex=cur.CreateIndex if cur is not None else 0,
        )
        r.Hash = content_hash(r)
        return r

    async def role_create(self, body: dict[str, Any]) -> ACLRole:
        if body.get("ID"):
            raise BadRequest("Cannot specify the ID when creating a new role")
        rid = self.uuid()
        while rid in self.tables.roles:
            rid = self.uuid()
        r = self._role_row(rid, body, None)
        await self._apply(ACLRoleSetCommand(roles=[r]))
        return self.tables.roles.get(rid, r)

    async def role_update(self, rid: str, body: dict[str, Any]) -> ACLRole:
        if body.get("ID") and body["ID"] != rid:
            raise BadRequest("Role ID in URL and payload do not match")
        if not is_uuid(rid):
            raise _uuid_lookup_error("role", rid)
        cur = self.tables.roles.get(rid)
        if cur is None:
            raise MusterError(f"Cannot find role {rid}")
        r = self._role_row(rid, body, cur)
        await self._apply(ACLRoleSetCommand(roles=[r]))
        return self.tables.roles.get(rid, r)

    def role_get(self, rid: str) -> ACLRole:
        if not is_uuid(rid):
            raise _uuid_lookup_error("role", rid)
        r = self.tables.roles.get(rid)
        if r is None:
            raise NotFound("Requested role does not exist: ACL not found")
        return r

    def role_get_by_name(self, name: str) -> ACLRole:
        r = self.tables.role_by_name(name)
        if r is None:
            raise NotFound("Requested role does not exist: ACL not found")
        return r

    async def role_delete(self, rid: str) -> None:
        if not is_uuid(rid):
            raise _uuid_lookup_error("role", rid)
        if rid in self.tables.roles:
            await self._apply(ACLRoleDeleteCommand(ids=[rid]))

    def role_list(self, policy: str = "") -> list[ACLRole]:
        roles = [r for r in self.tables.roles.values() if not policy or any(p.ID == policy for p in r.Policies)]
        return sorted(roles, key=lambda r: r.ID)

    # ------------------------------------------------------------------ auth methods, binding rules

    async def auth_method_set(self, name_in_url: str, body: dict[str, Any], create: bool) -> dict[str, Any]:
        name = str(body.get("Name") or name_in_url or "")
        if name_in_url and body.get("Name") and body["Name"] != name_in_url:
            raise BadRequest("Auth Method Name in URL and payload do not match")
        if not name:
            raise MusterError("Invalid Auth Method: no Name is set")
        if not _ROLE_NAME.match(name):
            raise MusterError("Invalid Auth Method: invalid Name. Only alphanumeric characters, '-' and '_' are allowed")
        cur = self.tables.auth_methods.get(name)
        typ = str(body.get("Type") or (cur or {}).get("Type") or "")
        if not typ:
            raise MusterError("Invalid Auth Method: Type is required")
        if typ not in AUTH_METHOD_TYPES:
            raise MusterError(f'Invalid Auth Method: Type should be one of: [{" ".join(AUTH_METHOD_TYPES)}]')
        if cur is not None and cur.get("Type") != typ:
            raise MusterError(f"the Type field is immutable: {cur.get('Type')} != {typ}")
        if not create and cur is None:
            raise MusterError(f'Cannot find auth method "{name}"')
        locality = str(body.get("TokenLocality") or "")
        if locality not in ("", "local", "global"):
            raise MusterError(f"Invalid Auth Method: TokenLocality should be one of 'local' or 'global', got {locality!r}")
        config = body.get("Config")
        if config is not None and not isinstance(config, dict):
            raise BadRequest("Auth method decoding failed: Config must be an object")
        try:
            validate_config(typ, config or {})
        except ConfigError as err:
            raise MusterError(f"Invalid Auth Method: {err.message}") from None
        max_ttl = ""
        if body.get("MaxTokenTTL") not in (None, "", 0):
            try:
                ttl = parse_body_duration(body["MaxTokenTTL"])
            except ValueError as err:
                raise BadRequest(f"Auth method decoding failed: {err}") from None
            if ttl > MAX_TTL:
                raise MusterError(f"MaxTokenTTL {format_duration(ttl)} cannot be more than {format_duration(MAX_TTL)}")
            if ttl < MIN_TTL:
                raise MusterError(f"MaxTokenTTL {format_duration(ttl)} cannot be less than {format_duration(MIN_TTL)}")
            max_ttl = format_duration(ttl)
        row: dict[str, Any] = {
            "Name": name,
            "Type": typ,
            "DisplayName": str(body.get("DisplayName") or ""),
            "Description": str(body.get("Description") or ""),
            "MaxTokenTTL": max_ttl,
            "TokenLocality": locality,
            "Config": config or {},
        }
        if not row["DisplayName"]:
            del row["DisplayName"]
        if not row["MaxTokenTTL"]:
            del row["MaxTokenTTL"]
        if not row["TokenLocality"]:
            del row["TokenLocality"]
        await self._apply(ACLAuthMethodSetCommand(methods=[row]))
        return self.tables.auth_methods.get(name, row)

    def auth_method_get(self, name: str) -> dict[str, Any]:
        m = self.tables.auth_methods.get(name)
        if m is None:
            raise NotFound("Requested auth method does not exist: ACL not found")
        return m

    async def auth_method_delete(self, name: str) -> None:
        if name in self.tables.auth_methods:
            await self._apply(ACLAuthMethodDeleteCommand(names=[name]))

    async def binding_rule_set(self, rid_in_url: str, body: dict[str, Any]) -> dict[str, Any]:
        rid = rid_in_url
        if rid_in_url and body.get("ID") and body["ID"] != rid_in_url:
            raise BadRequest("BindingRule ID in URL and payload do not match")
        if not rid_in_url and body.get("ID"):
            raise BadRequest("Cannot specify the ID when creating a new binding rule")
        cur = self.tables.binding_rules.get(rid) if rid else None
        if rid and cur is None:
            if not is_uuid(rid):
                raise _uuid_lookup_error("binding rule", rid)
            raise MusterError(f"Cannot find binding rule {rid}")
        method = str(body.get("AuthMethod") or (cur or {}).get("AuthMethod") or "")
        if not method:
            raise MusterError("Invalid Binding Rule: no AuthMethod is set")
        if method not in self.tables.auth_methods:
            raise MusterError(f'Invalid Binding Rule: unknown AuthMethod "{method}"')
        if cur is not None and cur.get("AuthMethod") != method:
            raise MusterError("Binding Rule: AuthMethod is immutable")
        bind_type = str(body.get("BindType") or "")
        if bind_type not in BIND_TYPES:
            raise MusterError(f"Invalid Binding Rule: unknown BindType {bind_type!r}")
        bind_name = str(body.get("BindName") or "")
        if not bind_name and bind_type != "templated-policy":
            raise MusterError("Invalid Binding Rule: no BindName is set")
        row: dict[str, Any] = {
            "ID": rid or self.uuid(),
            "Description": str(body.get("Description") or ""),
            "AuthMethod": method,
            "Selector": str(body.get("Selector") or ""),
            "BindType": bind_type,
            "BindName": bind_name,
        }
        if body.get("BindVars"):
            row["BindVars"] = body["BindVars"]
        check_binding_rule(row, self.tables.auth_methods[method])
        await self._apply(ACLBindingRuleSetCommand(rules=[row]))
        return self.tables.binding_rules.get(row["ID"], row)

    def binding_rule_get(self, rid: str) -> dict[str, Any]:
        if not is_uuid(rid):
            raise _uuid_lookup_error("binding rule", rid)
        r = self.tables.binding_rules.get(rid)
        if r is None:
            raise NotFound("Requested binding rule does not exist: ACL not found")
        return r

    async def binding_rule_delete(self, rid: str) -> None:
        if rid in self.tables.binding_rules:
            await self._apply(ACLBindingRuleDeleteCommand(ids=[rid]))

    # ------------------------------------------------------------------ login / logout

    async def login(self, body: dict[str, Any]) -> ACLToken:
        """Validate the bearer token with the named method, apply its binding rules and create
        a token carrying the result (Consul's ``ACL.Login``).  403 ``ACL not found: auth method
        ... not found`` for an unknown method, 403 ``Permission denied`` when no rule grants
        anything, the validator's text (500) for a refused bearer token."""
        name = str(body.get("AuthMethod") or "")
        method = self.tables.auth_methods.get(name)
        if method is None:
            raise MusterError(f'ACL not found: auth method "{name}" not found', 403)
        meta = body.get("Meta") or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise BadRequest("Failed to decode request body: Meta must be a map of strings")
        identity = await self.validators.validate(method, str(body.get("BearerToken") or ""))
        t = self.tables
        rules = sorted((r for r in t.binding_rules.values() if r.get("AuthMethod") == name), key=lambda r: r["ID"])
        bindings = bind(
            rules,
            identity,
            self.datacenter,
            lambda n: r.ID if (r := t.role_by_name(n)) is not None else None,
            lambda n: p.ID if (p := t.policy_by_name(n)) is not None else None,
        )
        if bindings.none():
            raise PermissionDenied("Permission denied")
        local = method.get("TokenLocality") != "global"
        primary = self.primary_datacenter or self.datacenter
        if not local and self.datacenter != primary:
            raise MusterError("creating global tokens via auth methods is only permitted in the primary datacenter")
        description = "token created via login"
        if meta:
            description += ": " + json.dumps(meta, sort_keys=True, separators=(",", ":"))
        expiration = ""
        if method.get("MaxTokenTTL"):
            expiration = rfc3339(self.now() + parse_duration(str(method["MaxTokenTTL"])))
        tok = ACLToken(
            AccessorID=self._fresh_accessor(),
            SecretID=self.uuid(),
            Description=description,
            Policies=bindings.policies,
            Roles=bindings.roles,
            ServiceIdentities=bindings.service_identities,
            NodeIdentities=bindings.node_identities,
            TemplatedPolicies=bindings.templated,
            Local=local,
            AuthMethod=name,
            ExpirationTime=expiration,
            CreateTime=rfc3339(self.now()),
        )
        tok.Hash = content_hash(tok, "CreateTime")
        await self._apply(ACLTokenSetCommand(tokens=[tok]))
        return self.tables.tokens.get(tok.AccessorID, tok)

    async def logout(self, secret: str) -> None:
        """Delete the login token ``secret`` (Consul's ``ACL.Logout``): 401 without a token,
        403 ``ACL not found`` for an unknown one, 403 for a token not made by a login."""
        if not secret:
            raise MusterError("Supplied token does not exist", 401)
        tok = self.resolver.token(secret)
        if tok is None:
            raise ACLNotFound()
        if not tok.AuthMethod:
            raise PermissionDenied("Permission denied: token wasn't created via login")
        await self._apply(ACLTokenDeleteCommand(accessors=[tok.AccessorID]))

    # ------------------------------------------------------------------ templated policies

    @staticmethod
    def templated_list() -> dict[str, Any]:
        return {name: msgspec.to_builtins(t) for name, t in sorted(TEMPLATES.items())}

    @staticmethod
    def templated_get(name: str) -> dict[str, Any]:
        t = TEMPLATES.get(name)
        if t is None:
            raise NotFound("Requested templated policy does not exist: ACL not found")
        return dict(msgspec.to_builtins(t))

    @staticmethod
    def templated_preview(name: str, body: Any) -> dict[str, Any]:
        if name not in TEMPLATES:
            raise NotFound("Requested templated policy does not exist: ACL not found")
        try:
            rules = render_template(name, template_variables(body))
        except TemplateError as err:
            raise BadRequest(str(err)) from None
        return synthetic_policy(name, rules)

    # ------------------------------------------------------------------ legacy API

    async def legacy_set(self, body: dict[str, Any], update: bool) -> str:
        sec = str(body.get("ID") or "")
        if update and not sec:
            raise BadRequest("ACL ID must be set")
        if sec in ("allow", "deny", "manage"):
            raise PermissionDenied("Permission denied: Cannot modify root ACL")
        typ = str(body.get("Type") or "client")
        if typ not in ("client", "management"):
            raise MusterError(f'Invalid ACL Type: "{typ}"')
        rules = str(body.get("Rules") or "")
        if typ == "client":
            try:
                parse_rules(rules, legacy=True)
            except RulesError as err:
                raise MusterError(f"ACL rule compilation failed: {err.message}") from None
        cur = self.tables.acl_token_by_secret(sec) if sec else None
        if cur is not None and not cur.Type:
            raise MusterError("Cannot use legacy endpoint to modify a non-legacy token")
        tok = ACLToken(
            AccessorID=cur.AccessorID if cur is not None else self._fresh_accessor(),
            SecretID=sec or self.uuid(),
            Description=str(body.get("Name") or ""),
            Policies=[Link(GLOBAL_MANAGEMENT_ID)] if typ == "management" else [],
            Type=typ,
            Rules=rules if typ == "client" else "",
            CreateTime=cur.CreateTime if cur is not None else rfc3339(self.now()),
        )
        tok.Hash = content_hash(tok, "CreateTime")
        await self._apply(ACLTokenSetCommand(tokens=[tok]))
        return tok.SecretID

    async def legacy_destroy(self, sec: str) -> None:
        if sec == "anonymous":
            raise PermissionDenied("Permission denied: Cannot delete anonymous token")
        cur = self.tables.acl_token_by_secret(sec)
        if cur is not None:
            await self._apply(ACLTokenDeleteCommand(accessors=[cur.AccessorID]))

    def legacy_info(self, sec: str) -> list[dict[str, Any]]:
        cur = self.tables.acl_token_by_secret(sec)
        if cur is None or not cur.Type:
            return []
        return [self.render_legacy(cur)]

    async def legacy_clone(self, sec: str) -> str:
        cur = self.tables.acl_token_by_secret(sec)
        if cur is None or not cur.Type:
            raise PermissionDenied("Permission denied")
        return await self.legacy_set({"Name": cur.Description, "Type": cur.Type, "Rules": cur.Rules}, update=False)

    def legacy_list(self) -> list[dict[str, Any]]:
        toks = sorted((t for t in self.tables.tokens.values() if t.Type), key=lambda t: t.AccessorID)
        return [self.render_legacy(t) for t in toks]

    def translate_token_rules(self, accessor: str) -> str:
        tok = self.tables.tokens.get(accessor)
        if tok is None:
            tok = self.tables.acl_token_by_secret(accessor)
        if tok is None:
            raise ACLNotFound()
        if not tok.Rules:
            raise MusterError("The specified token does not have any rules set")
        return self.translate(tok.Rules)

    @staticmethod
    def translate(text: str) -> str:
        try:
            return translate_legacy(text)
        except RulesError as err:
            raise BadRequest(f"Failed to parse legacy rules: {err.message}") from None


class _LiveTables:
    """The resolver's view of whatever ACL table the store holds now."""

    __slots__ = ("_store",)

    def __init__(self, store: Any) -> None:
        self._store = store

    def acl_table_index(self) -> int:
        return self._store.tables.acl.version  # type: ignore[no-any-return]

    def acl_token_by_secret(self, secret: str) -> ACLToken | None:
        return self._store.tables.acl.acl_token_by_secret(secret)  # type: ignore[no-any-return]

    def acl_policy_get(self, policy_id: str) -> ACLPolicy | None:
        return self._store.tables.acl.policies.get(policy_id)  # type: ignore[no-any-return]

    def acl_role_get(self, role_id: str) -> ACLRole | None:
        return self._store.tables.acl.roles.get(role_id)  # type: ignore[no-any-return]


def _ci(d: dict[str, Any], name: str) -> Any:
    """``d[name]`` matched case-insensitively (Go's JSON decoding)."""
    if name in d:
        return d[name]
    low = name.lower()
    for k, v in d.items():
        if str(k).lower() == low:
            return v
    return None


def _objects(raw: Any, field: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        raise BadRequest(f"Token decoding failed: json: cannot unmarshal into Go struct field .{field}")
    return raw
