"""The ASGI application: routing, Consul's error model and the headers every response carries.

Why ASGI on uvicorn: measured on this machine (docs/performance.md) a bare ASGI app on
uvicorn with httptools serves ~27k req/s against ~14-18k for aiohttp, and uvicorn's server runs
inside an event loop we own (``serve.py``), next to the log, the timers and DNS.  The app itself
is a small router with no framework: every request is one dict lookup (exact routes) or a few
(prefix routes, longest first), then one handler call.

Errors: a ``MusterError`` becomes a plain-text response with its status and Consul's exact
text; anything else is logged with its traceback and answered 500 with a one-line message.  No
traceback ever reaches a client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..errors import MusterError
from ..logging_setup import log_line
from ..telemetry.audit import WRITE_METHODS, AuditLog
from ..telemetry.metrics import Metrics, Series
from .guard import SCOPE_KEY, CoalescingTransport
from .request import Request, Response, StreamResponse, text_response

log = logging.getLogger("muster.http")

Handler = Callable[[Request], Awaitable[Response]]

NOT_V1 = "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'\n"
NOT_ROUTE = "Invalid URL path: not a recognized HTTP API endpoint\n"
#: Consul's debug line per request (``-dev`` logs it), written by ``logging_setup.log_line``.
REQUEST_LINE = "Request finished: method=%s url=%s from=%s latency=%.3fms"
#: Writes whose body may name the datacenter (``Datacenter``) instead of ``?dc``.
BODY_DC_PATHS = frozenset({"/v1/catalog/register", "/v1/catalog/deregister"})
#: Content types whose encoded header block ``App._send`` keeps (the handlers use a handful).
MAX_TYPED_HEADERS = 64
#: Response header names as uvicorn takes them (lowercase bytes), encoded once per name.
_HEADER_NAMES: dict[str, bytes] = {}
MAX_HEADER_NAMES = 256


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    methods: tuple[str, ...]
    handler: Handler
    prefix: bool = False
    #: method -> this route's metrics series (``api.http``, legacy), filled by ``App`` on first
    #: use so that a request finds them with one dict probe
    series: dict[str, tuple[Series, Series]] = field(default_factory=dict, compare=False, repr=False)


def _printable(s: str) -> bool:
    return s.isprintable()


def route_label(pattern: str) -> tuple[str, str]:
    """Consul's ``path`` label of ``consul.api.http``: ``/v1/kv/`` -> ``_v1_kv_``."""
    return ("path", "_" + pattern[1:].replace("/", "_"))


def legacy_http_key(method: str, pattern: str) -> str:
    """Consul 1.9's ``http.<METHOD>.<parts>``: a trailing ``/`` (a parameter follows) is ``_``."""
    parts = [p or "_" for i, p in enumerate(pattern.split("/")) if p or i > 0]
    return ".".join(["http", method] + parts)


def _log_query(raw: bytes) -> str:
    """The query string as the request log shows it: a ``token`` parameter is replaced by
    ``<hidden>`` (Consul's http.go re-encodes the query with sorted keys then)."""
    text = raw.decode("latin-1")
    if b"token=" not in raw:
        return text
    pairs = [(k, "<hidden>" if k == "token" else v) for k, v in parse_qsl(text, keep_blank_values=True)]
    return urlencode(sorted(pairs, key=lambda kv: kv[0]))


async def _own_task() -> asyncio.Task[Any] | None:
    """The task that serves this request.  The guarded protocol runs a request's first step
    before any task exists (``guard``: started without a task); one turn of the loop moves the
    request into its task, which a hang-up then cancels."""
    me = asyncio.current_task()
    if me is None:
        await asyncio.sleep(0)
        me = asyncio.current_task()
    return me


class Router:
    def __init__(self) -> None:
        self.exact: dict[str, Route] = {}
        self.prefixes: dict[str, Route] = {}
        self.max_depth = 0

    def add(self, route: Route) -> None:
        table = self.prefixes if route.prefix else self.exact
        if route.path in table:
            raise ValueError(f"route {route.path} registered twice")
        table[route.path] = route
        if route.prefix:
            self.max_depth = max(self.max_depth, route.path.count("/"))

    def find(self, path: str) -> tuple[Route, str] | None:
        r = self.exact.get(path)
        if r is not None:
            return r, ""
        cuts: list[int] = []
        pos = path.find("/")
        while pos >= 0 and len(cuts) < self.max_depth:
            cuts.append(pos)
            pos = path.find("/", pos + 1)
        for cut in reversed(cuts):
            r = self.prefixes.get(path[: cut + 1])
            if r is not None:
                return r, path[cut + 1 :]
        return None


