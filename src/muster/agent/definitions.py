"""Service and check definitions: decoding, validation and the catalog records they become.

One decoder serves every entry point, because Consul uses one: ``/v1/agent/service/register``,
``/v1/agent/check/register``, the ``service``/``check`` blocks of config files and the
``Service``/``Check`` objects of ``/v1/catalog/register``.  Keys are matched the way Go's
``encoding/json`` plus Consul's snake_case aliases do (lower-case, ``_``/``-`` removed); keys
*inside* user maps (``Meta``, ``Header``, ``TaggedAddresses``) are never touched.

Records.  Everything stored in the catalog is a plain, Consul-shaped dict built here, always
with the same keys for the same input, so that re-registering an identical definition compares
equal in the store and does not bump any index (anti-entropy relies on that to be idempotent).
Optional NodeService fields (``Kind``, ``TaggedAddresses``, ``SocketPath``) are absent rather
than empty, matching the records the server writes for itself.

Errors carry Consul's exact texts and statuses (clients string-match them): every problem in a
body is a ``BadRequest`` (400) unless Consul answers otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..durations import format_duration_ns, parse_body_duration_ns
from ..errors import BadRequest
from .decode import (  # noqa: F401 - re-exported: callers import them from here
    _decode_error,
    canonical_keys,
    get_bool,
    get_duration_ns,
    get_int,
    get_str,
    get_str_list,
    get_str_map,
)

HEALTH_STATUSES = ("passing", "warning", "critical")

NODE_MAINT_CHECK_ID = "_node_maintenance"
NODE_MAINT_NAME = "Node Maintenance Mode"
NODE_MAINT_DEFAULT_NOTES = (
    "Maintenance mode is enabled for this node, but no reason was provided. This is a default message."
)
SERVICE_MAINT_PREFIX = "_service_maintenance:"
SERVICE_MAINT_NAME = "Service Maintenance Mode"
SERVICE_MAINT_DEFAULT_NOTES = (
    "Maintenance mode is enabled for this service, but no reason was provided. This is a default message."
)

META_MAX_PAIRS = 64
META_MAX_KEY_LEN = 128
META_MAX_VALUE_LEN = 512
_META_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")

DEFAULT_PROXY: dict[str, Any] = {"Mode": "", "MeshGateway": {}, "Expose": {}}


def fmt_duration(ns: int) -> str:
    """Consul's output form of a duration: ``"10s"``, or ``""`` when zero."""
    return format_duration_ns(ns) if ns else ""


def validate_meta(meta: dict[str, str]) -> str | None:
    """Consul's ``ValidateServiceMetadata`` rules; the error text, or None when valid."""
    if len(meta) > META_MAX_PAIRS:
        return f"Node metadata cannot contain more than {META_MAX_PAIRS} key/value pairs"
    for k, v in meta.items():
        problem = ""
        if k == "":
            problem = "Key cannot be blank"
        elif not _META_KEY_RE.fullmatch(k):
            problem = "Key contains invalid characters"
        elif len(k) > META_MAX_KEY_LEN:
            problem = f"Key is too long (limit: {META_MAX_KEY_LEN} characters)"
        elif k.startswith("consul-"):
            problem = "Key prefix 'consul-' is reserved for internal use"
        elif len(v) > META_MAX_VALUE_LEN:
            problem = f"Value is too long (limit: {META_MAX_VALUE_LEN} characters)"
        if problem:
            return f"Couldn't load metadata pair ('{k}', '{v}'): {problem}"
    return None


def is_any_address(addr: str) -> bool:
    """Consul's ``ipaddr.IsAny``: the unspecified IPv4/IPv6 address, bracketed or not."""
    return addr in ("0.0.0.0", "::", "[::]")


# --------------------------------------------------------------------------- checks

