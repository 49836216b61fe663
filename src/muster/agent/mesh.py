"""Service-mesh parts of a service definition: kinds, the ``Proxy`` block, ``Connect``, ``Locality``.

Decoding follows Consul's ``structs.ConnectProxyConfig``/``Upstream``/``ServiceConnect`` (Go
field names and their snake_case aliases), and the records built here are exactly what
Consul's server encodes for them, so a re-registration of the same definition compares equal
in the store:

* ``Proxy`` always carries ``Mode``, ``MeshGateway`` and ``Expose`` (Go structs without
  ``omitempty`` effect); the other fields only when set; ``TransparentProxy`` and
  ``AccessLogs`` only when not zero (Consul's custom ``MarshalJSON``).
* An upstream always carries ``DestinationType`` (``service`` by default, as the agent
  fills it in), ``DestinationName``, ``Datacenter`` and ``MeshGateway``.
* ``Connect`` keeps ``Native`` only; ``SidecarService`` is registration syntax that the agent
  turns into a second service and strips (``sidecar_definition``).

``validation_errors`` is ``NodeService.Validate``/``ValidateForAgent`` with Consul's texts;
``multierror`` renders a list of them the way hashicorp/go-multierror does, because that is
what clients receive.
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

from ..errors import BadRequest
from ..state.rows import Service
from .decode import (
    _decode_error,
    canonical_keys,
    get_bool,
    get_int,
    get_str,
    get_str_list,
    get_str_map,
)

CONNECT_PROXY = "connect-proxy"
MESH_GATEWAY = "mesh-gateway"
TERMINATING_GATEWAY = "terminating-gateway"
INGRESS_GATEWAY = "ingress-gateway"
API_GATEWAY = "api-gateway"
GATEWAY_KINDS = (MESH_GATEWAY, TERMINATING_GATEWAY, INGRESS_GATEWAY, API_GATEWAY)
SERVICE_KINDS = ("", CONNECT_PROXY, *GATEWAY_KINDS)
SIDECAR_SUFFIX = "-sidecar-proxy"
PROXY_MODES = ("", "direct", "transparent")
MESH_GATEWAY_MODES = ("", "none", "local", "remote")
EXPOSE_PROTOCOLS = ("http", "http2")

PROXY_NAMES = (
    "EnvoyExtensions", "DestinationServiceName", "DestinationServiceID", "LocalServiceAddress",
    "LocalServicePort", "LocalServiceSocketPath", "Mode", "Config", "Upstreams", "MeshGateway", "Expose",
    "TransparentProxy", "AccessLogs",
)  # fmt: skip
UPSTREAM_NAMES = (
    "DestinationType", "DestinationNamespace", "DestinationPartition", "DestinationPeer", "DestinationName",
    "Datacenter", "LocalBindAddress", "LocalBindPort", "LocalBindSocketPath", "LocalBindSocketMode", "Config",
    "MeshGateway", "CentrallyConfigured",
)  # fmt: skip
EXPOSE_PATH_NAMES = ("ListenerPort", "Path", "LocalPathPort", "Protocol", "ParsedFromCheck")
TPROXY_NAMES = ("OutboundListenerPort", "DialedDirectly")
ACCESS_LOG_NAMES = ("Enabled", "DisableListenerLogs", "Type", "Path", "JSONFormat", "TextFormat")
CONNECT_NAMES = ("Native", "SidecarService", "PeerMeta")
LOCALITY_NAMES = ("Region", "Zone")

DEFAULT_PROXY: dict[str, Any] = {"Mode": "", "MeshGateway": {}, "Expose": {}}


# --------------------------------------------------------------------------- decoding


def _obj(v: Any, field: str, go_type: str) -> Any:
    if v is not None and not isinstance(v, dict):
        raise _decode_error(field, v, go_type)
    return v


def _opaque(v: Any, field: str) -> dict[str, Any] | None:
    """An opaque ``map[string]interface{}`` (proxy/upstream ``Config``), kept verbatim."""
    if v is None:
        return None
    if not isinstance(v, dict):
        raise _decode_error(field, v, "map[string]interface {}")
    return copy.deepcopy(v)


def parse_mesh_gateway(v: Any) -> dict[str, Any]:
    d = canonical_keys(_obj(v, "MeshGateway", "structs.MeshGatewayConfig"), ("Mode",), None, "structs.MeshGatewayConfig")
    mode = get_str(d, "Mode")
    if mode not in MESH_GATEWAY_MODES:
        raise BadRequest(f'Invalid Mesh Gateway Mode: "{mode}"')
    return {"Mode": mode} if mode else {}


def parse_expose(v: Any) -> dict[str, Any]:
    d = canonical_keys(_obj(v, "Expose", "structs.ExposeConfig"), ("Checks", "Paths"), None, "structs.ExposeConfig")
    out: dict[str, Any] = {}
    if get_bool(d, "Checks"):
        out["Checks"] = True
    raw_paths = d.get("Paths")
    if raw_paths is not None:
        if not isinstance(raw_paths, list):
            raise _decode_error("Expose.Paths", raw_paths, "[]structs.ExposePath")
        paths = []
        for raw in raw_paths:
            p = canonical_keys(raw, EXPOSE_PATH_NAMES, None, "structs.ExposePath")
            path: dict[str, Any] = {}
            for key in ("ListenerPort", "Path", "LocalPathPort", "Protocol"):
                val = get_int(p, key) if key.endswith("Port") else get_str(p, key)
                if val:
                    path[key] = val
            if get_bool(p, "ParsedFromCheck"):
                path["ParsedFromCheck"] = True
            paths.append(path)
        if paths:
            out["Paths"] = paths
    return out


def parse_upstream(v: Any) -> dict[str, Any]:
    d = canonical_keys(v, UPSTREAM_NAMES, None, "structs.Upstream")
    out: dict[str, Any] = {"DestinationType": get_str(d, "DestinationType") or "service"}
    for key in ("DestinationNamespace", "DestinationPartition", "DestinationPeer"):
        if get_str(d, key):
            out[key] = get_str(d, key)
    out["DestinationName"] = get_str(d, "DestinationName")
    out["Datacenter"] = get_str(d, "Datacenter")
    for key in ("LocalBindAddress", "LocalBindPort", "LocalBindSocketPath", "LocalBindSocketMode"):
        val = get_int(d, key) if key == "LocalBindPort" else get_str(d, key)
        if val:
            out[key] = val
    config = _opaque(d.get("Config"), "Upstreams.Config")
    if config:
        out["Config"] = config
    out["MeshGateway"] = parse_mesh_gateway(d.get("MeshGateway"))
    if get_bool(d, "CentrallyConfigured"):
        out["CentrallyConfigured"] = True
    return out


def parse_proxy(v: Any) -> dict[str, Any]:
    """A ``Proxy`` block as the record Consul stores (see the module doc for omitted fields)."""
    d = canonical_keys(_obj(v, "Proxy", "structs.ConnectProxyConfig"), PROXY_NAMES, None, "structs.ConnectProxyConfig")
    out: dict[str, Any] = {}
    ext = d.get("EnvoyExtensions")
    if ext:
        if not isinstance(ext, list):
            raise _decode_error("Proxy.EnvoyExtensions", ext, "[]structs.EnvoyExtension")
        out["EnvoyExtensions"] = copy.deepcopy(ext)
    for key in ("DestinationServiceName", "DestinationServiceID", "LocalServiceAddress"):
        if get_str(d, key):
            out[key] = get_str(d, key)
    if get_int(d, "LocalServicePort"):
        out["LocalServicePort"] = get_int(d, "LocalServicePort")
    if get_str(d, "LocalServiceSocketPath"):
        out["LocalServiceSocketPath"] = get_str(d, "LocalServiceSocketPath")
    mode = get_str(d, "Mode")
    if mode not in PROXY_MODES:
        raise BadRequest(f'Invalid Proxy Mode: "{mode}"')
    out["Mode"] = mode
    config = _opaque(d.get("Config"), "Proxy.Config")
    if config:
        out["Config"] = config
    ups = d.get("Upstreams")
    if ups is not None:
        if not isinstance(ups, list):
            raise _decode_error("Proxy.Upstreams", ups, "structs.Upstreams")
        if ups:
            out["Upstreams"] = [parse_upstream(u) for u in ups]
    out["MeshGateway"] = parse_mesh_gateway(d.get("MeshGateway"))
    out["Expose"] = parse_expose(d.get("Expose"))
    tp = canonical_keys(_obj(d.get("TransparentProxy"), "TransparentProxy", "structs.TransparentProxyConfig"),
                        TPROXY_NAMES, None, "structs.TransparentProxyConfig")  # fmt: skip
    tproxy: dict[str, Any] = {}
    if get_int(tp, "OutboundListenerPort"):
        tproxy["OutboundListenerPort"] = get_int(tp, "OutboundListenerPort")
    if get_bool(tp, "DialedDirectly"):
        tproxy["DialedDirectly"] = True
    if tproxy:
        out["TransparentProxy"] = tproxy
    al = canonical_keys(_obj(d.get("AccessLogs"), "AccessLogs", "structs.AccessLogsConfig"),
                        ACCESS_LOG_NAMES, None, "structs.AccessLogsConfig")  # fmt: skip
    logs: dict[str, Any] = {}
    for key in ACCESS_LOG_NAMES:
        val = get_bool(al, key) if key in ("Enabled", "DisableListenerLogs") else get_str(al, key)
        if val:
            logs[key] = val
    if logs:
        out["AccessLogs"] = logs
    return out


def parse_locality(v: Any) -> dict[str, str] | None:
    """``Locality``: ``None`` when absent; otherwise only the non-empty parts (Go omitempty)."""
    if v is None:
        return None
    d = canonical_keys(_obj(v, "Locality", "structs.Locality"), LOCALITY_NAMES, None, "structs.Locality")
    out = {k: get_str(d, k) for k in LOCALITY_NAMES if get_str(d, k)}
    return out


def parse_connect(v: Any) -> tuple[dict[str, Any], Any]:
    """``Connect`` -> (the stored record, the raw ``SidecarService`` definition or None)."""
    d = canonical_keys(_obj(v, "Connect", "structs.ServiceConnect"), CONNECT_NAMES, None, "structs.ServiceConnect")
    record: dict[str, Any] = {"Native": True} if get_bool(d, "Native") else {}
    sidecar = d.get("SidecarService")
    if sidecar is not None and not isinstance(sidecar, dict):
        raise _decode_error("Connect.SidecarService", sidecar, "structs.ServiceDefinition")
    return record, sidecar


# --------------------------------------------------------------------------- validation


def multierror(errors: list[str]) -> str:
    """hashicorp/go-multierror's ``ListFormatFunc``: what ``err.Error()`` prints."""
    if len(errors) == 1:
        return f"1 error occurred:\n\t* {errors[0]}\n\n"
    points = "\n\t".join(f"* {e}" for e in errors)
    return f"{len(errors)} errors occurred:\n\t{points}\n\n"