class App:
    """ASGI entry point.  ``fallback`` serves non-API paths (the UI, ``/``)."""

    def __init__(
        self,
        router: Router,
        fallback: Callable[[Request], Awaitable[Response]] | None = None,
        extra_headers: list[tuple[str, str]] | None = None,
        default_acl_policy: str = "allow",
        dc_forward: Callable[[Request], Awaitable[Response | None]] | None = None,
    ) -> None:
        self.router = router
        self.fallback = fallback
        #: ``?dc=`` forwarding (``forward.DCForwarder.maybe_forward``): the remote datacenter's
        #: answer, or None to serve the request here.
        self.dc_forward = dc_forward
        #: A stateless client agent's forward of every request to a server
        #: (``forward.forward_to_server``): the server's answer, or None to serve it here.
        self.server_forward: Callable[[Request], Awaitable[Response | None]] | None = None
        #: Runs before a request this agent serves itself (not one forwarded to another
        #: datacenter): a secondary datacenter reads unknown tokens from the primary there.
        self.acl_prepare: Callable[[Request], Awaitable[None]] | None = None
        base = [(b"x-consul-default-acl-policy", default_acl_policy.encode())]
        for k, v in extra_headers or []:
            base.append((k.lower().encode(), v.encode()))
        self._base_headers = base
        #: content type -> the base headers plus its ``content-type`` header, encoded once
        self._typed_headers: dict[str, list[tuple[bytes, bytes]]] = {}
        #: Where request timings go (``consul.api.http`` and, when ``legacy_http_metrics``,
        #: Consul 1.9's ``consul.http.<METHOD>.<path>``); None records nothing.
        self.metrics: Metrics | None = None
        #: The audit log (``telemetry.audit``), None when off; ``audit_identity`` names the
        #: caller's token as (AccessorID, description).
        self.audit: AuditLog | None = None
        self.audit_identity: Callable[[Request], tuple[str, str]] | None = None
        self.legacy_http_metrics = False

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind != "http":
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        req = Request(
            scope["method"],
            scope["path"],
            scope.get("query_string", b""),
            headers,
            receive,
            client=client[0] if client else "",
            scheme=scope.get("scheme", "http"),
        )
        started = perf_counter()
        if req.method in ("GET", "HEAD") and b"index=" in req.raw_query:
            # A blocking query may wait for minutes: stop waiting (and free its watches) as soon
            # as the client hangs up, instead of computing an answer nobody will read.
            resp_or_none = await self._handle_until_disconnect(req, receive)
            if resp_or_none is None:
                return
            resp = resp_or_none
        else:
            try:
                resp = await self.handle(req)
            except asyncio.CancelledError:
                return  # the server is shutting down: nothing to answer
        if self.audit is not None and req.method in WRITE_METHODS:
            self._audit(self.audit, req, resp.status, client)
        if isinstance(resp, StreamResponse):
            await self._stream(send, receive, resp)
            return
        await self._send(send, resp, req.method == "HEAD", scope.get(SCOPE_KEY))
        if log.isEnabledFor(logging.DEBUG):
            args = (
                req.method,
                req.path + ("?" + _log_query(req.raw_query) if req.raw_query else ""),
                req.client,
                (perf_counter() - started) * 1000.0,
            )
            if not log_line(log, logging.DEBUG, REQUEST_LINE % args):
                log.debug(REQUEST_LINE, *args)

    def _audit(self, audit: AuditLog, req: Request, status: int, client: Any) -> None:
        """One audit event: the path without its query (a ``?token=`` stays out), the token's
        AccessorID and description from ``audit_identity`` (never the secret)."""
        accessor, description = self.audit_identity(req) if self.audit_identity is not None else ("", "")
        h = req.headers
        audit.record(
            method=req.method,
            endpoint=req.path,
            remote_addr=f"{client[0]}:{client[1]}" if client else "",
            accessor_id=accessor,
            description=description,
            status=status,
            user_agent=h.get("user-agent", ""),
            host=h.get("host", ""),
        )

    async def _handle_until_disconnect(
        self, req: Request, receive: Callable[[], Awaitable[MutableMapping[str, Any]]]
    ) -> Response | None:
        """Answer ``req``, unless the client hangs up first: then cancel it and answer nothing.

        One small watcher task per waiting query (measured in BENCHMARKS.md: waiting on both
        with ``asyncio.wait`` doubled the cost of waking 10,000 watchers)."""
        req._body = b""  # a GET has no body; `receive` now only reports the disconnect
        me = await _own_task()
        hung_up = False

        async def watch() -> None:
            nonlocal hung_up
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    hung_up = True
                    if me is not None:
                        me.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            return await self.handle(req)
        except asyncio.CancelledError:
            if hung_up and me is not None:
                me.uncancel()
                return None
            raise
        finally:
            watcher.cancel()

    async def handle(self, req: Request) -> Response:
        try:
            return await self._dispatch(req)
        except MusterError as err:
            return text_response(err.status, err.message)
        except Exception:  # noqa: BLE001 - the last line of defence: log, never leak a traceback
            log.exception("internal error serving %s %s", req.method, req.path)
            return text_response(500, "Internal server error")

    async def _dispatch(self, req: Request) -> Response:
        path = req.path
        if not path.startswith("/v1/"):
            if self.fallback is not None:
                return await self.fallback(req)
            return text_response(404, NOT_V1)
        if not _printable(path):
            return text_response(400, f"Invalid URL path: {path!r} contains unprintable characters\n".replace("'", '"'))
        found = self.router.find(path)
        if found is None:
            return text_response(404, NOT_ROUTE)
        route, param = found
        method = req.method
        if method == "OPTIONS":
            return Response(200, b"", None, [("Allow", ",".join(("OPTIONS",) + route.methods))])
        if method not in route.methods and not (method == "HEAD" and "GET" in route.methods):
            return Response(
                405,
                f"method {method} not allowed".encode(),
                "text/plain; charset=utf-8",
                [("Allow", ",".join(("OPTIONS",) + route.methods))],
            )
        req.route_param = param
        if self.server_forward is not None:
            answered = await self.server_forward(req)
            if answered is not None:
                return answered
        if self.dc_forward is not None and ("dc" in req.query or path in BODY_DC_PATHS):
            forwarded = await self.dc_forward(req)
            if forwarded is not None:
                return forwarded
        if self.acl_prepare is not None:
            await self.acl_prepare(req)
        m = self.metrics
        if m is None:
            return await route.handler(req)
        started = perf_counter()
        try:
            return await route.handler(req)
        finally:
            series = route.series.get(method)
            if series is None or series[0].registry is not m:
                series = route.series[method] = (
                    m.series("api.http", (("method", method), route_label(route.path))),
                    m.series(legacy_http_key(method, route.path)),
                )
            if self.legacy_http_metrics:
                ms = (perf_counter() - started) * 1000.0
                series[0].sample(ms)
                series[1].sample(ms)
            else:
                series[0].measure_since(started)

    async def _stream(
        self,
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        resp: StreamResponse,
    ) -> None:
        """Send the headers at once (no Content-Length: chunked), then every chunk as it comes,
        until the producer ends or the client hangs up; either way the producer is closed."""
        hdrs = list(self._base_headers)
        if resp.content_type:
            hdrs.append((b"content-type", resp.content_type.encode()))
        for k, v in resp.headers:
            hdrs.append((k.lower().encode("latin-1"), v.encode("latin-1")))
        me = await _own_task()
        hung_up = False

        async def watch() -> None:
            nonlocal hung_up
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    hung_up = True
                    if me is not None:
                        me.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        chunks = resp.chunks
        try:
            await send({"type": "http.response.start", "status": resp.status, "headers": hdrs})
            await send({"type": "http.response.body", "body": b"", "more_body": True})
            async for chunk in chunks:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except asyncio.CancelledError:
            if hung_up and me is not None:
                me.uncancel()
                return
            raise
        finally:
            watcher.cancel()
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _send(
        self,
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
        resp: Response,
        head: bool,
        coalesce: CoalescingTransport | None = None,
    ) -> None:
        """The response with its Content-Length; through the guarded protocol (``coalesce``) the
        header block and the body leave in one write (``guard.CoalescingTransport``)."""
        ct = resp.content_type
        if ct:
            typed = self._typed_headers.get(ct)
            if typed is None:
                typed = self._base_headers + [(b"content-type", ct.encode())]
                if len(self._typed_headers) < MAX_TYPED_HEADERS:
                    self._typed_headers[ct] = typed
            hdrs = typed.copy()
        else:
            hdrs = self._base_headers.copy()
        names = _HEADER_NAMES
        for k, v in resp.headers:
            name = names.get(k)
            if name is None:
                name = k.lower().encode("latin-1")
                if len(names) < MAX_HEADER_NAMES:
                    names[k] = name
            hdrs.append((name, v.encode("latin-1")))
        body = resp.body
        hdrs.append((b"content-length", str(len(body)).encode()))
        if coalesce is None:
            await send({"type": "http.response.start", "status": resp.status, "headers": hdrs})
            await send({"type": "http.response.body", "body": b"" if head else body})
            return
        coalesce.hold()
        try:
            await send({"type": "http.response.start", "status": resp.status, "headers": hdrs})
            await send({"type": "http.response.body", "body": b"" if head else body})
        finally:
            coalesce.release()
