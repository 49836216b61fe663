"""The replicated ACL rows (tokens, policies, roles) and the built-ins every cluster has.

Rows are msgspec Structs whose field names are Consul's JSON names, so the FSM command, the
snapshot and the HTTP body are the same shape.  Timestamps (``CreateTime``, ``ExpirationTime``)
are RFC 3339 strings stamped by the server that proposes the write, never by the FSM.

Links from a token or role to a policy/role store only the ID; the ``Name`` shown to clients is
filled from the current row at read time, and links to deleted rows are dropped then (deleting
a policy that tokens still reference is allowed, as in Consul).

Identities expand to fixed rules (Consul's ``acltemplatedpolicy/policies``): a service identity
``web`` may write ``web`` and ``web-sidecar-proxy`` and read every service and node; a node
identity may write its node and read every service, only in its datacenter.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from typing import Any

import msgspec

from .rules import Rule

GLOBAL_MANAGEMENT_ID = "00000000-0000-0000-0000-000000000001"
GLOBAL_READ_ONLY_ID = "00000000-0000-0000-0000-000000000002"
ANONYMOUS_ACCESSOR = "00000000-0000-0000-0000-000000000002"
ANONYMOUS_SECRET = "anonymous"
RESERVED_PREFIX = "00000000-0000-0000-0000-0000000000"
REDACTED = "<hidden>"

GLOBAL_MANAGEMENT_RULES = """acl = "write"
agent_prefix "" {
  policy = "write"
}
event_prefix "" {
  policy = "write"
}
key_prefix "" {
  policy = "write"
}
keyring = "write"
node_prefix "" {
  policy = "write"
}
operator = "write"
mesh = "write"
peering = "write"
query_prefix "" {
  policy = "write"
}
service_prefix "" {
  policy = "write"
  intentions = "write"
}
session_prefix "" {
  policy = "write"
}"""

GLOBAL_READ_ONLY_RULES = GLOBAL_MANAGEMENT_RULES.replace('"write"', '"read"')


def _everything(level: str) -> list[Rule]:
    out = [Rule(r, None, False, level) for r in ("acl", "keyring", "operator", "mesh", "peering")]
    for kind in ("agent", "event", "key", "node", "query", "session"):
        out.append(Rule(kind, "", True, level))
    out.append(Rule("service", "", True, level, level))
    return out


MANAGEMENT_RULES: tuple[Rule, ...] = tuple(_everything("write"))
READ_ONLY_RULES: tuple[Rule, ...] = tuple(_everything("read"))


class Link(msgspec.Struct, omit_defaults=True):
    """A token's or role's reference to a policy or role."""

    ID: str = ""
    Name: str = ""


class ServiceIdentity(msgspec.Struct, omit_defaults=True):
    ServiceName: str
    Datacenters: list[str] = []


class NodeIdentity(msgspec.Struct):
    NodeName: str
    Datacenter: str


class TemplatedPolicy(msgspec.Struct, omit_defaults=True):
    TemplateName: str
    TemplateVariables: dict[str, str] | None = None
    Datacenters: list[str] = []


class ACLToken(msgspec.Struct, omit_defaults=True):
    AccessorID: str
    SecretID: str
    Description: str = ""
    Policies: list[Link] = []
    Roles: list[Link] = []
    ServiceIdentities: list[ServiceIdentity] = []
    NodeIdentities: list[NodeIdentity] = []
    TemplatedPolicies: list[TemplatedPolicy] = []
    Local: bool = False
    AuthMethod: str = ""
    ExpirationTime: str = ""
    CreateTime: str = ""
    Hash: str = ""
    #: Legacy tokens (``/v1/acl/create``): "client" or "management", with legacy ``Rules``.
    Type: str = ""
    Rules: str = ""
    CreateIndex: int = 0
    ModifyIndex: int = 0


class ACLPolicy(msgspec.Struct, omit_defaults=True):
    ID: str
    Name: str
    Description: str = ""
    Rules: str = ""
    Datacenters: list[str] = []
    Hash: str = ""
    CreateIndex: int = 0
    ModifyIndex: int = 0


class ACLRole(msgspec.Struct, omit_defaults=True):
    ID: str
    Name: str
    Description: str = ""
    Policies: list[Link] = []
    ServiceIdentities: list[ServiceIdentity] = []
    NodeIdentities: list[NodeIdentity] = []
    TemplatedPolicies: list[TemplatedPolicy] = []
    Hash: str = ""
    CreateIndex: int = 0
    ModifyIndex: int = 0


def content_hash(obj: msgspec.Struct, *skip: str) -> str:
    """Base64 of a BLAKE2b-256 over the row's content (not its indexes), as Consul's ``Hash``."""
    d = msgspec.to_builtins(obj)
    for k in ("Hash", "CreateIndex", "ModifyIndex", *skip):
        d.pop(k, None)
    return base64.b64encode(hashlib.blake2b(msgspec.json.encode(d, order="sorted"), digest_size=32).digest()).decode()


def builtin_management_policy() -> ACLPolicy:
    p = ACLPolicy(
        ID=GLOBAL_MANAGEMENT_ID,
        Name="global-management",
        Description="Builtin Policy that grants unlimited access",
        Rules=GLOBAL_MANAGEMENT_RULES,
    )
    p.Hash = content_hash(p)
    return p


def builtin_read_only_policy() -> ACLPolicy:
    p = ACLPolicy(
        ID=GLOBAL_READ_ONLY_ID,
        Name="builtin/global-read-only",
        Description="Builtin Policy that grants unlimited read-only access to all components",
        Rules=GLOBAL_READ_ONLY_RULES,
    )
    p.Hash = content_hash(p)
    return p


BUILTIN_POLICY_RULES: dict[str, tuple[Rule, ...]] = {
    GLOBAL_MANAGEMENT_ID: MANAGEMENT_RULES,
    GLOBAL_READ_ONLY_ID: READ_ONLY_RULES,
}


def anonymous_token() -> ACLToken:
    t = ACLToken(AccessorID=ANONYMOUS_ACCESSOR, SecretID=ANONYMOUS_SECRET, Description="Anonymous Token")
    t.Hash = content_hash(t, "CreateTime")
    return t


# ---------------------------------------------------------------------- identities


def service_identity_rules(name: str) -> list[Rule]:
    return [
        Rule("service", name, False, "write", "read"),
        Rule("service", f"{name}-sidecar-proxy", False, "write", "read"),
        Rule("service", "", True, "read", "read"),
        Rule("node", "", True, "read"),
    ]


def node_identity_rules(name: str) -> list[Rule]:
    return [Rule("node", name, False, "write"), Rule("service", "", True, "read", "read")]


_SERVICE_TEMPLATE = """service "{{.Name}}" {
  policy = "write"
}
service "{{.Name}}-sidecar-proxy" {
  policy = "write"
}
service_prefix "" {
  policy = "read"
}
node_prefix "" {
  policy = "read"
}"""

_NODE_TEMPLATE = """node "{{.Name}}" {
  policy = "write"
}
service_prefix "" {
  policy = "read"
}"""

_DNS_TEMPLATE = """node_prefix "" {
  policy = "read"
}
service_prefix "" {
  policy = "read"
}
query_prefix "" {
  policy = "read"
}"""

_NOMAD_SERVER_TEMPLATE = """acl = "write"
agent_prefix "" {
  policy = "read"
}
node_prefix "" {
  policy = "read"
}
service_prefix "" {
  policy = "write"
}"""

_NOMAD_CLIENT_TEMPLATE = """agent_prefix "" {
  policy = "read"
}
node_prefix "" {
  policy = "read"
}
service_prefix "" {
  policy = "write"
}"""

_API_GATEWAY_TEMPLATE = """mesh = "read"
node_prefix "" {
  policy = "read"
}
service_prefix "" {
  policy = "read"
}
service "{{.Name}}" {
  policy = "write"
}"""

_NAME_SCHEMA = """{
  "type": "object",
  "properties": {
    "name": { "type": "string", "$ref": "#/definitions/min-length-one" }
  },
  "required": ["name"],
  "definitions": {
    "min-length-one": {
      "type": "string",
      "minLength": 1
    }
  }
}"""


class Template(msgspec.Struct):
    TemplateName: str
    Schema: str
    Template: str
    Description: str


TEMPLATES: dict[str, Template] = {
    t.TemplateName: t
    for t in (
        Template(
            "builtin/service",
            _NAME_SCHEMA,
            _SERVICE_TEMPLATE,
            "Gives the token or role permissions to register a service and discover services in the Consul "
            "catalog. It also gives the specified service's sidecar proxy the permission to discover and "
            "route traffic to other services.",
        ),
        Template(
            "builtin/node",
            _NAME_SCHEMA,
            _NODE_TEMPLATE,
            "Gives the token or role permissions to register an agent/node into the catalog. A node is "
            "typically a consul agent but can also be a physical server, cloud instance or a container.",
        ),
        Template(
            "builtin/dns",
            "",
            _DNS_TEMPLATE,
            "Gives the token or role permissions for the Consul DNS to query services in the network.",
        ),
        Template(
            "builtin/nomad-server",
            "",
            _NOMAD_SERVER_TEMPLATE,
            "Gives the token or role permissions required for integration with a nomad server.",
        ),
        Template(
            "builtin/nomad-client",
            "",
            _NOMAD_CLIENT_TEMPLATE,
            "Gives the token or role permissions required for integration with a nomad client.",
        ),
        Template(
            "builtin/api-gateway",
            _NAME_SCHEMA,
            _API_GATEWAY_TEMPLATE,
            "Gives the token or role permissions for a Consul api gateway",
        ),
    )
}


class TemplateError(ValueError):
    pass


def template_variables(raw: Any) -> dict[str, str]:
    """Request variables (``Name`` or ``name``) as the stored, lower-case form."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise TemplateError("TemplateVariables must be an object")
    out: dict[str, str] = {}
    for k, v in raw.items():
        if str(k).lower() == "name" and isinstance(v, str):
            out["name"] = v
    return out


