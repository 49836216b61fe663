"""``/v1/event/fire/:name`` and ``/v1/event/list`` (contract §2.8).

Events live in the agent (the last 256 it has seen, oldest first), not in the store: in Consul
they travel by gossip and are never replicated through Raft.  Until the gossip layer exists an
event reaches the agent it was fired on; the ``EventBuffer`` is the seam where gossip will
deliver remote events.  The list's blocking index is derived from the newest event's UUID, as
Consul does (clients only compare it for equality).
"""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

from ..errors import BadRequest, MusterError
from ..server.blocking import effective_wait
from ..state.watch import Watch, WatchSet
from .app import Route
from .common import Ctx
from .request import Request, Response, json_response, parse_query_options

MAX_EVENTS = 256
MAX_PAYLOAD = 100 * 1024  # Consul's user-event size limit is enforced by serf (512 bytes on the wire by default)


def uuid_to_index(uid: str) -> int:
    """Fold a UUID into 64 bits: hex of parts 1-3 XOR hex of parts 4-5 (Consul's rule)."""
    parts = uid.split("-")
    if len(parts) != 5:
        return 1
    try:
        lo = int(parts[0] + parts[1] + parts[2], 16)
        hi = int(parts[3] + parts[4], 16)
    except ValueError:
        return 1
    return (lo ^ hi) & (2**64 - 1) or 1


class EventBuffer:
    """The last ``MAX_EVENTS`` user events this agent has seen, with a watch for blocking lists."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.ltime = 0
        self._watch = Watch()

    def add(self, ev: dict[str, Any]) -> None:
        self.ltime = max(self.ltime, int(ev.get("LTime", 0)))
        self.events.append(ev)
        del self.events[:-MAX_EVENTS]
        w, self._watch = self._watch, Watch()
        w.fire()

    def next_ltime(self) -> int:
        self.ltime += 1
        return self.ltime

    def query(self, ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
        if ws is not None:
            ws.add(self._watch)
        idx = uuid_to_index(self.events[-1]["ID"]) if self.events else 1
        return idx, list(self.events)


def routes(ctx: Ctx) -> list[Route]:
    buf: EventBuffer = ctx.extra.setdefault("events", EventBuffer())

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
        deliver = ctx.extra.get("deliver_event")
        if callable(deliver):
            deliver(ev)
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
