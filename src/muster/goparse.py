"""Go-compatible parsers: the one place Muster reads text the way Consul (a Go program) does.

Every value a user or client gives Consul as text -- command-line flags, config files,
query parameters, filter expressions, environment variables -- is read with Go's standard
library: ``strconv.ParseBool``/``ParseInt``/``ParseUint``/``ParseFloat``,
``time.ParseDuration`` and the ``flag`` package.  Python's own rules differ in ways users
would see (``int(" 7 ")``, ``int("٣")``, ``float("1e400")`` is ``inf``, ``"yes"`` is truthy),
so every part of Muster parses such text here, with Go's behaviour and Go's error texts,
which end up in HTTP bodies and CLI output that clients may match:

* :func:`parse_bool` -- ``strconv.ParseBool``: exactly ``1 t T TRUE true True`` and
  ``0 f F FALSE false False``;
* :func:`parse_int` / :func:`parse_uint` -- ``strconv.ParseInt``/``ParseUint`` for a
  ``base`` (0 = infer from the prefix as in Go literals: ``0x``, ``0o``, ``0b``, legacy
  leading ``0`` octal, and ``_`` digit separators, which are allowed *only* with base 0)
  and a bit size;
* :func:`parse_float` -- ``strconv.ParseFloat(s, 64)``: Go float literals (decimal or hex
  with a ``p`` exponent, ``_`` separators), ``inf``/``infinity``/``nan`` in any case,
  overflow is an error;
* :func:`parse_duration_ns` -- ``time.ParseDuration``, in integer nanoseconds;
* :class:`FlagScanner` -- the ``flag`` package's tokenising of a command line;
* :func:`match_fields` / :func:`invalid_keys` -- mapstructure's decoding of a JSON object into a
  struct: which key fills which field, and its ``ErrorUnused`` text for the keys left over.

The strconv parsers raise :class:`NumError` (a ``ValueError``) whose ``str()`` is Go's
``*strconv.NumError`` text, ``strconv.ParseInt: parsing "x": invalid syntax``; ``reason``
is Go's ``Err`` (``invalid syntax`` or ``value out of range``).  Which base and bit size to
use is the caller's, copied from the Consul code it mirrors (e.g. query ``?index=`` is
``ParseUint(s, 10, 64)``, a filter's integer is ``ParseInt(s, 0, 64)``, a flag's
``ParseInt(s, 0, 64)``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

__all__ = [
    "ERR_RANGE",
    "ERR_SYNTAX",
    "FALSE_STRINGS",
    "FlagError",
    "FlagHelp",
    "FlagScanner",
    "FlagValueError",
    "HOUR",
    "MAX_DURATION_NS",
    "MICROSECOND",
    "MILLISECOND",
    "MINUTE",
    "MIN_DURATION_NS",
    "NANOSECOND",
    "NumError",
    "SECOND",
    "TRUE_STRINGS",
    "atoi",
    "flag_reason",
    "invalid_keys",
    "invalid_value",
    "match_fields",
    "parse_bool",
    "parse_duration_ns",
    "parse_float",
    "parse_int",
    "parse_uint",
    "quote",
    "unquote_interpreted",
]

ERR_SYNTAX = "invalid syntax"
ERR_RANGE = "value out of range"


def quote(s: str) -> str:
    """Go's ``strconv.Quote`` (also what ``%q`` prints): printable characters verbatim,
    ``"`` and ``\\`` escaped, the usual C escapes, other characters as ``\\xNN``, ``\\uNNNN``
    or ``\\UNNNNNNNN``."""
    if s.isascii() and s.isprintable():
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = ['"']
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _C_ESCAPES:
            out.append(_C_ESCAPES[ch])
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:  # a lone surrogate: Go sees an invalid UTF-8 byte
            out.append("\\ufffd")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


_C_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


class NumError(ValueError):
    """Go's ``*strconv.NumError``: ``func`` failed on ``num`` for ``reason``
    (:data:`ERR_SYNTAX` or :data:`ERR_RANGE`)."""

    def __init__(self, func: str, num: str, reason: str) -> None:
        super().__init__(f"strconv.{func}: parsing {quote(num)}: {reason}")
        self.func = func
        self.num = num
        self.reason = reason


# ---------------------------------------------------------------------------------------
# strconv
# ---------------------------------------------------------------------------------------

TRUE_STRINGS = frozenset({"1", "t", "T", "TRUE", "true", "True"})
"""The texts ``strconv.ParseBool`` reads as true."""
FALSE_STRINGS = frozenset({"0", "f", "F", "FALSE", "false", "False"})
"""The texts ``strconv.ParseBool`` reads as false."""


def parse_bool(s: str) -> bool:
    """``strconv.ParseBool``: exactly ``1 t T TRUE true True 0 f F FALSE false False``."""
    if s in TRUE_STRINGS:
        return True
    if s in FALSE_STRINGS:
        return False
    raise NumError("ParseBool", s, ERR_SYNTAX)


def _underscore_ok(s: str) -> bool:
    """Go's ``underscoreOK``: ``_`` only between digits, or between a base prefix and a digit."""
    saw = "^"  # ^ start, 0 digit or base prefix, _ underscore, ! anything else
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i = 2
        saw = "0"
        hexa = s[1].lower() == "x"
    while i < len(s):
        c = s[i]
        i += 1
        if "0" <= c <= "9" or (hexa and "a" <= c.lower() <= "f"):
            saw = "0"
            continue
        if c == "_":
            if saw != "0":
                return False
            saw = "_"
            continue
        if saw == "_":
            return False
        saw = "!"
    return saw != "_"


