"""Transcript commands for the SWIM core (``tests/gossip/testdata/*.txt``).

Nodes are numbered 1..N (member names ``n1``..), each a :class:`SwimCore` at ``10.0.0.<i>:8301``
with ``Rng(i)`` and the LAN defaults.  Nothing moves unless a command says so:

* ``add-nodes N`` creates them; ``bootstrap`` joins 2..N through 1 and settles for 3 s silently;
* ``advance S`` moves the clock S seconds, firing due timers in time order and printing each
  packet the timers produce; packets are queued, not delivered;
* ``deliver [drop=(i,j)]`` delivers the queued packets once (one hop), printing them and queueing
  the answers; ``stabilize`` delivers until nothing is queued;
* ``crash i`` drops everything to and from i; ``cut i j`` cuts both directions; ``heal``;
* ``suspect i about=j from=k`` injects a suspect message into i; ``members i`` prints i's view;
  ``awareness`` prints every score.
"""

from __future__ import annotations

from datadriven import Cmd
from muster.gossip import codec
from muster.gossip.core import SwimCore
from muster.runtime import Rng

Addr = tuple[str, int]


def _addr(i: int) -> Addr:
    return (f"10.0.0.{i}", 8301)


def _fmt(m: codec.Message) -> str:
    if isinstance(m, codec.Ping):
        return f"Ping(seq={m.seq} to={m.node})"
    if isinstance(m, codec.IndirectPing):
        return f"IndirectPing(seq={m.seq} target={m.target} nack={m.nack})"
    if isinstance(m, codec.Ack):
        return f"Ack(seq={m.seq})"
    if isinstance(m, codec.Nack):
        return f"Nack(seq={m.seq})"
    if isinstance(m, codec.Alive):
        return f"Alive({m.node} inc={m.incarnation})"
    if isinstance(m, codec.Suspect):
        return f"Suspect({m.node} inc={m.incarnation} from={m.source})"
    if isinstance(m, codec.Dead):
        return f"Dead({m.node} inc={m.incarnation} from={m.source})"
    return type(m).__name__


