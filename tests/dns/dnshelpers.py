"""Shared helpers for the DNS tests: a catalog built directly in a ``StateStore`` and queries
answered through the same build/compile/render path the listener uses.  (A uniquely named
module rather than ``conftest`` so that ``from dnshelpers import ...`` is unambiguous.)"""

from __future__ import annotations

import itertools
import shutil
import sys
from pathlib import Path
from typing import Any

import dns.message
import dns.rdatatype
import pytest

from muster.config import Config, parse_agent_flags
from muster.dns import wire
from muster.dns.answers import Answerer
from muster.runtime import Rng
from muster.state.store import StateStore

# Real-process helpers (start_agent, free_port) live with the integration tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

DIG = shutil.which("dig")
needs_dig = pytest.mark.skipif(DIG is None, reason="dig (Debian bind9-dnsutils) is not installed")


class Catalog:
    """A store plus helpers to register nodes/services/checks at increasing indexes."""

    def __init__(self) -> None:
        self.store = StateStore()
        self._idx = itertools.count(10)

    def _register(self, node: dict[str, Any], svc: dict[str, Any] | None, checks: list[dict[str, Any]], skip_node: bool, ts: float) -> None:
        with self.store.write(next(self._idx)) as tx:
            self.store.tables.catalog.ensure_registration(tx, node, svc, checks, skip_node, ts)

    def node(self, name: str, address: str, meta: dict[str, str] | None = None, **extra: Any) -> None:
        rec = {"Node": name, "Address": address, "Datacenter": "dc1", "Meta": meta or {}, **extra}
        self._register(rec, None, [], False, 0.0)

    def service(
        self,
        node: str,
        name: str,
        port: int = 80,
        *,
        sid: str | None = None,
        address: str = "",
        tags: list[str] | None = None,
        weights: dict[str, int] | None = None,
        status: str | None = None,
        **fields: Any,
    ) -> None:
        if node not in self.store.nodes:
            self.node(node, f"10.0.0.{len(self.store.nodes) + 1}")
        sid = sid or name
        svc = {
            "ID": sid, "Service": name, "Tags": tags or [], "Address": address, "Port": port,
            "Weights": weights or {"Passing": 1, "Warning": 1}, "Meta": {}, **fields,
        }
        checks = []
        if status is not None:
            checks.append({"Node": node, "CheckID": f"service:{sid}", "Name": "c", "Status": status, "ServiceID": sid})
        self._register({"Node": node}, svc, checks, True, 0.0)

    def node_check(self, node: str, status: str, check_id: str = "serfHealth") -> None:
        chk = {"Node": node, "CheckID": check_id, "Name": check_id, "Status": status, "ServiceID": ""}
        self._register({"Node": node}, None, [chk], True, 0.0)


def respond(
    answerer: Answerer,
    store: StateStore,
    query: dns.message.Message,
    rng: Rng,
    *,
    tcp: bool = False,
    now: float = 0.0,
    recursors: bool = False,
) -> dns.message.Message:
    """Build, shuffle, truncate and serialise the answer to ``query`` exactly as the server
    does, and parse it back (for tests and tools; the server keeps the wire bytes)."""
    data = query.to_wire()
    pq = wire.parse_query(data)
    if pq is None:
        raise ValueError("query is not a simple one-question query")
    q = query.question[0]
    ans = answerer.build(store, q.name, q.rdtype, q.rdclass, now)
    tmpl = wire.compile_answer(ans, pq.qname_lower, not answerer.dcfg.disable_compression)
    out = wire.render(
        tmpl, pq, rng, tcp=tcp, udp_answer_limit=answerer.dcfg.udp_answer_limit,
        enable_truncate=answerer.dcfg.enable_truncate, recursion_available=recursors,
    )
    return dns.message.from_wire(out)


def make_config(*flags: str) -> Config:
    return parse_agent_flags(["-dev", "-node=srv1", "-domain=cluster.local", *flags])


def ask(
    cat: Catalog,
    name: str,
    rdtype: str = "A",
    *,
    config: Config | None = None,
    seed: int = 1,
    tcp: bool = False,
    payload: int | None = None,
    recursors: bool = False,
) -> dns.message.Message:
    cfg = config or make_config()
    q = dns.message.make_query(name, rdtype, use_edns=0 if payload else False, payload=payload or 512)
    return respond(Answerer(cfg), cat.store, q, Rng(seed), tcp=tcp, now=1_700_000_000.0, recursors=recursors)


def records(msg: dns.message.Message, section: str = "answer", rdtype: str | None = None) -> list[str]:
    """Rdata texts of ``section`` (optionally one type), in message order."""
    want = dns.rdatatype.from_text(rdtype) if rdtype else None
    return [r.to_text() for s in getattr(msg, section) for r in s if want is None or s.rdtype == want]
