"""Tests for muster.durations: Go time.ParseDuration / Duration.String compatibility."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from muster.durations import (
    HOUR,
    MAX_DURATION_NS,
    MICROSECOND,
    MILLISECOND,
    MIN_DURATION_NS,
    MINUTE,
    SECOND,
    format_duration,
    format_duration_ns,
    parse_body_duration,
    parse_body_duration_ns,
    parse_duration,
    parse_duration_ns,
    seconds_to_ns,
)

# Expected values taken from Go's time package tests (parseDurationTests) and docs/compat/http.md#request-parsing.
VALID = [
    ("0", 0),
    ("5s", 5 * SECOND),
    ("30s", 30 * SECOND),
    ("1478s", 1478 * SECOND),
    ("-5s", -5 * SECOND),
    ("+5s", 5 * SECOND),
    ("-0", 0),
    ("+0", 0),
    ("5.0s", 5 * SECOND),
    ("5.6s", 5 * SECOND + 600 * MILLISECOND),
    ("5.s", 5 * SECOND),
    (".5s", 500 * MILLISECOND),
    ("1.0s", SECOND),
    ("1.00s", SECOND),
    ("1.004s", SECOND + 4 * MILLISECOND),
    ("1.0040s", SECOND + 4 * MILLISECOND),
    ("100.00100s", 100 * SECOND + MILLISECOND),
    ("10ns", 10),
    ("11us", 11 * MICROSECOND),
    ("12\u00b5s", 12 * MICROSECOND),
    ("12\u03bcs", 12 * MICROSECOND),
    ("13ms", 13 * MILLISECOND),
    ("14s", 14 * SECOND),
    ("15m", 15 * MINUTE),
    ("16h", 16 * HOUR),
    ("3h30m", 3 * HOUR + 30 * MINUTE),
    ("10.5s4m", 4 * MINUTE + 10 * SECOND + 500 * MILLISECOND),
    ("-2m3.4s", -(2 * MINUTE + 3 * SECOND + 400 * MILLISECOND)),
    ("1h2m3s4ms5us6ns", HOUR + 2 * MINUTE + 3 * SECOND + 4 * MILLISECOND + 5 * MICROSECOND + 6),
    ("39h9m14.425s", 39 * HOUR + 9 * MINUTE + 14 * SECOND + 425 * MILLISECOND),
    ("52763797000ns", 52763797000),
    ("0.3333333333333333333h", 20 * MINUTE),
    ("9007199254740993ns", (1 << 53) + 1),
    ("9223372036854775807ns", MAX_DURATION_NS),
    ("9223372036854775.807us", MAX_DURATION_NS),
    ("9223372036s854ms775us807ns", MAX_DURATION_NS),
    ("-9223372036854775808ns", MIN_DURATION_NS),
    ("-9223372036854775.808us", MIN_DURATION_NS),
    ("0.100000000000000000000h", 6 * MINUTE),
    ("0.830103483285477580700h", 49 * MINUTE + 48 * SECOND + 372539827 * 1),
    # Patroni / contract examples
    ("9.87s", 9 * SECOND + 870 * MILLISECOND),
    ("15.0s", 15 * SECOND),
    ("0.001s", MILLISECOND),
    ("60000ms", MINUTE),
    ("1h2m", HOUR + 2 * MINUTE),
]


@pytest.mark.parametrize(("text", "ns"), VALID)
def test_parse_valid(text: str, ns: int) -> None:
    assert parse_duration_ns(text) == ns
    assert parse_duration(text) == pytest.approx(ns / SECOND, abs=1e-9)


INVALID = [
    ("", 'time: invalid duration ""'),
    ("3", 'time: missing unit in duration "3"'),
    ("5", 'time: missing unit in duration "5"'),
    ("-", 'time: invalid duration "-"'),
    ("s", 'time: invalid duration "s"'),
    (".", 'time: invalid duration "."'),
    ("-.", 'time: invalid duration "-."'),
    (".s", 'time: invalid duration ".s"'),
    ("+.s", 'time: invalid duration "+.s"'),
    ("abc", 'time: invalid duration "abc"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("3000000h", 'time: invalid duration "3000000h"'),
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
    ("9223372036854775.808us", 'time: invalid duration "9223372036854775.808us"'),
    ("9223372036854ms775us808ns", 'time: invalid duration "9223372036854ms775us808ns"'),
    ("-9223372036854775809ns", 'time: invalid duration "-9223372036854775809ns"'),
    ("1s ", 'time: unknown unit "s " in duration "1s "'),
    (" 1s", 'time: invalid duration " 1s"'),
    ("1.5", 'time: missing unit in duration "1.5"'),
    ('"1s"', 'time: invalid duration "\\"1s\\""'),
    ("1\u00e9s", 'time: unknown unit "\\xc3\\xa9s" in duration "1\\xc3\\xa9s"'),
    ("\u0661s", 'time: invalid duration "\\xd9\\xa1s"'),  # Arabic-Indic digit is not a Go digit
    ("1S", 'time: unknown unit "S" in duration "1S"'),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_parse_invalid(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == message


def test_parse_rejects_non_string() -> None:
    with pytest.raises(TypeError):
        parse_duration(5)  # type: ignore[arg-type]


FORMAT = [
    (0, "0s"),
    (1, "1ns"),
    (1100, "1.1\u00b5s"),
    (2200 * MICROSECOND, "2.2ms"),
    (500 * MILLISECOND, "500ms"),
    (3300 * MILLISECOND, "3.3s"),
    (1500 * MILLISECOND, "1.5s"),
    (10 * SECOND, "10s"),
    (90 * SECOND, "1m30s"),
    (4 * MINUTE + 5 * SECOND, "4m5s"),
    (4 * MINUTE + 5001 * MILLISECOND, "4m5.001s"),
    (HOUR, "1h0m0s"),
    (5 * HOUR + 6 * MINUTE + 7001 * MILLISECOND, "5h6m7.001s"),
    (8 * MINUTE + 1, "8m0.000000001s"),
    (MAX_DURATION_NS, "2562047h47m16.854775807s"),
    (MIN_DURATION_NS, "-2562047h47m16.854775808s"),
    (-SECOND, "-1s"),
    (-1, "-1ns"),
]


@pytest.mark.parametrize(("ns", "text"), FORMAT)
def test_format_ns(ns: int, text: str) -> None:
    assert format_duration_ns(ns) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(10, "10s"), (90, "1m30s"), (3600, "1h0m0s"), (0.5, "500ms"), (1.5, "1.5s"), (0, "0s"), (0.001, "1ms"),
     (300, "5m0s"), (1e-9, "1ns"), (-0.25, "-250ms")],
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        format_duration(float("inf"))
    with pytest.raises(ValueError):
        format_duration(float("nan"))
    with pytest.raises(ValueError):
        format_duration_ns(MAX_DURATION_NS + 1)
    with pytest.raises(TypeError):
        format_duration_ns(True)
    with pytest.raises(ValueError):
        seconds_to_ns(1e12)


@given(st.integers(min_value=MIN_DURATION_NS, max_value=MAX_DURATION_NS))
def test_roundtrip_ns(ns: int) -> None:
    assert parse_duration_ns(format_duration_ns(ns)) == ns


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_roundtrip_seconds_float(ns: int) -> None:
    # Within ~11 days float seconds are exact to the nanosecond after rounding.
    seconds = ns / SECOND
    assert seconds_to_ns(parse_duration(format_duration(seconds))) == ns


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=10**6), st.sampled_from(["ns", "us", "ms", "s", "m", "h"])),
        min_size=1,
        max_size=5,
    )
)
def test_combined_components_sum(parts: list[tuple[int, str]]) -> None:
    units = {"ns": 1, "us": MICROSECOND, "ms": MILLISECOND, "s": SECOND, "m": MINUTE, "h": HOUR}
    text = "".join(f"{v}{u}" for v, u in parts)
    expected = sum(v * units[u] for v, u in parts)
    if expected > MAX_DURATION_NS:  # Go rejects a sum beyond int64 nanoseconds (~2562047h)
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration_ns(text)
    else:
        assert parse_duration_ns(text) == expected


@given(st.text(max_size=12))
def test_parse_never_raises_other_than_valueerror(text: str) -> None:
    try:
        ns = parse_duration_ns(text)
    except ValueError as exc:
        assert str(exc).startswith("time: ")
    else:
        assert MIN_DURATION_NS <= ns <= MAX_DURATION_NS


class TestBodyDuration:
    def test_string(self) -> None:
        assert parse_body_duration("10s") == 10.0
        assert parse_body_duration("15.0s") == 15.0
        assert parse_body_duration_ns("") == 0

    def test_number_is_nanoseconds(self) -> None:
        assert parse_body_duration(10_000_000_000) == 10.0
        assert parse_body_duration_ns(1.5e9) == 1_500_000_000
        assert parse_body_duration_ns(1.9) == 1  # truncation like Go float->int64

    def test_lock_delay_quirk(self) -> None:
        assert parse_body_duration(5, small_means_seconds=True) == 5.0
        assert parse_body_duration("15ns", small_means_seconds=True) == 15.0
        assert parse_body_duration(999, small_means_seconds=True) == 999.0
        assert parse_body_duration_ns(1000, small_means_seconds=True) == 1000
        assert parse_body_duration("15s", small_means_seconds=True) == 15.0
        assert parse_body_duration(5) == 5e-9

    @pytest.mark.parametrize("bad", [True, None, [], {}, "5", "abc", float("nan"), 2**63])
    def test_rejects(self, bad: object) -> None:
        with pytest.raises(ValueError):
            parse_body_duration(bad)

    def test_error_text_from_string(self) -> None:
        with pytest.raises(ValueError, match=r'^time: missing unit in duration "5"$'):
            parse_body_duration("5")