def _bind_addr(u: dict[str, Any]) -> str:
    if not u.get("LocalBindPort") and not u.get("LocalBindAddress") and u.get("LocalBindSocketPath"):
        return str(u["LocalBindSocketPath"])
    addr = str(u.get("LocalBindAddress") or "127.0.0.1")
    try:
        if ipaddress.ip_address(addr).version == 6:
            addr = f"[{addr}]"
    except ValueError:
        pass
    return f"{addr}:{u.get('LocalBindPort', 0)}"


def _upstream_error(u: dict[str, Any]) -> str | None:
    """``Upstream.Validate``."""
    if u["DestinationType"] not in ("service", "prepared_query"):
        return f'unknown upstream destination type: "{u["DestinationType"]}"'
    if not u["DestinationName"]:
        return "upstream destination name cannot be empty"
    central = bool(u.get("CentrallyConfigured"))
    if u["DestinationName"] == "*" and not central:
        return "upstream destination name cannot be a wildcard"
    if u.get("DestinationPeer") and u.get("Datacenter"):
        return "upstream cannot specify both destination peer and datacenter"
    port, sock = u.get("LocalBindPort", 0), u.get("LocalBindSocketPath", "")
    if not port and not sock and not central:
        return "upstream local bind port or local socket path must be defined and nonzero"
    if port and sock and not central:
        return "only one of upstream local bind port or local socket path can be defined and nonzero"
    return None


