"""The seed's StatefulSet, simulated with network namespaces (muster_testkit.k8ssim).

Every pod runs ``muster`` with the seed's exact args (``$(PODIP)``/``$(NAMESPACE)`` expanded as
Kubernetes does).  Each scenario runs with a write load and ends with the same checks: no
acknowledged write lost, every server's state identical.  ``make test`` runs first start,
one pod re-created with a new IP, every pod re-created at once, and a rolling restart;
``make k8s-sim`` runs all.
"""

from __future__ import annotations

import queue
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from muster_testkit.k8ssim import StatefulSet, WriteLoad, available

WHY = available()
pytestmark = pytest.mark.skipif(bool(WHY), reason=f"network namespaces unavailable: {WHY}")


@pytest.fixture
def sts(tmp_path: Path) -> Iterator[StatefulSet]:
    s = StatefulSet(tmp_path / "k8s", python=sys.executable)
    s.up()
    try:
        yield s
    finally:
        s.down()


def converge(s: StatefulSet, acked: set[str], timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            dumps = [s.kv_dump(o) for o in sorted(s.pods)]
            if all(acked <= set(d) for d in dumps) and all(d == dumps[0] for d in dumps):
                return
            last = f"sizes {[len(d) for d in dumps]}, acked {len(acked)}"
        except (OSError, RuntimeError, queue.Empty) as err:
            last = repr(err)
        time.sleep(0.5)
    raise AssertionError(f"servers did not converge on every acknowledged write: {last}")


def start(s: StatefulSet) -> int:
    for o in range(3):
        s.create_pod(o)
    leader, took = s.wait_leader(30)
    print(f"first start: leader after {took:.1f}s")
    return leader


def test_a_first_start_elects_a_leader_within_30s(sts: StatefulSet) -> None:
    start(sts)
    load = WriteLoad(sts, "a").start()
    time.sleep(2)
    load.stop()
    assert len(load.acked) > 10
    converge(sts, set(load.acked))
    # the seed's names resolve inside the pods, and the servers registered themselves
    code, body = sts.request(0, "GET", "/v1/catalog/service/consul")
    assert code == 200 and body.count(b'"ServiceID":"consul"') >= 1


def test_b_one_pod_recreated_with_a_new_ip(sts: StatefulSet) -> None:
    leader = start(sts)
    load = WriteLoad(sts, "b").start()
    time.sleep(2)
    old_ip = sts.pods[leader].ip
    sts.recreate_pod(leader)
    assert sts.pods[leader].ip != old_ip
    _, took = sts.wait_leader(30)
    time.sleep(3)
    load.stop()
    print(f"pod re-created: leader after {took:.1f}s, longest write gap {load.longest_gap:.1f}s")
    converge(sts, set(load.acked))


def test_d_every_pod_recreated_at_once_with_new_ips(sts: StatefulSet) -> None:
    start(sts)
    load = WriteLoad(sts, "d").start()
    time.sleep(2)
    load.stop()
    before = set(load.acked)
    old = {o: p.ip for o, p in sts.pods.items()}
    for o in range(3):
        sts.delete_pod(o, grace=1)
    for o in range(3):
        sts.create_pod(o)
    assert all(sts.pods[o].ip != old[o] for o in range(3))
    _, took = sts.wait_leader(30)
    print(f"all pods re-created: leader after {took:.1f}s")
    load2 = WriteLoad(sts, "d2").start()
    time.sleep(2)
    load2.stop()
    converge(sts, before | set(load2.acked))


def test_c_rolling_restart_gated_on_readiness(sts: StatefulSet) -> None:
    start(sts)
    load = WriteLoad(sts, "c").start()
    for o in (2, 1, 0):  # the StatefulSet controller's order
        sts.recreate_pod(o)
        sts.wait_leader(30)
    time.sleep(2)
    load.stop()
    print(f"rolling restart: longest write gap {load.longest_gap:.1f}s")
    # each pod hands leadership over on SIGTERM: never a leaderless gap of an election timeout
    # (2.5-5 s at the default raft_multiplier of 5)
    assert load.longest_gap < 5.0, load.longest_gap
    converge(sts, set(load.acked))


@pytest.mark.k8s_full
def test_g_partitioned_pod_heals(sts: StatefulSet) -> None:
    leader = start(sts)
    follower = (leader + 1) % 3
    load = WriteLoad(sts, "g").start()
    sts.partition(follower)
    time.sleep(8)
    sts.partition(follower, cut=False)
    new_leader, _ = sts.wait_leader(30)
    time.sleep(2)
    load.stop()
    assert new_leader == leader, "a healed follower must not depose the leader (pre-vote)"
    converge(sts, set(load.acked))


@pytest.mark.k8s_full
def test_f_pod_with_an_empty_volume_rejoins_as_a_new_server(sts: StatefulSet) -> None:
    import shutil

    start(sts)
    load = WriteLoad(sts, "f").start()
    time.sleep(2)
    sts.delete_pod(1, grace=1)
    shutil.rmtree(sts.pvc(1))
    time.sleep(6)  # the leader must stop hearing from the old id before it is replaced
    sts.create_pod(1)
    leader, _ = sts.wait_leader(30)
    deadline = time.monotonic() + 60
    voters: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        code, body = sts.request(leader, "GET", "/v1/operator/raft/configuration")
        import json

        servers = json.loads(body)["Servers"] if code == 200 else []
        voters = [s for s in servers if s["Voter"]]
        if len(servers) == 3 and len(voters) == 3 and {s["Node"] for s in servers} == {"consul-0", "consul-1", "consul-2"}:
            break
        time.sleep(1)
    else:
        raise AssertionError(f"the new consul-1 was not promoted to voter: {voters}")
    load.stop()
    converge(sts, set(load.acked))


@pytest.mark.k8s_full
def test_h_volume_from_another_cluster_is_refused(sts: StatefulSet) -> None:
    import uuid

    from muster.fsm import FSM
    from muster.raft.messages import ConfState, Snapshot, SnapshotMeta
    from muster.raft.storage import DiskStorage

    start(sts)
    load = WriteLoad(sts, "h").start()
    time.sleep(1)
    sts.delete_pod(2, grace=1)
    pvc = sts.pvc(2)
    import shutil

    shutil.rmtree(pvc)
    (pvc / "raft").mkdir(parents=True)
    fid = str(uuid.uuid4())
    (pvc / "node-id").write_text(fid)
    st = DiskStorage(str(pvc / "raft"))
    st.apply_snapshot(Snapshot(SnapshotMeta(1, 1, ConfState(voters=(fid, "x-1", "x-2"))), FSM().snapshot()))
    st.close()
    (pvc / "raft" / "cluster-id").write_text(str(uuid.uuid4()))
    sts.create_pod(2)
    log = sts.root / "logs" / "consul-2.log"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and b"belongs to cluster" not in log.read_bytes():
        time.sleep(0.5)
    assert b"belongs to cluster" in log.read_bytes(), "the foreign volume must be refused with a clear error"
    time.sleep(2)
    load.stop()
    # the real cluster kept serving with its two healthy servers
    acked = set(load.acked)
    for o in (0, 1):
        assert acked <= set(sts.kv_dump(o))


@pytest.mark.k8s_full
def test_e_scale_3_to_5_to_3(sts: StatefulSet) -> None:
    import json

    leader = start(sts)
    load = WriteLoad(sts, "e").start()

    def voters() -> list[str]:
        try:
            code, body = sts.request(leader_now(), "GET", "/v1/operator/raft/configuration")
        except (OSError, RuntimeError, queue.Empty):
            return []
        if code != 200:
            return []
        return sorted(s["Node"] for s in json.loads(body)["Servers"] if s["Voter"])

    def leader_now() -> int:
        return sts.wait_leader(30)[0]

    for o in (3, 4):  # scale up: the new pods join as non-voters, then autopilot promotes them
        sts.create_pod(o)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and voters() != [f"consul-{i}" for i in range(5)]:
        time.sleep(1)
    assert voters() == [f"consul-{i}" for i in range(5)]
    for o in (4, 3):  # scale down: the StatefulSet deletes the highest ordinals (no leave)
        sts.delete_pod(o, grace=2)
        del sts.pods[o]
        sts.dns_sync()
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and voters() != [f"consul-{i}" for i in range(3)]:
        time.sleep(2)
    assert voters() == [f"consul-{i}" for i in range(3)], "autopilot should remove the scaled-down servers"
    load.stop()
    del leader
    converge(sts, set(load.acked))
