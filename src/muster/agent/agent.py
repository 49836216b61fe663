"""``Agent``: this process's agent role: local services and checks, their runners, anti-entropy.

What the agent owns: the services and checks registered through ``/v1/agent/*`` or the
configuration, the task that runs each check, the anti-entropy syncer that mirrors them into
the catalog under this node's name, and the reaper of services whose checks stayed critical
for longer than ``DeregisterCriticalServiceAfter``.  In ``-dev`` (and on every server) the
agent lives next to the server, so the catalog it syncs to is that server's store and its
writes go through ``server.apply`` (the leader's log).

Sources.  Entries from the HTTP API are ``remote``; entries from config files are ``local``.
The distinction matters for script checks (``enable_script_checks`` allows both,
``enable_local_script_checks`` only config files) and for ``reload``, which replaces exactly
the ``local`` entries.

Persistence.  A non-dev agent writes what the API registered (and TTL results, maintenance) to
its data dir (``persist.py``) and restores it on start, so clients need not re-register after
an agent restart.

Membership.  Without gossip the agent knows one member: itself.  ``member_source`` (a
constructor argument) supplies the real member lists (``members(wan)``): the gossip pools, or
the Raft configuration of a server that does not gossip (see ``muster.process``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from ..errors import BadRequest, MusterError, NotFound
from ..runtime import Clock, Rng
from ..server.server import Server, node_record
from ..state.rows import Check, Node, Service
from ..state.watch import WatchSet
from ..version import BUILD
from . import mesh
from .checks import (
    MIN_INTERVAL,
    NS,
    AliasCheck,
    CheckRunner,
    GRPCCheck,
    HTTPCheck,
    IntervalCheck,
    ScriptCheck,
    StatusHandler,
    TCPCheck,
    TTLCheck,
    UDPCheck,
    UnsupportedCheck,
    output_limit,
)
from .definitions import (
    HEALTH_STATUSES,
    NODE_MAINT_CHECK_ID,
    NODE_MAINT_DEFAULT_NOTES,
    NODE_MAINT_NAME,
    SERVICE_MAINT_DEFAULT_NOTES,
    SERVICE_MAINT_NAME,
    SERVICE_MAINT_PREFIX,
    CheckDefinition,
    ServiceDefinition,
    embedded_check_ids,
    parse_check,
    parse_service,
    validate_meta,
)
from .local import AntiEntropy, LocalState
from .persist import Persistence, definition_from_json

log = logging.getLogger("muster.agent")

SCRIPTS_DISABLED = (
    "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or "
    "'enable_local_script_checks' to true"
)
SCRIPTS_DISABLED_REMOTE = (
    "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true"
)

MEMBER_ALIVE = 1


def unknown_service(sid: str) -> NotFound:
    return NotFound(f'Unknown service ID "{sid}". Ensure that the service ID is passed, not the service name.')


def unknown_check(cid: str) -> NotFound:
    return NotFound(f'Unknown check ID "{cid}". Ensure that the check ID is passed, not the check name.')


class NodeFollower(Protocol):
    """A stateless client's catalog cache, as alias checks use it (``CatalogMirror``)."""

    def pin(self, node: str) -> Callable[[], None]: ...

    def covers_pin(self, node: str) -> bool: ...


