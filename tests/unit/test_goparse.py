"""muster.goparse pins Go's strconv, time.ParseDuration and flag behaviour, and every caller
(config, CLI flags, filter, HTTP query) uses it with the base Consul's code uses there.

The tables follow Go's own strconv tests (atoi_test.go, atof_test.go, atob_test.go): the
expected values and errors below are what Go returns for the same input.
"""

from __future__ import annotations

import math

import pytest

from muster.goparse import (
    ERR_RANGE,
    ERR_SYNTAX,
    FlagError,
    FlagHelp,
    FlagScanner,
    FlagValueError,
    NumError,
    atoi,
    flag_reason,
    parse_bool,
    parse_duration_ns,
    parse_float,
    parse_int,
    parse_uint,
    quote,
    unquote_interpreted,
)

# ----------------------------------------------------------------------------- ParseBool

BOOLS = [
    ("1", True), ("t", True), ("T", True), ("TRUE", True), ("true", True), ("True", True),
    ("0", False), ("f", False), ("F", False), ("FALSE", False), ("false", False), ("False", False),
    ("", None), ("yes", None), ("no", None), ("TrUe", None), ("tRUE", None), (" true", None),
    ("true ", None), ("2", None), ("on", None), ("\u0661", None),
]


@pytest.mark.parametrize(("text", "want"), BOOLS)
def test_parse_bool(text: str, want: bool | None) -> None:
    if want is None:
        with pytest.raises(NumError) as err:
            parse_bool(text)
        assert str(err.value) == f"strconv.ParseBool: parsing {quote(text)}: invalid syntax"
    else:
        assert parse_bool(text) is want


# ----------------------------------------------------------------------------- ParseUint

# (text, base, bits, value or error reason)
UINTS: list[tuple[str, int, int, int | str]] = [
    # base 10: no prefixes, no underscores, leading zeros are fine, no sign
    ("", 10, 64, ERR_SYNTAX),
    ("0", 10, 64, 0),
    ("1", 10, 64, 1),
    ("12345", 10, 64, 12345),
    ("012345", 10, 64, 12345),
    ("12345x", 10, 64, ERR_SYNTAX),
    ("18446744073709551615", 10, 64, 2**64 - 1),
    ("18446744073709551616", 10, 64, ERR_RANGE),
    ("18446744073709551620", 10, 64, ERR_RANGE),
    ("1_000", 10, 64, ERR_SYNTAX),
    ("0x10", 10, 64, ERR_SYNTAX),
    ("+1", 10, 64, ERR_SYNTAX),
    ("-0", 10, 64, ERR_SYNTAX),
    (" 1", 10, 64, ERR_SYNTAX),
    ("1 ", 10, 64, ERR_SYNTAX),
    ("\u0663", 10, 64, ERR_SYNTAX),  # ARABIC-INDIC DIGIT THREE: str.isdigit() is True, Go says no
    ("\u00b2", 10, 64, ERR_SYNTAX),  # SUPERSCRIPT TWO: str.isdigit() is True, int() raises
    ("255", 10, 8, 255),
    ("256", 10, 8, ERR_RANGE),
    # base 0: prefixes as in Go literals, and "_" between digits
    ("0", 0, 64, 0),
    ("0x10", 0, 64, 16),
    ("0X10", 0, 64, 16),
    ("0x", 0, 64, ERR_SYNTAX),
    ("0X", 0, 64, ERR_SYNTAX),
    ("0b101", 0, 64, 5),
    ("0B101", 0, 64, 5),
    ("0b", 0, 64, ERR_SYNTAX),
    ("0b2", 0, 64, ERR_SYNTAX),
    ("0o17", 0, 64, 15),
    ("0O17", 0, 64, 15),
    ("0o", 0, 64, ERR_SYNTAX),
    ("017", 0, 64, 15),
    ("08", 0, 64, ERR_SYNTAX),
    ("01234567", 0, 64, 0o1234567),
    ("1_000", 0, 64, 1000),
    ("1_2_3_4_5", 0, 64, 12345),
    ("_12345", 0, 64, ERR_SYNTAX),
    ("1__2345", 0, 64, ERR_SYNTAX),
    ("12345_", 0, 64, ERR_SYNTAX),
    ("0x_1_2_3_4_5", 0, 64, 0x12345),
    ("_0x12345", 0, 64, ERR_SYNTAX),
    ("0x__12345", 0, 64, ERR_SYNTAX),
    ("0x1__2345", 0, 64, ERR_SYNTAX),
    ("0x12345_", 0, 64, ERR_SYNTAX),
    ("0_17", 0, 64, 15),
    ("0b1_0_1", 0, 64, 5),
    ("0xffffffffffffffff", 0, 64, 2**64 - 1),
    ("0x10000000000000000", 0, 64, ERR_RANGE),
    # other bases
    ("ff", 16, 64, 255),
    ("FF", 16, 64, 255),
    ("zz", 36, 64, 36 * 36 - 1),
    ("0xff", 16, 64, ERR_SYNTAX),
]


