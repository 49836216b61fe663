"""``/v1/status/*`` and ``/v1/operator/raft/*``, ``/v1/operator/autopilot/*`` (contract §2.7).

``/v1/status/leader`` is the JSON string ``"ip:port"`` of the leader's server RPC address (or
``""``): readiness probes grep it for ``".+"``.  The Raft views come from the log (``-dev``: a
single voter that is always leader).
"""

from __future__ import annotations

from typing import Any

from ..errors import ACLDisabled, BadRequest
from ..goparse import parse_uint
from ..structs import AutopilotCommand
from .app import Route
from .body import canon
from .common import Ctx, from_leader
from .request import Request, Response, json_response, parse_query_options

AUTOPILOT_DEFAULTS: dict[str, Any] = {
    "CleanupDeadServers": True,
    "LastContactThreshold": "200ms",
    "MaxTrailingLogs": 250,
    "MinQuorum": 0,
    "ServerStabilizationTime": "10s",
    "RedundancyZoneTag": "",
    "DisableUpgradeMigration": False,
    "UpgradeVersionTag": "",
}


def routes(ctx: Ctx) -> list[Route]:
    server = ctx.server
    ident = server.ident

    def rpc_addr() -> str:
        return f"{ident.advertise_addr}:{ident.server_port}"

    def servers() -> list[dict[str, Any]]:
        return servers_view(ctx)

    async def leader(req: Request) -> Response:
        ctx.check_dc(req)
        leader_addr = ""
        for s in servers():
            if s["Leader"]:
                leader_addr = s["Address"]
        return json_response(req, leader_addr)

    async def peers(req: Request) -> Response:
        ctx.check_dc(req)
        return json_response(req, [s["Address"] for s in servers() if s["Voter"]])

    async def raft_configuration(req: Request) -> Response:
        ctx.check_dc(req)
        ctx.authorizer(req).require("operator", "read")
        fwd = await from_leader(ctx, req)
        if fwd is not None:
            return fwd
        opts = parse_query_options(req)
        await server.check_read(opts.consistency)
        return json_response(req, {"Servers": servers(), "Index": server.log.configuration_index()})

    async def autopilot_health(req: Request) -> Response:
        """Server health as the leader sees it (see ``autopilot_health_view``)."""
        ctx.check_dc(req)
        ctx.authorizer(req).require("operator", "read")
        fwd = await from_leader(ctx, req)
        if fwd is not None:
            return fwd
        body = autopilot_health_view(ctx)
        return json_response(req, body, 200 if body["Healthy"] else 429)

    async def autopilot_config(req: Request) -> Response:
        ctx.check_dc(req)
        ctx.authorizer(req).require("operator", "read" if req.method == "GET" else "write")
        if req.method == "GET":
            cur = dict(AUTOPILOT_DEFAULTS)
            cur.update({k: v for k, v in server.store.autopilot.items()})
            cur.setdefault("CreateIndex", 0)
            cur.setdefault("ModifyIndex", 0)
            return json_response(req, cur)
        body = canon(await req.json(), tuple(AUTOPILOT_DEFAULTS))
        cfg = dict(AUTOPILOT_DEFAULTS)
        cfg.update(body)
        cas = -1
        if "cas" in req.query:
            v = req.get("cas")
            try:
                cas = parse_uint(v, 10)
            except ValueError:
                raise BadRequest(f"Error parsing cas value: {v}") from None
        ok = await server.apply(AutopilotCommand(config=cfg, cas=cas))
        return json_response(req, bool(ok))

    async def acl_disabled(req: Request) -> Response:
        raise ACLDisabled()

    return [
        Route("/v1/status/leader", ("GET",), leader),
        Route("/v1/status/peers", ("GET",), peers),
        Route("/v1/operator/raft/configuration", ("GET",), raft_configuration),
        Route("/v1/operator/autopilot/health", ("GET",), autopilot_health),
        Route("/v1/operator/autopilot/configuration", ("GET", "PUT"), autopilot_config),
        Route("/v1/acl/", ("GET", "PUT", "POST", "DELETE"), acl_disabled, prefix=True),
    ]


def servers_view(ctx: Ctx) -> list[dict[str, Any]]:
    """The Raft configuration as Consul shows it (``-dev``: one voter, always leader)."""
    server = ctx.server
    ident = server.ident

    def rpc_addr() -> str:
        return f"{ident.advertise_addr}:{ident.server_port}"

    log = server.log
    cluster = ctx.extra.get("cluster")
    core = getattr(log, "core", None)
    if cluster is not None:
        if core is None:
            return []
        lead = log.leader_id()
        out = []
        learners = [v for v in core.learners if not cluster.is_client(v)]  # client agents are not servers
        for nid, voter in [(v, True) for v in core.voters] + [(v, False) for v in learners]:
            if nid == ident.node_id:
                name, addr, last = ident.node_name, rpc_addr(), log.last_index()
            else:
                peer = cluster.book.peers.get(nid)
                name, addr = (peer.name, peer.addr) if peer else ("", "")
                pr = core.prs.get(nid) if log.is_leader() else None
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
    return [
        {
            "ID": ident.node_id,
            "Node": ident.node_name,
            "Address": rpc_addr(),
            "Leader": log.is_leader(),
            "Voter": True,
            "ProtocolVersion": "3",
            "LastIndex": log.last_index(),
        }
    ]


def autopilot_health_view(ctx: Ctx) -> dict[str, Any]:
    """A server is healthy when the leader heard from it within 2 s and it trails by at most
    250 entries (Consul's LastContactThreshold and MaxTrailingLogs)."""
    server = ctx.server
    ident = server.ident

    def servers() -> list[dict[str, Any]]:
        return servers_view(ctx)

    import datetime

    since = datetime.datetime.fromtimestamp(server.started_at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    log = server.log
    heard: dict[str, float] = getattr(log, "last_heard", {})
    now = server.clock.monotonic()
    leader_last = log.last_index()
    out = []
    for s in servers():
        if s["Leader"] or s["ID"] == ident.node_id:
            contact = 0.0 if s["Leader"] else log.last_contact()
        else:
            contact = now - heard[s["ID"]] if s["ID"] in heard else float("inf")
        healthy = contact < 2.0 and (s["Leader"] or leader_last - s["LastIndex"] <= 250 or not log.is_leader())
        out.append(
            {
                "ID": s["ID"],
                "Name": s["Node"],
                "Address": s["Address"],
                "SerfStatus": "alive" if contact < 10 else "failed",
                "Version": _version(),
                "Leader": s["Leader"],
                "LastContact": "0s" if contact == 0 else (f"{contact * 1000:.3f}ms" if contact != float("inf") else "-1ns"),
                "LastTerm": log.term(),
                "LastIndex": s["LastIndex"],
                "Healthy": bool(healthy),
                "Voter": s["Voter"],
                "StableSince": since,
            }
        )
    voters = [s for s in out if s["Voter"]]
    healthy_voters = sum(1 for s in voters if s["Healthy"])
    quorum = len(voters) // 2 + 1
    body = {
        "Healthy": bool(out) and all(s["Healthy"] for s in out),
        "FailureTolerance": max(0, healthy_voters - quorum),
        "Servers": out,
    }
    return body


def _version() -> str:
    from ..version import VERSION

    return VERSION
