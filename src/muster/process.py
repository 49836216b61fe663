"""The process root: wires the server, the agent, the HTTP API and DNS on one loop.

``run_agent(config)`` is what ``muster agent`` calls.  It refuses, with a clear message and exit
status 1, any flag this build cannot honour yet, rather than ignoring it: a user who passes
``-retry-join`` must not believe a cluster is forming when it is not.

Signals: SIGINT and SIGTERM stop the agent (servers do not leave by default, as in Consul);
SIGHUP reloads the configuration files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sys
import uuid
from typing import TYPE_CHECKING, Any

from .config import Config, audit_file_sinks
from .coordinate import Coordinate
from .dns.server import DNSServer
from .errors import MusterError
from .eventloop import EventLoopChoiceError, choose_runner
from .events import EventBuffer
from .http import acl as http_acl
from .http import agent as http_agent
from .http import catalog as http_catalog
from .http import config_entries as http_config_entries
from .http import connect as http_connect
from .http import coordinate as http_coordinate
from .http import event as http_event
from .http import health as http_health
from .http import kv as http_kv
from .http import kvhistory as http_kvhistory
from .http import membership as http_membership
from .http import metrics as http_metrics
from .http import monitor as http_monitor
from .http import operator as http_operator
from .http import peering as http_peering
from .http import query as http_query
from .http import session as http_session
from .http import status as http_status
from .http import txn as http_txn
from .http.app import App, Router
from .http.common import Ctx
from .http.forward import forward_to_server, maybe_forward
from .http.guard import ConnLimits
from .http.request import Request, Response, text_response
from .http.serve import Listener, TLSFiles
from .logging_setup import setup_logging
from .membership import Membership
from .runtime import RealClock, Rng
from .server.acl import ACLService
from .server.aclclient import ACLResolveEndpoint
from .server.cluster import ClusterMember
from .server.coordinates import CoordinateBatcher
from .server.federation import Federation
from .server.gauges import server_gauges
from .server.operator import ClusterOperator
from .server.raftlog import ClusterLog, RaftTimings, ReplicatedLog
from .server.remote import CatalogMirror, ClientEndpoints, RemoteLog, RemoteServers, ServerSet
from .server.server import Server, ServerIdentity
from .services import Lifecycle, Services
from .state.kvhistory import HistoryPolicy
from .telemetry.audit import AuditLog
from .telemetry.logstream import Monitors
from .telemetry.metrics import Labels, default_metrics
from .telemetry.runtime import Collector, freeze_startup_heap
from .version import VERSION

if TYPE_CHECKING:
    from .raft.storage import DiskStorage

log = logging.getLogger("muster.agent")

UI_DISABLED = (
    "Consul Agent: UI disabled. To enable, set ui_config.enabled=true in the agent configuration and restart."
)

#: Longest wait for a server's answer to a client's token resolution (seconds).
ACL_RESOLVE_TIMEOUT = 10.0

# Flags that need subsystems this build does not have yet, and the subsystem each one needs.
_NOT_YET: dict[str, str] = {}


class StartupError(Exception):
    pass


def unsupported(config: Config) -> list[str]:
    """Human-readable reasons why this build cannot run ``config`` (empty: it can)."""
    problems: list[str] = []
    flags: frozenset[str] = config.set_flags
    for flag in sorted(flags):
        need = _NOT_YET.get(flag)
        if need is not None and not (flag == "bootstrap" and config.dev_mode):
            problems.append(f"-{flag} needs {need}, which this build of Muster does not have yet")
    if not config.dev_mode and not config.data_dir:
        problems.append("data_dir is required: use -data-dir (servers keep the Raft log there, clients their local state)")
    if not config.dev_mode and not config.server and (config.bootstrap or config.bootstrap_expect):
        problems.append("-bootstrap and -bootstrap-expect are for servers (-server)")
    return problems


def gossip_wanted(config: Config) -> bool:
    """Servers and clients always gossip; a -dev agent only when asked (a join, or a LAN port
    given by ``-serf-lan-port`` or by ``ports.serf_lan`` in a config file, as python-consul2's
    test agents do), so that many dev agents can run side by side without fighting over 8301."""
    if not config.dev_mode:
        return True
    return bool(config.retry_join) or "serf-lan-port" in config.set_flags or config.ports.serf_lan != 8301


def acl_initial_management_description(config: Config) -> str:
    """"Initial Management Token" (Consul >= 1.11), or "Master Token" when the secret came from
    a pre-1.11 key (``acl.tokens.master`` / ``acl_master_token``), as those servers named it."""
    return "Master Token" if config.acl.tokens.initial_management_legacy else "Initial Management Token"


def rpc_source_ip(config: Config) -> str | None:
    """The local IP of this agent's outgoing server-RPC connections (``server/rpc.py`` "Source
    address"): its bind address unless that is a wildcard, as Consul's ``RPCSrcAddr``."""
    bind = config.bind_addr
    return bind if bind and bind not in ("0.0.0.0", "::") else None


