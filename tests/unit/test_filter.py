"""Tests for muster.filter (go-bexpr compatible ?filter= expressions)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from muster.filter import Filter, FilterError, FilterEvalError, apply_filter, compile_filter

# A /v1/health/service/<name> entry (ServiceEntry) as Consul returns it.
HEALTH_ENTRY: dict[str, Any] = {
    "Node": {
        "ID": "40e4a748-2192-161a-0510-9bf59fe950b5",
        "Node": "consul-0",
        "Address": "10.1.2.3",
        "Datacenter": "dc1",
        "TaggedAddresses": {"lan": "10.1.2.3", "wan": "10.1.2.3"},
        "Meta": {"consul-network-segment": "", "rack-id": "r1", "os": "linux"},
    },
    "Service": {
        "ID": "web-1",
        "Service": "web",
        "Tags": ["primary", "v2"],
        "Address": "",
        "Meta": {"version": "1.2"},
        "Port": 8080,
        "Weights": {"Passing": 1, "Warning": 1},
        "EnableTagOverride": False,
    },
    "Checks": [
        {"Node": "consul-0", "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing",
         "ServiceID": "", "ServiceTags": []},
        {"Node": "consul-0", "CheckID": "service:web-1", "Name": "HTTP", "Status": "critical",
         "ServiceID": "web-1", "ServiceTags": ["primary", "v2"]},
    ],
}

# /v1/catalog/service/<name> entries (CatalogService).
CATALOG: list[dict[str, Any]] = [
    {"Node": "n1", "Address": "10.0.0.1", "NodeMeta": {"env": "prod"}, "ServiceID": "web-1",
     "ServiceName": "web", "ServiceTags": ["primary"], "ServiceMeta": {"version": "1.0"}, "ServicePort": 80,
     "ServiceEnableTagOverride": False, "ServiceWeights": {"Passing": 1, "Warning": 1}},
    {"Node": "n2", "Address": "10.0.0.2", "NodeMeta": {"env": "qa"}, "ServiceID": "web-2",
     "ServiceName": "web", "ServiceTags": ["secondary", "v2"], "ServiceMeta": {"version": "2.0"},
     "ServicePort": 8080, "ServiceEnableTagOverride": True, "ServiceWeights": {"Passing": 3, "Warning": 1}},
    {"Node": "n3", "Address": "10.0.0.3", "NodeMeta": {}, "ServiceID": "web-3", "ServiceName": "webapp",
     "ServiceTags": [], "ServiceMeta": {}, "ServicePort": 0, "ServiceEnableTagOverride": False,
     "ServiceWeights": {"Passing": 1, "Warning": 1}},
]


def ids(expr: str) -> list[str]:
    return [e["ServiceID"] for e in apply_filter(expr, CATALOG)]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('ServiceName == "web"', ["web-1", "web-2"]),
        ("ServiceName == web", ["web-1", "web-2"]),  # bare word value
        ("ServiceName == `web`", ["web-1", "web-2"]),
        ('ServiceName != "web"', ["web-3"]),
        ('"primary" in ServiceTags', ["web-1"]),
        ('"primary" not in ServiceTags', ["web-2", "web-3"]),
        ('ServiceTags contains "v2"', ["web-2"]),
        ('ServiceTags not contains "v2"', ["web-1", "web-3"]),
        ("ServiceTags is empty", ["web-3"]),
        ("ServiceTags is not empty", ["web-1", "web-2"]),
        ("ServiceMeta is empty", ["web-3"]),
        ('ServiceMeta.version == "2.0"', ["web-2"]),
        ('ServiceMeta["version"] == "1.0"', ["web-1"]),
        ("ServiceMeta[`version`] == `1.0`", ["web-1"]),
        ('ServiceMeta.missing == "x"', []),
        ('ServiceMeta.missing != "x"', ["web-1", "web-2", "web-3"]),
        ("ServiceMeta.missing is empty", ["web-1", "web-2", "web-3"]),
        ('"version" in ServiceMeta', ["web-1", "web-2"]),  # map key presence
        ('NodeMeta.env == prod or NodeMeta.env == qa', ["web-1", "web-2"]),
        ("ServicePort == 8080", ["web-2"]),
        ('ServicePort == "8080"', ["web-2"]),  # values coerced to the field's type
        ("ServicePort != 80", ["web-2", "web-3"]),
        ('ServicePort == "0x50"', ["web-1"]),  # Go ParseInt base 0
        ("ServiceEnableTagOverride == true", ["web-2"]),
        ("ServiceEnableTagOverride == false", ["web-1", "web-3"]),
        ("ServiceEnableTagOverride == T", ["web-2"]),
        ("ServiceWeights.Passing == 3", ["web-2"]),
        ('ServiceName matches "^web$"', ["web-1", "web-2"]),
        ('ServiceName matches "app"', ["web-3"]),
        ('ServiceName not matches "^web$"', ["web-3"]),
        ('Address matches "^10\\\\.0\\\\.0\\\\.[12]$"', ["web-1", "web-2"]),
        ('ServiceName contains "app"', ["web-3"]),  # substring on strings
        ('"eba" in ServiceName', ["web-3"]),
        ('ServiceName == "web" and ServicePort == 80', ["web-1"]),
        ('not ServiceName == "web"', ["web-3"]),
        ('not not ServiceName == "web"', ["web-1", "web-2"]),
        ('ServiceName == "webapp" or ServiceName == "web" and ServicePort == 80', ["web-1", "web-3"]),
        ('(ServiceName == "webapp" or ServiceName == "web") and ServicePort == 80', ["web-1"]),
        ('not (ServiceName == "web" and ServicePort == 80)', ["web-2", "web-3"]),
        ('( ServiceName == "web" )', ["web-1", "web-2"]),
        ('  ServiceName == "web"  ', ["web-1", "web-2"]),
        ('ServiceName=="web"', ["web-1", "web-2"]),
        ('"/ServiceMeta/version" == "1.0"', ["web-1"]),  # JSON pointer selector
        ('ServiceTags.0 == "secondary"', ["web-2"]),  # numeric index segment
        ('Node == "n1"\nor\tNode == "n3"', ["web-1", "web-3"]),
        ("primary in ServiceTags", ["web-1"]),  # bare word on the left of `in`
        ("ServiceTags contains v2", ["web-2"]),
        ('NodeMeta.env == qa or "primary" in ServiceTags', ["web-1", "web-2"]),
    ],
)
def test_catalog_filters(expr: str, expected: list[str]) -> None:
    assert ids(expr) == expected


@pytest.mark.parametrize(
    ("expr", "result"),
    [
        ('Checks.Status == "critical"', True),  # any element
        ('Checks.Status == "warning"', False),
        ('Checks.Status != "passing"', True),  # some check is not passing
        ('not Checks.Status == "critical"', False),
        ('Checks.CheckID == "serfHealth" and Checks.Status == passing', True),
        ('"v2" in Checks.ServiceTags', True),
        ('Checks.ServiceTags contains "nope"', False),
        ("Checks.ServiceTags is empty", True),  # serfHealth has no tags
        ('Service.Service == "web"', True),
        ('"primary" in Service.Tags', True),
        ('Service.Meta.version == "1.2"', True),
        ('Node.Meta["rack-id"] == "r1"', True),
        ('Node.Meta.os == "linux" and Service.Tags contains "v2"', True),
        ('Node.TaggedAddresses.wan == "10.1.2.3"', True),
        ('Node.Meta["consul-network-segment"] is empty', True),
        ('Service.Address is empty', True),
        ('Node.Meta.missing == "x"', False),
        ("Checks.0.CheckID == serfHealth", True),
        ("Checks.1.CheckID == serfHealth", False),
    ],
)
def test_health_entry_filters(expr: str, result: bool) -> None:
    assert compile_filter(expr).matches(HEALTH_ENTRY) is result


def test_selector_through_empty_list_matches_nothing() -> None:
    entry = copy.deepcopy(HEALTH_ENTRY)
    entry["Checks"] = []
    assert not compile_filter('Checks.Status == "passing"').matches(entry)
    assert not compile_filter('Checks.Status != "passing"').matches(entry)


def test_null_is_treated_as_absent() -> None:
    f = compile_filter('Meta.x == "1"')
    assert f.matches({"Meta": None}) is False
    assert compile_filter("Meta is empty").matches({"Meta": None}) is True
    assert compile_filter('Meta.x != "1"').matches({"Meta": None}) is True


def test_apply_filter_dict_keeps_keys() -> None:
    services = {
        "web-1": {"ID": "web-1", "Service": "web", "Tags": ["a"], "Meta": {}, "Port": 80},
        "db": {"ID": "db", "Service": "db", "Tags": [], "Meta": {"x": "y"}, "Port": 5432},
        "web-2": {"ID": "web-2", "Service": "web", "Tags": [], "Meta": {}, "Port": 81},
    }
    out = apply_filter('Service == "web"', services)
    assert list(out) == ["web-1", "web-2"]
    assert out["web-1"] is services["web-1"]


def test_apply_filter_precompiled_and_empty() -> None:
    f = compile_filter('ServiceName == "webapp"')
    assert [e["ServiceID"] for e in apply_filter(f, CATALOG)] == ["web-3"]
    assert apply_filter("", CATALOG) == CATALOG
    assert compile_filter("").matches({}) is True


def test_filter_is_callable_and_reusable() -> None:
    f = compile_filter('ServiceName == "web"')
    assert isinstance(f, Filter)
    assert [f(e) for e in CATALOG] == [True, True, False]
    assert [f.matches(e) for e in CATALOG] == [True, True, False]


# ---------------------------------------------------------------- parse errors (exact text)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("group-name in list.groups",
         '1:6 (5): no match found, expected: "!=", ".", "==", "[", [ \\t\\r\\n] or [a-zA-Z0-9_]'),
        ("a ==",
         '1:5 (4): no match found, expected: "-", "0", "\\"", "`", [ \\t\\r\\n], [1-9] or [a-zA-Z]'),
        ("(a == b", "1:8 (7): rule grouping: Unmatched parentheses"),
        ("a == 5x", "1:7 (6): rule number: Invalid number literal"),
        ('a == "x', "1:8 (7): rule string: Unterminated string literal"),
        ("a[ == 1", "1:4 (3): rule index: Invalid index"),
        ('a["x" == 1', "1:7 (6): rule index: Unclosed index expression"),
        ('"a" in 5', "1:8 (7): rule match: Invalid selector"),
        ("a == b and", "1:11 (10): no match found, expected: [ \\t\\r\\n]"),
        ("a is emptyy", "1:11 (10): no match found, expected: [ \\t\\r\\n] or EOF"),
        ('a\n== "x"\n x', '3:2 (10): no match found, expected: "and", "or", [ \\t\\r\\n] or EOF'),
        ('a == "\\q"', "1:6 (5): rule string: invalid syntax"),
        ("Service.Tags contains", "1:22 (21): no match found, expected: [ \\t\\r\\n]"),
    ],
)
def test_parse_error_messages(expr: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(expr)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "expr",
    ["==", "a", "a =", "a = b", "a === b", "a == b c", "(a == b))", "a and b", "and", "a == b or",
     "a is", "a is not", "a not in b c", "a == b and or c == d", "a.b. == 1", "a..b == 1", "1a == 1",
     "a == 1.", "a == 01", "a == --1", "a contains", 'a contains"x"', "not(a == b)", "(a == b)and(c == d)",
     "a == b\x00", "a ~= b", "a.b[\"x\"].c[1] == 1", "a matches", "_a == 1", "a == 1e5"],
)
def test_invalid_expressions(expr: str) -> None:
    with pytest.raises(FilterError):
        compile_filter(expr)


@pytest.mark.parametrize(
    "expr",
    ['a.b["x"].c == 1', "a.b.0.c == 1", "a == -1.5", "a == 0", "a == 0.25", 'a == ""', "a == ``",
     '"x" not in a', "not (a == b)", "(a == b) and (c == d)", "a is not empty", "not not not a is empty",
     "in == 1", "not == 1", "a == not", "a == and", 'a matches "["', "a == b or c == d and e == f",
     '"" == "x"', "a_b9 == A_9", "a in b"],
)
def test_valid_expressions(expr: str) -> None:
    compile_filter(expr)


def test_deep_nesting_is_fast_and_bounded() -> None:
    with pytest.raises(FilterError, match="Unmatched parentheses"):
        compile_filter("(" * 60 + "a == b")
    compile_filter("(" * 60 + "a == b" + ")" * 60)
    with pytest.raises(FilterError):
        compile_filter("(" * 5000 + "a == b" + ")" * 5000)


def test_long_and_chain() -> None:
    expr = " and ".join(f"a{i} == {i}" for i in range(150))
    f = compile_filter(expr)
    assert f.matches({f"a{i}": i for i in range(150)})
    assert not f.matches({f"a{i}": i for i in range(149)})


# ---------------------------------------------------------------- valid field names


def test_valid_fields_rejects_unknown_top_level_selector() -> None:
    fields = {"Node", "Service", "Checks"}
    compile_filter('Service.Meta.anything == "x"', fields)
    compile_filter('"a" in Service.Tags and Node.Meta["k"] == "v"', fields)
    with pytest.raises(FilterError) as info:
        compile_filter('Servic.Tags contains "x"', fields)
    assert str(info.value) == 'Selector "Servic.Tags" is not valid'
    with pytest.raises(FilterError, match='Selector "service" is not valid'):
        compile_filter('service == "x"', fields)  # case-sensitive Go names
    with pytest.raises(FilterError, match='Selector "Bogus" is not valid'):
        apply_filter("Bogus is empty", [HEALTH_ENTRY], fields)


def test_missing_top_level_key_without_schema_is_not_present() -> None:
    assert compile_filter('Nope == "x"').matches({}) is False
    assert compile_filter('Nope != "x"').matches({}) is True


# ---------------------------------------------------------------- evaluation errors


@pytest.mark.parametrize(
    ("expr", "obj", "pattern"),
    [
        ('ServicePort == "abc"', {"ServicePort": 80}, r'strconv.ParseInt: parsing "abc": invalid syntax'),
        ("Flag == maybe", {"Flag": True}, r'strconv.ParseBool: parsing "maybe": invalid syntax'),
        ("W == x", {"W": 1.5}, r"strconv.ParseFloat"),
        ('Tags == "a"', {"Tags": ["a"]}, r"unable to find suitable primitive comparison function"),
        ('"a" in Port', {"Port": 1}, r'Cannot perform in/contains operations on type int for selector: "Port"'),
        ('Port matches "1"', {"Port": 1}, r"Value of type int is not convertible to \[\]byte"),
        ('Name matches "("', {"Name": "x"}, r'Failed to compile regular expression "\("'),
        ("Port is empty", {"Port": 1}, r"Cannot perform is empty"),
        ('Port.x == "1"', {"Port": 1}, r"error finding value in datum: /Port/x"),
    ],
)
def test_evaluation_errors(expr: str, obj: dict[str, Any], pattern: str) -> None:
    f = compile_filter(expr)
    with pytest.raises(FilterEvalError, match=pattern):
        f.matches(obj)


def test_index_past_end_is_not_present() -> None:
    assert compile_filter('Tags.5 == "a"').matches({"Tags": ["a"]}) is False
    assert compile_filter('Tags.5 != "a"').matches({"Tags": ["a"]}) is True


def test_hex_number_literal_is_invalid_but_quoted_hex_coerces() -> None:
    with pytest.raises(FilterError, match="Invalid number literal"):
        compile_filter("Port == 0x50")
    assert compile_filter('Port == "0x50"').matches({"Port": 80})


def test_in_skips_uncoercible_elements_of_mixed_lists() -> None:
    assert compile_filter('"3" in L').matches({"L": [True, "x", 3]})
    assert compile_filter('"x" in L').matches({"L": [True, 1, "x"]})
    assert not compile_filter('"y" in L').matches({"L": [True, 1, "x", None]})


def test_regex_is_search_not_fullmatch() -> None:
    assert compile_filter('Name matches "eb"').matches({"Name": "web"})
    assert not compile_filter('Name matches "^eb"').matches({"Name": "web"})


def test_string_escapes() -> None:
    assert compile_filter('Name == "a\\tb"').matches({"Name": "a\tb"})
    assert compile_filter("Name == `a\\tb`").matches({"Name": "a\\tb"})
    assert compile_filter('Name == "\\u00e9"').matches({"Name": "\u00e9"})


# ---------------------------------------------------------------- properties

_names = st.sampled_from(["web", "db", "api", "cache"])
_entries = st.lists(
    st.fixed_dictionaries({"ServiceName": _names, "ServicePort": st.integers(0, 3),
                           "ServiceTags": st.lists(_names, max_size=3)}),
    max_size=8,
)


@given(_entries, _names, st.integers(0, 3))
def test_boolean_algebra(entries: list[dict[str, Any]], name: str, port: int) -> None:
    a = f'ServiceName == "{name}"'
    b = f"ServicePort == {port}"
    both = apply_filter(f"{a} and {b}", entries)
    assert both == [e for e in entries if e["ServiceName"] == name and e["ServicePort"] == port]
    either = apply_filter(f"{a} or {b}", entries)
    assert either == [e for e in entries if e["ServiceName"] == name or e["ServicePort"] == port]
    neg = apply_filter(f"not ({a} or {b})", entries)
    assert neg == apply_filter(f"not {a} and not {b}", entries)
    assert apply_filter(f"{a} or not {a}", entries) == entries
    assert apply_filter(f'"{name}" in ServiceTags', entries) == [e for e in entries if name in e["ServiceTags"]]


@given(st.text(max_size=20))
def test_compile_never_crashes(expr: str) -> None:
    try:
        compile_filter(expr)
    except FilterError as exc:
        assert str(exc)