@pytest.mark.parametrize(("text", "base", "bits", "want"), UINTS)
def test_parse_uint(text: str, base: int, bits: int, want: int | str) -> None:
    if isinstance(want, str):
        with pytest.raises(NumError) as err:
            parse_uint(text, base, bits)
        assert err.value.reason == want
        assert str(err.value) == f"strconv.ParseUint: parsing {quote(text)}: {want}"
    else:
        assert parse_uint(text, base, bits) == want


# ----------------------------------------------------------------------------- ParseInt

INTS: list[tuple[str, int, int, int | str]] = [
    ("", 10, 64, ERR_SYNTAX),
    ("0", 10, 64, 0),
    ("-0", 10, 64, 0),
    ("+0", 10, 64, 0),
    ("1", 10, 64, 1),
    ("-1", 10, 64, -1),
    ("+7", 10, 64, 7),
    ("12345", 10, 64, 12345),
    ("-12345", 10, 64, -12345),
    ("012345", 10, 64, 12345),
    ("-012345", 10, 64, -12345),
    ("9223372036854775807", 10, 64, 2**63 - 1),
    ("-9223372036854775807", 10, 64, -(2**63 - 1)),
    ("9223372036854775808", 10, 64, ERR_RANGE),
    ("-9223372036854775808", 10, 64, -(2**63)),
    ("-9223372036854775809", 10, 64, ERR_RANGE),
    ("-1_2_3_4_5", 10, 64, ERR_SYNTAX),
    ("1_000", 10, 64, ERR_SYNTAX),
    ("--1", 10, 64, ERR_SYNTAX),
    ("+-1", 10, 64, ERR_SYNTAX),
    ("-", 10, 64, ERR_SYNTAX),
    ("+", 10, 64, ERR_SYNTAX),
    ("0x10", 10, 64, ERR_SYNTAX),
    ("127", 10, 8, 127),
    ("128", 10, 8, ERR_RANGE),
    ("-128", 10, 8, -128),
    ("-129", 10, 8, ERR_RANGE),
    # base 0
    ("1_000", 0, 64, 1000),
    ("-1_2_3_4_5", 0, 64, -12345),
    ("-_12345", 0, 64, ERR_SYNTAX),
    ("_12345", 0, 64, ERR_SYNTAX),
    ("-0x10", 0, 64, -16),
    ("+0b101", 0, 64, 5),
    ("-010", 0, 64, -8),
    ("0x7fffffffffffffff", 0, 64, 2**63 - 1),
    ("0x8000000000000000", 0, 64, ERR_RANGE),
    ("-0x8000000000000000", 0, 64, -(2**63)),
    ("1e3", 0, 64, ERR_SYNTAX),
    ("1.0", 0, 64, ERR_SYNTAX),
]