CHECK_NAMES = (
    "ID", "CheckID", "Name", "ServiceID", "Notes", "Status", "ScriptArgs", "HTTP", "Header",
    "Method", "Body", "DisableRedirects", "TCP", "TCPUseTLS", "UDP", "Interval", "Timeout", "TTL",
    "DockerContainerID", "Shell", "GRPC", "GRPCUseTLS", "H2PING", "H2PingUseTLS", "OSService",
    "TLSServerName", "TLSSkipVerify", "AliasNode", "AliasService", "DeregisterCriticalServiceAfter",
    "SuccessBeforePassing", "FailuresBeforeWarning", "FailuresBeforeCritical", "OutputMaxSize",
    "Token", "Namespace", "Partition",
)  # fmt: skip
CHECK_ALIASES = {"args": "ScriptArgs", "check_id": "CheckID", "service_id": "ServiceID"}


@dataclass
class CheckDefinition:
    """A decoded check definition (Consul's ``CheckDefinition`` + ``CheckType``).

    Durations are integer nanoseconds (0 = unset).  ``failures_before_warning`` of 0 means
    "not given": it then defaults to ``failures_before_critical``, as in Consul.
    """

    check_id: str = ""
    name: str = ""
    service_id: str = ""
    notes: str = ""
    status: str = ""
    script_args: list[str] = field(default_factory=list)
    http: str = ""
    header: dict[str, list[str]] = field(default_factory=dict)
    method: str = ""
    body: str = ""
    disable_redirects: bool = False
    tcp: str = ""
    tcp_use_tls: bool = False
    udp: str = ""
    interval: int = 0
    timeout: int = 0
    ttl: int = 0
    docker_container_id: str = ""
    shell: str = ""
    grpc: str = ""
    grpc_use_tls: bool = False
    h2ping: str = ""
    h2ping_use_tls: bool = False
    os_service: str = ""
    tls_server_name: str = ""
    tls_skip_verify: bool = False
    alias_node: str = ""
    alias_service: str = ""
    deregister_critical_service_after: int = 0
    success_before_passing: int = 0
    failures_before_warning: int = 0
    failures_before_critical: int = 0
    output_max_size: int = 0

    # ------------------------------------------------------------------ kinds

    def is_alias(self) -> bool:
        return bool(self.alias_node or self.alias_service)

    def is_script(self) -> bool:
        return bool(self.script_args)

    def needs_interval(self) -> bool:
        return bool(self.script_args or self.http or self.tcp or self.udp or self.grpc or self.h2ping or self.os_service)

    def empty(self) -> bool:
        """True for a service's empty ``Check`` block (every field unset, Consul's ``Empty``)."""
        return self == CheckDefinition()

    def check_type(self) -> str:
        """Consul's ``CheckType.Type()``: the runner kind, ``""`` for none."""
        iv = self.interval > 0
        if self.grpc and iv:
            return "grpc"
        if self.http and iv:
            return "http"
        if self.ttl > 0:
            return "ttl"
        if self.tcp and iv:
            return "tcp"
        if self.udp and iv:
            return "udp"
        if self.is_alias():
            return "alias"
        if self.script_args and self.docker_container_id and iv:
            return "docker"
        if self.script_args:
            return "script"
        if self.h2ping and iv:
            return "h2ping"
        if self.os_service and iv:
            return "os_service"
        return ""

    def validate(self) -> str | None:
        """Consul's ``CheckType.Validate``: the error text, or None when valid."""
        interval_kind = self.needs_interval()
        if self.interval > 0 and self.ttl > 0:
            return "Interval and TTL cannot both be specified"
        if interval_kind and self.interval <= 0:
            return "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
        if interval_kind and self.is_alias():
            return "Interval cannot be set for Alias checks"
        if self.is_alias() and self.ttl > 0:
            return "TTL must be not be set for Alias checks"
        if not interval_kind and not self.is_alias() and self.ttl <= 0:
            return "TTL must be > 0 for TTL checks"
        if self.output_max_size < 0:
            return "MaxOutputMaxSize must be positive"
        return None

    def effective_failures_before_warning(self) -> int:
        return self.failures_before_warning or self.failures_before_critical

    # ------------------------------------------------------------------ records

    def definition(self) -> dict[str, Any]:
        """The ``Definition`` object of a HealthCheck: only the fields that are set."""
        d: dict[str, Any] = {}
        if self.interval:
            d["Interval"] = fmt_duration(self.interval)
        if self.output_max_size:
            d["OutputMaxSize"] = self.output_max_size
        if self.timeout:
            d["Timeout"] = fmt_duration(self.timeout)
        if self.deregister_critical_service_after:
            d["DeregisterCriticalServiceAfter"] = fmt_duration(self.deregister_critical_service_after)
        pairs: list[tuple[str, Any]] = [
            ("HTTP", self.http),
            ("TLSServerName", self.tls_server_name),
            ("TLSSkipVerify", self.tls_skip_verify),
            ("Header", self.header),
            ("Method", self.method),
            ("Body", self.body),
            ("DisableRedirects", self.disable_redirects),
            ("TCP", self.tcp),
            ("TCPUseTLS", self.tcp_use_tls),
            ("UDP", self.udp),
            ("H2PING", self.h2ping),
            ("H2PingUseTLS", self.h2ping_use_tls),
            ("GRPC", self.grpc),
            ("GRPCUseTLS", self.grpc_use_tls),
            ("OSService", self.os_service),
            ("ScriptArgs", self.script_args),
            ("DockerContainerID", self.docker_container_id),
            ("Shell", self.shell),
            ("AliasNode", self.alias_node),
            ("AliasService", self.alias_service),
            ("TTL", self.ttl),
        ]
        for k, v in pairs:
            if v:
                d[k] = v
        return d

    def record(
        self,
        node: str,
        check_id: str,
        name: str,
        service_id: str = "",
        service_name: str = "",
        service_tags: list[str] | None = None,
        status: str = "",
        output: str = "",
    ) -> dict[str, Any]:
        """The HealthCheck record (the shape stored in the catalog and shown by the agent)."""
        return {
            "Node": node,
            "CheckID": check_id,
            "Name": name,
            "Status": status or self.status or "critical",
            "Notes": self.notes,
            "Output": output,
            "ServiceID": service_id,
            "ServiceName": service_name,
            "ServiceTags": list(service_tags or []),
            "Type": self.check_type(),
            "Interval": fmt_duration(self.interval),
            "Timeout": fmt_duration(self.timeout),
            "ExposedPort": 0,
            "Definition": self.definition(),
        }


