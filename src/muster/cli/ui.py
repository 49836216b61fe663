"""The CLI's input/output context: streams, environment, and shared helpers.

Commands never touch ``sys.stdout``/``os.environ`` directly; they receive a :class:`UI`,
so the whole CLI can be driven in-process with captured streams (argument-parsing tests)
or for real from :func:`muster.cli.main`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from muster.api import Client, ConfigError, ConsulError
from muster.cli.flags import FlagError, FlagSet, HelpRequested, Parsed, client_config

__all__ = ["UI", "parse_or_usage", "make_client"]


@dataclass
class UI:
    """Binary streams plus the environment a command runs with."""

    stdout: BinaryIO
    stderr: BinaryIO
    stdin: BinaryIO
    environ: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def system(cls) -> UI:
        """The process's real streams and environment."""
        import os

        return cls(sys.stdout.buffer, sys.stderr.buffer, sys.stdin.buffer, dict(os.environ))

    @staticmethod
    def _encode(text: str | bytes) -> bytes:
        if isinstance(text, bytes):
            return text
        return text.encode("utf-8", errors="surrogateescape")

    def out(self, text: str | bytes = "") -> None:
        """Write a line to stdout (Go ``UI.Output``/``UI.Info``)."""
        self.stdout.write(self._encode(text) + b"\n")
        self.stdout.flush()

    def err(self, text: str | bytes = "") -> None:
        """Write a line to stderr (Go ``UI.Error``)."""
        self.stderr.write(self._encode(text) + b"\n")
        self.stderr.flush()


class UsageExit(Exception):
    """Raised by :func:`parse_or_usage` after it printed what it had to; carries the exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def parse_or_usage(ui: UI, fs: FlagSet, args: list[str]) -> Parsed:
    """Parse ``args``; on ``-h`` print help (exit 0), on a flag error print it + usage (exit 1)."""
    try:
        return fs.parse(args)
    except HelpRequested:
        ui.out(fs.help_text().rstrip("\n"))
        raise UsageExit(0) from None
    except FlagError as err:
        ui.err(str(err))
        ui.err(fs.help_text().rstrip("\n"))
        raise UsageExit(1) from None


def make_client(ui: UI, parsed: Parsed) -> Client:
    """Build the API client from the environment and HTTP flags.

    Prints ``Error connecting to Consul agent: ...`` and raises :class:`UsageExit` on bad
    settings (an unparsable address, an unreadable token file, bad TLS files).
    """
    cfg = client_config(parsed, ui.environ)
    for warning in cfg.warnings:
        ui.err(f"[WARN] client: {warning}")
    try:
        return Client(cfg)
    except (ConfigError, ConsulError) as err:
        ui.err(f"Error connecting to Consul agent: {err}")
        raise UsageExit(1) from None