def validation_errors(svc: dict[str, Any], *, for_agent: bool, sidecar: Any = None) -> list[str]:
    """``NodeService.Validate`` (``for_agent=False``) or ``ValidateForAgent``: the error list.

    ``sidecar`` is the raw nested ``SidecarService`` definition, if any (it is not part of
    the record)."""
    errs: list[str] = []
    kind = str(svc.get("Kind") or "")
    proxy = svc.get("Proxy") or DEFAULT_PROXY
    connect = svc.get("Connect") or {}
    port = int(svc.get("Port") or 0)
    socket = str(svc.get("SocketPath") or "")
    if not for_agent and kind == CONNECT_PROXY and not port and not socket:
        errs.append(f"Port or SocketPath must be set for a {kind}")
    if kind == CONNECT_PROXY:
        dest = str(proxy.get("DestinationServiceName") or "")
        if not dest.strip():
            errs.append("Proxy.DestinationServiceName must be non-empty for Connect proxy services")
        if dest == "*":
            errs.append("Proxy.DestinationServiceName must not be a wildcard for Connect proxy services")
        if connect.get("Native"):
            errs.append("A Proxy cannot also be Connect Native, only typical services")
        keys: set[tuple[str, ...]] = set()
        binds: set[str] = set()
        for u in proxy.get("Upstreams") or []:
            if u.get("Datacenter") and not u.get("DestinationPeer") and u.get("DestinationPartition", "default") != "default":
                errs.append("upstreams cannot target another datacenter in non default partition")
                continue
            err = _upstream_error(u)
            if err:
                errs.append(err)
                continue
            key = tuple(str(u.get(k, "")) for k in ("DestinationType", "DestinationName", "DestinationPartition",
                                                      "DestinationNamespace", "DestinationPeer", "Datacenter"))  # fmt: skip
            if key in keys:
                errs.append(
                    "upstreams cannot contain duplicates of "
                    f'[type="{key[0]}", name="{key[1]}", partition="{key[2]}", namespace="{key[3]}", '
                    f'peer="{key[4]}", datacenter="{key[5]}"]'
                )
                continue
            keys.add(key)
            addr = _bind_addr(u)
            if addr in binds and not u.get("CentrallyConfigured"):
                errs.append(
                    "upstreams cannot contain duplicates by local bind address and port or unix path; "
                    f'"{addr}" is specified twice'
                )
                continue
            binds.add(addr)
        listeners: set[int] = set()
        for path in (proxy.get("Expose") or {}).get("Paths") or []:
            if not path.get("Path"):
                errs.append("expose.paths: empty path exposed")
            lp = int(path.get("ListenerPort") or 0)
            if lp in listeners:
                errs.append("expose.paths: duplicate listener ports exposed")
            listeners.add(lp)
            if lp <= 0 or lp > 65535:
                errs.append(f"expose.paths: invalid listener port: {lp}")
            proto = str(path.get("Protocol") or "").lower()
            if proto and proto not in EXPOSE_PROTOCOLS:
                errs.append(
                    f"protocol '{proto}' not supported for path: {path.get('Path', '')}, must be in: [http http2]"
                )
    if kind in GATEWAY_KINDS:
        if not port and kind not in (INGRESS_GATEWAY, API_GATEWAY):
            errs.append(f"Port must be non-zero for a {kind}")
        if sidecar is not None:
            errs.append(f"A {kind} cannot have a sidecar service defined")
        for field_name in ("DestinationServiceName", "DestinationServiceID", "LocalServiceAddress",
                           "LocalServicePort", "LocalServiceSocketPath", "Upstreams"):  # fmt: skip
            if proxy.get(field_name):
                errs.append(f"The Proxy.{field_name} configuration is invalid for a {kind}")
    if sidecar is not None:
        nested = canonical_keys(sidecar, ("ID", "Connect"), None, "structs.ServiceDefinition")
        if get_str(nested, "ID"):
            errs.append("A SidecarService cannot specify an ID as this is managed by the agent")
        inner = nested.get("Connect")
        if isinstance(inner, dict):
            _, nested_sidecar = parse_connect(inner)
            if nested_sidecar is not None:
                errs.append("A SidecarService cannot have a nested SidecarService")
    if connect.get("Native") and not port and not socket:
        errs.append("Port or SocketPath must be set for a Connect native service.")
    return errs


