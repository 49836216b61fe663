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

A stateless client agent (``server/remote.py``) forwards *every* ``/v1/`` request to a server
of its own datacenter (``forward_to_server``), whatever ``?dc`` says, except what Consul serves
from the agent itself (``CLIENT_LOCAL``: ``/v1/agent/*`` but its Connect endpoints, and the
user events of its gossip pool).  The server answers it as if it had been sent there; reads may be retried on another
server, writes only when they provably never left (``RemoteServers.call``).

The call itself, and its retry rule, is ``server/federation.py``'s.  A request that already
crossed the WAN and still names a foreign datacenter is refused (``No path to datacenter``)
rather than sent around again.

Endpoints that never forward (Consul serves them from the local agent): ``/v1/agent/*``,
``/v1/catalog/datacenters``, ``/v1/coordinate/datacenters`` and the UI.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..durations import parse_duration
from ..errors import NoPathToDatacenter
from ..server.federation import Federation
from ..server.remote import RemoteServers
from .request import Request, Response

log = logging.getLogger("muster.http.forward")

#: Set on a request that arrived from another datacenter (it must not be forwarded again).
DC_FORWARDED = "x-muster-dc-forwarded"
#: Headers that travel with a forwarded request (the token, and what a body needs).
CARRIED_HEADERS = ("x-consul-token", "authorization", "content-type", "x-forwarded-for")
#: Paths that are always served locally, whatever ``?dc`` says.
LOCAL_ONLY = ("/v1/agent/", "/v1/catalog/datacenters", "/v1/coordinate/datacenters")
#: Paths a stateless client agent answers itself (everything else under /v1/ goes to a server).
CLIENT_LOCAL = ("/v1/agent/", "/v1/event/")
#: ...except the agent's Connect endpoints: roots, leaf certificates (signed with the CA key,
#: which only servers hold) and intention checks are a server's answer (Consul's clients ask
#: their servers too).
CLIENT_VIA_SERVER = "/v1/agent/connect/"



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


async def maybe_forward(federation: Federation, req: Request) -> Response | None:
    """The remote answer when ``req`` names another datacenter; None to serve it here."""
    dc = req.get("dc") or await _body_dc(req)
    if not dc or dc == federation.datacenter or not forwardable(req.path):
        return None
    if req.headers.get(DC_FORWARDED):
        raise NoPathToDatacenter()
    return await forward_to(federation, req, dc)


async def forward_to(federation: Federation, req: Request, dc: str) -> Response:
    """``req`` answered by a server of ``dc`` (a client agent goes through its own servers)."""
    payload = await payload_of(req)
    timeout = call_timeout(req)
    if not federation.in_wan:
        payload["x"] = "local"  # the server we hand it to forwards it across the WAN
        if "dc" not in req.query:
            payload["q"] = f"{payload['q']}&dc={dc}" if payload["q"] else f"dc={dc}"
        status, ctype, headers, body = await federation.call_local(payload, timeout)
    else:
        status, ctype, headers, body = await federation.call(dc, payload, timeout)
    return Response(status, body, ctype or None, headers)


async def forward_to_server(remote: RemoteServers, req: Request) -> Response | None:
    """A stateless client's forward (module doc): the server's answer, or None to serve
    ``req`` here."""
    path = req.path
    if not path.startswith("/v1/") or (any(path.startswith(p) for p in CLIENT_LOCAL)
                                       and not path.startswith(CLIENT_VIA_SERVER)):
        return None
    payload = await payload_of(req)
    payload["x"] = "local"
    res = await remote.call("http", payload, call_timeout(req), idempotent=req.method in ("GET", "HEAD"))
    return Response(int(res[0]), bytes(res[3]), str(res[1]) or None, [(str(k), str(v)) for k, v in res[2]])


async def _body_dc(req: Request) -> str:
    """The ``Datacenter`` of a catalog register/deregister body (Consul routes those writes by
    it); "" when absent or unreadable (the handler reports bad bodies)."""
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
