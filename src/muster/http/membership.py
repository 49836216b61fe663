"""Gossip operations over HTTP: ``/v1/agent/join``, ``/v1/agent/force-leave``, and
``/v1/operator/keyring`` (docs/compat/agent.md, docs/compat/operator.md#keyring).

They act on the agent's LAN pool (``ctx.services.membership``).  A ``-dev`` agent started
without gossip answers 500 with a message saying how to turn it on, rather than pretending.
"""

from __future__ import annotations

from ..errors import BadRequest, MusterError
from ..gossip.transport import GossipPool
from .app import Route
from .body import canon, want_str
from .common import Ctx
from .request import Request, Response, json_response

NO_GOSSIP = "gossip is not running on this agent (a -dev agent gossips only with -serf-lan-port or -retry-join)"


def routes(ctx: Ctx) -> list[Route]:
    membership = ctx.services.membership

    def pool() -> GossipPool:
        if membership is None:
            raise MusterError(NO_GOSSIP)
        return membership.pool

    async def join(req: Request) -> Response:
        ctx.authorizer(req).require("agent", "write", ctx.server.ident.node_name)
        addr = req.route_param
        if not addr:
            raise BadRequest("Missing address to join")
        wan = "wan" in req.query and req.get("wan") not in ("0", "false")
        target = pool()
        if wan:
            if membership is None or membership.wan is None:
                raise MusterError("WAN pool is not running on this agent (servers only)")
            target = membership.wan
        try:
            n = await target.join([addr], count_self=True)
        except OSError as err:
            raise MusterError(f"failed to join {addr}: {err}") from None
        if n == 0:
            raise MusterError(f"1 error occurred:\n\t* Failed to join {addr}: no member answered\n\n")
        return Response(200, b"")

    async def force_leave(req: Request) -> Response:
        ctx.authorizer(req).require("operator", "write")
        node = req.route_param
        if not node:
            raise BadRequest("Missing node name")
        if not pool().force_leave(node, prune="prune" in req.query):
            raise MusterError(f"agent: No node found with name '{node}'")
        return Response(200, b"")

    async def keyring(req: Request) -> Response:
        ctx.authorizer(req).require("keyring", "read" if req.method == "GET" else "write")
        p = pool()
        if p.keyring is None:
            raise MusterError("keyring operations need gossip encryption: start the agent with -encrypt")
        op = {"GET": "list", "POST": "install", "PUT": "use", "DELETE": "remove"}[req.method]
        key = None
        if op != "list":
            body = canon(await req.json(), ("Key",))
            key = want_str(body, "Key")
            if not key:
                raise BadRequest("Request decode failed: missing Key")
        res = await p.keyring_operation(op, key)
        if res.num_err:
            errs = "; ".join(f"{node}: {msg}" for node, msg in sorted(res.messages.items()))
            raise MusterError(f"{res.num_err}/{res.num_nodes} nodes reported failure: {errs}")
        if op != "list":
            return Response(200, b"")
        return json_response(
            req,
            [
                {
                    "WAN": False,
                    "Datacenter": ctx.datacenter,
                    "Segment": "",
                    "Messages": dict(res.messages),
                    "Keys": dict(res.keys),
                    "PrimaryKeys": dict(res.primary_keys),
                    "NumNodes": res.num_nodes,
                }
            ],
        )

    return [
        Route("/v1/agent/join/", ("PUT",), join, prefix=True),
        Route("/v1/agent/force-leave/", ("PUT",), force_leave, prefix=True),
        Route("/v1/operator/keyring", ("GET", "POST", "PUT", "DELETE"), keyring),
    ]
