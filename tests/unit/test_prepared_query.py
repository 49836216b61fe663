"""Prepared queries, pure parts: decoding and validation, templates, resolution, execution
filters, near-sorting and failover order."""

from __future__ import annotations

from typing import Any

import pytest

from muster.coordinate import Coordinate
from muster.errors import MusterError
from muster.query.definition import decode_query, resolve, validate_against
from muster.query.execute import failover_targets, filter_entries, sort_near
from muster.query.template import compile_template
from muster.runtime import Rng


def q(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"Service": {"Service": "redis"}}
    body.update(kw)
    out = decode_query(body)
    out["ID"] = kw.get("ID", "")
    return out


def test_decode_is_case_insensitive_and_normalises() -> None:
    d = decode_query({"name": "fooquery", "token": "", "template": {"type": "name_prefix_match"},
                      "service": {"service": "foo", "failover": {}, "nodemeta": {"Rack": "a"}}})
    assert d["Name"] == "fooquery" and d["Template"]["Type"] == "name_prefix_match"
    assert d["Service"]["Service"] == "foo" and d["Service"]["NodeMeta"] == {"Rack": "a"}
    assert d["Service"]["Tags"] is None and d["Service"]["Failover"] == {"NearestN": 0, "Datacenters": None,
                                                                          "Targets": None}


@pytest.mark.parametrize("body,text", [
    ({"Name": "x", "Service": {}}, "Must provide a Service name to query"),
    ({"Name": "x", "Service": {"Service": "s", "Failover": {"NearestN": -1}}}, "Bad NearestN '-1'"),
    ({"Name": "x", "Service": {"Service": "s"}, "DNS": {"TTL": "ten"}}, "Bad DNS TTL 'ten'"),
    ({"Service": {"Service": "s"}}, "Must be bound to a session"),
    ({"Name": "x", "Token": "<hidden>", "Service": {"Service": "s"}}, "<hidden>"),
    ({"Name": "x", "Template": {"Type": "bogus"}, "Service": {"Service": "s"}}, "Bad Template.Type 'bogus'"),
    ({"Name": "x", "Template": {"Type": "name_prefix_match", "Regexp": "("}, "Service": {"Service": "s"}},
     "Failed compiling Regexp"),
    ({"Name": "x", "Template": {"Type": "name_prefix_match"}, "Service": {"Service": "${nope}"}},
     "unknown variable"),
    ("a string", "Request decode failed"),
])
def test_invalid_queries_are_refused(body: Any, text: str) -> None:
    with pytest.raises(MusterError) as e:
        decode_query(body)
    assert text in str(e.value)


def test_state_checks() -> None:
    a = q(ID="11111111-1111-1111-1111-111111111111", Name="geo")
    with pytest.raises(MusterError, match="aliases an existing query name"):
        validate_against(q(ID="2", Name="GEO"), [a], True)
    with pytest.raises(MusterError, match="aliases an existing query ID"):
        validate_against(q(ID="2", Name=a["ID"]), [a], True)
    t1 = q(ID="3", Name="", Template={"Type": "name_prefix_match"})
    with pytest.raises(MusterError, match="empty name already exists"):
        validate_against(q(ID="4", Name="", Template={"Type": "name_prefix_match"}), [t1], True)
    with pytest.raises(MusterError, match='invalid session "s1"'):
        validate_against(q(ID="5", Session="s1"), [], False)
    validate_against(a, [a], True)  # updating itself is fine


def test_template_rendering() -> None:
    t = q(Name="geo-db-", Template={"Type": "name_prefix_match", "Regexp": r"^geo-db-(.*?)-([^\-]+?)$",
                                    "RemoveEmptyTags": True},
          Service={"Service": "mysql-${match(1)}", "Tags": ["${match(2)}", "${match(7)}", "x"],
                   "NodeMeta": {"full": "${name.full}"}, "Near": "${name.suffix}",
                   "Failover": {"Datacenters": ["${match(0)}"]}})
    r = compile_template(t).render("geo-db-customer-primary", t)
    s = r["Service"]
    assert s["Service"] == "mysql-customer" and s["Tags"] == ["primary", "x"]
    assert s["NodeMeta"] == {"full": "geo-db-customer-primary"} and s["Near"] == "customer-primary"
    assert s["Failover"]["Datacenters"] == ["geo-db-customer-primary"]
    lit = q(Name="p", Template={"Type": "name_prefix_match"}, Service={"Service": "$${x}-${name.prefix}"})
    assert compile_template(lit).render("pq", lit)["Service"]["Service"] == "${x}-p"


