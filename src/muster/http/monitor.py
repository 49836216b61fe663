"""``GET /v1/agent/monitor``: the agent's log lines, streamed as they are written.

``?loglevel=`` (default INFO; hclog's names, any case; anything else is 400
``Unknown log level: <value>`` as in Consul) and ``?logjson`` (presence: one JSON object per
line).  The response is chunked and never ends on its own: it ends when the client hangs up
(the subscription is released at once) or when the agent stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..errors import BadRequest
from ..telemetry.logstream import Monitors, parse_level
from .app import Route
from .common import Ctx
from .request import Request, Response, StreamResponse

CONTENT_TYPE = "text/plain; charset=utf-8"


def routes(ctx: Ctx, monitors: Monitors) -> list[Route]:
    node = ctx.services.server.ident.node_name

    async def monitor(req: Request) -> Response:
        ctx.authorizer(req).require("agent", "read", node)
        name = req.get("loglevel") or "INFO"
        level = parse_level(name)
        if level is None:
            raise BadRequest(f"Unknown log level: {name}")
        sub = monitors.open(level, "logjson" in req.query)

        async def lines() -> AsyncIterator[bytes]:
            try:
                while True:
                    batch = await sub.next_lines()
                    if not batch:
                        return
                    yield "".join(batch).encode("utf-8", errors="replace")
            finally:
                monitors.release(sub)

        return StreamResponse(200, lines(), CONTENT_TYPE)

    return [Route("/v1/agent/monitor", ("GET",), monitor)]
