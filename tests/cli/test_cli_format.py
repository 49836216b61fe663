"""Output formatting: byte-compatible with Consul's columnize/tabwriter/encoding/json output."""

from __future__ import annotations

import pytest

from muster.cli.format import (
    columnize,
    export_entries,
    format_catalog_nodes,
    format_catalog_services,
    format_info,
    format_kv_detailed,
    format_members,
    go_json,
    go_json_indent,
    kvpair_go,
    member_status,
    tabwrite,
    tcp_addr,
    to_bytes,
    to_text,
)


def test_columnize_pads_all_but_last_column() -> None:
    out = columnize(["Name|Gender|Age", "Bob|Male|38", "Sally|Female|26"], delim="|")
    assert out == "Name   Gender  Age\nBob    Male    38\nSally  Female  26"


def test_columnize_short_rows_and_trimming() -> None:
    out = columnize(["a\x1f b \x1fc", "longer\x1fx"])
    assert out == "a       b  c\nlonger  x"


def test_tabwrite_blocks() -> None:
    assert tabwrite("a\tb\nlong\tc") == "a         b\nlong      c"
    # A line without a tab ends the column block.
    assert tabwrite("aa\t1\nno tabs here\nb\t2") == "aa      1\nno tabs here\nb      2"
    # Trailing empty cell keeps its padding (catalog services -tags).
    assert tabwrite("consul\t\nweb\tx\n") == "consul      \nweb         x\n"


def test_kv_detailed_layout() -> None:
    entry = {"CreateIndex": 5, "ModifyIndex": 12, "LockIndex": 1, "Key": "a/b", "Flags": 42, "Session": "s-1"}
    assert format_kv_detailed(entry, b"val", False) == (
        "CreateIndex      5\n"
        "Flags            42\n"
        "Key              a/b\n"
        "LockIndex        1\n"
        "ModifyIndex      12\n"
        "Session          s-1\n"
        "Value            val"
    )
    no_session = format_kv_detailed({"Key": "k"}, b"val", True)
    assert "Session          -\n" in no_session
    assert no_session.endswith("Value            dmFs")
    keys_only = format_kv_detailed({"Key": "k"}, b"", False, keys_only=True)
    assert "Value" not in keys_only and keys_only.endswith("Session          -\n")


def test_kv_detailed_binary_value_roundtrips() -> None:
    raw = b"\xff\x00bin"
    out = format_kv_detailed({"Key": "k"}, raw, False)
    assert to_bytes(out).endswith(b"Value            \xff\x00bin")
    assert to_bytes(to_text(raw)) == raw


def _member(name: str, role: str, status: int = 1, addr: str = "10.0.0.1", **tags: str) -> dict[str, object]:
    base = {"role": role, "dc": "dc1", "build": "1.22.1:abc", "vsn": "2"}
    base.update(tags)
    return {"Name": name, "Addr": addr, "Port": 8301, "Status": status, "Tags": base}


def test_members_standard() -> None:
    members = [
        _member("zeta", "node", addr="10.0.0.3"),
        _member("beta", "consul", addr="10.0.0.2"),
        _member("alpha", "consul", status=4),
    ]
    out = format_members(members, detailed=False)
    assert out == (
        "Node   Address        Status  Type    Build   Protocol  DC   Partition  Segment\n"
        "alpha  10.0.0.1:8301  failed  server  1.22.1  2         dc1  default    <all>\n"
        "beta   10.0.0.2:8301  alive   server  1.22.1  2         dc1  default    <all>\n"
        "zeta   10.0.0.3:8301  alive   client  1.22.1  2         dc1  default    <default>"
    )


