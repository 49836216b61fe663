"""``Server``: the store, the FSM and the log, plus the loops only a leader runs.

Writes enter through ``apply``: the leader stamps the wall time into commands whose effect
depends on time, proposes them to the log and returns the FSM's result; a refused command
(``StateError``) is raised to the caller with Consul's text.  Reads call ``check_read`` first:
``stale`` is always served locally; the default mode needs a known leader; ``consistent`` also
waits on the log's read barrier (ReadIndex on a cluster).

Leader-only work: session TTL timers (expiry at 2 x TTL since create or last renew, restarted
from zero on a new leader, as in Consul), tombstone reaping, and registering this server's own
node, ``serfHealth`` check and ``consul`` service in the catalog.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from ..durations import parse_duration
from ..errors import MusterError
from ..fsm import FSM
from ..runtime import Clock, RealClock, Rng
from ..state.kvhistory import HistoryPolicy
from ..state.rows import Session
from ..state.store import StateStore
from ..structs import (
    DeregisterCommand,
    KVSCommand,
    RegisterCommand,
    SessionCommand,
    TombstoneCommand,
    TxnCommand,
)
from ..telemetry.metrics import METRICS
from .devlog import DevLog
from .log import PENDING, Log

log = logging.getLogger("muster.server")

SESSION_TTL_MULTIPLIER = 2
TOMBSTONE_TTL = 15 * 60.0
SERF_CHECK_ID = "serfHealth"
SERF_CHECK_NAME = "Serf Health Status"
SERF_ALIVE = "Agent alive and reachable"
SERF_DEAD = "Agent not live or unreachable"

#: The endpoint timing Consul reports for each kind of write (milliseconds, a sample).
APPLY_METRIC: dict[type[Any], str] = {
    KVSCommand: "kvs.apply",
    TxnCommand: "txn.apply",
    RegisterCommand: "catalog.register",
    DeregisterCommand: "catalog.deregister",
    SessionCommand: "session.apply",
}
_APPLY_SERIES = {cls: METRICS.series(key) for cls, key in APPLY_METRIC.items()}


@dataclass
class ServerIdentity:
    node_name: str
    node_id: str
    datacenter: str
    advertise_addr: str
    server_port: int = 8300
    serf_lan_port: int = 8301
    version: str = ""
    node_meta: dict[str, str] = field(default_factory=dict)
    advertise_addr_wan: str = ""


class Server:
    def __init__(
        self,
        ident: ServerIdentity,
        log_impl: Log | None = None,
        clock: Clock | None = None,
        rng: Rng | None = None,
        kv_history: HistoryPolicy | None = None,
    ) -> None:
        self.ident = ident
        self.clock = clock or RealClock()
        self.rng = rng or Rng()
        self.fsm = FSM(StateStore(kv_history))
        self.store = self.fsm.store
        self.log: Log = log_impl if log_impl is not None else DevLog(self.fsm, ident.node_id, self.clock)
        self.fsm.on_apply = self._on_apply
        self._session_timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._reaped_upto = 0
        self.started_at = self.clock.wall()
        #: Coroutines run, in order, each time this server becomes leader (ACL bootstrap...).
        self.leader_hooks: list[Callable[[], Awaitable[None]]] = []

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start leader-only duties now if this server already leads (the single-server log)."""
        if self.log.is_leader():
            await self.on_leadership()
        self._tasks.append(asyncio.create_task(self._tombstone_loop(), name="tombstone-gc"))

    def leader_changed(self, is_leader: bool) -> None:
        """Called by a replicated log when this server gains or loses leadership."""
        if is_leader:
            task = asyncio.create_task(self._become_leader())
            self._tasks.append(task)
            task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)
        else:
            for h in self._session_timers.values():
                h.cancel()
            self._session_timers.clear()

    async def _become_leader(self) -> None:
        try:
            await self.on_leadership()
        except MusterError as err:
            log.warning("leader setup failed: %s", err)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``coro`` as a task of this server: ``stop()`` cancels and awaits it."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)
        return task

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        self._tasks.clear()
        for h in self._session_timers.values():
            h.cancel()
        self._session_timers.clear()

    async def on_leadership(self) -> None:
        """Run when this server becomes leader: reconcile itself, restart session timers."""
        await self.register_self()
        for sid, sess in list(self.store.sessions.items()):
            self._arm_session_timer(sid, sess.ttl)
        for hook in self.leader_hooks:
            await hook()

    # ------------------------------------------------------------------ writes

    def is_leader(self) -> bool:
        return self.log.is_leader()

    async def apply(self, cmd: Any) -> Any:
        """Propose ``cmd`` and return its result; raise the store's refusal as a MusterError.

        Timed as Consul times the endpoint behind it (``consul.kvs.apply``, ``consul.txn.apply``,
        ``consul.catalog.register``...), from the request to the applied result."""
        started = perf_counter()
        try:
            res = await self.log.propose(cmd)
        finally:
            series = _APPLY_SERIES.get(type(cmd))
            if series is not None:
                series.measure_since(started)
        if isinstance(res, MusterError):
            raise res
        return res

    def apply_now(self, cmd: Any) -> Any:
        """Apply ``cmd`` without awaiting when the log can (the single-server log: the hot KV
        path pays no task switch); ``PENDING`` when it cannot (then ``await apply(cmd)``)."""
        started = perf_counter()
        res = self.log.propose_now(cmd)
        if res is not PENDING:
            series = _APPLY_SERIES.get(type(cmd))
            if series is not None:
                series.measure_since(started)
            if isinstance(res, MusterError):
                raise res
        return res

    # ------------------------------------------------------------------ reads

    def known_leader(self) -> bool:
        return self.log.leader_id() is not None

    def last_contact_ms(self) -> int:
        return int(self.log.last_contact() * 1000)

    async def check_read(self, consistency: str) -> None:
        """Stale reads are local; others need the leader (ReadIndex when ``consistent``)."""
        if consistency == "stale":
            return
        if self.log.is_leader() and consistency != "consistent":
            return
        await self.log.read_barrier(consistency == "consistent")

    # ------------------------------------------------------------------ sessions

    def _on_apply(self, index: int, cmd: Any, result: Any) -> None:
        """FSM hook: leader-only timers follow the sessions the log creates and destroys."""
        if not self.log.is_leader():
            return
        if isinstance(cmd, SessionCommand):
            self._after_session(cmd)
        elif isinstance(cmd, (RegisterCommand, DeregisterCommand, TxnCommand)) and self._session_timers:
            self._sync_session_timers()

    def _after_session(self, cmd: SessionCommand) -> None:
        sid = cmd.session["ID"]
        if cmd.op == "create":
            if sid in self.store.sessions:
                self._arm_session_timer(sid, cmd.session.get("TTL", ""))
        else:
            h = self._session_timers.pop(sid, None)
            if h is not None:
                h.cancel()

    def _sync_session_timers(self) -> None:
        """Drop timers of sessions invalidated as a side effect (a check went critical)."""
        for sid in [s for s in self._session_timers if s not in self.store.sessions]:
            self._session_timers.pop(sid).cancel()

    def _arm_session_timer(self, sid: str, ttl: str) -> None:
        old = self._session_timers.pop(sid, None)
        if old is not None:
            old.cancel()
        if not ttl:
            return
        try:
            seconds = parse_duration(ttl)
        except ValueError:
            return
        if seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        self._session_timers[sid] = loop.call_later(seconds * SESSION_TTL_MULTIPLIER, self._expire_session, sid)

    def _expire_session(self, sid: str) -> None:
        self._session_timers.pop(sid, None)
        if sid not in self.store.sessions or not self.log.is_leader():
            return
        log.info("session %s expired (TTL)", sid)
        task = asyncio.create_task(self._destroy_expired(sid))
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _destroy_expired(self, sid: str) -> None:
        try:
            await self.apply(SessionCommand(op="destroy", session={"ID": sid}))
        except MusterError as err:
            log.warning("could not destroy expired session %s: %s", sid, err)

    def renew_session(self, sid: str) -> Session | None:
        """Reset the TTL timer (a leader-local action, not a log entry, as in Consul)."""
        sess = self.store.sessions.get(sid)
        if sess is None:
            return None
        self._arm_session_timer(sid, sess.ttl)
        return sess

    # ------------------------------------------------------------------ leader loops

    async def _tombstone_loop(self) -> None:
        """Reap tombstones older than one TTL period (two passes: mark, then reap); the same
        command, stamped with the leader's time, ages out KV history (``kvhistory.py``)."""
        while True:
            mark = self.store.max_index()
            await asyncio.sleep(TOMBSTONE_TTL)
            hist = self.store.tables.kv_history
            if self.log.is_leader() and (self.store.tombstones or hist.prunable(self.clock.wall(), self.store.kvs)):
                try:
                    await self.apply(TombstoneCommand(index=mark))
                except MusterError as err:
                    log.warning("tombstone reap failed: %s", err)

    def self_registration(self) -> RegisterCommand:
        return self.server_registration(self.ident, "passing")

    def server_registration(self, ident: ServerIdentity, status: str) -> RegisterCommand:
        """The catalog entry of one server: its node, ``serfHealth`` and the ``consul`` service."""
        node = node_record(ident)
        from ..version import VERSION

        svc = {
            "ID": "consul",
            "Service": "consul",
            "Tags": [],
            "Address": "",
            "Meta": {
                "non_voter": "false",
                "raft_version": "3",
                "read_replica": "false",
                "serf_protocol_current": "2",
                "serf_protocol_max": "5",
                "serf_protocol_min": "1",
                "version": VERSION,
            },
            "Port": ident.server_port,
            "Weights": {"Passing": 1, "Warning": 1},
            "EnableTagOverride": False,
            "Proxy": {"Mode": "", "MeshGateway": {}, "Expose": {}},
            "Connect": {},
            "PeerName": "",
        }
        check = serf_check(ident.node_name, status)
        return RegisterCommand(node=node, service=svc, checks=[check])

    def catalog_matches(self, ident: ServerIdentity, status: str) -> bool:
        """True when the catalog already shows this server at this address with this health."""
        node = self.store.nodes.get(ident.node_name)
        if node is None or node.address != ident.advertise_addr or node.id != ident.node_id:
            return False
        chk = self.store.checks.get(ident.node_name, {}).get(SERF_CHECK_ID)
        svc = self.store.services.get(ident.node_name, {}).get("consul")
        return chk is not None and chk.status == status and svc is not None and svc.port == ident.server_port

    async def register_self(self) -> None:
        await self.apply(self.self_registration())


def node_record(ident: ServerIdentity) -> dict[str, Any]:
    meta = {"consul-network-segment": ""}
    meta.update(ident.node_meta)
    wan = ident.advertise_addr_wan or ident.advertise_addr
    return {
        "ID": ident.node_id,
        "Node": ident.node_name,
        "Address": ident.advertise_addr,
        "Datacenter": ident.datacenter,
        "TaggedAddresses": {
            "lan": ident.advertise_addr,
            "lan_ipv4": ident.advertise_addr,
            "wan": wan,
            "wan_ipv4": wan,
        },
        "Meta": meta,
    }


def serf_check(node: str, status: str) -> dict[str, Any]:
    return {
        "Node": node,
        "CheckID": SERF_CHECK_ID,
        "Name": SERF_CHECK_NAME,
        "Status": status,
        "Notes": "",
        "Output": SERF_ALIVE if status == "passing" else SERF_DEAD,
        "ServiceID": "",
        "ServiceName": "",
        "ServiceTags": [],
        "Type": "",
        "Interval": "",
        "Timeout": "",
        "ExposedPort": 0,
        "Definition": {},
    }
