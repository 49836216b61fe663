"""``/v1/catalog/*`` (docs/compat/catalog-health.md#catalog-endpoints): raw catalog writes and reads, regardless of health.

Writes go straight to the log as one ``RegisterCommand``/``DeregisterCommand``; the request is
normalised into canonical records first (``agent.definitions``) so that an identical
re-registration changes nothing and bumps no index.  Validation errors are Consul's RPC errors:
500 with its exact text.

Reads are blocking queries.  Ordering is deterministic and shared with ``/v1/health/service``
(node name, then service ID): Traefik zips the two lists by position.  ``?node-meta`` and
``?tag`` are applied inside the query (before the index is reported), ``?filter`` after it, on
the rendered objects; ``/catalog/services`` and ``/catalog/node`` filter the underlying
service objects, as Consul does, so they run the filter themselves.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..acl.authorizer import Authorizer
from ..agent.definitions import canonical_keys, catalog_check, catalog_service, get_bool, get_str, get_str_map
from ..errors import BadRequest, MusterError, NoPathToDatacenter
from ..state.rows import Node, Service
from ..state.watch import WatchSet
from ..structs import DeregisterCommand, RegisterCommand
from . import connect_catalog, render
from .app import Route
from .common import ACLFilter, Ctx, apply_filter_expr, blocking_read
from .connect_catalog import connect_instances
from .near import near_sorter
from .request import Request, Response, json_response

REGISTER_NAMES = (
    "ID", "Node", "Address", "Datacenter", "TaggedAddresses", "NodeMeta", "Service", "Check", "Checks",
    "SkipNodeUpdate", "Token", "Namespace", "Partition", "PeerName", "Locality",
)  # fmt: skip
DEREGISTER_NAMES = ("Node", "Datacenter", "ServiceID", "CheckID", "Token", "Namespace", "Partition")


def bad_node_id(node_id: str) -> str | None:
    """Go ``uuid.ParseUUID``'s complaint about ``node_id``, or None when it is a UUID."""
    if len(node_id) != 36:
        return "uuid string is wrong length"
    if node_id[8] != "-" or node_id[13] != "-" or node_id[18] != "-" or node_id[23] != "-":
        return "uuid is improperly formatted"
    try:
        uuid.UUID(node_id)
    except ValueError:
        hexstr = node_id.replace("-", "")
        bad = next((c for c in hexstr if c not in "0123456789abcdefABCDEF"), "?")
        return f"encoding/hex: invalid byte: U+{ord(bad):04X} {bad!r}"
    return None


def parse_register(body: Any, datacenter: str) -> RegisterCommand:
    """A ``RegisterRequest`` body as a command (Consul's ``Catalog.Register`` validation)."""
    d = canonical_keys(body, REGISTER_NAMES, None, "structs.RegisterRequest")
    dc = get_str(d, "Datacenter")
    if dc and dc != datacenter:
        raise NoPathToDatacenter()
    name = get_str(d, "Node")
    if not name:
        raise MusterError("Must provide node")
    node_id = get_str(d, "ID")
    if node_id:
        err = bad_node_id(node_id)
        if err:
            raise MusterError(f"Bad node ID: {err}")
        node_id = node_id.lower()
    address = get_str(d, "Address")
    skip = get_bool(d, "SkipNodeUpdate")
    if not address and not skip:
        raise MusterError("Must provide address if SkipNodeUpdate is not set")
    node = {
        "ID": node_id,
        "Node": name,
        "Address": address,
        "Datacenter": datacenter,
        "TaggedAddresses": get_str_map(d, "TaggedAddresses"),
        "Meta": get_str_map(d, "NodeMeta"),
    }
    service = catalog_service(d["Service"]) if d.get("Service") is not None else None
    raw_checks: list[Any] = []
    if d.get("Check") is not None:
        raw_checks.append(d["Check"])
    if d.get("Checks") is not None:
        if not isinstance(d["Checks"], list):
            raise BadRequest("Request decode failed: json: cannot unmarshal object into Go struct field .Checks of type structs.HealthChecks")
        raw_checks.extend(d["Checks"])
    checks = [catalog_check(c, name) for c in raw_checks]
    return RegisterCommand(node=node, service=service, checks=checks, skip_node_update=skip)


def node_view(
    acl: ACLFilter, n: Node | None, svcs: list[Service]
) -> tuple[Node | None, list[Service]]:
    """``/catalog/node``: the node needs node:read (else nothing), each service service:read."""
    if n is None:
        return None, []
    a = acl.authz()
    if not a.allowed("node", n.node, "read"):
        acl.dropped = True
        return None, []
    return n, acl.keep(svcs, lambda a, s: a.allowed("service", s.service, "read"), "service")


def _service_name(store: Any, node: str, service_id: str, cmd_service: dict[str, Any] | None) -> str:
    if cmd_service is not None and cmd_service.get("ID") == service_id:
        return str(cmd_service.get("Service", ""))
    svc = store.services.get(node, {}).get(service_id)
    return svc.service if svc is not None else ""


