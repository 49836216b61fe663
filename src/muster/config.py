"""Agent configuration: command-line flags, JSON/HCL config files, defaults, validation.

This mirrors how ``consul agent`` builds its runtime configuration so that existing
deployments (the seed StatefulSet, Helm-style command lines, config directories) work
unchanged.  The sources are layered, lowest precedence first::

    built-in defaults  <  -dev defaults  <  config files/dirs (in command-line order)
                       <  -hcl fragments  <  command-line flags

and merged with Consul's rules: scalars are replaced, lists are appended, maps (sections
such as ``ports``/``acl`` and user maps such as ``node_meta``) are merged key by key.

Each source is normalised (legacy key aliases, python-hcl2's list-wrapped blocks) and
type-checked on its own, so an error names the file it came from; only then are the
sources merged and turned into a frozen :class:`Config`, after which cross-field rules
(``bootstrap`` vs ``bootstrap_expect``, ``data_dir`` required, ...) are checked.

Defaults follow Consul's ``agent/config/default.go`` and the agent configuration
reference (``website/content/docs/agent/config/config-files.mdx`` and ``cli-flags.mdx``);
the contract (``consul-api.md`` §6) is authoritative where they differ.

Durations are stored as float seconds (see :mod:`muster.durations`); use
:func:`muster.durations.format_duration` to show them the Go way.

Reload: the agent re-runs :func:`parse_agent_flags` with the original argv (which re-reads
every file) and calls :func:`reloadable_diff` to learn what it may apply live.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import json
import math
import os
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from muster.durations import parse_duration

__all__ = [
    "ACLConfig",
    "ACLTokens",
    "Addresses",
    "AutopilotConfig",
    "Config",
    "ConfigError",
    "DNSConfig",
    "DNSSOA",
    "HTTPConfig",
    "HelpRequested",
    "LimitsConfig",
    "PerformanceConfig",
    "Ports",
    "RELOADABLE_KEYS",
    "TLSConfig",
    "TLSProtocolConfig",
    "TelemetryConfig",
    "UIConfig",
    "USAGE",
    "UsageError",
    "changed_keys",
    "config_from_dict",
    "non_reloadable_diff",
    "parse_agent_flags",
    "parse_go_bool",
    "reloadable_diff",
    "validate_node_meta",
]


class UsageError(Exception):
    """The command line itself is malformed (unknown flag, missing flag value, stray argument).

    The CLI prints ``str(err)``, then :data:`USAGE`, and exits 1 (Go's flag package behaviour).
    """


class HelpRequested(UsageError):
    """``-h``/``-help``/``--help`` was given: print :data:`USAGE` and exit 0."""

    def __init__(self) -> None:
        super().__init__("")


class ConfigError(Exception):
    """A value is invalid (bad flag value, bad config file, failed validation).

    The message is complete and user-facing; the CLI prints it and exits 1.
    """


# ---------------------------------------------------------------------------------------
# Small Go-compatible scalar parsers
# ---------------------------------------------------------------------------------------

_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_go_bool(s: str) -> bool:
    """Go's ``strconv.ParseBool``: exactly ``1 t T TRUE true True 0 f F FALSE false False``."""
    if s in _GO_TRUE:
        return True
    if s in _GO_FALSE:
        return False
    raise ValueError(f"invalid boolean {s!r}")


_GO_OCTAL_LEGACY = re.compile(r"[+-]?0[0-7_]+")


def _parse_go_int(s: str) -> int:
    """Go's ``strconv.ParseInt(s, 0, 64)``: decimal, ``0x``/``0o``/``0b`` prefixes, legacy ``0``
    octal, ``_`` digit separators as in Go literals.  Raises ``ValueError`` with Go's reason
    (``parse error`` / ``value out of range``)."""
    # Python's int() also accepts surrounding whitespace and non-ASCII digits; Go does not.
    if not s or not s.isascii() or s != s.strip():
        raise ValueError("parse error")
    try:
        if _GO_OCTAL_LEGACY.fullmatch(s):
            value = int(s, 8)
        else:
            value = int(s, 0)
    except ValueError:
        raise ValueError("parse error") from None
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError("value out of range")
    return value


# ---------------------------------------------------------------------------------------
# Schema: dataclass fields carry a "kind" used for coercion, merging and reporting.
# ---------------------------------------------------------------------------------------
#
# Kinds:
#   bool, int, str, float             scalars (replace on merge)
#   dur                               Go duration string -> float seconds
#   optstr / optint / optbool / optdur  like above but None means "not set, inherit/derive"
#   strlist                           list of strings (append on merge); a lone string is a 1-list
#   strmap                            str -> str user map, keys verbatim (merge by key)
#   durmap                            str -> Go duration (merge by key)
#   rawmap                            opaque JSON-like map (merge by key)
#   deflist                           list of service/check definitions (append)
#   section                           nested dataclass (merge by key, recursively)


def _f(default: Any, kind: str) -> Any:
    """Declare a scalar config field with its coercion kind (lists/maps use _fl/_fm)."""
    return field(default=default, metadata={"kind": kind})


def _fl(kind: str = "strlist") -> Any:
    """Declare a list-valued field (stored as a tuple, default empty)."""
    return field(default=(), metadata={"kind": kind})


def _fm(kind: str = "strmap") -> Any:
    """Declare a map-valued field (default empty mapping)."""
    return field(default_factory=dict, metadata={"kind": kind})


def _fs(cls: type) -> Any:
    """Declare a nested section field."""
    return field(default_factory=cls, metadata={"kind": "section", "cls": cls})


@dataclass(frozen=True)
class Ports:
    """``ports`` block.  A value <= 0 disables the HTTP/HTTPS/DNS/gRPC listeners (stored as -1)."""

    dns: int = _f(8600, "int")
    http: int = _f(8500, "int")
    https: int = _f(-1, "int")  # disabled unless set (8501 conventional; seed uses 8443)
    grpc: int = _f(-1, "int")  # -1 (8502 in -dev)
    grpc_tls: int = _f(8503, "int")
    serf_lan: int = _f(8301, "int")
    serf_wan: int = _f(8302, "int")  # -1 disables the WAN pool
    server: int = _f(8300, "int")
    sidecar_min_port: int = _f(21000, "int")
    sidecar_max_port: int = _f(21255, "int")
    expose_min_port: int = _f(21500, "int")
    expose_max_port: int = _f(21755, "int")


@dataclass(frozen=True)
class Addresses:
    """``addresses`` block: per-listener bind overrides of ``client_addr`` (None = use client_addr)."""

    dns: str | None = _f(None, "optstr")
    http: str | None = _f(None, "optstr")
    https: str | None = _f(None, "optstr")
    grpc: str | None = _f(None, "optstr")
    grpc_tls: str | None = _f(None, "optstr")


@dataclass(frozen=True)
class ACLTokens:
    """``acl.tokens``; legacy names ``master``/``agent_master`` are mapped on input."""

    initial_management: str = _f("", "str")
    default: str = _f("", "str")
    agent: str = _f("", "str")
    agent_recovery: str = _f("", "str")
    replication: str = _f("", "str")
    config_file_service_registration: str = _f("", "str")
    dns: str = _f("", "str")


@dataclass(frozen=True)
class ACLConfig:
    """``acl`` block.  ACLs are off by default (every ``/v1/acl/*`` call answers 401)."""

    enabled: bool = _f(False, "bool")
    default_policy: str = _f("allow", "str")
    down_policy: str = _f("extend-cache", "str")
    policy_ttl: float = _f(30.0, "dur")
    role_ttl: float = _f(30.0, "dur")
    token_ttl: float = _f(30.0, "dur")
    enable_token_persistence: bool = _f(False, "bool")
    enable_token_replication: bool = _f(False, "bool")
    enable_key_list_policy: bool = _f(False, "bool")
    tokens: ACLTokens = _fs(ACLTokens)


@dataclass(frozen=True)
class TLSProtocolConfig:
    """One ``tls.<protocol>`` block.  ``None`` means "inherit from ``tls.defaults``"."""

    ca_file: str | None = _f(None, "optstr")
    ca_path: str | None = _f(None, "optstr")
    cert_file: str | None = _f(None, "optstr")
    key_file: str | None = _f(None, "optstr")
    verify_incoming: bool | None = _f(None, "optbool")
    verify_outgoing: bool | None = _f(None, "optbool")
    verify_server_hostname: bool | None = _f(None, "optbool")
    tls_min_version: str | None = _f(None, "optstr")
    tls_cipher_suites: str | None = _f(None, "optstr")
    use_auto_cert: bool | None = _f(None, "optbool")


@dataclass(frozen=True)
class TLSConfig:
    """``tls`` block (Consul 1.12+ layout); legacy top-level ``ca_file`` etc. map to ``defaults``."""

    defaults: TLSProtocolConfig = _fs(TLSProtocolConfig)
    https: TLSProtocolConfig = _fs(TLSProtocolConfig)
    internal_rpc: TLSProtocolConfig = _fs(TLSProtocolConfig)
    grpc: TLSProtocolConfig = _fs(TLSProtocolConfig)

    def effective(self, protocol: str) -> TLSProtocolConfig:
        """Settings for ``protocol`` (``https``/``internal_rpc``/``grpc``) with defaults filled in."""
        specific: TLSProtocolConfig = getattr(self, protocol)
        merged = {
            f.name: getattr(specific, f.name) if getattr(specific, f.name) is not None else getattr(self.defaults, f.name)
            for f in dataclasses.fields(TLSProtocolConfig)
        }
        return TLSProtocolConfig(**merged)


@dataclass(frozen=True)
class DNSSOA:
    """``dns_config.soa`` timers in seconds (Consul defaults)."""

    refresh: int = _f(3600, "int")
    retry: int = _f(600, "int")
    expire: int = _f(86400, "int")
    min_ttl: int = _f(0, "int")


@dataclass(frozen=True)
class DNSConfig:
    """``dns_config`` block (contract §5)."""

    allow_stale: bool = _f(True, "bool")
    max_stale: float = _f(87600 * 3600.0, "dur")  # 87600h
    node_ttl: float = _f(0.0, "dur")
    service_ttl: Mapping[str, float] = _fm("durmap")  # "*" wildcard, "web*" prefix, exact wins
    enable_truncate: bool = _f(False, "bool")
    only_passing: bool = _f(False, "bool")
    recursor_strategy: str = _f("sequential", "str")
    recursor_timeout: float = _f(2.0, "dur")
    disable_compression: bool = _f(False, "bool")
    udp_answer_limit: int = _f(3, "int")
    a_record_limit: int = _f(0, "int")  # 0 = unlimited
    enable_additional_node_meta_txt: bool = _f(True, "bool")
    soa: DNSSOA = _fs(DNSSOA)
    use_cache: bool = _f(False, "bool")
    cache_max_age: float = _f(0.0, "dur")
    prefer_namespace: bool = _f(False, "bool")


@dataclass(frozen=True)
class LimitsConfig:
    """``limits`` block.  ``kv_max_value_size``/``txn_max_req_len`` are 512 KiB (contract §9 #17)."""

    http_max_conns_per_client: int = _f(200, "int")
    https_handshake_timeout: float = _f(5.0, "dur")
    rpc_handshake_timeout: float = _f(5.0, "dur")
    rpc_client_timeout: float = _f(60.0, "dur")
    rpc_max_burst: int = _f(1000, "int")
    rpc_max_conns_per_client: int = _f(100, "int")
    rpc_rate: float = _f(math.inf, "float")
    kv_max_value_size: int = _f(524288, "int")
    txn_max_req_len: int = _f(524288, "int")
    request_limits: Mapping[str, Any] = _fm("rawmap")


@dataclass(frozen=True)
class PerformanceConfig:
    """``performance`` block.  ``raft_multiplier`` scales Raft timers (1 = fastest, 10 = slowest)."""

    raft_multiplier: int = _f(5, "int")
    leave_drain_time: float = _f(5.0, "dur")
    rpc_hold_timeout: float = _f(7.0, "dur")
    grpc_keepalive_interval: float = _f(30.0, "dur")
    grpc_keepalive_timeout: float = _f(20.0, "dur")


@dataclass(frozen=True)
class AutopilotConfig:
    """``autopilot`` block; defaults as served by ``/v1/operator/autopilot/configuration`` (§2.7)."""

    cleanup_dead_servers: bool = _f(True, "bool")
    last_contact_threshold: float = _f(0.2, "dur")
    max_trailing_logs: int = _f(250, "int")
    min_quorum: int = _f(0, "int")
    server_stabilization_time: float = _f(10.0, "dur")
    redundancy_zone_tag: str = _f("", "str")
    disable_upgrade_migration: bool = _f(False, "bool")
    upgrade_version_tag: str = _f("", "str")


@dataclass(frozen=True)
class TelemetryConfig:
    """``telemetry`` block.  Keys for sinks we do not implement are kept verbatim in ``extra``."""

    PASSTHROUGH: ClassVar[frozenset[str]] = frozenset(
        {
            "circonus_api_app", "circonus_api_token", "circonus_api_url", "circonus_broker_id",
            "circonus_broker_select_tag", "circonus_check_display_name",
            "circonus_check_force_metric_activation", "circonus_check_id", "circonus_check_instance_id",
            "circonus_check_search_tag", "circonus_check_tags", "circonus_submission_interval",
            "circonus_submission_url", "enable_host_metrics", "disable_per_tenancy_usage_metrics",
            "allowed_prefixes", "blocked_prefixes", "metrics_proxy",
        }
    )

    prometheus_retention_time: float = _f(0.0, "dur")  # 0 = /v1/agent/metrics?format=prometheus off
    disable_hostname: bool = _f(False, "bool")
    metrics_prefix: str = _f("consul", "str")
    statsd_address: str = _f("", "str")
    statsite_address: str = _f("", "str")
    dogstatsd_addr: str = _f("", "str")
    dogstatsd_tags: tuple[str, ...] = _fl()
    filter_default: bool = _f(True, "bool")
    prefix_filter: tuple[str, ...] = _fl()
    disable_compat_1_9: bool = _f(True, "bool")
    retry_failed_connection: bool = _f(True, "bool")
    extra: Mapping[str, Any] = _fm("rawmap")


@dataclass(frozen=True)
class HTTPConfig:
    """``http_config`` block."""

    response_headers: Mapping[str, str] = _fm("strmap")
    block_endpoints: tuple[str, ...] = _fl()
    allow_write_http_from: tuple[str, ...] = _fl()
    use_cache: bool = _f(True, "bool")
    max_header_bytes: int = _f(0, "int")


@dataclass(frozen=True)
class UIConfig:
    """``ui_config`` block (legacy top-level ``ui``/``ui_dir``/``ui_content_path`` map here)."""

    enabled: bool = _f(False, "bool")
    dir: str = _f("", "str")
    content_path: str = _f("/ui/", "str")
    metrics_provider: str = _f("", "str")
    metrics_provider_files: tuple[str, ...] = _fl()
    metrics_provider_options_json: str = _f("", "str")
    metrics_proxy: Mapping[str, Any] = _fm("rawmap")
    dashboard_url_templates: Mapping[str, str] = _fm("strmap")


def _default_node_name() -> str:
    return socket.gethostname() or "localhost"


# Top-level keys Consul accepts that Muster does not model; they are kept verbatim in
# ``Config.extra`` (so valid Consul configs load) and the agent may warn about them.
_PASSTHROUGH_TOP = frozenset(
    {
        "advertise_addrs", "advertise_addr_ipv4", "advertise_addr_ipv6", "advertise_addr_wan_ipv4",
        "advertise_addr_wan_ipv6", "advertise_reconnect_timeout", "audit", "auto_config", "auto_encrypt",
        "cache", "cloud", "config_entries", "connect", "enable_acl_replication",
        "enable_agent_tls_for_checks", "enable_central_service_config", "experiments", "gossip_lan",
        "gossip_wan", "license_path", "locality", "peering", "primary_gateways",
        "primary_gateways_interval", "raft_boltdb", "raft_logstore", "read_replica", "non_voting_server",
        "reporting", "rpc", "segment", "segments", "unix_sockets", "use_streaming_backend", "watches",
        "xds", "partition", "default_intention_policy", "snapshot_agent",
    }
)


@dataclass(frozen=True)
class Config:
    """The agent's effective configuration.  Immutable; build it with :func:`parse_agent_flags`
    or :func:`config_from_dict` (which validate), never by mutating one.

    Invariants after a successful build:
      * ``dev_mode or data_dir`` is set;
      * ``bootstrap`` and ``bootstrap_expect > 0`` are not both set, and either implies ``server``;
      * ``datacenter``/``primary_datacenter`` are lowercase ``[a-z0-9_-]+``;
      * ``domain``/``alt_domain`` are lowercase with a trailing dot (``"consul."``);
      * ``node_id`` is None or a lowercase UUID; ``node_meta`` obeys Consul's limits;
      * listener ports are -1 (disabled) or 1..65535;
      * ``leave_on_terminate``/``skip_leave_on_interrupt`` are resolved (server-mode defaults).
    """

    # --- server / cluster formation ---
    server: bool = _f(False, "bool")
    bootstrap: bool = _f(False, "bool")
    bootstrap_expect: int = _f(0, "int")
    dev_mode: bool = _f(False, "bool")
    data_dir: str | None = _f(None, "optstr")  # required unless -dev
    datacenter: str = _f("dc1", "str")
    primary_datacenter: str = _f("", "str")
    node_name: str = field(default_factory=_default_node_name, metadata={"kind": "str"})
    node_id: str | None = _f(None, "optstr")  # None: generate once, persist in <data_dir>/node-id
    node_meta: Mapping[str, str] = _fm("strmap")
    disable_host_node_id: bool = _f(True, "bool")
    server_name: str = _f("", "str")
    raft_protocol: int = _f(3, "int")
    protocol: int = _f(2, "int")
    raft_snapshot_threshold: int = _f(16384, "int")
    raft_snapshot_interval: float = _f(30.0, "dur")
    raft_trailing_logs: int = _f(10240, "int")
    # --- addresses ---
    bind_addr: str = _f("0.0.0.0", "str")
    client_addr: str = _f("127.0.0.1", "str")  # space-separated list allowed
    advertise_addr: str | None = _f(None, "optstr")  # None: bind addr, or auto-pick if 0.0.0.0
    advertise_addr_wan: str | None = _f(None, "optstr")  # None: advertise_addr
    serf_lan: str | None = _f(None, "optstr")  # serf LAN bind; None: bind_addr
    serf_wan: str | None = _f(None, "optstr")
    translate_wan_addrs: bool = _f(False, "bool")
    ports: Ports = _fs(Ports)
    addresses: Addresses = _fs(Addresses)
    # --- joining ---
    retry_join: tuple[str, ...] = _fl()
    retry_interval: float = _f(30.0, "dur")
    retry_max: int = _f(0, "int")  # 0 = forever
    retry_join_wan: tuple[str, ...] = _fl()
    retry_interval_wan: float = _f(30.0, "dur")
    retry_max_wan: int = _f(0, "int")
    rejoin_after_leave: bool = _f(False, "bool")
    reconnect_timeout: float = _f(72 * 3600.0, "dur")
    reconnect_timeout_wan: float = _f(72 * 3600.0, "dur")
    # --- gossip encryption ---
    encrypt: str = _f("", "str")
    encrypt_verify_incoming: bool = _f(True, "bool")
    encrypt_verify_outgoing: bool = _f(True, "bool")
    disable_keyring_file: bool = _f(False, "bool")
    # --- DNS ---
    domain: str = _f("consul.", "str")
    alt_domain: str = _f("", "str")
    recursors: tuple[str, ...] = _fl()
    dns_config: DNSConfig = _fs(DNSConfig)
    # --- logging ---
    log_level: str = _f("info", "str")
    log_json: bool = _f(False, "bool")
    log_file: str = _f("", "str")
    log_rotate_duration: float = _f(0.0, "dur")
    log_rotate_bytes: int = _f(0, "int")
    log_rotate_max_files: int = _f(0, "int")
    enable_syslog: bool = _f(False, "bool")
    syslog_facility: str = _f("LOCAL0", "str")
    pid_file: str = _f("", "str")
    # --- HTTP API / UI ---
    default_query_time: float = _f(300.0, "dur")
    max_query_time: float = _f(600.0, "dur")
    discovery_max_stale: float = _f(0.0, "dur")
    http_config: HTTPConfig = _fs(HTTPConfig)
    ui_config: UIConfig = _fs(UIConfig)
    disable_http_unprintable_char_filter: bool = _f(False, "bool")
    enable_debug: bool = _f(False, "bool")
    # --- checks / services / sessions ---
    services: tuple[Mapping[str, Any], ...] = _fl("deflist")
    checks: tuple[Mapping[str, Any], ...] = _fl("deflist")
    enable_script_checks: bool = _f(False, "bool")
    enable_local_script_checks: bool = _f(False, "bool")
    check_output_max_size: int = _f(4096, "int")
    check_update_interval: float = _f(300.0, "dur")
    discard_check_output: bool = _f(False, "bool")
    session_ttl_min: float = _f(10.0, "dur")
    disable_remote_exec: bool = _f(True, "bool")
    # --- lifecycle ---
    # None in a source means "derive from server mode"; always a bool in a built Config.
    leave_on_terminate: bool | None = _f(None, "optbool")  # default: false on servers, true on clients
    skip_leave_on_interrupt: bool | None = _f(None, "optbool")  # default: true on servers
    auto_reload_config: bool = _f(False, "bool")
    disable_update_check: bool = _f(False, "bool")
    disable_anonymous_signature: bool = _f(False, "bool")
    disable_coordinates: bool = _f(False, "bool")
    # --- security / observability sections ---
    acl: ACLConfig = _fs(ACLConfig)
    tls: TLSConfig = _fs(TLSConfig)
    limits: LimitsConfig = _fs(LimitsConfig)
    performance: PerformanceConfig = _fs(PerformanceConfig)
    autopilot: AutopilotConfig = _fs(AutopilotConfig)
    telemetry: TelemetryConfig = _fs(TelemetryConfig)
    # --- provenance (not config keys) ---
    extra: Mapping[str, Any] = field(default_factory=dict, metadata={"kind": "internal"})
    set_flags: frozenset[str] = field(default_factory=frozenset, metadata={"kind": "internal"})
    config_files: tuple[str, ...] = field(default=(), metadata={"kind": "internal"})
    warnings: tuple[str, ...] = field(default=(), metadata={"kind": "internal"})

    @property
    def ui_enabled(self) -> bool:
        return self.ui_config.enabled

    @property
    def client_addrs(self) -> tuple[str, ...]:
        """``client_addr`` split on whitespace (Consul allows a space-separated list)."""
        return tuple(self.client_addr.split())


RELOADABLE_KEYS: tuple[str, ...] = (
    "log_level",
    "services",
    "checks",
    "node_meta",
    "dns_config",
    "limits",
    "acl.tokens",
)
"""Keys SIGHUP / ``PUT /v1/agent/reload`` apply live (contract §6.1)."""


# ---------------------------------------------------------------------------------------
# Coercion of one source (raw JSON-like dict) against the schema
# ---------------------------------------------------------------------------------------


class _SourceError(Exception):
    """Internal: a value error inside a source; the caller prefixes the source name."""


def _type_name(v: object) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list | tuple):
        return "list"
    if isinstance(v, dict):
        return "object"
    if v is None:
        return "null"
    return type(v).__name__


