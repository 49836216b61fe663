"""A deterministic fake network and manual clock for SwimCore/Serf tests.

Nodes are anything with the sans-IO driver API (``receive_packet``, ``receive_stream``,
``stream_response``, ``handle_timeout``, ``next_deadline``, ``packets_to_send``,
``streams_to_open``).  Packets take ``latency`` seconds; a *cut* blocks one direction between two
addresses, ``down`` addresses neither send nor receive (a crash), and ``drop`` lets a test filter
individual packets.  :meth:`FakeNet.run` advances virtual time event by event, so a test can
ask "what happened within 10 s" without sleeping.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

Addr = tuple[str, int]


class FakeNet:
    def __init__(self, latency: float = 0.002, start: float = 1000.0) -> None:
        self.now = start
        self.latency = latency
        self.nodes: dict[Addr, Any] = {}
        self.cuts: set[tuple[Addr, Addr]] = set()
        self.down: set[Addr] = set()
        self.drop: Callable[[Addr, Addr, bytes], bool] | None = None
        self.events: dict[Addr, list[Any]] = {}
        self.sent = 0
        self._heap: list[tuple[float, int, str, Any]] = []
        self._seq = 0

    def add(self, addr: Addr, node: Any) -> Any:
        self.nodes[addr] = node
        self.events.setdefault(addr, [])
        self.flush(addr)
        return node

    def cut(self, a: Addr, b: Addr, both: bool = True) -> None:
        self.cuts.add((a, b))
        if both:
            self.cuts.add((b, a))

    def heal(self) -> None:
        self.cuts.clear()

    def partition(self, left: list[Addr], right: list[Addr]) -> None:
        for a in left:
            for b in right:
                self.cut(a, b)

    def ok(self, src: Addr, dst: Addr) -> bool:
        return (src not in self.down and dst not in self.down and (src, dst) not in self.cuts
                and dst in self.nodes)

    def _push(self, t: float, kind: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, payload))

    def flush(self, addr: Addr) -> None:
        node = self.nodes[addr]
        for dst, data in node.packets_to_send():
            self.sent += 1
            self._push(self.now + self.latency, "pkt", (addr, dst, data))
        for req in node.streams_to_open():
            self._push(self.now + self.latency, "sreq", (addr, req))
        self.events[addr].extend(node.events())

    def run(self, seconds: float) -> None:
        """Advance virtual time by ``seconds``, delivering packets and firing timers in order."""
        end = self.now + seconds
        for _ in range(10_000_000):
            live = [a for a in self.nodes if a not in self.down]
            t_timer = min((self.nodes[a].next_deadline() for a in live), default=float("inf"))
            t_pkt = self._heap[0][0] if self._heap else float("inf")
            t = min(t_timer, t_pkt)
            if t > end:
                break
            self.now = max(self.now, t)
            if t_pkt <= t_timer:
                _, _, kind, payload = heapq.heappop(self._heap)
                self._deliver(kind, payload)
            else:
                for a in live:
                    if self.nodes[a].next_deadline() <= self.now:
                        self.nodes[a].handle_timeout(self.now)
                        self.flush(a)
        else:
            raise AssertionError("fake network did not quiesce")
        self.now = end

    def _deliver(self, kind: str, payload: Any) -> None:
        if kind == "pkt":
            src, dst, data = payload
            if not self.ok(src, dst) or (self.drop is not None and self.drop(src, dst, data)):
                return
            self.nodes[dst].receive_packet(data, src, self.now)
            self.flush(dst)
        elif kind == "sreq":
            src, req = payload
            if src in self.down:
                return
            reply = None
            if self.ok(src, req.addr) and self.ok(req.addr, src):
                reply = self.nodes[req.addr].receive_stream(req.data, src, self.now)
                self.flush(req.addr)
            self._push(self.now + self.latency, "sresp", (src, req.token, reply))
        elif kind == "sresp":
            src, token, reply = payload
            if src in self.down:
                return
            self.nodes[src].stream_response(token, reply, self.now)
            self.flush(src)
