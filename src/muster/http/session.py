"""``/v1/session/*`` (docs/compat/sessions.md).

Create validates everything before proposing: ``Behavior``, the TTL (Go duration, 0 or within
[session_ttl_min, 24h], texts Patroni matches), ``LockDelay`` (a number below 1000 means seconds),
and the check list merge rule (``"Checks": []`` means no checks at all).  Node and check
existence are checked by the store at apply time, on every replica alike.  Renew resets the
leader's TTL timer; it is not a log entry.
"""

from __future__ import annotations

from typing import Any

from ..acl.authorizer import Authorizer
from ..durations import format_duration, parse_body_duration_ns, parse_duration_ns
from ..errors import BadRequest, MusterError, NotFound
from ..state.rows import Session
from ..state.watch import WatchSet
from ..structs import SessionCommand
from .app import Route
from .body import canon, want_str
from .common import ACLFilter, Ctx, blocking_read
from .request import Request, Response, json_response

SESSION_FIELDS = ("ID", "Name", "Node", "NodeChecks", "Checks", "ServiceChecks", "LockDelay", "Behavior", "TTL")
DEFAULT_LOCK_DELAY_NS = 15 * 10**9
TTL_MAX_NS = 24 * 3600 * 10**9


def render_session(s: Session) -> dict[str, Any]:
    """Consul's Session object: empty check lists are null."""
    return {
        "ID": s.id,
        "Name": s.name,
        "Node": s.node,
        "LockDelay": s.lock_delay,
        "Behavior": s.behavior,
        "TTL": s.ttl,
        "NodeChecks": list(s.node_checks) or None,
        "ServiceChecks": [{"ID": c.id, "Namespace": c.namespace} for c in s.service_checks] or None,
        "CreateIndex": s.create_index,
        "ModifyIndex": s.modify_index,
    }


def build_session(ctx: Ctx, body: Any, ttl_min_ns: int) -> dict[str, Any]:
    d = canon(body, SESSION_FIELDS, "structs.SessionRequest")
    node = want_str(d, "Node") or ctx.server.ident.node_name
    behavior = want_str(d, "Behavior") or "release"
    if behavior not in ("release", "delete"):
        raise MusterError(f"Invalid Behavior setting '{behavior}'")
    ttl = want_str(d, "TTL")
    if ttl:
        try:
            ttl_ns = parse_duration_ns(ttl)
        except ValueError as err:
            raise MusterError(f"Session TTL '{ttl}' invalid: {err}") from None
        if ttl_ns != 0 and (ttl_ns < ttl_min_ns or ttl_ns > TTL_MAX_NS):
            raise MusterError(
                f"Invalid Session TTL '{ttl_ns}', must be between [{format_duration(ttl_min_ns / 1e9)}={format_duration(TTL_MAX_NS / 1e9)}]"
            )
        if ttl_ns == 0:
            ttl = ""
    if "LockDelay" in d and d["LockDelay"] is not None:
        try:
            lock_delay = parse_body_duration_ns(d["LockDelay"], small_means_seconds=True)
        except ValueError as err:
            raise BadRequest(f"Request decode failed: {err}") from None
    else:
        lock_delay = DEFAULT_LOCK_DELAY_NS
    # The check-list merge rule of Consul >= 1.7 (docs/compat/sessions.md#creating-a-session).
    node_checks_given = "NodeChecks" in d and d["NodeChecks"] is not None
    node_checks = _str_list(d, "NodeChecks") if node_checks_given else ["serfHealth"]
    if "Checks" in d and d["Checks"] is not None:
        checks = _str_list(d, "Checks")
        if not checks:
            node_checks = []
        elif checks != ["serfHealth"]:
            for c in checks:
                if c not in node_checks:
                    node_checks.append(c)
    service_checks = []
    for sc in d.get("ServiceChecks") or []:
        if not isinstance(sc, dict):
            raise BadRequest("Request decode failed: ServiceChecks must be objects")
        scd = canon(sc, ("ID", "Namespace"))
        service_checks.append({"ID": want_str(scd, "ID"), "Namespace": want_str(scd, "Namespace")})
    return {
        "ID": ctx.rng.uuid(),
        "Name": want_str(d, "Name"),
        "Node": node,
        "NodeChecks": node_checks,
        "ServiceChecks": service_checks,
        "LockDelay": lock_delay,
        "Behavior": behavior,
        "TTL": ttl,
    }