def _coerce_scalar(kind: str, v: object, key: str) -> Any:
    """Convert a scalar config value, accepting the weak typing Consul's decoder accepts
    (``"8500"`` for ints, ``"true"`` for bools)."""
    base = kind[3:] if kind.startswith("opt") else kind
    if v is None and kind.startswith("opt"):
        return None
    if base == "str":
        if isinstance(v, str):
            return v
        if isinstance(v, int | float) and not isinstance(v, bool):
            return str(v)
        raise _SourceError(f"{key}: expected a string, got {_type_name(v)}")
    if base == "bool":
        if isinstance(v, bool):
            return v
        if isinstance(v, str):
            try:
                return parse_go_bool(v)
            except ValueError:
                raise _SourceError(f"{key}: invalid boolean {v!r}") from None
        if isinstance(v, int) and v in (0, 1):
            return bool(v)
        raise _SourceError(f"{key}: expected a boolean, got {_type_name(v)}")
    if base == "int":
        if isinstance(v, bool):
            raise _SourceError(f"{key}: expected an integer, got bool")
        if isinstance(v, int):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, str):
            try:
                return _parse_go_int(v)
            except ValueError:
                raise _SourceError(f"{key}: invalid integer {v!r}") from None
        raise _SourceError(f"{key}: expected an integer, got {_type_name(v)}")
    if base == "float":
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                raise _SourceError(f"{key}: invalid number {v!r}") from None
        raise _SourceError(f"{key}: expected a number, got {_type_name(v)}")
    if base == "dur":
        if isinstance(v, str):
            try:
                return parse_duration(v)
            except ValueError as exc:
                raise _SourceError(f"{key}: {exc}") from None
        if isinstance(v, int | float) and not isinstance(v, bool):
            # Consul's decoder stringifies numbers, which then lack a unit.
            raise _SourceError(f'{key}: time: missing unit in duration "{v}"')
        raise _SourceError(f"{key}: expected a duration string, got {_type_name(v)}")
    raise AssertionError(f"unknown kind {kind}")