def _digit_value(c: str) -> int:
    """The value of an ASCII digit or letter (``a``/``A`` = 10 ... ``z`` = 35); 99 otherwise."""
    if "0" <= c <= "9":
        return ord(c) - 48
    low = c.lower()
    if "a" <= low <= "z" and c.isascii():
        return ord(low) - 87
    return 99


def parse_uint(s: str, base: int = 0, bits: int = 64) -> int:
    """``strconv.ParseUint(s, base, bits)``.  ``base`` 0 infers it from the prefix
    (``0x``, ``0o``, ``0b``, leading ``0`` = octal) and allows ``_`` separators."""
    func = "ParseUint"
    if not s:
        raise NumError(func, s, ERR_SYNTAX)
    base0 = base == 0
    digits = s
    if base0:
        base = 10
        if s[0] == "0":
            if len(s) >= 3 and s[1].lower() == "b":
                base, digits = 2, s[2:]
            elif len(s) >= 3 and s[1].lower() == "o":
                base, digits = 8, s[2:]
            elif len(s) >= 3 and s[1].lower() == "x":
                base, digits = 16, s[2:]
            else:
                base, digits = 8, s[1:]
    elif not 2 <= base <= 36:
        raise ValueError(f"strconv.{func}: parsing {quote(s)}: invalid base {base}")
    max_val = (1 << bits) - 1
    underscores = False
    n = 0
    for c in digits:
        if c == "_" and base0:
            underscores = True
            continue
        d = _digit_value(c)
        if d >= base:
            raise NumError(func, s, ERR_SYNTAX)
        n = n * base + d
        if n > max_val:  # Go stops at the first digit that overflows
            raise NumError(func, s, ERR_RANGE)
    if underscores and not _underscore_ok(s):
        raise NumError(func, s, ERR_SYNTAX)
    return n


def parse_int(s: str, base: int = 0, bits: int = 64) -> int:
    """``strconv.ParseInt(s, base, bits)``: an optional sign, then :func:`parse_uint`'s rules."""
    func = "ParseInt"
    if not s:
        raise NumError(func, s, ERR_SYNTAX)
    neg = s[0] == "-"
    body = s[1:] if s[0] in "+-" else s
    try:
        un = parse_uint(body, base, bits)
    except NumError as err:
        raise NumError(func, s, err.reason) from None
    cutoff = 1 << (bits - 1)
    if not neg and un >= cutoff or neg and un > cutoff:
        raise NumError(func, s, ERR_RANGE)
    return -un if neg else un


