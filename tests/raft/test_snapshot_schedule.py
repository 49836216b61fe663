"""``SnapshotSchedule``: hashicorp/raft's snapshot timing (``runSnapshots`` / ``shouldSnapshot``)
driven by a fake clock: checks come every interval to twice the interval, and a check
snapshots only if the log is ``threshold`` entries past the last snapshot."""

from __future__ import annotations

import random

import pytest

from muster.raft.schedule import SnapshotSchedule


class _FixedRng(random.Random):
    """``random()`` returns the given values in turn (the jitter fraction of each delay)."""

    def __init__(self, *values: float) -> None:
        super().__init__(0)
        self._values = list(values)

    def random(self) -> float:
        return self._values.pop(0)


def test_no_check_before_the_interval_even_far_past_the_threshold() -> None:
    s = SnapshotSchedule(30.0, 100, _FixedRng(0.5), now=1000.0)
    assert s.next_check == pytest.approx(1045.0)  # 30 s + 0.5 * 30 s of jitter
    for now in (1000.0, 1010.0, 1044.9):
        assert not s.due(now, last_index=10_000_000, snapshot_index=0)
    assert s.next_check == pytest.approx(1045.0)  # an early call re-arms nothing


def test_check_at_the_deadline_snapshots_only_past_the_threshold() -> None:
    s = SnapshotSchedule(30.0, 100, _FixedRng(0.0, 0.25, 0.0), now=0.0)
    assert not s.due(30.0, last_index=199, snapshot_index=100)  # 99 entries: below the threshold
    assert s.next_check == pytest.approx(30.0 + 37.5)  # re-armed anyway, with fresh jitter
    assert not s.due(60.0, last_index=10_000, snapshot_index=0)  # not yet due
    assert s.due(67.5, last_index=200, snapshot_index=100)  # exactly the threshold
    assert s.next_check == pytest.approx(97.5)


def test_the_jitter_stays_within_one_interval_and_varies() -> None:
    rng = random.Random(7)
    s = SnapshotSchedule(30.0, 1, rng, now=0.0)
    gaps = []
    now = 0.0
    for _ in range(200):
        nxt = s.next_check
        assert not s.due(nxt - 1e-6, 1, 0)
        assert s.due(nxt, 1, 0)
        gaps.append(s.next_check - nxt)
        now = nxt
    assert all(30.0 <= g < 60.0 for g in gaps)
    assert max(gaps) - min(gaps) > 10.0  # the delays are drawn, not fixed
    assert now > 0


def test_servers_seeded_differently_check_at_different_times() -> None:
    a = SnapshotSchedule(30.0, 1, random.Random("node-a"), now=0.0)
    b = SnapshotSchedule(30.0, 1, random.Random("node-b"), now=0.0)
    assert a.next_check != b.next_check


def test_zero_interval_checks_the_threshold_on_every_call() -> None:
    s = SnapshotSchedule(0.0, 10, random.Random(1), now=5.0)
    assert not s.due(5.0, last_index=9, snapshot_index=0)
    assert s.due(5.0, last_index=10, snapshot_index=0)
    assert s.due(5.0, last_index=30, snapshot_index=20)


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SnapshotSchedule(30.0, 0, random.Random(1), now=0.0)