def is_connect_for(svc: Service, name: str) -> bool:
    """Whether the catalog instance ``svc`` accepts mesh traffic for the service ``name``
    (case-insensitive): a ``connect-proxy`` whose destination is ``name``, or a native
    instance of ``name``."""
    want = name.lower()
    if svc.kind == CONNECT_PROXY:
        return str(svc.proxy.get("DestinationServiceName") or "").lower() == want
    return not svc.kind and svc.service.lower() == want and bool(svc.connect.get("Native"))


# --------------------------------------------------------------------------- agent rendering


def agent_proxy(proxy: dict[str, Any]) -> dict[str, Any]:
    """``api.AgentServiceConnectProxyConfig``: like the record, but ``Mode`` is omitempty and
    upstreams drop their empty ``DestinationType``/``Datacenter``."""
    out = {k: copy.deepcopy(v) for k, v in proxy.items() if k != "Mode"}
    if proxy.get("Mode"):
        out["Mode"] = proxy["Mode"]
    ups = []
    for u in proxy.get("Upstreams") or []:
        au = {k: v for k, v in u.items() if k not in ("Datacenter",) or v}
        ups.append(au)
    if ups:
        out["Upstreams"] = ups
    out.setdefault("MeshGateway", {})
    out.setdefault("Expose", {})
    return out


