"""Cluster peering endpoints as far as a registry without peers goes, and ``/v1/operator/usage``.

Muster implements no cluster peering: there is never a peering to list or read, and a request
that would create one (``/v1/peering/token``, ``/v1/peering/establish``) gets, after Consul's
own request validation, the error Consul gives when peering is disabled
(``peering { enabled = false }``).  Reads that take ``?peer=<name>`` match nothing
(``render.peer_match``).

``/v1/operator/usage`` counts what the catalog holds, as Consul's usage table does: unique
service names, instances, instances by mesh kind (``connect-native`` is a typical service with
``Connect.Native``), billable instances (typical or native, the ``consul`` service excluded),
and nodes.  It is a blocking query on the catalog and carries the query metadata in the body
as well as in the headers (Consul embeds ``QueryMeta`` in ``structs.Usage``).
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import BadRequest, NotFound
from ..server.blocking import blocking_query
from ..state.rows import Service
from ..state.watch import WatchSet
from .app import Route
from .common import Ctx
from .request import Request, Response, json_response, parse_query_options

PEERING_DISABLED = "peering must be enabled to use this endpoint"
MESH_KINDS = ("connect-proxy", "ingress-gateway", "mesh-gateway", "terminating-gateway", "api-gateway")


def service_usage(nodes: int, instances: list[Service]) -> dict[str, Any]:
    """Consul's ``ServiceUsage`` of a datacenter from its service instances."""
    by_kind = {k: 0 for k in MESH_KINDS}
    by_kind["connect-native"] = 0
    billable = 0
    for svc in instances:
        kind = svc.kind
        if kind:
            if kind in by_kind:
                by_kind[kind] += 1
            continue
        if svc.connect.get("Native"):
            by_kind["connect-native"] += 1
        if svc.service != "consul":
            billable += 1
    return {
        "Nodes": nodes,
        "Services": len({svc.service for svc in instances}),
        "ServiceInstances": len(instances),
        "ConnectServiceInstances": by_kind,
        "BillableServiceInstances": billable,
    }


async def _body_object(req: Request) -> dict[str, Any]:
    """The JSON object of a peering request, with Consul's two 400s for a bad body."""
    raw = await req.body()
    if not raw:
        raise BadRequest("The peering arguments must be provided in the body")
    try:
        obj = json.loads(raw)
    except ValueError as err:
        raise BadRequest(f"Body decoding failed: {err}") from None
    if not isinstance(obj, dict):
        raise BadRequest(f"Body decoding failed: json: cannot unmarshal {type(obj).__name__} into Go value")
    return obj


def routes(ctx: Ctx) -> list[Route]:
    store = ctx.server.store

    async def usage(req: Request) -> Response:
        ctx.check_dc(req)
        opts = parse_query_options(req)
        await ctx.server.check_read(opts.consistency)

        def run(ws: WatchSet | None) -> tuple[int, dict[str, Any]]:
            idx, by_name = store.list_services(ws)
            _, nodes = store.list_nodes(ws)
            instances = [svc for pairs in by_name.values() for _, svc in pairs]
            return idx, service_usage(len(nodes), instances)

        idx, result = await blocking_query(
            store, opts, run, ctx.rng, ctx.default_query_time, ctx.max_query_time
        )
        known = ctx.server.known_leader()
        body = {
            "Usage": {ctx.datacenter: result},
            "Index": idx,
            "LastContact": ctx.server.last_contact_ms(),
            "KnownLeader": known,
            "ConsistencyLevel": opts.consistency,
            "NotModified": False,
            "Backend": 0,
            "ResultsFilteredByACLs": False,
        }
        return json_response(req, body, 200, ctx.meta_headers(idx, opts))

    async def peerings(req: Request) -> Response:
        ctx.check_dc(req)
        return json_response(req, [])

    async def peering(req: Request) -> Response:
        name = req.route_param
        if not name:
            raise BadRequest("Must specify a name to fetch.")
        if req.method == "DELETE":
            return Response(200, b"", None)  # deleting a peering that does not exist succeeds
        raise NotFound(f"Peering not found for {json.dumps(name)}")

    async def token(req: Request) -> Response:
        body = await _body_object(req)
        if not body.get("PeerName"):
            raise BadRequest("PeerName is required in the payload when generating a new peering token.")
        raise BadRequest(PEERING_DISABLED)

    async def establish(req: Request) -> Response:
        body = await _body_object(req)
        if not body.get("PeerName"):
            raise BadRequest("PeerName is required in the payload when establishing a peering.")
        if not body.get("PeeringToken"):
            raise BadRequest("PeeringToken is required in the payload when establishing a peering.")
        raise BadRequest(PEERING_DISABLED)

    return [
        Route("/v1/operator/usage", ("GET",), usage),
        Route("/v1/peerings", ("GET",), peerings),
        Route("/v1/peering/token", ("POST",), token),
        Route("/v1/peering/establish", ("POST",), establish),
        Route("/v1/peering/", ("GET", "DELETE"), peering, prefix=True),
    ]