class Agent:
    """See module doc.  ``local`` is the ``LocalState`` the HTTP layer reads."""

    def __init__(
        self,
        server: Server,
        config: Any,
        rng: Rng,
        clock: Clock,
        member_source: Callable[[bool], list[dict[str, Any]]] | None = None,
        serf_stats_source: Callable[[bool], dict[str, str]] | None = None,
    ) -> None:
        self.server = server
        self.config = config
        self.rng = rng
        self.clock = clock
        self.node = server.ident.node_name
        self.local = LocalState(self.node, clock, rng, self._cfg("check_update_interval", 300.0))
        self.syncer = AntiEntropy(
            self.local, server.apply, self._catalog_view, self.node_record, rng,
            interval=self._cfg("ae_interval", 60.0),
        )
        self.runners: dict[str, CheckRunner] = {}
        self.ttl_checks: dict[str, TTLCheck] = {}
        # Tunables (Consul's defaults); tests lower them to stay fast.
        self.min_check_interval = MIN_INTERVAL
        self.reap_interval = 30.0
        self.deregister_min = 60.0
        self.member_source = member_source
        self.serf_stats_source = serf_stats_source
        #: On a stateless client, its catalog cache (``server/remote.py`` ``CatalogMirror``):
        #: an alias check of another node holds that node in the cache for as long as it runs
        #: (None on servers, whose store is the whole catalog).
        self.follower: NodeFollower | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()  # runner shutdowns in flight (strong refs)
        data_dir = self._cfg("data_dir", None)
        self.persist: Persistence | None = (
            Persistence(str(data_dir)) if data_dir and not self._cfg("dev_mode", False) else None
        )

    def _cfg(self, name: str, default: Any) -> Any:
        v = getattr(self.config, name, None) if self.config is not None else None
        return default if v is None else v

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load config-file services and checks, restore the persisted API registrations, then
        start anti-entropy and the reaper."""
        for problem in self._load_config(self.config):
            log.error("%s", problem)
        self._restore_persisted()
        self.syncer.start()
        self._reaper = asyncio.create_task(self._reap_loop(), name="critical-service-reaper")

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        await self.syncer.stop()
        for cid in list(self.runners):
            await self._stop_runner(cid)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
        self.local.stop()

    async def reload(self, new_config: Any) -> None:
        """Apply a re-read configuration: replace the config-file services and checks.

        Entries that are unchanged keep their status (no flapping, no catalog writes); entries
        gone from the files are deregistered.  Raises ``MusterError`` listing what failed.
        """
        self.config = new_config
        self.local.check_update_interval = self._cfg("check_update_interval", 300.0)
        meta = self._cfg("node_meta", None)
        if meta is not None:
            self.server.ident.node_meta = dict(meta)
            self.local.node_in_sync = False
        problems = self._load_config(new_config)
        self.syncer.trigger()
        if problems:
            raise MusterError("Failed reloading services: " + "; ".join(problems))

    def _load_config(self, config: Any) -> list[str]:
        problems: list[str] = []
        services: list[ServiceDefinition] = []
        for raw in self._cfg("services", ()) if config is not None else ():
            try:
                services.append(parse_service(dict(raw)))
            except MusterError as err:
                problems.append(f'Failed to register service "{raw.get("name", raw.get("Name", ""))}": {err.message}')
        checks: list[CheckDefinition] = []
        for raw in self._cfg("checks", ()) if config is not None else ():
            try:
                chk = parse_check(dict(raw))
                if not chk.name:
                    raise BadRequest("Missing check name")
                problem = chk.validate()
                if problem:
                    raise BadRequest(f"Invalid check: {problem}")
                checks.append(chk)
            except MusterError as err:
                problems.append(f'Failed to register check "{raw.get("name", raw.get("Name", ""))}": {err.message}')
        # Everything the files now define; config entries not in here are removed.  Entries that
        # stay are re-added in place, so they keep their status (never removed and re-created).
        keep_svcs = {s.id for s in services}
        keep_checks = {c.check_id or c.name for c in checks}
        for sd in services:
            keep_checks.update(cid for cid, _ in embedded_check_ids(sd.id, sd.name, sd.checks))
        for sid, st in list(self.local.services_.items()):
            if st.source == "local" and not st.deleted and sid not in keep_svcs:
                self.remove_service(sid)
        for cid, cs in list(self.local.checks_.items()):
            if cs.source == "local" and not cs.deleted and cid not in keep_checks:
                self.remove_check(cid)
        for sd in services:
            try:
                self.add_service(sd, source="local")
            except MusterError as err:
                problems.append(f'Failed to register service "{sd.name}": {err.message}')
        for chk in checks:
            try:
                self.add_check(chk, source="local")
            except MusterError as err:
                problems.append(f'Failed to register check "{chk.name}": {err.message}')
        return problems

    def _restore_persisted(self) -> None:
        """Re-register what the API registered before a restart (config-file entries win).

        A TTL check gets back its last result unless that would already have expired; other
        checks start from their registration status and are probed again.  An entry that can
        no longer be registered (its service is gone, scripts were disabled) is dropped.
        """
        p = self.persist
        if p is None:
            return
        for entry in p.load_services():
            svc = entry["Service"]
            sid = svc.get("ID")
            if not isinstance(sid, str) or not sid or self.local.service(sid) is not None:
                continue
            self.local.add_service(svc, "remote", str(entry.get("Token") or ""), str(entry.get("SidecarOf") or ""))
        now = self.clock.wall()
        for entry in p.load_checks():
            rec = entry["Check"]
            cid = rec.get("CheckID")
            if not isinstance(cid, str) or not cid or self.local.check(cid) is not None:
                continue
            token = str(entry.get("Token") or "")
            sid = rec.get("ServiceID") or ""
            defn = definition_from_json(entry.get("Definition"))
            try:
                if sid and self.local.service(sid) is None:
                    raise NotFound(f'ServiceID "{sid}" does not exist')
                if defn is None:  # a maintenance check: no runner, stored as is
                    self.local.add_check(rec, None, "remote", token)
                    continue
                self._script_allowed(defn, "remote")
                status, output = rec.get("Status", "critical"), rec.get("Output", "")
                state = p.load_check_state(cid) if defn.check_type() == "ttl" else None
                if state is not None and float(state.get("Expires", 0)) > now:
                    status, output = str(state.get("Status", status)), str(state.get("Output", output))
                self._add_check(defn, cid, str(rec.get("Name", cid)), sid, "remote", token, (status, output))
            except MusterError as err:
                log.warning("dropping persisted check %s: %s", cid, err.message)
                p.delete_check(cid)

    # ------------------------------------------------------------------ catalog seam

    def node_record(self) -> dict[str, Any]:
        """The node record anti-entropy keeps in the catalog (the server's own identity)."""
        return node_record(self.server.ident)

    def _catalog_view(self) -> tuple[Node | None, dict[str, Service], dict[str, Check]]:
        store = self.server.store
        return (
            store.nodes.get(self.node),
            dict(store.services.get(self.node, {})),
            dict(store.checks.get(self.node, {})),
        )

    # ------------------------------------------------------------------ services

    def _script_allowed(self, chk: CheckDefinition, source: str) -> None:
        if not chk.is_script():
            return
        remote_ok = bool(self._cfg("enable_script_checks", False))
        local_ok = remote_ok or bool(self._cfg("enable_local_script_checks", False))
        if source == "local" and not local_ok:
            raise MusterError(SCRIPTS_DISABLED)
        if source == "remote" and not remote_ok:
            raise MusterError(SCRIPTS_DISABLED_REMOTE if local_ok else SCRIPTS_DISABLED)

    def add_service(self, sd: ServiceDefinition, *, replace_existing_checks: bool = False,
                    source: str = "remote", token: str = "") -> None:
        """Register (or replace) a service and its embedded checks in local state.

        A ``Connect.SidecarService`` block also registers ``<id>-sidecar-proxy`` (see
        ``sidecar_for``); it is validated in full before anything is registered."""
        sidecar = self.sidecar_for(sd) if sd.sidecar is not None else None
        for chk in sd.checks:
            self._script_allowed(chk, source)
        self._register(sd, replace_existing_checks, source, token, "")
        if sidecar is not None:
            self._register(sidecar, replace_existing_checks, source, token, sd.id)

    def sidecar_for(self, sd: ServiceDefinition) -> ServiceDefinition:
        """The sidecar ``ServiceDefinition`` of ``sd`` as Consul's agent builds it: defaults from
        the parent, a port from ``[sidecar_min_port, sidecar_max_port]`` when it has none, and
        the two default checks (TCP on the proxy, alias of the parent) when it has no checks."""
        raw = sd.sidecar
        try:
            nested = parse_service(raw, nested=True)
        except BadRequest as err:
            msg = err.message
            if msg.startswith("Invalid check: "):
                raise BadRequest("Invalid check in sidecar_service: " + msg[len("Invalid check: "):]) from None
            raise
        rec = nested.service
        if rec.get("Meta"):
            problem = validate_meta(rec["Meta"])
            if problem:
                raise BadRequest(f"Invalid SidecarService: {problem}")
        rec = mesh.sidecar_defaults(sd.service, rec)
        errs = mesh.validation_errors(rec, for_agent=True)
        if errs:
            raise BadRequest(f"Failed Validation: {mesh.multierror(errs)}")
        if not rec.get("Port") and not rec.get("SocketPath"):
            others = [s for sid, s in self.local.services().items() if sid != sd.id]
            ports = self._cfg("ports", None)
            lo = int(getattr(ports, "sidecar_min_port", 21000))
            hi = int(getattr(ports, "sidecar_max_port", 21255))
            rec["Port"] = mesh.allocate_port(others, rec["ID"], lo, hi)
        checks = nested.checks
        if not checks:
            checks = [parse_check(c) for c in mesh.default_sidecar_checks(rec, sd.id)]
        return ServiceDefinition(rec, checks)

    def _register(self, sd: ServiceDefinition, replace_existing_checks: bool, source: str, token: str,
                  sidecar_of: str) -> None:
        service = with_default_tagged_addresses(sd.service)
        ids = embedded_check_ids(sd.id, sd.name, sd.checks)
        previous = {cid for cid, c in self.local.checks().items() if c.get("ServiceID") == sd.id}
        self.local.add_service(service, source, token, sidecar_of)
        if self.persist is not None and source == "remote":
            self.persist.save_service(service, token, sidecar_of)
        for (cid, name), chk in zip(ids, sd.checks, strict=True):
            self._add_check(chk, cid, name, sd.id, source, token)
        if replace_existing_checks:
            keep = {cid for cid, _ in ids}
            for cid in sorted(previous - keep):
                if not cid.startswith(SERVICE_MAINT_PREFIX):
                    self.remove_check(cid)

    def remove_service(self, sid: str) -> None:
        """Deregister a service and its checks; ``NotFound`` with Consul's text if unknown.

        The sidecar the agent registered for it goes too (Consul's ``LocallyRegisteredAsSidecar``)."""
        if self.local.service(sid) is None:
            raise unknown_service(sid)
        side = self.local.service_state(mesh.sidecar_id(sid))
        if side is not None and not side.deleted and side.sidecar_of == sid:
            self._remove_one(mesh.sidecar_id(sid))
        self._remove_one(sid)

    def _remove_one(self, sid: str) -> None:
        for cid, c in list(self.local.checks().items()):
            if c.get("ServiceID") == sid:
                self._forget_runner(cid)
                if self.persist is not None:
                    self.persist.delete_check(cid)
        self.local.remove_service(sid)
        if self.persist is not None:
            self.persist.delete_service(sid)

    # ------------------------------------------------------------------ checks

    def add_check(self, chk: CheckDefinition, *, source: str = "remote", token: str = "") -> None:
        """Register a standalone check (``/v1/agent/check/register`` or a config ``check``)."""
        self._script_allowed(chk, source)
        cid = chk.check_id or chk.name
        self._add_check(chk, cid, chk.name, chk.service_id, source, token)

    def _add_check(self, chk: CheckDefinition, cid: str, name: str, service_id: str, source: str, token: str,
                   restored: tuple[str, str] | None = None) -> None:
        svc = self.local.service(service_id) if service_id else None
        if service_id and svc is None:
            raise NotFound(f'ServiceID "{service_id}" does not exist')
        status, output = chk.status or "critical", ""
        prev = self.local.check(cid)
        if restored is not None:
            status, output = restored
        elif prev is not None:
            # Re-registering an existing check keeps its current result, as Consul does
            # (no flapping to critical on every re-registration or reload).
            status, output = prev["Status"], prev["Output"]
        rec = chk.record(
            self.node, cid, name, service_id,
            svc["Service"] if svc else "", list(svc["Tags"]) if svc else [],
            status, output,
        )
        self._forget_runner(cid)
        self.local.add_check(rec, chk, source, token)
        if self.persist is not None and source == "remote" and restored is None:
            self.persist.save_check(rec, chk, token)
        runner = self._make_runner(cid, chk, service_id)
        if runner is not None:
            self.runners[cid] = runner
            if isinstance(runner, TTLCheck):
                self.ttl_checks[cid] = runner
                runner.last_output = output
            runner.start()

    def _make_runner(self, cid: str, chk: CheckDefinition, service_id: str) -> CheckRunner | None:
        kind = chk.check_type()
        out_max = output_limit(chk, int(self._cfg("check_output_max_size", 4096)))
        if kind == "ttl":
            return TTLCheck(cid, chk.ttl / NS, self.local, out_max)
        if kind == "alias":
            return self._alias_runner(cid, chk)
        classes: dict[str, type[IntervalCheck]] = {
            "http": HTTPCheck,
            "tcp": TCPCheck,
            "udp": UDPCheck,
            "script": ScriptCheck,
            "grpc": GRPCCheck,
            "docker": UnsupportedCheck,
            "h2ping": UnsupportedCheck,
            "os_service": UnsupportedCheck,
        }
        cls = classes.get(kind)
        if cls is None:
            return None
        handler = StatusHandler(
            cid, self.local, chk.success_before_passing, chk.effective_failures_before_warning(),
            chk.failures_before_critical,
        )
        return cls(cid, chk, handler, self.rng, out_max, self.min_check_interval)

    def _alias_runner(self, cid: str, chk: CheckDefinition) -> AliasCheck:
        target_node = chk.alias_node or self.node
        target_svc = chk.alias_service
        if target_node == self.node:
            local = self.local

            def local_source(ws: WatchSet) -> tuple[list[dict[str, Any]], bool]:
                local.watch(ws)
                return list(local.checks().values()), local.service(target_svc) is not None

            return AliasCheck(cid, target_node, target_svc, local_source, self.local)
        server = self.server
        follower = self.follower

        def catalog_source(ws: WatchSet) -> tuple[list[dict[str, Any]], bool] | None:
            # ``server.store`` is read on every call: a client's cache swaps in new tables.
            store = server.store
            store.watch_table(ws, "services")
            if follower is not None and not follower.covers_pin(target_node):
                return None  # the cache does not hold the node yet: no verdict from nothing
            _, cs = store.node_checks(ws, target_node)
            # AliasCheck reads Consul-named records (the local source's shape).
            return [msgspec.to_builtins(c) for c in cs], target_svc in store.services.get(target_node, {})

        hold = (lambda: follower.pin(target_node)) if follower is not None else None
        return AliasCheck(cid, target_node, target_svc, catalog_source, self.local, hold=hold)

    def remove_check(self, cid: str) -> None:
        if self.local.check(cid) is None:
            raise unknown_check(cid)
        self._forget_runner(cid)
        self.local.remove_check(cid)
        if self.persist is not None:
            self.persist.delete_check(cid)

    def _forget_runner(self, cid: str) -> None:
        runner = self.runners.pop(cid, None)
        self.ttl_checks.pop(cid, None)
        if runner is not None:
            task = asyncio.get_running_loop().create_task(runner.stop())
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
            task.add_done_callback(_log_failure)

    async def _stop_runner(self, cid: str) -> None:
        runner = self.runners.pop(cid, None)
        self.ttl_checks.pop(cid, None)
        if runner is not None:
            await runner.stop()

    def update_ttl(self, cid: str, status: str, output: str) -> None:
        """``check/pass|warn|fail|update``: set a TTL check's result and restart its timer."""
        if self.local.check(cid) is None:
            raise unknown_check(cid)
        if status not in HEALTH_STATUSES:
            raise BadRequest(f"Invalid check status: '{status}'")
        runner = self.ttl_checks.get(cid)
        if runner is None:
            raise MusterError(f'CheckID "{cid}" does not have associated TTL')
        stored = runner.set_status(status, output)
        if self.persist is not None:
            self.persist.save_check_state(cid, status, stored, self.clock.wall() + runner.ttl)

    # ------------------------------------------------------------------ maintenance

    def enable_node_maintenance(self, reason: str, token: str = "") -> None:
        if self.local.check(NODE_MAINT_CHECK_ID) is not None:
            return
        rec = _maint_record(self.node, NODE_MAINT_CHECK_ID, NODE_MAINT_NAME, reason or NODE_MAINT_DEFAULT_NOTES)
        self.local.add_check(rec, None, "remote", token)
        if self.persist is not None:
            self.persist.save_check(rec, None, token)

    def disable_node_maintenance(self) -> None:
        if self.local.check(NODE_MAINT_CHECK_ID) is not None:
            self.remove_check(NODE_MAINT_CHECK_ID)

    def enable_service_maintenance(self, sid: str, reason: str, token: str = "") -> None:
        svc = self.local.service(sid)
        if svc is None:
            raise unknown_service(sid)
        cid = SERVICE_MAINT_PREFIX + sid
        if self.local.check(cid) is not None:
            return
        rec = _maint_record(self.node, cid, SERVICE_MAINT_NAME, reason or SERVICE_MAINT_DEFAULT_NOTES)
        rec["ServiceID"] = sid
        self.local.add_check(rec, None, "remote", token)
        if self.persist is not None:
            self.persist.save_check(dict(rec, ServiceName=svc["Service"], ServiceTags=list(svc["Tags"])), None, token)

    def disable_service_maintenance(self, sid: str) -> None:
        if self.local.service(sid) is None:
            raise unknown_service(sid)
        cid = SERVICE_MAINT_PREFIX + sid
        if self.local.check(cid) is not None:
            self.remove_check(cid)

    # ------------------------------------------------------------------ reaper

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reap_interval)
            try:
                self.reap_critical_services()
            except Exception:  # keep reaping on the next round; a bug here must be visible, not fatal
                log.exception("critical-service reaper failed")

    def reap_critical_services(self) -> list[str]:
        """Deregister services with a check critical for longer than its
        ``DeregisterCriticalServiceAfter`` (at least ``deregister_min``).  Returns their IDs."""
        reaped: list[str] = []
        for cid, cs in list(self.local.checks_.items()):
            d = cs.definition
            if cs.deleted or d is None or d.deregister_critical_service_after <= 0:
                continue
            sid = cs.check.get("ServiceID") or ""
            if not sid or sid in reaped or self.local.service(sid) is None:
                continue
            crit = self.local.critical_for(cid)
            limit = max(d.deregister_critical_service_after / NS, self.deregister_min)
            if crit is not None and crit >= limit:
                log.info("check %s has been critical for too long; deregistering service %s", cid, sid)
                self.remove_service(sid)
                reaped.append(sid)
        return reaped

    # ------------------------------------------------------------------ membership

    def members(self, wan: bool = False) -> list[dict[str, Any]]:
        """Serf members (LAN, or WAN with ``wan``); just this server until gossip supplies more."""
        if self.member_source is not None:
            return self.member_source(wan)
        return [self.self_member(wan)]

    def serf_stats(self, wan: bool = False) -> dict[str, str]:
        """``Stats.serf_lan``/``serf_wan`` of ``/v1/agent/self`` (all strings); from gossip when wired."""
        if self.serf_stats_source is not None:
            return self.serf_stats_source(wan)
        members = self.members(wan)
        return {
            "coordinate_resets": "0",
            "encrypted": "false",
            "event_queue": "0",
            "event_time": "1",
            "failed": str(sum(1 for m in members if m.get("Status") == 4)),
            "health_score": "0",
            "intent_queue": "0",
            "left": str(sum(1 for m in members if m.get("Status") == 3)),
            "member_time": "1",
            "members": str(len(members)),
            "query_queue": "0",
            "query_time": "1",
        }

    def self_member(self, wan: bool = False) -> dict[str, Any]:
        ident = self.server.ident
        ports = getattr(self.config, "ports", None)
        wan_port = getattr(ports, "serf_wan", 8302) if ports is not None else 8302
        tags: dict[str, str] = {
            "acls": "0",
            "build": BUILD,
            "dc": ident.datacenter,
            "ft_fs": "1",
            "ft_si": "1",
            "id": ident.node_id,
            "port": str(ident.server_port),
            "raft_vsn": "3",
            "role": "consul",
            "segment": "",
            "vsn": "2",
            "vsn_max": "3",
            "vsn_min": "2",
            "wan_join_port": str(wan_port),
        }
        if not (self._cfg("server", False) or self._cfg("dev_mode", False)):
            # A client agent: Consul tags it role=node, with no server port or expect.
            tags["role"] = "node"
            for k in ("port", "raft_vsn", "wan_join_port", "ft_fs", "ft_si"):
                tags.pop(k, None)
        if self._cfg("bootstrap", False):
            tags["bootstrap"] = "1"
        expect = int(self._cfg("bootstrap_expect", 0))
        if expect:
            tags["expect"] = str(expect)
        grpc_port = getattr(ports, "grpc", -1) if ports is not None else -1
        if grpc_port and grpc_port > 0:
            tags["grpc_port"] = str(grpc_port)
        if wan:
            tags.pop("segment", None)
        return {
            "Name": f"{ident.node_name}.{ident.datacenter}" if wan else ident.node_name,
            "Addr": (ident.advertise_addr_wan or ident.advertise_addr) if wan else ident.advertise_addr,
            "Port": wan_port if wan else ident.serf_lan_port,
            "Tags": tags,
            "Status": MEMBER_ALIVE,
            "ProtocolMin": 1,
            "ProtocolMax": 5,
            "ProtocolCur": 2,
            "DelegateMin": 2,
            "DelegateMax": 5,
            "DelegateCur": 4,
        }


