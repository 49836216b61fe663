"""Config entries: decoding and validation as Consul's ``structs.DecodeConfigEntry`` + ``Normalize``
+ ``Validate`` do, for every kind clients send.

Decoding.  ``Kind`` (or ``kind``) selects the kind; top-level keys are matched the way Consul's
decoder does (case-insensitive, snake_case accepted) and renamed to the Go field names; a
key the kind does not have is an error (mapstructure's ``ErrorUnused``).  Values below the top
level are kept as sent: they are opaque to the registry except where a rule below reads
them (keys there are looked up case-insensitively, ``field``).

Normalisation: ``Protocol`` (service-defaults, ingress listeners) is lower-cased, ``Meta``
defaults to absent.  Validation: the rules of each kind's ``Validate`` that a registry can
check, with Consul's texts.  Errors raise ``ConfigEntryError`` (the HTTP layer maps decode
errors to 400 ``Request decoding failed: ...`` and validation errors to the RPC's 500).
"""

from __future__ import annotations

import copy
from typing import Any

from ..goparse import invalid_keys

SERVICE_DEFAULTS = "service-defaults"
PROXY_DEFAULTS = "proxy-defaults"
SERVICE_ROUTER = "service-router"
SERVICE_SPLITTER = "service-splitter"
SERVICE_RESOLVER = "service-resolver"
INGRESS_GATEWAY = "ingress-gateway"
TERMINATING_GATEWAY = "terminating-gateway"
EXPORTED_SERVICES = "exported-services"
MESH = "mesh"
SERVICE_INTENTIONS = "service-intentions"

_COMMON = ("Kind", "Name", "Namespace", "Partition", "Meta")

#: Kind -> its top-level fields (Go names).
FIELDS: dict[str, tuple[str, ...]] = {
    SERVICE_DEFAULTS: _COMMON + (
        "Protocol", "Mode", "TransparentProxy", "MutualTLSMode", "MeshGateway", "Expose", "ExternalSNI",
        "UpstreamConfig", "Destination", "MaxInboundConnections", "LocalConnectTimeoutMs",
        "LocalRequestTimeoutMs", "BalanceInboundConnections", "RateLimits", "EnvoyExtensions",
    ),
    PROXY_DEFAULTS: _COMMON + (
        "Mode", "TransparentProxy", "MutualTLSMode", "Config", "MeshGateway", "Expose", "AccessLogs",
        "EnvoyExtensions", "FailoverPolicy", "PrioritizeByLocality",
    ),
    SERVICE_ROUTER: _COMMON + ("Routes",),
    SERVICE_SPLITTER: _COMMON + ("Splits",),
    SERVICE_RESOLVER: _COMMON + (
        "DefaultSubset", "Subsets", "Redirect", "Failover", "ConnectTimeout", "RequestTimeout",
        "LoadBalancer", "PrioritizeByLocality",
    ),
    INGRESS_GATEWAY: _COMMON + ("TLS", "Listeners", "Defaults"),
    TERMINATING_GATEWAY: _COMMON + ("Services",),
    EXPORTED_SERVICES: _COMMON + ("Services",),
    MESH: _COMMON + ("TransparentProxy", "AllowEnablingPermissiveMutualTLS", "TLS", "HTTP", "Peering"),
    SERVICE_INTENTIONS: _COMMON + ("Sources", "JWT"),
}  # fmt: skip
KINDS = tuple(FIELDS)
PROXY_DEFAULTS_NAME = "global"
MESH_NAME = "mesh"
INGRESS_PROTOCOLS = ("tcp", "http", "http2", "grpc")
INTENTION_ACTIONS = ("allow", "deny")