class GossipEnv:
    def __init__(self) -> None:
        self.now = 0.0
        self.nodes: dict[int, SwimCore] = {}
        self.by_addr: dict[Addr, int] = {}
        self.pending: list[tuple[int, Addr, bytes]] = []
        self.crashed: set[int] = set()
        self.cuts: set[tuple[int, int]] = set()

    def handle(self, cmd: Cmd) -> str:
        fn = getattr(self, "cmd_" + cmd.name.replace("-", "_"), None)
        if fn is None:
            raise ValueError(f"{cmd.where}: unknown command {cmd.name}")
        return str(fn(cmd)) or "ok"

    # --- helpers ---------------------------------------------------------------------------

    def _describe(self, src: int, dst: Addr, data: bytes) -> str:
        msg = codec.decode(codec.open_frame(data, None))
        parts = codec.decode_compound_parts(msg) if isinstance(msg, codec.Compound) else [msg]
        d = self.by_addr.get(dst)
        return f"{src}->{d if d is not None else dst[0]} " + " ".join(_fmt(p) for p in parts)

    def _collect(self, i: int, out: list[str] | None) -> None:
        node = self.nodes[i]
        for dst, data in node.packets_to_send():
            if out is not None:
                out.append("  " + self._describe(i, dst, data))
            self.pending.append((i, dst, data))
        for req in node.streams_to_open():
            j = self.by_addr.get(req.addr)
            ok = j is not None and self._reachable(i, j)
            reply = self.nodes[j].receive_stream(req.data, _addr(i), self.now) if ok and j is not None else None
            if j is not None and ok:
                self._collect(j, out)
            node.stream_response(req.token, reply, self.now)
            if out is not None:
                out.append(f"  {i}->{j} {req.kind} over TCP {'ok' if reply else 'failed'}")
        node.events()

    def _reachable(self, i: int, j: int) -> bool:
        return i not in self.crashed and j not in self.crashed and (i, j) not in self.cuts

    def _run_timers(self, until: float, out: list[str] | None) -> None:
        for _ in range(1_000_000):
            live = [i for i in sorted(self.nodes) if i not in self.crashed]
            if not live:
                break
            i = min(live, key=lambda x: (self.nodes[x].next_deadline(), x))
            t = self.nodes[i].next_deadline()
            if t > until:
                break
            self.now = max(self.now, t)
            mark = len(out) if out is not None else 0
            self.nodes[i].handle_timeout(self.now)
            self._collect(i, out)
            if out is not None and len(out) > mark:
                out.insert(mark, f"t={self.now:.3f} {i} timers")
        self.now = until

    def _deliver_once(self, out: list[str] | None, drop: set[tuple[int, int]]) -> None:
        batch, self.pending = self.pending, []
        for src, dst, data in batch:
            j = self.by_addr.get(dst)
            line = self._describe(src, dst, data)
            if j is None or not self._reachable(src, j) or (src, j) in drop:
                if out is not None:
                    out.append(f"  {line} (dropped)")
                continue
            if out is not None:
                out.append(f"  {line}")
            self.nodes[j].receive_packet(data, _addr(src), self.now)
            self._collect(j, None)

    # --- commands --------------------------------------------------------------------------

    def cmd_add_nodes(self, cmd: Cmd) -> str:
        n = int(cmd.pos[0])
        for i in range(1, n + 1):
            a = _addr(i)
            self.nodes[i] = SwimCore(name=f"n{i}", node_id=f"id-{i}", addr=a[0], port=a[1], rng=Rng(i),
                                     now=self.now)
            self.by_addr[a] = i
            self.nodes[i].events()
        return "\n".join(f"{i}: n{i} at {_addr(i)[0]}:8301" for i in self.nodes)

    def cmd_bootstrap(self, cmd: Cmd) -> str:
        for i in sorted(self.nodes)[1:]:
            self.nodes[i].join([_addr(1)], self.now)
            self._collect(i, None)
        self._settle(3.0)
        return self.cmd_members(cmd)

    def _settle(self, seconds: float) -> None:
        end = self.now + seconds
        steps = 0
        while self.now < end and steps < 100_000:
            steps += 1
            nxt = min(self.now + 0.01, end)
            self._run_timers(nxt, None)
            while self.pending:
                self._deliver_once(None, set())
        self.pending.clear()

    def cmd_settle(self, cmd: Cmd) -> str:
        self._settle(float(cmd.pos[0]))
        return "ok"

    def cmd_advance(self, cmd: Cmd) -> str:
        out: list[str] = []
        self._run_timers(self.now + float(cmd.pos[0]), out)
        return "\n".join(out) or "ok"

    def cmd_deliver(self, cmd: Cmd) -> str:
        drop = {(int(a), int(b)) for a, b in (x.split("-") for x in cmd.kw.get("drop", []))}
        out: list[str] = []
        self._deliver_once(out, drop)
        for src, dst, data in self.pending:
            out.append("  queued " + self._describe(src, dst, data))
        return "\n".join(out) or "ok"

    def cmd_stabilize(self, cmd: Cmd) -> str:
        out: list[str] = []
        for _ in range(100):
            if not self.pending:
                break
            self._deliver_once(out, set())
        return "\n".join(out) or "ok"

    def cmd_crash(self, cmd: Cmd) -> str:
        self.crashed.add(int(cmd.pos[0]))
        return "ok"

    def cmd_cut(self, cmd: Cmd) -> str:
        a, b = int(cmd.pos[0]), int(cmd.pos[1])
        self.cuts |= {(a, b), (b, a)}
        return "ok"

    def cmd_heal(self, cmd: Cmd) -> str:
        self.cuts.clear()
        return "ok"

    def cmd_suspect(self, cmd: Cmd) -> str:
        i, about, frm = int(cmd.pos[0]), cmd.get("about"), cmd.get("from")
        assert about is not None and frm is not None
        target = self.nodes[i].member(f"n{about}")
        assert target is not None
        msg = codec.Suspect(target.incarnation, f"n{about}", f"n{frm}")
        self.nodes[i].receive_packet(codec.seal(codec.encode(msg), None), _addr(int(frm)), self.now)
        out: list[str] = []
        self._collect(i, out)
        return "\n".join(out) or "ok"

    def cmd_members(self, cmd: Cmd) -> str:
        which = [int(cmd.pos[0])] if cmd.pos else sorted(self.nodes)
        lines = []
        for i in which:
            ms = sorted(self.nodes[i].members(), key=lambda m: m.name)
            lines.append(f"{i}: " + " ".join(f"{m.name}={m.state.name.lower()}/{m.incarnation}" for m in ms))
        return "\n".join(lines)

    def cmd_awareness(self, cmd: Cmd) -> str:
        return " ".join(f"{i}:{self.nodes[i].awareness}" for i in sorted(self.nodes))