def atoi(s: str) -> int:
    """``strconv.Atoi``: ``ParseInt(s, 10, 0)`` (64-bit), its errors named ``Atoi``."""
    try:
        return parse_int(s, 10)
    except NumError as err:
        raise NumError("Atoi", s, err.reason) from None


_DEC_FLOAT = re.compile(r"[+-]?(?=\.?[0-9])[0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9][0-9_]*)?")
_HEX_FLOAT = re.compile(r"([+-]?)0[xX](?=[_.]*[0-9a-fA-F])([0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?)[pP]([+-]?[0-9][0-9_]*)")
_SPECIAL_FLOAT = re.compile(r"([+-]?)(inf|infinity)|(nan)", re.IGNORECASE)


def parse_float(s: str) -> float:
    """``strconv.ParseFloat(s, 64)``: Go float literals, ``inf``/``infinity`` (signed) and
    ``nan`` in any case; a finite literal too large for float64 is :data:`ERR_RANGE`."""
    func = "ParseFloat"
    if not s.isascii():
        raise NumError(func, s, ERR_SYNTAX)
    special = _SPECIAL_FLOAT.fullmatch(s)
    if special:
        if special.group(3):
            return float("nan")
        return float("-inf") if special.group(1) == "-" else float("inf")
    hexa = _HEX_FLOAT.fullmatch(s)
    if not hexa and not _DEC_FLOAT.fullmatch(s):
        raise NumError(func, s, ERR_SYNTAX)
    if "_" in s and not _underscore_ok(s):
        raise NumError(func, s, ERR_SYNTAX)
    text = s.replace("_", "")
    try:
        value = float.fromhex(text) if hexa else float(text)
    except OverflowError:
        raise NumError(func, s, ERR_RANGE) from None
    if value in (float("inf"), float("-inf")):
        raise NumError(func, s, ERR_RANGE)
    return value


_SIMPLE_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"',
}


def unquote_interpreted(body: str) -> str:
    """``strconv.Unquote`` of ``"<body>"``: the body of a Go interpreted string literal (the
    caller has found the closing quote, so ``body`` holds no unescaped ``"``).

    Raises ValueError("invalid syntax") like Go on bad escapes or raw newlines.
    """
    out: list[str] = []
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c == "\n":
            raise ValueError("invalid syntax")
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise ValueError("invalid syntax")
        e = body[i + 1]
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
            i += 2
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i + 2: i + 2 + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise ValueError("invalid syntax")
            code = int(digits, 16)
            if e == "x":
                # \xNN is a byte; for ASCII it is the character, otherwise keep Go's byte via latin-1
                out.append(chr(code))
            else:
                if code > 0x10FFFF or 0xD800 <= code < 0xE000:
                    raise ValueError("invalid syntax")
                out.append(chr(code))
            i += 2 + width
        elif e in "01234567":
            digits = body[i + 1: i + 4]
            if len(digits) != 3 or any(d not in "01234567" for d in digits) or int(digits, 8) > 255:
                raise ValueError("invalid syntax")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise ValueError("invalid syntax")
    return "".join(out)


# ---------------------------------------------------------------------------------------
# time.ParseDuration
# ---------------------------------------------------------------------------------------

NANOSECOND = 1
MICROSECOND = 1_000 * NANOSECOND
MILLISECOND = 1_000 * MICROSECOND
SECOND = 1_000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

MAX_DURATION_NS = (1 << 63) - 1
MIN_DURATION_NS = -(1 << 63)

# Go accepts both the micro sign (U+00B5) and the Greek small letter mu (U+03BC).
_UNITS: dict[str, int] = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,
    "\u03bcs": MICROSECOND,
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}

_LIMIT = 1 << 63