def test_members_filters_detailed_and_unknown_role() -> None:
    members = [_member("a", "consul"), _member("b", "consul", status=4)]
    assert format_members(members, detailed=False, status_re="left") is None
    out = format_members(members, detailed=False, status_re="fail")
    assert out is not None and out.splitlines()[1].startswith("b ")
    detailed = format_members([_member("a", "consul")], detailed=True)
    assert detailed == (
        "Node  Address        Status  Tags\n"
        "a     10.0.0.1:8301  alive   ap=default,build=1.22.1:abc,dc=dc1,role=consul,segment=<all>,vsn=2"
    )
    weird = format_members([{"Name": "x", "Addr": "::1", "Port": 1, "Status": 9, "Tags": {}}], detailed=False)
    assert weird is not None and weird.splitlines()[1].split() == ["x", "[::1]:1", "unknown(9)", "unknown"]


def test_member_status_and_tcp_addr() -> None:
    assert [member_status(i) for i in range(5)] == ["none", "alive", "leaving", "left", "failed"]
    assert tcp_addr("10.1.2.3", 8301) == "10.1.2.3:8301"
    assert tcp_addr("fe80::1", 8301) == "[fe80::1]:8301"
    assert tcp_addr("not-an-ip", 1) == ":1"


def test_members_bad_regex() -> None:
    import re

    with pytest.raises(re.error):
        format_members([], detailed=False, status_re="(")


def test_info_sorted_sections() -> None:
    out = format_info({"raft": {"state": "Leader", "applied_index": "7"}, "agent": {"checks": "0"}})
    assert out == "agent:\n\tchecks = 0\nraft:\n\tapplied_index = 7\n\tstate = Leader"
    with pytest.raises(ValueError):
        format_info({"bad": "not-a-map"})


def test_catalog_nodes_and_services() -> None:
    nodes = [
        {
            "Node": "n1",
            "ID": "0d2e3f4a-1111-2222-3333-444455556666",
            "Address": "10.0.0.1",
            "Datacenter": "dc1",
            "TaggedAddresses": {"wan": "1.2.3.4", "lan": "10.0.0.1"},
            "Meta": {"b": "2", "a": "1"},
        },
        {"Node": "external", "ID": "", "Address": "10.9.9.9", "Datacenter": "dc1"},
    ]
    assert format_catalog_nodes(nodes, detailed=False) == (
        "Node      ID        Address   DC\nn1        0d2e3f4a  10.0.0.1  dc1\nexternal            10.9.9.9  dc1"
    )
    detailed = format_catalog_nodes(nodes[:1], detailed=True)
    assert detailed.splitlines()[1].endswith("lan=10.0.0.1, wan=1.2.3.4  a=1, b=2")
    assert "0d2e3f4a-1111-2222-3333-444455556666" in detailed
    services = {"web": ["v2", "blue"], "consul": [], "db": []}
    assert format_catalog_services(services, tags=False) == "consul\ndb\nweb"
    assert format_catalog_services(services, tags=True) == "consul      \ndb          \nweb         blue,v2"


def test_go_json_escaping() -> None:
    assert go_json({"k": "<a&b>", "u": "é\u2028"}) == '{"k":"\\u003ca\\u0026b\\u003e","u":"é\\u2028"}'
    assert go_json_indent({"a": [1]}, "    ") == '{\n    "a": [\n        1\n    ]\n}'
    assert go_json_indent(None, "    ") == "null"


def test_kvpair_go_order_and_export() -> None:
    entry = {"LockIndex": 0, "Key": "k", "Flags": 3, "Value": "dg==", "CreateIndex": 4, "ModifyIndex": 5}
    shaped = kvpair_go(entry)
    assert list(shaped) == ["Key", "CreateIndex", "ModifyIndex", "LockIndex", "Flags", "Value", "Session"]
    assert shaped["Session"] == ""
    assert export_entries([entry, {"Key": "e", "Flags": 0, "Value": None}]) == (
        '[\n\t{\n\t\t"key": "k",\n\t\t"flags": 3,\n\t\t"value": "dg=="\n\t},\n'
        '\t{\n\t\t"key": "e",\n\t\t"flags": 0,\n\t\t"value": ""\n\t}\n]'
    )
    assert export_entries([]) == "[]"