def _header_map(d: dict[str, Any]) -> dict[str, list[str]]:
    v = d.get("Header")
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _decode_error("Header", v, "map[string][]string")
    out: dict[str, list[str]] = {}
    for k, vals in v.items():
        if isinstance(vals, str):
            out[str(k)] = [vals]
        elif isinstance(vals, list) and all(isinstance(x, str) for x in vals):
            out[str(k)] = list(vals)
        else:
            raise _decode_error("Header", vals, "[]string")
    return out


def parse_check(obj: Any) -> CheckDefinition:
    """Decode one check definition (agent API body, embedded service check or config block)."""
    d = canonical_keys(obj, CHECK_NAMES, CHECK_ALIASES, "structs.CheckDefinition")
    # Consul removed the legacy ``script`` string (1.1: ``args`` replaced it); like any unknown
    # key of structs.CheckDefinition it is ignored, so ``{"script": ..., "ttl": "10s"}`` (what
    # python-consul2's deprecated Check.script helper still sends) registers a TTL check.
    script_args = get_str_list(d, "ScriptArgs")
    c = CheckDefinition(
        check_id=get_str(d, "CheckID") or get_str(d, "ID"),
        name=get_str(d, "Name"),
        service_id=get_str(d, "ServiceID"),
        notes=get_str(d, "Notes"),
        status=get_str(d, "Status"),
        script_args=script_args,
        http=get_str(d, "HTTP"),
        header=_header_map(d),
        method=get_str(d, "Method"),
        body=get_str(d, "Body"),
        disable_redirects=get_bool(d, "DisableRedirects"),
        tcp=get_str(d, "TCP"),
        tcp_use_tls=get_bool(d, "TCPUseTLS"),
        udp=get_str(d, "UDP"),
        interval=get_duration_ns(d, "Interval"),
        timeout=get_duration_ns(d, "Timeout"),
        ttl=get_duration_ns(d, "TTL"),
        docker_container_id=get_str(d, "DockerContainerID"),
        shell=get_str(d, "Shell"),
        grpc=get_str(d, "GRPC"),
        grpc_use_tls=get_bool(d, "GRPCUseTLS"),
        h2ping=get_str(d, "H2PING"),
        h2ping_use_tls=get_bool(d, "H2PingUseTLS"),
        os_service=get_str(d, "OSService"),
        tls_server_name=get_str(d, "TLSServerName"),
        tls_skip_verify=get_bool(d, "TLSSkipVerify"),
        alias_node=get_str(d, "AliasNode"),
        alias_service=get_str(d, "AliasService"),
        deregister_critical_service_after=get_duration_ns(d, "DeregisterCriticalServiceAfter"),
        success_before_passing=get_int(d, "SuccessBeforePassing"),
        failures_before_warning=get_int(d, "FailuresBeforeWarning"),
        failures_before_critical=get_int(d, "FailuresBeforeCritical"),
        output_max_size=get_int(d, "OutputMaxSize"),
    )
    return c


