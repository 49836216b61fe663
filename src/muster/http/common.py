"""What every endpoint module shares: the handler context and the blocking-read helper.

``Ctx`` is what a handler may touch: ``services`` (the agent's parts, built once by the process
root: see ``muster.services``; ``ctx.server`` and ``ctx.agent`` are shortcuts into it), the
configuration, the datacenter name, the injected RNG and the request limits.  ``blocking_read`` is the
whole protocol of a read endpoint: check ``dc``, parse ``index``/``wait``/consistency, check the
read is allowed (leader known, or ``?stale``), run the query as a blocking query, apply
``?filter``, and answer with the ``X-Consul-*`` headers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..acl.authorizer import MANAGE_ALL, Authorizer
from ..errors import MusterError, NoPathToDatacenter
from ..runtime import Rng
from ..server.acl import ACLService
from ..server.blocking import QueryOptions, blocking_query
from ..server.server import Server
from ..services import Services
from ..state.rows import Check, Node, Service
from ..state.watch import WatchSet
from .request import Request, Response, json_response, parse_query_options

if TYPE_CHECKING:  # the agent pulls in aiohttp (HTTP checks): imported where it is built
    from ..agent.agent import Agent

T = TypeVar("T")


@dataclass
class Ctx:
    services: Services
    datacenter: str
    rng: Rng
    config: Any = None  # muster.config.Config (replaced on reload)
    default_query_time: float = 300.0
    max_query_time: float = 600.0
    kv_max_value_size: int = 524288
    txn_max_req_len: int = 524288

    @property
    def server(self) -> Server:
        return self.services.server

    @property
    def agent(self) -> Agent:
        return self.services.agent

    @property
    def acl(self) -> ACLService:
        return self.services.acl

    def authorizer(self, req: Request) -> Authorizer:
        """The caller's authorizer (403 ``ACL not found`` for an unknown token)."""
        svc = self.services.acl
        if not svc.enabled:
            return MANAGE_ALL
        return svc.resolver.resolve(req.token())

    def acl_enabled(self) -> bool:
        return self.acl.enabled

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
    operator = ctx.services.operator
    log = ctx.server.log
    if not operator.clustered or "stale" in req.query or req.headers.get(FORWARDED) or log.is_leader():
        return None
    lead = log.leader_id()
    if not lead:
        return None
    try:
        status, ctype, headers, body = await operator.forward_http(lead, req.method, req.path, req.raw_query.decode("latin-1"))
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
    acl: ACLFilter | None = None,
) -> Response:
    ctx.check_dc(req)
    opts = parse_query_options(req)
    await ctx.server.check_read(opts.consistency)
    idx, res = await blocking_query(ctx.server.store, opts, run, ctx.rng, ctx.default_query_time, ctx.max_query_time)
    obj = render(res)
    if filterable and opts.filter:
        obj = apply_filter_expr(opts.filter, obj)
    code = status(obj) if status is not None else 200
    headers = ctx.meta_headers(idx, opts)
    if acl is not None:
        headers.extend(acl.headers())
    return json_response(req, obj, code, headers)


class ACLFilter:
    """ACL filtering of one list read (Consul's ``aclfilter``): drop what the caller may not
    read, and remember whether anything was dropped.

    The authorizer is resolved again on every call, i.e. on every run of a blocking query, so
    a token revoked while a query waits stops seeing data at the next wake.  The
    ``X-Consul-Results-Filtered-By-ACLs: true`` header is only set when the request carried a
    token (Consul never sets it for the anonymous, token-less caller)."""

    __slots__ = ("_ctx", "_req", "dropped")

    def __init__(self, ctx: Ctx, req: Request) -> None:
        self._ctx = ctx
        self._req = req
        self.dropped = False

    def authz(self) -> Authorizer:
        return self._ctx.authorizer(self._req)

    def headers(self) -> list[tuple[str, str]]:
        if self.dropped and self._req.token():
            return [("X-Consul-Results-Filtered-By-ACLs", "true")]
        return []

    def keep(self, items: list[T], allowed: Callable[[Authorizer, T], bool], *resources: str) -> list[T]:
        """``items`` the caller may see; ``resources`` skip the loop when all are unrestricted."""
        a = self.authz()
        if resources and all(a.unrestricted(r) for r in resources):
            self.dropped = False
            return items
        out = [x for x in items if allowed(a, x)]
        self.dropped = len(out) != len(items)
        return out

    def nodes(self, recs: list[Node]) -> list[Node]:
        return self.keep(recs, lambda a, n: a.allowed("node", n.node, "read"), "node")

    def checks(self, cs: list[Check]) -> list[Check]:
        """Checks need node:read, and service:read too when they belong to a service."""
        return self.keep(cs, _check_visible, "node", "service")

    def pairs(self, pairs: list[tuple[Node, Service]]) -> list[tuple[Node, Service]]:
        """(node, service) instances: node:read and service:read."""
        return self.keep(
            pairs,
            lambda a, p: a.allowed("node", p[0].node, "read") and a.allowed("service", p[1].service, "read"),
            "node",
            "service",
        )


def _check_visible(a: Authorizer, c: Check) -> bool:
    if not a.allowed("node", c.node, "read"):
        return False
    svc = c.service_name
    return not svc or a.allowed("service", svc, "read")
