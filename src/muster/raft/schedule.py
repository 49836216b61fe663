"""When a server takes its own Raft snapshot: Consul's ``raft_snapshot_interval`` and
``raft_snapshot_threshold``, with hashicorp/raft's semantics.

hashicorp/raft (``runSnapshots`` / ``shouldSnapshot``) does not look at the log after every
apply: a background loop sleeps a random time between ``SnapshotInterval`` and twice that,
then snapshots only if the last log index is at least ``SnapshotThreshold`` past the last
snapshot's index; otherwise it sleeps again.  So with Consul's defaults (30 s, 16,384) a busy
server snapshots at most about once every 30-60 s however fast it writes, the three servers of
a cluster rarely snapshot at the same moment (the jitter), and an idle one never does.

:class:`SnapshotSchedule` is that rule as a pure object: the caller passes the monotonic time
and the two indexes, and randomness comes from the injected ``random.Random``, so tests drive
it with a fake clock.  An interval of 0 (or less) checks the threshold on every call, which is
what a threshold-only policy looks like (tests, benchmarks that want snapshots now).
"""

from __future__ import annotations

import random

__all__ = ["SnapshotSchedule"]


class SnapshotSchedule:
    """Decides, at each ``due(now, ...)`` call, whether a snapshot should start.

    Invariant: between two checks at least ``interval`` and less than ``2 * interval`` seconds
    pass (the next check time is drawn when a check runs, as hashicorp/raft re-arms its random
    timer after each wake-up, whether it snapshotted or not)."""

    def __init__(self, interval: float, threshold: int, rng: random.Random, now: float) -> None:
        if threshold < 1:
            raise ValueError("snapshot threshold must be at least 1")
        self.interval = max(0.0, float(interval))
        self.threshold = int(threshold)
        self._rng = rng
        self.next_check = now + self._delay()

    def _delay(self) -> float:
        # hashicorp/raft's randomTimeout(d): d plus a uniform extra in [0, d).
        return self.interval + self._rng.random() * self.interval

    def due(self, now: float, last_index: int, snapshot_index: int) -> bool:
        """Whether to snapshot now: the check time has come and the log is at least
        ``threshold`` entries past the last snapshot.  A check that comes re-arms the timer
        whatever its outcome; one that has not come changes nothing."""
        if now < self.next_check:
            return False
        self.next_check = now + self._delay()
        return last_index - snapshot_index >= self.threshold
