"""``ClusterOperator``: cluster control of one server, and the views of the Raft configuration.

Leadership transfer, peer removal, graceful leave, the hand-off on shutdown, the server list
(``/v1/status/*``, ``/v1/operator/raft/configuration``), autopilot health and the members seen
without gossip all live here.  This module and the other ``server/`` modules are the only code
that reads the Raft core (``core.voters``, ``core.prs``, ``last_heard``...); the HTTP handlers
and the process root call the operator.  ``serve_rpc`` is the one place where the server RPC
handlers are registered.

In ``-dev`` (no cluster) the views show one voter that is always leader, and the control
operations answer Consul's 500 with a message saying there is no Raft cluster.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import BadRequest, MusterError
from ..version import VERSION
from .cluster import ClusterMember
from .raftlog import ReplicatedLog
from .server import Server

log = logging.getLogger("muster.operator")

NOT_A_CLUSTER = "this server is not part of a Raft cluster (-dev runs a single-server log)"

#: A server RPC handler: payload in, result out (``server.rpc``).
RPCHandler = Callable[[Any], Awaitable[Any]]


class ClusterOperator:
    """Cluster control and Raft views for one server (``cluster`` is None in ``-dev``)."""

    def __init__(self, server: Server, cluster: ClusterMember | None) -> None:
        self.server = server
        self.cluster = cluster

    # ------------------------------------------------------------------ plumbing

    @property
    def clustered(self) -> bool:
        """True when this agent runs a replicated log (not ``-dev``)."""
        return self.cluster is not None

    def _raft(self) -> tuple[ClusterMember, ReplicatedLog]:
        c = self.cluster
        lg = c.log.replicated if c is not None else None
        if c is None or lg is None:
            raise MusterError(NOT_A_CLUSTER)
        return c, lg

    def _me(self) -> str:
        return self.server.ident.node_id

    def _rpc_addr(self) -> str:
        ident = self.server.ident
        return f"{ident.advertise_addr}:{ident.server_port}"

    def serve_rpc(self, http: RPCHandler | None = None, extra: dict[str, RPCHandler] | None = None) -> None:
        """Register every server RPC handler (formation, log forwarding, operator calls,
        ``http``, the answer to a forwarded request, and ``extra``: what client agents call,
        ``server/remote.py``); call once, before listening."""
        c = self.cluster
        if c is None:
            return
        handlers: dict[str, RPCHandler] = {
            "status": c.rpc_status,
            "join": c.rpc_join,
            "remove_peer": c.rpc_remove_peer,
            "apply": c.log.rpc_apply,
            "read_index": c.log.rpc_read_index,
            "transfer_leader": self.rpc_transfer_leader,
        }
        if http is not None:
            handlers["http"] = http
        handlers.update(extra or {})
        c.rpc.serve(handlers, c.log.on_raft)

    async def forward_http(self, node_id: str, method: str, path: str, query: str) -> tuple[int, str, list[list[str]], bytes]:
        """Ask server ``node_id`` to answer a GET view as if it had been sent to it."""
        if self.cluster is None:
            raise MusterError(NOT_A_CLUSTER)
        payload = {"m": method, "p": path, "q": query}
        res = await self.cluster.rpc.call(node_id, "http", payload, timeout=15)
        return int(res[0]), str(res[1]), list(res[2]), bytes(res[3])

    # ------------------------------------------------------------------ control

    def find_peer(self, pid: str, addr: str) -> str:
        """The node id named by ``?id`` or ``?address`` (``/v1/operator/raft/peer``)."""
        c, _lg = self._raft()
        if not pid and not addr:
            raise BadRequest("Must specify either ?id with the server's ID or ?address with IP:port of peer to remove")
        if pid:
            return pid
        if addr == self._rpc_addr():
            return self._me()
        for nid, p in c.book.peers.items():
            if p.addr == addr:
                return str(nid)
        raise MusterError(f"address {addr!r} was not found in the Raft configuration")

    async def remove_peer(self, nid: str) -> None:
        """Remove ``nid`` from the Raft configuration (through the leader)."""
        c, lg = self._raft()
        lead = lg.leader_id()
        if not lead:
            raise MusterError("No cluster leader")
        if lead == self._me():
            await c.rpc_remove_peer(nid)
        else:
            await c.rpc.call(lead, "remove_peer", nid, timeout=15)

    async def transfer_leader(self, target: str) -> None:
        """Hand leadership to ``target`` (empty: the most caught-up voter), through the leader."""
        c, lg = self._raft()
        if not lg.is_leader():
            lead = lg.leader_id()
            if not lead:
                raise MusterError("No cluster leader")
            await c.rpc.call(lead, "transfer_leader", target, timeout=15)
            return
        await self._transfer(lg, target)

    async def rpc_transfer_leader(self, payload: Any) -> bool:
        _c, lg = self._raft()
        if not lg.is_leader():
            raise MusterError("node is not the leader")
        await self._transfer(lg, str(payload or ""))
        return True

    def _best_voter(self, lg: ReplicatedLog, voters: list[str]) -> str:
        """The most caught-up of ``voters`` (leader's view of replication progress)."""
        return max(voters, key=lambda v: lg.core.prs[v].match if v in lg.core.prs else 0)

    async def _transfer(self, lg: ReplicatedLog, target: str) -> None:
        voters = [v for v in lg.core.voters if v != self._me()]
        if target and target not in voters:
            raise MusterError(f"cannot transfer leadership to {target!r}: not a voter")
        if not voters:
            raise MusterError("cannot transfer leadership: there is no other voter")
        if not target:
            target = self._best_voter(lg, voters)
        lg.transfer_leadership(target)
        for _ in range(100):
            await asyncio.sleep(0.05)
            if not lg.is_leader():
                return
        raise MusterError("leadership transfer timed out")

    async def leave(self, budget: float = 15.0) -> None:
        """Graceful leave, the Raft part: hand leadership over, then leave the configuration.
        A no-op in ``-dev``.  Gives up after ``budget`` seconds (the agent leaves anyway)."""
        c = self.cluster
        lg = c.log.replicated if c is not None else None
        if c is None or lg is None:
            return
        me = self._me()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        while loop.time() < deadline and me in (set(lg.core.voters) | set(lg.core.learners)):
            try:
                if lg.is_leader():
                    if len(lg.core.voters) <= 1:
                        break  # the last server: nobody to hand over to
                    await self._transfer(lg, "")
                    continue
                lead = lg.leader_id()
                if lead:
                    await c.rpc.call(lead, "remove_peer", me, timeout=5)
                    await asyncio.sleep(0.2)  # let the removal reach us
                    break
            except (MusterError, TimeoutError) as err:
                log.info("leave: retrying after %s", err)
            await asyncio.sleep(0.2)

    async def hand_off_leadership(self, timeout: float = 3.0) -> None:
        """On shutdown a leader transfers leadership to its most caught-up peer first, so a pod
        deletion or a rolling restart costs one round trip instead of an election timeout.
        (The server stays in the configuration: it is expected back, as in Consul.)"""
        c = self.cluster
        lg = c.log.replicated if c is not None else None
        if c is None or lg is None or not lg.is_leader():
            return
        others = [v for v in lg.core.voters if v != self._me()]
        if not others:
            return
        target = self._best_voter(lg, others)
        log.info("handing leadership to %s before shutting down", target)
        lg.transfer_leadership(target)
        deadline = c.clock.monotonic() + timeout
        while lg.is_leader() and c.clock.monotonic() < deadline:
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------------ views

    def servers(self) -> list[dict[str, Any]]:
        """The Raft configuration as Consul shows it (``-dev``: one voter, always leader)."""
        ident = self.server.ident
        slog = self.server.log
        c = self.cluster
        if c is None:
            return [
                {
                    "ID": ident.node_id,
                    "Node": ident.node_name,
                    "Address": self._rpc_addr(),
                    "Leader": slog.is_leader(),
                    "Voter": True,
                    "ProtocolVersion": "3",
                    "LastIndex": slog.last_index(),
                }
            ]
        lg = c.log.replicated
        if lg is None:
            return []
        core = lg.core
        lead = lg.leader_id()
        out = []
        learners = [v for v in core.learners if not c.is_client(v)]  # client agents are not servers
        for nid, voter in [(v, True) for v in core.voters] + [(v, False) for v in learners]:
            if nid == ident.node_id:
                name, addr, last = ident.node_name, self._rpc_addr(), lg.last_index()
            else:
                peer = c.book.peers.get(nid)
                name, addr = (peer.name, peer.addr) if peer else ("", "")
                pr = core.prs.get(nid) if lg.is_leader() else None
                last = pr.match if pr is not None else 0
            out.append(
                {
                    "ID": nid,
                    "Node": name,
                    "Address": addr,
                    "Leader": nid == lead,
                    "Voter": voter,
                    "ProtocolVersion": "3",
                    "LastIndex": last,
                }
            )
        return out

    def autopilot_health(self) -> dict[str, Any]:
        """A server is healthy when the leader heard from it within 2 s and it trails by at most
        250 entries (Consul's LastContactThreshold and MaxTrailingLogs)."""
        server = self.server
        ident = server.ident
        since = datetime.datetime.fromtimestamp(server.started_at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        slog = server.log
        rlog = self.cluster.log.replicated if self.cluster is not None else None
        heard: dict[str, float] = rlog.last_heard if rlog is not None else {}
        now = server.clock.monotonic()
        leader_last = slog.last_index()
        out = []
        for s in self.servers():
            if s["Leader"] or s["ID"] == ident.node_id:
                contact = 0.0 if s["Leader"] else slog.last_contact()
            else:
                contact = now - heard[s["ID"]] if s["ID"] in heard else float("inf")
            healthy = contact < 2.0 and (s["Leader"] or leader_last - s["LastIndex"] <= 250 or not slog.is_leader())
            out.append(
                {
                    "ID": s["ID"],
                    "Name": s["Node"],
                    "Address": s["Address"],
                    "SerfStatus": "alive" if contact < 10 else "failed",
                    "Version": VERSION,
                    "Leader": s["Leader"],
                    "LastContact": "0s" if contact == 0 else (f"{contact * 1000:.3f}ms" if contact != float("inf") else "-1ns"),
                    "LastTerm": slog.term(),
                    "LastIndex": s["LastIndex"],
                    "Healthy": bool(healthy),
                    "Voter": s["Voter"],
                    "StableSince": since,
                }
            )
        voters = [s for s in out if s["Voter"]]
        healthy_voters = sum(1 for s in voters if s["Healthy"])
        quorum = len(voters) // 2 + 1
        return {
            "Healthy": bool(out) and all(s["Healthy"] for s in out),
            "FailureTolerance": max(0, healthy_voters - quorum),
            "Servers": out,
        }

    def raft_members(self, me: dict[str, Any], wan: bool, datacenter: str) -> list[dict[str, Any]]:
        """Members when the agent does not gossip: ``me`` (this agent's member record) plus the
        servers of the Raft configuration, alive while this server heard from them lately (the
        leader hears from everyone; a follower only from the leader, so followers report what
        the leader's reconcile wrote into the catalog)."""
        out = [me]
        c = self.cluster
        lg = c.log.replicated if c is not None else None
        if c is None or lg is None:
            return out
        now = c.clock.monotonic()
        for nid in list(lg.core.voters) + list(lg.core.learners):
            if nid == self._me():
                continue
            peer = c.book.peers.get(nid)
            if peer is None or not peer.addr:
                continue
            host, _, port = peer.addr.rpartition(":")
            if lg.is_leader():
                heard = lg.last_heard.get(nid)
                alive = heard is not None and now - heard < c.dead_after
            elif nid == lg.leader_id():
                alive = lg.last_contact() < c.dead_after
            else:  # what the leader's reconcile wrote into the catalog
                chk = self.server.store.checks.get(peer.name, {}).get("serfHealth")
                alive = chk is not None and chk.status == "passing"
            m = dict(me, Name=f"{peer.name}.{datacenter}" if wan else peer.name, Addr=host.strip("[]"))
            m["Tags"] = dict(me["Tags"], id=nid, port=port)
            m["Status"] = 1 if alive else 4
            out.append(m)
        return out
