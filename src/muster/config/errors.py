"""The errors configuration loading raises, and the internal one a source raises."""

from __future__ import annotations

__all__ = ["ConfigError", "HelpRequested", "SourceError", "UsageError", "type_name"]


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



class SourceError(Exception):
    """Internal: a value error inside one source; the caller prefixes the source's name and
    turns it into a :class:`ConfigError`."""


def type_name(v: object) -> str:
    """The JSON name of ``v``'s type, for error messages (``expected a string, got list``)."""
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