def _time_quote(s: str) -> str:
    """Quote ``s`` the way Go's ``time`` package does in error messages.

    Go escapes ``"`` and ``\\`` with a backslash and renders every byte of a
    non-ASCII or control character as ``\\xNN`` (UTF-8 bytes), so the error text we
    return is byte-for-byte what Consul would return.
    """
    out = ['"']
    for ch in s:
        if ord(ch) >= 0x80 or ch < " ":
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
        else:
            if ch in ('"', "\\"):
                out.append("\\")
            out.append(ch)
    out.append('"')
    return "".join(out)


def _is_digit(ch: str) -> bool:
    # str.isdigit() accepts non-ASCII digits; Go only accepts ASCII 0-9.
    return "0" <= ch <= "9"


def parse_duration_ns(s: str) -> int:
    """Parse a Go duration string into integer nanoseconds.

    Grammar (Go): ``[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+`` with units ``ns us µs μs ms s m h``,
    or the literal ``0`` (optionally signed).  Errors mirror Go's messages:

    * ``time: invalid duration "<s>"`` for malformed input and overflow,
    * ``time: missing unit in duration "<s>"`` for a number without unit (``"5"``),
    * ``time: unknown unit "<u>" in duration "<s>"`` for an unknown unit.

    Raises ``ValueError`` (never anything else for ``str`` input).
    """
    if not isinstance(s, str):
        raise TypeError(f"duration must be a string, not {type(s).__name__}")
    orig = s
    invalid = f"time: invalid duration {_time_quote(orig)}"
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(invalid)

    total = 0
    i = 0
    n = len(s)
    while i < n:
        ch = s[i]
        if not (ch == "." or _is_digit(ch)):
            raise ValueError(invalid)

        # Integer part [0-9]*; Go reports overflow of the integer part as invalid.
        start = i
        whole = 0
        while i < n and _is_digit(s[i]):
            whole = whole * 10 + (ord(s[i]) - 48)
            if whole > _LIMIT:
                raise ValueError(invalid)
            i += 1
        pre = i != start

        # Fraction (\.[0-9]*)?; digits beyond int64 precision are consumed but ignored,
        # exactly like Go's leadingFraction.
        frac = 0
        scale = 1.0
        post = False
        if i < n and s[i] == ".":
            i += 1
            fstart = i
            overflow = False
            while i < n and _is_digit(s[i]):
                if not overflow:
                    if frac > (_LIMIT - 1) // 10:
                        overflow = True
                    else:
                        nxt = frac * 10 + (ord(s[i]) - 48)
                        if nxt > _LIMIT:
                            overflow = True
                        else:
                            frac = nxt
                            scale *= 10
                i += 1
            post = i != fstart
        if not pre and not post:
            raise ValueError(invalid)

        # Unit: everything up to the next digit or '.'.
        ustart = i
        while i < n and not (s[i] == "." or _is_digit(s[i])):
            i += 1
        if i == ustart:
            raise ValueError(f"time: missing unit in duration {_time_quote(orig)}")
        unit_name = s[ustart:i]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise ValueError(f"time: unknown unit {_time_quote(unit_name)} in duration {_time_quote(orig)}")

        if whole > _LIMIT // unit:
            raise ValueError(invalid)
        value = whole * unit
        if frac > 0:
            # Go computes the fractional contribution in float64 and truncates.
            value += int(float(frac) * (float(unit) / scale))
            if value > _LIMIT:
                raise ValueError(invalid)
        total += value
        if total > _LIMIT:
            raise ValueError(invalid)

    if neg:
        return -total
    if total > MAX_DURATION_NS:
        raise ValueError(invalid)
    return total



# ---------------------------------------------------------------------------------------
# The flag package
# ---------------------------------------------------------------------------------------


class FlagError(ValueError):
    """A command line Go's ``flag`` package rejects; ``str()`` is its message
    (``flag provided but not defined: -x``, ``flag needs an argument: -x``,
    ``bad flag syntax: ---x``, ``invalid value "v" for flag -x: parse error``)."""


class FlagValueError(FlagError):
    """A flag's value does not parse (``invalid value ...``/``invalid boolean value ...``)."""


