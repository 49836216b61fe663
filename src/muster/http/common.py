"""What every endpoint module shares: the handler context and the blocking-read helper.

``Ctx`` is what a handler may touch: the server (store, log, leader loops), the agent's local
state, the configuration, the datacenter name and the injected RNG.  ``blocking_read`` is the
whole protocol of a read endpoint: check ``dc``, parse ``index``/``wait``/consistency, check the
read is allowed (leader known, or ``?stale``), run the query as a blocking query, apply
``?filter``, and answer with the ``X-Consul-*`` headers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..acl.authorizer import MANAGE_ALL, Authorizer
from ..errors import MusterError, NoPathToDatacenter
from ..runtime import Rng
from ..server.blocking import QueryOptions, blocking_query
from ..server.server import Server
from ..state.watch import WatchSet
from .request import Request, Response, json_response, parse_query_options

T = TypeVar("T")


@dataclass
class Ctx:
    server: Server
    datacenter: str
    rng: Rng
    agent: Any = None  # muster.agent.agent.Agent: typed loosely to keep imports pointing down
    config: Any = None  # muster.config.Config
    default_query_time: float = 300.0
    max_query_time: float = 600.0
    kv_max_value_size: int = 524288
    txn_max_req_len: int = 524288
    extra: dict[str, Any] = field(default_factory=dict)
    acl: Any = None  # muster.server.acl.ACLService; None: no ACL system, everything is allowed

    def authorizer(self, req: Request) -> Authorizer:
        """The caller's authorizer (403 ``ACL not found`` for an unknown token)."""
        svc = self.acl
        if svc is None or not svc.enabled:
            return MANAGE_ALL
        return svc.authorize(req.token())

    def acl_enabled(self) -> bool:
        return self.acl is not None and self.acl.enabled

    def check_dc(self, req: Request) -> None:
        dc = req.get("dc")
        if dc and dc != self.datacenter:
            raise NoPathToDatacenter()

    def meta_headers(self, index: int | None, opts: QueryOptions | None) -> list[tuple[str, str]]:
        srv = self.server
        h: list[tuple[str, str]] = []
        if index is not None:
            h.append(("X-Consul-Index", str(max(index, 1))))
        h.append(("X-Consul-KnownLeader", "true" if srv.known_leader() else "false"))
        h.append(("X-Consul-LastContact", str(srv.last_contact_ms())))
        if opts is not None:
            h.append(("X-Consul-Effective-Consistency", opts.consistency))
            h.append(("X-Consul-Query-Backend", "blocking-query"))
        return h


FORWARDED = "x-muster-forwarded"


async def from_leader(ctx: Ctx, req: Request) -> Response | None:
    """The leader's answer to a view only the leader has (autopilot health, Raft progress),
    fetched over server RPC when this server is a follower; None means "answer locally"
    (on the leader, in ``-dev``, for ``?stale``, or for a request already forwarded once)."""
    forward = ctx.extra.get("forward_http")
    log = ctx.server.log
    if forward is None or "stale" in req.query or req.headers.get(FORWARDED) or log.is_leader():
        return None
    lead = log.leader_id()
    if not lead:
        return None
    try:
        status, ctype, headers, body = await forward(lead, req)
    except MusterError:
        return None  # the leader moved or is unreachable: our own view is better than nothing
    return Response(int(status), bytes(body), ctype or None, [(str(k), str(v)) for k, v in headers])


def apply_filter_expr(expr: str, obj: Any) -> Any:
    """Apply ``?filter`` to a list or a dict of objects; a bad expression is Consul's 500."""
    if not expr:
        return obj
    from ..filter import FilterError, FilterEvalError, apply_filter

    try:
        return apply_filter(expr, obj)
    except FilterError as err:
        raise MusterError(f"Failed to create boolean expression evaluator: {err}") from None
    except FilterEvalError as err:
        raise MusterError(str(err)) from None


async def blocking_read(
    ctx: Ctx,
    req: Request,
    run: Callable[[WatchSet | None], tuple[int, T]],
    render: Callable[[T], Any],
    status: Callable[[Any], int] | None = None,
    filterable: bool = True,
) -> Response:
    ctx.check_dc(req)
    opts = parse_query_options(req)
    await ctx.server.check_read(opts.consistency)
    idx, res = await blocking_query(ctx.server.store, opts, run, ctx.rng, ctx.default_query_time, ctx.max_query_time)
    obj = render(res)
    if filterable and opts.filter:
        obj = apply_filter_expr(opts.filter, obj)
    code = status(obj) if status is not None else 200
    return json_response(req, obj, code, ctx.meta_headers(idx, opts))
