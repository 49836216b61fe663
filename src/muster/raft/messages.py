"""Wire and log types of the Raft core.

Every type here is a frozen :mod:`msgspec` Struct, so the same object is used in
memory, in the log on disk and on the wire between servers (msgpack, see
:func:`encode_message` / :func:`decode_message`).  Peers are named by node-id
strings (UUIDs in production, short names in tests); addresses never appear in
Raft state, so a server that changes IP keeps its identity.

Field names follow the Raft paper and etcd-io/raft (``term``, ``log_term``,
``index``, ``commit``) so that transcripts read like the paper.
"""

from __future__ import annotations

import enum

import msgspec

__all__ = [
    "NONE",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Entry",
    "EntryType",
    "HardState",
    "Message",
    "MsgType",
    "Snapshot",
    "SnapshotMeta",
    "decode_conf_change",
    "decode_message",
    "encode_conf_change",
    "encode_message",
    "entry_size",
]

#: The "no node" id (no vote cast, no leader known).  Empty string keeps the
#: msgpack encoding small and the type a plain ``str``.
NONE = ""


class EntryType(enum.IntEnum):
    NORMAL = 0
    #: The empty entry a new leader appends at the start of its term (Raft §5.4.2 / §8).
    NOOP = 1
    #: A single-server membership change; ``data`` is an encoded :class:`ConfChange`.
    CONF = 2


class Entry(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One log entry.  Invariant: ``(index, term)`` identifies the entry (log matching).

    ``gc=False``: the collector never tracks entries.  A server holds every entry since the
    last compaction in memory (up to two snapshot intervals of writes, hundreds of thousands
    under load), and tracked entries made every full collection walk all of them and, as
    long-lived survivors, triggered full collections every ~2 s at c=64 (57-125 ms each on
    the event loop, BENCHMARKS.md).  An entry holds two ints, an enum member and bytes, so it
    can never be part of a reference cycle."""

    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


def entry_size(e: Entry) -> int:
    """Approximate encoded size used for batching and inflight byte limits."""
    return len(e.data) + 16


class HardState(msgspec.Struct, frozen=True):
    """State that must be durable before any message reflecting it is sent.

    ``vote`` is :data:`NONE` when no vote was cast in ``term``.  ``commit`` may be
    persisted lazily (losing it only delays re-application after restart).
    """

    term: int = 0
    vote: str = NONE
    commit: int = 0


class ConfState(msgspec.Struct, frozen=True):
    """A membership configuration: voters count for elections and commit, learners
    (non-voters) only receive the log."""

    voters: tuple[str, ...] = ()
    learners: tuple[str, ...] = ()


class ConfChangeType(enum.IntEnum):
    ADD_VOTER = 0
    ADD_NONVOTER = 1
    REMOVE = 2


class ConfChange(msgspec.Struct, frozen=True):
    """Payload of a CONF entry.

    It carries both the requested change and the *resulting* configuration, so
    applying it is idempotent and does not depend on the configuration the
    applying node happened to hold before (a new node replaying the log, or a
    node restarted from a snapshot, reaches the same configuration).
    """

    type: ConfChangeType
    node_id: str
    conf: ConfState


class SnapshotMeta(msgspec.Struct, frozen=True):
    """The log position a snapshot replaces and the configuration at that point."""

    index: int = 0
    term: int = 0
    conf: ConfState = ConfState()


class Snapshot(msgspec.Struct, frozen=True):
    """A snapshot: metadata plus the opaque FSM state produced by ``fsm.snapshot()``."""

    meta: SnapshotMeta = SnapshotMeta()
    data: bytes = b""


class MsgType(enum.IntEnum):
    APP = 0
    APP_RESP = 1
    VOTE = 2
    VOTE_RESP = 3
    PRE_VOTE = 4
    PRE_VOTE_RESP = 5
    HEARTBEAT = 6
    HEARTBEAT_RESP = 7
    SNAP = 8
    SNAP_RESP = 9
    TIMEOUT_NOW = 10
    READ_INDEX = 11
    READ_INDEX_RESP = 12

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    MsgType.APP: "MsgApp",
    MsgType.APP_RESP: "MsgAppResp",
    MsgType.VOTE: "MsgVote",
    MsgType.VOTE_RESP: "MsgVoteResp",
    MsgType.PRE_VOTE: "MsgPreVote",
    MsgType.PRE_VOTE_RESP: "MsgPreVoteResp",
    MsgType.HEARTBEAT: "MsgHeartbeat",
    MsgType.HEARTBEAT_RESP: "MsgHeartbeatResp",
    MsgType.SNAP: "MsgSnap",
    MsgType.SNAP_RESP: "MsgSnapResp",
    MsgType.TIMEOUT_NOW: "MsgTimeoutNow",
    MsgType.READ_INDEX: "MsgReadIndex",
    MsgType.READ_INDEX_RESP: "MsgReadIndexResp",
}


class Message(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, rename={"frm": "from"}):
    """A Raft RPC.  Field use per type:

    * APP: ``index``/``log_term`` = entry preceding ``entries``; ``commit``.
    * APP_RESP: ``index`` = last index matched (accept) or the rejected
      ``index``; on reject ``reject_hint``/``log_term`` give the follower's
      best guess of the matching point (fast backtracking).
    * VOTE / PRE_VOTE: ``index``/``log_term`` = candidate's last entry;
      ``context == b"transfer"`` for a leadership-transfer election (ignores leases).
    * HEARTBEAT: ``commit`` (clamped to the follower's match), ``context`` = the
      newest pending read-index context; HEARTBEAT_RESP echoes ``context``.
    * SNAP: ``snapshot`` metadata on every chunk, ``snap_offset``, ``snap_data``,
      ``snap_done``.  SNAP_RESP: ``snap_offset`` = bytes the receiver holds
      (the next offset it wants); ``reject`` = it wants a restart from there.
    * READ_INDEX(_RESP): ``context`` identifies the request, ``index`` the read index.
    """

    type: MsgType
    to: str
    frm: str
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""
    snapshot: SnapshotMeta | None = None
    snap_offset: int = 0
    snap_data: bytes = b""
    snap_done: bool = False


_msg_encoder = msgspec.msgpack.Encoder()
_msg_decoder = msgspec.msgpack.Decoder(Message)
_cc_decoder = msgspec.msgpack.Decoder(ConfChange)


def encode_message(m: Message) -> bytes:
    return _msg_encoder.encode(m)


def decode_message(data: bytes) -> Message:
    """Decode and validate a wire message (raises ``msgspec.DecodeError``/``ValidationError``)."""
    return _msg_decoder.decode(data)


def encode_conf_change(cc: ConfChange) -> bytes:
    return _msg_encoder.encode(cc)


def decode_conf_change(data: bytes) -> ConfChange:
    return _cc_decoder.decode(data)