def vet_register(a: Authorizer, cmd: RegisterCommand, store: Any) -> None:
    """Consul's ``vetRegisterWithACL``: node:write unless the node is left alone, service:write
    on the service, and per check service:write (service check) or node:write (node check)."""
    if a.unrestricted("node") and a.unrestricted("service"):
        return
    node = cmd.node["Node"]
    if not cmd.skip_node_update:
        a.require("node", "write", node)
    if cmd.service is not None:
        a.require("service", "write", str(cmd.service.get("Service", "")))
    for c in cmd.checks:
        sid = c.get("ServiceID") or ""
        if sid:
            a.require("service", "write", _service_name(store, node, sid, cmd.service))
        else:
            a.require("node", "write", node)


def vet_deregister(a: Authorizer, cmd: DeregisterCommand, store: Any) -> None:
    """Consul's ``vetDeregisterWithACL``."""
    if a.unrestricted("node") and a.unrestricted("service"):
        return
    if cmd.service_id:
        a.require("service", "write", _service_name(store, cmd.node, cmd.service_id, None))
    elif cmd.check_id:
        chk = store.checks.get(cmd.node, {}).get(cmd.check_id)
        svc = chk.service_name if chk is not None else ""
        if svc:
            a.require("service", "write", svc)
        else:
            a.require("node", "write", cmd.node)
    else:
        a.require("node", "write", cmd.node)