def _merge_block_list(v: object, key: str) -> dict[str, Any]:
    """Collapse python-hcl2's list-wrapped block form (``[{...}, {...}]``) into one dict."""
    if isinstance(v, dict):
        return v
    if isinstance(v, list) and all(isinstance(x, dict) for x in v):
        out: dict[str, Any] = {}
        for item in v:
            out = _merge_raw(out, item)
        return out
    raise _SourceError(f"{key}: expected an object, got {_type_name(v)}")


def _merge_raw(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Merge untyped dicts: nested dicts merged, lists appended, scalars replaced."""
    out = dict(a)
    for k, v in b.items():
        if k in out and isinstance(out[k], dict) and isinstance(v, dict):
            out[k] = _merge_raw(out[k], v)
        elif k in out and isinstance(out[k], list) and isinstance(v, list):
            out[k] = out[k] + v
        else:
            out[k] = v
    return out


# Keys inside service/check definitions whose values are lists of objects; any other
# list-of-objects value in a definition is an HCL block and collapses to one object.
# Compared after lower-casing and dropping "_", because definitions may be written in the
# API's CamelCase ("Checks") as well as snake_case ("checks").
_DEF_LIST_KEYS = frozenset({"checks", "upstreams", "paths", "services"})
# User maps inside definitions: never rewritten.
_DEF_USER_MAPS = frozenset({"meta", "servicemeta", "nodemeta", "header", "taggedaddresses", "config"})


def _canon(key: str) -> str:
    return key.lower().replace("_", "")


def _normalise_definition(d: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Normalise one service/check definition from a config file.

    HCL blocks arrive as lists of dicts: ``check { ... }`` becomes ``check = [{...}]``,
    ``meta { ... }`` becomes ``meta = [{...}]``.  We turn ``check`` back into a single object
    (extra ``check`` blocks are moved to ``checks``), keep ``checks``/``upstreams`` as lists,
    and collapse every other single block into an object.  Field names are otherwise left
    as written: the agent decodes definitions with its API rules (case-insensitive,
    snake_case aliases), which are the same for files and ``/v1/agent/service/register``.
    """
    out: dict[str, Any] = {}
    for k, v in d.items():
        ck = _canon(k)
        if ck in _DEF_USER_MAPS:
            out[k] = _merge_block_list(v, f"{key}.{k}") if isinstance(v, list) else v
        elif ck in _DEF_LIST_KEYS:
            if isinstance(v, dict):
                v = [v]
            if not isinstance(v, list):
                raise _SourceError(f"{key}.{k}: expected a list, got {_type_name(v)}")
            out[k] = list(out.get(k, [])) + [
                _normalise_definition(x, f"{key}.{k}[{i}]") if isinstance(x, dict) else x for i, x in enumerate(v)
            ]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            if ck == "check" and len(v) > 1:
                out["check"] = _normalise_definition(v[0], f"{key}.check")
                extra = [_normalise_definition(x, f"{key}.check") for x in v[1:]]
                out["checks"] = list(out.get("checks", [])) + extra
            else:
                merged: dict[str, Any] = {}
                for x in v:
                    merged = _merge_raw(merged, x)
                out[k] = _normalise_definition(merged, f"{key}.{k}")
        elif isinstance(v, dict):
            out[k] = _normalise_definition(v, f"{key}.{k}")
        else:
            out[k] = v
    return out


def _coerce_deflist(v: object, key: str) -> tuple[dict[str, Any], ...]:
    items: list[Any]
    if isinstance(v, dict):
        items = [v]
    elif isinstance(v, list):
        items = v
    else:
        raise _SourceError(f"{key}: expected a list of definitions, got {_type_name(v)}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _SourceError(f"{key}[{i}]: expected an object, got {_type_name(item)}")
        out.append(_normalise_definition(item, f"{key}[{i}]"))
    return tuple(out)


def _coerce_value(f: dataclasses.Field[Any], v: object, key: str) -> Any:
    kind = f.metadata["kind"]
    if kind == "section":
        return _coerce_section(f.metadata["cls"], _merge_block_list(v, key), key + ".")
    if kind == "strlist":
        if isinstance(v, str):
            return (v,)
        if isinstance(v, list | tuple):
            return tuple(_coerce_scalar("str", x, f"{key}[{i}]") for i, x in enumerate(v))
        raise _SourceError(f"{key}: expected a list of strings, got {_type_name(v)}")
    if kind == "deflist":
        return _coerce_deflist(v, key)
    if kind in ("strmap", "durmap", "rawmap"):
        m = _merge_block_list(v, key)
        if kind == "rawmap":
            return dict(m)
        inner = "str" if kind == "strmap" else "dur"
        return {str(k): _coerce_scalar(inner, x, f"{key}.{k}") for k, x in m.items()}
    return _coerce_scalar(kind, v, key)


def _coerce_section(cls: type, raw: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Type-check ``raw`` against dataclass ``cls``; return a typed partial dict (only keys present).

    Unknown keys are errors (as in Consul), except a class's ``PASSTHROUGH`` keys, which are
    collected under ``extra``.
    """
    fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("kind") != "internal"}
    passthrough: frozenset[str] = getattr(cls, "PASSTHROUGH", frozenset())
    out: dict[str, Any] = {}
    for k, v in raw.items():
        f = fields.get(k)
        if v is None and f is not None and k != "extra":
            continue  # JSON null means "not set" (Go pointer fields), so the default applies
        if f is None or k == "extra":
            if k in passthrough:
                out.setdefault("extra", {})[k] = v
                continue
            raise _SourceError(f"invalid config key {prefix}{k}")
        out[k] = _coerce_value(f, v, prefix + k)
    return out


def _set_if_absent(d: dict[str, Any], path: Sequence[str], value: object) -> None:
    for p in path[:-1]:
        nxt = d.get(p)
        if isinstance(nxt, list):  # hcl2 block form
            nxt = _merge_block_list(nxt, p)
        if nxt is None:
            nxt = {}
        if not isinstance(nxt, dict):
            raise _SourceError(f"{p}: expected an object, got {_type_name(nxt)}")
        d[p] = nxt
        d = nxt
    d.setdefault(path[-1], value)


# Legacy / alias top-level keys -> canonical path.  Applied only when the canonical key is
# not also set in the same source (the modern spelling wins, as in Consul).
_TOP_ALIASES: dict[str, tuple[str, ...]] = {
    "ui": ("ui_config", "enabled"),
    "ui_dir": ("ui_config", "dir"),
    "ui_content_path": ("ui_config", "content_path"),
    "acl_token": ("acl", "tokens", "default"),
    "acl_agent_token": ("acl", "tokens", "agent"),
    "acl_agent_master_token": ("acl", "tokens", "agent_recovery"),
    "acl_master_token": ("acl", "tokens", "initial_management"),
    "acl_replication_token": ("acl", "tokens", "replication"),
    "acl_default_policy": ("acl", "default_policy"),
    "acl_down_policy": ("acl", "down_policy"),
    "acl_ttl": ("acl", "token_ttl"),
    "acl_datacenter": ("primary_datacenter",),
    "ca_file": ("tls", "defaults", "ca_file"),
    "ca_path": ("tls", "defaults", "ca_path"),
    "cert_file": ("tls", "defaults", "cert_file"),
    "key_file": ("tls", "defaults", "key_file"),
    "verify_incoming": ("tls", "defaults", "verify_incoming"),
    "verify_outgoing": ("tls", "defaults", "verify_outgoing"),
    "verify_server_hostname": ("tls", "internal_rpc", "verify_server_hostname"),
    "verify_incoming_https": ("tls", "https", "verify_incoming"),
    "verify_incoming_rpc": ("tls", "internal_rpc", "verify_incoming"),
    "tls_min_version": ("tls", "defaults", "tls_min_version"),
    "tls_cipher_suites": ("tls", "defaults", "tls_cipher_suites"),
}
# Alias keys whose values are appended to a list key.
_TOP_LIST_ALIASES: dict[str, str] = {
    "service": "services",
    "check": "checks",
    "recursor": "recursors",
    "start_join": "retry_join",
    "start_join_wan": "retry_join_wan",
}


def _normalise_source(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Rewrite legacy/alias keys into canonical ones (see the alias tables)."""
    out: dict[str, Any] = {}
    aliases: list[tuple[str, object]] = []
    for k, v in raw.items():
        if k in _TOP_ALIASES:
            aliases.append((k, v))
        elif k in _TOP_LIST_ALIASES:
            target = _TOP_LIST_ALIASES[k]
            items = v if isinstance(v, list) else [v]
            existing = out.get(target)
            out[target] = (existing if isinstance(existing, list) else [] if existing is None else [existing]) + items
        elif k == "acl":
            acl = _merge_block_list(v, "acl") if isinstance(v, list) else v
            if isinstance(acl, dict) and "tokens" in acl:
                acl = dict(acl)
                tokens = acl["tokens"]
                if isinstance(tokens, list):
                    tokens = _merge_block_list(tokens, "acl.tokens")
                if isinstance(tokens, dict):  # anything else is reported by type checking
                    tokens = dict(tokens)
                    if "master" in tokens:
                        tokens.setdefault("initial_management", tokens.pop("master"))
                    if "agent_master" in tokens:
                        tokens.setdefault("agent_recovery", tokens.pop("agent_master"))
                acl["tokens"] = tokens
            out[k] = acl
        elif k in out and isinstance(out[k], list):
            out[k] = out[k] + (v if isinstance(v, list) else [v])
        else:
            out[k] = v
    for k, v in aliases:
        _set_if_absent(out, _TOP_ALIASES[k], v)
    return out


def _coerce_source(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Normalise and type-check one configuration source; errors name the source."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"Error parsing {name}: top level must be an object, got {_type_name(raw)}")
    try:
        normalised = _normalise_source(raw)
        extra = {k: normalised.pop(k) for k in list(normalised) if k in _PASSTHROUGH_TOP}
        typed = _coerce_section(Config, normalised, "")
    except _SourceError as exc:
        raise ConfigError(f"Error parsing {name}: {exc}") from None
    if extra:
        typed["extra"] = extra
    return typed


def _merge_typed(a: dict[str, Any], b: Mapping[str, Any], cls: type) -> dict[str, Any]:
    """Merge typed partial dicts per Consul: scalars replaced, lists appended, maps merged."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = dict(a)
    for k, v in b.items():
        if k not in out:
            out[k] = v
            continue
        f = fields[k]
        kind = f.metadata.get("kind")
        if kind == "section":
            out[k] = _merge_typed(out[k], v, f.metadata["cls"])
        elif kind in ("strlist", "deflist"):
            out[k] = tuple(out[k]) + tuple(v)
        elif kind in ("strmap", "durmap", "rawmap") or k == "extra":
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def _construct(cls: type, typed: Mapping[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in typed:
            continue
        v = typed[f.name]
        if f.metadata.get("kind") == "section":
            v = _construct(f.metadata["cls"], v)
        kwargs[f.name] = v
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------
# Config files
# ---------------------------------------------------------------------------------------


# Consul parses HCL1, where a block body may use quoted keys (``node_meta { "rack-id" = "r1" }``);
# HCL2 only allows quoted keys in object expressions.  For keys that are user maps the two
# forms mean the same thing, so ``<map-key> {`` at the start of a line is rewritten to
# ``<map-key> = {`` before parsing.  Blocks that are not user maps are left alone.
_HCL_USER_MAP_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)(?P<key>node_meta|meta|service_meta|tagged_addresses|service_ttl|response_headers"
    r"|dashboard_url_templates|header)(?P<ws>[ \t]*)\{",
    re.MULTILINE,
)


def _hcl_loads(text: str) -> Any:
    import hcl2
    from hcl2.utils import SerializationOptions

    text = _HCL_USER_MAP_BLOCK.sub(lambda m: f"{m['indent']}{m['key']} = {{", text)

    options = SerializationOptions(
        with_comments=False,
        explicit_blocks=False,
        strip_string_quotes=True,
        preserve_heredocs=False,
        preserve_scientific_notation=False,
    )
    return hcl2.loads(text, serialization_options=options)


def _parse_text(text: str, fmt: str, name: str) -> Mapping[str, Any]:
    if fmt == "json":
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"Error parsing {name}: {exc}") from None
    else:
        try:
            data = _hcl_loads(text)
        # python-hcl2 surfaces lark's exception hierarchy plus assorted ValueErrors from its
        # transformer; any failure here is a syntax error in the user's file.
        except Exception as exc:  # noqa: BLE001
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"Error parsing {name}: {first}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Error parsing {name}: top level must be an object, got {_type_name(data)}")
    return data


def _format_for(path: Path, forced: str | None) -> str | None:
    if forced:
        return forced
    if path.suffix == ".json":
        return "json"
    if path.suffix == ".hcl":
        return "hcl"
    return None


def _load_file(path: Path, fmt: str) -> tuple[str, Mapping[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Error loading {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Error loading {path}: not UTF-8 text ({exc.reason})") from None
    return str(path), _parse_text(text, fmt, str(path))


def _load_path(p: str, forced: str | None, warnings: list[str]) -> list[tuple[str, Mapping[str, Any]]]:
    """Load one ``-config-file``/``-config-dir`` argument, as Consul does.

    Either flag may name a file or a directory.  A directory loads its entries in lexical
    order without recursion.  A file is parsed by its extension (``.json``/``.hcl``) unless
    ``-config-format`` forces one format for every file; a file with another extension and
    no forced format is skipped with a warning (Consul's behaviour, not an error).
    """
    path = Path(p)
    try:
        exists = path.exists()
        is_dir = path.is_dir()
    except OSError as exc:
        raise ConfigError(f"Error loading {p}: {exc}") from None
    if not exists:
        raise ConfigError(f"Error loading {p}: no such file or directory")
    if is_dir:
        try:
            candidates = [path / entry for entry in sorted(os.listdir(path))]
        except OSError as exc:
            raise ConfigError(f"Error loading {p}: {exc.strerror or exc}") from None
        candidates = [c for c in candidates if not c.is_dir()]
    else:
        candidates = [path]
    out = []
    for child in candidates:
        fmt = _format_for(child, forced)
        if fmt is None:
            warnings.append(
                f"skipping file {child}, extension must be .hcl or .json, or config format must be set"
            )
            continue
        out.append(_load_file(child, fmt))
    return out


# ---------------------------------------------------------------------------------------
# Command-line flags
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Flag:
    name: str
    kind: str  # bool | int | str | dur | list | meta | special
    path: tuple[str, ...]
    help: str
    metavar: str = ""


def _flag_table() -> dict[str, _Flag]:
    specs: list[tuple[str, str, str, str, str]] = [
        # name, kind, config path (dotted), metavar, help
        ("server", "bool", "server", "", "Run in server mode (Raft voter)."),
        ("bootstrap-expect", "int", "bootstrap_expect", "N", "Wait for N servers before bootstrapping Raft (requires -server)."),
        ("bootstrap", "bool", "bootstrap", "", "Self-elect as the single server (incompatible with -bootstrap-expect)."),
        ("ui", "bool", "ui_config.enabled", "", "Serve the web UI at /ui/."),
        ("ui-dir", "str", "ui_config.dir", "PATH", "Serve UI assets from this directory."),
        ("ui-content-path", "str", "ui_config.content_path", "PATH", "URL path the UI is served under (default /ui/)."),
        ("data-dir", "str", "data_dir", "PATH", "Directory for persistent state (required unless -dev)."),
        ("bind", "str", "bind_addr", "ADDR", "Cluster bind address (default 0.0.0.0)."),
        ("client", "str", "client_addr", "ADDR", "Address(es) for HTTP, HTTPS, DNS and gRPC (default 127.0.0.1)."),
        ("advertise", "str", "advertise_addr", "ADDR", "Address advertised to the cluster (default: bind address)."),
        ("advertise-wan", "str", "advertise_addr_wan", "ADDR", "Address advertised on the WAN (default: -advertise)."),
        ("serf-lan-bind", "str", "serf_lan", "ADDR", "Serf LAN bind address (default: -bind)."),
        ("serf-wan-bind", "str", "serf_wan", "ADDR", "Serf WAN bind address (default: -bind)."),
        ("retry-join", "list", "retry_join", "ADDR", "Address of an agent to join, retried until success (repeatable)."),
        ("join", "list", "retry_join", "ADDR", "Deprecated alias of -retry-join (repeatable)."),
        ("retry-interval", "dur", "retry_interval", "DUR", "Time between join attempts (default 30s)."),
        ("retry-max", "int", "retry_max", "N", "Maximum join attempts, 0 = forever (default 0)."),
        ("retry-join-wan", "list", "retry_join_wan", "ADDR", "WAN address to join, retried (repeatable)."),
        ("join-wan", "list", "retry_join_wan", "ADDR", "Deprecated alias of -retry-join-wan (repeatable)."),
        ("retry-interval-wan", "dur", "retry_interval_wan", "DUR", "Time between WAN join attempts (default 30s)."),
        ("retry-max-wan", "int", "retry_max_wan", "N", "Maximum WAN join attempts, 0 = forever."),
        ("rejoin", "bool", "rejoin_after_leave", "", "Rejoin the cluster using the previous state after a leave."),
        ("domain", "str", "domain", "DOMAIN", "DNS domain to answer for (default consul.)."),
        ("alt-domain", "str", "alt_domain", "DOMAIN", "Alternate DNS domain to answer for."),
        ("recursor", "list", "recursors", "ADDR", "Upstream DNS server for out-of-zone queries (repeatable)."),
        ("disable-host-node-id", "bool", "disable_host_node_id", "", "Use a random node ID instead of one derived from the host (default true)."),
        ("dev", "bool", "dev_mode", "", "Development mode: in-memory single server, UI on, debug logging."),
        ("node", "str", "node_name", "NAME", "Node name (default: hostname)."),
        ("node-id", "str", "node_id", "UUID", "Node ID (default: generated and persisted in the data dir)."),
        ("node-meta", "meta", "node_meta", "KEY:VALUE", "Node metadata pair (repeatable)."),
        ("datacenter", "str", "datacenter", "DC", "Datacenter name (default dc1)."),
        ("http-port", "int", "ports.http", "PORT", "HTTP API port (default 8500, -1 disables)."),
        ("https-port", "int", "ports.https", "PORT", "HTTPS API port (default -1, disabled)."),
        ("dns-port", "int", "ports.dns", "PORT", "DNS port (default 8600, -1 disables)."),
        ("grpc-port", "int", "ports.grpc", "PORT", "gRPC port (default -1; 8502 in -dev)."),
        ("grpc-tls-port", "int", "ports.grpc_tls", "PORT", "gRPC TLS port (default 8503)."),
        ("serf-lan-port", "int", "ports.serf_lan", "PORT", "Serf LAN port (default 8301)."),
        ("serf-wan-port", "int", "ports.serf_wan", "PORT", "Serf WAN port (default 8302, -1 disables)."),
        ("server-port", "int", "ports.server", "PORT", "Server RPC port (default 8300)."),
        ("config-file", "special", "", "PATH", "Load a JSON or HCL config file; a directory is loaded like -config-dir (repeatable)."),
        ("config-dir", "special", "", "PATH", "Load *.json and *.hcl files from a directory, in lexical order (repeatable)."),
        ("config-format", "special", "", "json|hcl", "Format of config files regardless of extension."),
        ("hcl", "special", "", "HCL", "HCL configuration fragment, applied after config files (repeatable)."),
        ("log-level", "str", "log_level", "LEVEL", "trace, debug, info, warn or error (default info)."),
        ("log-json", "bool", "log_json", "", "Log in JSON format."),
        ("log-file", "str", "log_file", "PATH", "Also write logs to this file."),
        ("log-rotate-bytes", "int", "log_rotate_bytes", "N", "Rotate the log file after N bytes."),
        ("log-rotate-duration", "dur", "log_rotate_duration", "DUR", "Rotate the log file after this long."),
        ("log-rotate-max-files", "int", "log_rotate_max_files", "N", "Number of rotated log files to keep."),
        ("syslog", "bool", "enable_syslog", "", "Also log to syslog."),
        ("pid-file", "str", "pid_file", "PATH", "Write the agent's PID to this file."),
        ("encrypt", "str", "encrypt", "KEY", "Base64 gossip encryption key (see `keygen`)."),
        ("disable-keyring-file", "bool", "disable_keyring_file", "", "Do not persist the gossip keyring."),
        ("enable-script-checks", "bool", "enable_script_checks", "", "Allow script checks from the API and config files."),
        ("enable-local-script-checks", "bool", "enable_local_script_checks", "", "Allow script checks from config files only."),
        ("default-query-time", "dur", "default_query_time", "DUR", "Default blocking query wait (default 300s)."),
        ("max-query-time", "dur", "max_query_time", "DUR", "Maximum blocking query wait (default 600s)."),
        ("raft-protocol", "int", "raft_protocol", "N", "Raft protocol version (only 3 is supported)."),
        ("protocol", "int", "protocol", "N", "Serf protocol version (default 2)."),
        ("auto-reload-config", "bool", "auto_reload_config", "", "Reload when config files change."),
    ]
    return {
        name: _Flag(name, kind, tuple(path.split(".")) if path else (), help_, metavar)
        for name, kind, path, metavar, help_ in specs
    }


_FLAGS = _flag_table()


def _build_usage() -> str:
    lines = [
        "Usage: muster agent [options]",
        "",
        "  Starts the agent and runs until an interrupt is received. Flags use Consul's",
        "  syntax: -flag=value, -flag value, or --flag; boolean flags take no value",
        "  (-server) or an explicit one (-server=false).",
        "",
        "Options:",
        "",
    ]
    for flag in _FLAGS.values():
        head = f"  -{flag.name}" + (f"={flag.metavar}" if flag.metavar else "")
        lines.append(head)
        lines.append(f"      {flag.help}")
    return "\n".join(lines) + "\n"


USAGE: str = _build_usage()
"""Help text for ``muster agent`` (one entry per flag)."""


def _set_path(d: dict[str, Any], path: Sequence[str], value: object) -> None:
    for p in path[:-1]:
        d = d.setdefault(p, {})
    d[path[-1]] = value


def _append_path(d: dict[str, Any], path: Sequence[str], value: object) -> None:
    for p in path[:-1]:
        d = d.setdefault(p, {})
    d.setdefault(path[-1], []).append(value)


def _parse_meta_pair(raw: str) -> tuple[str, str]:
    """``-node-meta key:value``; without ``:`` the value is empty (Consul's parseMetaPair)."""
    key, sep, value = raw.partition(":")
    return key, value if sep else ""


@dataclass
class _ParsedFlags:
    raw: dict[str, Any]
    set_flags: set[str]
    config_paths: list[str]
    config_format: str | None
    hcl: list[str]


def _parse_flags(argv: Sequence[str]) -> _ParsedFlags:
    """Tokenise ``argv`` with Go ``flag`` package rules (single or double dash, ``=`` or
    separate value, bool flags never consume the next argument, ``--`` ends flags)."""
    parsed = _ParsedFlags({}, set(), [], None, [])
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            if i < len(args):
                raise UsageError(f"unexpected argument {args[i]!r}")
            break
        if len(arg) < 2 or arg[0] != "-":
            raise UsageError(f"unexpected argument {arg!r}")
        name = arg[2:] if arg.startswith("--") else arg[1:]
        if not name or name[0] in "-=":
            raise UsageError(f"bad flag syntax: {arg}")
        name, has_value, value = name.partition("=")
        if name in ("h", "help"):
            raise HelpRequested()
        flag = _FLAGS.get(name)
        if flag is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if flag.kind == "bool":
            if has_value:
                try:
                    bval = parse_go_bool(value)
                except ValueError:
                    raise ConfigError(f'invalid boolean value "{value}" for -{name}: parse error') from None
            else:
                bval = True
            _set_path(parsed.raw, flag.path, bval)
            parsed.set_flags.add(name)
            continue
        if not has_value:
            if i >= len(args):
                raise UsageError(f"flag needs an argument: -{name}")
            value = args[i]
            i += 1
        parsed.set_flags.add(name)
        _apply_flag_value(parsed, flag, value)
    return parsed


def _apply_flag_value(parsed: _ParsedFlags, flag: _Flag, value: str) -> None:
    def bad(reason: str) -> ConfigError:
        return ConfigError(f'invalid value "{value}" for flag -{flag.name}: {reason}')

    if flag.kind == "int":
        try:
            _set_path(parsed.raw, flag.path, _parse_go_int(value))
        except ValueError as exc:
            raise bad(str(exc)) from None
    elif flag.kind == "dur":
        try:
            parse_duration(value)
        except ValueError as exc:
            raise bad(str(exc)) from None
        _set_path(parsed.raw, flag.path, value)
    elif flag.kind == "str":
        _set_path(parsed.raw, flag.path, value)
    elif flag.kind == "list":
        _append_path(parsed.raw, flag.path, value)
    elif flag.kind == "meta":
        key, val = _parse_meta_pair(value)
        parsed.raw.setdefault("node_meta", {})[key] = val
    elif flag.name in ("config-file", "config-dir"):
        parsed.config_paths.append(value)
    elif flag.name == "config-format":
        if value not in ("json", "hcl"):
            raise bad("must be json or hcl")
        parsed.config_format = value
    elif flag.name == "hcl":
        parsed.hcl.append(value)
    else:
        raise AssertionError(f"unhandled flag {flag.name}")


# ---------------------------------------------------------------------------------------
# Building and validating
# ---------------------------------------------------------------------------------------

# Applied between the built-in defaults and config files when -dev is given (Consul DevSource).
_DEV_SOURCE: dict[str, Any] = {
    "bind_addr": "127.0.0.1",
    "client_addr": "127.0.0.1",
    "server": True,
    "bootstrap": True,
    "ui_config": {"enabled": True},
    "log_level": "debug",
    "ports": {"grpc": 8502},
    "performance": {"raft_multiplier": 1},
    "disable_anonymous_signature": True,
    "disable_keyring_file": True,
    "enable_debug": True,
}

_DC_RE = re.compile(r"[a-z0-9_-]+")
_DNS_LABEL_RE = re.compile(r"[A-Za-z0-9-]+")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_META_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "off")
_LISTENER_PORTS = ("dns", "http", "https", "grpc", "grpc_tls")

META_MAX_PAIRS = 64
META_MAX_KEY_LEN = 128
META_MAX_VALUE_LEN = 512
_META_RESERVED_PREFIX = "consul-"
# Keys with the reserved prefix that Consul itself sets and therefore accepts.
_META_RESERVED_ALLOWED = frozenset({"consul-network-segment", "consul-version"})


def _is_template(s: str) -> bool:
    return "{{" in s


def _check_ip(value: str, what: str, *, allow_unix: bool = False) -> None:
    if _is_template(value):
        return  # go-sockaddr template: resolved by the agent at start (contract §6.3)
    if allow_unix and value.startswith("unix://"):
        return
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        raise ConfigError(f"{what}: {value!r} is not a valid IP address or go-sockaddr template") from None


def validate_node_meta(meta: Mapping[str, str]) -> None:
    """Consul's node metadata rules (contract §9 #16).  Raises ``ConfigError``."""
    if len(meta) > META_MAX_PAIRS:
        raise ConfigError(f"node_meta: cannot contain more than {META_MAX_PAIRS} key/value pairs")
    for k, v in meta.items():
        if not k:
            raise ConfigError("node_meta: key cannot be blank")
        if not _META_KEY_RE.fullmatch(k):
            raise ConfigError(f"node_meta: key {k!r} contains invalid characters (allowed: A-Z a-z 0-9 _ -)")
        if len(k) > META_MAX_KEY_LEN:
            raise ConfigError(f"node_meta: key {k!r} is too long (limit: {META_MAX_KEY_LEN} characters)")
        if k.startswith(_META_RESERVED_PREFIX) and k not in _META_RESERVED_ALLOWED:
            raise ConfigError(f"node_meta: key {k!r} uses the reserved prefix '{_META_RESERVED_PREFIX}'")
        if len(v) > META_MAX_VALUE_LEN:
            raise ConfigError(f"node_meta: value for key {k!r} is too long (limit: {META_MAX_VALUE_LEN} characters)")


def _fqdn(domain: str) -> str:
    d = domain.strip().lower()
    return d if d.endswith(".") else d + "."


def _finalise(cfg: Config) -> Config:
    """Normalise derived values and check cross-field rules; return the final Config."""
    warnings = list(cfg.warnings)
    changes: dict[str, Any] = {}

    datacenter = cfg.datacenter.lower()
    if not datacenter:
        raise ConfigError("datacenter cannot be empty")
    if not _DC_RE.fullmatch(datacenter):
        raise ConfigError(f"datacenter {cfg.datacenter!r} can only contain lowercase alphanumeric, - or _ characters")
    changes["datacenter"] = datacenter
    primary = cfg.primary_datacenter.lower()
    if primary and not _DC_RE.fullmatch(primary):
        raise ConfigError(
            f"primary_datacenter {cfg.primary_datacenter!r} can only contain lowercase alphanumeric, - or _ characters"
        )
    changes["primary_datacenter"] = primary

    if not cfg.node_name:
        raise ConfigError("node_name cannot be empty")
    if not _DNS_LABEL_RE.fullmatch(cfg.node_name):
        warnings.append(
            f"Node name {cfg.node_name!r} will not be discoverable via DNS due to invalid characters. "
            "Valid characters include all alpha-numerics and dashes."
        )
    elif len(cfg.node_name) > 63:
        warnings.append(
            f"Node name {cfg.node_name!r} will not be discoverable via DNS due to it being too long. "
            "Valid lengths are between 1 and 63 bytes."
        )
    if cfg.node_id is not None and cfg.node_id != "":
        if not _UUID_RE.fullmatch(cfg.node_id):
            raise ConfigError(f"node_id {cfg.node_id!r} is not a valid UUID (want 36-character 8-4-4-4-12 hex form)")
        changes["node_id"] = cfg.node_id.lower()
    else:
        changes["node_id"] = None

    if cfg.dev_mode and cfg.bootstrap_expect > 0:
        raise ConfigError("'bootstrap_expect > 0' not allowed in dev mode")
    if cfg.bootstrap_expect < 0:
        raise ConfigError(f"bootstrap_expect cannot be {cfg.bootstrap_expect}. Must be greater than or equal to zero")
    bootstrap, expect = cfg.bootstrap, cfg.bootstrap_expect
    if expect > 0 and bootstrap:
        raise ConfigError("'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive")
    if expect > 0 and not cfg.server:
        raise ConfigError("'bootstrap_expect > 0' requires server mode")
    if bootstrap and not cfg.server:
        raise ConfigError("'bootstrap = true' requires server mode")
    if expect == 1:
        bootstrap, expect = True, 0
        warnings.append("bootstrap_expect = 1: this is the same as bootstrap mode")
    elif expect == 2:
        warnings.append("bootstrap_expect = 2: a cluster with 2 servers will be unable to tolerate any failure")
    elif expect > 2 and expect % 2 == 0:
        warnings.append(f"bootstrap_expect is even ({expect}); odd server counts are recommended")
    changes["bootstrap"], changes["bootstrap_expect"] = bootstrap, expect

    if not cfg.dev_mode and not cfg.data_dir:
        raise ConfigError("data_dir cannot be empty: set -data-dir or data_dir (or use -dev)")

    if cfg.raft_protocol != 3:
        raise ConfigError(f"raft_protocol version {cfg.raft_protocol} is not supported (only 3)")

    level = cfg.log_level.lower()
    if level == "warning":
        level = "warn"
    if level == "err":
        level = "error"
    if level not in _LOG_LEVELS:
        raise ConfigError(f"Invalid log level: {cfg.log_level!r}. Valid log levels are: trace, debug, info, warn, error")
    changes["log_level"] = level

    ports: dict[str, int] = {}
    for f in dataclasses.fields(Ports):
        p = getattr(cfg.ports, f.name)
        if f.name in _LISTENER_PORTS or f.name == "serf_wan":
            if p <= 0:
                p = -1
        elif p <= 0:
            raise ConfigError(f"ports.{f.name} must be between 1 and 65535, got {p}")
        if p > 65535:
            raise ConfigError(f"ports.{f.name} must be between 1 and 65535 (or -1 to disable), got {p}")
        ports[f.name] = p
    changes["ports"] = Ports(**ports)

    _check_ip(cfg.bind_addr, "bind_addr")
    if not cfg.client_addrs:
        raise ConfigError("client_addr cannot be empty")
    if not _is_template(cfg.client_addr):
        for a in cfg.client_addrs:
            _check_ip(a, "client_addr", allow_unix=True)
    for name in ("advertise_addr", "advertise_addr_wan", "serf_lan", "serf_wan"):
        v = getattr(cfg, name)
        if v:
            _check_ip(v, name)
    for f in dataclasses.fields(Addresses):
        v = getattr(cfg.addresses, f.name)
        if v and not _is_template(v):
            for a in v.split():
                _check_ip(a, f"addresses.{f.name}", allow_unix=True)

    validate_node_meta(cfg.node_meta)

    if cfg.encrypt:
        try:
            key = base64.b64decode(cfg.encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError("encrypt: invalid base64 gossip key") from None
        if len(key) not in (16, 24, 32):
            raise ConfigError(f"encrypt: gossip key must be 16, 24 or 32 bytes, got {len(key)}")

    if not cfg.domain.strip():
        raise ConfigError("domain cannot be empty")
    changes["domain"] = _fqdn(cfg.domain)
    changes["alt_domain"] = _fqdn(cfg.alt_domain) if cfg.alt_domain.strip() else ""
    if changes["alt_domain"] and changes["alt_domain"] == changes["domain"]:
        raise ConfigError("alt_domain cannot be the same as domain")

    for name in ("default_query_time", "max_query_time", "retry_interval", "retry_interval_wan", "session_ttl_min"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{name} must be > 0")
    if cfg.retry_max < 0 or cfg.retry_max_wan < 0:
        raise ConfigError("retry_max cannot be negative")
    if cfg.check_output_max_size < 1:
        raise ConfigError("check_output_max_size must be greater than 0")
    if not 1 <= cfg.performance.raft_multiplier <= 10:
        raise ConfigError(f"performance.raft_multiplier cannot be {cfg.performance.raft_multiplier}. Must be between 1 and 10")
    if cfg.acl.default_policy not in ("allow", "deny"):
        raise ConfigError(f"acl.default_policy must be allow or deny, got {cfg.acl.default_policy!r}")
    if cfg.acl.down_policy not in ("allow", "deny", "extend-cache", "async-cache"):
        raise ConfigError(
            f"acl.down_policy must be allow, deny, extend-cache or async-cache, got {cfg.acl.down_policy!r}"
        )
    if cfg.dns_config.recursor_strategy not in ("sequential", "random"):
        raise ConfigError(
            f"dns_config.recursor_strategy must be sequential or random, got {cfg.dns_config.recursor_strategy!r}"
        )
    if cfg.dns_config.udp_answer_limit < 0 or cfg.dns_config.a_record_limit < 0:
        raise ConfigError("dns_config answer limits cannot be negative")
    for kind_name in ("services", "checks"):
        for i, d in enumerate(getattr(cfg, kind_name)):
            if not isinstance(d, Mapping):
                raise ConfigError(f"{kind_name}[{i}]: expected an object")

    changes["leave_on_terminate"] = (
        cfg.leave_on_terminate if cfg.leave_on_terminate is not None else not cfg.server
    )
    changes["skip_leave_on_interrupt"] = (
        cfg.skip_leave_on_interrupt if cfg.skip_leave_on_interrupt is not None else cfg.server
    )
    changes["warnings"] = tuple(warnings)
    return dataclasses.replace(cfg, **changes)


def _build(sources: Iterable[tuple[str, Mapping[str, Any]]], *, set_flags: Iterable[str] = (),
           config_files: Sequence[str] = (), warnings: Sequence[str] = ()) -> Config:
    typed: dict[str, Any] = {}
    for name, raw in sources:
        typed = _merge_typed(typed, _coerce_source(raw, name), Config)
    cfg = _construct(Config, typed)
    cfg = dataclasses.replace(
        cfg, set_flags=frozenset(set_flags), config_files=tuple(config_files), warnings=tuple(warnings)
    )
    return _finalise(cfg)


def config_from_dict(raw: Mapping[str, Any], *, dev: bool = False) -> Config:
    """Build and validate a Config from one JSON-like dict of config keys (as in a JSON file).

    ``dev=True`` layers the ``-dev`` defaults underneath, exactly as the flag does.  Meant for
    tests and embedding; the agent uses :func:`parse_agent_flags`.
    """
    sources: list[tuple[str, Mapping[str, Any]]] = []
    if dev:
        sources.append(("-dev defaults", {**_DEV_SOURCE, "dev_mode": True}))
    sources.append(("config", raw))
    return _build(sources)


def parse_agent_flags(argv: Sequence[str]) -> Config:
    """Parse ``muster agent`` arguments (without the word ``agent``), load the config files they
    name, merge everything and validate.

    Raises :class:`UsageError` for a malformed command line (unknown flag, missing value,
    positional argument), :class:`HelpRequested` for ``-h``, and :class:`ConfigError` for bad
    values, unreadable/invalid files and failed validation.
    """
    parsed = _parse_flags(argv)
    sources: list[tuple[str, Mapping[str, Any]]] = []
    if parsed.raw.get("dev_mode"):
        sources.append(("-dev defaults", _DEV_SOURCE))
    files: list[str] = []
    warnings: list[str] = []
    for p in parsed.config_paths:
        for name, data in _load_path(p, parsed.config_format, warnings):
            files.append(name)
            sources.append((name, data))
    for i, frag in enumerate(parsed.hcl):
        sources.append((f"-hcl fragment {i + 1}", _parse_text(frag, "hcl", f"-hcl fragment {i + 1}")))
    sources.append(("command-line flags", parsed.raw))
    return _build(sources, set_flags=parsed.set_flags, config_files=files, warnings=warnings)


# ---------------------------------------------------------------------------------------
# Reload support
# ---------------------------------------------------------------------------------------


def _get_path(cfg: Config, dotted: str) -> Any:
    obj: Any = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def changed_keys(old: Config, new: Config) -> frozenset[str]:
    """Top-level config keys whose values differ (``acl.tokens`` is reported separately from
    the rest of ``acl``); provenance fields (set_flags, config_files, warnings) are ignored."""
    out: set[str] = set()
    for f in dataclasses.fields(Config):
        if f.metadata.get("kind") == "internal" and f.name != "extra":
            continue
        if f.name == "acl":
            if old.acl.tokens != new.acl.tokens:
                out.add("acl.tokens")
            if dataclasses.replace(old.acl, tokens=new.acl.tokens) != new.acl:
                out.add("acl")
            continue
        if getattr(old, f.name) != getattr(new, f.name):
            out.add(f.name)
    return frozenset(out)


def reloadable_diff(old: Config, new: Config) -> frozenset[str]:
    """The subset of :data:`RELOADABLE_KEYS` whose value changed between ``old`` and ``new``.

    Anything else in :func:`changed_keys` needs a restart; the agent should log it.
    """
    return frozenset(k for k in RELOADABLE_KEYS if _get_path(old, k) != _get_path(new, k))


def non_reloadable_diff(old: Config, new: Config) -> frozenset[str]:
    """Changed keys that a reload cannot apply (the agent keeps the old values and warns)."""
    return changed_keys(old, new) - frozenset(RELOADABLE_KEYS)