@pytest.mark.parametrize(("text", "base", "bits", "want"), INTS)
def test_parse_int(text: str, base: int, bits: int, want: int | str) -> None:
    if isinstance(want, str):
        with pytest.raises(NumError) as err:
            parse_int(text, base, bits)
        assert err.value.reason == want
        assert str(err.value) == f"strconv.ParseInt: parsing {quote(text)}: {want}"
    else:
        assert parse_int(text, base, bits) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [("80", 80), ("-1", -1), ("+1", 1), ("0x50", ERR_SYNTAX), ("8_0", ERR_SYNTAX), ("", ERR_SYNTAX),
     ("99999999999999999999", ERR_RANGE)],
)
def test_atoi(text: str, want: int | str) -> None:
    if isinstance(want, str):
        with pytest.raises(NumError, match=f"^strconv.Atoi: parsing {quote(text)}: {want}$"):
            atoi(text)
    else:
        assert atoi(text) == want


# ----------------------------------------------------------------------------- ParseFloat

FLOATS: list[tuple[str, float | str]] = [
    ("1", 1.0),
    ("+1", 1.0),
    ("-1", -1.0),
    ("1e23", 1e23),
    ("1E23", 1e23),
    ("100000000000000000000000", 1e23),
    ("1e-100", 1e-100),
    ("123456700", 1.234567e08),
    ("1.5", 1.5),
    ("1.", 1.0),
    (".5", 0.5),
    ("-.5", -0.5),
    ("1e+2", 100.0),
    ("1e-2", 0.01),
    ("1_000.5", 1000.5),
    ("1_0e1_0", 1e11),
    ("0x1p-2", 0.25),
    ("0X1P-2", 0.25),
    ("0x1.8p1", 3.0),
    ("-0x1p3", -8.0),
    ("0x_1p4", 16.0),
    ("1.7976931348623157e308", 1.7976931348623157e308),
    ("1e-400", 0.0),
    ("1e309", ERR_RANGE),
    ("-1e309", ERR_RANGE),
    ("0x1p1024", ERR_RANGE),
    ("inf", math.inf),
    ("+Inf", math.inf),
    ("-INF", -math.inf),
    ("infinity", math.inf),
    ("-Infinity", -math.inf),
    ("", ERR_SYNTAX),
    (".", ERR_SYNTAX),
    ("e1", ERR_SYNTAX),
    ("1e", ERR_SYNTAX),
    ("1e+", ERR_SYNTAX),
    ("1e_3", ERR_SYNTAX),
    ("1.5.5", ERR_SYNTAX),
    (" 1", ERR_SYNTAX),
    ("1 ", ERR_SYNTAX),
    ("_1", ERR_SYNTAX),
    ("1_", ERR_SYNTAX),
    ("1__0", ERR_SYNTAX),
    ("1_.5", ERR_SYNTAX),
    ("0x1", ERR_SYNTAX),  # a hex float needs a p exponent
    ("0x1p", ERR_SYNTAX),
    ("0x", ERR_SYNTAX),
    ("infin", ERR_SYNTAX),
    ("infx", ERR_SYNTAX),
    ("+nan", ERR_SYNTAX),
    ("\u0661", ERR_SYNTAX),
    ("1,5", ERR_SYNTAX),
]


@pytest.mark.parametrize(("text", "want"), FLOATS)
def test_parse_float(text: str, want: float | str) -> None:
    if isinstance(want, str):
        with pytest.raises(NumError) as err:
            parse_float(text)
        assert err.value.reason == want
        assert str(err.value) == f"strconv.ParseFloat: parsing {quote(text)}: {want}"
    else:
        assert parse_float(text) == want


@pytest.mark.parametrize("text", ["nan", "NaN", "NAN"])
def test_parse_float_nan(text: str) -> None:
    assert math.isnan(parse_float(text))


def test_parse_float_negative_zero() -> None:
    assert math.copysign(1.0, parse_float("-0")) == -1.0


# ----------------------------------------------------------------------------- Quote


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("abc", '"abc"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("\n\t\r\a\b\f\v", '"\\n\\t\\r\\a\\b\\f\\v"'),
        ("\x00\x7f", '"\\x00\\x7f"'),
        ("h\u00e9llo", '"h\u00e9llo"'),
        ("\u200b", '"\\u200b"'),
        ("\U0001f600", '"\U0001f600"'),
        ("\U000e0001", '"\\U000e0001"'),
    ],
)
def test_quote(text: str, want: str) -> None:
    assert quote(text) == want


