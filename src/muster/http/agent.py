"""``/v1/agent/*`` (docs/compat/agent.md): this agent's own view, services and checks (metrics:
``metrics.py``, log stream: ``monitor.py``).

Agent endpoints answer from the agent's local state, not the catalog: a service registered
here shows in ``/v1/agent/services`` at once and reaches the catalog through anti-entropy.
They are not blocking queries and carry no ``X-Consul-Index`` (except the hash-blocking
``/agent/service/:id``).  Write endpoints answer 200 with an empty body.

Errors follow Consul's agent handlers: malformed input 400, unknown service/check IDs 404 with
Consul's "Unknown ... ID" texts (clients such as Vault key re-registration on them), other
agent errors 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import platform
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

from ..acl.authorizer import Authorizer
from ..agent import mesh
from ..agent.definitions import HEALTH_STATUSES, canonical_keys, get_str, parse_check, parse_service
from ..durations import parse_duration
from ..errors import ACLDisabled, BadRequest
from ..goparse import FALSE_STRINGS, parse_bool
from ..state.watch import WatchSet
from ..version import REVISION, VERSION
from . import render
from .app import Route
from .body import canon, want_str
from .common import Ctx, apply_filter_expr
from .request import Request, Response, json_response, text_response

if TYPE_CHECKING:  # the agent pulls in aiohttp (HTTP checks): imported where it is built
    from ..agent.agent import Agent

log = logging.getLogger("muster.agent")

BUILD_DATE = "2025-11-25T00:00:00Z"
DEFAULT_COORD = {"Vec": [0.0] * 8, "Error": 1.5, "Adjustment": 0.0, "Height": 1e-05}
STATUS_CODES = {"passing": 200, "warning": 429}


def agent_service(svc: dict[str, Any], dc: str) -> dict[str, Any]:
    """AgentService (``/agent/services`` values): optional fields omitted as Consul does."""
    out: dict[str, Any] = {}
    if svc.get("Kind"):
        out["Kind"] = svc["Kind"]
    out["ID"] = svc["ID"]
    out["Service"] = svc["Service"]
    out["Tags"] = list(svc.get("Tags") or [])
    out["Meta"] = dict(svc.get("Meta") or {})
    out["Port"] = svc.get("Port", 0)
    out["Address"] = svc.get("Address", "")
    if svc.get("SocketPath"):
        out["SocketPath"] = svc["SocketPath"]
    if svc.get("TaggedAddresses"):
        out["TaggedAddresses"] = svc["TaggedAddresses"]
    out["Weights"] = dict(svc.get("Weights") or render.DEFAULT_WEIGHTS)
    out["EnableTagOverride"] = bool(svc.get("EnableTagOverride", False))
    if svc.get("Kind") in (mesh.CONNECT_PROXY, *mesh.GATEWAY_KINDS):
        out["Proxy"] = mesh.agent_proxy(svc.get("Proxy") or mesh.DEFAULT_PROXY)
    if (svc.get("Connect") or {}).get("Native"):
        out["Connect"] = {"Native": True}
    out["Datacenter"] = dc
    if svc.get("Locality") is not None:
        out["Locality"] = dict(svc["Locality"])
    return out


def content_hash(obj: dict[str, Any]) -> str:
    """An opaque, stable hash of a rendered service (``X-Consul-ContentHash``)."""
    raw = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def wants_text(req: Request) -> bool:
    return req.get("format") == "text" or "text/plain" in req.headers.get("accept", "")


def _flag_value(req: Request, name: str) -> bool:
    """``?enable=`` style required bool: 400 when missing or not a Go bool."""
    if name not in req.query:
        raise BadRequest(f"Missing value for {name}")
    try:
        return parse_bool(req.get(name))
    except ValueError:
        raise BadRequest(f"Invalid value for {name}") from None


def routes(ctx: Ctx) -> list[Route]:
    server = ctx.server
    dc = ctx.datacenter

    def agent() -> Agent:
        return ctx.agent

    def empty() -> Response:
        return Response(200, b"")

    def cfg(name: str, default: Any) -> Any:
        v = getattr(ctx.config, name, None) if ctx.config is not None else None
        return default if v is None else v

    # ------------------------------------------------------------------ self / members

    def authz(req: Request) -> Authorizer:
        return ctx.authorizer(req)

    def need_node(req: Request, level: str) -> None:
        authz(req).require("node", level, server.ident.node_name)

    def need_agent(req: Request, level: str) -> None:
        authz(req).require("agent", level, server.ident.node_name)

    def need_service_of(req: Request, sid: str, level: str) -> None:
        """service:<level> on the local service ``sid`` (an unknown ID is left to the handler)."""
        a = authz(req)
        if a.unrestricted("service"):
            return
        svc = agent().local.service(sid)
        if svc is not None:
            a.require("service", level, svc["Service"])

    def need_check_write(req: Request, cid: str) -> None:
        """A service check needs service:write on its service, a node check node:write."""
        a = authz(req)
        if a.unrestricted("service") and a.unrestricted("node"):
            return
        chk = agent().local.check(cid)
        if chk is None:
            return
        if chk.get("ServiceName"):
            a.require("service", "write", chk["ServiceName"])
        else:
            a.require("node", "write", server.ident.node_name)

    def filtered(req: Request, dropped: bool) -> list[tuple[str, str]]:
        return [("X-Consul-Results-Filtered-By-ACLs", "true")] if dropped and req.token() else []

    async def self_(req: Request) -> Response:
        need_agent(req, "read")
        a = agent()
        ident = server.ident
        meta = {"consul-network-segment": ""}
        meta.update(ident.node_meta)
        body = {
            "Config": {
                "Datacenter": ident.datacenter,
                "PrimaryDatacenter": cfg("primary_datacenter", "") or ident.datacenter,
                "NodeName": ident.node_name,
                "NodeID": ident.node_id,
                "Revision": REVISION,
                "Server": bool(cfg("server", False) or cfg("dev_mode", False)),
                "Version": VERSION,
                "BuildDate": BUILD_DATE,
            },
            "DebugConfig": debug_config(),
            "Coord": own_coord(),
            "Member": a.self_member(False),
            "Stats": stats(),
            "Meta": meta,
            "xDS": {"SupportedProxies": {}, "Port": -1, "Ports": {"Plaintext": -1, "TLS": -1}},
        }
        return json_response(req, body)

    def own_coord() -> Any:
        """This agent's LAN coordinate (``null`` when coordinates are disabled)."""
        coords = ctx.services.coordinates
        if coords is None:
            return None
        c = coords.own_coordinate()
        return c.as_json() if c is not None else None

    def debug_config() -> dict[str, Any]:
        ident = server.ident
        ports = getattr(ctx.config, "ports", None)
        return {
            "AdvertiseAddrLAN": ident.advertise_addr,
            "AdvertiseAddrWAN": ident.advertise_addr_wan or ident.advertise_addr,
            "Bootstrap": bool(cfg("bootstrap", False)),
            "BootstrapExpect": int(cfg("bootstrap_expect", 0)),
            "ClientAddrs": list(str(cfg("client_addr", "127.0.0.1")).split()),
            "Datacenter": ident.datacenter,
            "DevMode": bool(cfg("dev_mode", False)),
            "EnableLocalScriptChecks": bool(cfg("enable_local_script_checks", False) or cfg("enable_script_checks", False)),
            "EnableRemoteScriptChecks": bool(cfg("enable_script_checks", False)),
            "HTTPPort": getattr(ports, "http", 8500) if ports is not None else 8500,
            "NodeID": ident.node_id,
            "NodeName": ident.node_name,
            "ServerMode": bool(cfg("server", False) or cfg("dev_mode", False)),
            "ServerPort": ident.server_port,
            "SerfPortLAN": ident.serf_lan_port,
            "Version": VERSION,
        }

    def stats() -> dict[str, dict[str, str]]:
        a = agent()
        lg = server.log
        leader = server.is_leader()
        checks = a.local.checks()
        kinds = [c.get("Type") for c in checks.values()]
        servers_now = ctx.services.operator.servers()
        leader_addr = next((sv["Address"] for sv in servers_now if sv["Leader"]), "")
        is_server = bool(cfg("server", False) or cfg("dev_mode", False))
        snap_index, snap_term = lg.last_snapshot()
        return {
            "agent": {
                "check_monitors": str(kinds.count("script")),
                "check_ttls": str(kinds.count("ttl")),
                "checks": str(len(checks)),
                "services": str(len(a.local.services())),
            },
            "build": {"prerelease": "", "revision": REVISION, "version": VERSION, "version_metadata": ""},
            "consul": {
                "acl": "disabled",
                "bootstrap": "true" if cfg("bootstrap", False) else "false",
                "known_datacenters": "1",
                "leader": "true" if leader else "false",
                "leader_addr": leader_addr,
                "server": "true" if is_server else "false",
            },
            "raft": {
                "applied_index": str(server.fsm.last_applied),
                "commit_index": str(lg.commit_index()),
                "fsm_pending": "0",
                "last_contact": "0" if leader else f"{server.last_contact_ms()}ms",
                "last_log_index": str(lg.last_index()),
                "last_log_term": str(lg.term()),
                "last_snapshot_index": str(snap_index),
                "last_snapshot_term": str(snap_term),
                "latest_configuration": "[" + ", ".join(
                    f"{{Suffrage:{'Voter' if sv['Voter'] else 'Nonvoter'} ID:{sv['ID']} Address:{sv['Address']}}}" for sv in servers_now
                ) + "]",
                "latest_configuration_index": "0",
                "num_peers": str(max(0, sum(1 for sv in servers_now if sv["Voter"]) - 1)),
                "protocol_version": "3",
                "protocol_version_max": "3",
                "protocol_version_min": "0",
                "snapshot_version_max": "1",
                "snapshot_version_min": "0",
                "state": "Leader" if leader else "Follower",
                "term": str(lg.term()),
            },
            "runtime": {
                "arch": platform.machine(),
                "cpu_count": str(os.cpu_count() or 1),
                "goroutines": str(len(asyncio.all_tasks())),
                "max_procs": str(os.cpu_count() or 1),
                "os": sys.platform,
                "version": f"python{platform.python_version()}",
            },
            "serf_lan": a.serf_stats(False),
            "serf_wan": a.serf_stats(True),
        }

    async def members(req: Request) -> Response:
        wan = bool(req.get("wan"))
        a = authz(req)
        everyone = agent().members(wan)
        out = everyone if a.unrestricted("node") else [m for m in everyone if a.allowed("node", m.get("Name", ""), "read")]
        dropped = len(out) != len(everyone)
        expr = req.get("filter")
        if expr:
            out = apply_filter_expr(expr, out)
        return json_response(req, out, headers=filtered(req, dropped))

    # ------------------------------------------------------------------ services

    async def services(req: Request) -> Response:
        a = authz(req)
        local = agent().local.services()
        visible = {sid: s for sid, s in local.items() if a.allowed("service", s["Service"], "read")}
        out = {sid: agent_service(s, dc) for sid, s in visible.items()}
        expr = req.get("filter")
        if expr:
            out = apply_filter_expr(expr, out)
        return json_response(req, out, headers=filtered(req, len(visible) != len(local)))

    async def service(req: Request) -> Response:
        sid = req.route_param
        if not sid:
            raise BadRequest("Missing serviceID")
        local = agent().local
        want_hash = req.get("hash")
        wait = 0.0
        if "wait" in req.query:
            try:
                wait = parse_duration(req.get("wait"))
            except ValueError:
                raise BadRequest("Invalid wait time") from None
        if want_hash and wait <= 0:
            wait = ctx.default_query_time
        wait = min(wait, ctx.max_query_time)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            ws = WatchSet()
            local.watch(ws)
            svc = local.service(sid)
            if svc is None:
                return text_response(404, f"unknown service ID: {sid}")
            authz(req).require("service", "read", svc["Service"])  # re-checked on every wake
            body = agent_service(svc, dc)
            h = content_hash(body)
            remaining = deadline - loop.time()
            if not want_hash or h != want_hash or remaining <= 0:
                body["ContentHash"] = h
                return json_response(req, body, headers=[("X-Consul-ContentHash", h)])
            await ws.wait(remaining)

    async def service_register(req: Request) -> Response:
        sd = parse_service(await req.json())
        a = authz(req)
        a.require("service", "write", str(sd.service.get("Service", "")))
        for chk in sd.checks:
            if chk.script_args:
                a.require("agent", "write", server.ident.node_name)
        replace = "replace-existing-checks" in req.query and req.get("replace-existing-checks") not in FALSE_STRINGS
        agent().add_service(sd, replace_existing_checks=replace, source="remote", token=req.token())
        return empty()

    async def service_deregister(req: Request) -> Response:
        sid = req.route_param
        if not sid:
            raise BadRequest("Missing service ID")
        need_service_of(req, sid, "write")
        agent().remove_service(sid)
        return empty()

    async def service_maintenance(req: Request) -> Response:
        sid = req.route_param
        if not sid:
            raise BadRequest("Missing service ID")
        enable = _flag_value(req, "enable")
        need_service_of(req, sid, "write")
        a = agent()
        if enable:
            a.enable_service_maintenance(sid, req.get("reason"), req.token())
        else:
            a.disable_service_maintenance(sid)
        return empty()

    async def node_maintenance(req: Request) -> Response:
        need_node(req, "write")
        enable = _flag_value(req, "enable")
        a = agent()
        if enable:
            a.enable_node_maintenance(req.get("reason"), req.token())
        else:
            a.disable_node_maintenance()
        return empty()

    # ------------------------------------------------------------------ checks

    async def checks(req: Request) -> Response:
        a = authz(req)
        local = agent().local.checks()
        visible = {
            cid: c
            for cid, c in local.items()
            if a.allowed("node", c.get("Node", ""), "read")
            and (not c.get("ServiceName") or a.allowed("service", c["ServiceName"], "read"))
        }
        out = {cid: render.health_check(c) for cid, c in visible.items()}
        expr = req.get("filter")
        if expr:
            out = apply_filter_expr(expr, out)
        return json_response(req, out, headers=filtered(req, len(visible) != len(local)))

    async def check_register(req: Request) -> Response:
        chk = parse_check(await req.json())
        if not chk.name:
            raise BadRequest("Missing check name")
        if chk.status and chk.status not in HEALTH_STATUSES:
            raise BadRequest("Bad check status")
        err = chk.validate()
        if err:
            raise BadRequest(f"Invalid check: {err}")
        a = authz(req)
        if chk.service_id:
            svc = agent().local.service(chk.service_id)
            a.require("service", "write", svc["Service"] if svc is not None else chk.service_id)
        else:
            a.require("node", "write", server.ident.node_name)
        if chk.script_args:
            a.require("agent", "write", server.ident.node_name)
        agent().add_check(chk, source="remote", token=req.token())
        return empty()

    async def check_deregister(req: Request) -> Response:
        cid = req.route_param
        if not cid:
            raise BadRequest("Missing check ID")
        need_check_write(req, cid)
        agent().remove_check(cid)
        return empty()

    def ttl_handler(status: str) -> Any:
        async def handle(req: Request) -> Response:
            need_check_write(req, req.route_param)
            agent().update_ttl(req.route_param, status, req.get("note"))
            return empty()

        return handle

    async def check_update(req: Request) -> Response:
        d = canonical_keys(await req.json(), ("Status", "Output"), None, "agent.checkUpdate")
        status = get_str(d, "Status")
        if status not in HEALTH_STATUSES:
            raise BadRequest(f"Invalid check status: '{status}'")
        need_check_write(req, req.route_param)
        agent().update_ttl(req.route_param, status, get_str(d, "Output"))
        return empty()

    # ------------------------------------------------------------------ local service health

    def service_health(sid: str) -> tuple[int, str, dict[str, Any]]:
        local = agent().local
        svc = local.service(sid)
        assert svc is not None
        cs = local.checks_for_service(sid, include_node_checks=True)
        status = render.aggregated_status(cs)
        code = STATUS_CODES.get(status, 503)
        info = {
            "AggregatedStatus": status,
            "Service": agent_service(svc, dc),
            "Checks": [render.health_check(c) for c in cs],
        }
        return code, status, info

    def health_reply(req: Request, code: int, status: str, body: Any) -> Response:
        if wants_text(req):
            r = Response(code, status.encode(), "text/plain")
        else:
            r = json_response(req, body, code)
        r.headers.append(("X-Consul-Reason", status))
        return r

    async def health_by_id(req: Request) -> Response:
        sid = req.route_param
        if not sid:
            raise BadRequest("Missing serviceID")
        if agent().local.service(sid) is None:
            reason = f"ServiceId {sid} not found"
            body: Any = {"AggregatedStatus": "critical", "Service": None, "Checks": None}
            return health_reply(req, 404, reason, reason if wants_text(req) else body)
        need_service_of(req, sid, "read")
        code, status, info = service_health(sid)
        return health_reply(req, code, status, info)

    async def health_by_name(req: Request) -> Response:
        name = req.route_param
        if not name:
            raise BadRequest("Missing service Name")
        local = agent().local
        ids = [sid for sid, s in local.services().items() if s["Service"] == name]
        if not ids:
            reason = f"ServiceName {name} Not Found"
            return health_reply(req, 404, reason, reason if wants_text(req) else [])
        authz(req).require("service", "read", name)
        code, status = 200, "passing"
        infos = []
        for sid in ids:
            c, st, info = service_health(sid)
            infos.append(info)
            if c > code:
                code, status = c, st
        return health_reply(req, code, status, infos)

    # ------------------------------------------------------------------ reload / host

    async def reload(req: Request) -> Response:
        need_agent(req, "write")
        await ctx.services.lifecycle.reload()
        return empty()

    async def leave(req: Request) -> Response:
        """Graceful leave: hand leadership over, leave the Raft configuration, then shut down."""
        ctx.authorizer(req).require("agent", "write", server.ident.node_name)
        lifecycle = ctx.services.lifecycle
        await ctx.services.operator.leave()
        lifecycle.left = True  # the gossip pool announces `left`, not a failure
        lifecycle.shutdown_soon(0.2)
        log.info("graceful leave complete")
        return Response(200, b"")

    async def host(req: Request) -> Response:
        authz(req).require("operator", "read")
        return json_response(req, host_info())

    async def token(req: Request) -> Response:
        """``PUT /agent/token/<kind>``: replace one of the agent's tokens (``acl:write``)."""
        svc = ctx.acl
        if svc is None or not svc.enabled:
            raise ACLDisabled()
        ctx.authorizer(req).require("acl", "write")
        raw = await req.json()
        body = canon(raw, ("Token",), "structs.AgentToken") if raw is not None else {}
        svc.set_agent_token(req.route_param, want_str(body, "Token"))
        return empty()

    return [
        Route("/v1/agent/self", ("GET",), self_),
        Route("/v1/agent/members", ("GET",), members),
        Route("/v1/agent/services", ("GET",), services),
        Route("/v1/agent/service/register", ("PUT",), service_register),
        Route("/v1/agent/service/deregister/", ("PUT",), service_deregister, prefix=True),
        Route("/v1/agent/service/maintenance/", ("PUT",), service_maintenance, prefix=True),
        Route("/v1/agent/service/", ("GET",), service, prefix=True),
        Route("/v1/agent/maintenance", ("PUT",), node_maintenance),
        Route("/v1/agent/checks", ("GET",), checks),
        Route("/v1/agent/check/register", ("PUT",), check_register),
        Route("/v1/agent/check/deregister/", ("PUT",), check_deregister, prefix=True),
        Route("/v1/agent/check/pass/", ("PUT",), ttl_handler("passing"), prefix=True),
        Route("/v1/agent/check/warn/", ("PUT",), ttl_handler("warning"), prefix=True),
        Route("/v1/agent/check/fail/", ("PUT",), ttl_handler("critical"), prefix=True),
        Route("/v1/agent/check/update/", ("PUT",), check_update, prefix=True),
        Route("/v1/agent/health/service/id/", ("GET",), health_by_id, prefix=True),
        Route("/v1/agent/health/service/name/", ("GET",), health_by_name, prefix=True),
        Route("/v1/agent/reload", ("PUT",), reload),
        Route("/v1/agent/leave", ("PUT",), leave),
        Route("/v1/agent/host", ("GET",), host),
        Route("/v1/agent/token/", ("PUT",), token, prefix=True),
    ]


