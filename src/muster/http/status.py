"""``/v1/status/*`` and ``/v1/operator/raft/*``, ``/v1/operator/autopilot/*`` (docs/compat/operator.md).

``/v1/status/leader`` is the JSON string ``"ip:port"`` of the leader's server RPC address (or
``""``): readiness probes grep it for ``".+"``.  The Raft views come from the log (``-dev``: a
single voter that is always leader), through the ``ClusterOperator``.
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

    operator = ctx.services.operator

    def servers() -> list[dict[str, Any]]:
        return operator.servers()

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
        """Server health as the leader sees it (see ``ClusterOperator.autopilot_health``)."""
        ctx.check_dc(req)
        ctx.authorizer(req).require("operator", "read")
        fwd = await from_leader(ctx, req)
        if fwd is not None:
            return fwd
        body = operator.autopilot_health()
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
