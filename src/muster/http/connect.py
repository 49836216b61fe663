"""``/v1/connect/ca/*``, ``/v1/agent/connect/*`` and ``/v1/connect/intentions*`` (issue 15 item 2).

The CA.  A dev agent of Consul has Connect on and its built-in CA initialised at leadership;
Muster initialises it on first use instead (``ensure_ca``): the first request that needs it
proposes one ``ConnectCACommand`` with ``cas_roots=0`` (so two racing requests, or servers,
create exactly one root).  Configuration changes that need a new key (``PrivateKeyType``,
``PrivateKeyBits``, ``PrivateKey``, ``RootCert`` or the provider) rotate: a new active root,
the old ones kept, inactive, in the trust bundle.

Leaf certificates (``/v1/agent/connect/ca/leaf/:service``) are issued by this agent's server
with the active root's key and cached per service until the roots change or the certificate
is past half its life; a blocking query (``?index=``) waits on the roots index, so a rotation
returns a certificate signed by the new root.  Their ``X-Consul-Index`` is the roots index they
were issued at.

Intentions are ``service-intentions`` config entries (``connect/intentions.py``): every
intention write is one ``ConfigEntryCommand`` for the destination's entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from ..connect import ca as ca_mod
from ..connect import config_entries as ce
from ..connect import intentions as ixns
from ..errors import BadRequest, MusterError, NotFound
from ..server.blocking import blocking_query
from ..state.watch import WatchSet
from ..structs import ConfigEntryCommand, ConnectCACommand
from .app import Route
from .common import Ctx, blocking_read
from .request import Request, Response, json_response, parse_query_options


async def ensure_cluster_ca(ctx: Ctx) -> None:
    """Create the cluster's CA (configuration and first root) if it does not exist yet."""
    server = ctx.server
    if server.store.tables.connect_ca.roots:
        return
    cfg = ca_mod.normalize_config(None)
    cluster_id = ctx.rng.uuid()
    root = ca_mod.new_root(cluster_id, cfg, float(server.clock.wall()), 1 + ctx.rng.randrange(2**62))
    config = {"ClusterID": cluster_id, "Provider": ca_mod.PROVIDER, "Config": cfg, "State": None,
              "ForceWithoutCrossSigning": False}  # fmt: skip
    await server.apply(ConnectCACommand(config=config, roots=[root], cas_roots=0))


#: Read-modify-write attempts before a write that keeps losing CAS races answers an error.
RMW_ATTEMPTS: Final = 5


