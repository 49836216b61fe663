"""Go ``flag``-package compatible command-line parsing for the ``muster`` CLI.

Consul's CLI uses Go's standard ``flag`` package, whose rules differ from argparse:

* flags are single-dash long names (``-http-addr``); ``--name`` is accepted too;
* ``-name=value`` or ``-name value`` (the next argument is taken even if it starts
  with ``-``); boolean flags take no separate value (``-recurse``, ``-recurse=false``);
* parsing stops at the first non-flag argument, at ``-`` and after ``--``: everything
  after is positional (``lock PREFIX sh -c '...'``, ``kv put KEY -1``);
* errors are ``flag provided but not defined: -x``, ``flag needs an argument: -x``,
  ``invalid value "v" for flag -x: parse error``, ``bad flag syntax: ---x``;
* ``-h``/``-help`` print the usage.

:class:`FlagSet` reproduces those rules; :func:`add_http_flags` adds Consul's shared
connection flags (``-http-addr``, ``-token``, ... and ``-datacenter``/``-stale``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from muster.api import ClientConfig
from muster.goparse import (
    FlagError,
    FlagScanner,
    flag_reason,
    invalid_value,
    parse_bool,
    parse_duration_ns,
    parse_int,
    parse_uint,
)
from muster.goparse import FlagHelp as HelpRequested

__all__ = [
    "FlagError",
    "FlagSet",
    "HelpRequested",
    "Parsed",
    "add_http_flags",
    "client_config",
    "parse_go_bool",
    "parse_go_int",
]

KINDS = frozenset({"bool", "string", "int", "uint", "duration", "list", "map"})

# ``FlagError`` (a malformed command line: print the message, then the usage, and exit 1) and
# ``HelpRequested`` (``-h``/``-help``: print the usage and exit 0) are muster.goparse's.

parse_go_bool = parse_bool
"""Go's ``strconv.ParseBool`` (:func:`muster.goparse.parse_bool`)."""


def parse_go_int(value: str, *, unsigned: bool = False) -> int:
    """Go's ``strconv.ParseInt(s, 0, 64)`` / ``ParseUint(s, 0, 64)``, as the flag package
    reads ``int``/``uint`` flags (:mod:`muster.goparse`)."""
    return parse_uint(value) if unsigned else parse_int(value)


@dataclass(frozen=True)
class Flag:
    """One flag definition."""

    name: str
    kind: str
    default: Any
    help: str
    metavar: str = ""


@dataclass
class Parsed:
    """The result of :meth:`FlagSet.parse`."""

    values: dict[str, Any]
    args: list[str]
    set_flags: set[str] = field(default_factory=set)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def is_set(self, name: str) -> bool:
        """Whether the flag appeared on the command line."""
        return name in self.set_flags


