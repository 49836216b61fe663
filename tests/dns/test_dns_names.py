"""Question-name parsing (docs/compat/dns.md#names): every name form, localities, domains, reverse names."""

from __future__ import annotations

import dns.name
import dns.rdatatype
import pytest
from hypothesis import given
from hypothesis import strategies as st

from muster.dns.names import Lookup, decode_hex_address, encode_hex_address, parse

CONSUL = dns.name.from_text("consul.")
CLUSTER = dns.name.from_text("cluster.local.")
DOMAINS = (CLUSTER, dns.name.from_text("alt.example."))
A = dns.rdatatype.A
SRV = dns.rdatatype.SRV


def p(text: str, qtype: int = A, domains: tuple[dns.name.Name, ...] = DOMAINS) -> Lookup:
    return parse(dns.name.from_text(text), qtype, domains)


@pytest.mark.parametrize(
    ("name", "kind", "service", "tag", "dc"),
    [
        ("web.service.cluster.local.", "service", "web", None, ""),
        ("web.service.dc1.cluster.local.", "service", "web", None, "dc1"),
        ("web.service.dc1.dc.cluster.local.", "service", "web", None, "dc1"),
        ("v1.web.service.cluster.local.", "service", "web", "v1", ""),
        ("a.b.web.service.cluster.local.", "service", "web", "a.b", ""),
        ("_web._tcp.service.cluster.local.", "service", "web", None, ""),
        ("_web._v2.service.dc1.cluster.local.", "service", "web", "v2", "dc1"),
        ("WEB.SERVICE.Cluster.Local.", "service", "web", None, ""),
        ("consul.service.cluster.local.", "service", "consul", None, ""),
        # right-to-left: the last keyword wins, so a service may be called "node"
        ("node.service.cluster.local.", "service", "node", None, ""),
    ],
)
def test_service_forms(name: str, kind: str, service: str, tag: str | None, dc: str) -> None:
    lk = p(name)
    assert (lk.kind, lk.service, lk.tag, lk.datacenter) == (kind, service, tag, dc)
    assert lk.domain == CLUSTER


def test_rfc2782_without_service_label_only_for_srv() -> None:
    assert p("_web._tcp.cluster.local.", SRV).service == "web"
    assert p("_web._tcp.cluster.local.", SRV).tag is None
    assert p("_web._tcp.cluster.local.", A).kind == "invalid"
    assert p("_web.tcp.cluster.local.", SRV).kind == "invalid"


def test_node_and_addr_forms() -> None:
    lk = p("db-1.node.cluster.local.")
    assert (lk.kind, lk.node, lk.datacenter) == ("node", "db-1", "")
    assert p("host.example.com.node.dc2.cluster.local.").node == "host.example.com"
    assert p("Db-1.NODE.dc1.dc.cluster.local.").node == "db-1"
    assert p("7f000001.addr.cluster.local.").address == "127.0.0.1"
    assert p("20010db8000000000000000000000001.addr.dc1.cluster.local.").address == "2001:db8::1"
    for bad in ("7f00001.addr.cluster.local.", "zz000001.addr.cluster.local.", "a.7f000001.addr.cluster.local."):
        assert p(bad).kind == "invalid", bad


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("cluster.local.", "apex"),
        ("foo.cluster.local.", "invalid"),
        ("service.cluster.local.", "invalid"),
        ("web.service.a.b.c.cluster.local.", "invalid"),
        ("web.service.dc1.notdc.cluster.local.", "invalid"),
        ("q1.query.cluster.local.", "query"),
        # docs/compat/config.md#the-seed-statefulset: Kubernetes pod/service names under -domain=cluster.local are not ours
        ("consul-0.consul.ns.svc.cluster.local.", "invalid"),
        ("web.service.ns.svc.cluster.local.", "invalid"),
        ("web.connect.cluster.local.", "mesh"),
        ("web.virtual.cluster.local.", "mesh"),
        ("web.ingress.cluster.local.", "mesh"),
        ("example.com.", "outside"),
        ("cluster.local.example.", "outside"),
        (".", "outside"),
        ("1.0.0.127.in-addr.arpa.", "ptr"),
        ("0.127.in-addr.arpa.", "outside"),
    ],
)
def test_kinds(name: str, kind: str) -> None:
    assert p(name).kind == kind


def test_alt_domain_and_longest_match() -> None:
    lk = p("web.service.alt.example.")
    assert lk.kind == "service" and lk.domain == dns.name.from_text("alt.example.")
    nested = (CONSUL, dns.name.from_text("dc1.consul."))
    lk = parse(dns.name.from_text("web.service.dc1.consul."), A, nested)
    assert lk.domain == dns.name.from_text("dc1.consul.") and lk.datacenter == ""


def test_ptr_addresses() -> None:
    assert p("1.0.0.127.in-addr.arpa.").address == "127.0.0.1"
    v6 = dns.name.from_text("1." + "0." * 23 + "8.b.d.0.1.0.0.2.ip6.arpa.")
    assert parse(v6, A, DOMAINS).address == "2001:db8::1"


@given(st.ip_addresses())
def test_hex_address_roundtrip(ip: object) -> None:
    text = str(ip)
    assert decode_hex_address(encode_hex_address(text)) == text


labels = st.lists(st.binary(min_size=1, max_size=20), max_size=6)


@given(labels, st.sampled_from([A, SRV, dns.rdatatype.TXT, dns.rdatatype.ANY]))
def test_parse_never_raises(raw: list[bytes], qtype: int) -> None:
    name = dns.name.Name(raw).concatenate(CLUSTER)
    lk = parse(name, qtype, DOMAINS)
    assert lk.kind in {"service", "node", "addr", "query", "mesh", "apex", "invalid"}
    assert lk.domain == CLUSTER
