"""Go-compatible parsers for the scalars Consul's users type: booleans and integers.

Consul is written in Go, so every value a user or client sends it (flags, config files,
query parameters, filter expressions) is read with Go's ``strconv`` rules.  Python's
``int()`` and truthiness rules differ (``int(" 7 ")``, ``int("٣")``, ``"yes"``), so Muster
parses those values here, once, with Go's behaviour.
"""

from __future__ import annotations

import re

__all__ = ["parse_bool", "parse_int"]

_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(s: str) -> bool:
    """Go's ``strconv.ParseBool``: exactly ``1 t T TRUE true True 0 f F FALSE false False``."""
    if s in _GO_TRUE:
        return True
    if s in _GO_FALSE:
        return False
    raise ValueError(f"invalid boolean {s!r}")


_GO_OCTAL_LEGACY = re.compile(r"[+-]?0[0-7_]+")


def parse_int(s: str) -> int:
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
