"""Leader-side view of each follower, and the pure quorum math.

Progress state machine (one per peer, kept by the leader)::

                 reject / heartbeat-resp w/o progress
          +-------------------------------------------+
          v                                           |
      +-------+  append accepted   +-----------+      |
      | PROBE | -----------------> | REPLICATE | -----+ (rejection: back to PROBE)
      +-------+                    +-----------+
          |  ^                           |
   needs  |  | snapshot installed        | needs compacted entries
   snap   v  | (match >= pending)        v
      +----------+ <-----------------------
      | SNAPSHOT |
      +----------+

* PROBE: at most one MsgApp in flight (``probe_sent``); used when we do not
  know where the follower's log matches ours.
* REPLICATE: optimistic pipelining; ``next`` is advanced as soon as a MsgApp is
  sent and ``inflights`` bounds the unacknowledged messages/bytes.
* SNAPSHOT: the follower needs a snapshot; appends are paused until it reports
  an index ``>= pending_snapshot``.

Invariant: ``match < next``.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable

from .messages import Snapshot

__all__ = ["Inflights", "Progress", "ProgressState", "VoteResult", "committed_index", "quorum", "vote_result"]


def quorum(n_voters: int) -> int:
    return n_voters // 2 + 1


def committed_index(voters: Iterable[str], match: dict[str, int]) -> int:
    """Largest index stored on a majority of ``voters`` (0 for an empty config).

    Pure function: the leader calls it with its own match included.  Learners
    must not be passed in ``voters``.
    """
    idx = sorted((match.get(v, 0) for v in voters), reverse=True)
    if not idx:
        return 0
    return idx[quorum(len(idx)) - 1]


class VoteResult(enum.Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def vote_result(voters: Iterable[str], votes: dict[str, bool]) -> VoteResult:
    """Tally ``votes`` (granted/rejected) among ``voters``; missing ids are pending."""
    vs = list(voters)
    q = quorum(len(vs))
    granted = sum(1 for v in vs if votes.get(v) is True)
    rejected = sum(1 for v in vs if votes.get(v) is False)
    if granted >= q:
        return VoteResult.WON
    if rejected > len(vs) - q:
        return VoteResult.LOST
    return VoteResult.PENDING


class Inflights:
    """Bounded FIFO of (last index, bytes) of MsgApps sent but not yet acknowledged."""

    def __init__(self, max_count: int, max_bytes: int = 0) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._q: deque[tuple[int, int]] = deque()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._q)

    def add(self, index: int, nbytes: int) -> None:
        if self.full():
            raise AssertionError("cannot add into a full inflights")
        self._q.append((index, nbytes))
        self.bytes += nbytes

    def free_le(self, index: int) -> None:
        while self._q and self._q[0][0] <= index:
            self.bytes -= self._q.popleft()[1]

    def free_first_one(self) -> None:
        if self._q:
            self.bytes -= self._q.popleft()[1]

    def full(self) -> bool:
        return len(self._q) >= self.max_count or (self.max_bytes > 0 and self.bytes >= self.max_bytes)

    def reset(self) -> None:
        self._q.clear()
        self.bytes = 0


class ProgressState(enum.Enum):
    PROBE = "StateProbe"
    REPLICATE = "StateReplicate"
    SNAPSHOT = "StateSnapshot"


class Progress:
    def __init__(self, next_index: int, max_inflight: int, max_inflight_bytes: int, is_learner: bool) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        #: PROBE only: a MsgApp was sent and no answer arrived since.
        self.probe_sent = False
        #: SNAPSHOT only: index of the snapshot being sent.
        self.pending_snapshot = 0
        #: Heard from since the last check-quorum round.
        self.recent_active = False
        self.is_learner = is_learner
        #: Highest commit index sent to this peer (to decide whether it needs a commit bump).
        self.sent_commit = 0
        self.inflights = Inflights(max_inflight, max_inflight_bytes)
        # Chunked snapshot streaming (SNAPSHOT state only).
        self.snap: Snapshot | None = None
        self.snap_offset = 0
        #: Ticks since the last chunk was sent; the chunk is resent when this grows too large.
        self.snap_idle = 0

    def __repr__(self) -> str:
        return f"{self.state.value} match={self.match} next={self.next}"

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()
        self.snap = None
        self.snap_offset = 0
        self.snap_idle = 0

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snap: Snapshot) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snap.meta.index
        self.snap = snap

    def maybe_update(self, n: int) -> bool:
        """An append up to ``n`` was acknowledged; returns whether ``match`` moved."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        self.next = max(self.next, n + 1)
        return updated

    def sent_entries(self, last_index: int, nbytes: int) -> None:
        """Bookkeeping after sending a MsgApp whose last entry is ``last_index``."""
        if self.state is ProgressState.REPLICATE:
            if last_index >= self.next:
                self.next = last_index + 1
                self.inflights.add(last_index, nbytes)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """A MsgApp for ``rejected`` was refused; returns False if the rejection is stale."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True
