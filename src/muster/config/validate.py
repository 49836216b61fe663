"""Validation and finalisation: the cross-field rules and the derived values of a built Config.

:func:`finalise` runs :data:`FINALISE_STEPS` in order on the merged configuration.  Each step
is a named function ``step(cfg, changes, warnings)`` that checks one concern, raises
:class:`ConfigError` with a user-facing message, records normalised values in ``changes``
(applied to the Config once, at the end, with ``dataclasses.replace``) and appends warnings.
Steps read ``cfg`` (the merged values), never ``changes``, so their order only decides which
error is reported first when a configuration has several; keep it stable.

To validate a new key: add a step (or a line to the step of its block) and list it in
:data:`FINALISE_STEPS`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..telemetry.audit import FileSinkSpec
from .coerce import coerce_scalar
from .errors import ConfigError, SourceError
from .schema import Addresses, Config, Ports

__all__ = [
    "FINALISE_STEPS",
    "audit_file_sinks",
    "META_MAX_KEY_LEN",
    "META_MAX_PAIRS",
    "META_MAX_VALUE_LEN",
    "finalise",
    "validate_node_meta",
]

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
        return  # go-sockaddr template: resolved by the agent at start (docs/compat/config.md#address-templates)
    if allow_unix and value.startswith("unix://"):
        return
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        raise ConfigError(f"{what}: {value!r} is not a valid IP address or go-sockaddr template") from None


def validate_node_meta(meta: Mapping[str, str]) -> None:
    """Consul's node metadata rules (docs/compat/config.md#node-metadata).  Raises ``ConfigError``."""
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

Step = Callable[[Config, dict[str, Any], list[str]], None]
"""One finalisation step: ``step(cfg, changes, warnings)``; raises :class:`ConfigError`."""


def _datacenters(cfg: Config, changes: dict[str, Any], warnings: list[str]) -> None:
    """``datacenter`` (required) and ``primary_datacenter``: lowercased, ``[a-z0-9_-]+``."""
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


def _node_identity(cfg: Config, changes: dict[str, Any], warnings: list[str]) -> None:
    """``node_name`` (required; a warning if DNS cannot serve it) and ``node_id`` (a UUID, lowercased)."""
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


def _bootstrap(cfg: Config, changes: dict[str, Any], warnings: list[str]) -> None:
    """``bootstrap`` vs ``bootstrap_expect``: exclusive, server-only; ``expect = 1`` means bootstrap.

    As in Consul's config builder, ``expect = 1`` becomes ``bootstrap = true`` (with its warning)
    *before* the checks, so ``-dev -bootstrap-expect 1`` (python-consul2's test agents) and
    ``bootstrap = true`` with ``bootstrap_expect = 1`` are accepted; ``expect >= 2`` is not in
    ``-dev`` nor with ``bootstrap``.
    """
    bootstrap, expect = cfg.bootstrap, cfg.bootstrap_expect
    if expect == 1:
        bootstrap, expect = True, 0
        warnings.append("BootstrapExpect is set to 1; this is the same as Bootstrap mode.")
    if cfg.dev_mode and expect > 0:
        raise ConfigError("'bootstrap_expect > 0' not allowed in dev mode")
    if expect < 0:
        raise ConfigError(f"bootstrap_expect cannot be {expect}. Must be greater than or equal to zero")
    if expect > 0 and bootstrap:
        raise ConfigError("'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive")
    if expect > 0 and not cfg.server:
        raise ConfigError("'bootstrap_expect > 0' requires server mode")
    if bootstrap and not cfg.server:
        raise ConfigError("'bootstrap = true' requires server mode")
    if expect == 2:
        warnings.append("bootstrap_expect = 2: a cluster with 2 servers will be unable to tolerate any failure")
    elif expect > 2 and expect % 2 == 0:
        warnings.append(f"bootstrap_expect is even ({expect}); odd server counts are recommended")
    changes["bootstrap"], changes["bootstrap_expect"] = bootstrap, expect


def _data_dir(cfg: Config, changes: dict[str, Any], warnings: list[str]) -> None:
    """``data_dir`` is required outside ``-dev``."""
    if not cfg.dev_mode and not cfg.data_dir:
        raise ConfigError("data_dir cannot be empty: set -data-dir or data_dir (or use -dev)")


def _raft_protocol(cfg: Config, changes: dict[str, Any], warnings: list[str]) -> None:
    """Only Raft protocol 3 is implemented."""
    if cfg.raft_protocol != 3:
        raise ConfigError(f"raft_protocol version {cfg.raft_protocol} is not supported (only 3)")


def _log_level(cfg: Config, changes: dict[str, Any], warnings: list[str]) -> None:
    """``log_level``: lowercased; ``warning``/``err`` are accepted as ``warn``/``error``."""
    level = cfg.log_level.lower()
    if level == "warning":
        level = "warn"
    if level == "err":
        level = "error"
    if level not in _LOG_LEVELS:
        raise ConfigError(f"Invalid log level: {cfg.log_level!r}. Valid log levels are: trace, debug, info, warn, error")
    changes["log_level"] = level


