"""DNS answers that need more than the local store: another datacenter's services and nodes
(``<svc>.service.<dc>.<domain>``, ``<node>.node.<dc>.<domain>``) and prepared queries
(``<name>.query[.<dc>].<domain>``).

They are answered asynchronously, from the HTTP API's own answer to the equivalent request
(``/v1/health/service/<svc>?dc=<dc>&stale``, ``/v1/catalog/node/<node>?dc=...&stale``,
``/v1/query/<name>/execute?dc=...``), which crosses the WAN through the ``?dc=`` forwarder and
runs a prepared query with its failover.  The records are then built by the same
:class:`~.answers.Answerer` code as local ones, over a :class:`RemoteView` holding just the
fetched entries, with the answering datacenter in the generated names.

Error mapping (Consul ``agent/dns.go`` ``rCodeFromError``): ``No path to datacenter`` and
``Query not found`` are NXDOMAIN; any other failure is SERVFAIL.

``translate_wan_addrs``: for a node of another datacenter, its ``wan`` tagged address (and a
service's ``wan`` tagged address) replace the LAN ones, as Consul answers across the WAN.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

import dns.name
import dns.rcode
import msgspec

from ..state.catalog import service_row
from ..state.rows import Check, Node, Service
from . import names
from .answers import Answer, Answerer

__all__ = ["RemoteLookup", "RemoteView", "needs_remote"]

#: (method path, raw query) -> (status, body) of the local HTTP API.
HTTPGet = Callable[[str, bytes], Awaitable[tuple[int, bytes]]]

Entry = tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]


def needs_remote(lookup: names.Lookup, local_dc: str) -> bool:
    """Whether a parsed question is answered here asynchronously."""
    if lookup.kind == "query":
        return True
    return bool(lookup.datacenter) and lookup.datacenter != local_dc and lookup.kind in ("service", "node")


class RemoteView:
    """The part of the store interface :class:`Answerer` reads, over fetched entries."""

    def __init__(self, entries: list[Entry], nodes: list[dict[str, Any]] | None = None) -> None:
        # The store holds typed rows; the fetched JSON is converted to the same types.
        self.nodes: dict[str, Node] = {}
        self.service_instances: dict[str, dict[tuple[str, str], bool]] = {}
        self._pairs: dict[str, list[tuple[Node, Service]]] = {}
        self._checks: dict[tuple[str, str], list[Check]] = {}
        for raw in nodes or []:
            n = msgspec.convert(raw, Node)
            self.nodes[n.node] = n
        for raw, raw_svc, checks in entries:
            n = self.nodes.setdefault(raw["Node"], msgspec.convert(raw, Node))
            svc = service_row(raw_svc)
            name = svc.service
            self.service_instances.setdefault(name, {})[(n.node, svc.id)] = True
            self._pairs.setdefault(name, []).append((n, svc))
            self._checks[(n.node, svc.id)] = [msgspec.convert(c, Check) for c in checks]

    def service_instances_of(self, ws: Any, name: str) -> tuple[int, list[tuple[Node, Service]]]:
        return 1, self._pairs.get(name, [])

    def checks_for_instance(self, node: str, service_id: str) -> list[Check]:
        return self._checks.get((node, service_id), [])

    def catalog_index(self) -> int:
        return 1


def _translate(node: dict[str, Any], svc: dict[str, Any] | None) -> None:
    tagged = node.get("TaggedAddresses") or {}
    wan = tagged.get("wan_ipv4") or tagged.get("wan")
    if wan:
        node["Address"] = wan
    if svc is not None:
        st = svc.get("TaggedAddresses") or {}
        w = st.get("wan_ipv4") or st.get("wan")
        if isinstance(w, dict) and w.get("Address"):
            svc["Address"] = w["Address"]


def _entries(raw: Any) -> list[Entry]:
    out: list[Entry] = []
    for e in raw or []:
        node, svc = dict(e["Node"]), dict(e["Service"])
        svc.setdefault("ID", svc.get("Service", ""))
        out.append((node, svc, list(e.get("Checks") or [])))
    return out


class RemoteLookup:
    def __init__(self, answerer: Answerer, http_get: HTTPGet, translate_wan_addrs: bool = False) -> None:
        self.answerer = answerer
        self.http_get = http_get
        self.translate = translate_wan_addrs

    def _negative(self, rcode: int, domain: dns.name.Name, now: float) -> Answer:
        return self.answerer._negative(rcode, domain, now)

    def _clone(self, dc: str) -> Answerer:
        a = copy.copy(self.answerer)
        a.datacenter = dc
        a._view = None
        a._view_key = None
        return a

    async def _get(self, path: str, params: dict[str, str]) -> tuple[int, Any]:
        status, body = await self.http_get(path, urlencode(params).encode())
        if status == 200:
            return status, json.loads(body) if body else None
        return status, body.decode("utf-8", "replace")

    def _error(self, status: int, text: Any, domain: dns.name.Name, now: float) -> Answer:
        if status == 404 or (isinstance(text, str) and text.startswith(("No path to datacenter", "Query not found"))):
            return self._negative(dns.rcode.NXDOMAIN, domain, now)
        return Answer(rcode=dns.rcode.SERVFAIL, authoritative=False)

    async def build(self, qname: dns.name.Name, qtype: int, now: float) -> Answer:
        lookup = names.parse(qname, qtype, self.answerer.domains)
        domain = lookup.domain
        assert domain is not None
        local = self.answerer.datacenter
        dc = lookup.datacenter or local
        params = {"dc": dc, "stale": ""}
        if lookup.kind == "service":
            status, body = await self._get(f"/v1/health/service/{quote(lookup.service, safe='')}", params)
            if status != 200:
                return self._error(status, body, domain, now)
            entries = _entries(body)
            if self.translate and dc != local:
                for node, svc, _ in entries:
                    _translate(node, svc)
            return self._clone(dc).build(RemoteView(entries), qname, qtype, 1, now)  # type: ignore[arg-type]
        if lookup.kind == "node":
            status, body = await self._get(f"/v1/catalog/node/{quote(lookup.node, safe='')}", params)
            if status != 200:
                return self._error(status, body, domain, now)
            if not body:
                return self._negative(dns.rcode.NXDOMAIN, domain, now)
            node = dict(body["Node"])
            if self.translate and dc != local:
                _translate(node, None)
            return self._clone(dc).build(RemoteView([], [node]), qname, qtype, 1, now)  # type: ignore[arg-type]
        # A prepared query, run where it lives (with its failover); TTL from the query.
        status, body = await self._get(f"/v1/query/{quote(lookup.service, safe='')}/execute",
                                       {"dc": dc} if lookup.datacenter else {})
        if status != 200:
            return self._error(status, body, domain, now)
        answered = str(body.get("Datacenter") or dc)
        entries = _entries(body.get("Nodes"))
        if self.translate and answered != local:
            for node, svc, _ in entries:
                _translate(node, svc)
        a = self._clone(answered)
        ttl_text = ((body.get("DNS") or {}).get("TTL") or "")
        if ttl_text:
            from ..durations import parse_duration

            a.fixed_ttl = int(parse_duration(ttl_text))
        # The executed query already filtered health: answer every returned instance under the
        # queried name, as a service lookup of it.
        service_name = str(body.get("Service") or "")
        svc_lookup = names.Lookup(kind="service", domain=domain, service=service_name, datacenter=answered)
        view = RemoteView(entries)
        return a._service(view, qname, qtype, svc_lookup, domain, now, 8)  # type: ignore[arg-type]