# --------------------------------------------------------------------------- sidecars


def sidecar_id(service_id: str) -> str:
    return service_id + SIDECAR_SUFFIX


def sidecar_defaults(parent: dict[str, Any], sidecar: dict[str, Any]) -> dict[str, Any]:
    """Consul's ``sidecarServiceFromNodeService`` defaults applied to the decoded sidecar record.

    The ID is always ``<parent id>-sidecar-proxy``; tags and meta are the parent's when the
    sidecar has none; kind ``connect-proxy``; name ``<parent name>-sidecar-proxy``; the
    parent's address; the proxy's destination is the parent, reached on 127.0.0.1 and the
    parent's port (or its socket path).  The port is assigned later (``allocate_port``)."""
    out = copy.deepcopy(sidecar)
    out["ID"] = sidecar_id(str(parent["ID"]))
    if not out.get("Meta") and parent.get("Meta"):
        out["Meta"] = dict(parent["Meta"])
    if not out.get("Tags") and parent.get("Tags"):
        out["Tags"] = list(parent["Tags"])
    if not out.get("Kind"):
        out = {"Kind": CONNECT_PROXY, **out}
    if not out.get("Service"):
        out["Service"] = str(parent["Service"]) + SIDECAR_SUFFIX
    if not out.get("Address"):
        out["Address"] = parent.get("Address", "")
    proxy = dict(out.get("Proxy") or DEFAULT_PROXY)
    proxy.setdefault("DestinationServiceName", parent["Service"])
    proxy.setdefault("DestinationServiceID", parent["ID"])
    if not proxy.get("LocalServiceSocketPath") and (
        not proxy.get("LocalServiceAddress") or int(proxy.get("LocalServicePort") or 0) < 1
    ):
        if parent.get("SocketPath"):
            proxy["LocalServiceSocketPath"] = parent["SocketPath"]
        else:
            proxy.setdefault("LocalServiceAddress", "127.0.0.1")
            if int(proxy.get("LocalServicePort") or 0) < 1 and parent.get("Port"):
                proxy["LocalServicePort"] = parent["Port"]
    out["Proxy"] = _ordered_proxy(proxy)
    return out


def _ordered_proxy(proxy: dict[str, Any]) -> dict[str, Any]:
    order = {k: i for i, k in enumerate(PROXY_NAMES)}
    return {k: proxy[k] for k in sorted(proxy, key=lambda k: order.get(k, len(order)))}


def allocate_port(services: list[dict[str, Any]], sid: str, lo: int, hi: int) -> int:
    """Consul's ``sidecarPortFromServiceIDLocked``: keep the port the sidecar already has in
    ``[lo, hi]``, else the lowest port of the range no other local service uses."""
    if lo < 1 or hi < 1:
        raise BadRequest("no port provided for sidecar_service and auto-assignment disabled in config")
    used: set[int] = set()
    for svc in services:
        port = int(svc.get("Port") or 0)
        if lo <= port <= hi:
            if svc.get("ID") == sid:
                return port
            used.add(port)
    for port in range(lo, hi + 1):
        if port not in used:
            return port
    raise BadRequest(f"no port provided for sidecar_service and none left in the configured range [{lo}, {hi}]")


def default_sidecar_checks(sidecar: dict[str, Any], parent_id: str) -> list[dict[str, Any]]:
    """The two checks Consul gives a sidecar registered without checks (raw check bodies)."""
    address = sidecar.get("Address") or (sidecar.get("Proxy") or {}).get("LocalServiceAddress", "")
    try:
        host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        host = address
    return [
        {"Name": "Connect Sidecar Listening", "TCP": f"{host}:{sidecar.get('Port', 0)}", "Interval": "10s"},
        {"Name": f"Connect Sidecar Aliasing {parent_id}", "AliasService": parent_id},
    ]


__all__ = [
    "API_GATEWAY", "CONNECT_PROXY", "DEFAULT_PROXY", "GATEWAY_KINDS", "INGRESS_GATEWAY", "MESH_GATEWAY",
    "SERVICE_KINDS", "SIDECAR_SUFFIX", "TERMINATING_GATEWAY", "agent_proxy", "allocate_port",
    "default_sidecar_checks", "get_str_list", "get_str_map", "multierror", "parse_connect", "parse_expose",
    "parse_locality", "parse_mesh_gateway", "parse_proxy", "parse_upstream", "sidecar_defaults", "sidecar_id",
    "validation_errors",
]  # fmt: skip