def stateless_client(config: Config) -> bool:
    """A client agent holds no replica of the log (``server/remote.py``), as Consul's clients;
    with ACLs enabled it resolves tokens through its servers (``acl/clientcache.py``)."""
    return not config.server and not config.dev_mode


def load_or_create_node_id(config: Config, rng: Rng) -> str:
    """Identity is the node-id on the volume: created once, then read back on every start."""
    if config.node_id:
        return str(uuid.UUID(config.node_id))
    if config.dev_mode or not config.data_dir:
        return rng.uuid()
    path = os.path.join(config.data_dir, "node-id")
    try:
        with open(path, encoding="ascii") as f:
            return str(uuid.UUID(f.read().strip()))
    except FileNotFoundError:
        pass
    except ValueError as err:
        raise StartupError(f"{path} does not hold a valid node id: {err}") from None
    os.makedirs(config.data_dir, exist_ok=True)
    node_id = rng.uuid()
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(node_id)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return node_id


def _advertise(config: Config) -> str:
    if config.advertise_addr:
        return config.advertise_addr
    if config.bind_addr and config.bind_addr not in ("0.0.0.0", "::"):
        return config.bind_addr
    return "127.0.0.1"


class AgentProcess:
    def __init__(self, config: Config, rng: Rng | None = None, argv: list[str] | None = None) -> None:
        from .agent.agent import Agent  # pulls in aiohttp: only when an agent is built

        self.config = config
        self.argv = argv
        self.rng = rng or Rng()
        self.clock = RealClock()
        ident = ServerIdentity(
            node_name=config.node_name,
            node_id=load_or_create_node_id(config, self.rng),
            datacenter=config.datacenter,
            advertise_addr=_advertise(config),
            server_port=config.ports.server,
            serf_lan_port=config.ports.serf_lan,
            version=VERSION,
            node_meta=dict(config.node_meta),
            advertise_addr_wan=config.advertise_addr_wan or "",
        )
        self.raft_storage: DiskStorage | None = None
        # The parts of the agent, each built once, in dependency order, with what it needs
        # passed to its constructor; then frozen into ``Services`` before the routes exist.
        self.lifecycle = Lifecycle(reload=self.reload)
        self.cluster: ClusterMember | None = None
        self.cluster_log: ClusterLog | None = None
        hc = config.kv_history
        history = HistoryPolicy(hc.versions if hc.enabled else 0, hc.max_age)
        #: A stateless client's link to the servers and its catalog cache (else None).
        self.remote: RemoteServers | None = None
        self.mirror: CatalogMirror | None = None
        if config.dev_mode:
            self.server = Server(ident, clock=self.clock, rng=self.rng, kv_history=history)
        elif stateless_client(config):
            self.remote = RemoteServers(ident.node_id, ServerSet(self._server_addrs, random.Random(self.rng.randrange(2**62))),
                                        info=lambda: {"name": config.node_name})
            rlog = RemoteLog(self.remote, config.performance.rpc_hold_timeout)
            self.server = Server(ident, log_impl=rlog, clock=self.clock, rng=self.rng)
            self.mirror = rlog.mirror = CatalogMirror(self.server.store, self.remote, self.clock,
                                                      config.dns_config.max_stale / 3, node=config.node_name)
        else:
            self.cluster_log = ClusterLog(self.clock, config.performance.rpc_hold_timeout)
            self.server = Server(ident, log_impl=self.cluster_log, clock=self.clock, rng=self.rng, kv_history=history)
        gossips = gossip_wanted(config)
        self.agent = Agent(
            self.server,
            config,
            self.rng,
            self.clock,
            member_source=self._members,
            serf_stats_source=self._serf_stats if gossips else None,
        )
        self.agent.follower = self.mirror
        self.events = EventBuffer()
        self.membership: Membership | None = None
        if gossips:
            self.membership = Membership(
                self.server,
                self.agent,
                config,
                self.clock,
                self.rng,
                self.events,
                is_server=config.server or config.dev_mode,
                fatal=self.lifecycle.fatal,
            )
        if self.cluster_log is not None:
            store = self.server.store
            join = list(config.retry_join) + list(getattr(config, "start_join", ()) or ())
            self.cluster = ClusterMember(
                node_id=ident.node_id,
                node_name=ident.node_name,
                rpc_addr=f"{ident.advertise_addr}:{config.ports.server}",
                data_dir=config.data_dir,
                join=join,
                bootstrap=config.bootstrap,
                bootstrap_expect=config.bootstrap_expect,
                server_port=config.ports.server,
                clock=self.clock,
                role="server" if config.server else "client",
                log=self.cluster_log,
                gossip=self.membership,
                autopilot_config=lambda: dict(store.autopilot),
                dead_server_after=max(10.0, 3 * config.autopilot.server_stabilization_time + 30.0),
            )
        if self.cluster is not None:
            self.cluster.rpc.max_conns_per_client = config.limits.rpc_max_conns_per_client
            self.cluster.rpc.source_ip = rpc_source_ip(config)
        if self.remote is not None:
            self.remote.rpc.source_ip = rpc_source_ip(config)
        self.operator = ClusterOperator(self.server, self.cluster)
        self.acl = ACLService(
            self.server,
            config.acl,
            config.datacenter,
            None if config.dev_mode else config.data_dir,
            acl_initial_management_description(config),
            primary_datacenter=config.primary_datacenter,
            client_fetch=self._acl_resolve if self.remote is not None else None,
        )
        self.server.leader_hooks.append(self.acl.initialize)
        self.federation = Federation(config.datacenter, ident.node_id,
                                     self.membership.wan if self.membership is not None else None, self.cluster)
        self.acl.attach_remote(
            lambda m, path, q, tok, timeout: self.federation.http_call(self.acl.primary_datacenter, m, path, q, tok, timeout)
        )
        self.coordinates = self._coordinates(config)
        self.services = Services(
            server=self.server,
            agent=self.agent,
            events=self.events,
            operator=self.operator,
            lifecycle=self.lifecycle,
            acl=self.acl,
            membership=self.membership,
            federation=self.federation,
            coordinates=self.coordinates,
        )
        self.ctx = Ctx(
            services=self.services,
            datacenter=config.datacenter,
            rng=self.rng,
            config=config,
            default_query_time=config.default_query_time,
            max_query_time=config.max_query_time,
            kv_max_value_size=config.limits.kv_max_value_size,
            txn_max_req_len=config.limits.txn_max_req_len,
        )
        self.router = Router()
        for module in (
            http_kv,
            http_kvhistory,
            http_txn,
            http_session,
            http_status,
            http_operator,
            http_membership,
            http_event,
            http_catalog,
            http_health,
            http_agent,
            http_coordinate,
            http_query,
            http_peering,
            http_config_entries,
            http_connect,
            http_acl,
        ):
            for route in module.routes(self.ctx):
                self.router.add(route)
        self.monitors = Monitors()
        for route in http_monitor.routes(self.ctx, self.monitors):
            self.router.add(route)
        tel = config.telemetry
        self.metrics = default_metrics()
        self.metrics.configure(tel.metrics_prefix, tel.disable_hostname, tel.prometheus_retention_time)
        self.collector = Collector(self.metrics, [server_gauges(self.server), self._autopilot_gauges])
        if self.membership is not None:
            self.collector.add_counters(self._memberlist_counters)
        for route in http_metrics.routes(
            self.ctx, self.metrics, self.collector, lambda: self.config.telemetry.prometheus_retention_time
        ):
            self.router.add(route)
        self.app = App(
            self.router,
            self._fallback,
            list(config.http_config.response_headers.items()),
            default_acl_policy=config.acl.default_policy if config.acl.enabled else "allow",
            dc_forward=lambda req: maybe_forward(self.federation, req),
        )
        remote = self.remote
        if remote is not None:
            self.app.server_forward = lambda req: forward_to_server(remote, req)
        self.app.metrics = self.metrics
        if self.acl.needs_prepare:
            acl = self.acl
            self.app.acl_prepare = lambda req: acl.prepare(req.token())
        self.app.legacy_http_metrics = not tel.disable_compat_1_9
        sinks = audit_file_sinks(config)
        self.audit = AuditLog(sinks) if sinks else None
        self.app.audit = self.audit
        self.app.audit_identity = self._audit_identity
        self.listeners: list[Listener] = []
        #: limits.http_max_conns_per_client, shared by the HTTP and HTTPS listeners.
        self.conn_limits = ConnLimits(config.limits.http_max_conns_per_client)
        self.dns: DNSServer | None = None
        self._bg: list[asyncio.Task[None]] = []
        self.stopped = asyncio.Event()

    def _autopilot_gauges(self) -> list[tuple[str, float, Labels]]:
        """``consul.autopilot.healthy``/``failure_tolerance``: reported by the leader only."""
        if self.cluster is None or not self.server.is_leader():
            return []
        health = self.operator.autopilot_health()
        return [
            ("autopilot.healthy", 1.0 if health["Healthy"] else 0.0, ()),
            ("autopilot.failure_tolerance", float(health["FailureTolerance"]), ()),
        ]

    def _memberlist_counters(self) -> dict[str, float]:
        """The LAN pool's failure-detector totals under memberlist's names."""
        pool = getattr(self.membership, "pool", None)
        if pool is None or getattr(pool, "_serf", None) is None:
            return {}
        c = pool.counters()
        return {
            "memberlist.msg.suspect": float(c.get("suspects_raised", 0)),
            "memberlist.msg.dead": float(c.get("deaths_declared", 0)),
        }

    async def _fallback(self, req: Request) -> Response:
        ui = self.config.ui_config.enabled
        if req.path == "/":
            if ui:
                return Response(301, b"", None, [("Location", "/ui/")])
            return text_response(200, UI_DISABLED)
        if ui and (req.path == "/ui" or req.path.startswith("/ui/")):
            if req.path == "/ui":
                return Response(301, b"", None, [("Location", "/ui/")])
            from .ui.assets import lookup

            found = lookup(req.path[len("/ui/") :])
            if found is not None:
                body, ctype = found
                return Response(200, body, ctype, [("Cache-Control", "no-cache")])
        return text_response(404, "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'\n")

    def _http_addrs(self, override: str | None) -> list[str]:
        spec = override or self.config.client_addr
        return [a for a in spec.split() if a]

    def raft_timings(self) -> RaftTimings:
        m = max(1, int(self.config.performance.raft_multiplier))
        return RaftTimings(
            tick=0.05 * m,
            election_ticks=10,
            heartbeat_ticks=1,
            rpc_hold_timeout=self.config.performance.rpc_hold_timeout,
            snapshot_threshold=self.config.raft_snapshot_threshold,
            snapshot_interval=self.config.raft_snapshot_interval,
            trailing_logs=self.config.raft_trailing_logs,
        )

    async def _start_cluster(self) -> None:
        """Listen for server RPC, then form or rejoin the cluster in the background."""
        from .raft.storage import DiskStorage

        cfg = self.config
        data_dir = cfg.data_dir
        assert self.cluster is not None and data_dir is not None
        self.raft_storage = DiskStorage(os.path.join(data_dir, "raft"))
        rpc_tls = cfg.tls.effective("internal_rpc")
        if rpc_tls.cert_file and rpc_tls.key_file and (
            rpc_tls.verify_incoming or rpc_tls.verify_outgoing or rpc_tls.verify_server_hostname
        ):
            domain = cfg.domain.rstrip(".")
            self.cluster.rpc.configure_tls(
                rpc_tls.cert_file,
                rpc_tls.key_file,
                rpc_tls.ca_file,
                bool(rpc_tls.verify_incoming),
                bool(rpc_tls.verify_outgoing),
                f"server.{cfg.datacenter}.{domain}" if rpc_tls.verify_server_hostname else None,
            )
            log.info("server RPC uses TLS (verify_incoming=%s, verify_server_hostname=%s)", rpc_tls.verify_incoming, rpc_tls.verify_server_hostname)
        bind = cfg.bind_addr or "0.0.0.0"
        server = self.server
        lg = server.log
        clients = ClientEndpoints(server.ident.node_id, lambda: server.store, server.apply, lambda: lg.leader_id() or "",
                                  lg.last_contact, random.Random(self.rng.randrange(2**62)))
        self.operator.serve_rpc(http=self._answer_forwarded_http,
                                extra={**clients.handlers(), **ACLResolveEndpoint(self.acl).handlers()})
        await self.cluster.rpc.listen(bind, cfg.ports.server)
        await self.cluster.refresh_join_addrs()
        self._bg.append(asyncio.create_task(self.cluster.keep_addresses_fresh(), name="join-addresses"))
        self._bg.append(asyncio.create_task(self._form_and_run(), name="cluster-formation"))

    async def _form_and_run(self) -> None:
        assert self.cluster is not None and self.cluster_log is not None and self.raft_storage is not None
        cl, storage = self.cluster, self.raft_storage
        await cl.form(storage, self.server.fsm, self.config.retry_interval)
        rlog = ReplicatedLog(
            self.server.ident.node_id,
            self.server.fsm,
            storage,
            cl.rpc,
            self.clock,
            random.Random(self.rng.randrange(2**62)),
            self.raft_timings(),
            sync=storage.sync,
            on_leader_change=self.server.leader_changed,
        )
        self.cluster_log.attach(rlog)
        await rlog.start()
        self._bg.append(asyncio.create_task(cl.autopilot(), name="autopilot"))
        if self.membership is None:
            # No gossip: the Raft configuration stands in for membership and liveness.
            self._bg.append(asyncio.create_task(cl.reconcile(self.server), name="reconcile"))

    async def start(self) -> None:
        if self.membership is not None:
            await self.membership.start()
        if self.cluster is not None:
            await self._start_cluster()
        if self.remote is not None:
            self._client_tls()
        if self.mirror is not None:
            self.mirror.start()
        await self.server.start()
        await self.agent.start()
        if self.coordinates is not None:
            self.coordinates.start()
        self.collector.start()
        cfg = self.config
        if cfg.ports.http >= 0:
            for host in self._http_addrs(cfg.addresses.http):
                self.listeners.append(Listener(self.app, host, cfg.ports.http, limits=self.conn_limits))
        if cfg.ports.https >= 0:
            tls = cfg.tls.https
            d = cfg.tls.defaults
            cert = tls.cert_file or d.cert_file
            key = tls.key_file or d.key_file
            if not cert or not key:
                raise StartupError("HTTPS port is set but no cert_file/key_file is configured (tls.defaults or tls.https)")
            files = TLSFiles(cert, key, tls.ca_file or d.ca_file, bool(tls.verify_incoming if tls.verify_incoming is not None else d.verify_incoming))
            for host in self._http_addrs(cfg.addresses.https):
                self.listeners.append(Listener(self.app, host, cfg.ports.https, files, limits=self.conn_limits))
        for lst in self.listeners:
            await lst.start()
        if cfg.ports.dns >= 0:
            self.dns = DNSServer(self.server, cfg, rng=self.rng, clock=self.clock)
            if self.acl.enabled:
                acl = self.acl
                self.dns.answerer.authorizer = acl.dns_authorizer
                self.dns.acl_version = acl.generation
            self.dns.enable_remote(self._http_get, bool(cfg.translate_wan_addrs))
            if self.mirror is not None:
                self.dns.staleness = self.mirror.staleness
                self.dns.cache = self.mirror
            await self.dns.start(self._http_addrs(cfg.addresses.dns), cfg.ports.dns)
        for warning in cfg.warnings:
            log.warning("%s", warning)
        if cfg.enable_script_checks and not cfg.acl.enabled:
            log.warning(
                "using enable-script-checks without ACLs and without allow_write_http_from is DANGEROUS, use "
                "enable-local-script-checks instead, see "
                "https://www.hashicorp.com/blog/protecting-consul-from-rce-risk-in-specific-configurations/"
            )
        log.info("Muster %s agent running: node=%s id=%s dc=%s", VERSION, self.server.ident.node_name, self.server.ident.node_id, cfg.datacenter)

    def _audit_identity(self, req: Request) -> tuple[str, str]:
        """The caller's token for the audit log: (AccessorID, description), never the secret;
        ("", "") without ACLs or for a secret that names no live token."""
        acl = self.acl
        if not acl.enabled:
            return "", ""
        secret = acl.resolver.effective_secret(req.token())
        if secret == acl.resolver.agent_recovery_token:
            return "", "agent recovery token"
        tok = acl.resolver.token(secret)
        return (tok.AccessorID, tok.Description) if tok is not None else ("", "")

    async def stop(self) -> None:
        self.monitors.close_all()  # open log streams end now, so the HTTP server can stop
        if self.dns is not None:
            await self.dns.stop()
        for lst in self.listeners:
            await lst.stop()
        await self.agent.stop()
        if self.coordinates is not None:
            await self.coordinates.stop()
        await self.collector.stop()
        for t in self._bg:
            t.cancel()
        for t in self._bg:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._bg.clear()
        if self.mirror is not None:
            await self.mirror.stop()
        if self.acl.client_cache is not None:
            await self.acl.client_cache.close()
        if self.membership is not None:
            await self.membership.stop(leave=self.lifecycle.left)
        if self.remote is not None:
            await self.remote.close()
        if self.cluster_log is not None:
            await self.cluster_log.stop()
        await self.server.stop()
        if self.cluster is not None:
            await self.cluster.rpc.close()
        if self.federation is not None:
            await self.federation.close()
        if self.raft_storage is not None:
            self.raft_storage.close()
        if self.audit is not None:
            self.audit.close()

    def _server_addrs(self) -> list[tuple[str, str]]:
        """(node id, RPC address) of every alive server of our datacenter, from gossip."""
        if self.membership is None:
            return []
        out = []
        for m in self.membership.servers():
            nid = m.tags.get("id", "")
            port = m.tags.get("port", "8300")
            if nid:
                out.append((nid, f"[{m.addr}]:{port}" if ":" in m.addr else f"{m.addr}:{port}"))
        return out

    def _client_tls(self) -> None:
        """A stateless client dials servers with the server RPC's TLS settings."""
        assert self.remote is not None
        cfg = self.config
        rpc_tls = cfg.tls.effective("internal_rpc")
        if rpc_tls.cert_file and rpc_tls.key_file and (
            rpc_tls.verify_incoming or rpc_tls.verify_outgoing or rpc_tls.verify_server_hostname
        ):
            domain = cfg.domain.rstrip(".")
            self.remote.rpc.configure_tls(
                rpc_tls.cert_file, rpc_tls.key_file, rpc_tls.ca_file, bool(rpc_tls.verify_incoming),
                bool(rpc_tls.verify_outgoing),
                f"server.{cfg.datacenter}.{domain}" if rpc_tls.verify_server_hostname else None,
            )

    def _coordinates(self, config: Config) -> CoordinateBatcher | None:
        """This agent's network coordinates on their way into the catalog: its own LAN
        coordinate (from its gossip probes; the origin without gossip) reported periodically,
        and the updates it receives, applied in batches (``server/coordinates.py``)."""
        if config.disable_coordinates:
            return None
        membership = self.membership

        def own() -> Coordinate | None:
            if membership is not None and membership.pool.running:
                return membership.pool.serf.get_coordinate()
            return Coordinate.origin()

        apply = self.server.apply if self.remote is None else self._report_coordinates
        return CoordinateBatcher(apply, self.rng, self.server.ident.node_name, own)

    async def _acl_resolve(self, request: dict[str, Any]) -> Any:
        """A stateless client's token resolution: one ``acl_resolve`` call to a server
        (``server/aclclient.py``); a read, so it may be retried on another server."""
        assert self.remote is not None
        return await self.remote.call("acl_resolve", request, ACL_RESOLVE_TIMEOUT, idempotent=True)

    async def _report_coordinates(self, cmd: Any) -> None:
        """A stateless client hands its coordinate to a server's batcher (``PUT
        /v1/coordinate/update``, as Consul's clients send ``Coordinate.Update``), so the leader
        sees a few batched entries per period whatever the number of clients, not one each."""
        import json

        assert self.remote is not None
        for update in getattr(cmd, "updates", ()):
            payload = {"m": "PUT", "p": "/v1/coordinate/update", "q": "", "b": json.dumps(update).encode(),
                       "h": {"content-type": "application/json"}, "x": "local"}
            res = await self.remote.call("http", payload, 30.0)
            if int(res[0]) != 200:
                raise MusterError(f"coordinate update refused: {int(res[0])} {bytes(res[3])[:200]!r}")

    async def _http_get(self, path: str, raw_query: bytes) -> tuple[int, bytes]:
        """A GET through our own HTTP API (DNS answers for other datacenters and prepared
        queries use it, so they follow exactly the API's forwarding and failover)."""
        resp = await self.app.handle(Request("GET", path, raw_query, {}, None, body=b""))
        return resp.status, resp.body

    async def _answer_forwarded_http(self, payload: Any) -> list[Any]:
        from .http.common import FORWARDED
        from .http.forward import request_of

        if isinstance(payload, dict) and payload.get("x"):
            # A request forwarded for ?dc= (from another datacenter, or from a client agent of
            # ours): served as if it had been sent here.
            req = request_of(payload, {})
        else:
            req = Request(str(payload["m"]), str(payload["p"]), str(payload["q"]).encode("latin-1"), {FORWARDED: "1"}, None, body=b"")
        resp = await self.app.handle(req)
        return [resp.status, resp.content_type or "", [list(h) for h in resp.headers], resp.body]

    def _members(self, wan: bool = False) -> list[dict[str, Any]]:
        """The agent's members: the gossip pool's, else this agent and the servers of the Raft
        configuration (just this agent in ``-dev`` or before the cluster forms)."""
        if self.membership is not None:
            return self.membership.members(wan)
        return self.operator.raft_members(self.agent.self_member(wan), wan, self.config.datacenter)

    def _serf_stats(self, wan: bool = False) -> dict[str, str]:
        assert self.membership is not None
        return self.membership.serf_stats(wan)

    async def hand_off_leadership(self, timeout: float = 3.0) -> None:
        """On shutdown a leader hands leadership to its most caught-up peer first."""
        await self.operator.hand_off_leadership(timeout)

    async def reload(self) -> None:
        """Re-read the configuration files and apply what may change at run time
        (``PUT /v1/agent/reload``); any failure is a MusterError with Consul's text."""
        from .config import ConfigError, UsageError, parse_agent_flags

        if self.argv is None:
            raise MusterError("Failed to reload configs: the agent's command line is unknown")
        try:
            new = parse_agent_flags(self.argv)
        except (ConfigError, UsageError) as err:
            raise MusterError(f"Failed to reload configs: {err}") from None
        await self.agent.reload(new)
        setup_logging(new.log_level, new.log_json)
        self.config = new
        self.ctx.config = new

    async def reload_from_signal(self) -> None:
        """SIGHUP: like ``reload`` but errors are logged (there is no caller to answer)."""
        try:
            await self.reload()
            log.info("configuration reloaded")
        except MusterError as err:
            log.error("%s", err)


