"""KV history on a real 3-server cluster (docs/kv-history.md#replication-and-snapshots): writes
to a few keys through every server while the leader is killed, then the old leader restarts
and, last, every server restarts at once (snapshots are taken every 50 entries, so history
comes back from snapshots as well as from the log).  Every acknowledged write is exactly one
version of its key (none lost, none duplicated), and every server holds the same history,
before and after the restarts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import Cluster, env_ok, running, wait_until

pytestmark = [pytest.mark.skipif(not env_ok(), reason="127.0.0.2/3 not bindable"), pytest.mark.timeout(300)]

KEYS = [f"hist/k{i}" for i in range(5)]


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    hcl = "kv_history {\n  versions = 1000\n}\nraft_snapshot_threshold = 50\nraft_snapshot_interval = \"100ms\"\nraft_trailing_logs = 10\n"
    with running(Cluster(tmp_path, extra=["-hcl", hcl]), request) as c:
        yield c


class Writer(threading.Thread):
    """Writes unique values to ``KEYS`` round-robin over the servers; records which were
    acknowledged and which were sent at all (a write cut by the kill may still have applied)."""

    def __init__(self, c: Cluster) -> None:
        super().__init__(daemon=True)
        self.c = c
        self.acked: dict[str, float] = {}
        self.sent: set[str] = set()
        self.stop_flag = threading.Event()
        self.n = 0

    def run(self) -> None:
        while not self.stop_flag.is_set() and self.n < 20_000:
            self.n += 1
            key = KEYS[self.n % len(KEYS)]
            value = f"v{self.n:06d}"
            srv = self.n % 3
            if self.c.nodes[srv].proc is None:
                continue
            self.sent.add(value)
            try:
                if self.c.put(srv, key, value.encode(), timeout=5):
                    self.acked[value] = time.monotonic()
            except OSError:
                time.sleep(0.02)


def history(c: Cluster, i: int) -> list[tuple[Any, ...]]:
    code, _h, body = c.request(i, "GET", "/v1/muster/kv-history/hist/?recurse&stale")
    assert code == 200, (code, body)
    return [
        (v["Key"], v["ModifyIndex"], v["Operation"], v["Value"], v["Time"], v["ClientAddr"], v["Current"])
        for v in json.loads(body)
    ]


def check_versions(rows: list[tuple[Any, ...]], acked: set[str], sent: set[str]) -> None:
    import base64

    values = [base64.b64decode(r[3]).decode() for r in rows]
    assert len(values) == len(set(values)), "a write recorded twice"
    assert acked <= set(values), f"acknowledged writes missing from the history: {sorted(acked - set(values))[:5]}"
    assert set(values) <= sent, "a version nobody wrote"
    for key in KEYS:
        idx = [r[1] for r in rows if r[0] == key]
        assert idx == sorted(idx, reverse=True) and len(set(idx)) == len(idx)


def test_history_survives_leader_kill_and_restarts_identically(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    w = Writer(cluster)
    w.start()
    wait_until(lambda: len(w.acked) > 150, 60, "150 acknowledged writes")
    killed_at = time.monotonic()
    cluster.kill(leader)
    cluster.wait_leader([i for i in range(3) if i != leader], timeout=20)
    wait_until(lambda: sum(t > killed_at for t in w.acked.values()) > 100, 60, "100 writes acknowledged after the kill")
    w.stop_flag.set()
    w.join(15)
    cluster.start(leader)
    cluster.wait_leader(timeout=30)
    acked = set(w.acked)

    def converged() -> bool:
        views = [history(cluster, i) for i in range(3)]
        return views[0] == views[1] == views[2] and len(views[0]) >= len(acked)

    wait_until(converged, 60, "the same history on every server")
    before = history(cluster, 0)
    check_versions(before, acked, w.sent)
    # the newest version of each key is its current value
    for key in KEYS:
        code, _h, body = cluster.request(0, "GET", f"/v1/kv/{key}?stale")
        [entry] = json.loads(body)
        top = next(r for r in before if r[0] == key)
        assert (top[1], top[3], top[6]) == (entry["ModifyIndex"], entry["Value"], True)

    for i in range(3):
        cluster.kill(i)
    cluster.start_all()
    cluster.wait_leader(timeout=30)
    wait_until(lambda: all(history(cluster, i) == before for i in range(3)), 60, "the history back on every server after a full restart")
    snaps = [list((n.data_dir / "raft").rglob("snap-*")) for n in cluster.nodes]
    assert all(snaps), "every server should hold a snapshot (the history travelled in it)"