# --------------------------------------------------------------------------- services

SERVICE_NAMES = (
    "Kind", "ID", "Name", "Tags", "Address", "TaggedAddresses", "Meta", "Port", "SocketPath", "Weights",
    "EnableTagOverride", "Check", "Checks", "Proxy", "Connect", "Token", "Namespace", "Partition", "Locality",
)  # fmt: skip


@dataclass
class ServiceDefinition:
    """A decoded agent service definition: the NodeService record plus its checks.

    ``sidecar`` is the raw ``Connect.SidecarService`` definition (registration syntax for a
    second, ``connect-proxy`` service: see ``agent.mesh``); it is never part of the record."""

    service: dict[str, Any]
    checks: list[CheckDefinition]
    sidecar: Any = None

    @property
    def id(self) -> str:
        return str(self.service["ID"])

    @property
    def name(self) -> str:
        return str(self.service["Service"])


def parse_tagged_addresses(v: Any) -> dict[str, dict[str, Any]]:
    """Service ``TaggedAddresses``: ``{tag: {Address, Port}}``, either key case accepted."""
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _decode_error("TaggedAddresses", v, "map[string]structs.ServiceAddress")
    out: dict[str, dict[str, Any]] = {}
    for tag, addr in v.items():
        a = canonical_keys(addr, ("Address", "Port"), None, "structs.ServiceAddress")
        out[str(tag)] = {"Address": get_str(a, "Address"), "Port": get_int(a, "Port")}
    return out


def parse_weights(v: Any) -> dict[str, int] | None:
    if v is None:
        return None
    w = canonical_keys(v, ("Passing", "Warning"), None, "structs.Weights")
    return {"Passing": get_int(w, "Passing"), "Warning": get_int(w, "Warning")}


def weights_error(w: dict[str, int]) -> str | None:
    """Consul's ``ValidateWeights``."""
    if w["Passing"] < 1:
        return "Passing must be greater than 0"
    if w["Warning"] < 0:
        return "Warning must be greater or equal than 0"
    if w["Passing"] > 65535 or w["Warning"] > 65535:
        return "Passing or Warning must be less than 65536"
    return None


