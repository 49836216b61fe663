"""``/v1/query`` prepared queries (Consul ``agent/prepared_query_endpoint.go``; docs/multi-datacenter.md).

* ``POST /v1/query`` creates (``{"ID": ...}``), ``GET /v1/query`` lists, ``GET|PUT|DELETE
  /v1/query/:id`` reads (a list of one), replaces or deletes one query.  Definitions are
  validated by :mod:`muster.query.definition` before anything is proposed, and again by the
  store when the command is applied (the log decides between concurrent writers).
* ``GET /v1/query/:id-or-name/execute`` runs it here (:mod:`muster.query.execute`: health,
  tags and meta filters, ``?near`` or the query's ``Near`` sorting, ``?limit``); when nothing
  survives, the failover datacenters are tried in order with the rendered query shipped to
  them (the remote side filters and shuffles, never fails over again), and the response tells
  which ``Datacenter`` answered and how many ``Failovers`` were tried.
* ``GET /v1/query/:id-or-name/explain`` shows the rendered query.

The remote half of a failover is ``POST /v1/query/:remote-execute``, answered only for a
request that arrived over the server RPC from another datacenter (``forward.DC_FORWARDED``);
it plays the part of Consul's ``PreparedQuery.ExecuteRemote`` RPC.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import BadRequest, MusterError, NotFound
from ..query.definition import QueryNotFound, decode_query, looks_like_uuid, resolve, validate_against
from ..query.execute import Entry, failover_targets, filter_entries, node_name, sort_near
from ..server.blocking import QueryOptions
from ..state.watch import WatchSet
from ..structs import PreparedQueryCommand
from . import render
from .app import NOT_ROUTE, Route
from .common import Ctx, blocking_read
from .forward import DC_FORWARDED
from .request import Request, Response, json_response, parse_query_options, text_response

log = logging.getLogger("muster.http.query")

REMOTE_EXECUTE = "_remote-execute"


def routes(ctx: Ctx) -> list[Route]:
    store = ctx.server.store

    def queries() -> list[dict[str, Any]]:
        return list(store.prepared_queries.values())

    def entries_of(service: str) -> list[Entry]:
        _, pairs = store.service_instances_of(None, service)
        return [(n, svc, store.checks_for_instance(n.node, svc.id)) for n, svc in pairs]

    def coordinate_of(node: str) -> Any:
        return store.coordinate_of(node)

    def render_entries(es: list[Entry]) -> list[dict[str, Any]]:
        return [{"Node": render.node(n), "Service": render.node_service(s),
                 "Checks": [render.health_check(c) for c in cs]} for n, s, cs in es]

    def near_node(req: Request, near: str) -> str:
        if near == "_agent":
            return ctx.server.ident.node_name
        if near == "_ip":
            ip = (req.headers.get("x-forwarded-for", "").split(",")[0].strip() or req.client)
            for name, n in store.nodes.items():
                if n.address == ip:
                    return str(name)
            return ""
        return near

    # ------------------------------------------------------------------ ACLs (query_endpoint.go)

    def redact(a: Any, q: dict[str, Any]) -> dict[str, Any]:
        """The stored ``Token`` is only shown to a caller with acl:write."""
        if q.get("Token") and not a.allowed("acl", "", "write"):
            return dict(q, Token="<hidden>")
        return q

    def visible(a: Any, q: dict[str, Any]) -> bool:
        if a.management:
            return True
        if not q["Name"] and not q["Template"]["Type"]:
            return False  # an unnamed query is only listed for management tokens
        return bool(a.allowed("query", q["Name"], "read"))

    def executing_authorizer(req: Request, q: dict[str, Any]) -> Any:
        """Execution filters instances with the query's own token when it has one."""
        if q.get("Token") and ctx.acl_enabled():
            return ctx.acl.authorize(q["Token"])
        return ctx.authorizer(req)

    def acl_filter(a: Any, es: list[Entry]) -> list[Entry]:
        if a.unrestricted("node") and a.unrestricted("service"):
            return es
        return [e for e in es if a.allowed("node", node_name(e[0]), "read")
                and a.allowed("service", e[1].service, "read")]

    def meta(idx: int) -> dict[str, Any]:
        return {"Index": max(idx, 1), "LastContact": ctx.server.last_contact_ms() * 1_000_000,
                "KnownLeader": ctx.server.known_leader(), "ConsistencyLevel": "leader"}

    async def propose(op: str, q: dict[str, Any]) -> None:
        await ctx.server.apply(PreparedQueryCommand(op, q))

    # ------------------------------------------------------------------ CRUD

    async def collection(req: Request) -> Response:
        if req.method == "POST":
            ctx.check_dc(req)
            q = decode_query(await req.json())
            if q["ID"]:
                raise MusterError("ID must be empty when creating a new prepared query")
            ctx.authorizer(req).require("query", "write", q["Name"])
            q["ID"] = ctx.rng.uuid()
            validate_against(q, queries(), not q["Session"] or q["Session"] in store.sessions)
            await propose("create", q)
            return json_response(req, {"ID": q["ID"]})

        a = ctx.authorizer(req)

        def run(ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
            idx, qs = store.prepared_query_list(ws)
            return idx, [redact(a, q) for q in qs if visible(a, q)]

        return await blocking_read(ctx, req, run, lambda qs: qs, filterable=False)

    async def one(req: Request) -> Response:
        param = req.route_param
        qid, _, action = param.partition("/")
        if not qid:
            return text_response(404, NOT_ROUTE)
        if action == "execute" and req.method == "GET":
            return await execute(req, qid)
        if action == "explain" and req.method == "GET":
            return await explain(req, qid)
        if qid == REMOTE_EXECUTE and not action and req.method == "POST" and req.headers.get(DC_FORWARDED):
            return await execute_remote(req)
        if action:
            return text_response(404, NOT_ROUTE)
        if req.method == "POST":
            return Response(405, b"method POST not allowed", "text/plain; charset=utf-8",
                            [("Allow", "OPTIONS,GET,PUT,DELETE")])
        ctx.check_dc(req)
        if req.method == "GET":
            if not looks_like_uuid(qid):
                raise MusterError("failed prepared query lookup: index error: UUID must be 36 characters")

            a = ctx.authorizer(req)

            def run(ws: WatchSet | None) -> tuple[int, dict[str, Any] | None]:
                idx, q = store.prepared_query_get(ws, qid.lower())
                if q is not None and q["Name"] and not a.allowed("query", q["Name"], "read"):
                    raise a.denied("query", "read", q["Name"])
                return idx, redact(a, q) if q is not None else None

            resp = await blocking_read(ctx, req, run, lambda q: [q] if q is not None else None,
                                       status=lambda obj: 200 if obj is not None else 404, filterable=False)
            if resp.status == 404:
                return Response(404, b"Query not found", "text/plain; charset=utf-8", resp.headers)
            return resp
        existing = store.prepared_queries.get(qid.lower())
        if existing is None:
            raise MusterError(f"Cannot modify non-existent prepared query: '{qid}'")
        a = ctx.authorizer(req)
        a.require("query", "write", existing["Name"])
        if req.method == "DELETE":
            await propose("delete", {"ID": existing["ID"]})
            return Response(200, b"", "application/json")
        # PUT: a full replacement; the ID comes from the URL.
        q = decode_query(await req.json())
        q["ID"] = existing["ID"]
        a.require("query", "write", q["Name"])
        validate_against(q, queries(), not q["Session"] or q["Session"] in store.sessions)
        await propose("update", q)
        return Response(200, b"", "application/json")

    # ------------------------------------------------------------------ execute / explain

    async def explain(req: Request, name: str) -> Response:
        ctx.check_dc(req)
        opts = parse_query_options(req)
        await ctx.server.check_read(opts.consistency)
        q = resolve(queries(), name)
        a = ctx.authorizer(req)
        if not a.allowed("query", q["Name"], "read"):
            raise a.denied("query", "read", q["Name"])
        idx = store.index("prepared_queries")
        return json_response(req, {"Query": redact(a, q), **meta(idx)}, 200, ctx.meta_headers(idx, opts))

    async def execute(req: Request, name: str) -> Response:
        ctx.check_dc(req)
        opts = parse_query_options(req)
        await ctx.server.check_read(opts.consistency)
        limit = req.uint_param("limit", "Bad limit") or 0
        q = resolve(queries(), name)
        svc = q["Service"]
        idx = max(store.index("prepared_queries"), store.catalog_index())
        es = acl_filter(executing_authorizer(req, q), filter_entries(entries_of(svc["Service"]), svc))
        near = near_node(req, req.get("near") or svc.get("Near") or "")
        es = sort_near(es, ctx.rng, near, coordinate_of)
        if limit:
            es = es[:limit]
        out: dict[str, Any] = {"Service": svc["Service"], "Nodes": render_entries(es), "DNS": q["DNS"],
                               "Datacenter": ctx.datacenter, "Failovers": 0}
        if not es:
            await failover(req, q, limit, opts, out)
        return json_response(req, {**out, **meta(idx)}, 200, ctx.meta_headers(idx, opts))

    async def failover(req: Request, q: dict[str, Any], limit: int, opts: QueryOptions,
                       out: dict[str, Any]) -> None:
        fwd = ctx.services.federation
        if fwd is None or not fwd.in_wan:
            return
        import json as _json

        from .forward import payload_of

        targets = failover_targets(q["Service"], ctx.datacenter, fwd.known_datacenters())
        for dc in targets:
            out["Failovers"] += 1
            sub = Request("POST", f"/v1/query/{REMOTE_EXECUTE}",
                          b"stale" if opts.consistency == "stale" else b"",
                          {k: v for k, v in req.headers.items() if k in ("x-consul-token", "authorization")},
                          None, body=_json.dumps({"Query": q, "Limit": limit}).encode())
            try:
                status, _ctype, _h, body = await fwd.call(dc, await payload_of(sub), 30.0)
            except MusterError as err:
                log.warning("prepared query failover to %s failed: %s", dc, err)
                continue
            if status != 200:
                log.warning("prepared query failover to %s failed: %d %s", dc, status, body[:200])
                continue
            reply = _json.loads(body)
            if reply.get("Nodes"):
                out["Nodes"] = reply["Nodes"]
                out["Datacenter"] = reply.get("Datacenter", dc)
                return

    async def execute_remote(req: Request) -> Response:
        """The remote half of a failover: run the shipped query here (no near sort, no failover)."""
        body = await req.json()
        if not isinstance(body, dict) or not isinstance(body.get("Query"), dict):
            raise BadRequest("Request decode failed: missing Query")
        opts = parse_query_options(req)
        await ctx.server.check_read(opts.consistency)
        q = body["Query"]
        svc = q.get("Service") or {}
        es = acl_filter(executing_authorizer(req, q), filter_entries(entries_of(str(svc.get("Service", ""))), svc))
        es = sort_near(es, ctx.rng, "", coordinate_of)
        limit = body.get("Limit") or 0
        if isinstance(limit, int) and limit > 0:
            es = es[:limit]
        idx = store.catalog_index()
        return json_response(req, {"Service": svc.get("Service", ""), "Nodes": render_entries(es),
                                   "DNS": q.get("DNS") or {"TTL": ""}, "Datacenter": ctx.datacenter,
                                   "Failovers": 0, **meta(idx)}, 200, ctx.meta_headers(idx, opts))

    return [
        Route("/v1/query", ("GET", "POST"), collection),
        Route("/v1/query/", ("GET", "PUT", "DELETE", "POST"), one, prefix=True),
    ]


__all__ = ["QueryNotFound", "NotFound", "routes"]
