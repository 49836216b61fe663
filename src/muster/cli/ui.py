"""The CLI's input/output context: streams, environment, and shared helpers.

Commands never touch ``sys.stdout``/``os.environ`` directly; they receive a :class:`UI`,
so the whole CLI can be driven in-process with captured streams (argument-parsing tests)
or for real from :func:`muster.cli.main`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import BinaryIO

from muster.api import Client, ConfigError, ConsulError
from muster.cli.flags import FlagError, FlagSet, HelpRequested, Parsed, client_config

__all__ = ["UI", "UsageExit", "api_errors", "parse_or_usage", "make_client"]


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
    """Ends a command with ``code`` once it has printed what it had to (raised by
    :func:`parse_or_usage`, :func:`make_client` and :class:`api_errors`; ``run`` returns the code)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class api_errors:  # noqa: N801 - used like contextlib.suppress
    """``with api_errors(ui, "Error listing nodes"): ...``: a ``ConsulError`` raised in the block
    is printed as ``Error listing nodes: <error>`` on stderr and ends the command with exit
    status 1, as Go's commands do with ``c.UI.Error(fmt.Sprintf("...: %s", err)); return 1``.
    Anything else passes through unchanged.  (A class, not a generator, so that type checkers
    know it never swallows an exception.)"""

    __slots__ = ("_ui", "_prefix")

    def __init__(self, ui: UI, prefix: str) -> None:
        self._ui = ui
        self._prefix = prefix

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, ConsulError):
            self._ui.err(f"{self._prefix}: {exc}")
            raise UsageExit(1) from None


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