class FlagHelp(Exception):
    """``-h``/``-help`` (and ``--`` forms) given and not defined as flags: print the usage."""


def flag_reason(err: ValueError) -> str:
    """What Go's ``flag`` package prints for a ``strconv`` error: ``parse error`` for a
    syntax error, ``value out of range`` for a range error (its ``numError``); another
    error's own text."""
    if isinstance(err, NumError):
        return "value out of range" if err.reason == ERR_RANGE else "parse error"
    return str(err)


def invalid_value(name: str, value: str, reason: str) -> FlagValueError:
    """Go's ``invalid value "v" for flag -name: reason``."""
    return FlagValueError(f"invalid value {quote(value)} for flag -{name}: {reason}")


class FlagScanner:
    """The ``flag`` package's tokenising of ``args``, one flag at a time, in order.

    ``is_bool(name)`` says whether ``name`` is a defined boolean flag (True), a defined flag
    that takes a value (False), or not defined (None).  Iterating yields ``(name, value)``:
    a boolean flag's value is a ``bool`` (``-v`` is True, ``-v=false`` False; a boolean never
    takes the next argument), any other flag's is the text after ``=`` or the next argument
    (even one starting with ``-``).  Scanning stops at the first argument that is not a flag,
    at a lone ``-``, or after ``--``; :attr:`rest` then holds the remaining arguments.

    Errors are raised when the scan reaches them, so a caller that applies each value as it
    is yielded reports the first problem in command-line order, as Go does:
    :class:`FlagError` for syntax, :class:`FlagValueError` for a bad boolean value,
    :class:`FlagHelp` for an undefined ``-h``/``-help``.
    """

    def __init__(self, args: Sequence[str], is_bool: Callable[[str], bool | None]) -> None:
        self._args = list(args)
        self._is_bool = is_bool
        self.rest: list[str] = []

    def __iter__(self) -> Iterator[tuple[str, str | bool]]:
        args = self._args
        i = 0
        while i < len(args):
            arg = args[i]
            if len(arg) < 2 or arg[0] != "-":
                break
            minuses = 1
            if arg[1] == "-":
                minuses = 2
                if len(arg) == 2:  # "--" terminates the flags
                    i += 1
                    break
            name = arg[minuses:]
            if not name or name[0] in "-=":
                raise FlagError(f"bad flag syntax: {arg}")
            i += 1
            name, has_value, value = name.partition("=")
            boolean = self._is_bool(name)
            if boolean is None:
                if name in ("help", "h"):
                    raise FlagHelp()
                raise FlagError(f"flag provided but not defined: -{name}")
            if boolean:
                if not has_value:
                    yield name, True
                    continue
                try:
                    parsed = parse_bool(value)
                except NumError:
                    raise FlagValueError(f"invalid boolean value {quote(value)} for -{name}: parse error") from None
                yield name, parsed
                continue
            if not has_value:
                if i >= len(args):
                    raise FlagError(f"flag needs an argument: -{name}")
                value = args[i]
                i += 1
            yield name, value
        self.rest = args[i:]


def match_fields(raw: Mapping[str, Any], fields: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """mapstructure's struct decode of ``raw``: each field takes the key spelled as its name,
    else the first key equal to it ignoring case.  Returns the values by field name and the keys
    no field took, sorted (what ``ErrorUnused`` reports)."""
    out: dict[str, Any] = {}
    used: set[str] = set()
    for name in fields:
        if name in raw:
            key: str | None = name
        else:
            key = next((k for k in raw if k not in used and k.lower() == name.lower()), None)
        if key is not None:
            out[name] = raw[key]
            used.add(key)
    return out, sorted(k for k in raw if k not in used)


def invalid_keys(keys: Sequence[str]) -> str:
    """mapstructure's error for keys no field took, at the top level (its ``Error`` text)."""
    return f"1 error(s) decoding:\n\n* '' has invalid keys: {', '.join(sorted(keys))}"
