"""The ``muster agent`` command line: the flag table, its usage text, and parsing.

Flags use Go's ``flag`` package syntax, as Consul's do: ``-flag=value``, ``-flag value``,
``--flag``; a boolean flag takes no separate value (``-server``, ``-server=false``); ``--``
ends the flags.  Each flag either sets a config key (its dotted path in the schema), appends
to a list key, or is one of the *special* flags that name sources (``-config-file``,
``-config-dir``, ``-config-format``, ``-hcl``).  Parsing produces the highest-precedence
source, ``command-line flags``, as a raw dict that goes through the same type checking as a
config file.

To add a flag: one row in :func:`_flag_table` (name, kind, config path, metavar, help); the
usage text is generated from the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from muster.goparse import (
    FlagError,
    FlagHelp,
    FlagScanner,
    FlagValueError,
    flag_reason,
    invalid_value,
    parse_duration_ns,
    parse_int,
)

from .errors import ConfigError, HelpRequested, UsageError

__all__ = ["USAGE", "ParsedFlags", "parse_flags"]


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
class ParsedFlags:
    raw: dict[str, Any]
    set_flags: set[str]
    config_paths: list[str]
    config_format: str | None
    hcl: list[str]


def parse_flags(argv: Sequence[str]) -> ParsedFlags:
    """Tokenise ``argv`` with Go ``flag`` package rules (:class:`muster.goparse.FlagScanner`)
    and apply each flag in order.  ``consul agent`` takes no positional arguments."""
    parsed = ParsedFlags({}, set(), [], None, [])
    scanner = FlagScanner(argv, _is_bool_flag)
    try:
        for name, value in scanner:
            flag = _FLAGS[name]
            parsed.set_flags.add(name)
            if isinstance(value, bool):
                _set_path(parsed.raw, flag.path, value)
            else:
                _apply_flag_value(parsed, flag, value)
    except FlagValueError as exc:
        raise ConfigError(str(exc)) from None
    except FlagError as exc:
        raise UsageError(str(exc)) from None
    except FlagHelp:
        raise HelpRequested() from None
    if scanner.rest:
        raise UsageError(f"unexpected argument {scanner.rest[0]!r}")
    return parsed


def _is_bool_flag(name: str) -> bool | None:
    flag = _FLAGS.get(name)
    return None if flag is None else flag.kind == "bool"


def _apply_flag_value(parsed: ParsedFlags, flag: _Flag, value: str) -> None:
    """Apply one value flag; a bad value raises :class:`FlagValueError` with Go's text."""
    if flag.kind == "int":
        try:
            _set_path(parsed.raw, flag.path, parse_int(value))
        except ValueError as exc:
            raise invalid_value(flag.name, value, flag_reason(exc)) from None
    elif flag.kind == "dur":
        # Consul checks agent durations when it builds the config, with time's error text.
        try:
            parse_duration_ns(value)
        except ValueError as exc:
            raise invalid_value(flag.name, value, str(exc)) from None
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
            raise invalid_value(flag.name, value, "must be json or hcl")
        parsed.config_format = value
    elif flag.name == "hcl":
        parsed.hcl.append(value)
    else:
        raise AssertionError(f"unhandled flag {flag.name}")

