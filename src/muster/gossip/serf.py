"""Serf semantics over the SWIM core (after hashicorp/serf ``serf.go``, ``lamport.go``, ``messages.go``).

:class:`Serf` is still sans-IO: it wraps a :class:`~.core.SwimCore` (as its ``Delegate``) and
exposes the same driver API (``receive_packet``, ``receive_stream``, ``stream_response``,
``handle_timeout``, ``next_deadline``, ``packets_to_send``, ``streams_to_open``) plus
:meth:`Serf.events`, which yields :class:`MemberEvent` and :class:`UserEvent` objects.

What Serf adds to the failure detector:

* **Member status** as Consul reports it (``Member.Status``): 1 alive, 2 leaving, 3 left,
  4 failed.  A graceful leave (a leave intent, then the node's own ``dead`` -> core ``left``) ends
  in ``left``; a node the failure detector declares dead without an intent is ``failed``.
* **Lamport-clocked intents**: join and leave intents carry the member's status Lamport time,
  so an old leave never overrides a newer join (a node that left and came back), and
  ``force-leave`` of a failed member (a leave intent about it) turns it into ``left``.  Intents
  about members we do not know yet are remembered for ``recent_intent_timeout``
  (serf ``recentIntents``).  A leave intent about ourselves while we are alive is refuted with a
  fresh join intent.
* **Tags**: carried as the core's member meta; :meth:`Serf.set_tags` bumps the incarnation.
* **User events**: ``(ltime, name, payload)`` on a separate Lamport clock, piggybacked on gossip,
  deduplicated by (ltime, name, payload) in a ring buffer of ``event_buffer_size`` slots indexed
  by ``ltime % size``; events older than the buffer, or older than the cluster's event clock when
  we joined with ``ignore_old`` (Consul joins this way), are dropped.  Our own events are
  delivered to us as well.
* **Push/pull state**: Lamport clocks, every member's status time, the left members and the
  event buffer, so a partition heals intents and recent events, not only liveness.
* **Reaping**: failed members are removed after ``reconnect_timeout`` (Consul's
  ``reconnect_timeout``, 72 h) and left members after ``tombstone_timeout`` (serf's 24 h), each
  with a ``member-reap`` event.  Until then a failed member is retried every
  ``reconnect_interval`` by a join push/pull to its last address (serf ``reconnect``), which is
  what heals a partition that outlived the suspicion timeout.
* **Queries** (serf ``query.go``, minus relays and filters): a query is gossiped like an event
  (deduplicated by (ltime, id) on its own Lamport clock) and answered directly by UDP to its
  origin until its deadline (default ``16 * GossipInterval * ceil(log10(n+1))``).  The internal
  keyring queries (``_serf_install-key``, ``_serf_use-key``, ``_serf_remove-key``,
  ``_serf_list-keys``) give ``muster keyring`` / ``/v1/operator/keyring`` their cluster-wide view;
  they travel inside the encrypted gossip, and are refused when encryption is off.
* **Identity**: a member with a known name and another node id is accepted only as a replacement
  of a failed/left member (the core refuses a live duplicate and logs it; see :mod:`.core`).
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import msgspec

from ..coordinate import Coordinate, CoordinateClient
from ..runtime import Rng
from . import codec
from .codec import NodeStateKind
from .core import EventKind, GossipConfig, StreamRequest, SwimCore
from .core import MemberEvent as CoreEvent
from .keyring import Keyring, KeyringError, decode_key, encode_key

__all__ = [
    "KeyringResponse",
    "LamportClock",
    "MemberEvent",
    "QueryEvent",
    "MemberStatus",
    "Serf",
    "SerfConfig",
    "SerfEvent",
    "SerfEventType",
    "SerfMember",
    "UserEvent",
]

log = logging.getLogger("muster.gossip.serf")

Addr = tuple[str, int]


class LamportClock:
    """serf ``lamport.go``: ``time()`` is the current value; ``increment()`` returns the new
    value; ``witness(v)`` moves the clock past ``v`` so the next local event orders after it."""

    def __init__(self, start: int = 0) -> None:
        self._t = start

    def time(self) -> int:
        return self._t

    def increment(self) -> int:
        self._t += 1
        return self._t

    def witness(self, v: int) -> None:
        if v >= self._t:
            self._t = v + 1


class MemberStatus(enum.IntEnum):
    """Consul's ``Member.Status`` integers (serf ``MemberStatus``)."""

    NONE = 0
    ALIVE = 1
    LEAVING = 2
    LEFT = 3
    FAILED = 4