def render_template(name: str, variables: dict[str, str]) -> str:
    """The rules text of templated policy ``name`` with ``variables``; TemplateError if invalid."""
    tpl = TEMPLATES.get(name)
    if tpl is None:
        raise TemplateError(f'validation error for templated policy "{name}": not found')
    if tpl.Schema:
        value = variables.get("name", "")
        if not value:
            raise TemplateError(f'Failed to validate variables for templated policy "{name}": name is required')
        if not re.fullmatch(r"[a-z0-9]([a-z0-9\-_]*[a-z0-9])?", value):
            raise TemplateError(f'Failed to validate variables for templated policy "{name}": invalid name')
        return tpl.Template.replace("{{.Name}}", value)
    return tpl.Template


def fnv128a(data: bytes) -> str:
    """FNV-1a 128-bit hex digest (the synthetic policy ID of a templated policy)."""
    h = 0x6C62272E07BB014262B821756295C58D
    prime = 0x0000000001000000000000000000013B
    for b in data:
        h ^= b
        h = (h * prime) % (1 << 128)
    return f"{h:032x}"


def synthetic_policy(name: str, rules: str) -> dict[str, Any]:
    pid = fnv128a(rules.encode())
    return {
        "ID": pid,
        "Name": f"synthetic-policy-{pid}",
        "Description": f"synthetic policy generated from templated policy: {name}",
        "Rules": rules,
        "Datacenters": None,
        "Hash": None,
        "CreateIndex": 0,
        "ModifyIndex": 0,
    }


# ---------------------------------------------------------------------- time


def rfc3339(ts: float) -> str:
    """``2006-01-02T15:04:05.999999999Z07:00`` in UTC."""
    dt = datetime.fromtimestamp(ts, UTC)
    frac = f"{dt.microsecond:06d}".rstrip("0")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def parse_rfc3339(s: str) -> float:
    """Seconds since the epoch; ValueError when ``s`` is not RFC 3339."""
    t = s.strip()
    if t.endswith("Z") or t.endswith("z"):
        t = t[:-1] + "+00:00"
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?([+-]\d\d:\d\d)", t)
    if m is None:
        raise ValueError(f"invalid time {s!r}")
    frac = (m.group(2) or "")[:7]
    return datetime.fromisoformat(m.group(1) + frac + m.group(3)).timestamp()
