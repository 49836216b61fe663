"""``/v1/config`` (config entries) and ``/v1/discovery-chain/:service``.

``PUT /v1/config`` upserts the entry in the body (``?cas=<index>``: only if its
``ModifyIndex`` is that, 0 = only if absent) and answers ``true``/``false``.
``GET /v1/config/:kind`` lists a kind, ``GET /v1/config/:kind/:name`` reads one (404
``Config entry not found for "<kind>" / "<name>"``); both are blocking queries.
``DELETE /v1/config/:kind/:name`` answers ``{}``, or ``true``/``false`` with ``?cas``.
Every write is one ``ConfigEntryCommand`` through the log.
"""

from __future__ import annotations

from typing import Any

from ..connect import chain as discovery_chain
from ..connect import config_entries as ce
from ..errors import BadRequest, MusterError, NotFound
from ..state.watch import WatchSet
from ..structs import ConfigEntryCommand
from .app import Route
from .common import Ctx, blocking_read
from .connect import ensure_cluster_ca
from .request import Request, Response, json_response


def _need(perm: tuple[str, str], level: str) -> tuple[str, str, str]:
    return perm[0], level, perm[1]


def _cas(req: Request) -> int:
    if "cas" not in req.query:
        return -1
    raw = req.get("cas")
    if not raw.isdigit():
        raise BadRequest(f'strconv.ParseUint: parsing "{raw}": invalid syntax')
    return int(raw)


_SERVICE_KINDS = (ce.SERVICE_DEFAULTS, ce.SERVICE_ROUTER, ce.SERVICE_SPLITTER, ce.SERVICE_RESOLVER)


def write_permission(kind: str, name: str) -> tuple[str, str]:
    """The ACL (resource, segment) a write of this entry needs (Consul's ``CanWrite``):
    ``service:write`` for a service's own entries, ``intention:write`` for its intentions,
    ``mesh:write`` (which ``operator:write`` grants) for mesh-wide ones and gateways."""
    if kind in _SERVICE_KINDS:
        return "service", name
    if kind == ce.SERVICE_INTENTIONS:
        return "intention", name
    return "mesh", ""


def read_permission(kind: str, name: str) -> tuple[str, str] | None:
    """What reading an entry needs (Consul's ``CanRead``); None: any caller (proxy-defaults,
    mesh)."""
    if kind in _SERVICE_KINDS or kind in (ce.INGRESS_GATEWAY, ce.TERMINATING_GATEWAY):
        return "service", name
    if kind == ce.SERVICE_INTENTIONS:
        return "intention", name
    if kind == ce.EXPORTED_SERVICES:
        return "mesh", ""
    return None


def routes(ctx: Ctx) -> list[Route]:
    store = ctx.server.store

    def table() -> Any:
        return store.tables.config_entries

    async def apply(req: Request) -> Response:
        ctx.check_dc(req)
        raw = await req.json()
        try:
            entry = ce.decode(raw)
        except ce.ConfigEntryError as err:
            if err.decode:
                raise BadRequest(f"Request decoding failed: {err.message}") from None
            raise MusterError(err.message) from None
        ctx.authorizer(req).require(*_need(write_permission(entry["Kind"], entry["Name"]), "write"))
        ok = await ctx.server.apply(ConfigEntryCommand(op="set", entry=entry, cas=_cas(req)))
        return json_response(req, bool(ok))

    async def entries(req: Request) -> Response:
        parts = [p for p in req.route_param.split("/") if p] if req.route_param else []
        if req.method == "DELETE":
            if len(parts) != 2:
                raise BadRequest("Must provide both a kind and name to delete")
            ctx.check_dc(req)
            kind, name = parts
            if kind not in ce.KINDS:
                raise MusterError(f"invalid config entry kind: {kind}")
            ctx.authorizer(req).require(*_need(write_permission(kind, name), "write"))
            cas = _cas(req)
            ok = await ctx.server.apply(ConfigEntryCommand(op="delete", entry={"Kind": kind, "Name": name}, cas=cas))
            return json_response(req, bool(ok) if cas >= 0 else {})
        if len(parts) == 2:
            kind, name = parts

            def run_one(ws: WatchSet | None) -> tuple[int, dict[str, Any] | None]:
                return table().get(ws, kind, name)  # type: ignore[no-any-return]

            def render_one(entry: dict[str, Any] | None) -> dict[str, Any]:
                if entry is None:
                    raise NotFound(f'Config entry not found for "{kind}" / "{name}"')
                return entry

            if kind not in ce.KINDS:
                raise MusterError(f"invalid config entry kind: {kind}")
            perm = read_permission(kind, name)
            if perm is not None:
                ctx.authorizer(req).require(*_need(perm, "read"))
            return await blocking_read(ctx, req, run_one, render_one, filterable=False)
        if len(parts) == 1:
            kind = parts[0]
            if kind not in ce.KINDS:
                raise MusterError(f"invalid config entry kind: {kind}")

            def run_list(ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
                idx, rows = table().list(ws, kind)
                authz = ctx.authorizer(req)
                visible = []
                for row in rows:
                    perm = read_permission(kind, row["Name"])
                    if perm is None or authz.allowed(perm[0], perm[1], "read"):
                        visible.append(row)
                return idx, visible

            return await blocking_read(ctx, req, run_list, lambda rows: list(rows))
        raise NotFound("Must provide either a kind or both kind and name")

    async def chain(req: Request) -> Response:
        name = req.route_param
        if not name:
            raise BadRequest("Missing chain name")
        ctx.authorizer(req).require("service", "read", name)
        overrides: dict[str, Any] = {}
        if req.method == "POST":
            body = await req.json()
            if isinstance(body, dict):
                overrides = body
        protocol = str(ce.field(overrides, "OverrideProtocol") or "")
        timeout = str(ce.field(overrides, "OverrideConnectTimeout") or "")
        evaluate_dc = req.get("compile-dc") or ctx.datacenter
        await ensure_cluster_ca(ctx)

        def run(ws: WatchSet | None) -> tuple[int, dict[str, Any]]:
            idx, rows = table().list(ws)
            entries = {(e["Kind"], e["Name"]): e for e in rows}
            compiled = discovery_chain.compile_chain(
                name, ctx.datacenter, evaluate_dc, discovery_chain.trust_domain(store), entries, protocol, timeout
            )
            return idx, compiled

        return await blocking_read(ctx, req, run, lambda c: {"Chain": c}, filterable=False)

    return [
        Route("/v1/config", ("PUT",), apply),
        Route("/v1/config/", ("GET", "DELETE"), entries, prefix=True),
        Route("/v1/discovery-chain/", ("GET", "POST"), chain, prefix=True),
    ]
