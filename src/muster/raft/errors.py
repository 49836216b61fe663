"""Errors raised by the Raft core and its storage."""

from __future__ import annotations

__all__ = [
    "CompactedError",
    "ConfChangeRejected",
    "CorruptLogError",
    "NotLeader",
    "ProposalDropped",
    "RaftError",
    "UnavailableError",
]


class RaftError(Exception):
    """Base class of all Raft errors."""


class NotLeader(RaftError):
    """This node is not the leader.  ``leader`` is the id of the leader this node
    believes in (a hint for forwarding), or ``None`` when no leader is known."""

    def __init__(self, leader: str | None) -> None:
        super().__init__(f"not the leader (leader hint: {leader or 'unknown'})")
        self.leader = leader


class ProposalDropped(RaftError):
    """The leader refused a proposal (e.g. a leadership transfer is in progress)."""


class ConfChangeRejected(ProposalDropped):
    """A membership change was refused: another change is still in flight, or the
    leader has not yet committed an entry of its own term (pitfall P2,
    docs/compat/raft.md)."""


class CompactedError(RaftError):
    """The requested log index precedes the first index still held (it is in a snapshot)."""


class UnavailableError(RaftError):
    """The requested log index is beyond the last index held."""


class CorruptLogError(RaftError):
    """A record that is not the last one in a log segment failed its checksum or
    length check.  This is bit rot or a bug, never a torn write, so it is not
    repaired automatically: the operator must restore the node from its peers."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"corrupt raft log record in {path} at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason
