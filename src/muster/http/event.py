"""``/v1/event/fire/:name`` and ``/v1/event/list`` (docs/compat/agent.md#user-events).

Events live in the agent's ``EventBuffer`` (``muster.events``), not in the store.  A fired
event goes out through gossip when the agent gossips (``Membership.fire``; the pool delivers it
back to this agent's buffer too), else straight into the buffer.
"""

from __future__ import annotations

import asyncio
import base64
import re

from ..errors import BadRequest, MusterError
from ..server.blocking import effective_wait
from ..state.watch import WatchSet
from .app import Route
from .common import Ctx
from .request import Request, Response, json_response, parse_query_options

MAX_PAYLOAD = 100 * 1024  # Consul's user-event size limit is enforced by serf (512 bytes on the wire by default)


def routes(ctx: Ctx) -> list[Route]:
    buf = ctx.services.events
    membership = ctx.services.membership

    async def fire(req: Request) -> Response:
        ctx.check_dc(req)
        name = req.route_param
        if not name:
            raise BadRequest("Missing name")
        if name.startswith("_"):
            raise MusterError("User events cannot start with '_'")
        ctx.authorizer(req).require("event", "write", name)
        for f in ("node", "service", "tag"):
            if f in req.query:
                try:
                    re.compile(req.get(f))
                except re.error as err:
                    raise BadRequest(f"Invalid {f} filter: {err}") from None
        payload = await req.body(MAX_PAYLOAD)
        if len(payload) > MAX_PAYLOAD:
            raise MusterError("Payload too large")
        ev = {
            "ID": ctx.rng.uuid(),
            "Name": name,
            "Payload": base64.b64encode(payload).decode() if payload else None,
            "NodeFilter": req.get("node"),
            "ServiceFilter": req.get("service"),
            "TagFilter": req.get("tag"),
            "Version": 1,
            "LTime": buf.next_ltime(),
        }
        if membership is not None:
            membership.fire(ev)  # the pool delivers it back to our buffer too
        else:
            buf.add(ev)
        return json_response(req, ev)

    async def listing(req: Request) -> Response:
        """Blocks until the newest event differs from ``index`` (an equality test, not ``>``)."""
        ctx.check_dc(req)
        name = req.get("name")
        opts = parse_query_options(req)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + effective_wait(opts.wait, ctx.rng, ctx.default_query_time, ctx.max_query_time)
        while True:
            ws = WatchSet()
            idx, evs = buf.query(ws)
            remaining = deadline - loop.time()
            if not opts.min_index or idx != opts.min_index or remaining <= 0:
                break
            if not await ws.wait(remaining):
                idx, evs = buf.query(None)
                break
        out = [e for e in evs if not name or e["Name"] == name]
        a = ctx.authorizer(req)
        visible = out if a.unrestricted("event") else [e for e in out if a.allowed("event", e["Name"], "read")]
        headers = ctx.meta_headers(idx, opts)
        if len(visible) != len(out) and req.token():
            headers.append(("X-Consul-Results-Filtered-By-ACLs", "true"))
        return json_response(req, visible, 200, headers)

    return [
        Route("/v1/event/fire/", ("PUT",), fire, prefix=True),
        Route("/v1/event/list", ("GET",), listing),
    ]