@dataclass(frozen=True)
class SerfConfig:
    """Serf-level timers (hashicorp/serf ``config.go: DefaultConfig``, Consul overrides noted)."""

    reconnect_timeout: float = 72 * 3600.0  # Consul's reconnect_timeout default (serf's own is 24 h)
    tombstone_timeout: float = 24 * 3600.0  # serf TombstoneTimeout
    reap_interval: float = 15.0  # serf ReapInterval
    reconnect_interval: float = 30.0  # serf ReconnectInterval
    recent_intent_timeout: float = 300.0  # serf RecentIntentTimeout (5 min)
    event_buffer_size: int = 512  # serf EventBuffer
    user_event_size_limit: int = 512  # serf UserEventSizeLimit
    broadcast_timeout: float = 5.0  # serf BroadcastTimeout (how long leave waits for propagation)
    disable_coordinates: bool = False  # serf DisableCoordinates (Consul disable_coordinates)


@dataclass(frozen=True)
class SerfMember:
    """One member as the agent reports it (``/v1/agent/members``)."""

    name: str
    node_id: str
    addr: str
    port: int
    tags: Mapping[str, str]
    status: MemberStatus

    def to_api(self) -> dict[str, Any]:
        """Consul's ``Member`` JSON object (docs/compat/agent.md#members)."""
        return {
            "Name": self.name, "Addr": self.addr, "Port": self.port, "Tags": dict(self.tags),
            "Status": int(self.status), "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
            "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4,
        }


class SerfEventType(enum.Enum):
    MEMBER_JOIN = "member-join"
    MEMBER_LEAVE = "member-leave"
    MEMBER_FAILED = "member-failed"
    MEMBER_UPDATE = "member-update"
    MEMBER_REAP = "member-reap"
    USER = "user"
    QUERY = "query"


@dataclass(frozen=True)
class MemberEvent:
    type: SerfEventType
    member: SerfMember


@dataclass(frozen=True)
class UserEvent:
    ltime: int
    name: str
    payload: bytes
    coalesce: bool = True
    type: SerfEventType = SerfEventType.USER


@dataclass(frozen=True)
class QueryEvent:
    """A query from another member (or ourselves); answer with :meth:`Serf.respond`."""

    ltime: int
    id: int
    name: str
    payload: bytes
    addr: tuple[str, int]
    deadline: float
    type: SerfEventType = SerfEventType.QUERY


@dataclass(frozen=True)
class KeyringResponse:
    """The cluster-wide result of a keyring operation (what ``/v1/operator/keyring`` reports)."""

    num_nodes: int
    num_resp: int
    num_err: int
    keys: dict[str, int]
    primary_keys: dict[str, int]
    messages: dict[str, str]


SerfEvent = MemberEvent | UserEvent | QueryEvent

#: Names of the internal keyring queries (serf ``internal_query.go``).
KEYRING_QUERIES = {"install": "_serf_install-key", "use": "_serf_use-key", "remove": "_serf_remove-key",
                   "list": "_serf_list-keys"}
#: serf ``QueryTimeoutMult``: default query timeout = mult * GossipInterval * ceil(log10(n+1)).
QUERY_TIMEOUT_MULT = 16


# --- Serf's own messages, carried inside the core's User message -------------------------------

class _JoinIntent(msgspec.Struct, tag=1, array_like=True, frozen=True):
    ltime: int
    node: str


class _LeaveIntent(msgspec.Struct, tag=2, array_like=True, frozen=True):
    ltime: int
    node: str
    prune: bool = False


class _UserEventMsg(msgspec.Struct, tag=3, array_like=True, frozen=True):
    ltime: int
    name: str
    payload: bytes
    cc: bool = True


class _BufferedEvents(msgspec.Struct, array_like=True, frozen=True):
    ltime: int
    events: list[tuple[str, bytes]]


class _PushPull(msgspec.Struct, tag=4, array_like=True, frozen=True):
    ltime: int
    status_ltimes: dict[str, int]
    left_members: list[str]
    event_ltime: int
    events: list[_BufferedEvents]


class _Query(msgspec.Struct, tag=5, array_like=True, frozen=True):
    """serf ``messageQuery``: answered directly (UDP) to ``addr:port`` until ``timeout`` passes."""

    ltime: int
    id: int
    name: str
    payload: bytes
    addr: str
    port: int
    timeout: float