async def _amain(config: Config, argv: list[str] | None) -> int:
    proc = AgentProcess(config, argv=argv)
    loop = asyncio.get_running_loop()
    lifecycle = proc.lifecycle
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lifecycle.shutdown)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(proc.reload_from_signal()))
    try:
        await proc.start()
    except (OSError, StartupError, ValueError) as err:
        log.error("%s", err)
        with contextlib.suppress(Exception):
            await proc.stop()
        return 1
    frozen = freeze_startup_heap()
    log.debug("gc: %d start-up objects moved to the permanent generation", frozen)
    await lifecycle.stopping.wait()
    log.info("shutting down")
    with contextlib.suppress(Exception):
        await proc.hand_off_leadership()
    await proc.stop()
    return 1 if lifecycle.fatal_error else 0


def run_agent(config: Config, argv: list[str] | None = None) -> int:
    """Run the agent until SIGINT/SIGTERM; ``argv`` (without ``agent``) is re-read on reload."""
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "agent":
        argv = sys.argv[2:]
    setup_logging(config.log_level, config.log_json)
    problems = unsupported(config)
    if problems:
        for p in problems:
            print(f"==> {p}", file=sys.stderr)
        return 1
    try:
        _, runner = choose_runner()
    except EventLoopChoiceError as err:
        print(f"==> {err}", file=sys.stderr)
        return 1
    try:
        return int(runner(_amain(config, argv)))
    except KeyboardInterrupt:
        return 0
