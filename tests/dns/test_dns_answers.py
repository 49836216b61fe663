"""Answers from the store (docs/compat/dns.md#answers, #truncation-and-edns), through the same build/compile/render path as the
listener, without sockets."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from dnshelpers import Catalog, ask, make_config, records, respond
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from muster.dns.answers import Answerer, rfc1464
from muster.runtime import Rng

D = "cluster.local."


def many(cat: Catalog, n: int, name: str = "web", **kw: object) -> None:
    for i in range(n):
        cat.node(f"n{i:02d}", f"10.0.1.{i + 1}", {"rack": f"r{i}"})
        cat.service(f"n{i:02d}", name, 8000 + i, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- service A / SRV


def test_service_a_is_aa_and_capped_at_three_without_edns_and_no_tc(cat: Catalog) -> None:
    many(cat, 10)
    r = ask(cat, "web.service." + D)
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA and not r.flags & dns.flags.TC and not r.flags & dns.flags.RA
    assert len(records(r)) == 3
    assert all(ttl == 0 for ttl in (s.ttl for s in r.answer))


def test_edns_and_tcp_get_every_answer(cat: Catalog) -> None:
    many(cat, 10)
    assert len(records(ask(cat, "web.service." + D, payload=4096))) == 10
    assert len(records(ask(cat, "web.service." + D, tcp=True))) == 10
    # an advertised size of 512 is treated as no EDNS (Consul): the 3-answer cap applies
    r = ask(cat, "web.service." + D, payload=512)
    assert len(records(r)) == 3 and r.edns == 0


def test_answers_are_shuffled_per_query(cat: Catalog) -> None:
    many(cat, 6)
    orders = {tuple(records(ask(cat, "web.service." + D, tcp=True, seed=s))) for s in range(20)}
    assert len(orders) > 5
    assert all(sorted(o) == sorted(next(iter(orders))) for o in orders)
    # the 3-answer UDP subset varies too, so every instance gets traffic
    seen = {a for s in range(40) for a in records(ask(cat, "web.service." + D, seed=s))}
    assert len(seen) == 6


def test_truncate_sets_tc_only_when_enabled_and_trimmed(cat: Catalog) -> None:
    many(cat, 5)
    cfg = make_config("-hcl=dns_config { enable_truncate = true }")
    assert ask(cat, "web.service." + D, config=cfg).flags & dns.flags.TC
    assert not ask(cat, "web.service." + D, config=cfg, tcp=True).flags & dns.flags.TC
    assert not ask(cat, "web.service." + D).flags & dns.flags.TC
    small = Catalog()
    many(small, 2)
    assert not ask(small, "web.service." + D, config=cfg).flags & dns.flags.TC


def test_udp_answer_limit_and_a_record_limit(cat: Catalog) -> None:
    many(cat, 10)
    assert len(records(ask(cat, "web.service." + D, config=make_config("-hcl=dns_config { udp_answer_limit = 5 }")))) == 5
    assert len(records(ask(cat, "web.service." + D, config=make_config("-hcl=dns_config { udp_answer_limit = 50 }")))) == 8
    cfg = make_config("-hcl=dns_config { a_record_limit = 2 }")
    assert len(records(ask(cat, "web.service." + D, config=cfg, tcp=True))) == 2
    # a_record_limit is for addresses, not SRV
    assert len(records(ask(cat, "web.service." + D, "SRV", config=cfg, tcp=True))) == 10


def test_one_a_record_per_distinct_address(cat: Catalog) -> None:
    cat.node("a", "10.0.0.1")
    cat.service("a", "web", 80, sid="w1")
    cat.service("a", "web", 81, sid="w2")
    cat.service("a", "web", 82, sid="w3", address="10.9.9.9")
    assert sorted(records(ask(cat, "web.service." + D, tcp=True))) == ["10.0.0.1", "10.9.9.9"]
    assert len(records(ask(cat, "web.service." + D, "SRV", tcp=True))) == 3


def test_srv_targets_and_additionals(cat: Catalog) -> None:
    cat.node("a", "10.0.0.1", {"rack": "r1", "rfc1035-raw": "bare"})
    cat.service("a", "web", 80)
    cat.node("b", "10.0.0.2")
    cat.service("b", "web", 81, address="10.5.0.2")
    cat.node("c", "10.0.0.3")
    cat.service("c", "web", 82, address="web.example.com")
    r = ask(cat, "web.service." + D, "SRV", tcp=True)
    assert sorted(records(r)) == [
        "1 1 80 a.node.dc1.cluster.local.",
        "1 1 81 0a050002.addr.dc1.cluster.local.",
        "1 1 82 web.example.com.",
    ]
    extra = {(str(s.name), dns.rdatatype.to_text(s.rdtype), r.to_text()) for s in r.additional for r in s}
    assert ("a.node.dc1.cluster.local.", "A", "10.0.0.1") in extra
    assert ("a.node.dc1.cluster.local.", "TXT", '"rack=r1"') in extra
    assert ("a.node.dc1.cluster.local.", "TXT", '"bare"') in extra
    assert ("0a050002.addr.dc1.cluster.local.", "A", "10.5.0.2") in extra
    assert not any(n.startswith("web.example") for n, _, _ in extra)
    no_txt = ask(cat, "web.service." + D, "SRV", tcp=True,
                 config=make_config("-hcl=dns_config { enable_additional_node_meta_txt = false }"))
    assert records(no_txt, "additional", "TXT") == []


def test_srv_additionals_resynced_after_trimming(cat: Catalog) -> None:
    many(cat, 10)
    for seed in range(5):
        r = ask(cat, "web.service." + D, "SRV", seed=seed)
        targets = {r.to_text().split()[-1] for r in r.answer[0]}
        # 512 bytes counted uncompressed leave room for two or three SRV+A+TXT groups
        assert 2 <= len(targets) <= 3
        assert {str(s.name) for s in r.additional} == targets


def test_warning_weight_critical_and_only_passing(cat: Catalog) -> None:
    cat.node("a", "10.0.0.1")
    cat.service("a", "web", 80, weights={"Passing": 10, "Warning": 2}, status="warning")
    cat.node("b", "10.0.0.2")
    cat.service("b", "web", 81, weights={"Passing": 10, "Warning": 2}, status="passing")
    cat.node("c", "10.0.0.3")
    cat.service("c", "web", 82, status="critical")
    cat.node("d", "10.0.0.4")
    cat.service("d", "web", 83)
    cat.node_check("d", "critical")  # node-level checks hide every service of the node
    srv = sorted(records(ask(cat, "web.service." + D, "SRV", tcp=True)))
    assert srv == ["1 10 81 b.node.dc1.cluster.local.", "1 2 80 a.node.dc1.cluster.local."]
    only = ask(cat, "web.service." + D, tcp=True, config=make_config("-hcl=dns_config { only_passing = true }"))
    assert records(only) == ["10.0.0.2"]


def test_nxdomain_vs_nodata(cat: Catalog) -> None:
    cat.node("a", "10.0.0.1")
    cat.service("a", "down", 80, status="critical")
    cat.service("a", "web", 80)
    for name in ("down.service.", "nope.service.", "nope.node.", "x.query.", "web.connect.", "junk.", "",
                 "consul-0.consul.default.svc."):
        r = ask(cat, name + D)
        assert r.rcode() == dns.rcode.NXDOMAIN, name
        assert r.flags & dns.flags.AA
        assert [s.rdtype for s in r.authority] == [dns.rdatatype.SOA], name
        assert r.answer == []
    for name, rdtype in (("web.service.", "AAAA"), ("web.service.", "TXT"), ("a.node.", "AAAA"), ("web.service.", "MX")):
        r = ask(cat, name + D, rdtype)
        assert r.rcode() == dns.rcode.NOERROR and r.answer == [], (name, rdtype)
        assert [s.rdtype for s in r.authority] == [dns.rdatatype.SOA]


def test_ipv6_and_hostname_addresses(cat: Catalog) -> None:
    cat.node("v6", "2001:db8::5")
    cat.service("v6", "six", 80)
    cat.node("h", "10.0.0.1")
    cat.service("h", "ext", 80, address="db.example.net")
    assert records(ask(cat, "six.service." + D, "AAAA")) == ["2001:db8::5"]
    assert ask(cat, "six.service." + D, "A").answer == []
    assert records(ask(cat, "ext.service." + D, "A")) == ["db.example.net."]
    assert ask(cat, "ext.service." + D, "A").answer[0].rdtype == dns.rdatatype.CNAME
    assert records(ask(cat, "v6.node." + D, "AAAA")) == ["2001:db8::5"]


def test_tags_rfc2782_and_case(cat: Catalog) -> None:
    cat.node("a", "10.0.0.1")
    cat.service("a", "Web", 80, sid="w1", tags=["Primary", "v1.2"])
    cat.node("b", "10.0.0.2")
    cat.service("b", "Web", 81, sid="w2", tags=["replica"])
    assert records(ask(cat, "primary.web.service." + D)) == ["10.0.0.1"]
    assert records(ask(cat, "v1.2.WEB.service." + D)) == ["10.0.0.1"]
    assert sorted(records(ask(cat, "_web._tcp.service." + D, "SRV"))) == [
        "1 1 80 a.node.dc1.cluster.local.", "1 1 81 b.node.dc1.cluster.local."]
    assert records(ask(cat, "_web._replica.service.dc1." + D, "SRV")) == ["1 1 81 b.node.dc1.cluster.local."]
    assert len(records(ask(cat, "_web._tcp." + D, "SRV"))) == 2
    assert ask(cat, "nosuchtag.web.service." + D).rcode() == dns.rcode.NXDOMAIN
    r = ask(cat, "WeB.SeRvIcE.CLUSTER.local.")
    assert str(r.question[0].name) == "WeB.SeRvIcE.CLUSTER.local."  # the asker's case comes back


def test_datacenters(cat: Catalog) -> None:
    cat.node("a", "10.0.0.1")
    cat.service("a", "web", 80)
    assert records(ask(cat, "web.service.dc1." + D)) == ["10.0.0.1"]
    assert records(ask(cat, "web.service.dc1.dc." + D)) == ["10.0.0.1"]
    assert records(ask(cat, "a.node.dc1." + D)) == ["10.0.0.1"]
    for name in ("web.service.dc2.", "a.node.dc9.dc.", "0a000001.addr.dc2."):
        assert ask(cat, name + D).rcode() == dns.rcode.NXDOMAIN, name


def test_node_records_and_meta_txt(cat: Catalog) -> None:
    cat.node("db.host", "10.0.0.7", {"a=b": " x`y ", " lead": "v", "rfc1035-spf": "v=spf1 -all"})
    r = ask(cat, "db.host.node." + D)
    assert records(r) == ["10.0.0.7"]
    assert sorted(records(r, "additional", "TXT")) == sorted(['"a`=b= x``y "', '"` lead=v"', '"v=spf1 -all"'])
    txt = ask(cat, "db.host.node." + D, "TXT")
    assert len(records(txt)) == 3 and records(txt, "additional") == []
    anyq = ask(cat, "db.host.node." + D, "ANY", tcp=True)
    assert "10.0.0.7" in records(anyq) and len(records(anyq)) == 4
    ttl = ask(cat, "db.host.node." + D, config=make_config("-hcl=dns_config { node_ttl = \"30s\" }"))
    assert ttl.answer[0].ttl == 30


def test_rfc1464() -> None:
    assert rfc1464("key", "value") == "key=value"
    assert rfc1464("a=b", "c=d") == "a`=b=c=d"
    assert rfc1464("  k ", "`v`") == "` ` k` =``v``"
    assert rfc1464("RFC1035-x", "raw") == "raw"


def test_service_ttls(cat: Catalog) -> None:
    cat.node("a", "10.0.0.1")
    for s in ("web", "webapp", "db", "other"):
        cat.service("a", s, 80)
    cfg = make_config('-hcl=dns_config { service_ttl = { "*" = "5s", "web*" = "10s", "webapp" = "20s" } }')
    got = {s: ask(cat, f"{s}.service.{D}", config=cfg).answer[0].ttl for s in ("web", "webapp", "db")}
    assert got == {"web": 10, "webapp": 20, "db": 5}
    assert ask(cat, "other.service." + D).answer[0].ttl == 0


def test_addr_records(cat: Catalog) -> None:
    assert records(ask(cat, "0a000001.addr." + D)) == ["10.0.0.1"]
    assert records(ask(cat, "20010db8000000000000000000000001.addr." + D, "AAAA")) == ["2001:db8::1"]
    wrong = ask(cat, "0a000001.addr." + D, "AAAA")
    assert wrong.answer == [] and records(wrong, "additional") == ["10.0.0.1"]
    assert ask(cat, "0a0001.addr." + D).rcode() == dns.rcode.NXDOMAIN


def test_consul_service_soa_and_ns(cat: Catalog) -> None:
    for i in range(5):
        cat.node(f"srv{i}", f"10.0.2.{i}")
        cat.service(f"srv{i}", "consul", 8300)
    srv = records(ask(cat, "consul.service." + D, "SRV", tcp=True))
    assert len(srv) == 5 and all(" 8300 " in s for s in srv)
    soa = ask(cat, D, "SOA")
    assert records(soa) == [f"ns.{D} hostmaster.{D} 1700000000 3600 600 86400 0"]
    assert len(records(soa, "authority", "NS")) == 3
    ns = ask(cat, D, "NS")
    names = records(ns)
    assert len(names) == 3 and all(n.endswith(".node.dc1." + D) for n in names)
    assert {str(s.name) for s in ns.additional} == set(names)  # glue for exactly those
    # SOA/NS are answered for any in-zone name, with the zone apex as owner
    assert str(ask(cat, "web.service." + D, "SOA").answer[0].name) == D
    cfg = make_config("-hcl=dns_config { soa { refresh = 1 retry = 2 expire = 3 min_ttl = 4 } }")
    r = ask(cat, "nope.service." + D, config=cfg)
    assert records(r, "authority") == [f"ns.{D} hostmaster.{D} 1700000000 1 2 3 4"] and r.authority[0].ttl == 4


def test_ptr(cat: Catalog) -> None:
    cat.node("a", "10.0.0.1")
    cat.node("b", "10.0.0.2")
    cat.service("b", "web", 80, address="10.7.0.1")
    assert records(ask(cat, "1.0.0.10.in-addr.arpa.", "PTR")) == ["a.node.dc1.cluster.local."]
    assert records(ask(cat, "1.0.7.10.in-addr.arpa.", "PTR")) == ["web.service.dc1.cluster.local."]
    assert ask(cat, "1.0.0.10.in-addr.arpa.", "PTR").flags & dns.flags.AA
    assert ask(cat, "9.9.9.9.in-addr.arpa.", "PTR").rcode() == dns.rcode.NXDOMAIN
    # PTR always uses the primary domain, even with an alt domain configured
    cfg = make_config("-alt-domain=alt.example")
    assert records(ask(cat, "1.0.0.10.in-addr.arpa.", "PTR", config=cfg)) == ["a.node.dc1.cluster.local."]


def test_alt_domain_answers_in_question_domain(cat: Catalog) -> None:
    cat.node("a", "10.0.0.1")
    cat.service("a", "web", 80)
    cfg = make_config("-alt-domain=alt.example")
    r = ask(cat, "web.service.alt.example.", "SRV", config=cfg)
    assert records(r) == ["1 1 80 a.node.dc1.alt.example."]
    assert str(r.additional[0].name) == "a.node.dc1.alt.example."
    assert records(ask(cat, "web.service." + D, "SRV", config=cfg)) == ["1 1 80 a.node.dc1.cluster.local."]
    nx = ask(cat, "nope.service.alt.example.", config=cfg)
    assert str(nx.authority[0].name) == "alt.example."


def test_out_of_zone_refused_axfr_notimp_and_ra(cat: Catalog) -> None:
    r = ask(cat, "example.com.")
    assert r.rcode() == dns.rcode.REFUSED and not r.flags & dns.flags.AA
    assert ask(cat, D, "AXFR", tcp=True).rcode() == dns.rcode.NOTIMP
    cat.node("a", "10.0.0.1")
    assert ask(cat, "a.node." + D, recursors=True).flags & dns.flags.RA
    assert not ask(cat, "a.node." + D).flags & dns.flags.RA


def test_udp_size_limits(cat: Catalog) -> None:
    long = "x" * 50
    for i in range(40):
        name = f"{long}-{i:02d}"
        cat.node(name, f"10.0.3.{i + 1}", {"k": "v" * 100})
        cat.service(name, "big", 80)
    for payload in (None, 1232, 4096):
        q = dns.message.make_query("big.service." + D, "SRV", use_edns=0 if payload else False, payload=payload or 512)
        r = respond(Answerer(make_config()), cat.store, q, Rng(3))
        wire = r.to_wire()
        limit = payload or 512
        assert len(wire) <= limit, payload
        assert len(r.answer[0]) >= 1
        targets = {x.to_text().split()[-1] for x in r.answer[0]}
        assert {str(s.name) for s in r.additional} <= targets
    tcp = respond(Answerer(make_config()), cat.store, dns.message.make_query("big.service." + D, "SRV"), Rng(3), tcp=True)
    assert len(tcp.answer[0]) == 40


def test_disable_compression_still_valid(cat: Catalog) -> None:
    many(cat, 3)
    cfg = make_config("-hcl=dns_config { disable_compression = true }")
    plain = ask(cat, "web.service." + D, "SRV", config=cfg, tcp=True)
    packed = ask(cat, "web.service." + D, "SRV", tcp=True)
    assert sorted(records(plain)) == sorted(records(packed))
    assert len(plain.to_wire()) >= len(packed.to_wire())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(st.sampled_from(["web", "db", "consul"]), st.sampled_from(["passing", "warning", "critical", None]),
                       st.sampled_from(["", "10.1.1.1", "2001:db8::1", "h.example.com"])), max_size=12),
    st.sampled_from(["web.service.", "db.service.", "_web._tcp.", "n0.node.", "consul.service.", "", "junk.", "7f000001.addr."]),
    st.sampled_from(["A", "AAAA", "SRV", "TXT", "ANY", "SOA", "NS", "MX"]),
    st.sampled_from([None, 512, 1232]),
    st.booleans(),
)
def test_any_catalog_any_question_gives_a_valid_bounded_answer(
    instances: list[tuple[str, str | None, str]], prefix: str, rdtype: str, payload: int | None, tcp: bool
) -> None:
    c = Catalog()
    for i, (svc, status, address) in enumerate(instances):
        c.node(f"n{i}", f"10.0.0.{i + 1}")
        c.service(f"n{i}", svc, 80 + i, address=address, status=status)
    r = ask(c, prefix + D, rdtype, payload=payload, tcp=tcp)
    assert r.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
    assert r.flags & dns.flags.AA
    if not tcp:
        assert len(r.to_wire()) <= (payload or 512)
    if r.rcode() == dns.rcode.NXDOMAIN or not r.answer:
        assert [s.rdtype for s in r.authority] == [dns.rdatatype.SOA]


@pytest.mark.parametrize("seed", range(3))
def test_build_is_deterministic_given_rng(cat: Catalog, seed: int) -> None:
    many(cat, 8)
    a = ask(cat, "web.service." + D, "SRV", seed=seed, tcp=True)
    b = ask(cat, "web.service." + D, "SRV", seed=seed, tcp=True)
    assert records(a) == records(b)


def test_in_zone_cname_targets_are_resolved_and_loops_end(cat: Catalog) -> None:
    cat.node("real", "10.0.0.9")
    cat.node("alias", "real.node.cluster.local")
    cat.service("alias", "front", 80, address="real.node.cluster.local")
    cat.node("loop", "loop.node.cluster.local")
    r = ask(cat, "front.service." + D)
    assert [dns.rdatatype.to_text(s.rdtype) for s in r.answer] == ["CNAME", "A"]
    assert records(r, rdtype="A") == ["10.0.0.9"]
    assert records(ask(cat, "alias.node." + D), rdtype="A") == ["10.0.0.9"]
    looped = ask(cat, "loop.node." + D, tcp=True)
    assert records(looped) == ["loop.node.cluster.local."]


def test_tcp_answers_are_trimmed_to_64k(cat: Catalog) -> None:
    for i in range(1200):
        name = f"node-with-a-rather-long-name-{i:04d}"
        cat.node(name, f"10.{i // 250}.{i % 250}.1", {"zone": "z" * 20})
        cat.service(name, "huge", 80)
    q = dns.message.make_query("huge.service." + D, "SRV")
    cfg = make_config("-hcl=dns_config { enable_truncate = true }")
    r = respond(Answerer(cfg), cat.store, q, Rng(1), tcp=True)
    kept = len(r.answer[0])
    assert 100 < kept < 1200
    assert len(r.to_wire()) <= 65535
    assert r.flags & dns.flags.TC
    targets = {x.to_text().split()[-1] for x in r.answer[0]}
    assert {str(s.name) for s in r.additional} == targets
    edns = respond(Answerer(cfg), cat.store, dns.message.make_query("huge.service." + D, "SRV", use_edns=0, payload=4096),
                   Rng(1))
    assert edns.flags & dns.flags.TC and len(edns.to_wire()) <= 4096 and edns.edns == 0


# ---------------------------------------------------------------- <service>.connect


def test_connect_names_answer_proxies_and_native_instances(cat: Catalog) -> None:
    cat.service("n1", "web", 80)  # the plain instance is not reachable over the mesh
    cat.service("n2", "web-proxy", 21000, address="10.9.0.2", Kind="connect-proxy",
                Proxy={"DestinationServiceName": "web", "Mode": "", "MeshGateway": {}, "Expose": {}})  # fmt: skip
    cat.service("n3", "web", 8443, sid="web-native", address="10.9.0.3", Connect={"Native": True})
    cat.service("n4", "web-proxy-down", 21001, address="10.9.0.4", status="critical", Kind="connect-proxy",
                Proxy={"DestinationServiceName": "web", "Mode": "", "MeshGateway": {}, "Expose": {}})  # fmt: skip
    assert sorted(records(ask(cat, "web.connect." + D, tcp=True))) == ["10.9.0.2", "10.9.0.3"]
    srv = ask(cat, "web.connect." + D, "SRV", tcp=True)
    assert sorted(rr.port for rrset in srv.answer for rr in rrset) == [8443, 21000]
    assert ask(cat, "db.connect." + D).rcode() == dns.rcode.NXDOMAIN