def with_default_tagged_addresses(svc: dict[str, Any]) -> dict[str, Any]:
    """Consul's agent fills ``lan_ipv4``/``wan_ipv4`` (or ``*_ipv6``) tagged addresses from an IP
    ``Address`` unless given, and rejects non-IP values under those tags (500, as Consul)."""
    import ipaddress

    tagged = dict(svc.get("TaggedAddresses") or {})
    for tag, version in (("lan_ipv4", 4), ("wan_ipv4", 4), ("lan_ipv6", 6), ("wan_ipv6", 6)):
        if tag in tagged:
            try:
                ok = ipaddress.ip_address(tagged[tag]["Address"]).version == version
            except ValueError:
                ok = False
            if not ok:
                raise MusterError(f'Service tagged address "{tag}" must be a valid ipv{version} address')
    try:
        ip = ipaddress.ip_address(svc.get("Address", ""))
    except ValueError:
        return svc
    entry = {"Address": svc["Address"], "Port": svc.get("Port", 0)}
    for tag in (("lan_ipv4", "wan_ipv4") if ip.version == 4 else ("lan_ipv6", "wan_ipv6")):
        tagged.setdefault(tag, dict(entry))
    out = dict(svc)
    out["TaggedAddresses"] = tagged
    return out


def _maint_record(node: str, cid: str, name: str, notes: str) -> dict[str, Any]:
    return {
        "Node": node,
        "CheckID": cid,
        "Name": name,
        "Status": "critical",
        "Notes": notes,
        "Output": "",
        "ServiceID": "",
        "ServiceName": "",
        "ServiceTags": [],
        "Type": "maintenance",
        "Interval": "",
        "Timeout": "",
        "ExposedPort": 0,
        "Definition": {},
    }


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("stopping a check runner failed: %r", task.exception())
