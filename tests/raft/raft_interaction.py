"""Command handlers for the Raft transcript tests (tests/raft/testdata/*.txt).

Vocabulary (etcd's, plus our ``partition``/``crash``):

* ``add-nodes N [voters=(..)] [learners=(..)] [join=true] [pre-vote=false]
  [check-quorum=false] [snapshot-every=K] [trailing=T] [chunk=B] [max-msg-bytes=B] [inflight=N]``
* ``campaign ID``, ``propose ID DATA``, ``propose-conf-change ID add-voter|add-nonvoter|remove NODE``
* ``read-index ID CTX``, ``transfer-leadership FROM TO``
* ``tick-election ID`` (ticks exactly until the node's election timer fires;
  for a leader, one election timeout, which runs check-quorum),
  ``tick-heartbeat ID``, ``tick ID [N]``
* ``stabilize [IDS..]``: handle Readys and deliver messages until quiet
* ``process-ready ID..``, ``deliver-msgs ID.. [drop=true]``
* ``partition A,B / C``, ``heal``, ``crash ID``, ``restart ID``, ``snapshot ID``
* ``raft-state``, ``raft-log ID``, ``status ID``
"""

from __future__ import annotations

from datadriven import Cmd
from muster.raft.core import RaftConfig, RaftCore
from muster.raft.errors import RaftError
from muster.raft.messages import ConfChangeType, ConfState, Message
from muster_testkit.raft.simnode import SimNode, fmt_entry, fmt_msg, fmt_ready

_CC = {
    "add-voter": ConfChangeType.ADD_VOTER,
    "add-nonvoter": ConfChangeType.ADD_NONVOTER,
    "remove": ConfChangeType.REMOVE,
}