def _str_list(d: dict[str, Any], key: str) -> list[str]:
    v = d.get(key)
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise BadRequest(f"Request decode failed: json: cannot unmarshal into Go struct field .{key} of type []string")
    return list(v)


def routes(ctx: Ctx) -> list[Route]:
    server = ctx.server
    store = server.store

    def ttl_min_ns() -> int:
        cfg = ctx.config
        v = getattr(cfg, "session_ttl_min", None) if cfg is not None else None
        if isinstance(v, (int, float)):
            return int(v * 1e9)
        if isinstance(v, str) and v:
            return parse_duration_ns(v)
        return 10 * 10**9

    async def create(req: Request) -> Response:
        ctx.check_dc(req)
        body = await req.json()
        sess = build_session(ctx, body, ttl_min_ns())
        ctx.authorizer(req).require("session", "write", sess.get("Node", ""))
        sid = await server.apply(SessionCommand(op="create", session=sess))
        return json_response(req, {"ID": sid})

    async def destroy(req: Request) -> Response:
        ctx.check_dc(req)
        sid = req.route_param
        if not sid:
            raise BadRequest("Missing session")
        need_session_write(req, sid)
        who = ctx.authorizer(req).accessor  # recorded in the history of the keys it releases
        await server.apply(SessionCommand(op="destroy", session={"ID": sid}, accessor=who, addr=req.client))
        return json_response(req, True)

    async def renew(req: Request) -> Response:
        ctx.check_dc(req)
        sid = req.route_param
        if not sid:
            raise BadRequest("Missing session")
        await server.check_read("leader")
        need_session_write(req, sid)
        sess = server.renew_session(sid)
        if sess is None:
            raise NotFound(f"Session id '{sid}' not found")
        return json_response(req, [render_session(sess)])

    async def info(req: Request) -> Response:
        sid = req.route_param
        if not sid:
            raise BadRequest("Missing session")

        acl = ACLFilter(ctx, req)

        def run(ws: WatchSet | None) -> tuple[int, Session | None]:
            idx, s = store.session_get(ws, sid)
            if s is not None and not acl.keep([s], readable, "session"):
                return idx, None
            return idx, s

        return await blocking_read(ctx, req, run, lambda s: [render_session(s)] if s else [], acl=acl)

    async def by_node(req: Request) -> Response:
        node = req.route_param
        if not node:
            raise BadRequest("Missing node name")

        acl = ACLFilter(ctx, req)

        def run(ws: WatchSet | None) -> tuple[int, list[Session]]:
            idx, ss = store.session_node(ws, node)
            return idx, acl.keep(ss, readable, "session")

        return await blocking_read(ctx, req, run, lambda ss: [render_session(s) for s in ss], acl=acl)

    async def listing(req: Request) -> Response:
        acl = ACLFilter(ctx, req)

        def run(ws: WatchSet | None) -> tuple[int, list[Session]]:
            idx, ss = store.session_list(ws)
            return idx, acl.keep(ss, readable, "session")

        return await blocking_read(ctx, req, run, lambda ss: [render_session(s) for s in ss], acl=acl)

    def readable(a: Authorizer, s: Session) -> bool:
        return a.allowed("session", s.node, "read")

    def need_session_write(req: Request, sid: str) -> None:
        """session:write on the node of session ``sid`` (an unknown one is left to the command)."""
        a = ctx.authorizer(req)
        if a.unrestricted("session"):
            return
        s = store.sessions.get(sid)
        if s is not None:
            a.require("session", "write", s.node)

    return [
        Route("/v1/session/create", ("PUT",), create),
        Route("/v1/session/destroy/", ("PUT",), destroy, prefix=True),
        Route("/v1/session/renew/", ("PUT",), renew, prefix=True),
        Route("/v1/session/info/", ("GET",), info, prefix=True),
        Route("/v1/session/node/", ("GET",), by_node, prefix=True),
        Route("/v1/session/list", ("GET",), listing),
    ]
