"""Gossip membership wired into the agent: members, joins, user events, and the leader's
reconcile of members into the catalog.

``Membership`` owns the LAN ``GossipPool`` of this agent:

* its tags are the agent's Consul member tags (role, dc, id, port, build, vsn...), so
  ``/v1/agent/members`` and ``muster members`` show what Consul clients expect;
* ``-join``/``-retry-join`` names are resolved on every attempt (in the pool);
* servers learned from gossip feed Raft: their node id (tag ``id``) and RPC address
  (member address + tag ``port``) are offered to the cluster's address book first, before the
  stable DNS names and the stored configuration;
* user events (``/v1/event/fire``) travel as Serf user events whose payload is Consul's
  ``UserEvent`` object; every agent keeps the last 256 it saw;
* on the leader, ``reconcile`` writes membership into the catalog: every member is a node with
  a ``serfHealth`` check, passing while alive and critical ("Agent not live or unreachable")
  once failed; members that left are deregistered.  Sessions bound to a failed node's
  ``serfHealth`` are invalidated by the store in the same command.  A full pass runs
  periodically, so nothing is lost across leader changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import msgspec

from .errors import MusterError
from .events import EventBuffer
from .gossip.core import GossipConfig
from .gossip.keyring import Keyring
from .gossip.serf import MemberEvent, MemberStatus, SerfEvent, SerfMember, UserEvent
from .gossip.transport import GossipPool
from .runtime import Clock, Rng
from .server.server import SERF_CHECK_ID, Server, node_record, serf_check
from .structs import DeregisterCommand, RegisterCommand
from .telemetry.metrics import METRICS

log = logging.getLogger("muster.membership")

#: Serf's member counters (``consul.serf.member.*``) by event type.
SERF_EVENT_METRIC = {
    "member-join": "serf.member.join",
    "member-failed": "serf.member.failed",
    "member-leave": "serf.member.left",
    "member-update": "serf.member.update",
}

_event_enc = msgspec.json.Encoder()
_event_dec = msgspec.json.Decoder()


class Membership:
    def __init__(
        self,
        server: Server,
        agent: Any,
        config: Any,
        clock: Clock,
        rng: Rng,
        events: EventBuffer,
        is_server: bool,
        fatal: Callable[[str], None] | None = None,
    ) -> None:
        self.server = server
        self.agent = agent
        self.config = config
        self.clock = clock
        self.events = events
        self.is_server = is_server
        ident = server.ident
        keyring = Keyring.from_base64(config.encrypt) if config.encrypt else None
        bind = config.serf_lan or config.bind_addr or "0.0.0.0"
        self.pool = GossipPool(
            name=ident.node_name,
            node_id=ident.node_id,
            bind_addr=bind,
            bind_port=config.ports.serf_lan,
            advertise_addr=ident.advertise_addr,
            tags=agent.self_member(False)["Tags"],
            keyring=keyring,
            on_event=self._on_event,
            clock=clock,
            rng=rng,
            # memberlist joins an address given without a port on the pool's own bind port.
            default_join_port=config.ports.serf_lan if config.ports.serf_lan > 0 else 8301,
        )
        #: Servers also join the WAN pool (port 8302), as ``<node>.<dc>``, with WAN timings
        #: (memberlist's DefaultWANConfig): the datacenters' servers find each other there.
        self.wan: GossipPool | None = None
        if is_server and config.ports.serf_wan >= 0:
            wan_tags = dict(agent.self_member(True)["Tags"])
            self.wan = GossipPool(
                name=f"{ident.node_name}.{config.datacenter}",
                node_id=ident.node_id,
                bind_addr=config.serf_wan or config.bind_addr or "0.0.0.0",
                bind_port=config.ports.serf_wan,
                advertise_addr=ident.advertise_addr_wan or ident.advertise_addr,
                tags=wan_tags,
                gossip=GossipConfig.wan(),
                keyring=Keyring.from_base64(config.encrypt) if config.encrypt else None,
                clock=clock,
                rng=rng,
                default_join_port=config.ports.serf_wan if config.ports.serf_wan > 0 else 8302,
            )
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        #: A freshly started pool does not know every member yet: nodes it has not heard of are
        #: only removed from the catalog after this long (several push/pull rounds).
        self.settle_time = 120.0
        #: Called when the agent must stop (retry_max exhausted): Consul exits with status 1.
        self.fatal = fatal
        self.started_at = clock.monotonic()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.pool.start()
        self.started_at = self.clock.monotonic()
        if self.wan is not None:
            await self.wan.start()
            wan_joins = list(self.config.retry_join_wan)
            if wan_joins:
                self._tasks.append(asyncio.create_task(self._wan_join(wan_joins), name="retry-join-wan"))
        joins = list(self.config.retry_join)
        if joins:
            self._tasks.append(
                asyncio.create_task(
                    self._retry_join(joins, self.config.retry_interval, self.config.retry_max), name="retry-join"
                )
            )
        if self.is_server:
            self._tasks.append(asyncio.create_task(self.reconcile_loop(), name="serf-reconcile"))

    async def _retry_join(self, joins: list[str], interval: float, max_attempts: int) -> None:
        """``-retry-join``: until one address answers.  Like Consul, a node that is new to the
        pool ignores user events older than its join; but if others already joined *us* while
        we were retrying, we are in the pool and a late join must not drop events in flight."""
        attempt = 0
        while True:
            attempt += 1
            already_in = any(m.name != self.pool.name and m.status == MemberStatus.ALIVE for m in self.pool.members())
            try:
                n = await self.pool.join(joins, ignore_old=not already_in)
            except (OSError, MusterError) as err:
                log.warning("retry-join attempt %d failed: %s", attempt, err)
                n = 0
            if n > 0:
                log.info("joined the LAN pool through %d member(s)", n)
                return
            if max_attempts and attempt >= max_attempts:
                msg = f"retry-join: giving up after {attempt} attempts (retry_max)"
                log.error("%s", msg)
                if self.fatal is not None:
                    self.fatal(msg)  # Consul exits with status 1
                return
            await asyncio.sleep(interval)

    async def stop(self, leave: bool = False) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if leave:
            with contextlib.suppress(Exception):
                await self.pool.leave(timeout=3)
            if self.wan is not None:
                with contextlib.suppress(Exception):
                    await self.wan.leave(timeout=3)
        await self.pool.stop()
        if self.wan is not None:
            await self.wan.stop()

    # ------------------------------------------------------------------ views

    def serf_stats(self, wan: bool = False) -> dict[str, str]:
        """``Stats.serf_lan``/``serf_wan`` of ``/v1/agent/self``."""
        return self.wan.stats() if wan and self.wan is not None else self.pool.stats()

    def members(self, wan: bool = False) -> list[dict[str, Any]]:
        if wan:
            return [m.to_api() for m in self.wan.members()] if self.wan is not None else []
        return [m.to_api() for m in self.pool.members()]

    async def _flood_join(self, addr: str) -> None:
        assert self.wan is not None
        if any(m.addr == addr.rsplit(":", 1)[0] for m in self.wan.members() if m.name != self.wan.name):
            return
        try:
            await self.wan.join([addr], ignore_old=False)
        except (OSError, MusterError) as err:
            log.debug("WAN flood join of %s failed: %s", addr, err)

    async def _wan_join(self, joins: list[str]) -> None:
        assert self.wan is not None
        interval = getattr(self.config, "retry_interval_wan", 30.0)
        max_attempts = int(getattr(self.config, "retry_max_wan", 0))
        try:
            n = await self.wan.retry_join(joins, interval=interval, max_attempts=max_attempts)
            log.info("joined the WAN pool through %d member(s)", n)
        except (OSError, MusterError) as err:
            log.error("retry-join-wan failed: %s", err)

    def servers(self) -> list[SerfMember]:
        """Alive members that are servers of this datacenter."""
        dc = self.config.datacenter
        return [
            m for m in self.pool.members()
            if m.tags.get("role") == "consul" and m.tags.get("dc") == dc and m.status == MemberStatus.ALIVE
        ]

    def client_left(self, node_id: str) -> bool:
        """True when the client agent ``node_id`` left the pool (the leader then drops its replica)."""
        return any(
            m.tags.get("id") == node_id and m.tags.get("role") == "node" and m.status == MemberStatus.LEFT
            for m in self.pool.members()
        )

    def rpc_address(self, node_id: str) -> str | None:
        """The RPC address gossip knows for server ``node_id`` (newest first), or None."""
        for m in self.pool.members():
            if m.tags.get("id") == node_id and m.tags.get("role") == "consul" and m.status != MemberStatus.LEFT:
                port = m.tags.get("port", "8300")
                return f"[{m.addr}]:{port}" if ":" in m.addr else f"{m.addr}:{port}"
        return None

    # ------------------------------------------------------------------ events

    def fire(self, ev: dict[str, Any]) -> None:
        """Send a Consul user event to the whole pool (and to ourselves)."""
        body = {k: v for k, v in ev.items() if k != "LTime"}
        try:
            self.pool.fire_user_event(ev["Name"], _event_enc.encode(body), coalesce=False)
        except ValueError as err:  # Serf's user event size limit (512 bytes by default)
            raise MusterError(f"failed to fire event: {err}") from None

    def _on_event(self, ev: SerfEvent) -> None:
        if isinstance(ev, UserEvent):
            try:
                body = _event_dec.decode(ev.payload)
            except msgspec.DecodeError:
                log.warning("dropping a user event with an undecodable payload (%s)", ev.name)
                return
            if isinstance(body, dict) and body.get("ID"):
                if any(e.get("ID") == body["ID"] for e in self.events.events):
                    return
                body["LTime"] = ev.ltime
                self.events.add(body)
        elif isinstance(ev, MemberEvent):
            log.info("member %s: %s (%s)", ev.type.value, ev.member.name, ev.member.addr)
            metric = SERF_EVENT_METRIC.get(ev.type.value)
            if metric is not None:
                METRICS.incr(metric)
            self._wake.set()
            m = ev.member
            if (
                self.wan is not None
                and ev.type.value == "member-join"
                and m.tags.get("role") == "consul"
                and m.name != self.pool.name
                and m.tags.get("wan_join_port")
            ):
                # Consul's flood join: servers of one datacenter find each other on the WAN too.
                addr = f"{m.addr}:{m.tags['wan_join_port']}"
                task = asyncio.ensure_future(self._flood_join(addr))
                self._tasks.append(task)

    # ------------------------------------------------------------------ leader reconcile

    async def reconcile_loop(self, full_every: float = 60.0) -> None:
        """Leader only: on each member event, and on a full pass every ``full_every`` seconds."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(full_every, 5.0))
            self._wake.clear()
            if not self.server.is_leader():
                continue
            try:
                await self.reconcile()
            except MusterError as err:
                log.warning("reconcile failed: %s", err)

    async def reconcile(self) -> None:
        store = self.server.store
        me = self.server.ident.node_name
        known = {m.name for m in self.pool.members()}
        settled = self.clock.monotonic() - self.started_at > self.settle_time
        # Agent nodes (they carry serfHealth) that the pool no longer knows were reaped after
        # reconnect_timeout, or left while we were not the leader: they leave the catalog.
        # Nodes registered through /v1/catalog/register have no serfHealth and are never touched.
        for name in [n for n in store.nodes if settled and n not in known and n != me]:
            if SERF_CHECK_ID in store.checks.get(name, {}):
                await self.server.apply(DeregisterCommand(node=name))
        for m in self.pool.members():
            if m.name == me:
                continue
            node = store.nodes.get(m.name)
            if m.status == MemberStatus.LEFT:
                if node is not None:
                    await self.server.apply(DeregisterCommand(node=m.name))
                continue
            alive = m.status in (MemberStatus.ALIVE, MemberStatus.LEAVING)
            status = "passing" if alive else "critical"
            chk = store.checks.get(m.name, {}).get(SERF_CHECK_ID)
            up_to_date = (
                node is not None
                and node.address == m.addr
                and node.id == m.tags.get("id", node.id)
                and chk is not None
                and chk.status == status
            )
            if m.tags.get("role") == "consul":
                ident = replace(
                    self.server.ident,
                    node_name=m.name,
                    node_id=m.tags.get("id", ""),
                    advertise_addr=m.addr,
                    server_port=int(m.tags.get("port", "8300")),
                    node_meta={},
                    advertise_addr_wan="",
                )
                if not self.server.catalog_matches(ident, status):
                    await self.server.apply(self.server.server_registration(ident, status))
            elif not up_to_date:
                ident = replace(self.server.ident, node_name=m.name, node_id=m.tags.get("id", ""), advertise_addr=m.addr, node_meta={}, advertise_addr_wan="")
                await self.server.apply(
                    RegisterCommand(node=node_record(ident), checks=[serf_check(m.name, status)], skip_node_update=node is not None and node.address == m.addr)
                )