class FlagSet:
    """A set of Go-style flags plus the command's usage text."""

    def __init__(self, usage: str) -> None:
        self.usage = usage
        self.flags: dict[str, Flag] = {}
        self._order: list[str] = []

    def add(self, name: str, kind: str, default: Any = None, help: str = "", metavar: str = "") -> None:
        """Define a flag.  ``kind`` is one of bool, string (alias str), int, uint, duration, list, map."""
        if kind == "str":
            kind = "string"
        if kind not in KINDS:
            raise ValueError(f"unknown flag kind {kind!r}")
        if name in self.flags:
            raise ValueError(f"flag redefined: {name}")
        if default is None:
            default = {"bool": False, "string": "", "int": 0, "uint": 0, "duration": 0}.get(kind)
        self.flags[name] = Flag(name, kind, default, help, metavar)
        self._order.append(name)

    def help_text(self) -> str:
        """The usage text followed by every flag with its help."""
        lines = [self.usage.rstrip("\n"), ""]
        if self._order:
            lines.append("Command Options:")
            lines.append("")
            for name in sorted(self._order):
                flag = self.flags[name]
                if flag.kind == "bool":
                    lines.append(f"  -{name}")
                else:
                    lines.append(f"  -{name}=<{flag.metavar or flag.kind}>")
                if flag.help:
                    lines.append(f"     {flag.help}")
                lines.append("")
        return "\n".join(lines).rstrip("\n") + "\n"

    def parse(self, args: Sequence[str]) -> Parsed:
        """Parse ``args`` with Go's rules.  Raises :class:`FlagError` / :class:`HelpRequested`."""
        values: dict[str, Any] = {}
        for name, flag in self.flags.items():
            if flag.kind == "list":
                values[name] = list(flag.default or [])
            elif flag.kind == "map":
                values[name] = dict(flag.default or {})
            else:
                values[name] = flag.default
        set_flags: set[str] = set()
        scanner = FlagScanner(args, self._is_bool)
        for name, value in scanner:
            if isinstance(value, bool):
                values[name] = value
            else:
                self._set(self.flags[name], values, value)
            set_flags.add(name)
        return Parsed(values=values, args=scanner.rest, set_flags=set_flags)

    def _is_bool(self, name: str) -> bool | None:
        flag = self.flags.get(name)
        return None if flag is None else flag.kind == "bool"

    @staticmethod
    def _set(flag: Flag, values: dict[str, Any], value: str) -> None:
        name = flag.name
        try:
            if flag.kind == "string":
                values[name] = value
            elif flag.kind == "int":
                values[name] = parse_int(value)
            elif flag.kind == "uint":
                values[name] = parse_uint(value)
            elif flag.kind == "duration":
                values[name] = parse_duration_ns(value)
            elif flag.kind == "list":
                values[name].append(value)
            elif flag.kind == "map":
                if "=" not in value:
                    raise ValueError(f'Missing "=" value in argument: {value}')
                key, val = value.split("=", 1)
                values[name][key] = val
        except ValueError as err:
            # The flag package prints "parse error" for a bad duration, whatever time says.
            reason = "parse error" if flag.kind == "duration" else flag_reason(err)
            raise invalid_value(name, value, reason) from None


def add_http_flags(fs: FlagSet, *, server: bool = True) -> None:
    """Add Consul's client connection flags (and ``-datacenter``/``-stale`` if ``server``)."""
    fs.add(
        "http-addr",
        "string",
        "",
        "The address and port of the Consul HTTP agent. Can also be specified via CONSUL_HTTP_ADDR.",
        "address",
    )
    fs.add(
        "token", "string", "", "ACL token to use in the request. Can also be specified via CONSUL_HTTP_TOKEN."
    )
    fs.add(
        "token-file",
        "string",
        "",
        "File containing the ACL token to use in the request. Can also be specified via CONSUL_HTTP_TOKEN_FILE.",
        "path",
    )
    fs.add(
        "ca-file", "string", "", "Path to a CA file to use for TLS. Can also be specified via CONSUL_CACERT."
    )
    fs.add(
        "ca-path",
        "string",
        "",
        "Path to a directory of CA certificates. Can also be specified via CONSUL_CAPATH.",
    )
    fs.add(
        "client-cert",
        "string",
        "",
        "Path to a client cert file. Can also be specified via CONSUL_CLIENT_CERT.",
    )
    fs.add(
        "client-key", "string", "", "Path to a client key file. Can also be specified via CONSUL_CLIENT_KEY."
    )
    fs.add(
        "tls-server-name",
        "string",
        "",
        "The server name to use as the SNI host. Can also be specified via CONSUL_TLS_SERVER_NAME.",
    )
    if server:
        fs.add(
            "datacenter", "string", "", "Name of the datacenter to query. Defaults to the agent's datacenter."
        )
        fs.add("stale", "bool", False, "Permit any Consul server (non-leader) to respond to this request.")


def client_config(parsed: Parsed, environ: Mapping[str, str]) -> ClientConfig:
    """Combine the environment and the HTTP flags (flags win) into a :class:`ClientConfig`."""
    cfg = ClientConfig.from_env(environ)
    v = parsed.values
    if v.get("http-addr"):
        cfg.address = v["http-addr"]
    if v.get("token"):
        cfg.token = v["token"]
    if v.get("token-file"):
        cfg.token_file = v["token-file"]
        if not v.get("token"):
            cfg.token = ""
    for flag_name, attr in (
        ("ca-file", "ca_file"),
        ("ca-path", "ca_path"),
        ("client-cert", "client_cert"),
        ("client-key", "client_key"),
        ("tls-server-name", "tls_server_name"),
        ("datacenter", "datacenter"),
    ):
        if v.get(flag_name):
            setattr(cfg, attr, v[flag_name])
    if v.get("stale"):
        cfg.stale = True
    return cfg