@pytest.mark.parametrize(
    ("body", "want"),
    [
        ("abc", "abc"),
        ("a\\\"b", 'a"b'),
        ("\\n\\t\\a", "\n\t\a"),
        ("\\x41\\u00e9\\U0001F600", "A\u00e9\U0001f600"),
        ("\\101", "A"),
        ("h\u00e9", "h\u00e9"),
        ("\\q", None),
        ("\\x4", None),
        ("\\xZZ", None),
        ("\\400", None),
        ("\\uD800", None),
        ("\\U00110000", None),
        ("a\nb", None),
        ("\\", None),
    ],
)
def test_unquote_interpreted(body: str, want: str | None) -> None:
    if want is None:
        with pytest.raises(ValueError, match="^invalid syntax$"):
            unquote_interpreted(body)
    else:
        assert unquote_interpreted(body) == want
        assert unquote_interpreted(quote(want)[1:-1]) == want  # Quote and Unquote round-trip


# ----------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("0", 0), ("-0", 0), ("5s", 5 * 10**9), ("1.5h", 5400 * 10**9), ("1h2m3s4ms5us6ns", 3723004005006),
        ("-1.5s", -1500000000), (".5s", 500000000), ("1\u00b5s", 1000), ("1\u03bcs", 1000),
        ("2562047h47m16.854775807s", 2**63 - 1),
        ("5", "time: missing unit in duration \"5\""),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        ("", 'time: invalid duration ""'),
        ("1_000s", 'time: unknown unit "_" in duration "1_000s"'),
        ("2562048h", 'time: invalid duration "2562048h"'),
        (" 1s", 'time: invalid duration " 1s"'),
    ],
)
def test_parse_duration_ns(text: str, want: int | str) -> None:
    if isinstance(want, str):
        with pytest.raises(ValueError) as err:
            parse_duration_ns(text)
        assert str(err.value) == want
    else:
        assert parse_duration_ns(text) == want


# ----------------------------------------------------------------------------- flag package

_BOOLS = {"a": True, "b": True, "n": False, "name": False}


def _scan(argv: list[str]) -> tuple[list[tuple[str, str | bool]], list[str]]:
    scanner = FlagScanner(argv, _BOOLS.get)
    got = list(scanner)
    return got, scanner.rest


@pytest.mark.parametrize(
    ("argv", "flags", "rest"),
    [
        ([], [], []),
        (["-a", "-n", "3", "x", "-b"], [("a", True), ("n", "3")], ["x", "-b"]),
        (["--a=false", "-b=1"], [("a", False), ("b", True)], []),
        (["-a", "false"], [("a", True)], ["false"]),  # a bool never takes the next argument
        (["-n=1=2"], [("n", "1=2")], []),
        (["-n="], [("n", "")], []),
        (["-n", "-a"], [("n", "-a")], []),  # a value flag takes the next argument, dashed or not
        (["--name", "--"], [("name", "--")], []),
        (["--", "-a"], [], ["-a"]),
        (["-a", "--", "--", "x"], [("a", True)], ["--", "x"]),
        (["-"], [], ["-"]),
        (["-a", "-", "-b"], [("a", True)], ["-", "-b"]),
        (["x", "-a"], [], ["x", "-a"]),
    ],
)
def test_flag_scanner(argv: list[str], flags: list[tuple[str, str | bool]], rest: list[str]) -> None:
    assert _scan(argv) == (flags, rest)


