"""The Raft driver, RPC and formation in one process: three servers on 127.0.0.1-3.

Storage is in memory here (the durable store has its own tests); everything else is real:
sockets, the RPC handshake, bootstrap-expect, forwarding from followers, ReadIndex.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from muster.errors import NoLeader
from muster.raft.storage import DiskStorage, MemoryStorage
from muster.runtime import RealClock, Rng
from muster.server.cluster import ClusterMember, cluster_id_for
from muster.server.operator import ClusterOperator
from muster.server.raftlog import ClusterLog, RaftTimings, ReplicatedLog
from muster.server.rpc import RPCNode
from muster.server.server import Server, ServerIdentity
from muster.structs import KVSCommand


def _free_port() -> int:
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            for ip in ("127.0.0.2", "127.0.0.3"):
                with socket.socket() as s2:
                    s2.bind((ip, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port")


class Node:
    def __init__(self, i: int, port: int, ids: list[str]) -> None:
        self.ip = f"127.0.0.{i + 1}"
        self.id = ids[i]
        ident = ServerIdentity(f"s{i}", self.id, "dc1", self.ip, port)
        self.clog = ClusterLog(RealClock(), 1.0)
        self.server = Server(ident, log_impl=self.clog, clock=RealClock(), rng=Rng(i))
        self.cluster = ClusterMember(
            self.id, f"s{i}", f"{self.ip}:{port}", None, [f"127.0.0.{j + 1}" for j in range(3)], False, 3, port, RealClock(),
            log=self.clog,
        )
        ClusterOperator(self.server, self.cluster).serve_rpc()
        self.port = port
        self.storage = MemoryStorage()
        self.log: ReplicatedLog | None = None

    async def start(self, seed: int) -> None:
        await self.cluster.rpc.listen(self.ip, self.port)
        await self.cluster.form(self.storage, self.server.fsm, 1.0)
        lg = ReplicatedLog(self.id, self.server.fsm, self.storage, self.cluster.rpc, RealClock(), random.Random(seed),
                           RaftTimings(tick=0.02, rpc_hold_timeout=1.0), on_leader_change=self.server.leader_changed)
        self.clog.attach(lg)
        self.log = lg
        await lg.start()

    async def stop(self) -> None:
        if self.log is not None:
            await self.log.stop()
        await self.server.stop()
        await self.cluster.rpc.close()


class DiskNode(Node):
    """A node on a real DiskStorage with fsync: the driver's fsync runs in a worker thread,
    overlapping the MsgApps already sent and the apply of committed entries."""

    def __init__(self, i: int, port: int, ids: list[str], root: Path) -> None:
        super().__init__(i, port, ids)
        self.disk = DiskStorage(root / f"n{i}")

    async def start(self, seed: int) -> None:
        await self.cluster.rpc.listen(self.ip, self.port)
        await self.cluster.form(self.disk, self.server.fsm, 1.0)
        lg = ReplicatedLog(self.id, self.server.fsm, self.disk, self.cluster.rpc, RealClock(), random.Random(seed),
                           RaftTimings(tick=0.02, rpc_hold_timeout=2.0), sync=self.disk.sync,
                           on_leader_change=self.server.leader_changed)
        self.clog.attach(lg)
        self.log = lg
        await lg.start()


@pytest.fixture
async def nodes() -> AsyncIterator[list[Node]]:
    port = _free_port()
    ids = [f"id-{i}" for i in range(3)]
    ns = [Node(i, port, ids) for i in range(3)]
    await asyncio.wait_for(asyncio.gather(*(n.start(i) for i, n in enumerate(ns))), 10)
    try:
        yield ns
    finally:
        for n in ns:
            await n.stop()


async def leader_of(ns: list[Node]) -> Node:
    for _ in range(200):
        leaders = [n for n in ns if n.log and n.log.is_leader()]
        if len(leaders) == 1 and all(n.log and n.log.leader_id() == leaders[0].id for n in ns):
            return leaders[0]
        await asyncio.sleep(0.02)
    raise AssertionError("no leader")


async def test_bootstrap_expect_forms_one_cluster(nodes: list[Node]) -> None:
    await leader_of(nodes)
    cids = {n.cluster.cluster_id for n in nodes}
    assert cids == {cluster_id_for([n.id for n in nodes])}
    for n in nodes:
        assert n.log is not None and sorted(n.log.core.voters) == sorted(x.id for x in nodes)


async def test_writes_forwarded_and_replicated_identically(nodes: list[Node]) -> None:
    lead = await leader_of(nodes)
    follower = next(n for n in nodes if n is not lead)
    assert await follower.server.apply(KVSCommand(op="set", key="a", value=b"1")) is True
    results = await asyncio.gather(*(nodes[k % 3].server.apply(KVSCommand(op="cas", key=f"k{k}", value=b"x", index=0)) for k in range(300)))
    assert all(r is True for r in results)
    for n in nodes:
        await n.server.check_read("consistent")
    await asyncio.sleep(0.1)
    snaps = {n.server.store.snapshot() for n in nodes}
    assert len(snaps) == 1
    assert len(lead.server.store.kvs) == 301


async def test_follower_consistent_read_sees_acknowledged_write(nodes: list[Node]) -> None:
    lead = await leader_of(nodes)
    follower = next(n for n in nodes if n is not lead)
    for i in range(20):
        await lead.server.apply(KVSCommand(op="set", key="seq", value=str(i).encode()))
        await follower.server.check_read("consistent")
        e = follower.server.store.kvs["seq"]
        assert e.value == str(i).encode()


async def test_concurrent_consistent_reads_share_readindex_rounds(nodes: list[Node]) -> None:
    """``?consistent`` reads are batched: at most one ReadIndex round is in flight and every
    read arriving meanwhile joins the next one, so 200 concurrent reads take far fewer rounds
    than reads; each still sees every write acknowledged before it started."""
    lead = await leader_of(nodes)
    assert lead.log is not None
    await lead.server.check_read("consistent")  # the first round (needs the no-op committed)
    rounds_before = lead.log._read_seq

    async def write_then_read(i: int) -> bytes:
        await lead.server.apply(KVSCommand(op="set", key=f"r{i}", value=str(i).encode()))
        await lead.server.check_read("consistent")
        return lead.server.store.kvs[f"r{i}"].value

    values = await asyncio.gather(*(write_then_read(i) for i in range(200)))
    assert values == [str(i).encode() for i in range(200)]
    reads = await asyncio.gather(*(lead.server.check_read("consistent") for _ in range(200)))
    assert len(reads) == 200
    rounds = lead.log._read_seq - rounds_before
    assert 1 <= rounds < 100, rounds
    assert not lead.log._reads and lead.log._read_next is None and not lead.log._read_round_active


async def test_a_reader_that_goes_away_does_not_cancel_the_shared_round(nodes: list[Node]) -> None:
    """Readers share one future per ReadIndex round; one of them being cancelled (its client
    hung up) must leave the round, and every other reader of it, untouched."""
    lead = await leader_of(nodes)
    assert lead.log is not None
    await lead.server.check_read("consistent")
    readers = [asyncio.ensure_future(lead.server.check_read("consistent")) for _ in range(20)]
    await asyncio.sleep(0)  # every reader has joined a round
    readers[3].cancel()
    results = await asyncio.gather(*readers, return_exceptions=True)
    assert isinstance(results[3], asyncio.CancelledError)
    assert all(r is None for i, r in enumerate(results) if i != 3)
    await lead.server.check_read("consistent")  # rounds still start afterwards


async def test_on_disk_with_fsync_every_server_reads_its_own_writes(tmp_path: Path) -> None:
    """Real fsyncs (the leader's overlapping its MsgApps): writes through every server, each
    followed by a ``?consistent`` read on the same server that must see it; the replicas end
    identical and the leader's counters saw batches."""
    port = _free_port()
    ids = [f"id-{i}" for i in range(3)]
    ns = [DiskNode(i, port, ids, tmp_path) for i in range(3)]
    await asyncio.wait_for(asyncio.gather(*(n.start(i) for i, n in enumerate(ns))), 10)
    try:
        lead = await leader_of(list(ns))

        async def writer(k: int) -> None:
            for j in range(30):
                n = ns[(k + j) % 3]
                await n.server.apply(KVSCommand(op="set", key=f"k{k}", value=str(j).encode()))
                await n.server.check_read("consistent")
                assert n.server.store.kvs[f"k{k}"].value == str(j).encode()

        await asyncio.gather(*(writer(k) for k in range(16)))
        for n in ns:
            await n.server.check_read("consistent")
        assert lead.log is not None and 0 < lead.log.fsyncs <= lead.log.fsynced_logs
        for _ in range(100):
            if len({n.server.store.snapshot() for n in ns}) == 1:
                break
            await asyncio.sleep(0.02)
        assert len({n.server.store.snapshot() for n in ns}) == 1
    finally:
        for n in ns:
            await n.stop()


async def test_isolated_leader_refuses_consistent_reads(nodes: list[Node]) -> None:
    lead = await leader_of(nodes)
    others = [n for n in nodes if n is not lead]
    for n in others:  # cut the leader off: its followers stop answering
        assert n.log is not None
        await n.log.stop()
        await n.cluster.rpc.close()
    with pytest.raises(NoLeader):
        await lead.server.check_read("consistent")


async def test_rpc_refuses_peer_from_another_cluster() -> None:
    a = RPCNode("a", lambda: "cluster-A", lambda _n: [])
    b = RPCNode("b", lambda: "cluster-B", lambda _n: [])
    port = await a.listen("127.0.0.1", 0)
    try:
        assert await b.probe(f"127.0.0.1:{port}") is None
        c = RPCNode("c", lambda: "cluster-A", lambda _n: [])

        async def status(_p: object) -> str:
            return "ok"

        a.handlers["status"] = status
        assert await c.probe(f"127.0.0.1:{port}") == ("a", "ok")
        await c.close()
    finally:
        await a.close()
        await b.close()


class FlakyStorage(MemoryStorage):
    """Memory storage whose writes fail with ENOSPC while ``full`` is set."""

    full = False

    def append(self, ents: list) -> None:  # type: ignore[type-arg]
        if self.full:
            raise OSError(28, "No space left on device")
        super().append(ents)


async def test_full_disk_fails_writes_and_loses_nothing() -> None:
    from muster.errors import MusterError

    port = _free_port()
    ident = ServerIdentity("solo", "solo-id", "dc1", "127.0.0.1", port)
    clog = ClusterLog(RealClock(), 1.0)
    server = Server(ident, log_impl=clog, clock=RealClock(), rng=Rng(1))
    cl = ClusterMember("solo-id", "solo", f"127.0.0.1:{port}", None, [], True, 0, port, RealClock(), log=clog)
    ClusterOperator(server, cl).serve_rpc()
    await cl.rpc.listen("127.0.0.1", port)
    st = FlakyStorage()
    await cl.form(st, server.fsm, 1.0)
    lg = ReplicatedLog("solo-id", server.fsm, st, cl.rpc, RealClock(), random.Random(1), RaftTimings(tick=0.02, rpc_hold_timeout=1.0),
                       on_leader_change=server.leader_changed)
    clog.attach(lg)
    await lg.start()
    try:
        for _ in range(200):
            if lg.is_leader():
                break
            await asyncio.sleep(0.02)
        assert await server.apply(KVSCommand(op="set", key="before", value=b"1")) is True
        st.full = True
        with pytest.raises(MusterError) as info:
            await asyncio.wait_for(server.apply(KVSCommand(op="set", key="during", value=b"1")), 5)
        assert "No space left on device" in str(info.value)
        assert "during" not in server.store.kvs
        st.full = False
        for _ in range(200):
            if not lg.persist_error:
                break
            await asyncio.sleep(0.05)
        assert await asyncio.wait_for(server.apply(KVSCommand(op="set", key="after", value=b"1")), 5) is True
        assert "before" in server.store.kvs and "after" in server.store.kvs
    finally:
        await lg.stop()
        await server.stop()
        await cl.rpc.close()


async def test_snapshot_does_not_stop_writes_and_holds_the_state_it_was_taken_at(tmp_path: Path) -> None:
    """A Raft snapshot is encoded step by step with the loop handed back between steps and
    written in a worker thread: writes proposed while it is being taken are applied and
    acknowledged before it finishes, and the snapshot installed holds the state at its index
    (none of those writes), after which the log is compacted behind it."""
    from muster.fsm import FSM
    from muster.raft.storage import DiskStorage

    port = _free_port()
    ident = ServerIdentity("solo", "solo-id", "dc1", "127.0.0.1", port)
    clog = ClusterLog(RealClock(), 1.0)
    server = Server(ident, log_impl=clog, clock=RealClock(), rng=Rng(1))
    cl = ClusterMember("solo-id", "solo", f"127.0.0.1:{port}", None, [], True, 0, port, RealClock(), log=clog)
    ClusterOperator(server, cl).serve_rpc()
    await cl.rpc.listen("127.0.0.1", port)
    st = DiskStorage(tmp_path / "raft")
    await cl.form(st, server.fsm, 1.0)
    lg = ReplicatedLog("solo-id", server.fsm, st, cl.rpc, RealClock(), random.Random(1),
                       RaftTimings(tick=0.02, rpc_hold_timeout=1.0, snapshot_threshold=20,
                                   snapshot_interval=0, trailing_logs=5),
                       on_leader_change=server.leader_changed)
    clog.attach(lg)
    release = asyncio.Event()
    captured: list[int] = []
    real_stream = server.fsm.snapshot_stream

    def slow_stream() -> Iterator[bytes]:
        captured.append(server.fsm.last_applied)
        inner = real_stream()

        def pieces() -> Iterator[bytes]:
            yield from inner
            for _ in range(1_000_000):  # empty pieces (one loop turn each) until released
                if release.is_set():
                    return
                yield b""

        return pieces()

    server.fsm.snapshot_stream = slow_stream  # type: ignore[method-assign]
    await lg.start()
    try:
        for _ in range(200):
            if lg.is_leader():
                break
            await asyncio.sleep(0.02)
        k = 0
        while not captured:
            assert k < 100, "no snapshot was started"
            assert await server.apply(KVSCommand(op="set", key=f"before/{k:03d}", value=b"1")) is True
            k += 1
        assert lg._snapshotting is not None
        for i in range(30):  # acknowledged while the snapshot is still being taken
            assert await asyncio.wait_for(server.apply(KVSCommand(op="set", key=f"during/{i:02d}", value=b"1")), 10) is True
        assert lg._snapshotting is not None and st.snapshot().meta.index < captured[0]
        lg._snap_schedule.threshold = 1 << 40  # no second snapshot once this one is done
        release.set()
        for _ in range(500):
            if lg._snapshotting is None and st.snapshot().meta.index >= captured[0]:
                break
            await asyncio.sleep(0.02)
        snap = st.snapshot()
        assert snap.meta.index == captured[0]
        assert st.first_index() > 1  # compacted behind the snapshot
        other = FSM()
        other.restore(snap.data, snap.meta.index)
        keys = set(other.store.kvs)
        # The snapshot may be captured while the last "before" write is proposed but not yet
        # applied (the schedule counts the log's last index, as hashicorp/raft does).
        before = sorted(key for key in keys if key.startswith("before/"))
        assert before == [f"before/{j:03d}" for j in range(len(before))] and len(before) >= k - 1
        assert not any(key.startswith("during/") for key in keys)
    finally:
        await lg.stop()
        await server.stop()
        await cl.rpc.close()
        st.close()