def service_record(
    *,
    service_id: str,
    name: str,
    tags: list[str],
    address: str = "",
    tagged_addresses: dict[str, dict[str, Any]] | None = None,
    meta: dict[str, str] | None = None,
    port: int = 0,
    socket_path: str = "",
    weights: dict[str, int] | None = None,
    enable_tag_override: bool = False,
    kind: str = "",
    connect: dict[str, Any] | None = None,
    proxy: dict[str, Any] | None = None,
    locality: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The NodeService record; optional fields are absent when empty (see module doc)."""
    rec: dict[str, Any] = {}
    if kind:
        rec["Kind"] = kind
    rec["ID"] = service_id
    rec["Service"] = name
    rec["Tags"] = list(tags)
    rec["Address"] = address
    if tagged_addresses:
        rec["TaggedAddresses"] = tagged_addresses
    rec["Meta"] = dict(meta or {})
    rec["Port"] = port
    if socket_path:
        rec["SocketPath"] = socket_path
    rec["Weights"] = dict(weights) if weights is not None else {"Passing": 1, "Warning": 1}
    rec["EnableTagOverride"] = enable_tag_override
    if locality is not None:
        rec["Locality"] = dict(locality)
    rec["Proxy"] = dict(proxy) if proxy else {"Mode": "", "MeshGateway": {}, "Expose": {}}
    rec["Connect"] = dict(connect or {})
    rec["PeerName"] = ""
    return rec


def parse_service(obj: Any, *, nested: bool = False) -> ServiceDefinition:
    """Decode and validate an agent service definition (API body or config ``service`` block).

    Raises ``BadRequest`` with Consul's texts: ``Missing service name``, ``Invalid service
    address``, ``Invalid Weights: ...``, ``Invalid Service Meta: ...``, ``Validation failed:
    ...`` (``NodeService.Validate``), ``Invalid check: ...`` and the check-status message.
    ``nested`` decodes a ``SidecarService`` block: its name may be empty (the agent derives
    it) and ``NodeService.Validate`` is left to the caller, once defaults are filled in.
    """
    from . import mesh

    d = canonical_keys(obj, SERVICE_NAMES, None, "structs.ServiceDefinition")
    name = get_str(d, "Name")
    if not name and not nested:
        raise BadRequest("Missing service name")
    address = get_str(d, "Address")
    if is_any_address(address):
        raise BadRequest("Invalid service address")
    weights = parse_weights(d.get("Weights"))
    if weights is not None:
        err = weights_error(weights)
        if err:
            raise BadRequest(f"Invalid Weights: {err}")
    meta = get_str_map(d, "Meta")
    err = validate_meta(meta)
    if err and not nested:
        raise BadRequest(f"Invalid Service Meta: {err}")
    connect, sidecar = mesh.parse_connect(d.get("Connect"))
    svc = service_record(
        service_id=get_str(d, "ID") or name,
        name=name,
        tags=get_str_list(d, "Tags"),
        address=address,
        tagged_addresses=parse_tagged_addresses(d.get("TaggedAddresses")),
        meta=meta,
        port=get_int(d, "Port"),
        socket_path=get_str(d, "SocketPath"),
        weights=weights,
        enable_tag_override=get_bool(d, "EnableTagOverride"),
        kind=get_str(d, "Kind"),
        connect=connect,
        proxy=mesh.parse_proxy(d.get("Proxy")),
        locality=mesh.parse_locality(d.get("Locality")),
    )
    if not nested:
        errs = mesh.validation_errors(svc, for_agent=False, sidecar=sidecar)
        if errs:
            raise BadRequest(f"Validation failed: {mesh.multierror(errs)}")
    checks: list[CheckDefinition] = []
    raw_checks: list[Any] = []
    if d.get("Check") is not None:
        raw_checks.append(d["Check"])
    extra = d.get("Checks")
    if extra is not None:
        if not isinstance(extra, list):
            raise _decode_error("Checks", extra, "structs.CheckTypes")
        raw_checks.extend(extra)
    for i, raw in enumerate(raw_checks):
        chk = parse_check(raw)
        if i == 0 and d.get("Check") is not None and chk.empty():
            continue  # an empty ``Check`` block is no check at all
        err = chk.validate()
        if err:
            raise BadRequest(f"Invalid check: {err}")
        if chk.status and chk.status not in HEALTH_STATUSES:
            raise BadRequest("Status for checks must 'passing', 'warning', 'critical'")
        checks.append(chk)
    return ServiceDefinition(svc, checks, sidecar)


def embedded_check_ids(service_id: str, service_name: str, checks: list[CheckDefinition]) -> list[tuple[str, str]]:
    """(CheckID, Name) of each embedded check: ``service:<id>`` or ``service:<id>:<n>`` by default."""
    out = []
    for i, chk in enumerate(checks):
        cid = chk.check_id
        if not cid:
            cid = f"service:{service_id}"
            if len(checks) > 1:
                cid += f":{i + 1}"
        out.append((cid, chk.name or f"Service '{service_name}' check"))
    return out


# --------------------------------------------------------------------------- catalog input

NODE_SERVICE_NAMES = (
    "Kind", "ID", "Service", "Tags", "Address", "TaggedAddresses", "Meta", "Port", "SocketPath", "Weights",
    "EnableTagOverride", "Proxy", "Connect", "PeerName", "Namespace", "Partition", "Locality",
    "CreateIndex", "ModifyIndex",
)  # fmt: skip

HEALTH_CHECK_NAMES = (
    "Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID", "ServiceName", "ServiceTags", "Type",
    "Interval", "Timeout", "ExposedPort", "Definition", "Namespace", "Partition", "PeerName",
    "CreateIndex", "ModifyIndex",
)  # fmt: skip

DEFINITION_NAMES = (
    "HTTP", "TLSServerName", "TLSSkipVerify", "Header", "Method", "Body", "DisableRedirects", "TCP",
    "TCPUseTLS", "UDP", "H2PING", "H2PingUseTLS", "GRPC", "GRPCUseTLS", "OSService", "Interval", "Timeout",
    "DeregisterCriticalServiceAfter", "OutputMaxSize", "ScriptArgs", "DockerContainerID", "Shell",
    "AliasNode", "AliasService", "TTL",
)  # fmt: skip


def catalog_service(obj: Any) -> dict[str, Any]:
    """A ``/v1/catalog/register`` ``Service`` object as a NodeService record.

    ``ID`` defaults to the name; a missing name is Consul's ``Must provide service name with
    ID``; the unspecified address is ``Invalid service address`` (both 500, as Consul's RPC).
    """
    from ..errors import MusterError

    d = canonical_keys(obj, NODE_SERVICE_NAMES, None, "structs.NodeService")
    name = get_str(d, "Service")
    sid = get_str(d, "ID") or name
    if not name:
        raise MusterError("Must provide service name with ID")
    address = get_str(d, "Address")
    if is_any_address(address):
        raise MusterError("Invalid service address")
    weights = parse_weights(d.get("Weights"))
    if weights is not None and weights["Passing"] == 0 and weights["Warning"] == 0:
        weights = None  # Go's zero value: the catalog fills in the 1/1 default
    from . import mesh

    connect, sidecar = mesh.parse_connect(d.get("Connect"))
    rec = service_record(
        service_id=sid,
        name=name,
        tags=get_str_list(d, "Tags"),
        address=address,
        tagged_addresses=parse_tagged_addresses(d.get("TaggedAddresses")),
        meta=get_str_map(d, "Meta"),
        port=get_int(d, "Port"),
        socket_path=get_str(d, "SocketPath"),
        weights=weights,
        enable_tag_override=get_bool(d, "EnableTagOverride"),
        kind=get_str(d, "Kind"),
        connect=connect,
        proxy=mesh.parse_proxy(d.get("Proxy")),
        locality=mesh.parse_locality(d.get("Locality")),
    )
    errs = mesh.validation_errors(rec, for_agent=False, sidecar=sidecar)
    if errs:
        raise MusterError(mesh.multierror(errs))
    return rec


def catalog_check(obj: Any, node: str) -> dict[str, Any]:
    """A ``/v1/catalog/register`` check as a HealthCheck record (stored verbatim, never run).

    ``CheckID`` defaults to ``Name``; ``Status`` defaults to critical; ``Node`` defaults to the
    request's node.  ``ServiceName``/``ServiceTags`` are filled by the store from the linked
    service.
    """
    from ..errors import MusterError

    d = canonical_keys(obj, HEALTH_CHECK_NAMES, None, "structs.HealthCheck")
    name = get_str(d, "Name")
    cid = get_str(d, "CheckID") or name
    chk_node = get_str(d, "Node") or node
    if chk_node != node:
        raise MusterError(f"Node '{chk_node}' for check '{cid}' doesn't match register request node '{node}'")
    status = get_str(d, "Status") or "critical"
    if status not in HEALTH_STATUSES:
        raise MusterError(f"Invalid check status: '{status}'")
    defn = canonical_keys(d.get("Definition"), DEFINITION_NAMES, None, "structs.HealthCheckDefinition")
    c = CheckDefinition(
        http=get_str(defn, "HTTP"),
        tls_server_name=get_str(defn, "TLSServerName"),
        tls_skip_verify=get_bool(defn, "TLSSkipVerify"),
        header=_header_map(defn),
        method=get_str(defn, "Method"),
        body=get_str(defn, "Body"),
        disable_redirects=get_bool(defn, "DisableRedirects"),
        tcp=get_str(defn, "TCP"),
        tcp_use_tls=get_bool(defn, "TCPUseTLS"),
        udp=get_str(defn, "UDP"),
        h2ping=get_str(defn, "H2PING"),
        h2ping_use_tls=get_bool(defn, "H2PingUseTLS"),
        grpc=get_str(defn, "GRPC"),
        grpc_use_tls=get_bool(defn, "GRPCUseTLS"),
        os_service=get_str(defn, "OSService"),
        interval=get_duration_ns(defn, "Interval"),
        timeout=get_duration_ns(defn, "Timeout"),
        deregister_critical_service_after=get_duration_ns(defn, "DeregisterCriticalServiceAfter"),
        output_max_size=get_int(defn, "OutputMaxSize"),
        script_args=get_str_list(defn, "ScriptArgs"),
        docker_container_id=get_str(defn, "DockerContainerID"),
        shell=get_str(defn, "Shell"),
        alias_node=get_str(defn, "AliasNode"),
        alias_service=get_str(defn, "AliasService"),
        ttl=get_duration_ns(defn, "TTL"),
    )
    return {
        "Node": node,
        "CheckID": cid,
        "Name": name,
        "Status": status,
        "Notes": get_str(d, "Notes"),
        "Output": get_str(d, "Output"),
        "ServiceID": get_str(d, "ServiceID"),
        "ServiceName": get_str(d, "ServiceName"),
        "ServiceTags": get_str_list(d, "ServiceTags"),
        "Type": get_str(d, "Type"),
        "Interval": _dur_text(d.get("Interval")),
        "Timeout": _dur_text(d.get("Timeout")),
        "ExposedPort": get_int(d, "ExposedPort"),
        "Definition": c.definition(),
    }


def _dur_text(v: Any) -> str:
    """Top-level HealthCheck ``Interval``/``Timeout`` are strings; normalise numbers (ns)."""
    if v is None or v == "":
        return ""
    try:
        return fmt_duration(parse_body_duration_ns(v))
    except ValueError as err:
        raise BadRequest(f"Request decode failed: {err}") from None
