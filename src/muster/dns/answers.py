"""Building DNS answers from the catalog (docs/compat/dns.md#names, #answers).  Pure: store + config in, records out.

:meth:`Answerer.build` turns one question into an :class:`Answer`: the rcode and the records,
grouped into *units* that move together through shuffling and truncation (an SRV record with
the A/AAAA/TXT records that describe its target; a CNAME; an NS record with its glue).  It does
not shuffle, truncate or serialise: ``wire.py`` does that per query, so the same ``Answer`` (and
its pre-serialised form) can be cached until the catalog changes and still be served in a fresh
random order to every client.  (The DNS tests' ``respond`` helper, in ``tests/dns/dnshelpers.py``,
runs both steps and returns a ``dns.message``.)

Why dnspython: it gives the full message/rdata model (SRV, SOA, TXT escaping, names with odd
bytes), EDNS and the wire format, all of which a hand-written encoder would get subtly wrong.
Every name and rdata here is a dnspython object and is serialised by dnspython; ``wire.py``
only concatenates those bytes (compressing names against the question), and we own the small
asyncio listener (``server.py``).

Rules (each from Consul's ``agent/dns.go``; docs/compat/dns.md#answers has the table):

* reads come straight from the local store (stale reads, never a leader round-trip);
* service and node names match case-insensitively (Consul's memdb indexes are case-insensitive);
* an instance is served unless one of its checks - node-level checks included - is critical;
  with ``only_passing`` a warning also hides it; warning instances get ``Weights.Warning``;
* zero servable instances is NXDOMAIN; a name with records of other types only is NODATA
  (NOERROR, empty answer); both carry the zone's SOA in Authority; every in-zone answer is AA;
* an address that is a hostname is a CNAME; a CNAME into our own zones is followed (at most
  ``MAX_CHASE`` hops, so a loop ends) and its records are added;
* SOA and NS questions are answered for any in-zone name (as Consul does before dispatching);
* an unknown datacenter, prepared query or mesh form (``connect``/``virtual``/``ingress``) is
  NXDOMAIN; AXFR/IXFR is NOTIMP; anything outside our zones is forwarded or REFUSED.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import dns.flags
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV

from ..acl.authorizer import Authorizer
from ..agent.mesh import is_connect_for
from ..config import Config
from ..errors import MusterError
from ..state.rows import Node, Service
from ..state.store import StateStore
from . import names

IN = dns.rdataclass.IN
A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA
ANY = dns.rdatatype.ANY
SRV = dns.rdatatype.SRV
TXT = dns.rdatatype.TXT
SOA = dns.rdatatype.SOA
NS = dns.rdatatype.NS
PTR = dns.rdatatype.PTR
CNAME = dns.rdatatype.CNAME
ZONE_TRANSFER = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})

CONSUL_SERVICE = "consul"
MAX_NS = 3  # Consul returns up to three random servers as NS records
MAX_CHASE = 3  # in-zone CNAME hops followed when a service/node address is a hostname


# One resource record: owner, TTL, rdata.  Plain tuples rather than dnspython RRsets: an RRset
# hashes its rdata on insertion, which alone cost more than the rest of building an answer.
Record = tuple[dns.name.Name, int, dns.rdata.Rdata]


@dataclass
class Unit:
    """Records that stay together: ``records`` in their section, ``extras`` in Additional."""

    records: list[Record]
    extras: list[Record] = field(default_factory=list)


@dataclass
class Answer:
    """One question's answer before shuffling/truncation.

    ``forward`` means "not ours": the server asks the recursors, or - without recursors -
    answers ``rcode`` (REFUSED out of zone, NXDOMAIN for an unknown reverse name).
    ``answer_cap``/``authority_cap`` (0 = none) are applied after shuffling: ``a_record_limit``
    for service addresses, three for NS records.
    """

    rcode: int = dns.rcode.NOERROR
    authoritative: bool = True
    answer: list[Unit] = field(default_factory=list)
    shuffle_answer: bool = False
    answer_cap: int = 0
    authority: list[Unit] = field(default_factory=list)
    shuffle_authority: bool = False
    authority_cap: int = 0
    additional: list[Record] = field(default_factory=list)
    forward: bool = False
    #: Answered asynchronously by ``remote.RemoteLookup`` (another datacenter, a prepared query).
    remote: bool = False


def rr(name: dns.name.Name, ttl: int, rdata: dns.rdata.Rdata) -> Record:
    return (name, max(0, min(ttl, 0x7FFFFFFF)), rdata)


# Rdata constructors memoised: dnspython validates and freezes every rdata it builds, which was
# most of the cost of a cache miss.  The same node address, meta pair or SRV target recurs in
# every answer that mentions it, and equal inputs give equal (immutable) rdata.
@functools.lru_cache(maxsize=16384)
def a_rdata(address: str, v6: bool) -> dns.rdata.Rdata:
    return dns.rdtypes.IN.AAAA.AAAA(IN, AAAA, address) if v6 else dns.rdtypes.IN.A.A(IN, A, address)


@functools.lru_cache(maxsize=16384)
def txt_rdata(text: str) -> dns.rdata.Rdata:
    return dns.rdtypes.ANY.TXT.TXT(IN, TXT, _txt_strings(text))


@functools.lru_cache(maxsize=16384)
def srv_rdata(weight: int, port: int, target: dns.name.Name) -> dns.rdata.Rdata:
    return dns.rdtypes.IN.SRV.SRV(IN, SRV, 1, weight, port, target)


@functools.lru_cache(maxsize=16384)
def _node_name(labels: tuple[bytes, ...], domain: dns.name.Name) -> dns.name.Name:
    return dns.name.Name(labels).concatenate(domain)


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def rfc1464(key: str, value: str) -> str:
    """Consul's ``encodeKVasRFC1464``: backquote `` ` `` and ``=`` and edge spaces of the key,
    backquotes of the value; keys prefixed ``rfc1035-`` give the bare value."""
    if key.lower().startswith("rfc1035-"):
        return value
    k = key.replace("`", "``").replace("=", "`=")
    lead = len(k) - len(k.lstrip(" "))
    k = "` " * lead + k[lead:]
    trail = len(k) - len(k.rstrip(" "))
    if trail:
        k = k[: len(k) - trail] + "` " * trail
    return k + "=" + value.replace("`", "``")


def _txt_strings(text: str) -> list[bytes]:
    """A TXT character-string holds at most 255 bytes: split longer texts."""
    raw = text.encode("utf-8")
    return [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]


def _absolute_target(host: str) -> dns.name.Name | None:
    try:
        return dns.name.from_text(host.rstrip(".") + ".")
    except dns.exception.DNSException:
        return None


class _View:
    """Lowercase name -> exact names, rebuilt when the catalog index moves."""

    def __init__(self, store: StateStore) -> None:
        self.services: dict[str, list[str]] = {}
        for name, members in store.service_instances.items():
            if members:
                self.services.setdefault(name.lower(), []).append(name)
        self.nodes: dict[str, str] = {}
        for name in sorted(store.nodes):
            self.nodes.setdefault(name.lower(), name)


@dataclass
class _Instance:
    node: Node
    service: Service
    warning: bool


class Answerer:
    """Answers questions for one agent: its domains, datacenter and ``dns_config``.

    Holds only derived configuration and a memo of the lowercase name maps keyed by the store
    identity and catalog index, so ``build`` is a function of (store, question, now).
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.dcfg = config.dns_config
        self.datacenter = config.datacenter
        primary = dns.name.from_text(config.domain)
        doms = [primary]
        if config.alt_domain:
            doms.append(dns.name.from_text(config.alt_domain))
        self.domains: tuple[dns.name.Name, ...] = tuple(doms)
        self.primary = primary
        self.node_ttl = int(self.dcfg.node_ttl)
        self._ttl_exact: dict[str, int] = {}
        self._ttl_prefix: list[tuple[str, int]] = []
        for key, val in self.dcfg.service_ttl.items():
            if key.endswith("*"):
                self._ttl_prefix.append((key[:-1].lower(), int(val)))
            else:
                self._ttl_exact[key.lower()] = int(val)
        self._ttl_prefix.sort(key=lambda kv: -len(kv[0]))
        self._view_key: tuple[int, int, int] | None = None
        self._view: _View | None = None
        #: Set by the DNS server when it can answer other datacenters and prepared queries.
        self.remote_enabled = False
        #: A prepared query's ``DNS.TTL`` overrides ``service_ttl`` (set on a per-answer copy).
        self.fixed_ttl: int | None = None
        #: The DNS token's authorizer (``acl.tokens.dns``, else ``default``, else anonymous);
        #: None when ACLs are off.  An unknown token sees nothing.
        self.authorizer: Callable[[], Authorizer] | None = None

    def _visible(self, node: str, service: str | None) -> bool:
        """node:read (and service:read for a service answer) for the DNS token."""
        if self.authorizer is None:
            return True
        try:
            a = self.authorizer()
        except MusterError:
            return False
        if not a.allowed("node", node, "read"):
            return False
        return service is None or a.allowed("service", service, "read")

    # ------------------------------------------------------------------ helpers

    def service_ttl(self, service: str) -> int:
        """Exact name wins, then the longest ``prefix*`` (``*`` alone matches all), else 0."""
        if self.fixed_ttl is not None:
            return self.fixed_ttl
        s = service.lower()
        if s in self._ttl_exact:
            return self._ttl_exact[s]
        for prefix, ttl in self._ttl_prefix:
            if s.startswith(prefix):
                return ttl
        return 0

    def view(self, store: StateStore) -> _View:
        key = (id(store), id(store.nodes), store.catalog_index())
        if self._view is None or key != self._view_key:
            self._view = _View(store)
            self._view_key = key
        return self._view

    def soa(self, domain: dns.name.Name, now: float) -> Record:
        s = self.dcfg.soa
        data = dns.rdtypes.ANY.SOA.SOA(
            IN, SOA,
            dns.name.Name((b"ns",)).concatenate(domain),
            dns.name.Name((b"hostmaster",)).concatenate(domain),
            int(now) & 0xFFFFFFFF, s.refresh, s.retry, s.expire, s.min_ttl,
        )
        return rr(domain, s.min_ttl, data)

    def _negative(self, rcode: int, domain: dns.name.Name, now: float) -> Answer:
        return Answer(rcode=rcode, authority=[Unit([self.soa(domain, now)])])

    def node_name(self, node: str, dc: str, domain: dns.name.Name) -> dns.name.Name | None:
        """``<node>.node.<dc>.<domain>``, or None if the node name is not a valid DNS name."""
        try:
            labels = tuple(p.encode("utf-8") for p in node.split(".")) + (b"node", dc.encode())
            return _node_name(labels, domain)
        except (dns.exception.DNSException, UnicodeError):
            return None

    def _addr_records(
        self, owner: dns.name.Name, address: str, qtype: int, ttl: int
    ) -> list[Record]:
        """A/AAAA (for the matching question type) or CNAME (hostname) records for ``address``."""
        ip = parse_ip(address)
        if ip is None:
            target = _absolute_target(address) if address else None
            if target is None or qtype not in (A, AAAA, ANY):
                return []
            return [rr(owner, ttl, dns.rdtypes.ANY.CNAME.CNAME(IN, CNAME, target))]
        if ip.version == 4 and qtype in (A, ANY):
            return [rr(owner, ttl, a_rdata(str(ip), False))]
        if ip.version == 6 and qtype in (AAAA, ANY):
            return [rr(owner, ttl, a_rdata(str(ip), True))]
        return []

    def node_txt(self, owner: dns.name.Name, node: Node, ttl: int) -> list[Record]:
        meta: Mapping[str, str] = node.meta
        return [
            rr(owner, ttl, txt_rdata(rfc1464(k, str(meta[k]))))
            for k in sorted(meta)
        ]

    def healthy(self, store: StateStore, service: str, tag: str | None, connect: bool = False) -> list[_Instance]:
        """Servable instances of ``service`` (any case), in store order: no critical check
        (node-level checks count); with ``only_passing`` nothing but passing checks.
        ``connect``: the instances that serve it over the mesh instead (its proxies and native
        instances, ``<service>.connect``)."""
        out: list[_Instance] = []
        if connect:
            groups = [
                sorted(((store.nodes[n], s) for n, s in pairs if n in store.nodes and is_connect_for(s, service)),
                       key=lambda p: (p[0].node, p[1].id))  # fmt: skip
                for pairs in store.list_services(None)[1].values()
            ]
        else:
            groups = [store.service_instances_of(None, exact)[1] for exact in self.view(store).services.get(service.lower(), ())]
        for pairs in groups:
            for node, svc in pairs:
                if not self._visible(node.node, svc.service):
                    continue
                if tag is not None and not any(t.lower() == tag for t in svc.tags):
                    continue
                statuses = {c.status for c in store.checks_for_instance(node.node, svc.id)}
                if "critical" in statuses:
                    continue
                if self.dcfg.only_passing and statuses - {"passing"}:
                    continue
                out.append(_Instance(node, svc, "warning" in statuses))
        return out

    # ------------------------------------------------------------------ entry point

    def build(
        self, store: StateStore, qname: dns.name.Name, qtype: int, qclass: int, now: float, depth: int = MAX_CHASE
    ) -> Answer:
        """The answer to one question.  ``now`` (wall seconds) is only the SOA serial; ``depth``
        bounds how many in-zone CNAMEs are followed (a loop of CNAMEs must terminate)."""
        if qtype in ZONE_TRANSFER:
            return Answer(rcode=dns.rcode.NOTIMP, authoritative=False)
        lookup = names.parse(qname, qtype, self.domains)
        if qclass not in (IN, dns.rdataclass.ANY):
            return Answer(rcode=dns.rcode.REFUSED, authoritative=False)
        if lookup.kind == "outside":
            return Answer(rcode=dns.rcode.REFUSED, authoritative=False, forward=True)
        if lookup.kind == "ptr":
            return self._ptr(store, lookup.address, qtype)
        domain = lookup.domain
        assert domain is not None
        if qtype == SOA:
            ns = self._nameservers(store, domain)
            return Answer(
                answer=[Unit([self.soa(domain, now)])],
                authority=ns, shuffle_authority=True, authority_cap=MAX_NS,
            )
        if qtype == NS:
            servers = self._nameservers(store, domain)
            if not servers:
                return self._negative(dns.rcode.NOERROR, domain, now)
            return Answer(answer=servers, shuffle_answer=True, answer_cap=MAX_NS)
        if self.remote_enabled and (lookup.kind == "query" or (
                lookup.datacenter and lookup.datacenter != self.datacenter and lookup.kind in ("service", "node"))):
            return Answer(remote=True)
        if lookup.datacenter and lookup.datacenter != self.datacenter:
            return self._negative(dns.rcode.NXDOMAIN, domain, now)
        if lookup.kind == "service" or (lookup.kind == "mesh" and lookup.mesh == "connect"):
            return self._service(store, qname, qtype, lookup, domain, now, depth)
        if lookup.kind == "node":
            return self._node(store, qname, qtype, lookup.node, domain, now, depth)
        if lookup.kind == "addr":
            return self._addr(qname, qtype, lookup.address, domain, now)
        # apex, invalid, prepared query (none exist), mesh forms (P2).
        return self._negative(dns.rcode.NXDOMAIN, domain, now)

    # ------------------------------------------------------------------ forms

    def _chase(self, store: StateStore, recs: list[Record], qtype: int, depth: int) -> list[Record]:
        """``recs`` plus, for a CNAME into one of our zones, the records it resolves to (Consul
        resolves in-zone CNAME targets itself; out-of-zone targets are left to the client)."""
        if not recs or recs[0][2].rdtype != CNAME or depth <= 0:
            return recs
        target: dns.name.Name = recs[0][2].target  # type: ignore[attr-defined]
        if names.match_domain(target, self.domains) is None:
            return recs
        ans = self.build(store, target, qtype, IN, 0.0, depth - 1)
        out = list(recs)
        for r in (r for u in ans.answer for r in u.records):
            if r not in out:  # a CNAME loop repeats itself: each record once
                out.append(r)
        return out

    def _nameservers(self, store: StateStore, domain: dns.name.Name) -> list[Unit]:
        units: list[Unit] = []
        seen: set[str] = set()
        for inst in self.healthy(store, CONSUL_SERVICE, None):
            node = inst.node.node
            target = self.node_name(node, self.datacenter, domain)
            if target is None or node in seen:
                continue
            seen.add(node)
            glue = self._addr_records(target, inst.node.address, ANY, self.node_ttl)
            units.append(Unit([rr(domain, self.node_ttl, dns.rdtypes.ANY.NS.NS(IN, NS, target))], glue))
        return units

    def _service(
        self, store: StateStore, qname: dns.name.Name, qtype: int, lookup: names.Lookup,
        domain: dns.name.Name, now: float, depth: int,
    ) -> Answer:
        instances = self.healthy(store, lookup.service, lookup.tag, connect=lookup.kind == "mesh")
        if not instances:
            return self._negative(dns.rcode.NXDOMAIN, domain, now)
        ttl = self.service_ttl(lookup.service)
        units: list[Unit] = []
        if qtype == SRV:
            units = self._srv_units(instances, qname, ttl, domain)
        elif qtype in (A, AAAA, ANY):
            seen: set[str] = set()
            for inst in instances:
                address = inst.service.address or inst.node.address
                if address in seen:
                    continue
                seen.add(address)
                recs = self._chase(store, self._addr_records(qname, address, qtype, ttl), qtype, depth)
                if recs:
                    units.append(Unit(recs))
        if not units:
            return self._negative(dns.rcode.NOERROR, domain, now)
        cap = self.dcfg.a_record_limit if qtype != SRV else 0
        return Answer(answer=units, shuffle_answer=True, answer_cap=cap)

    def _srv_units(
        self, instances: list[_Instance], qname: dns.name.Name, ttl: int, domain: dns.name.Name
    ) -> list[Unit]:
        units: list[Unit] = []
        seen: set[tuple[str, str, int]] = set()
        for inst in instances:
            node, svc = inst.node, inst.service
            port = svc.port
            svc_addr = svc.address
            key = (node.node, svc_addr or node.address, port)
            if key in seen:
                continue
            seen.add(key)
            weight = svc.weights.warning if inst.warning else svc.weights.passing
            extras: list[Record] = []
            target: dns.name.Name | None = None
            if not svc_addr:
                target = self.node_name(node.node, self.datacenter, domain)
                if target is not None:
                    extras = self._addr_records(target, node.address, ANY, ttl)
                    if self.dcfg.enable_additional_node_meta_txt:
                        extras += self.node_txt(target, node, ttl)
                svc_addr = node.address
            if target is None:
                if parse_ip(svc_addr) is not None:
                    target = dns.name.Name(
                        (names.encode_hex_address(svc_addr).encode(), b"addr", self.datacenter.encode())
                    ).concatenate(domain)
                    extras = self._addr_records(target, svc_addr, ANY, ttl)
                else:
                    target = _absolute_target(svc_addr) if svc_addr else None
            if target is None:
                continue
            srv = srv_rdata(max(0, min(weight, 0xFFFF)), port & 0xFFFF, target)
            units.append(Unit([rr(qname, ttl, srv)], extras))
        return units

    def _node(
        self, store: StateStore, qname: dns.name.Name, qtype: int, name: str,
        domain: dns.name.Name, now: float, depth: int,
    ) -> Answer:
        exact = self.view(store).nodes.get(name.lower())
        node = store.nodes.get(exact) if exact is not None else None
        if node is None or not self._visible(node.node, None):
            return self._negative(dns.rcode.NXDOMAIN, domain, now)
        ttl = self.node_ttl
        addr = self._chase(store, self._addr_records(qname, node.address, qtype, ttl), qtype, depth)
        units = [Unit(addr)] if addr else []
        txt = self.node_txt(qname, node, ttl)
        if qtype in (TXT, ANY):
            units += [Unit([r]) for r in txt]
            txt = []
        if not units:
            return self._negative(dns.rcode.NOERROR, domain, now)
        extra = txt if self.dcfg.enable_additional_node_meta_txt else []
        return Answer(answer=units, additional=extra)

    def _addr(self, qname: dns.name.Name, qtype: int, address: str, domain: dns.name.Name, now: float) -> Answer:
        recs = self._addr_records(qname, address, qtype, self.node_ttl)
        if recs:
            return Answer(answer=[Unit(recs)])
        # Consul puts the decoded address in Additional when the type does not match.
        ans = self._negative(dns.rcode.NOERROR, domain, now)
        ans.additional = self._addr_records(qname, address, ANY, self.node_ttl)
        return ans

    def _ptr(self, store: StateStore, address: str, qtype: int) -> Answer:
        """Nodes with that address, else services whose ServiceAddress it is; else not ours."""
        miss = Answer(rcode=dns.rcode.NXDOMAIN, authoritative=False, forward=True)
        if qtype not in (PTR, ANY):
            return Answer(rcode=dns.rcode.REFUSED, authoritative=False, forward=True)
        ip = parse_ip(address)
        qname = dns.name.from_text(_reverse(address))
        targets: list[dns.name.Name] = []
        for name in sorted(store.nodes):
            node = store.nodes[name]
            addrs = [node.address] + list(node.tagged_addresses.values())
            if any(isinstance(a, str) and parse_ip(a) == ip for a in addrs):
                t = self.node_name(name, self.datacenter, self.primary)
                if t is not None and t not in targets:
                    targets.append(t)
        if not targets:
            for node_name in sorted(store.services):
                for sid in sorted(store.services[node_name]):
                    svc = store.services[node_name][sid]
                    a = svc.address
                    if a and parse_ip(a) == ip:
                        try:
                            t = dns.name.Name(
                                (svc.service.encode(), b"service", self.datacenter.encode())
                            ).concatenate(self.primary)
                        except dns.exception.DNSException:
                            continue
                        if t not in targets:
                            targets.append(t)
        if not targets:
            return miss
        return Answer(
            answer=[Unit([rr(qname, self.node_ttl, dns.rdtypes.ANY.PTR.PTR(IN, PTR, t))]) for t in targets]
        )


def _reverse(address: str) -> str:
    return ipaddress.ip_address(address).reverse_pointer + "."