def routes(ctx: Ctx) -> list[Route]:
    server = ctx.server
    store = server.store
    leaf_cache: dict[str, tuple[int, float, dict[str, Any]]] = {}

    def ca_table() -> Any:
        return store.tables.connect_ca

    def entries_table() -> Any:
        return store.tables.config_entries

    def now() -> float:
        return float(server.clock.wall())

    def serial() -> int:
        return 1 + ctx.rng.randrange(2**62)

    async def ensure_ca() -> None:
        await ensure_cluster_ca(ctx)

    def trust_domain() -> str:
        return ca_mod.trust_domain(str(ca_table().config.get("ClusterID", "")))

    def roots_body(roots: list[dict[str, Any]]) -> dict[str, Any]:
        active = next((r for r in roots if r.get("Active")), None)
        return {
            "ActiveRootID": active["ID"] if active else "",
            "TrustDomain": trust_domain(),
            "Roots": [ca_mod.render_root(r) for r in roots],
        }

    async def read_modify_write(make: Callable[[], Any | None], what: str) -> None:
        """Apply the CAS command ``make`` builds from the current state, after a consistent
        barrier (so a follower's view includes every committed write, e.g. this client's
        previous one), retrying a few times when another writer won the race.  ``make`` returns
        ``None`` when there is nothing to do."""
        for _attempt in range(RMW_ATTEMPTS):
            await server.check_read("consistent")
            cmd = make()
            if cmd is None or await server.apply(cmd):
                return
        raise MusterError(f"{what} changed concurrently, retry")

    async def roots(req: Request) -> Response:
        await ensure_ca()

        def run(ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
            return ca_table().read_roots(ws)  # type: ignore[no-any-return]

        if req.get("pem") in ("true", "1") or ("pem" in req.query and not req.get("pem")):
            ctx.check_dc(req)
            _, rows = ca_table().read_roots(None)
            pem = "".join(r["RootCert"] if r["RootCert"].endswith("\n") else r["RootCert"] + "\n" for r in rows)
            return Response(200, pem.encode(), "application/pem-certificate-chain",
                            ctx.meta_headers(store.index("connect-ca-roots"), None))  # fmt: skip
        return await blocking_read(ctx, req, run, roots_body, filterable=False)

    async def configuration(req: Request) -> Response:
        await ensure_ca()
        if req.method == "GET":

            def run(ws: WatchSet | None) -> tuple[int, dict[str, Any]]:
                return ca_table().read_config(ws)  # type: ignore[no-any-return]

            def render(cfg: dict[str, Any]) -> dict[str, Any]:
                return {k: v for k, v in cfg.items() if k != "ClusterID"}

            ctx.authorizer(req).require("operator", "read")
            return await blocking_read(ctx, req, run, render, filterable=False)
        ctx.check_dc(req)
        ctx.authorizer(req).require("operator", "write")
        body = await req.json()
        d = ce.field(body, "Provider"), ce.field(body, "Config"), ce.field(body, "ForceWithoutCrossSigning")
        provider = str(d[0] or ca_mod.PROVIDER)
        if provider != ca_mod.PROVIDER:
            raise MusterError(f"unknown CA provider {json.dumps(provider)}")
        given = d[1] if isinstance(d[1], dict) else {}
        try:
            cfg = ca_mod.normalize_config(given)
        except ca_mod.CAError as err:
            raise MusterError(str(err)) from None
        def make() -> ConnectCACommand:
            current = dict(ca_table().config)
            old_roots = [dict(r) for r in ca_table().roots]
            cas = store.index("connect-ca-roots")
            new_config = dict(current, Provider=provider, Config=cfg, ForceWithoutCrossSigning=bool(d[2]))
            for k in ("CreateIndex", "ModifyIndex"):
                new_config.pop(k, None)
            new_roots = old_roots
            if ca_mod.needs_rotation(current.get("Config") or {}, cfg, str(current.get("Provider")), provider):
                for r in new_roots:
                    r["Active"] = False
                new_roots = new_roots + [ca_mod.new_root(str(current["ClusterID"]), cfg, now(), serial())]
            return ConnectCACommand(config=new_config, roots=new_roots, cas_roots=cas)

        await read_modify_write(make, "CA configuration")
        return json_response(req, True)

    async def leaf(req: Request) -> Response:
        service = req.route_param
        if not service:
            raise BadRequest("Missing service name")
        ctx.check_dc(req)
        ctx.authorizer(req).require("service", "write", service)
        await ensure_ca()
        opts = parse_query_options(req)

        def run(ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
            return ca_table().read_roots(ws)  # type: ignore[no-any-return]

        idx, _ = await blocking_query(store, opts, run, ctx.rng, ctx.default_query_time, ctx.max_query_time)
        cached = leaf_cache.get(service)
        t = now()
        if cached is None or cached[0] != idx or t >= cached[1]:
            root = ca_table().active_root()
            if root is None:
                raise MusterError("no active CA root")
            ttl = str((ca_table().config.get("Config") or {}).get("LeafCertTTL") or "72h")
            cert = ca_mod.sign_leaf(root, trust_domain(), ctx.datacenter, service, ttl, t, serial())
            cert["CreateIndex"] = idx
            cert["ModifyIndex"] = idx
            renew_at = t + ca_mod.duration_seconds(ttl) / 2
            cached = (idx, renew_at, cert)
            leaf_cache[service] = cached
        return json_response(req, cached[2], 200, ctx.meta_headers(idx, opts))

    # ------------------------------------------------------------------ intentions

    def intention_list(ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
        idx, rows = entries_table().list(ws, ce.SERVICE_INTENTIONS)
        return idx, ixns.all_intentions(rows)

    def readable(req: Request, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The intentions the caller may read (``intention:read`` on the destination)."""
        authz = ctx.authorizer(req)
        return [i for i in rows if authz.allowed("intention", i["DestinationName"], "read")]

    def source_from_body(body: Any, source: str, legacy_id: str = "") -> dict[str, Any]:
        if body is not None and not isinstance(body, dict):
            raise BadRequest("Request decode failed: json: cannot unmarshal into Go value of type structs.Intention")
        body = body or {}
        src: dict[str, Any] = {"Name": source}
        action = ce.field(body, "Action")
        perms = ce.field(body, "Permissions")
        if action:
            src["Action"] = str(action).lower()
        if perms:
            src["Permissions"] = perms
        if ce.field(body, "Description"):
            src["Description"] = str(ce.field(body, "Description"))
        if ce.field(body, "SourceType"):
            src["Type"] = str(ce.field(body, "SourceType"))
        if legacy_id:
            src["LegacyID"] = legacy_id
        meta = ce.field(body, "Meta")
        if meta:
            src["LegacyMeta"] = meta
        return src

    async def write_source(destination: str, src: dict[str, Any]) -> None:
        def make() -> ConfigEntryCommand:
            current = entries_table().rows.get((ce.SERVICE_INTENTIONS, destination))
            entry = ixns.upsert_source(current, destination, src)
            try:
                entry = ce.decode(entry)
            except ce.ConfigEntryError as err:
                raise MusterError(err.message) from None
            cas = int(current["ModifyIndex"]) if current else 0
            return ConfigEntryCommand(op="set", entry=entry, cas=cas)

        await read_modify_write(make, "intention")

    async def delete_source(destination: str, source: str) -> None:
        def make() -> ConfigEntryCommand | None:
            current = entries_table().rows.get((ce.SERVICE_INTENTIONS, destination))
            if current is None or ixns.find_source(current, source) < 0:
                return None
            remaining = ixns.remove_source(current, source)
            cas = int(current["ModifyIndex"])
            return (ConfigEntryCommand(op="set", entry=remaining, cas=cas) if remaining is not None
                    else ConfigEntryCommand(op="delete", entry={"Kind": ce.SERVICE_INTENTIONS, "Name": destination}, cas=cas))  # fmt: skip

        await read_modify_write(make, "intention")

    def source_dest(req: Request) -> tuple[str, str]:
        source, dest = req.get("source"), req.get("destination")
        if not source:
            raise BadRequest("required query parameter 'source' not set")
        if not dest:
            raise BadRequest("required query parameter 'destination' not set")
        return source, dest

    async def exact(req: Request) -> Response:
        ctx.check_dc(req)
        source, dest = source_dest(req)
        ctx.authorizer(req).require("intention", "read" if req.method == "GET" else "write", dest)
        if req.method == "PUT":
            await write_source(dest, source_from_body(await req.json(), source))
            return json_response(req, True)
        if req.method == "DELETE":
            await delete_source(dest, source)
            return json_response(req, True)

        def run(ws: WatchSet | None) -> tuple[int, dict[str, Any] | None]:
            idx, rows = intention_list(ws)
            found = next((i for i in rows if i["SourceName"] == source and i["DestinationName"] == dest
                          and not i.get("SourcePeer")), None)  # fmt: skip
            return idx, found

        def render(found: dict[str, Any] | None) -> dict[str, Any]:
            if found is None:
                raise NotFound("Intention not found")
            return found

        return await blocking_read(ctx, req, run, render, filterable=False)

    async def collection(req: Request) -> Response:
        if req.method == "POST":
            ctx.check_dc(req)
            body = await req.json()
            source, dest = str(ce.field(body, "SourceName") or ""), str(ce.field(body, "DestinationName") or "")
            if ce.field(body, "ID"):
                raise BadRequest("ID must be empty when creating a new intention")
            if not source or not dest:
                raise MusterError("Intention SourceName and DestinationName must be set")
            ctx.authorizer(req).require("intention", "write", dest)
            current = entries_table().rows.get((ce.SERVICE_INTENTIONS, dest))
            if ixns.find_source(current, source) >= 0:
                raise MusterError(f"duplicate intention found: {source} => {dest}")
            legacy_id = ctx.rng.uuid()
            await write_source(dest, source_from_body(body, source, legacy_id))
            return json_response(req, {"ID": legacy_id})
        return await blocking_read(ctx, req, intention_list, lambda rows: readable(req, rows))

    async def by_id(req: Request) -> Response:
        iid = req.route_param
        if not iid:
            raise BadRequest("Missing intention ID")
        ctx.check_dc(req)
        _, rows = intention_list(None)
        found = next((i for i in rows if i["ID"] == iid), None)
        if found is not None:
            ctx.authorizer(req).require("intention", "read" if req.method == "GET" else "write", found["DestinationName"])
        if req.method == "GET":
            if found is None:
                raise NotFound("Intention not found")
            return json_response(req, found, 200, ctx.meta_headers(store.index("config-entries"), None))
        if found is None:
            if req.method == "DELETE":
                raise MusterError("Cannot delete non-existent intention: " + json.dumps(iid))
            raise MusterError("Cannot modify non-existent intention: " + json.dumps(iid))
        if req.method == "DELETE":
            await delete_source(found["DestinationName"], found["SourceName"])
            return json_response(req, True)
        body = await req.json()
        await write_source(found["DestinationName"], source_from_body(body, found["SourceName"], iid))
        return json_response(req, True)

    async def match(req: Request) -> Response:
        by = req.get("by")
        if by not in ("source", "destination"):
            raise BadRequest("required query parameter 'by' not set" if not by else f"'by' parameter must be one of 'source' or 'destination', got {by!r}")
        names = req.get_all("name")
        if not names:
            raise BadRequest("required query parameter 'name' not set")

        def run(ws: WatchSet | None) -> tuple[int, dict[str, list[dict[str, Any]]]]:
            idx, rows = intention_list(ws)
            rows = readable(req, rows)
            return idx, {n: ixns.matches(rows, by, n) for n in names}

        return await blocking_read(ctx, req, run, lambda m: m, filterable=False)

    async def check(req: Request) -> Response:
        source, dest = source_dest(req)
        ctx.check_dc(req)
        ctx.authorizer(req).require("service", "read", dest)

        def run(ws: WatchSet | None) -> tuple[int, bool]:
            idx, rows = intention_list(ws)
            allowed, _ = ixns.decide(rows, source, dest)
            return idx, allowed

        return await blocking_read(ctx, req, run, lambda allowed: {"Allowed": allowed}, filterable=False)

    async def authorize(req: Request) -> Response:
        body = await req.json()
        target = str(ce.field(body, "Target") or "")
        uri = str(ce.field(body, "ClientCertURI") or "")
        if not target:
            raise BadRequest("Target service must be specified")
        ctx.authorizer(req).require("service", "write", target)
        if not uri:
            raise BadRequest("ClientCertURI must be specified")
        if not uri.startswith("spiffe://"):
            raise BadRequest("ClientCertURI not a valid Connect identifier")
        ident = ca_mod.parse_spiffe(uri)
        if ident is None:
            raise BadRequest("ClientCertURI not a valid Service identifier")
        await ensure_ca()
        if ident["trust_domain"].lower() != trust_domain().lower():
            return json_response(req, {"Authorized": False, "Reason": "Identity from an external trust domain"})
        _, rows = intention_list(None)
        allowed, ixn = ixns.decide(rows, ident["service"], target)
        if ixn is None:
            reason = "Default behavior configured by ACLs"
        else:
            reason = "Matched L4 intention: " + ixns.describe(ixn)
        return json_response(req, {"Authorized": allowed, "Reason": reason})

    return [
        Route("/v1/connect/ca/roots", ("GET",), roots),
        Route("/v1/agent/connect/ca/roots", ("GET",), roots),
        Route("/v1/connect/ca/configuration", ("GET", "PUT"), configuration),
        Route("/v1/agent/connect/ca/leaf/", ("GET",), leaf, prefix=True),
        Route("/v1/agent/connect/authorize", ("POST",), authorize),
        Route("/v1/connect/intentions", ("GET", "POST"), collection),
        Route("/v1/connect/intentions/exact", ("GET", "PUT", "DELETE"), exact),
        Route("/v1/connect/intentions/match", ("GET",), match),
        Route("/v1/connect/intentions/check", ("GET",), check),
        Route("/v1/connect/intentions/", ("GET", "PUT", "DELETE"), by_id, prefix=True),
    ]