class _QueryResponse(msgspec.Struct, tag=6, array_like=True, frozen=True):
    ltime: int
    id: int
    source: str
    payload: bytes


class _KeyResponse(msgspec.Struct, frozen=True):
    """The answer to an internal keyring query (serf ``nodeKeyResponse``)."""

    ok: bool
    error: str = ""
    keys: list[str] = []
    primary: str = ""


_SerfMsg = _JoinIntent | _LeaveIntent | _UserEventMsg | _PushPull | _Query | _QueryResponse
_enc = msgspec.msgpack.Encoder()
#: First byte of an ack payload carrying a coordinate (serf ``PingVersion``).
_PING_VERSION = 1
_dec = msgspec.msgpack.Decoder(_SerfMsg)  # type: ignore[arg-type]


@dataclass
class _Member:
    name: str
    node_id: str
    addr: str
    port: int
    tags: dict[str, str]
    status: MemberStatus
    status_ltime: int = 0
    leave_time: float = 0.0

    def view(self) -> SerfMember:
        return SerfMember(self.name, self.node_id, self.addr, self.port,
                          MappingProxyType(dict(self.tags)), self.status)


@dataclass
class _PendingQuery:
    deadline: float
    responses: dict[str, bytes]


@dataclass
class _Intent:
    ltime: int
    kind: str  # "join" | "leave"
    at: float


