"""Parsing of DNS question names into Consul lookups (docs/compat/dns.md#names).  Pure: no store, no I/O.

A question name is first matched against the agent's domains (``domain``, then ``alt_domain``;
the longest match wins so that nested domains behave), case-insensitively.  The labels left of
the domain are lowercased and scanned right-to-left for the first keyword (``service``,
``node``, ``query``, ``addr``, ``connect``, ``virtual``, ``ingress``) exactly as Consul's
``dispatch`` does: everything left of the keyword is the *head* (service/tag, node name, hex
address), everything right of it the locality suffix (``[<dc>[.dc]]``).

Invariants of :func:`parse`:

* it never raises on any ``dns.name.Name`` (a name that fits no form is ``Lookup(kind="invalid")``
  and answers NXDOMAIN);
* names under ``in-addr.arpa.``/``ip6.arpa.`` are ``kind="ptr"`` only when they spell a complete
  address; partial reverse names are out of zone;
* ``kind="outside"`` means the name is in none of our zones (recursors or REFUSED).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdatatype
import dns.reversename

KEYWORDS = frozenset({"service", "node", "query", "addr", "connect", "virtual", "ingress"})
MESH_KEYWORDS = frozenset({"connect", "virtual", "ingress"})

_IN_ADDR = dns.name.from_text("in-addr.arpa.")
_IP6 = dns.name.from_text("ip6.arpa.")


@dataclass(frozen=True)
class Lookup:
    """What a question name asks for.

    ``kind`` is one of ``service``, ``node``, ``addr``, ``query``, ``mesh``, ``apex``,
    ``invalid`` (in zone, no such form), ``ptr`` and ``outside``.  ``domain`` is the zone the
    question used (absolute, lowercase) - answers are written in that domain - and ``datacenter``
    the requested DC (``""`` = the local one).
    """

    kind: str
    domain: dns.name.Name | None = None
    datacenter: str = ""
    service: str = ""
    tag: str | None = None
    node: str = ""
    address: str = ""
    mesh: str = ""  # the mesh keyword of a ``mesh`` lookup: connect, virtual or ingress


def _label_text(label: bytes) -> str:
    """A wire label as lowercase text; bytes that are not UTF-8 simply never match a name."""
    return label.decode("utf-8", "replace").lower()


def _locality(suffix: list[str]) -> str | None:
    """``[] -> ""`` (local), ``[dc] -> dc``, ``[dc, "dc"] -> dc``; anything else is invalid."""
    if not suffix:
        return ""
    if len(suffix) == 1:
        return suffix[0]
    if len(suffix) == 2 and suffix[1] == "dc":
        return suffix[0]
    return None


def match_domain(qname: dns.name.Name, domains: tuple[dns.name.Name, ...]) -> dns.name.Name | None:
    """The longest of ``domains`` that ``qname`` is in (case-insensitive), or None."""
    best: dns.name.Name | None = None
    for d in domains:
        if qname.is_subdomain(d) and (best is None or len(d) > len(best)):
            best = d
    return best


def parse(qname: dns.name.Name, qtype: int, domains: tuple[dns.name.Name, ...]) -> Lookup:
    """Classify ``qname`` (see the module docstring).  ``domains[0]`` is the primary domain."""
    domain = match_domain(qname, domains)
    if domain is None:
        if qname.is_subdomain(_IN_ADDR) or qname.is_subdomain(_IP6):
            try:
                addr = dns.reversename.to_address(qname)
            except (dns.exception.SyntaxError, ValueError):
                return Lookup("outside")
            return Lookup("ptr", address=str(ipaddress.ip_address(addr)))
        return Lookup("outside")
    rel = qname.relativize(domain)
    labels = [_label_text(lb) for lb in rel.labels] if rel != dns.name.empty else []
    if not labels:
        return Lookup("apex", domain)
    for i in range(len(labels) - 1, -1, -1):
        if labels[i] in KEYWORDS:
            return _keyword(labels[i], labels[:i], labels[i + 1 :], domain)
    # RFC 2782 without the "service" label: _svc._proto.<domain>, SRV questions only.
    if qtype == dns.rdatatype.SRV and len(labels) == 2 and all(lb.startswith("_") for lb in labels):
        return _service(labels, "", domain)
    return Lookup("invalid", domain)


def _service(head: list[str], dc: str, domain: dns.name.Name) -> Lookup:
    if len(head) == 2 and head[0].startswith("_") and head[1].startswith("_"):
        svc, tag = head[0][1:], head[1][1:]
        if not svc:
            return Lookup("invalid", domain)
        return Lookup("service", domain, dc, service=svc, tag=None if tag == "tcp" else tag)
    tag_text = ".".join(head[:-1])
    return Lookup("service", domain, dc, service=head[-1], tag=tag_text or None)


def _keyword(kw: str, head: list[str], suffix: list[str], domain: dns.name.Name) -> Lookup:
    dc = _locality(suffix)
    if dc is None or not head:
        return Lookup("invalid", domain)
    if kw == "service":
        return _service(head, dc, domain)
    if kw == "node":
        return Lookup("node", domain, dc, node=".".join(head))
    if kw == "addr":
        if len(head) != 1:
            return Lookup("invalid", domain)
        address = decode_hex_address(head[0])
        if address is None:
            return Lookup("invalid", domain)
        return Lookup("addr", domain, dc, address=address)
    if kw == "query":
        # ``_<name>._tcp.query`` (RFC 2782) names the query by its first label; otherwise the
        # whole head is the query's name or ID (Consul joins it with dots).
        if len(head) == 2 and head[0].startswith("_") and head[1].startswith("_"):
            return Lookup("query", domain, dc, service=head[0][1:]) if head[0][1:] else Lookup("invalid", domain)
        return Lookup("query", domain, dc, service=".".join(head))
    return Lookup("mesh", domain, dc, service=head[-1], mesh=kw)


def decode_hex_address(text: str) -> str | None:
    """8 hex digits -> IPv4 text, 32 -> IPv6 text, anything else None."""
    if len(text) not in (8, 32):
        return None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return None
    return str(ipaddress.ip_address(raw))


def encode_hex_address(address: str) -> str:
    """The ``<hex>`` label of ``<hex>.addr.<dc>.<domain>`` for an IP address."""
    return ipaddress.ip_address(address).packed.hex()