def test_resolution_order() -> None:
    plain = q(ID="aaaaaaaa-0000-0000-0000-000000000001", Name="web")
    catch = q(ID="aaaaaaaa-0000-0000-0000-000000000002", Name="", Template={"Type": "name_prefix_match"},
              Service={"Service": "${name.full}"})
    longer = q(ID="aaaaaaaa-0000-0000-0000-000000000003", Name="db-", Template={"Type": "name_prefix_match"},
               Service={"Service": "${name.suffix}"})
    qs = [plain, catch, longer]
    assert resolve(qs, "WEB")["ID"] == plain["ID"]
    assert resolve(qs, plain["ID"])["ID"] == plain["ID"]
    assert resolve(qs, "db-redis")["Service"]["Service"] == "redis"
    assert resolve(qs, "anything")["Service"]["Service"] == "anything"
    with pytest.raises(MusterError, match="only be resolved up by name"):
        resolve(qs, longer["ID"])
    with pytest.raises(MusterError, match="Query not found") as e:
        resolve([plain], "other")
    assert e.value.status == 404


def _entry(node: str, status: str = "passing", tags: list[str] | None = None, meta: dict[str, str] | None = None,
           check_id: str = "c") -> Any:
    return ({"Node": node, "Meta": {"rack": node[-1]}}, {"ID": "s", "Tags": tags or [], "Meta": meta or {}},
            [{"CheckID": "serfHealth", "Status": "passing"}, {"CheckID": check_id, "Status": status}])


def test_filters() -> None:
    es = [_entry("n1"), _entry("n2", "warning"), _entry("n3", "critical"), _entry("n4", "critical", check_id="ign"),
          _entry("n5", tags=["Primary"]), _entry("n6", tags=["primary", "experimental"], meta={"v": "2"})]
    names = lambda xs: [e[0]["Node"] for e in xs]  # noqa: E731
    assert names(filter_entries(es, {"Service": "s"})) == ["n1", "n2", "n5", "n6"]
    assert names(filter_entries(es, {"IgnoreCheckIDs": ["ign"]})) == ["n1", "n2", "n4", "n5", "n6"]
    assert names(filter_entries(es, {"OnlyPassing": True})) == ["n1", "n5", "n6"]
    assert names(filter_entries(es, {"Tags": ["primary", "!experimental"]})) == ["n5"]
    assert names(filter_entries(es, {"ServiceMeta": {"v": "2"}})) == ["n6"]
    assert names(filter_entries(es, {"NodeMeta": {"rack": "1"}})) == ["n1"]


def test_sort_near_and_failover_order() -> None:
    def c(x: float) -> Coordinate:
        return Coordinate((x,) + (0.0,) * 7, 0.1, 0.0, 0.0)
    coords = {"a": c(0.0), "b": c(0.05), "near": c(0.01), "x": c(0.2)}
    es = [_entry(n) for n in ("x", "b", "nocoord", "near", "a")]
    out = sort_near(es, Rng(1), "a", coords.get)
    assert [e[0]["Node"] for e in out] == ["a", "near", "b", "x", "nocoord"]
    assert [e[0]["Node"] for e in sort_near(es, None, "ghost", coords.get)] == ["x", "b", "nocoord", "near", "a"]
    svc = {"Failover": {"NearestN": 1, "Datacenters": ["dc9", "dc3", "dc2", "dc1"]}}
    assert failover_targets(svc, "dc1", ["dc1", "dc2", "dc3"]) == ["dc2", "dc3"]
    assert failover_targets({"Failover": {"Datacenters": ["dc3", "dc2"]}}, "dc1", ["dc1", "dc2", "dc3"]) == ["dc3", "dc2"]
    assert failover_targets({}, "dc1", ["dc1", "dc2"]) == []
