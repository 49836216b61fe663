"""``/v1/coordinate/*`` (Consul ``agent/coordinate_endpoint.go``; docs/multi-datacenter.md).

* ``GET /coordinate/datacenters``: first our datacenter's LAN area (``AreaID`` ``"lan"``,
  catalog node names, as newer Consul lists network areas), then the WAN coordinates of every
  server grouped by datacenter (``AreaID`` ``"wan"``, names ``<node>.<dc>``); never forwarded.
  Without a WAN pool (a ``-dev`` agent) the WAN area holds the local server alone.
* ``GET /coordinate/nodes`` and ``/coordinate/node/:node``: the LAN coordinates stored in the
  catalog (blocking reads on the coordinates table; 404 with an empty body for a node without
  one).
* ``PUT /coordinate/update``: ``{Node, Segment, Coord}``; queued for the next batch
  (``server/coordinates.py``), answered at once.  A node name ``<node>.<local dc>`` (as listed
  by ``/coordinate/datacenters``) is accepted for ``<node>`` when only the latter is a catalog
  node, so what one endpoint lists the other accepts.
* ``disable_coordinates``: every endpoint answers 401 ``Coordinate support disabled``.
"""

from __future__ import annotations

from typing import Any

from ..coordinate import Coordinate
from ..errors import BadRequest, MusterError
from ..state.watch import WatchSet
from .app import Route
from .common import Ctx, blocking_read
from .request import Request, Response, json_response


def routes(ctx: Ctx) -> list[Route]:
    store = ctx.server.store

    def check_enabled() -> None:
        if ctx.config is not None and getattr(ctx.config, "disable_coordinates", False):
            raise MusterError("Coordinate support disabled", 401)

    async def datacenters(req: Request) -> Response:
        check_enabled()
        fed = ctx.services.federation
        entries = fed.wan_coordinates() if fed is not None else []
        if not entries:
            coords = ctx.services.coordinates
            own = coords.own_coordinate() if coords is not None else None
            entries = [(f"{ctx.server.ident.node_name}.{ctx.datacenter}", ctx.datacenter,
                        own or Coordinate.origin())]
        by: dict[str, list[dict[str, Any]]] = {}
        for name, dc, coord in entries:
            lst = by.setdefault(dc, [])
            if coord is not None:
                lst.append({"Node": name, "Segment": "", "Coord": coord.as_json()})
        order = fed.known_datacenters() if fed is not None else sorted(by)
        order += [dc for dc in sorted(by) if dc not in order]
        out: list[dict[str, Any]] = [{"Datacenter": ctx.datacenter, "AreaID": "lan", "Coordinates": lan_area()}]
        for dc in order:
            if dc in by:
                out.append({"Datacenter": dc, "AreaID": "wan",
                            "Coordinates": sorted(by[dc], key=lambda e: str(e["Node"]))})
        return json_response(req, out, 200, ctx.meta_headers(store.index("coordinates"), None))

    def lan_area() -> list[dict[str, Any]]:
        """Our datacenter's LAN coordinates by catalog node name (this agent's own live one, and
        the others as stored): listed first, so a client that takes the first entry's name
        gets a catalog node it can update and read back (py-consul's coordinate test)."""
        rows = {r["Node"]: dict(r) for r in store.coordinates(None)[1] if not r["Segment"]}
        coords = ctx.services.coordinates
        own = coords.own_coordinate() if coords is not None else None
        if own is not None:
            me = ctx.server.ident.node_name
            rows[me] = {"Node": me, "Segment": "", "Coord": own.as_json()}
        return [rows[n] for n in sorted(rows)]

    async def nodes(req: Request) -> Response:
        check_enabled()
        segment = req.get("segment")
        a = ctx.authorizer(req)

        def run(ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
            idx, cs = store.coordinates(ws)
            if segment:
                cs = [c for c in cs if c["Segment"] == segment]
            if not a.unrestricted("node"):
                cs = [c for c in cs if a.allowed("node", c["Node"], "read")]
            return idx, cs

        return await blocking_read(ctx, req, run, lambda cs: cs)

    async def node(req: Request) -> Response:
        check_enabled()
        name = req.route_param
        if not name:
            raise BadRequest("Missing node name")
        segment = req.get("segment")
        a = ctx.authorizer(req)

        def run(ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
            idx, cs = store.coordinate_get(ws, _catalog_name(name))
            if segment:
                cs = [c for c in cs if c["Segment"] == segment]
            return idx, [c for c in cs if a.allowed("node", c["Node"], "read")]

        resp = await blocking_read(ctx, req, run, lambda cs: cs, status=lambda cs: 200 if cs else 404,
                                   filterable=False)
        if resp.status == 404:
            return Response(404, b"", None, resp.headers)  # Consul: an empty body, with the index
        return resp

    def _catalog_name(name: str) -> str:
        suffix = "." + ctx.datacenter
        if name not in store.nodes and name.endswith(suffix) and name[: -len(suffix)] in store.nodes:
            return name[: -len(suffix)]
        return name

    async def update(req: Request) -> Response:
        check_enabled()
        ctx.check_dc(req)
        body = await req.json()
        if not isinstance(body, dict):
            raise BadRequest("Request decode failed: expected an object")
        low = {str(k).lower(): v for k, v in body.items()}
        name = low.get("node")
        if not isinstance(name, str) or not name:
            raise BadRequest("Missing node name")
        segment = low.get("segment") or ""
        if not isinstance(segment, str):
            raise BadRequest("Request decode failed: Segment must be a string")
        try:
            coord = Coordinate.from_json(low.get("coord"))
        except ValueError:
            raise MusterError("invalid coordinate") from None
        if not coord.compatible(Coordinate.origin()):
            raise MusterError("rpc error making call: coordinate dimensionality does not match")
        ctx.authorizer(req).require("node", "write", _catalog_name(name))
        batcher = ctx.services.coordinates
        if batcher is None:
            raise MusterError("Coordinate support disabled", 401)
        batcher.submit(_catalog_name(name), segment, coord)
        return Response(200, b"", "application/json")

    return [
        Route("/v1/coordinate/datacenters", ("GET",), datacenters),
        Route("/v1/coordinate/nodes", ("GET",), nodes),
        Route("/v1/coordinate/node/", ("GET",), node, prefix=True),
        Route("/v1/coordinate/update", ("PUT",), update),
    ]
