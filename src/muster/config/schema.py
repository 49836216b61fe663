"""The configuration schema: one frozen dataclass per block, each field tagged with a *kind*.

The kind (in the field's metadata) drives everything generic about a key: how a value from
a file, fragment or flag is type-checked (:mod:`.coerce`), how two sources merge
(:mod:`.merge`) and how the reload diff compares it (:mod:`.reload`).  Adding a key is
declaring a field here with the right kind; see the package docstring for the other steps.

Defaults follow Consul's ``agent/config/default.go``.  Durations are float seconds.
"""

from __future__ import annotations

import dataclasses
import math
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "ACLConfig",
    "ACLTokens",
    "Addresses",
    "AuditConfig",
    "AutopilotConfig",
    "Config",
    "DNSConfig",
    "DNSSOA",
    "HTTPConfig",
    "KVHistoryConfig",
    "LimitsConfig",
    "PASSTHROUGH_TOP",
    "PerformanceConfig",
    "Ports",
    "TLSConfig",
    "TLSProtocolConfig",
    "TelemetryConfig",
    "UIConfig",
]

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
    #: True when ``initial_management`` came from a pre-1.11 key (``acl.tokens.master`` or
    #: ``acl_master_token``): the token is then described as those servers did ("Master Token").
    initial_management_legacy: bool = field(default=False, metadata={"kind": "internal"})


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
    """``dns_config`` block (docs/compat/dns.md)."""

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
    """``limits`` block.  ``kv_max_value_size``/``txn_max_req_len`` are 512 KiB (docs/compat/kv.md#limits)."""

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
    """``autopilot`` block; defaults as served by ``/v1/operator/autopilot/configuration`` (docs/compat/operator.md#autopilot)."""

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
class AuditConfig:
    """``audit`` block: Consul Enterprise's shape (``enabled`` and named ``sink`` blocks, each a
    JSON file sink with ``path``, ``rotate_bytes``, ``rotate_duration``, ``rotate_max_files``,
    ``mode``...) or, for one file, the flat ``path``/``rotate_max_bytes``/``rotate_max_files``.
    ``validate.audit_file_sinks`` checks it and returns the sinks."""

    enabled: bool = _f(False, "bool")
    path: str = _f("", "str")
    rotate_max_bytes: int = _f(0, "int")
    rotate_max_files: int = _f(0, "int")
    rotate_duration: float = _f(0.0, "dur")
    mode: str = _f("0600", "str")
    sink: Mapping[str, Any] = _fm("rawmap")


@dataclass(frozen=True)
class KVHistoryConfig:
    """``kv_history`` block (a Muster extension, docs/kv-history.md): how many versions of each
    KV key the servers keep, and for how long.  Every server must use the same values."""

    enabled: bool = _f(True, "bool")
    versions: int = _f(10, "int")
    max_age: float = _f(7 * 24 * 3600.0, "dur")


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
PASSTHROUGH_TOP = frozenset(
    {
        "advertise_addrs", "advertise_addr_ipv4", "advertise_addr_ipv6", "advertise_addr_wan_ipv4",
        "advertise_addr_wan_ipv6", "advertise_reconnect_timeout", "auto_config", "auto_encrypt",
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
    audit: AuditConfig = _fs(AuditConfig)
    kv_history: KVHistoryConfig = _fs(KVHistoryConfig)
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
