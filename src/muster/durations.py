"""Go ``time.Duration`` parsing and formatting.

Consul (and therefore every Consul client) speaks Go durations: query parameters
(``wait=9.87s``), JSON bodies (``"TTL": "15.0s"`` or integer nanoseconds), config files
and command-line flags.  This module reproduces Go's ``time.ParseDuration`` and
``Duration.String`` exactly, including the error texts, because error strings end up in
HTTP response bodies that clients may display or match.  The parser itself,
:func:`parse_duration_ns`, lives with Muster's other Go-compatible parsers in
:mod:`muster.goparse` and is re-exported here with the unit constants.

Invariants:

* Internally every duration is an integer number of nanoseconds constrained to Go's
  ``int64`` range; the ``*_ns`` functions expose that exact value.  The float-seconds
  wrappers exist for convenience (asyncio timeouts, ``time.monotonic`` arithmetic) and
  are exact to the nanosecond only up to ~104 days (2**53 ns); beyond that they may be
  off by a few nanoseconds.
* ``parse_duration_ns(format_duration_ns(d)) == d`` for every ``int64`` ``d``.
"""

from __future__ import annotations

import math

from muster.goparse import (
    HOUR,
    MAX_DURATION_NS,
    MICROSECOND,
    MILLISECOND,
    MIN_DURATION_NS,
    MINUTE,
    NANOSECOND,
    SECOND,
    parse_duration_ns,
)

__all__ = [
    "NANOSECOND",
    "MICROSECOND",
    "MILLISECOND",
    "SECOND",
    "MINUTE",
    "HOUR",
    "MAX_DURATION_NS",
    "MIN_DURATION_NS",
    "parse_duration",
    "parse_duration_ns",
    "format_duration",
    "format_duration_ns",
    "parse_body_duration",
    "parse_body_duration_ns",
    "seconds_to_ns",
]


def parse_duration(s: str) -> float:
    """Parse a Go duration string and return seconds as a float.

    See :func:`parse_duration_ns` for grammar and error texts.
    """
    return parse_duration_ns(s) / SECOND


def _fmt_frac(v: int, prec: int) -> tuple[str, int]:
    """Return (``".ddd"`` with trailing zeros removed, ``v // 10**prec``) like Go's fmtFrac."""
    digits: list[str] = []
    printed = False
    for _ in range(prec):
        digit = v % 10
        printed = printed or digit != 0
        if printed:
            digits.append(chr(48 + digit))
        v //= 10
    if printed:
        return "." + "".join(reversed(digits)), v
    return "", v


def format_duration_ns(ns: int) -> str:
    """Format integer nanoseconds exactly like Go's ``time.Duration.String``.

    Examples: ``0s``, ``1ns``, ``1.5µs`` (micro sign U+00B5), ``500ms``, ``1.5s``, ``10s``,
    ``1m30s``, ``1h0m0s``, ``-2m0.5s``.  Values outside int64 wrap like Go's conversion
    would not; they are rejected with ``ValueError`` instead because nothing in Consul
    can produce them.
    """
    if isinstance(ns, bool) or not isinstance(ns, int):
        raise TypeError(f"nanoseconds must be an int, not {type(ns).__name__}")
    if ns < MIN_DURATION_NS or ns > MAX_DURATION_NS:
        raise ValueError(f"duration {ns}ns out of int64 range")
    neg = ns < 0
    u = -ns if neg else ns
    if u < SECOND:
        if u == 0:
            return "0s"
        if u < MICROSECOND:
            prec, unit = 0, "ns"
        elif u < MILLISECOND:
            prec, unit = 3, "\u00b5s"
        else:
            prec, unit = 6, "ms"
        frac, u = _fmt_frac(u, prec)
        body = f"{u}{frac}{unit}"
    else:
        frac, u = _fmt_frac(u, 9)
        body = f"{u % 60}{frac}s"
        u //= 60
        if u > 0:
            body = f"{u % 60}m{body}"
            u //= 60
            if u > 0:
                body = f"{u}h{body}"
    return "-" + body if neg else body


def seconds_to_ns(seconds: float) -> int:
    """Convert float seconds to integer nanoseconds, rounding to the nearest ns.

    Rounding (rather than truncating) makes ``format_duration(parse_duration(s))``
    stable: ``0.001`` seconds is ``999999.9999`` ns in binary floating point.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"seconds must be a number, not {type(seconds).__name__}")
    if not math.isfinite(seconds):
        raise ValueError(f"duration {seconds!r} is not finite")
    if isinstance(seconds, int):
        ns = seconds * SECOND
    else:
        ns = round(seconds * SECOND)
    if ns < MIN_DURATION_NS or ns > MAX_DURATION_NS:
        raise ValueError(f"duration {seconds!r}s out of range")
    return ns


def format_duration(seconds: float) -> str:
    """Format seconds like Go's ``Duration.String`` (``10s``, ``1m30s``, ``1h0m0s``, ``500ms``)."""
    return format_duration_ns(seconds_to_ns(seconds))


def parse_body_duration_ns(value: object, *, small_means_seconds: bool = False) -> int:
    """Decode a duration field from a JSON body into integer nanoseconds.

    Consul accepts either a Go duration string (``"10s"``) or a JSON number that is
    taken as nanoseconds (Go's ``time.Duration`` is an int64 of ns; a float such as
    ``1.5e9`` is truncated toward zero like Go's float->int conversion).  An empty
    string means zero, as in Consul's decoders.

    ``small_means_seconds`` implements the session ``LockDelay`` quirk: a resulting
    value below 1000 ns is interpreted as whole seconds (``5`` -> 5 s, ``"15ns"`` ->
    15 s), because older clients sent plain seconds.

    Raises ``ValueError`` for anything else (including booleans and ``null``).
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"invalid duration value {value!r}: expected string or number")
    if isinstance(value, str):
        ns = 0 if value == "" else parse_duration_ns(value)
    elif isinstance(value, int):
        ns = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"invalid duration value {value!r}")
        ns = int(value)
    else:
        raise ValueError(f"invalid duration value of type {type(value).__name__}: expected string or number")
    if ns < MIN_DURATION_NS or ns > MAX_DURATION_NS:
        raise ValueError(f"invalid duration value {value!r}: out of range")
    if small_means_seconds and 0 <= ns < 1000:
        ns *= SECOND
    return ns


def parse_body_duration(value: object, *, small_means_seconds: bool = False) -> float:
    """Like :func:`parse_body_duration_ns` but returns float seconds."""
    return parse_body_duration_ns(value, small_means_seconds=small_means_seconds) / SECOND