@pytest.mark.parametrize(
    ("argv", "error", "message"),
    [
        (["---a"], FlagError, "bad flag syntax: ---a"),
        (["-=1"], FlagError, "bad flag syntax: -=1"),
        (["--=1"], FlagError, "bad flag syntax: --=1"),
        (["-x"], FlagError, "flag provided but not defined: -x"),
        (["--x=1"], FlagError, "flag provided but not defined: -x"),
        (["-n"], FlagError, "flag needs an argument: -n"),
        (["-a=yes"], FlagValueError, 'invalid boolean value "yes" for -a: parse error'),
        (["-a="], FlagValueError, 'invalid boolean value "" for -a: parse error'),
        (["-a=\"x"], FlagValueError, 'invalid boolean value "\\"x" for -a: parse error'),
        (["-a=bad", "-zzz"], FlagValueError, 'invalid boolean value "bad" for -a: parse error'),  # in order
        (["-zzz", "-a=bad"], FlagError, "flag provided but not defined: -zzz"),
    ],
)
def test_flag_scanner_errors(argv: list[str], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as err:
        _scan(argv)
    assert str(err.value) == message
    if error is FlagError:
        assert not isinstance(err.value, FlagValueError)


@pytest.mark.parametrize("arg", ["-h", "-help", "--h", "--help", "-help=1"])
def test_flag_scanner_help(arg: str) -> None:
    with pytest.raises(FlagHelp):
        _scan([arg])


def test_flag_scanner_help_when_defined_is_a_flag() -> None:
    scanner = FlagScanner(["-h"], {"h": True}.get)
    assert list(scanner) == [("h", True)]


def test_flag_scanner_yields_before_a_later_error() -> None:
    seen: list[str] = []
    with pytest.raises(FlagError):
        for name, _value in FlagScanner(["-a", "-n", "1", "-x"], _BOOLS.get):
            seen.append(name)
    assert seen == ["a", "n"]


def test_flag_reason() -> None:
    with pytest.raises(NumError) as syntax:
        parse_int("x")
    with pytest.raises(NumError) as rng:
        parse_int("99999999999999999999")
    assert flag_reason(syntax.value) == "parse error"
    assert flag_reason(rng.value) == "value out of range"
    assert flag_reason(ValueError('Missing "=" value')) == 'Missing "=" value'


# ----------------------------------------------------------------------------- one behaviour
# Each caller uses the base Consul's code uses at that place: ParseInt(s, 0, 64) for flags,
# config values and filter values (so "1_000" and "0x10" are numbers), ParseUint(s, 10, 64)
# for HTTP query parameters such as ?index= (so they are not).


def test_callers_agree_on_base_zero_integers() -> None:
    from muster.cli.flags import FlagSet
    from muster.config import config_from_dict, parse_agent_flags
    from muster.filter import compile_filter

    fs = FlagSet("u")
    fs.add("n", "int", 0)
    assert fs.parse(["-n=1_000"])["n"] == 1000
    assert parse_agent_flags(["-dev", "-http-port=1_000"]).ports.http == 1000
    assert config_from_dict({"ports": {"http": "1_000"}}, dev=True).ports.http == 1000
    flt = compile_filter('Port == "1_000"')
    assert flt.matches({"Port": 1000})
    assert compile_filter('Port == "0x3e8"').matches({"Port": 1000})
    for bad in ("1__000", "_1000", "1000_", " 1000", "\u0661"):
        with pytest.raises(FlagError, match="parse error"):
            fs.parse([f"-n={bad}"])


def test_http_uint_params_are_base_ten() -> None:
    from muster.errors import BadRequest
    from muster.http.request import Request

    def req(query: str) -> Request:
        return Request("GET", "/v1/kv/x", query.encode(), {}, None)

    assert req("index=0012").uint_param("index") == 12
    for bad, reason in (("1_000", ERR_SYNTAX), ("0x10", ERR_SYNTAX), ("+1", ERR_SYNTAX), ("%D9%A3", ERR_SYNTAX),
                        ("18446744073709551616", ERR_RANGE)):
        with pytest.raises(BadRequest) as err:
            req(f"index={bad}").uint_param("index")
        assert str(err.value).endswith(reason)
    assert req("passing").bool_param("passing", "bad") is True
    assert req("passing=T").bool_param("passing", "bad") is True
    assert req("passing=0").bool_param("passing", "bad") is False
    with pytest.raises(BadRequest, match="^bad$"):
        req("passing=yes").bool_param("passing", "bad")
