"""Go ``flag`` package semantics of muster.cli.flags."""

from __future__ import annotations

import pytest

from muster.cli.flags import FlagError, FlagSet, HelpRequested, add_http_flags, client_config, parse_go_int


def _fs() -> FlagSet:
    fs = FlagSet("Usage: test")
    fs.add("recurse", "bool", False)
    fs.add("shell", "bool", True)
    fs.add("name", "string", "")
    fs.add("n", "int", 1)
    fs.add("flags", "uint", 0)
    fs.add("timeout", "duration", 0)
    fs.add("tag", "list")
    fs.add("meta", "map")
    return fs


def test_defaults_and_positional() -> None:
    p = _fs().parse(["key", "value"])
    assert p.args == ["key", "value"]
    assert p["recurse"] is False and p["shell"] is True and p["n"] == 1 and p["tag"] == [] and p["meta"] == {}
    assert not p.is_set("recurse")


def test_value_forms() -> None:
    p = _fs().parse(["-name=a", "--n", "3", "-flags", "0x10", "-timeout=1.5s", "-recurse", "k"])
    assert p["name"] == "a"
    assert p["n"] == 3
    assert p["flags"] == 16
    assert p["timeout"] == 1_500_000_000
    assert p["recurse"] is True
    assert p.args == ["k"]
    assert p.is_set("name") and p.is_set("timeout")


def test_bool_needs_equals_for_false() -> None:
    p = _fs().parse(["-shell=false", "-recurse=0", "x"])
    assert p["shell"] is False and p["recurse"] is False
    # A separate word after a bool flag is positional, as in Go.
    p = _fs().parse(["-recurse", "false"])
    assert p["recurse"] is True and p.args == ["false"]


def test_parsing_stops_at_first_non_flag_and_double_dash() -> None:
    p = _fs().parse(["prefix", "-name=x", "sh"])
    assert p.args == ["prefix", "-name=x", "sh"]
    assert p["name"] == ""
    p = _fs().parse(["-n=2", "--", "-recurse"])
    assert p.args == ["-recurse"] and p["recurse"] is False
    # A lone "-" is positional (stdin marker).
    assert _fs().parse(["key", "-"]).args == ["key", "-"]
    assert _fs().parse(["-"]).args == ["-"]


def test_non_bool_takes_next_word_even_if_dashed() -> None:
    assert _fs().parse(["-name", "-weird"])["name"] == "-weird"


def test_repeatable_list_and_map() -> None:
    p = _fs().parse(["-tag=a", "-tag", "b", "-meta=k=v=w", "-meta", "x="])
    assert p["tag"] == ["a", "b"]
    assert p["meta"] == {"k": "v=w", "x": ""}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-bogus"], "flag provided but not defined: -bogus"),
        (["-name"], "flag needs an argument: -name"),
        (["-n=abc"], 'invalid value "abc" for flag -n: parse error'),
        (["-n=99999999999999999999"], 'invalid value "99999999999999999999" for flag -n: value out of range'),
        (["-flags=-1"], 'invalid value "-1" for flag -flags: parse error'),
        (["-timeout=5"], 'invalid value "5" for flag -timeout: parse error'),
        (["-recurse=maybe"], 'invalid boolean value "maybe" for -recurse: parse error'),
        (["-meta=novalue"], 'invalid value "novalue" for flag -meta: Missing "=" value in argument: novalue'),
        (["---x"], "bad flag syntax: ---x"),
        (["-=x"], "bad flag syntax: -=x"),
    ],
)
def test_errors(argv: list[str], message: str) -> None:
    with pytest.raises(FlagError) as err:
        _fs().parse(argv)
    assert str(err.value) == message


@pytest.mark.parametrize("arg", ["-h", "-help", "--help", "--h"])
def test_help(arg: str) -> None:
    with pytest.raises(HelpRequested):
        _fs().parse([arg])


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10", 10),
        ("0x1f", 31),
        ("0X1F", 31),
        ("010", 8),
        ("0o17", 15),
        ("0b101", 5),
        ("1_000", 1000),
        ("-5", -5),
    ],
)
def test_parse_go_int(text: str, value: int) -> None:
    assert parse_go_int(text) == value


def test_parse_go_uint_range() -> None:
    assert parse_go_int("18446744073709551615", unsigned=True) == 2**64 - 1
    with pytest.raises(ValueError, match="value out of range"):
        parse_go_int("18446744073709551616", unsigned=True)
    for bad in ("", "_1", "1__0", "0x", "1e3", "+1"):
        with pytest.raises(ValueError):
            parse_go_int(bad, unsigned=True)


def test_http_flags_override_environment() -> None:
    fs = FlagSet("u")
    add_http_flags(fs)
    env = {"CONSUL_HTTP_ADDR": "10.0.0.1:8500", "CONSUL_HTTP_TOKEN": "envtok", "CONSUL_HTTP_SSL": "true"}
    cfg = client_config(fs.parse([]), env)
    assert cfg.address == "10.0.0.1:8500" and cfg.token == "envtok" and cfg.ssl is True
    cfg = client_config(
        fs.parse(["-http-addr=127.0.0.1:9", "-token=flagtok", "-datacenter=dc2", "-stale"]), env
    )
    assert cfg.address == "127.0.0.1:9" and cfg.token == "flagtok" and cfg.datacenter == "dc2" and cfg.stale
    # -token-file beats the CONSUL_HTTP_TOKEN environment variable.
    cfg = client_config(fs.parse(["-token-file=/tmp/t"]), env)
    assert cfg.token == "" and cfg.token_file == "/tmp/t"


def test_str_kind_alias() -> None:
    fs = FlagSet("u")
    fs.add("id", "str", "")
    assert fs.parse(["-id=x"])["id"] == "x"