class Serf:
    """Serf for one pool.  See the module docstring.  Not thread-safe; one driver calls it."""

    def __init__(self, *, name: str, node_id: str, addr: str, port: int, rng: Rng, now: float,
                 tags: Mapping[str, str] | None = None, config: SerfConfig | None = None,
                 gossip: GossipConfig | None = None, keyring: Keyring | None = None,
                 incarnation: int = 1) -> None:
        self.config = config or SerfConfig()
        g = gossip or GossipConfig()
        # A broadcast larger than a packet can never be piggybacked: it would sit in the queue
        # forever.  Leave room for the envelope, the compound header and the message fields.
        room = g.packet_size - codec.envelope_overhead(keyring) - codec.compound_overhead(1) - 64
        if self.config.user_event_size_limit > room:
            raise ValueError(f"user_event_size_limit {self.config.user_event_size_limit} does not fit a "
                             f"{g.packet_size}-byte gossip packet (at most {room})")
        self.name = name
        self._rng = rng
        self._now = now
        self.clock = LamportClock()
        self.event_clock = LamportClock()
        self.query_clock = LamportClock()
        self._query_seen: dict[int, tuple[int, set[int]]] = {}
        self._pending_queries: dict[tuple[int, int], _PendingQuery] = {}
        self._event_min_time = 0
        self._event_buffer: list[_BufferedEvents | None] = [None] * self.config.event_buffer_size
        self._members: dict[str, _Member] = {}
        self._intents: dict[str, _Intent] = {}
        self._events: list[SerfEvent] = []
        self._ignore_old_tokens: set[int] = set()
        self._merging_ignore_old = False
        self._leaving = False
        self._next_reap = now + self.config.reap_interval
        self._next_reconnect = now + self.config.reconnect_interval
        self.counters: dict[str, int] = {"events_in": 0, "events_dup": 0, "events_old": 0, "reaped": 0,
                                         "queries_in": 0, "query_responses": 0}
        #: Our Vivaldi coordinate, moved by every direct probe round trip (serf ``coordClient``),
        #: and the last coordinate each peer sent in its acks (serf ``coordCache``).
        self.coord_client: CoordinateClient | None = (
            None if self.config.disable_coordinates else CoordinateClient(rng=rng))
        self._coord_cache: dict[str, Coordinate] = {}
        self.core = SwimCore(name=name, node_id=node_id, addr=addr, port=port, rng=rng, now=now,
                             meta=tags, config=gossip, keyring=keyring, incarnation=incarnation,
                             delegate=self, ping_delegate=None if self.coord_client is None else self)
        self._process_core_events(now)
        # Announce ourselves with a fresh status time so that a leave intent from a previous life
        # does not win over this join (serf Create -> broadcastJoin).
        ltime = self.clock.increment()
        self._members[name].status_ltime = ltime
        self._broadcast(_JoinIntent(ltime, name), key="intent:" + name)

    # ------------------------------------------------------------------ driver API

    def receive_packet(self, data: bytes, addr: Addr, now: float) -> None:
        self._now = now
        self.core.receive_packet(data, addr, now)
        self._process_core_events(now)

    def receive_stream(self, data: bytes, addr: Addr, now: float) -> bytes | None:
        self._now = now
        reply = self.core.receive_stream(data, addr, now)
        self._process_core_events(now)
        return reply

    def stream_response(self, token: int, data: bytes | None, now: float) -> bool:
        self._now = now
        self._merging_ignore_old = token in self._ignore_old_tokens
        self._ignore_old_tokens.discard(token)
        try:
            ok = self.core.stream_response(token, data, now)
        finally:
            self._merging_ignore_old = False
        self._process_core_events(now)
        return ok

    def handle_timeout(self, now: float) -> None:
        self._now = now
        self.core.handle_timeout(now)
        self._process_core_events(now)
        if now >= self._next_reap:
            self._reap(now)
            self._next_reap = now + self.config.reap_interval
        if now >= self._next_reconnect:
            self._reconnect(now)
            self._next_reconnect = now + self.config.reconnect_interval

    def next_deadline(self) -> float:
        return min(self.core.next_deadline(), self._next_reap, self._next_reconnect)

    def packets_to_send(self) -> list[tuple[Addr, bytes]]:
        return self.core.packets_to_send()

    def streams_to_open(self) -> list[StreamRequest]:
        return self.core.streams_to_open()

    def events(self) -> list[SerfEvent]:
        out, self._events = self._events, []
        return out

    # ------------------------------------------------------------------ operations

    def join(self, addrs: list[Addr], now: float, ignore_old: bool = True) -> list[int]:
        """Push/pull with each seed address; with ``ignore_old`` (Consul's choice) user events
        that happened before the join are not replayed."""
        self._now = now
        tokens = self.core.join(addrs, now)
        if ignore_old:
            self._ignore_old_tokens.update(tokens)
        return tokens

    def leave(self, now: float) -> None:
        """Graceful leave: a leave intent (we become ``leaving``), then the core's ``left``.  The
        driver should wait for :meth:`leave_propagated` (at most ``broadcast_timeout``)."""
        if self._leaving:
            return
        self._now = now
        self._leaving = True
        me = self._members[self.name]
        me.status = MemberStatus.LEAVING
        ltime = self.clock.increment()
        me.status_ltime = ltime
        self._broadcast(_LeaveIntent(ltime, self.name), key="intent:" + self.name)
        self.core.leave(now)
        self._process_core_events(now)

    def leave_propagated(self) -> bool:
        return self.core.leave_propagated()

    def force_leave(self, name: str, now: float, prune: bool = False) -> bool:
        """Consul ``force-leave``: a failed member becomes ``left`` (``prune`` also forgets it).
        Returns False if the member is unknown (Consul's agent checks membership first)."""
        self._now = now
        m = self._members.get(name)
        if m is None:
            return False
        if name == self.name:
            # A leave intent about ourselves while alive is refuted (serf re-announces its join),
            # so forcing ourselves out is accepted and changes nothing.
            return True
        msg = _LeaveIntent(self.clock.increment(), name, prune)
        if self._handle_leave_intent(msg, now):
            self._broadcast(msg, key="intent:" + name)
        return True

    def user_event(self, name: str, payload: bytes, now: float, coalesce: bool = True) -> int:
        """Fire a user event (``/v1/event/fire``); returns its Lamport time.  Delivered locally too."""
        self._now = now
        size = len(name) + len(payload)
        if size > self.config.user_event_size_limit:
            raise ValueError(f"user event exceeds the {self.config.user_event_size_limit}-byte limit "
                             f"({size} bytes)")
        ltime = self.event_clock.time()
        self.event_clock.increment()
        msg = _UserEventMsg(ltime, name, payload, coalesce)
        if self._handle_user_event(msg):
            self._broadcast(msg, key=None)
        return ltime

    def default_query_timeout(self) -> float:
        """serf ``DefaultQueryTimeout``: ``16 * GossipInterval * ceil(log10(n + 1))``."""
        n = sum(1 for m in self._members.values() if m.status == MemberStatus.ALIVE)
        return QUERY_TIMEOUT_MULT * self.core.config.gossip_interval * max(1, math.ceil(math.log10(n + 1)))

    def query(self, name: str, payload: bytes, now: float, timeout: float | None = None) -> tuple[int, int]:
        """Ask every member (ourselves included); answers arrive until the timeout and are read
        with :meth:`query_result`.  Returns the query's ``(ltime, id)``."""
        self._now = now
        timeout = timeout if timeout is not None else self.default_query_timeout()
        ltime = self.query_clock.time()
        self.query_clock.increment()
        me = self.core.local_member()
        q = _Query(ltime, self._rng.randrange(2**32), name, payload, me.addr, me.port, timeout)
        self._pending_queries[(q.ltime, q.id)] = _PendingQuery(now + timeout, {})
        if self._handle_query(q, now):
            self._broadcast(q, key=None)
        return (q.ltime, q.id)

    def query_result(self, qid: tuple[int, int]) -> dict[str, bytes]:
        """The answers received so far (member name -> payload); forgets the query."""
        pq = self._pending_queries.pop(qid, None)
        return pq.responses if pq is not None else {}

    def respond(self, q: QueryEvent, payload: bytes) -> None:
        """Answer a query directly to its origin (dropped after its deadline)."""
        if self._now > q.deadline:
            return
        resp = _QueryResponse(q.ltime, q.id, self.name, payload)
        me = self.core.local_member()
        if q.addr == (me.addr, me.port):
            self._record_response(resp, self._now)
        else:
            self.core.send_user(q.addr, _enc.encode(resp))

    def keyring_query(self, op: str, key_b64: str | None, now: float, timeout: float | None = None
                      ) -> tuple[int, int]:
        """Start a cluster-wide keyring operation (``install``/``use``/``remove``/``list``);
        collect it with :meth:`keyring_result`."""
        if op not in KEYRING_QUERIES:
            raise ValueError(f"unknown keyring operation {op!r}")
        if self.core.keyring is None:
            raise KeyringError("gossip encryption is not enabled")
        if op != "list" and not key_b64:
            raise ValueError(f"keyring {op} needs a key")
        if key_b64:
            decode_key(key_b64)  # refuse a bad key before it travels
        return self.query(KEYRING_QUERIES[op], (key_b64 or "").encode(), now, timeout)

    def keyring_result(self, qid: tuple[int, int]) -> KeyringResponse:
        responses = self.query_result(qid)
        keys: dict[str, int] = {}
        primary: dict[str, int] = {}
        messages: dict[str, str] = {}
        errs = 0
        for node, raw in responses.items():
            try:
                r = msgspec.msgpack.decode(raw, type=_KeyResponse)
            except msgspec.DecodeError:
                errs += 1
                messages[node] = "malformed keyring response"
                continue
            if not r.ok:
                errs += 1
                messages[node] = r.error
            for k in r.keys:
                keys[k] = keys.get(k, 0) + 1
            if r.primary:
                primary[r.primary] = primary.get(r.primary, 0) + 1
        alive = sum(1 for m in self._members.values() if m.status == MemberStatus.ALIVE)
        return KeyringResponse(alive, len(responses), errs, keys, primary, messages)

    def set_tags(self, tags: Mapping[str, str], now: float) -> None:
        self._now = now
        self.core.set_meta(tags, now)
        self._process_core_events(now)

    def members(self) -> list[SerfMember]:
        return [m.view() for m in self._members.values()]

    def member(self, name: str) -> SerfMember | None:
        m = self._members.get(name)
        return m.view() if m is not None else None

    def member_by_id(self, node_id: str) -> SerfMember | None:
        """The member with this node id (its newest address): what Raft's address lookup asks."""
        for m in self._members.values():
            if m.node_id == node_id:
                return m.view()
        return None

    def local_member(self) -> SerfMember:
        return self._members[self.name].view()

    def stats(self) -> dict[str, str]:
        """The ``serf_lan``/``serf_wan`` section of ``/v1/agent/self`` Stats (values are strings)."""
        by = {s: 0 for s in MemberStatus}
        for m in self._members.values():
            by[m.status] += 1
        return {
            "members": str(len(self._members)), "failed": str(by[MemberStatus.FAILED]),
            "left": str(by[MemberStatus.LEFT]), "health_score": str(self.core.awareness),
            "member_time": str(self.clock.time()), "event_time": str(self.event_clock.time()),
            "intent_queue": "0", "event_queue": "0", "query_queue": "0", "query_time": "1",
            "encrypted": "true" if self.core.keyring is not None else "false",
        }

    # ------------------------------------------------------------------ coordinates

    def get_coordinate(self) -> Coordinate | None:
        """Our current network coordinate (``None`` when coordinates are disabled)."""
        return None if self.coord_client is None else self.coord_client.coord

    def get_cached_coordinate(self, name: str) -> Coordinate | None:
        """The last coordinate ``name`` reported in a probe ack (ours for our own name)."""
        if name == self.name:
            return self.get_coordinate()
        return self._coord_cache.get(name)

    def ack_payload(self) -> bytes:
        """memberlist PingDelegate: our coordinate rides on every ack we send (serf
        ``pingDelegate.AckPayload``: a version byte, then the encoded coordinate)."""
        assert self.coord_client is not None
        c = self.coord_client.coord
        return bytes([_PING_VERSION]) + _enc.encode((list(c.vec), c.error, c.adjustment, c.height))

    def notify_ping_complete(self, node: str, rtt: float, payload: bytes) -> None:
        """memberlist PingDelegate: a direct probe of ``node`` took ``rtt`` seconds and its ack
        carried ``payload``.  Bad payloads and unusable samples are dropped (serf logs them)."""
        if self.coord_client is None or not payload or payload[0] != _PING_VERSION:
            return
        try:
            vec, err, adj, height = msgspec.msgpack.decode(payload[1:], type=tuple[list[float], float, float, float])
            other = Coordinate(tuple(vec), err, adj, height)
            self.coord_client.update(node, other, rtt)
        except (msgspec.DecodeError, ValueError) as e:
            log.debug("serf: rejected coordinate from %s: %s", node, e)
            return
        self._coord_cache[node] = other

    # ------------------------------------------------------------------ core delegate

    def local_state(self, join: bool) -> bytes:
        left = [m.name for m in self._members.values() if m.status == MemberStatus.LEFT]
        return _enc.encode(_PushPull(
            self.clock.time(), {m.name: m.status_ltime for m in self._members.values()}, left,
            self.event_clock.time(), [e for e in self._event_buffer if e is not None]))

    def merge_remote_state(self, data: bytes, join: bool) -> None:
        try:
            pp = _dec.decode(data)
        except msgspec.DecodeError as e:
            log.debug("serf: bad push/pull state: %s", e)
            return
        if not isinstance(pp, _PushPull):
            return
        now = self._now
        if pp.ltime > 0:
            self.clock.witness(pp.ltime - 1)
        if pp.event_ltime > 0:
            self.event_clock.witness(pp.event_ltime - 1)
        # Left members first so that their status times do not turn into joins (serf order).
        for name in pp.left_members:
            self._handle_leave_intent(_LeaveIntent(pp.status_ltimes.get(name, 0), name), now)
        for name, lt in pp.status_ltimes.items():
            self._handle_join_intent(_JoinIntent(lt, name), now)
        if self._merging_ignore_old and pp.event_ltime > self._event_min_time:
            self._event_min_time = pp.event_ltime
        for be in pp.events:
            for ev_name, payload in be.events:
                self._handle_user_event(_UserEventMsg(be.ltime, ev_name, payload))

    def notify_user(self, payload: bytes) -> None:
        try:
            msg = _dec.decode(payload)
        except msgspec.DecodeError as e:
            log.debug("serf: bad message: %s", e)
            return
        now = self._now
        if isinstance(msg, _JoinIntent):
            if self._handle_join_intent(msg, now):
                self._broadcast(msg, key="intent:" + msg.node)
        elif isinstance(msg, _LeaveIntent):
            if self._handle_leave_intent(msg, now):
                self._broadcast(msg, key="intent:" + msg.node)
        elif isinstance(msg, _UserEventMsg):
            if self._handle_user_event(msg):
                self._broadcast(msg, key=None)
        elif isinstance(msg, _Query):
            if self._handle_query(msg, now):
                self._broadcast(msg, key=None)
        elif isinstance(msg, _QueryResponse):
            self._record_response(msg, now)

    # ------------------------------------------------------------------ handlers

    def _broadcast(self, msg: _SerfMsg, key: str | None) -> int:
        return self.core.queue_user_broadcast(_enc.encode(msg), key=key)

    def _process_core_events(self, now: float) -> None:
        for ev in self.core.events():
            self._on_core_event(ev, now)

    def _on_core_event(self, ev: CoreEvent, now: float) -> None:
        cm = ev.member
        if ev.kind == EventKind.CONFLICT:
            return  # refused by the core, which logged it; nothing changes here
        m = self._members.get(cm.name)
        if ev.kind == EventKind.JOIN:
            if m is not None and m.node_id != cm.node_id:
                log.info("serf: member %s replaced (node id %s -> %s, was %s)", cm.name, m.node_id,
                         cm.node_id, m.status.name.lower())
                m = None
                del self._members[cm.name]
            if m is None:
                m = _Member(cm.name, cm.node_id, cm.addr, cm.port, dict(cm.meta), MemberStatus.ALIVE)
                self._members[cm.name] = m
            else:
                m.addr, m.port, m.tags = cm.addr, cm.port, dict(cm.meta)
                m.status = MemberStatus.ALIVE
            intent = self._intents.pop(cm.name, None)
            if intent is not None and intent.ltime > m.status_ltime:
                m.status_ltime = intent.ltime
                if intent.kind == "leave":
                    m.status = MemberStatus.LEAVING
            self._events.append(MemberEvent(SerfEventType.MEMBER_JOIN, m.view()))
        elif ev.kind == EventKind.UPDATE:
            if m is None:
                return
            m.addr, m.port, m.tags = cm.addr, cm.port, dict(cm.meta)
            self._events.append(MemberEvent(SerfEventType.MEMBER_UPDATE, m.view()))
        elif ev.kind == EventKind.LEAVE:
            if m is None or m.status in (MemberStatus.LEFT, MemberStatus.FAILED):
                return
            m.leave_time = now
            if cm.state == NodeStateKind.LEFT or m.status == MemberStatus.LEAVING:
                m.status = MemberStatus.LEFT
                self._events.append(MemberEvent(SerfEventType.MEMBER_LEAVE, m.view()))
            else:
                m.status = MemberStatus.FAILED
                self._events.append(MemberEvent(SerfEventType.MEMBER_FAILED, m.view()))

    def _upsert_intent(self, node: str, ltime: int, kind: str, now: float) -> bool:
        cur = self._intents.get(node)
        if cur is None or ltime > cur.ltime:
            self._intents[node] = _Intent(ltime, kind, now)
            return True
        return False

    def _handle_join_intent(self, msg: _JoinIntent, now: float) -> bool:
        """serf ``handleNodeJoinIntent``; returns whether to rebroadcast."""
        self.clock.witness(msg.ltime)
        m = self._members.get(msg.node)
        if m is None:
            return self._upsert_intent(msg.node, msg.ltime, "join", now)
        if msg.ltime <= m.status_ltime:
            return False
        m.status_ltime = msg.ltime
        if m.status == MemberStatus.LEAVING:
            m.status = MemberStatus.ALIVE
        return True

    def _handle_leave_intent(self, msg: _LeaveIntent, now: float) -> bool:
        """serf ``handleNodeLeaveIntent``; returns whether to rebroadcast."""
        self.clock.witness(msg.ltime)
        if msg.node == self.name and not self._leaving:
            # Someone thinks we are leaving (an old intent, or a force-leave): refute it.
            ltime = self.clock.increment()
            self._members[self.name].status_ltime = ltime
            self._broadcast(_JoinIntent(ltime, self.name), key="intent:" + self.name)
            return False
        m = self._members.get(msg.node)
        if m is None:
            return self._upsert_intent(msg.node, msg.ltime, "leave", now)
        if msg.ltime <= m.status_ltime:
            return False
        m.status_ltime = msg.ltime
        if m.status == MemberStatus.ALIVE:
            m.status = MemberStatus.LEAVING
        elif m.status == MemberStatus.FAILED:
            m.status = MemberStatus.LEFT
            m.leave_time = now
            self._events.append(MemberEvent(SerfEventType.MEMBER_LEAVE, m.view()))
        elif m.status not in (MemberStatus.LEAVING, MemberStatus.LEFT):
            return False
        if msg.prune and m.status == MemberStatus.LEFT:
            self._erase(m)
        return True

    def _handle_user_event(self, msg: _UserEventMsg) -> bool:
        """serf ``handleUserEvent``: dedupe by (ltime, name, payload); returns whether new."""
        self.event_clock.witness(msg.ltime)
        if msg.ltime < self._event_min_time:
            self.counters["events_old"] += 1
            return False
        size = len(self._event_buffer)
        cur = self.event_clock.time()
        if cur > size and msg.ltime < cur - size:
            self.counters["events_old"] += 1
            return False
        idx = msg.ltime % size
        slot = self._event_buffer[idx]
        item = (msg.name, msg.payload)
        if slot is not None and slot.ltime == msg.ltime:
            if item in slot.events:
                self.counters["events_dup"] += 1
                return False
            slot.events.append(item)
        else:
            self._event_buffer[idx] = _BufferedEvents(msg.ltime, [item])
        self.counters["events_in"] += 1
        self._events.append(UserEvent(msg.ltime, msg.name, msg.payload, msg.cc))
        return True

    def _handle_query(self, q: _Query, now: float) -> bool:
        """serf ``handleQuery``: dedupe by (ltime, id), then deliver; returns whether new."""
        self.query_clock.witness(q.ltime)
        size = self.config.event_buffer_size
        cur = self.query_clock.time()
        if cur > size and q.ltime < cur - size:
            return False
        slot = self._query_seen.get(q.ltime % size)
        if slot is None or slot[0] != q.ltime:
            slot = (q.ltime, set())
            self._query_seen[q.ltime % size] = slot
        if q.id in slot[1]:
            return False
        slot[1].add(q.id)
        self.counters["queries_in"] += 1
        ev = QueryEvent(q.ltime, q.id, q.name, q.payload, (q.addr, q.port), now + q.timeout)
        if q.name.startswith("_serf_"):
            self._internal_query(ev)
        else:
            self._events.append(ev)
        return True

    def _internal_query(self, q: QueryEvent) -> None:
        """Keyring queries act on our keyring and report the result (serf ``internal_query.go``)."""
        kr = self.core.keyring
        if kr is None:
            self.respond(q, _enc.encode(_KeyResponse(False, "gossip encryption is not enabled")))
            return
        try:
            key = decode_key(q.payload.decode()) if q.payload else None
            if q.name == KEYRING_QUERIES["install"] and key is not None:
                kr.install(key)
            elif q.name == KEYRING_QUERIES["use"] and key is not None:
                kr.use(key)
            elif q.name == KEYRING_QUERIES["remove"] and key is not None:
                kr.remove(key)
            elif q.name != KEYRING_QUERIES["list"]:
                raise KeyringError(f"unknown internal query {q.name}")
        except (KeyringError, UnicodeDecodeError) as e:
            self.respond(q, _enc.encode(_KeyResponse(False, str(e))))
            return
        keys = [encode_key(k) for k in kr.keys()]
        self.respond(q, _enc.encode(_KeyResponse(True, "", keys, keys[0])))

    def _record_response(self, r: _QueryResponse, now: float) -> None:
        pq = self._pending_queries.get((r.ltime, r.id))
        if pq is None or now > pq.deadline:
            return
        self.counters["query_responses"] += 1
        pq.responses.setdefault(r.source, r.payload)

    def _reap(self, now: float) -> None:
        """serf ``reap``: forget failed members after reconnect_timeout, left ones after
        tombstone_timeout; expire unclaimed intents."""
        for m in list(self._members.values()):
            if m.name == self.name:
                continue
            if m.status == MemberStatus.FAILED:
                limit = self.config.reconnect_timeout
            elif m.status == MemberStatus.LEFT:
                limit = self.config.tombstone_timeout
            else:
                continue
            if now - m.leave_time > limit:
                log.info("serf: event member-reap: %s (%s)", m.name, m.status.name.lower())
                self._erase(m)
        for node in [n for n, i in self._intents.items() if now - i.at > self.config.recent_intent_timeout]:
            del self._intents[node]
        for qid in [q for q, p in self._pending_queries.items() if now > p.deadline + 60.0]:
            del self._pending_queries[qid]

    def _erase(self, m: _Member) -> None:
        self._members.pop(m.name, None)
        self._coord_cache.pop(m.name, None)
        if self.coord_client is not None:
            self.coord_client.forget(m.name)
        self.counters["reaped"] += 1
        self._events.append(MemberEvent(SerfEventType.MEMBER_REAP, m.view()))

    def _reconnect(self, now: float) -> None:
        """serf ``reconnect``: try one random failed member again (heals long partitions)."""
        if self._leaving:
            return
        failed = [m for m in self._members.values() if m.status == MemberStatus.FAILED]
        if not failed:
            return
        m = failed[self._rng.randrange(len(failed))]
        log.debug("serf: attempting reconnect to %s at %s:%d", m.name, m.addr, m.port)
        self.core.join([(m.addr, m.port)], now)
