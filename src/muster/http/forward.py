"""``?dc=`` forwarding: a request naming another datacenter is answered by a server of it.

Consul forwards the decoded RPC; Muster forwards the HTTP request itself (method, path, query,
body and the token headers) over server RPC (the ``http`` method on port 8300) and returns the
remote answer unchanged, so its status, body and ``X-Consul-*`` headers are the remote
datacenter's.  The remote server serves it exactly like a request sent to it directly: stale
reads locally, default reads and writes through its leader, blocking queries block there.

Who forwards where:

* a **server** looks the datacenter up in the WAN routing table (:mod:`muster.server.wan`) and
  calls its alive servers in the table's order;
* a **client agent** is not in the WAN pool: it hands the request to a server of its own
  datacenter, which forwards it onwards (Consul clients do the same).

Retry rule (the one forwarded writes inside a datacenter follow, ``server/raftlog.py``): another
server is tried only after a failure that provably sent nothing (no connection could be made).
Once the request may have reached a server, its failure is the answer: a write must never be
applied twice.  A request that already crossed the WAN and still names a foreign datacenter is
refused (``No path to datacenter``) rather than sent around again.

Endpoints that never forward (Consul serves them from the local agent): ``/v1/agent/*``,
``/v1/catalog/datacenters``, ``/v1/coordinate/datacenters`` and the UI.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..durations import parse_duration
from ..errors import MusterError, NoPathToDatacenter
from ..server.rpc import ConnectionLost
from ..server.wan import NoReachableServer, WanRouter, WanServer
from .request import Request, Response

log = logging.getLogger("muster.http.forward")

#: Set on a request that arrived from another datacenter (it must not be forwarded again).
DC_FORWARDED = "x-muster-dc-forwarded"
#: Headers that travel with a forwarded request (the token, and what a body needs).
CARRIED_HEADERS = ("x-consul-token", "authorization", "content-type", "x-forwarded-for")
#: Paths that are always served locally, whatever ``?dc`` says.
LOCAL_ONLY = ("/v1/agent/", "/v1/catalog/datacenters", "/v1/coordinate/datacenters")

#: (status, content type, headers, body) as the ``http`` RPC returns it.
Answer = tuple[int, str, list[tuple[str, str]], bytes]
#: Calls one server of another datacenter: (server, payload, timeout) -> answer.
RemoteCall = Callable[[WanServer, dict[str, Any], float], Awaitable[Answer]]
#: Calls a server of our own datacenter (client agents): (payload, timeout) -> answer.
LocalCall = Callable[[dict[str, Any], float], Awaitable[Answer]]


def forwardable(path: str) -> bool:
    return path.startswith("/v1/") and not any(
        path == p or (p.endswith("/") and path.startswith(p)) for p in LOCAL_ONLY)


def call_timeout(req: Request) -> float:
    """How long to wait for the remote answer: a blocking query's wait (capped at Consul's
    10 min, plus its 1/16 jitter) and a margin; 60 s for everything else."""
    if "index" not in req.query:
        return 60.0
    wait = 300.0
    raw = req.get("wait")
    if raw:
        try:
            wait = parse_duration(raw)
        except ValueError:
            return 60.0  # the remote side answers 400 at once
    wait = min(max(wait, 0.0) or 300.0, 600.0)
    return wait * (1 + 1 / 16) + 30.0


async def payload_of(req: Request) -> dict[str, Any]:
    body = b"" if req.method in ("GET", "HEAD") else await req.body()
    return {
        "m": req.method,
        "p": req.path,
        "q": req.raw_query.decode("latin-1"),
        "b": body,
        "h": {k: v for k, v in req.headers.items() if k in CARRIED_HEADERS},
        "x": "dc",
    }


def request_of(payload: Any, base_headers: dict[str, str]) -> Request:
    """Rebuild a forwarded request on the receiving server (see ``payload_of``)."""
    headers = dict(base_headers)
    h = payload.get("h")
    if isinstance(h, dict):
        headers.update({str(k): str(v) for k, v in h.items() if str(k) in CARRIED_HEADERS})
    if payload.get("x") == "dc":
        headers[DC_FORWARDED] = "1"
    body = payload.get("b")
    return Request(str(payload["m"]), str(payload["p"]), str(payload["q"]).encode("latin-1"), headers, None,
                   body=bytes(body) if isinstance(body, (bytes, bytearray)) else b"")


class DCForwarder:
    def __init__(self, local_dc: str, router: WanRouter | None = None, remote: RemoteCall | None = None,
                 local: LocalCall | None = None) -> None:
        self.local_dc = local_dc
        self.router = router
        self.remote = remote
        self.local = local
        self.counters = {"forwarded": 0, "retried_unsent": 0, "failed": 0}

    def known_datacenters(self) -> list[str]:
        return self.router.datacenters() if self.router is not None else [self.local_dc]

    async def maybe_forward(self, req: Request) -> Response | None:
        """The remote answer when ``req`` names another datacenter; None to serve it here."""
        dc = req.get("dc") or await self._body_dc(req)
        if not dc or dc == self.local_dc or not forwardable(req.path):
            return None
        if req.headers.get(DC_FORWARDED):
            raise NoPathToDatacenter()
        payload = await payload_of(req)
        timeout = call_timeout(req)
        if self.router is None or self.remote is None:
            if self.local is None:
                raise NoPathToDatacenter()
            payload["x"] = "local"  # the server we hand it to forwards it across the WAN
            status, ctype, headers, body = await self.local(payload, timeout)
            return Response(status, body, ctype or None, headers)
        status, ctype, headers, body = await self.call(dc, payload, timeout)
        return Response(status, body, ctype or None, headers)

    @staticmethod
    async def _body_dc(req: Request) -> str:
        """The ``Datacenter`` of a catalog register/deregister body (Consul routes those writes
        by it); "" when absent or unreadable (the handler reports bad bodies)."""
        if req.method != "PUT" or req.path not in ("/v1/catalog/register", "/v1/catalog/deregister"):
            return ""
        try:
            body = json.loads(await req.body() or b"null")
        except ValueError:
            return ""
        if not isinstance(body, dict):
            return ""
        for k, v in body.items():
            if str(k).lower() == "datacenter" and isinstance(v, str):
                return v
        return ""

    async def call(self, dc: str, payload: dict[str, Any], timeout: float) -> Answer:
        """Send ``payload`` to a server of ``dc`` under the retry rule above."""
        assert self.router is not None and self.remote is not None
        servers = self.router.route(dc)
        last: ConnectionLost | None = None
        for i, srv in enumerate(servers):
            try:
                ans = await self.remote(srv, payload, timeout)
            except ConnectionLost as err:
                self.router.notify_failed(srv)
                if err.sent:
                    self.counters["failed"] += 1
                    log.warning("forward to %s (%s) failed after sending: %s", srv.name, dc, err)
                    raise MusterError(str(err)) from None
                last = err
                if i + 1 < len(servers):
                    self.counters["retried_unsent"] += 1
                continue
            self.counters["forwarded"] += 1
            return ans
        self.counters["failed"] += 1
        log.warning("forward to %s: no server reachable (%s)", dc, last)
        raise NoReachableServer()