def routes(ctx: Ctx) -> list[Route]:
    store = ctx.server.store

    async def register(req: Request) -> Response:
        cmd = parse_register(await req.json(), ctx.datacenter)
        vet_register(ctx.authorizer(req), cmd, store)
        await ctx.server.apply(cmd)
        return json_response(req, True)

    async def deregister(req: Request) -> Response:
        d = canonical_keys(await req.json(), DEREGISTER_NAMES, None, "structs.DeregisterRequest")
        dc = get_str(d, "Datacenter")
        if dc and dc != ctx.datacenter:
            raise NoPathToDatacenter()
        name = get_str(d, "Node")
        if not name:
            raise MusterError("Must provide node")
        cmd = DeregisterCommand(node=name, service_id=get_str(d, "ServiceID"), check_id=get_str(d, "CheckID"))
        vet_deregister(ctx.authorizer(req), cmd, store)
        await ctx.server.apply(cmd)
        return json_response(req, True)

    async def datacenters(req: Request) -> Response:
        """Every datacenter of the WAN pool, nearest first (``server/wan.py``); never forwarded."""
        fwd = ctx.services.federation
        return json_response(req, fwd.known_datacenters() if fwd is not None else [ctx.datacenter])

    async def nodes(req: Request) -> Response:
        meta = render.node_meta_filters(req)
        peer = render.peer_name(req)
        near = near_sorter(ctx, req)

        acl = ACLFilter(ctx, req)

        def run(ws: WatchSet | None) -> tuple[int, list[Node]]:
            idx, recs = store.list_nodes(ws)
            return idx, near(acl.nodes([n for n in recs if render.node_meta_match(n, meta) and render.peer_match(n, peer)]),
                             lambda n: n.node)

        return await blocking_read(ctx, req, run, lambda recs: [render.node(n) for n in recs], acl=acl)

    async def services(req: Request) -> Response:
        acl = ACLFilter(ctx, req)
        meta = render.node_meta_filters(req)
        expr = req.get("filter")
        peer = render.peer_name(req)

        def run(ws: WatchSet | None) -> tuple[int, list[tuple[Node, Service]]]:
            idx, by_name = store.list_services(ws)
            if meta:
                store.watch_table(ws, "nodes")
            pairs = []
            for name in sorted(by_name):
                for node_name, svc in sorted(by_name[name], key=lambda p: (p[0], p[1].id)):
                    n = store.nodes.get(node_name)
                    if n is not None and render.node_meta_match(n, meta) and render.peer_match(svc, peer):
                        pairs.append((n, svc))
            return idx, acl.keep(pairs, lambda a, p: a.allowed("service", p[1].service, "read"), "service")

        def rend(pairs: list[tuple[Node, Service]]) -> dict[str, list[str]]:
            items = [render.service_node(n, s) for n, s in pairs]
            if expr:
                items = apply_filter_expr(expr, items)
            out: dict[str, list[str]] = {}
            for sn in items:
                tags = out.setdefault(sn["ServiceName"], [])
                for t in sn["ServiceTags"]:
                    if t not in tags:
                        tags.append(t)
            return out

        def run_names(ws: WatchSet | None) -> tuple[int, list[tuple[str, list[str]]]]:
            # Without a filter the answer depends on names and tags only: O(service names).
            idx, names = store.service_names(ws)
            names = acl.keep(names, lambda a, n: a.allowed("service", n, "read"), "service")
            return idx, [(n, store.service_tags(n)) for n in names]

        if not meta and not expr and not peer:
            return await blocking_read(ctx, req, run_names, dict, filterable=False, acl=acl)
        return await blocking_read(ctx, req, run, rend, filterable=False, acl=acl)

    async def service(req: Request) -> Response:
        name = req.route_param
        if not name:
            raise BadRequest("Missing service name")
        meta = render.node_meta_filters(req)
        tags = req.get_all("tag")
        peer = render.peer_name(req)
        near = near_sorter(ctx, req)
        acl = ACLFilter(ctx, req)

        def run(ws: WatchSet | None) -> tuple[int, list[tuple[Node, Service]]]:
            idx, pairs = store.service_instances_of(ws, name)
            return idx, near(acl.pairs([
                (n, s)
                for n, s in pairs
                if render.node_meta_match(n, meta) and render.tags_match(s, tags) and render.peer_match(s, peer)
            ]), lambda p: p[0].node)

        return await blocking_read(ctx, req, run, lambda pairs: [render.service_node(n, s) for n, s in pairs], acl=acl)

    async def node(req: Request) -> Response:
        name = req.route_param
        if not name:
            raise BadRequest("Missing node name")
        expr = req.get("filter")
        peer = render.peer_name(req)

        acl = ACLFilter(ctx, req)

        def run(ws: WatchSet | None) -> tuple[int, tuple[Node | None, list[Service]]]:
            idx, n, svcs = store.node_services(ws, name)
            if n is not None and not render.peer_match(n, peer):
                n, svcs = None, []
            return idx, node_view(acl, n, svcs)

        def rend(res: tuple[Node | None, list[Service]]) -> dict[str, Any] | None:
            n, svcs = res
            if n is None:
                return None
            rendered = [render.node_service(s) for s in svcs]
            if expr:
                rendered = apply_filter_expr(expr, rendered)
            return {"Node": render.node(n), "Services": {s["ID"]: s for s in rendered}}

        return await blocking_read(ctx, req, run, rend, filterable=False, acl=acl)

    async def node_services(req: Request) -> Response:
        name = req.route_param
        if not name:
            raise BadRequest("Missing node name")
        expr = req.get("filter")
        peer = render.peer_name(req)

        acl = ACLFilter(ctx, req)

        def run(ws: WatchSet | None) -> tuple[int, tuple[Node | None, list[Service]]]:
            idx, n, svcs = store.node_services(ws, name)
            if n is not None and not render.peer_match(n, peer):
                n, svcs = None, []
            return idx, node_view(acl, n, svcs)

        def rend(res: tuple[Node | None, list[Service]]) -> dict[str, Any]:
            n, svcs = res
            if n is None:
                return {"Node": None, "Services": []}
            rendered = [render.node_service(s) for s in svcs]
            if expr:
                rendered = apply_filter_expr(expr, rendered)
            return {"Node": render.node(n), "Services": rendered}

        return await blocking_read(ctx, req, run, rend, filterable=False, acl=acl)

    async def connect(req: Request) -> Response:
        """Proxies and native instances serving a service over the mesh."""
        name = req.route_param
        if not name:
            raise BadRequest("Missing service name")
        meta = render.node_meta_filters(req)
        tags = req.get_all("tag")
        peer = render.peer_name(req)

        acl = ACLFilter(ctx, req)

        def run(ws: WatchSet | None) -> tuple[int, list[tuple[Node, Service]]]:
            idx, pairs = connect_instances(store, ws, name)
            return idx, acl.pairs([
                (n, s)
                for n, s in pairs
                if render.node_meta_match(n, meta) and render.tags_match(s, tags) and render.peer_match(s, peer)
            ])

        return await blocking_read(ctx, req, run, lambda pairs: [render.service_node(n, s) for n, s in pairs], acl=acl)

    async def gateway_services(req: Request) -> Response:
        """The services a gateway's config entry binds to it (``GatewayService`` rows)."""
        gateway = req.route_param
        if not gateway:
            raise BadRequest("Missing gateway name")

        def run(ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
            return connect_catalog.gateway_services(store, ws, gateway)

        return await blocking_read(ctx, req, run, lambda rows: rows)

    return [
        Route("/v1/catalog/register", ("PUT",), register),
        Route("/v1/catalog/deregister", ("PUT",), deregister),
        Route("/v1/catalog/datacenters", ("GET",), datacenters),
        Route("/v1/catalog/nodes", ("GET",), nodes),
        Route("/v1/catalog/services", ("GET",), services),
        Route("/v1/catalog/service/", ("GET",), service, prefix=True),
        Route("/v1/catalog/node/", ("GET",), node, prefix=True),
        Route("/v1/catalog/node-services/", ("GET",), node_services, prefix=True),
        Route("/v1/catalog/connect/", ("GET",), connect, prefix=True),
        Route("/v1/catalog/gateway-services/", ("GET",), gateway_services, prefix=True),
    ]