def _ports(cfg: Config, changes: dict[str, Any], warnings: list[str]) -> None:
    """Ports are 1..65535; a listener (and the Serf WAN port) at <= 0 is disabled, stored as -1."""
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


def _addresses(cfg: Config, changes: dict[str, Any], warnings: list[str]) -> None:
    """Bind, client, advertise and per-listener addresses: IPs or go-sockaddr templates."""
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


def _node_meta(cfg: Config, changes: dict[str, Any], warnings: list[str]) -> None:
    """``node_meta`` obeys Consul's limits (see :func:`validate_node_meta`)."""
    validate_node_meta(cfg.node_meta)


def _gossip_key(cfg: Config, changes: dict[str, Any], warnings: list[str]) -> None:
    """``encrypt``: base64 of a 16, 24 or 32-byte key."""
    if cfg.encrypt:
        try:
            key = base64.b64decode(cfg.encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError("encrypt: invalid base64 gossip key") from None
        if len(key) not in (16, 24, 32):
            raise ConfigError(f"encrypt: gossip key must be 16, 24 or 32 bytes, got {len(key)}")


def _domains(cfg: Config, changes: dict[str, Any], warnings: list[str]) -> None:
    """``domain`` (required) and ``alt_domain``: lowercase, fully qualified, distinct."""
    if not cfg.domain.strip():
        raise ConfigError("domain cannot be empty")
    changes["domain"] = _fqdn(cfg.domain)
    changes["alt_domain"] = _fqdn(cfg.alt_domain) if cfg.alt_domain.strip() else ""
    if changes["alt_domain"] and changes["alt_domain"] == changes["domain"]:
        raise ConfigError("alt_domain cannot be the same as domain")


def _timers_and_limits(cfg: Config, changes: dict[str, Any], warnings: list[str]) -> None:
    """Query and retry timers are positive; retry counts and check output size are in range;
    ``performance.raft_multiplier`` is 1..10; ``kv_history.versions`` is 1..1000."""
    for name in ("default_query_time", "max_query_time", "retry_interval", "retry_interval_wan", "session_ttl_min"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{name} must be > 0")
    if cfg.retry_max < 0 or cfg.retry_max_wan < 0:
        raise ConfigError("retry_max cannot be negative")
    if cfg.check_output_max_size < 1:
        raise ConfigError("check_output_max_size must be greater than 0")
    if not 1 <= cfg.performance.raft_multiplier <= 10:
        raise ConfigError(f"performance.raft_multiplier cannot be {cfg.performance.raft_multiplier}. Must be between 1 and 10")
    if cfg.kv_history.versions < 1 or cfg.kv_history.versions > 1000:
        raise ConfigError(f"kv_history.versions must be between 1 and 1000, got {cfg.kv_history.versions}")
    if cfg.kv_history.max_age < 0:
        raise ConfigError("kv_history.max_age cannot be negative")


def _acl(cfg: Config, changes: dict[str, Any], warnings: list[str]) -> None:
    """``acl.default_policy`` and ``acl.down_policy`` are among Consul's values."""
    if cfg.acl.default_policy not in ("allow", "deny"):
        raise ConfigError(f"acl.default_policy must be allow or deny, got {cfg.acl.default_policy!r}")
    if cfg.acl.down_policy not in ("allow", "deny", "extend-cache", "async-cache"):
        raise ConfigError(
            f"acl.down_policy must be allow, deny, extend-cache or async-cache, got {cfg.acl.down_policy!r}"
        )


_SINK_KEYS = frozenset(
    {"type", "format", "path", "delivery_guarantee", "mode", "rotate_duration", "rotate_bytes", "rotate_max_files"}
)


def _file_mode(v: str, key: str) -> int:
    try:
        mode = int(v, 8)
    except ValueError:
        raise ConfigError(f"{key}: invalid file mode {v!r} (octal, e.g. \"0600\")") from None
    if not 0 <= mode <= 0o777:
        raise ConfigError(f"{key}: invalid file mode {v!r} (octal, e.g. \"0600\")")
    return mode


def audit_file_sinks(cfg: Config) -> tuple[FileSinkSpec, ...]:
    """The audit log's file sinks (none when ``audit.enabled`` is false), checked.

    Consul Enterprise's named sinks (``sink "name" { type = "file"  format = "json" ... }``)
    come first, in name order; the flat form (``path``, ``rotate_max_bytes``,
    ``rotate_max_files``, ``rotate_duration``, ``mode``) adds one sink named ``file``."""
    a = cfg.audit
    if not a.enabled:
        return ()
    out: list[FileSinkSpec] = []
    for name in sorted(a.sink):
        raw = a.sink[name]
        key = f"audit.sink.{name}"
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{key}: expected an object")
        unknown = sorted(set(raw) - _SINK_KEYS)
        if unknown:
            raise ConfigError(f"invalid config key {key}.{unknown[0]}")
        try:
            kind = coerce_scalar("str", raw.get("type", "file"), f"{key}.type")
            fmt = coerce_scalar("str", raw.get("format", "json"), f"{key}.format")
            guarantee = coerce_scalar("str", raw.get("delivery_guarantee", "best-effort"), f"{key}.delivery_guarantee")
            path = coerce_scalar("str", raw.get("path", ""), f"{key}.path")
            rotate_bytes = coerce_scalar("int", raw.get("rotate_bytes", 0), f"{key}.rotate_bytes")
            rotate_duration = coerce_scalar("dur", raw.get("rotate_duration", "0s"), f"{key}.rotate_duration")
            rotate_max_files = coerce_scalar("int", raw.get("rotate_max_files", 0), f"{key}.rotate_max_files")
            mode = coerce_scalar("str", raw.get("mode", "0600"), f"{key}.mode")
        except SourceError as exc:
            raise ConfigError(str(exc)) from None
        if kind != "file":
            raise ConfigError(f'{key}.type: only "file" sinks are supported, got {kind!r}')
        if fmt != "json":
            raise ConfigError(f'{key}.format: only "json" is supported, got {fmt!r}')
        if guarantee != "best-effort":
            raise ConfigError(f'{key}.delivery_guarantee: only "best-effort" is supported, got {guarantee!r}')
        out.append(_sink(name, path, rotate_bytes, rotate_duration, rotate_max_files, _file_mode(mode, f"{key}.mode"), key))
    if a.path:
        out.append(
            _sink("file", a.path, a.rotate_max_bytes, a.rotate_duration, a.rotate_max_files, _file_mode(a.mode, "audit.mode"), "audit")
        )
    if not out:
        raise ConfigError("audit: enabled without a sink (set audit.path or a sink block)")
    return tuple(out)


def _sink(name: str, path: str, rbytes: int, rdur: float, rfiles: int, mode: int, key: str) -> FileSinkSpec:
    if not path:
        raise ConfigError(f"{key}.path: a file sink needs a path")
    for what, v in (("rotate_bytes" if key != "audit" else "rotate_max_bytes", rbytes), ("rotate_max_files", rfiles)):
        if v < 0:
            raise ConfigError(f"{key}.{what}: must not be negative, got {v}")
    if rdur < 0:
        raise ConfigError(f"{key}.rotate_duration: must not be negative")
    return FileSinkSpec(name, path, rbytes, rdur, rfiles, mode)


def _audit(cfg: Config, changes: dict[str, Any], warnings: list[str]) -> None:
    """``audit``: every sink is a JSON file sink with a path, sane rotation and an octal mode."""
    audit_file_sinks(cfg)


def _dns(cfg: Config, changes: dict[str, Any], warnings: list[str]) -> None:
    """``dns_config``: a known recursor strategy, non-negative answer limits."""
    if cfg.dns_config.recursor_strategy not in ("sequential", "random"):
        raise ConfigError(
            f"dns_config.recursor_strategy must be sequential or random, got {cfg.dns_config.recursor_strategy!r}"
        )
    if cfg.dns_config.udp_answer_limit < 0 or cfg.dns_config.a_record_limit < 0:
        raise ConfigError("dns_config answer limits cannot be negative")


def _definitions(cfg: Config, changes: dict[str, Any], warnings: list[str]) -> None:
    """Service and check definitions are objects (their fields are checked by the agent, as
    for ``/v1/agent/service/register``)."""
    for kind_name in ("services", "checks"):
        for i, d in enumerate(getattr(cfg, kind_name)):
            if not isinstance(d, Mapping):
                raise ConfigError(f"{kind_name}[{i}]: expected an object")


def _leave_defaults(cfg: Config, changes: dict[str, Any], warnings: list[str]) -> None:
    """Unset ``leave_on_terminate``/``skip_leave_on_interrupt`` follow server mode (Consul's defaults)."""
    changes["leave_on_terminate"] = (
        cfg.leave_on_terminate if cfg.leave_on_terminate is not None else not cfg.server
    )
    changes["skip_leave_on_interrupt"] = (
        cfg.skip_leave_on_interrupt if cfg.skip_leave_on_interrupt is not None else cfg.server
    )


FINALISE_STEPS: tuple[Step, ...] = (
    _datacenters,
    _node_identity,
    _bootstrap,
    _data_dir,
    _raft_protocol,
    _log_level,
    _ports,
    _addresses,
    _node_meta,
    _gossip_key,
    _domains,
    _timers_and_limits,
    _acl,
    _audit,
    _dns,
    _definitions,
    _leave_defaults,
)
"""The finalisation steps, in the order their errors are reported."""


def finalise(cfg: Config) -> Config:
    """Run every step of :data:`FINALISE_STEPS`; return ``cfg`` with the derived values and
    the warnings applied."""
    warnings = list(cfg.warnings)
    changes: dict[str, Any] = {}
    for step in FINALISE_STEPS:
        step(cfg, changes, warnings)
    changes["warnings"] = tuple(warnings)
    return dataclasses.replace(cfg, **changes)
