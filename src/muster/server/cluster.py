"""Cluster formation and membership for servers: bootstrap, join, peer addresses, cluster id.

Identity is the node id stored on the volume, never an address.  ``PeerBook`` remembers, per
node id, the newest RPC address and name each peer announced (in the RPC ``HELLO``), and is
persisted so that a restarted server can find its peers again.  ``resolve(node_id)`` returns,
in order: the address the peer announced most recently, then every join address resolved by
DNS *now* (the handshake checks the node id, so a wrong guess costs one refused connection).

Bootstrap (``-bootstrap-expect=N``): a server with no Raft state probes the join addresses
until it sees N servers, itself included, that all expect N and none of which has state; all of
them then write the same configuration (the sorted node ids) as an identical snapshot at index
1, so even servers starting at the same instant bootstrap exactly one configuration.  A server
that finds an already-formed cluster never bootstraps: if the cluster's configuration lists it,
it adopts that configuration; otherwise it asks the leader to add it (as a non-voter that is
promoted once caught up).  A server that has state never bootstraps again.

Cluster id: derived from the bootstrap configuration and persisted; RPC refuses peers whose id
differs (a server from another cluster cannot join this one's Raft by accident).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import MusterError
from ..fsm import FSM
from ..raft.messages import ConfChangeType, ConfState, Snapshot, SnapshotMeta
from ..runtime import Clock
from .raftlog import ClusterLog, DurableStorage, ReplicatedLog
from .rpc import RPCNode

log = logging.getLogger("muster.cluster")

CLUSTER_NS = uuid.UUID("6d75737465722d636c75737465722d31")


def cluster_id_for(voters: list[str]) -> str:
    return str(uuid.uuid5(CLUSTER_NS, ",".join(sorted(voters))))


@dataclass
class Peer:
    node_id: str
    name: str = ""
    addr: str = ""  # "ip:port" of its server RPC
    last_seen: float = 0.0
    #: "server", or "client": a non-voter that is never promoted.  Client agents of this
    #: version hold no replica (``server/remote.py``); a client replica left in a Raft
    #: configuration by an older version is still dropped when that client leaves the pool.
    role: str = "server"


@dataclass
class PeerBook:
    path: str | None
    peers: dict[str, Peer] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | None) -> PeerBook:
        book = cls(path)
        if path and os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as f:
                    raw = json.load(f)
                for nid, p in raw.items():
                    book.peers[nid] = Peer(nid, str(p.get("name", "")), str(p.get("addr", "")), role=str(p.get("role", "server")))
            except (OSError, ValueError, AttributeError) as err:
                log.warning("ignoring unreadable peer book %s: %s", path, err)
        return book

    def update(self, node_id: str, info: dict[str, Any], now: float) -> None:
        p = self.peers.get(node_id) or Peer(node_id)
        changed = False
        name, addr = str(info.get("name") or p.name), str(info.get("addr") or p.addr)
        role = str(info.get("role") or p.role)
        if role != p.role:
            p.role = role
            changed = True
        if (name, addr) != (p.name, p.addr):
            changed = True
            if p.addr and addr != p.addr:
                log.info("server %s (%s) moved from %s to %s", node_id, name, p.addr, addr)
        p.name, p.addr, p.last_seen = name, addr, now
        self.peers[node_id] = p
        if changed:
            self.save()

    def save(self) -> None:
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({nid: {"name": p.name, "addr": p.addr, "role": p.role} for nid, p in self.peers.items()}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def _host_port(spec: str, default_port: int) -> tuple[str, int]:
    spec = spec.strip()
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        return host, default_port if not rest.startswith(":") else default_port
    if spec.count(":") == 1:
        host, _, _port = spec.partition(":")
        # An explicit port in -retry-join names the peer's gossip (Serf LAN) port; server RPC
        # runs on the server port, which is uniform across the cluster.
        return host, default_port
    return spec, default_port


class GossipDirectory(Protocol):
    """What formation needs from the agent's gossip pool (``muster.membership.Membership``)."""

    def rpc_address(self, node_id: str) -> str | None: ...

    def servers(self) -> list[Any]:
        """Alive servers of this datacenter (objects with ``addr`` and ``tags``)."""
        ...

    def client_left(self, node_id: str) -> bool:
        """True when the client agent ``node_id`` left the pool for good."""
        ...


