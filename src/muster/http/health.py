"""``/v1/health/*`` (docs/compat/catalog-health.md#health-endpoints): checks and service entries with their health.

``/health/service/:name`` without ``?passing`` returns exactly the instances of
``/catalog/service/:name``, in the same order (node name, then service ID), critical ones
included: Traefik zips the two lists by index.  ``?passing`` drops every entry with any
non-passing check, node-level checks included (warning is dropped too).  Each entry's
``Checks`` are the node-level checks, then that instance's checks.

The result index is the per-service index (``svc:<name>``), bumped by anything an entry
contains, so a blocking watcher of one service is not woken by another's changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import BadRequest
from ..state.rows import Check, Node, Service
from ..state.watch import WatchSet
from . import render
from .app import Route
from .common import ACLFilter, Ctx, blocking_read
from .connect_catalog import Pair, connect_instances, ingress_instances
from .near import near_sorter
from .request import Request, Response

Entry = tuple[Node, Service, list[Check]]


def routes(ctx: Ctx) -> list[Route]:
    store = ctx.server.store

    async def node(req: Request) -> Response:
        name = req.route_param
        if not name:
            raise BadRequest("Missing node name")

        peer = render.peer_name(req)
        acl = ACLFilter(ctx, req)

        def run(ws: WatchSet | None) -> tuple[int, list[Check]]:
            idx, cs = store.node_checks(ws, name)
            return idx, acl.checks([c for c in cs if render.peer_match(c, peer)])

        return await blocking_read(ctx, req, run, lambda cs: [render.health_check(c) for c in cs], acl=acl)

    async def checks(req: Request) -> Response:
        name = req.route_param
        if not name:
            raise BadRequest("Missing service name")
        meta = render.node_meta_filters(req)
        peer = render.peer_name(req)
        near = near_sorter(ctx, req)

        acl = ACLFilter(ctx, req)

        def run(ws: WatchSet | None) -> tuple[int, list[Check]]:
            idx, cs = store.service_checks(ws, name)
            cs = [c for c in cs if render.peer_match(c, peer)]
            if meta:
                store.watch_table(ws, "nodes")
                cs = [c for c in cs if render.node_meta_match(store.nodes.get(c.node), meta)]
            return idx, near(acl.checks(cs), lambda c: c.node)

        return await blocking_read(ctx, req, run, lambda cs: [render.health_check(c) for c in cs], acl=acl)

    def entries(req: Request, instances: Callable[[WatchSet | None, str], tuple[int, list[Pair]]]) -> Any:
        """The health-entry read of ``/health/service`` and ``/health/connect``: instances of
        the route's service (as ``instances`` finds them) with their checks, filtered."""
        name = req.route_param
        if not name:
            raise BadRequest("Missing service name")
        passing = req.bool_param("passing", "Invalid value for ?passing") or False
        meta = render.node_meta_filters(req)
        tags = req.get_all("tag")
        peer = render.peer_name(req)
        near = near_sorter(ctx, req)
        acl = ACLFilter(ctx, req)

        def run(ws: WatchSet | None) -> tuple[int, list[Entry]]:
            idx, pairs = instances(ws, name)
            pairs = acl.pairs(pairs)
            out: list[Entry] = []
            for n, svc in pairs:
                if not (render.node_meta_match(n, meta) and render.tags_match(svc, tags) and render.peer_match(svc, peer)):
                    continue
                cs = store.checks_for_instance(n.node, svc.id)
                if passing and any(c.status != "passing" for c in cs):
                    continue
                out.append((n, svc, cs))
            return idx, near(out, lambda e: e[0].node)

        def rend(entries: list[Entry]) -> list[dict[str, Any]]:
            return [
                {
                    "Node": render.node(n),
                    "Service": render.node_service(svc),
                    "Checks": [render.health_check(c) for c in cs],
                }
                for n, svc, cs in entries
            ]

        return blocking_read(ctx, req, run, rend, acl=acl)

    async def service(req: Request) -> Response:
        return await entries(req, store.service_instances_of)

    async def connect(req: Request) -> Response:
        return await entries(req, lambda ws, name: connect_instances(store, ws, name))

    async def state(req: Request) -> Response:
        want = req.route_param
        if not want:
            raise BadRequest("Missing check state")
        meta = render.node_meta_filters(req)
        peer = render.peer_name(req)
        near = near_sorter(ctx, req)

        acl = ACLFilter(ctx, req)

        def run(ws: WatchSet | None) -> tuple[int, list[Check]]:
            idx, cs = store.all_checks(ws)
            cs = [c for c in cs if render.peer_match(c, peer)]
            if want != "any":
                # Consul does not validate the state: an unknown one simply matches nothing.
                cs = [c for c in cs if c.status == want]
            if meta:
                store.watch_table(ws, "nodes")
                cs = [c for c in cs if render.node_meta_match(store.nodes.get(c.node), meta)]
            return idx, near(acl.checks(cs), lambda c: c.node)

        return await blocking_read(ctx, req, run, lambda cs: [render.health_check(c) for c in cs], acl=acl)

    async def ingress(req: Request) -> Response:
        return await entries(req, lambda ws, name: ingress_instances(store, ws, name))

    return [
        Route("/v1/health/node/", ("GET",), node, prefix=True),
        Route("/v1/health/checks/", ("GET",), checks, prefix=True),
        Route("/v1/health/service/", ("GET",), service, prefix=True),
        Route("/v1/health/state/", ("GET",), state, prefix=True),
        Route("/v1/health/connect/", ("GET",), connect, prefix=True),
        Route("/v1/health/ingress/", ("GET",), ingress, prefix=True),
    ]