class ConfigEntryError(Exception):
    """``decode``: the body cannot be an entry (400); otherwise the entry is invalid (500)."""

    def __init__(self, message: str, decode: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.decode = decode


def _fold(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def field(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` matched as Consul's decoder matches keys (case, ``_``/``-`` ignored)."""
    if not isinstance(obj, dict):
        return default
    want = _fold(name)
    for k, v in obj.items():
        if _fold(str(k)) == want:
            return v
    return default


def kind_of(raw: Any) -> str:
    if not isinstance(raw, dict):
        raise ConfigEntryError("Request decoding failed: body must be a JSON object", decode=True)
    kind = field(raw, "Kind")
    if not isinstance(kind, str) or not kind:
        raise ConfigEntryError("Payload does not contain a kind/Kind key at the top level", decode=True)
    return kind


def decode(raw: Any) -> dict[str, Any]:
    """The entry with canonical top-level keys, normalised and validated."""
    kind = kind_of(raw)
    if kind not in FIELDS:
        raise ConfigEntryError(f"invalid config entry kind: {kind}", decode=True)
    names = FIELDS[kind]
    table = {_fold(n): n for n in names}
    entry: dict[str, Any] = {}
    unused: list[str] = []
    for k, v in raw.items():
        canon = table.get(_fold(str(k)))
        if canon is None:
            unused.append(str(k))
            continue
        entry[canon] = copy.deepcopy(v)
    if unused:
        raise ConfigEntryError(invalid_keys(unused), decode=True)
    entry["Kind"] = kind
    name = entry.get("Name", "")
    if not isinstance(name, str):
        raise ConfigEntryError("1 error(s) decoding:\n\n* 'Name' expected type 'string'", decode=True)
    entry["Name"] = name
    for key in ("Namespace", "Partition"):
        entry.pop(key, None)  # Enterprise only: Consul CE ignores them
    if not entry.get("Meta"):
        entry.pop("Meta", None)
    _normalize(entry)
    _validate(entry)
    return entry


def _normalize(entry: dict[str, Any]) -> None:
    kind = entry["Kind"]
    if kind == SERVICE_DEFAULTS and isinstance(entry.get("Protocol"), str):
        entry["Protocol"] = entry["Protocol"].lower()
    if kind == INGRESS_GATEWAY:
        for listener in entry.get("Listeners") or []:
            if isinstance(listener, dict):
                for k in list(listener):
                    if _fold(k) == "protocol" and isinstance(listener[k], str):
                        listener[k] = listener[k].lower() or "tcp"
                if field(listener, "Protocol") is None:
                    listener["Protocol"] = "tcp"


def _validate(entry: dict[str, Any]) -> None:
    kind, name = entry["Kind"], entry["Name"]
    if kind == PROXY_DEFAULTS and name != PROXY_DEFAULTS_NAME:
        raise ConfigEntryError(f'invalid name ("{name}"), only "{PROXY_DEFAULTS_NAME}" is supported')
    if kind == MESH and name not in ("", MESH_NAME):
        raise ConfigEntryError(f'invalid name ("{name}"), only "{MESH_NAME}" is supported')
    if kind == MESH:
        entry["Name"] = MESH_NAME
    elif not name:
        raise ConfigEntryError("Name is required")
    meta = entry.get("Meta")
    if meta is not None and not isinstance(meta, dict):
        raise ConfigEntryError("1 error(s) decoding:\n\n* 'Meta' expected a map", decode=True)
    if kind == SERVICE_SPLITTER:
        _validate_splitter(entry)
    elif kind == SERVICE_ROUTER:
        _list_of_objects(entry, "Routes")
    elif kind == SERVICE_RESOLVER:
        _validate_resolver(entry)
    elif kind == INGRESS_GATEWAY:
        _validate_ingress(entry)
    elif kind in (TERMINATING_GATEWAY, EXPORTED_SERVICES):
        for i, svc in enumerate(_list_of_objects(entry, "Services")):
            if not field(svc, "Name"):
                raise ConfigEntryError(f"Service {i} must have a Name" if kind == EXPORTED_SERVICES
                                       else "Service name cannot be blank.")  # fmt: skip
    elif kind == SERVICE_INTENTIONS:
        _validate_intentions(entry)


def _list_of_objects(entry: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = entry.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigEntryError(f"1 error(s) decoding:\n\n* '{key}': source data must be an array of objects", decode=True)
    return value


def _validate_splitter(entry: dict[str, Any]) -> None:
    splits = _list_of_objects(entry, "Splits")
    if not splits:
        raise ConfigEntryError("no splits configured")
    total = 0
    seen: set[tuple[str, str]] = set()
    for split in splits:
        weight = field(split, "Weight", 0)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool):
            raise ConfigEntryError("1 error(s) decoding:\n\n* 'Splits[0].Weight' expected type 'float32'", decode=True)
        total += int(round(float(weight) * 100))
        dest = (str(field(split, "Service") or entry["Name"]), str(field(split, "ServiceSubset") or ""))
        if dest in seen:
            shown = dest[0] if not dest[1] else f"{dest[1]}.{dest[0]}"
            raise ConfigEntryError(f"split destination occurs more than once: {shown}")
        seen.add(dest)
    if total != 10000:
        raise ConfigEntryError(f"the sum of all split weights must be 100, not {total / 100:f}")


def _validate_resolver(entry: dict[str, Any]) -> None:
    subsets = entry.get("Subsets") or {}
    if not isinstance(subsets, dict):
        raise ConfigEntryError("1 error(s) decoding:\n\n* 'Subsets' expected a map", decode=True)
    default_subset = entry.get("DefaultSubset") or ""
    if default_subset and default_subset not in subsets:
        raise ConfigEntryError(f'DefaultSubset "{default_subset}" is not a valid subset')
    redirect = entry.get("Redirect")
    if redirect and (subsets or default_subset):
        raise ConfigEntryError("Redirect and Subsets cannot both be set")
    failover = entry.get("Failover") or {}
    if isinstance(failover, dict):
        for subset in failover:
            if subset != "*" and subset not in subsets:
                raise ConfigEntryError(f'Bad Failover["{subset}"]: not a valid subset')


def _validate_ingress(entry: dict[str, Any]) -> None:
    ports: set[int] = set()
    for listener in _list_of_objects(entry, "Listeners"):
        proto = str(field(listener, "Protocol") or "tcp")
        if proto not in INGRESS_PROTOCOLS:
            raise ConfigEntryError(
                f"protocol must be 'tcp', 'http', 'grpc', 'http2'. '{proto}' is an unsupported protocol."
            )
        port = field(listener, "Port", 0)
        if port in ports:
            raise ConfigEntryError(f"port {port} declared on two listeners")
        ports.add(port)
        services = field(listener, "Services") or []
        if proto == "tcp" and len(services) > 1:
            raise ConfigEntryError(f"multiple services per listener are only supported for protocol = 'http' (listener on port {port})")
        for svc in services:
            if not field(svc, "Name"):
                raise ConfigEntryError("Service name cannot be blank")


def _validate_intentions(entry: dict[str, Any]) -> None:
    seen: set[str] = set()
    for i, src in enumerate(_list_of_objects(entry, "Sources")):
        name = field(src, "Name")
        if not name:
            raise ConfigEntryError(f"Sources[{i}].Name is required")
        peer = str(field(src, "Peer") or "")
        key = f"{peer}/{name}"
        if key in seen:
            raise ConfigEntryError(f'Sources[{i}] defines "{name}" more than once')
        seen.add(key)
        action = field(src, "Action")
        perms = field(src, "Permissions")
        if action and perms:
            raise ConfigEntryError(f"Sources[{i}].Action must be omitted if Permissions are specified")
        if not perms and action not in INTENTION_ACTIONS:
            raise ConfigEntryError(f'Sources[{i}].Action must be set to "allow" or "deny"')