class ClusterMember:
    """Formation, membership RPCs and address resolution for one server."""

    def __init__(
        self,
        node_id: str,
        node_name: str,
        rpc_addr: str,
        data_dir: str | None,
        join: list[str],
        bootstrap: bool,
        bootstrap_expect: int,
        server_port: int,
        clock: Clock,
        role: str = "server",
        log: ClusterLog | None = None,
        gossip: GossipDirectory | None = None,
        autopilot_config: Callable[[], dict[str, Any]] | None = None,
        dead_server_after: float = 60.0,
    ) -> None:
        self.role = role
        self.node_id = node_id
        self.node_name = node_name
        self.rpc_addr = rpc_addr
        self.data_dir = data_dir
        self.join = list(join)
        self.bootstrap = bootstrap
        self.expect = bootstrap_expect
        self.server_port = server_port
        self.clock = clock
        raft_dir = os.path.join(data_dir, "raft") if data_dir else None
        if raft_dir:
            os.makedirs(raft_dir, exist_ok=True)
        self._cid_path = os.path.join(raft_dir, "cluster-id") if raft_dir else None
        self.cluster_id = self._load_cluster_id()
        self.book = PeerBook.load(os.path.join(raft_dir, "peers.json") if raft_dir else None)
        self._join_addrs: list[str] = []
        self.rpc = RPCNode(node_id, lambda: self.cluster_id, self.resolve, self.info)
        self.rpc.on_peer = self._on_peer
        #: The log this server replicates (leaderless until formed; see ``ClusterLog``).
        self.log = log if log is not None else ClusterLog(clock, 7.0)
        #: A server not heard from for this long is considered gone (reconcile, replacement).
        self.dead_after = 5.0
        #: Autopilot removes a voter not heard from for this long (a restarting pod comes back
        #: well within it; a scaled-down one never does).
        self.dead_server_after = dead_server_after
        #: Returns the autopilot configuration (the replicated one, with Consul's defaults).
        self.autopilot_config = autopilot_config
        #: The agent's gossip pool when it gossips: RPC addresses and alive servers.
        self.gossip = gossip
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ identity

    def _load_cluster_id(self) -> str:
        if self._cid_path and os.path.exists(self._cid_path):
            with open(self._cid_path, encoding="ascii") as f:
                return f.read().strip()
        return ""

    def _set_cluster_id(self, cid: str) -> None:
        if cid == self.cluster_id:
            return
        if self.cluster_id and cid != self.cluster_id:
            raise MusterError(f"refusing to change cluster id from {self.cluster_id} to {cid}")
        self.cluster_id = cid
        if self._cid_path:
            tmp = self._cid_path + ".tmp"
            with open(tmp, "w", encoding="ascii") as f:
                f.write(cid)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._cid_path)

    def info(self) -> dict[str, Any]:
        return {"addr": self.rpc_addr, "name": self.node_name, "role": self.role}

    def is_client(self, node_id: str) -> bool:
        p = self.book.peers.get(node_id)
        return p is not None and p.role == "client"

    def _on_peer(self, node_id: str, info: dict[str, Any]) -> None:
        if node_id != self.node_id:
            self.book.update(node_id, info, self.clock.monotonic())

    def resolve(self, node_id: str) -> list[str]:
        """Candidate addresses of ``node_id``, newest knowledge first: gossip, the address the
        peer last announced, then every join name resolved now."""
        out: list[str] = []
        if self.gossip is not None:
            g = self.gossip.rpc_address(node_id)
            if g:
                out.append(g)
        p = self.book.peers.get(node_id)
        if p is not None and p.addr and p.addr not in out:
            out.append(p.addr)
        for a in self._join_addrs:
            if a not in out and a != self.rpc_addr:
                out.append(a)
        return out

    async def keep_addresses_fresh(self, interval: float = 5.0) -> None:
        """Re-resolve the join names forever: a peer that restarted on a new IP (same name,
        same node id) is found again through them, with no operator action."""
        while True:
            await self.refresh_join_addrs()
            await asyncio.sleep(interval)

    async def refresh_join_addrs(self) -> list[str]:
        """Resolve every join name again (all A records; a name that does not resolve yet is normal)."""
        loop = asyncio.get_running_loop()
        addrs: list[str] = []
        for spec in self.join:
            host, port = _host_port(spec, self.server_port)
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError):
                continue
            for info in infos:
                ip = str(info[4][0])
                a = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
                if a not in addrs:
                    addrs.append(a)
        self._join_addrs = addrs
        return addrs

    # ------------------------------------------------------------------ storage and log

    def has_state(self, storage: DurableStorage) -> bool:
        hs, cs = storage.initial_state()
        return bool(hs.term or cs.voters or cs.learners or storage.last_index() > 0)

    def bootstrap_storage(self, storage: DurableStorage, fsm: FSM, voters: list[str]) -> None:
        """Write the initial configuration as a snapshot at (1, 1): identical on every server."""
        conf = ConfState(voters=tuple(sorted(voters)))
        snap = Snapshot(SnapshotMeta(index=1, term=1, conf=conf), fsm.snapshot())
        storage.apply_snapshot(snap)
        sync = getattr(storage, "sync", None)
        if callable(sync):
            sync()
        self._set_cluster_id(cluster_id_for(voters))
        log.info("bootstrapped cluster %s with voters %s", self.cluster_id, ", ".join(conf.voters))

    # ------------------------------------------------------------------ RPC handlers

    async def rpc_status(self, _payload: Any) -> dict[str, Any]:
        lg = self.log.replicated
        has_state = bool(lg and (lg.core.voters or lg.core.learners))
        return {
            "id": self.node_id,
            "name": self.node_name,
            "addr": self.rpc_addr,
            "expect": self.expect,
            "cluster_id": self.cluster_id,
            "has_state": has_state,
            "voters": list(lg.core.voters) if lg else [],
            "leader": (lg.leader_id() or "") if lg else "",
        }

    async def rpc_join(self, payload: Any) -> bool:
        """Leader side of a join: add the server as a non-voter; autopilot promotes it later."""
        lg = self.log.replicated
        if lg is None or not lg.is_leader():
            raise MusterError("node is not the leader")
        nid = str(payload.get("id"))
        name = str(payload.get("name", ""))
        if nid in lg.core.voters or nid in lg.core.learners:
            self._on_peer(nid, payload)
            return True
        # A server that comes back with the same name but a new id (its volume was lost)
        # replaces the old one, but only once the old one has stopped talking to us.
        now = self.clock.monotonic()
        for old_id, peer in list(self.book.peers.items()):
            if old_id == nid or peer.name != name or not name:
                continue
            if old_id not in lg.core.voters and old_id not in lg.core.learners:
                continue
            heard = lg.last_heard.get(old_id)
            if heard is not None and now - heard < self.dead_after:
                raise MusterError(f"refusing server {nid}: a live server named {name!r} already exists with id {old_id}")
            log.info("server %s rejoined with a new id %s: removing its old id", name, nid)
            await lg.change_membership(ConfChangeType.REMOVE, old_id)
        self._on_peer(nid, payload)
        await lg.change_membership(ConfChangeType.ADD_NONVOTER, nid)
        return True

    async def rpc_remove_peer(self, payload: Any) -> bool:
        """Leader side of ``remove_peer``: drop a server (or client replica) from the configuration."""
        lg = self.log.replicated
        if lg is None or not lg.is_leader():
            raise MusterError("node is not the leader")
        nid = str(payload)
        if nid not in lg.core.voters and nid not in lg.core.learners:
            raise MusterError(f"id {nid!r} was not found in the Raft configuration")
        await lg.change_membership(ConfChangeType.REMOVE, nid)
        return True

    # ------------------------------------------------------------------ formation

    async def form(self, storage: DurableStorage, fsm: FSM, retry_interval: float) -> None:
        """Run until this server is part of a configuration (bootstrapped, adopted or joined)."""
        if self.has_state(storage):
            return
        if self.bootstrap:
            self.bootstrap_storage(storage, fsm, [self.node_id])
            return
        delay = 0.2
        while True:
            done = await self._formation_round(storage, fsm)
            if done:
                return
            await asyncio.sleep(delay)
            delay = min(max(delay * 2, 0.2), retry_interval)

    async def _formation_round(self, storage: DurableStorage, fsm: FSM) -> bool:
        addrs = await self.refresh_join_addrs()
        if self.gossip is not None:
            for m in self.gossip.servers():
                a = f"{m.addr}:{m.tags.get('port', self.server_port)}"
                if a not in addrs:
                    addrs.append(a)
        seen: dict[str, dict[str, Any]] = {}
        for a in addrs:
            if a == self.rpc_addr:
                continue
            res = await self.rpc.probe(a)
            if res is None:
                continue
            nid, st = res
            if nid == self.node_id or not isinstance(st, dict):
                continue
            seen[nid] = st
        formed = [st for st in seen.values() if st.get("has_state")]
        if formed:
            for st in formed:
                if self.role == "server" and self.node_id in st.get("voters", []):
                    self.bootstrap_storage(storage, fsm, list(st["voters"]))
                    return True
            leader = next((st.get("leader") for st in formed if st.get("leader")), "")
            if leader:
                # Join the existing cluster through its leader; wait to be replicated to.
                self._set_cluster_id(str(formed[0].get("cluster_id", "")))
                try:
                    await self.rpc.call(leader, "join", {"id": self.node_id, **self.info()}, timeout=10)
                    log.info("asked leader %s to add this %s", leader, "server" if self.role == "server" else "client agent")
                    return True
                except MusterError as err:
                    log.info("join through %s failed: %s", leader, err)
            return False
        if self.expect <= 0:
            return False
        candidates = [st for st in seen.values() if int(st.get("expect", 0)) == self.expect]
        if len(candidates) + 1 >= self.expect:
            voters = sorted([self.node_id] + [str(st["id"]) for st in candidates])[: max(self.expect, len(candidates) + 1)]
            self.bootstrap_storage(storage, fsm, voters)
            return True
        log.info("waiting for %d servers (have %d)", self.expect, len(candidates) + 1)
        return False

    async def reconcile(self, server: Any, interval: float = 2.0, dead_after: float = 5.0) -> None:
        """Leader only: keep every server of the configuration in the catalog, with a
        ``serfHealth`` check that is critical when the leader has not heard from it lately.
        (Gossip will take over liveness; until then Raft traffic is the heartbeat.)"""
        from dataclasses import replace

        while True:
            await asyncio.sleep(interval)
            lg = self.log.replicated
            if lg is None or not lg.is_leader():
                continue
            now = self.clock.monotonic()
            for nid in list(lg.core.voters) + list(lg.core.learners):
                if nid == self.node_id:
                    continue
                peer = self.book.peers.get(nid)
                if peer is None or not peer.name or not peer.addr:
                    continue
                host, _, port = peer.addr.rpartition(":")
                ident = replace(server.ident, node_name=peer.name, node_id=nid, advertise_addr=host.strip("[]"),
                                server_port=int(port), node_meta={}, advertise_addr_wan="")
                alive = now - lg.last_heard.get(nid, float("-inf")) < dead_after
                status = "passing" if alive else "critical"
                if server.catalog_matches(ident, status):
                    continue
                with contextlib.suppress(MusterError):
                    await server.apply(server.server_registration(ident, status))

    async def autopilot(self, interval: float = 1.0, stabilization: float = 2.0) -> None:
        """Leader only: promote non-voters that have caught up and stayed caught up, and remove
        servers that have been dead for ``dead_server_after`` (Consul's CleanupDeadServers),
        never going below ``min_quorum`` voters or below a healthy majority."""
        caught_up_since: dict[str, float] = {}
        leader_since: float | None = None
        while True:
            await asyncio.sleep(interval)
            lg = self.log.replicated
            if lg is None or not lg.is_leader():
                caught_up_since.clear()
                leader_since = None
                continue
            now = self.clock.monotonic()
            if leader_since is None:
                leader_since = now
            last = lg.core.log.last_index()
            for nid in [n for n in lg.core.learners if not self.is_client(n)]:
                pr = lg.core.prs.get(nid)
                if pr is None or pr.match + 10 < last:
                    caught_up_since.pop(nid, None)
                    continue
                since = caught_up_since.setdefault(nid, now)
                if now - since >= stabilization:
                    with contextlib.suppress(MusterError):
                        await lg.change_membership(ConfChangeType.ADD_VOTER, nid)
                        log.info("autopilot: promoted %s to voter", nid)
                    caught_up_since.pop(nid, None)
            await self._drop_left_clients(lg)
            await self._cleanup_dead_servers(lg, now, leader_since)

    async def _drop_left_clients(self, lg: ReplicatedLog) -> None:
        """A client agent that left the gossip pool for good stops following the log."""
        if self.gossip is None:
            return
        for nid in [n for n in lg.core.learners if self.gossip.client_left(n)]:
            with contextlib.suppress(MusterError):
                await lg.change_membership(ConfChangeType.REMOVE, nid)
                log.info("removed client %s from the replication set: it left", nid)

    async def _cleanup_dead_servers(self, lg: ReplicatedLog, now: float, leader_since: float) -> None:
        cfg = self.autopilot_config() if self.autopilot_config is not None else {}
        if not cfg.get("CleanupDeadServers", True):
            return
        min_quorum = int(cfg.get("MinQuorum", 0) or 0)
        voters = list(lg.core.voters)
        dead = [
            v for v in voters
            if v != self.node_id and now - lg.last_heard.get(v, leader_since) > self.dead_server_after
        ]
        for nid in dead:
            remaining = len(voters) - 1
            alive = len(voters) - len(dead)
            if remaining < max(min_quorum, 1) or alive < remaining // 2 + 1:
                return
            try:
                await lg.change_membership(ConfChangeType.REMOVE, nid)
            except MusterError:
                return
            name = self.book.peers[nid].name if nid in self.book.peers else nid
            log.info("autopilot: removed dead server %s (%s): not heard from for %.0fs", name, nid, self.dead_server_after)
            voters.remove(nid)
            dead.remove(nid)
            return  # one change at a time; the next pass handles the next one