class InteractionEnv:
    def __init__(self) -> None:
        self.nodes: dict[str, SimNode] = {}
        self.queues: dict[str, list[Message]] = {}
        self.groups: list[set[str]] | None = None
        self.out: list[str] = []

    # -- helpers ------------------------------------------------------------------
    def node(self, nid: str) -> SimNode:
        if nid not in self.nodes:
            raise KeyError(f"no node {nid}")
        return self.nodes[nid]

    def emit(self, line: str) -> None:
        self.out.append(line)

    def connected(self, a: str, b: str) -> bool:
        if self.groups is None:
            return True
        return any(a in g and b in g for g in self.groups)

    def send(self, m: Message) -> None:
        # Messages to a crashed node are lost (its socket is gone).
        if m.to in self.nodes and self.nodes[m.to].alive and self.connected(m.frm, m.to):
            self.queues[m.to].append(m)

    def process_ready(self, nid: str) -> bool:
        n = self.node(nid)
        if n.core is None or not n.core.has_ready():
            return False
        self.emit(f"> {nid} handling Ready")
        rd = n.handle_ready(self.send)
        assert rd is not None
        self.out.extend("  " + line for line in fmt_ready(rd))
        return True

    def deliver(self, nid: str, drop: bool = False) -> bool:
        msgs, self.queues[nid] = self.queues[nid], []
        if not msgs:
            return False
        n = self.node(nid)
        if n.core is None or drop:
            self.emit(f"> {nid} dropping messages")
            self.out.extend("  " + fmt_msg(m) for m in msgs)
            return True
        self.emit(f"> {nid} receiving messages")
        for m in msgs:
            self.emit("  " + fmt_msg(m))
            if self.connected(m.frm, m.to):
                n.core.step(m)
        return True

    def stabilize(self, ids: list[str]) -> None:
        for _ in range(10_000):
            progress = False
            for nid in ids:
                progress |= self.process_ready(nid)
            for nid in ids:
                progress |= self.deliver(nid)
            if not progress:
                return
        raise AssertionError("stabilize did not converge")

    # -- command dispatch -------------------------------------------------------------
    def handle(self, cmd: Cmd) -> str:
        self.out = []
        fn = getattr(self, "cmd_" + cmd.name.replace("-", "_"), None)
        if fn is None:
            raise ValueError(f"{cmd.where}: unknown command {cmd.name}")
        try:
            fn(cmd)
        except RaftError as e:
            self.emit(f"error: {type(e).__name__}: {e}")
        return "\n".join(self.out) or "ok"

    def cmd_add_nodes(self, cmd: Cmd) -> None:
        n = int(cmd.pos[0])
        start = len(self.nodes) + 1
        ids = [str(i) for i in range(start, start + n)]
        if cmd.get("join") == "true":
            conf = ConfState()
        else:
            voters = cmd.kw.get("voters", ids)
            conf = ConfState(tuple(voters), tuple(cmd.kw.get("learners", [])))
        config = RaftConfig(
            election_ticks=cmd.int("election", 10),
            heartbeat_ticks=1,
            pre_vote=cmd.get("pre-vote", "true") == "true",
            check_quorum=cmd.get("check-quorum", "true") == "true",
            snapshot_chunk_bytes=cmd.int("chunk", 64 * 1024),
            max_msg_bytes=cmd.int("max-msg-bytes", 1 << 20),
            max_inflight_msgs=cmd.int("inflight", 256),
        )
        for i, nid in enumerate(ids):
            self.nodes[nid] = SimNode(
                nid,
                conf,
                config,
                seed=start + i,
                snapshot_every=cmd.int("snapshot-every", 0),
                trailing_logs=cmd.int("trailing", 5),
            )
            self.queues[nid] = []
            self.emit(f"{nid}: voters=({','.join(conf.voters)}) learners=({','.join(conf.learners)})")

    def cmd_campaign(self, cmd: Cmd) -> None:
        self._core(cmd.pos[0]).campaign()

    def _core(self, nid: str) -> RaftCore:
        core = self.node(nid).core
        if core is None:
            raise ValueError(f"node {nid} is down")
        return core

    def cmd_propose(self, cmd: Cmd) -> None:
        idx, term = self._core(cmd.pos[0]).propose(cmd.pos[1].encode())
        self.emit(f"proposed at {term}/{idx}")

    def cmd_propose_conf_change(self, cmd: Cmd) -> None:
        idx, term = self._core(cmd.pos[0]).propose_conf_change(_CC[cmd.pos[1]], cmd.pos[2])
        self.emit(f"proposed at {term}/{idx}")

    def cmd_read_index(self, cmd: Cmd) -> None:
        self._core(cmd.pos[0]).read_index(cmd.pos[1].encode())

    def cmd_transfer_leadership(self, cmd: Cmd) -> None:
        self._core(cmd.pos[0]).transfer_leadership(cmd.pos[1])

    def cmd_tick_election(self, cmd: Cmd) -> None:
        core = self._core(cmd.pos[0])
        if core.role.name == "LEADER":
            n = core.cfg.election_ticks - core.election_elapsed
        else:
            n = max(1, core.randomized_election_timeout - core.election_elapsed)
        for _ in range(n):
            core.tick()

    def cmd_tick_heartbeat(self, cmd: Cmd) -> None:
        core = self._core(cmd.pos[0])
        for _ in range(core.cfg.heartbeat_ticks):
            core.tick()

    def cmd_tick(self, cmd: Cmd) -> None:
        core = self._core(cmd.pos[0])
        for _ in range(int(cmd.pos[1]) if len(cmd.pos) > 1 else 1):
            core.tick()

    def cmd_stabilize(self, cmd: Cmd) -> None:
        self.stabilize(cmd.pos or sorted(self.nodes, key=int))

    def cmd_process_ready(self, cmd: Cmd) -> None:
        for nid in cmd.pos:
            self.process_ready(nid)

    def cmd_deliver_msgs(self, cmd: Cmd) -> None:
        drop = cmd.get("drop") == "true"
        for nid in cmd.pos:
            self.deliver(nid, drop=drop)

    def cmd_partition(self, cmd: Cmd) -> None:
        groups: list[set[str]] = []
        cur: set[str] = set()
        for tok in cmd.pos:
            if tok == "/":
                groups.append(cur)
                cur = set()
            else:
                cur |= set(tok.split(","))
        groups.append(cur)
        rest = set(self.nodes) - set().union(*groups)
        groups += [{r} for r in rest]
        self.groups = groups
        self.emit(" / ".join(",".join(sorted(g, key=int)) for g in groups))

    def cmd_heal(self, cmd: Cmd) -> None:
        self.groups = None

    def cmd_crash(self, cmd: Cmd) -> None:
        nid = cmd.pos[0]
        lost = self.node(nid).crash()
        self.queues[nid] = []
        self.emit(f"{nid} crashed, {lost} unsynced write(s) lost")

    def cmd_restart(self, cmd: Cmd) -> None:
        nid = cmd.pos[0]
        self.node(nid).restart()
        self._status(nid)

    def cmd_snapshot(self, cmd: Cmd) -> None:
        snap = self.node(cmd.pos[0]).snapshot_now()
        self.emit(f"snapshot at {snap.meta.term}/{snap.meta.index}, log compacted to {snap.meta.index}")

    def _status(self, nid: str) -> None:
        n = self.node(nid)
        if n.core is None:
            self.emit(f"{nid}: down")
            return
        c = n.core
        kind = "Voter" if nid in c.voters else "Learner" if nid in c.learners else "None"
        self.emit(
            f"{nid}: {c.role.value} ({kind}) Term:{c.term} Lead:{c.lead or '-'} Commit:{c.committed}"
            f" Applied:{c.applied} Last:{c.log.last_index()} FSM:{n.fsm.count}"
        )

    def cmd_raft_state(self, cmd: Cmd) -> None:
        for nid in sorted(self.nodes, key=int):
            self._status(nid)

    def cmd_status(self, cmd: Cmd) -> None:
        core = self._core(cmd.pos[0])
        self._status(cmd.pos[0])
        for nid, pr in sorted(core.prs.items(), key=lambda kv: int(kv[0])):
            if core.role.name == "LEADER":
                self.emit(f"  {nid}: {pr!r}{' learner' if pr.is_learner else ''}")

    def cmd_raft_log(self, cmd: Cmd) -> None:
        core = self._core(cmd.pos[0])
        first = core.log.first_index()
        ents = core.log.entries_from(first)
        if not ents:
            self.emit(f"log is empty: first index={first}, last index={core.log.last_index()}")
        self.out.extend(fmt_entry(e) for e in ents)
