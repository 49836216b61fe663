"""A sans-IO SWIM failure detector with Lifeguard, after hashicorp/memberlist.

``SwimCore`` owns no sockets, tasks or timers.  Inputs: :meth:`receive_packet` (a UDP payload),
:meth:`receive_stream` (a push/pull request arriving on a stream; returns the reply),
:meth:`stream_response` (the reply to a stream we asked for, or ``None`` if it failed),
:meth:`handle_timeout`, :meth:`join`, :meth:`leave` and :meth:`set_meta`.  Outputs, drained by
the driver: :meth:`packets_to_send`, :meth:`streams_to_open` and :meth:`events`.  The driver
arms one timer at :meth:`next_deadline`.  Time is the ``now`` argument of every call and all
randomness comes from the injected :class:`~muster.runtime.Rng`, so a seeded simulation replays
exactly (aioquic's connection API, applied to memberlist's ``state.go``).

Protocol (memberlist / SWIM, Das et al. 2002; Lifeguard, Dadgar et al. 2018, arXiv:1707.00788):

* **Probing**: every probe interval the next member of a shuffled list is pinged (round-robin
  bounds detection time; the list is reshuffled after each pass, and new members are inserted at
  a random offset, as ``aliveNode`` does).  Without an ack within the probe timeout,
  ``indirect_checks`` (k=3) random peers are asked to ping it for us (IndirectPing with nack=True),
  and a TCP ping is tried in parallel (memberlist's fallback); a relay that hears nothing from the
  target answers with a Nack.  No ack by the end of the round
  -> the member becomes *suspect*.
* **Local health awareness** (Lifeguard §IV-A, memberlist ``awareness.go``): a score in
  ``[0, AwarenessMaxMultiplier-1]``; a successful probe lowers it by one, a failed probe raises it
  by the number of *missing nacks* (relays that did not even nack mean *we* are probably the
  slow one) or by one without relays, and having to refute a suspicion about ourselves raises it
  by one.  The probe timeout and probe round are multiplied by ``score + 1``: a starved node
  slows down instead of accusing healthy peers.
* **Dynamic suspicion** (Lifeguard §IV-B, memberlist ``suspicion.go``):
  ``min = SuspicionMult * max(1, log10(n)) * ProbeInterval``, ``max = SuspicionMaxTimeoutMult *
  min``; the timer starts at ``max`` and shrinks towards ``min`` as up to ``k = SuspicionMult - 2``
  independent peers confirm the suspicion: ``timeout = max - log(c+1)/log(k+1) * (max - min)``
  (never below ``min``).  With fewer than ``k`` possible confirmers (``n - 2 < k``) it is ``min``.
* **Refutation and the buddy rule** (Lifeguard §IV-C): only a member raises its own incarnation.
  When it hears it is suspect or dead at an incarnation >= its own, it broadcasts ``alive`` with a
  higher incarnation.  A ping to a suspect member carries the ``suspect`` message, so the member
  learns of the accusation at once and can refute.
* **Dissemination**: suspect/alive/dead messages enter a transmit-limited queue
  (``RetransmitMult * ceil(log10(n+1))`` sends, :mod:`.queue`) and are piggybacked on every packet
  plus sent to ``GossipNodes`` random members every ``GossipInterval``; dead members keep
  receiving gossip for ``GossipToTheDeadTime`` so they can refute.
* **Push/pull**: every ``PushPullInterval`` (scaled up above 32 nodes as memberlist's
  ``pushPullScale``) a full state exchange with one random live member; :meth:`join` is the same
  exchange with each seed address.  Remote ``dead`` becomes local ``suspect`` (prefer suspecting
  to killing), remote ``left`` is applied as left.
* **Leave**: a ``dead`` message about ourselves sent by ourselves means *left* (graceful) rather
  than *dead* (crashed).

Departures from memberlist, each found by the simulator (``python -m muster_testkit.gossip.sim``) to
remove false ``failed`` declarations or slow convergence under 10% loss:

* *stale-news correction*: a member that receives ``suspect``/``dead`` about a member it knows
  alive at a higher incarnation answers the sender directly with that ``alive`` (the sender
  missed a refutation; memberlist ignores such messages and lets the stale suspicion expire);
* a ``suspect`` at a higher incarnation than the suspicion we hold starts a *new* suspicion
  (memberlist counts it as a confirmation of the old, already refuted one);
* a ping from a member we have never heard of triggers a push/pull with it (its ``alive``
  broadcast missed us), at most once per address per ``STRANGER_SYNC_INTERVAL``.

Identity rule (Muster's, for pods that return with new IPs; kubernetes.md B.1, B.2, B.7): a member
is identified by ``node_id``.  An ``alive`` for a known name with the same id but a new address is
an address update (accepted with a higher incarnation, or at any incarnation if the old member is
dead/left, i.e. a restart).  An ``alive`` for a known name with a *different* id replaces the old
member only if it is dead or left; against a live member it is refused, counted in
``conflicts`` and logged.  A node that starts with an initial incarnation derived from the wall
clock (as :mod:`.transport` does) outranks everything its previous life said, so a restarted
member is recognised immediately, without waiting for the failure detector.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

import msgspec

from ..runtime import Rng
from . import codec
from .codec import (
    Ack,
    Alive,
    AuthError,
    Compound,
    Dead,
    IndirectPing,
    MalformedMessage,
    Message,
    Nack,
    NodeStateKind,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    User,
)
from .keyring import Keyring
from .queue import TransmitLimitedQueue, retransmit_limit

__all__ = [
    "Delegate",
    "EventKind",
    "GossipConfig",
    "Member",
    "MemberEvent",
    "StreamRequest",
    "SwimCore",
    "push_pull_scale",
    "remaining_suspicion_time",
    "suspicion_timeout",
]

log = logging.getLogger("muster.gossip")

Addr = tuple[str, int]

#: Largest encoded ``meta`` (tags) a member may carry (memberlist ``MetaMaxSize``).
META_MAX_SIZE = 512
#: memberlist ``pushPullScaleThreshold``: above this many nodes push/pull slows down.
PUSH_PULL_SCALE_THRESHOLD = 32
#: Fraction of the probe timeout a relay waits before nacking (Lifeguard paper: 80%).
NACK_TIMEOUT_FRACTION = 0.8
#: Minimum seconds between two push/pulls triggered by pings from the same unknown address.
STRANGER_SYNC_INTERVAL = 5.0


@dataclass(frozen=True)
class GossipConfig:
    """Timing and fan-out of one pool.  Defaults are memberlist's ``DefaultLANConfig``
    (hashicorp/memberlist ``config.go``); :meth:`wan` and :meth:`local` mirror
    ``DefaultWANConfig`` and ``DefaultLocalConfig``."""

    probe_interval: float = 1.0  # "Failure check every second"
    probe_timeout: float = 0.5  # "Reasonable RTT time for LAN"
    indirect_checks: int = 3  # "Use 3 nodes for the indirect ping"
    retransmit_mult: int = 4  # "Retransmit a message 4 * log(N+1) nodes"
    suspicion_mult: int = 4  # "Suspect a node for 4 * log(N+1) * Interval"
    suspicion_max_timeout_mult: int = 6  # "For 10k nodes this will give a max timeout of 120 seconds"
    push_pull_interval: float = 30.0  # "Low frequency"
    gossip_interval: float = 0.2  # "Gossip more rapidly"
    gossip_nodes: int = 3  # "Gossip to 3 nodes"
    gossip_to_the_dead_time: float = 30.0  # "Same as push/pull"
    awareness_max_multiplier: int = 8  # "Probe interval backs off to 8 seconds"
    stream_timeout: float = 10.0  # TCPTimeout
    disable_tcp_pings: bool = False  # DisableTcpPings: "TCP pings are safe, even with mixed versions"
    packet_size: int = 1400  # UDPBufferSize
    label: str = ""  # memberlist Config.Label (GCM additional data / CRC salt)

    @classmethod
    def lan(cls) -> GossipConfig:
        return cls()

    @classmethod
    def wan(cls) -> GossipConfig:
        """memberlist ``DefaultWANConfig``: slower probes, more suspicion, one more gossip node."""
        return cls(stream_timeout=30.0, suspicion_mult=6, push_pull_interval=60.0, probe_timeout=3.0,
                   probe_interval=5.0, gossip_nodes=4, gossip_interval=0.5, gossip_to_the_dead_time=60.0)

    @classmethod
    def local(cls) -> GossipConfig:
        """memberlist ``DefaultLocalConfig`` (loopback): faster, fewer indirect checks."""
        return cls(stream_timeout=1.0, indirect_checks=1, retransmit_mult=2, suspicion_mult=3,
                   push_pull_interval=15.0, probe_timeout=0.2, probe_interval=1.0, gossip_interval=0.1,
                   gossip_to_the_dead_time=15.0)


def suspicion_timeout(suspicion_mult: int, n: int, interval: float) -> float:
    """memberlist ``util.go: suspicionTimeout``: ``mult * max(1, log10(max(1, n))) * interval``,
    with the node scale truncated to thousandths as memberlist does (``Duration(nodeScale*1000)``)."""
    node_scale = max(1.0, math.log10(max(1.0, float(n))))
    return suspicion_mult * int(node_scale * 1000.0) * interval / 1000.0


def remaining_suspicion_time(n: int, k: int, elapsed: float, lo: float, hi: float) -> float:
    """memberlist ``suspicion.go: remainingSuspicionTime`` (may be negative: fire at once)."""
    frac = math.log(n + 1.0) / math.log(k + 1.0)
    raw = hi - frac * (hi - lo)
    timeout = max(lo, math.floor(1000.0 * raw) / 1000.0)
    return timeout - elapsed


def push_pull_scale(interval: float, n: int) -> float:
    """memberlist ``util.go: pushPullScale``: slow push/pull down logarithmically above 32 nodes."""
    if n <= PUSH_PULL_SCALE_THRESHOLD:
        return interval
    multiplier = math.ceil(math.log2(n) - math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1.0
    return interval * multiplier


@dataclass(frozen=True)
class Member:
    """An immutable view of one member, as reported in events and :meth:`SwimCore.members`."""

    name: str
    node_id: str
    addr: str
    port: int
    incarnation: int
    state: NodeStateKind
    meta: Mapping[str, str]
    state_change: float


class EventKind(enum.Enum):
    JOIN = "join"  # a member became alive (new, or back from dead/left)
    LEAVE = "leave"  # a member became dead or left (``member.state`` tells which)
    UPDATE = "update"  # an alive member changed address or meta
    CONFLICT = "conflict"  # an alive with a known name and another node id was refused


@dataclass(frozen=True)
class MemberEvent:
    kind: EventKind
    member: Member


@dataclass(frozen=True)
class StreamRequest:
    """A stream exchange the driver must carry: connect to ``addr``, send ``data`` as one frame,
    read one reply frame and hand it to :meth:`SwimCore.stream_response` with ``token``.

    ``kind`` is ``"push-pull"`` (state sync; ``join`` tells whether it is a join) or ``"ping"``
    (memberlist's TCP fallback probe, answered with an ack frame)."""

    token: int
    addr: Addr
    data: bytes
    join: bool
    kind: str = "push-pull"


class Delegate(Protocol):
    """The layer above (Serf).  Calls are synchronous and happen inside core calls."""

    def local_state(self, join: bool) -> bytes: ...

    def merge_remote_state(self, data: bytes, join: bool) -> None: ...

    def notify_user(self, payload: bytes) -> None: ...


@dataclass
class _Node:
    name: str
    node_id: str
    addr: str
    port: int
    meta: dict[str, str]
    incarnation: int
    state: NodeStateKind
    state_change: float

    def view(self) -> Member:
        return Member(self.name, self.node_id, self.addr, self.port, self.incarnation, self.state,
                      MappingProxyType(dict(self.meta)), self.state_change)


@dataclass
class _Probe:
    seq: int
    target: str
    start: float
    indirect_at: float
    deadline: float
    indirect_sent: bool = False
    expected_nacks: int = 0
    nacks: int = 0
    tcp_ok: bool = False


@dataclass
class _Relay:
    """An indirect ping we perform for ``origin``: forward the target's ack until ``deadline``;
    if none came by ``nack_at``, send a Nack (once)."""

    origin: Addr
    origin_seq: int
    nack: bool
    nack_at: float
    deadline: float


@dataclass
class _Suspicion:
    incarnation: int
    start: float
    k: int
    lo: float
    hi: float
    deadline: float
    confirmations: set[str] = field(default_factory=set)
    n: int = 0

    def confirm(self, source: str) -> bool:
        """memberlist ``suspicion.Confirm``: count each peer once, until ``k`` are reached."""
        if self.n >= self.k or source in self.confirmations:
            return False
        self.confirmations.add(source)
        self.n += 1
        self.deadline = self.start + remaining_suspicion_time(self.n, self.k, 0.0, self.lo, self.hi)
        return True


class SwimCore:
    """One member's SWIM/Lifeguard state machine.  See the module docstring for the rules.

    Invariants: the local member is always in the member map, alive (or left after
    :meth:`leave`); only this class raises the local incarnation; every outbound packet is at most
    ``config.packet_size`` bytes unless a single message is larger (then it is sent alone).
    """

    def __init__(self, *, name: str, node_id: str, addr: str, port: int, rng: Rng, now: float,
                 meta: Mapping[str, str] | None = None, config: GossipConfig | None = None,
                 keyring: Keyring | None = None, incarnation: int = 1,
                 delegate: Delegate | None = None) -> None:
        self.config = config or GossipConfig()
        self.name = name
        self.node_id = node_id
        self.keyring = keyring
        self.delegate = delegate
        self._rng = rng
        self._label = self.config.label.encode()
        self._nodes: dict[str, _Node] = {}
        self._probe_order: list[str] = []
        self._probe_index = 0
        self._seq = 0
        self._awareness = 0
        self._suspicions: dict[str, _Suspicion] = {}
        self._relays: dict[int, _Relay] = {}
        self._probe: _Probe | None = None
        self._leaving = False
        self._leave_bid: int | None = None
        self._queue = TransmitLimitedQueue(lambda: retransmit_limit(self.config.retransmit_mult,
                                                                     len(self._nodes)))
        self._outbox: list[tuple[Addr, bytes]] = []
        self._streams: list[StreamRequest] = []
        self._pending_streams: dict[int, StreamRequest] = {}
        self._stream_token = 0
        self._events: list[MemberEvent] = []
        self._stranger_syncs: dict[Addr, float] = {}
        self.counters: dict[str, int] = {
            "packets_in": 0, "packets_out": 0, "auth_failures": 0, "malformed": 0, "conflicts": 0,
            "refutes": 0, "suspects_raised": 0, "deaths_declared": 0, "push_pulls": 0,
            "push_pull_failures": 0, "ping_wrong_node": 0, "indirect_probes": 0, "relayed_acks": 0, "nacks_sent": 0,
            "stale_corrections": 0, "tcp_ping_rescues": 0,
        }
        meta_d = dict(meta or {})
        self._check_meta(meta_d)
        me = _Node(name, node_id, addr, port, meta_d, max(1, incarnation), NodeStateKind.ALIVE, now)
        self._nodes[name] = me
        self._probe_order.append(name)
        self._events.append(MemberEvent(EventKind.JOIN, me.view()))
        # Announce ourselves as soon as we know anyone (memberlist setAlive broadcasts too): the
        # joiner's own gossip doubles the sources of the epidemic started by the seed.
        self._broadcast_self_alive()
        cfg = self.config
        self._next_probe: float | None = now + rng.uniform(0, cfg.probe_interval)
        self._next_gossip = now + rng.uniform(0, cfg.gossip_interval)
        self._next_push_pull = now + cfg.push_pull_interval * (0.5 + rng.random())

    # ------------------------------------------------------------------ public views

    @property
    def incarnation(self) -> int:
        return self._nodes[self.name].incarnation

    @property
    def awareness(self) -> int:
        """Lifeguard health score: 0 is healthy, higher means this node is likely degraded."""
        return self._awareness

    @property
    def leaving(self) -> bool:
        return self._leaving

    def local_member(self) -> Member:
        return self._nodes[self.name].view()

    def members(self) -> list[Member]:
        """Every member known to the core (dead/left ones until they are pruned)."""
        return [n.view() for n in self._nodes.values()]

    def member(self, name: str) -> Member | None:
        n = self._nodes.get(name)
        return n.view() if n is not None else None

    def num_alive(self) -> int:
        return sum(1 for n in self._nodes.values() if n.state in (NodeStateKind.ALIVE, NodeStateKind.SUSPECT))

    def scale_timeout(self, timeout: float) -> float:
        """memberlist ``awareness.ScaleTimeout``: ``timeout * (score + 1)``."""
        return timeout * (self._awareness + 1)

    def leave_propagated(self) -> bool:
        """After :meth:`leave`: whether our ``left`` broadcast has been fully retransmitted (or
        there is nobody to tell)."""
        if self._leave_bid is None:
            return False
        if not any(n.state == NodeStateKind.ALIVE and n.name != self.name for n in self._nodes.values()):
            return True
        return not self._queue.pending(self._leave_bid)

    # ------------------------------------------------------------------ outputs

    def packets_to_send(self) -> list[tuple[Addr, bytes]]:
        out, self._outbox = self._outbox, []
        self.counters["packets_out"] += len(out)
        return out

    def streams_to_open(self) -> list[StreamRequest]:
        out, self._streams = self._streams, []
        return out

    def events(self) -> list[MemberEvent]:
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float:
        """The earliest time at which :meth:`handle_timeout` has work to do."""
        ds = [self._next_gossip]
        if not self._leaving:
            ds.append(self._next_push_pull)
            if self._next_probe is not None:
                ds.append(self._next_probe)
        if self._probe is not None:
            ds.append(self._probe.deadline)
            if not self._probe.indirect_sent:
                ds.append(self._probe.indirect_at)
        ds.extend(s.deadline for s in self._suspicions.values())
        ds.extend(r.nack_at if r.nack else r.deadline for r in self._relays.values())
        return min(ds)

    # ------------------------------------------------------------------ inputs

    def handle_timeout(self, now: float) -> None:
        """Run every timer that is due at ``now`` (calling it early is harmless)."""
        for seq, relay in list(self._relays.items()):
            if relay.nack and relay.nack_at <= now:
                relay.nack = False
                self.counters["nacks_sent"] += 1
                self._send(relay.origin, [Nack(relay.origin_seq)])
            if relay.deadline <= now:
                del self._relays[seq]
        p = self._probe
        if p is not None and not p.indirect_sent and p.indirect_at <= now:
            self._send_indirect_probes(p)
        if p is not None and p.deadline <= now:
            self._probe_failed(p, now)
        for name in [n for n, s in self._suspicions.items() if s.deadline <= now]:
            s = self._suspicions.pop(name)
            node = self._nodes.get(name)
            if node is not None and node.state == NodeStateKind.SUSPECT and node.incarnation == s.incarnation:
                log.info("gossip: marking %s as failed, suspect timeout reached (%d peer confirmations)",
                         name, s.n)
                self.counters["deaths_declared"] += 1
                self._on_dead(Dead(node.incarnation, name, self.name), now)
        if not self._leaving and self._next_probe is not None and self._next_probe <= now:
            self._start_probe(now)
        if self._next_gossip <= now:
            self._gossip(now)
            self._next_gossip = now + self.config.gossip_interval
        if not self._leaving and self._next_push_pull <= now:
            self._periodic_push_pull(now)
            self._next_push_pull = now + push_pull_scale(self.config.push_pull_interval, len(self._nodes))

    def receive_packet(self, data: bytes, addr: Addr, now: float) -> None:
        """A UDP payload from ``addr``.  Bad frames are dropped and counted, never raised."""
        self.counters["packets_in"] += 1
        try:
            msg = codec.decode(codec.open_frame(data, self.keyring, self._label))
            msgs = codec.decode_compound_parts(msg) if isinstance(msg, Compound) else [msg]
        except AuthError as e:
            self.counters["auth_failures"] += 1
            log.debug("gossip: dropped packet from %s:%d: %s", addr[0], addr[1], e)
            return
        except MalformedMessage as e:
            self.counters["malformed"] += 1
            log.debug("gossip: dropped malformed packet from %s:%d: %s", addr[0], addr[1], e)
            return
        for m in msgs:
            self._handle(m, addr, now)

    def receive_stream(self, data: bytes, addr: Addr, now: float) -> bytes | None:
        """A push/pull request frame from a stream; returns the reply frame (``None``: drop the
        connection).  The reply is our state *before* merging, as memberlist's ``handleConn``."""
        msg = self._open_stream_frame(data, addr)
        if isinstance(msg, Ping):
            # TCP fallback probe: answer only for our own name (a reused address must not
            # vouch for the member that used to live there).
            if msg.node and msg.node != self.name:
                self.counters["ping_wrong_node"] += 1
                return None
            return self._seal(Ack(msg.seq))
        if not isinstance(msg, PushPull):
            if msg is not None:
                self.counters["malformed"] += 1
            return None
        reply = self._seal(PushPull(msg.join, self._local_nodes(), self._local_user_state(msg.join)))
        self._merge(msg, now)
        return reply

    def stream_response(self, token: int, data: bytes | None, now: float) -> bool:
        """The reply to a :class:`StreamRequest` (``None`` if the connection failed).  Returns
        whether the exchange succeeded."""
        req = self._pending_streams.pop(token, None)
        if req is None:
            return False
        msg = self._open_stream_frame(data, req.addr) if data is not None else None
        if req.kind == "ping":
            if not isinstance(msg, Ack):
                return False
            p = self._probe
            if p is not None and p.seq == msg.seq:
                p.tcp_ok = True  # consulted only if no UDP ack arrives in the round (memberlist)
            return True
        if not isinstance(msg, PushPull):
            self.counters["push_pull_failures"] += 1
            return False
        self.counters["push_pulls"] += 1
        self._merge(msg, now)
        return True

    def join(self, addrs: list[Addr], now: float) -> list[int]:
        """Start a join push/pull with each address; returns the stream tokens (the driver tells
        :meth:`stream_response` how each went)."""
        return [self._open_stream(a, join=True) for a in addrs]

    def leave(self, now: float) -> None:
        """Announce a graceful leave: ``dead`` about ourselves, from ourselves (-> ``left``).

        Also sent at once to a few random live members; the driver may wait for
        :meth:`leave_propagated` before shutting down.  Probing and push/pull stop."""
        if self._leaving:
            return
        self._leaving = True
        me = self._nodes[self.name]
        msg = Dead(me.incarnation, self.name, self.name)
        self._leave_bid = self._queue.queue(codec.encode(msg), key=self.name)
        me.state = NodeStateKind.LEFT
        me.state_change = now
        self._suspicions.clear()
        self._probe = None
        self._events.append(MemberEvent(EventKind.LEAVE, me.view()))
        for n in self._k_random(2 * self.config.gossip_nodes, lambda x: x.state == NodeStateKind.ALIVE):
            self._send((n.addr, n.port), [msg])

    def set_meta(self, meta: Mapping[str, str], now: float) -> None:
        """Change our tags: bump the incarnation and broadcast ``alive`` (memberlist ``UpdateNode``)."""
        meta_d = dict(meta)
        self._check_meta(meta_d)
        me = self._nodes[self.name]
        me.meta = meta_d
        me.incarnation += 1
        self._broadcast_self_alive()
        self._events.append(MemberEvent(EventKind.UPDATE, me.view()))

    def queue_user_broadcast(self, payload: bytes, key: str | None = None) -> int:
        """Piggyback an upper-layer message (wrapped in :class:`User`) on gossip."""
        return self._queue.queue(codec.encode(User(payload)), key=None if key is None else "u:" + key)

    def broadcast_pending(self, bid: int) -> bool:
        return self._queue.pending(bid)

    def send_user(self, addr: Addr, payload: bytes) -> None:
        """Send an upper-layer message directly to one address (best effort)."""
        self._send(addr, [User(payload)])

    # ------------------------------------------------------------------ message handling

    def _handle(self, m: Message, addr: Addr, now: float) -> None:
        if isinstance(m, Ping):
            if m.node and m.node != self.name:
                # A different process on a reused address must not answer for the old member.
                self.counters["ping_wrong_node"] += 1
                return
            self._send(addr, [Ack(m.seq)])
            if m.source_node and m.source_node not in self._nodes and not self._leaving:
                self._sync_with_stranger(addr, now)
        elif isinstance(m, IndirectPing):
            seq = self._next_seq()
            # The nack must reach the prober before its round ends: the prober sends indirect
            # pings one probe timeout into a round of twice that, so a relay waiting a full
            # probe timeout would always nack too late.  Lifeguard (§V) uses 80%.
            timeout = self.config.probe_timeout
            self._relays[seq] = _Relay(addr, m.seq, m.nack, now + NACK_TIMEOUT_FRACTION * timeout, now + timeout)
            self._send((m.addr, m.port), [Ping(seq, m.target, self.name)])
        elif isinstance(m, Ack):
            self._on_ack(m.seq, now)
        elif isinstance(m, Nack):
            if self._probe is not None and self._probe.seq == m.seq:
                self._probe.nacks += 1
        elif isinstance(m, Alive):
            self._on_alive(m, now)
        elif isinstance(m, (Suspect, Dead)):
            known = self._nodes.get(m.node)
            if (known is not None and known.state == NodeStateKind.ALIVE and m.incarnation < known.incarnation
                    and not self._leaving):
                # Stale news: its sender missed the member's refutation (an epidemic reaches
                # everyone only with high probability) and would let an already refuted
                # suspicion time out.  Answer it directly with the newer alive we hold.
                # (Muster addition; memberlist silently ignores old incarnations.)
                self.counters["stale_corrections"] += 1
                self._send(addr, [Alive(known.incarnation, known.name, known.node_id, known.addr,
                                        known.port, dict(known.meta))])
            elif isinstance(m, Suspect):
                self._on_suspect(m, now)
            else:
                self._on_dead(m, now)
        elif isinstance(m, User):
            if self.delegate is not None:
                self.delegate.notify_user(m.payload)
        else:  # PushPull over UDP is not part of the protocol
            self.counters["malformed"] += 1

    def _on_ack(self, seq: int, now: float) -> None:
        relay = self._relays.pop(seq, None)
        if relay is not None:
            self.counters["relayed_acks"] += 1
            self._send(relay.origin, [Ack(relay.origin_seq)])
            return
        p = self._probe
        if p is None or p.seq != seq:
            return
        self._probe = None
        self._apply_awareness(-1)
        self._next_probe = max(now, p.start + self.config.probe_interval)

    def _on_alive(self, a: Alive, now: float) -> None:
        node = self._nodes.get(a.node)
        if a.node == self.name:
            self._on_alive_about_self(a)
            return
        if node is None:
            node = _Node(a.node, a.node_id, a.addr, a.port, dict(a.meta), a.incarnation,
                         NodeStateKind.ALIVE, now)
            self._nodes[a.node] = node
            # Insert at a random offset so that new members do not all get probed last
            # (memberlist aliveNode: "important to ensure the failure detection bound is low").
            off = self._rng.randrange(len(self._probe_order) + 1)
            self._probe_order.insert(off, a.node)
            if off <= self._probe_index:
                self._probe_index += 1
            self._queue.queue(codec.encode(a), key=a.node)
            self._events.append(MemberEvent(EventKind.JOIN, node.view()))
            return
        gone = node.state in (NodeStateKind.DEAD, NodeStateKind.LEFT)
        if a.node_id != node.node_id:
            if not gone:
                self.counters["conflicts"] += 1
                log.warning(
                    "gossip: refusing member %r with node id %s at %s:%d: the name belongs to the live "
                    "member with node id %s at %s:%d (duplicate node name?)",
                    a.node, a.node_id, a.addr, a.port, node.node_id, node.addr, node.port)
                self._events.append(MemberEvent(EventKind.CONFLICT, Member(
                    a.node, a.node_id, a.addr, a.port, a.incarnation, NodeStateKind.ALIVE,
                    MappingProxyType(dict(a.meta)), now)))
                return
            log.info("gossip: member %r replaced: node id %s -> %s", a.node, node.node_id, a.node_id)
        elif a.incarnation <= node.incarnation:
            moved = (a.addr, a.port) != (node.addr, node.port)
            if not (gone and moved):
                return  # stale news; a restarted member at a new address is the exception
        self._accept_alive(node, a, now)

    def _accept_alive(self, node: _Node, a: Alive, now: float) -> None:
        self._suspicions.pop(node.name, None)
        old_state = node.state
        changed = (node.addr, node.port, node.meta, node.node_id) != (a.addr, a.port, dict(a.meta), a.node_id)
        node.node_id, node.addr, node.port = a.node_id, a.addr, a.port
        node.meta = dict(a.meta)
        node.incarnation = a.incarnation
        if old_state != NodeStateKind.ALIVE:
            node.state = NodeStateKind.ALIVE
            node.state_change = now
        self._queue.queue(codec.encode(a), key=a.node)
        if old_state in (NodeStateKind.DEAD, NodeStateKind.LEFT):
            self._events.append(MemberEvent(EventKind.JOIN, node.view()))
        elif changed:
            self._events.append(MemberEvent(EventKind.UPDATE, node.view()))

    def _on_alive_about_self(self, a: Alive) -> None:
        me = self._nodes[self.name]
        if self._leaving or a.incarnation < me.incarnation:
            return
        if a.node_id != self.node_id:
            self.counters["conflicts"] += 1
            log.warning("gossip: another node (id %s at %s:%d) claims our name %r; this node has id %s",
                        a.node_id, a.addr, a.port, self.name, self.node_id)
            return
        same = (a.addr, a.port, dict(a.meta)) == (me.addr, me.port, me.meta)
        if a.incarnation == me.incarnation and same:
            return
        # Someone holds an older picture of us (a previous life at another address, or old
        # meta) at an incarnation >= ours: outbid it (memberlist aliveNode -> refute).
        self._refute(a.incarnation)

    def _on_suspect(self, s: Suspect, now: float) -> None:
        node = self._nodes.get(s.node)
        if node is None or s.incarnation < node.incarnation:
            return
        susp = self._suspicions.get(s.node)
        if susp is not None and node.state == NodeStateKind.SUSPECT:
            if s.incarnation == susp.incarnation:
                if susp.confirm(s.source):
                    self._queue.queue(codec.encode(s), key=s.node)
                return
            # A higher incarnation proves the member refuted the suspicion we hold (we missed
            # its alive): this is a *new* suspicion and gets a fresh timer.  memberlist would
            # count it as a confirmation of the old one and could declare a member dead at an
            # incarnation it had already refuted.
            del self._suspicions[s.node]
            node.state = NodeStateKind.ALIVE
        if node.state != NodeStateKind.ALIVE:
            return
        if s.node == self.name:
            if not self._leaving:
                self._refute(s.incarnation)
            return
        self._queue.queue(codec.encode(s), key=s.node)
        node.incarnation = s.incarnation
        node.state = NodeStateKind.SUSPECT
        node.state_change = now
        cfg = self.config
        n = len(self._nodes)
        # "we set up k such that we hit the nominal timeout two probe intervals short of what we
        # expect given the suspicion multiplier" (memberlist suspectNode); no confirmations are
        # possible when fewer than k other members exist.
        k = cfg.suspicion_mult - 2
        if n - 2 < k:
            k = 0
        lo = suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval)
        hi = cfg.suspicion_max_timeout_mult * lo
        self._suspicions[s.node] = _Suspicion(s.incarnation, now, k, lo, hi, now + (hi if k >= 1 else lo),
                                              {s.source})

    def _on_dead(self, d: Dead, now: float) -> None:
        node = self._nodes.get(d.node)
        if node is None or d.incarnation < node.incarnation:
            return
        if node.state in (NodeStateKind.DEAD, NodeStateKind.LEFT):
            return
        if d.node == self.name:
            if not self._leaving:
                self._refute(d.incarnation)
            return
        self._suspicions.pop(d.node, None)
        self._queue.queue(codec.encode(d), key=d.node)
        node.incarnation = d.incarnation
        node.state = NodeStateKind.LEFT if d.source == d.node else NodeStateKind.DEAD
        node.state_change = now
        self._events.append(MemberEvent(EventKind.LEAVE, node.view()))

    def _refute(self, accused_incarnation: int) -> None:
        """Outbid an accusation with a higher incarnation (memberlist ``refute``); costs health."""
        me = self._nodes[self.name]
        me.incarnation = max(me.incarnation, accused_incarnation) + 1
        self.counters["refutes"] += 1
        self._apply_awareness(1)
        self._broadcast_self_alive()

    def _broadcast_self_alive(self) -> None:
        me = self._nodes[self.name]
        self._queue.queue(codec.encode(Alive(me.incarnation, me.name, me.node_id, me.addr, me.port,
                                             dict(me.meta))), key=me.name)

    # ------------------------------------------------------------------ probing

    def _start_probe(self, now: float) -> None:
        target = self._next_probe_target(now)
        cfg = self.config
        if target is None:
            self._next_probe = now + cfg.probe_interval
            return
        seq = self._next_seq()
        self._probe = _Probe(seq, target.name, now, now + self.scale_timeout(cfg.probe_timeout),
                             now + self.scale_timeout(cfg.probe_interval))
        self._next_probe = None
        msgs: list[Message] = [Ping(seq, target.name, self.name)]
        if target.state == NodeStateKind.SUSPECT:
            # Lifeguard's buddy system: tell the suspect directly so it can refute at once.
            msgs.append(Suspect(target.incarnation, target.name, self.name))
        self._send((target.addr, target.port), msgs)

    def _next_probe_target(self, now: float) -> _Node | None:
        """Round-robin over a shuffled list; after each full pass, prune long-dead members and
        reshuffle (memberlist ``probe`` / ``resetNodes``)."""
        for _ in range(2 * len(self._probe_order) + 1):
            if self._probe_index >= len(self._probe_order):
                self._reset_nodes(now)
                self._probe_index = 0
                if len(self._probe_order) <= 1:
                    return None
            name = self._probe_order[self._probe_index]
            self._probe_index += 1
            node = self._nodes.get(name)
            if node is None or name == self.name:
                continue
            if node.state in (NodeStateKind.DEAD, NodeStateKind.LEFT):
                continue
            return node
        return None

    def _reset_nodes(self, now: float) -> None:
        keep: list[str] = []
        for name in self._probe_order:
            node = self._nodes.get(name)
            if node is None:
                continue
            if (name != self.name and node.state in (NodeStateKind.DEAD, NodeStateKind.LEFT)
                    and now - node.state_change > self.config.gossip_to_the_dead_time):
                del self._nodes[name]
                continue
            keep.append(name)
        self._rng.shuffle(keep)
        self._probe_order = keep

    def _send_indirect_probes(self, p: _Probe) -> None:
        p.indirect_sent = True
        target = self._nodes.get(p.target)
        if target is None:
            return
        peers = self._k_random(self.config.indirect_checks,
                               lambda n: n.state == NodeStateKind.ALIVE and n.name != p.target)
        p.expected_nacks = len(peers)
        self.counters["indirect_probes"] += len(peers)
        for peer in peers:
            self._send((peer.addr, peer.port),
                       [IndirectPing(p.seq, target.name, target.addr, target.port, True, self.name)])
        # memberlist's TCP fallback ping, pipelined with the indirect probes: it rescues a member
        # whose UDP is filtered while TCP works (and says so in the log).
        if self.config.disable_tcp_pings:
            return
        self._stream_token += 1
        req = StreamRequest(self._stream_token, (target.addr, target.port),
                            self._seal(Ping(p.seq, target.name, self.name)), False, "ping")
        self._streams.append(req)
        self._pending_streams[req.token] = req

    def _probe_failed(self, p: _Probe, now: float) -> None:
        self._probe = None
        self._next_probe = now
        if p.tcp_ok:
            log.warning("gossip: was able to connect to %s over TCP but UDP probes failed, network may "
                        "be misconfigured", p.target)
            self.counters["tcp_ping_rescues"] += 1
            self._apply_awareness(-1)
            return
        # Lifeguard: missing nacks mean *we* may be the problem (memberlist probeNode).
        if p.expected_nacks > 0:
            self._apply_awareness(max(0, p.expected_nacks - p.nacks))
        else:
            self._apply_awareness(1)
        node = self._nodes.get(p.target)
        if node is None or node.state not in (NodeStateKind.ALIVE, NodeStateKind.SUSPECT):
            return
        log.info("gossip: suspect %s has failed, no acks received", node.name)
        self.counters["suspects_raised"] += 1
        self._on_suspect(Suspect(node.incarnation, node.name, self.name), now)

    def _apply_awareness(self, delta: int) -> None:
        self._awareness = min(max(0, self._awareness + delta), self.config.awareness_max_multiplier - 1)

    # ------------------------------------------------------------------ gossip and push/pull

    def _gossip(self, now: float) -> None:
        dead_window = self.config.gossip_to_the_dead_time

        def eligible(n: _Node) -> bool:
            if n.state in (NodeStateKind.ALIVE, NodeStateKind.SUSPECT):
                return True
            return n.state == NodeStateKind.DEAD and now - n.state_change <= dead_window

        if not len(self._queue):
            return
        for n in self._k_random(self.config.gossip_nodes, eligible):
            if not len(self._queue):
                return
            self._send((n.addr, n.port), [], require_payload=True)

    def _periodic_push_pull(self, now: float) -> None:
        peers = self._k_random(1, lambda n: n.state == NodeStateKind.ALIVE)
        if peers:
            self._open_stream((peers[0].addr, peers[0].port), join=False)

    def _sync_with_stranger(self, addr: Addr, now: float) -> None:
        """A member we have never heard of probes us: its ``alive`` broadcast missed us (an
        epidemic reaches everyone only with high probability) or we pruned it.  Rather than wait
        up to a push/pull interval, exchange state with it now; at most once per address per
        ``STRANGER_SYNC_INTERVAL`` so a flood of pings cannot turn into a flood of streams.
        (A Muster addition; memberlist waits for the periodic push/pull.)"""
        last = self._stranger_syncs.get(addr)
        if last is not None and now - last < STRANGER_SYNC_INTERVAL:
            return
        if len(self._stranger_syncs) > 1024:
            self._stranger_syncs = {a: t for a, t in self._stranger_syncs.items()
                                    if now - t < STRANGER_SYNC_INTERVAL}
        self._stranger_syncs[addr] = now
        self._open_stream(addr, join=False)

    def _open_stream(self, addr: Addr, join: bool) -> int:
        self._stream_token += 1
        data = self._seal(PushPull(join, self._local_nodes(), self._local_user_state(join)))
        req = StreamRequest(self._stream_token, addr, data, join)
        self._streams.append(req)
        self._pending_streams[req.token] = req
        return req.token

    def _local_nodes(self) -> list[PushNodeState]:
        return [PushNodeState(n.name, n.node_id, n.addr, n.port, dict(n.meta), n.incarnation, n.state)
                for n in self._nodes.values()]

    def _local_user_state(self, join: bool) -> bytes:
        return self.delegate.local_state(join) if self.delegate is not None else b""

    def _open_stream_frame(self, data: bytes, addr: Addr) -> Message | None:
        try:
            return codec.decode(codec.open_frame(data, self.keyring, self._label))
        except AuthError as e:
            self.counters["auth_failures"] += 1
            log.debug("gossip: dropped stream from %s:%d: %s", addr[0], addr[1], e)
        except MalformedMessage as e:
            self.counters["malformed"] += 1
            log.debug("gossip: dropped malformed stream from %s:%d: %s", addr[0], addr[1], e)
        return None

    def _merge(self, pp: PushPull, now: float) -> None:
        """memberlist ``mergeState``: alive as alive, left as left, dead/suspect as suspect."""
        for r in pp.nodes:
            if r.state == NodeStateKind.ALIVE:
                self._on_alive(Alive(r.incarnation, r.name, r.node_id, r.addr, r.port, r.meta), now)
            elif r.state == NodeStateKind.LEFT:
                self._on_dead(Dead(r.incarnation, r.name, r.name), now)
            else:
                self._on_suspect(Suspect(r.incarnation, r.name, self.name), now)
        if self.delegate is not None and pp.user_state:
            self.delegate.merge_remote_state(pp.user_state, pp.join)

    # ------------------------------------------------------------------ helpers

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _k_random(self, k: int, pred: Callable[[_Node], bool]) -> list[_Node]:
        """Up to ``k`` distinct random members other than us that satisfy ``pred``.

        Like memberlist ``kRandomNodes``, first up to ``3 * n`` random draws, so the cost does not
        grow with the cluster when ``k`` is small.  Unlike it, if that found fewer than ``k``, the
        remaining qualifying members are scanned: in a three-node cluster a random miss would
        otherwise leave a probe without its one possible relay (a needless suspicion)."""
        names = self._probe_order
        n = len(names)
        out: list[_Node] = []
        picked: set[str] = set()
        for _ in range(3 * n):
            if len(out) >= k:
                break
            name = names[self._rng.randrange(n)]
            if name == self.name or name in picked:
                continue
            node = self._nodes.get(name)
            if node is None or not pred(node):
                continue
            picked.add(name)
            out.append(node)
        if len(out) < k:
            rest = [self._nodes[x] for x in names
                    if x != self.name and x not in picked and x in self._nodes and pred(self._nodes[x])]
            while rest and len(out) < k:
                i = self._rng.randrange(len(rest))
                rest[i], rest[-1] = rest[-1], rest[i]
                out.append(rest.pop())
        return out

    def _seal(self, msg: Message) -> bytes:
        return codec.seal(codec.encode(msg), self.keyring, self._label)

    def _send(self, addr: Addr, msgs: list[Message], require_payload: bool = False) -> None:
        """Send ``msgs`` to ``addr`` with as many piggybacked broadcasts as fit in a packet."""
        parts = [codec.encode(m) for m in msgs]
        budget = (self.config.packet_size - codec.envelope_overhead(self.keyring)
                  - codec.compound_overhead(len(parts)) - sum(len(p) + 3 for p in parts))
        explicit = set(parts)
        parts.extend(b for b in self._queue.get(3, budget) if b not in explicit)
        if not parts or (require_payload and len(parts) == len(msgs)):
            return
        body = parts[0] if len(parts) == 1 else codec.encode(Compound(parts))
        self._outbox.append((addr, codec.seal(body, self.keyring, self._label)))

    @staticmethod
    def _check_meta(meta: dict[str, str]) -> None:
        size = len(msgspec.msgpack.encode(meta))
        if size > META_MAX_SIZE:
            raise ValueError(f"node meta (tags) is {size} bytes, more than the {META_MAX_SIZE}-byte limit")