def host_info() -> dict[str, Any]:
    """``/v1/agent/host``: gopsutil-shaped host facts (lower-case keys), best effort."""
    errors: list[str] = []
    mem: dict[str, Any] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            info = {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in f if ln.split()[1:2] and ln.split()[1].isdigit()}
        total, avail = info.get("MemTotal", 0), info.get("MemAvailable", 0)
        mem = {
            "total": total,
            "available": avail,
            "used": total - avail,
            "usedPercent": (100.0 * (total - avail) / total) if total else 0.0,
            "free": info.get("MemFree", 0),
        }
    except OSError as err:
        errors.append(f"memory: {err}")
    try:
        st = os.statvfs("/")
        dtotal = st.f_blocks * st.f_frsize
        dfree = st.f_bavail * st.f_frsize
        disk = {
            "path": "/",
            "total": dtotal,
            "free": dfree,
            "used": dtotal - dfree,
            "usedPercent": (100.0 * (dtotal - dfree) / dtotal) if dtotal else 0.0,
        }
    except OSError as err:
        disk = {}
        errors.append(f"disk: {err}")
    uname = platform.uname()
    boot = 0
    try:
        with open("/proc/stat", encoding="ascii") as f:
            for ln in f:
                if ln.startswith("btime "):
                    boot = int(ln.split()[1])
    except OSError as err:
        errors.append(f"host: {err}")
    return {
        "Memory": mem,
        "CPU": [{"cpu": i, "modelName": uname.processor or uname.machine} for i in range(os.cpu_count() or 1)],
        "Host": {
            "hostname": socket.gethostname(),
            "uptime": int(time.time()) - boot if boot else 0,
            "bootTime": boot,
            "os": sys.platform,
            "platform": uname.system.lower(),
            "kernelVersion": uname.release,
            "kernelArch": uname.machine,
        },
        "Disk": disk,
        "CollectionTime": time.time_ns(),
        "Errors": errors,
    }
