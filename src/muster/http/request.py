"""Request and response objects, and the parsing rules every endpoint shares (docs/compat/http.md).

Presence flags (``?recurse``, ``?stale``...) are tested by key presence only, whatever their
value.  Bool values follow Go's ``ParseBool``.  ``wait`` is a Go duration with a unit.  Body keys
are matched case-insensitively and with snake_case aliases (see ``body.py``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from ..durations import parse_duration
from ..errors import BadRequest, TooLarge
from ..goparse import parse_bool, parse_uint
from ..server.blocking import QueryOptions

MAX_BODY = 64 * 1024 * 1024

_json_encode = msgspec.json.Encoder().encode


class Request:
    __slots__ = ("method", "path", "query", "headers", "_receive", "_body", "route_param", "client", "scheme", "raw_query")

    def __init__(
        self,
        method: str,
        path: str,
        raw_query: bytes,
        headers: dict[str, str],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]] | None,
        body: bytes | None = None,
        client: str = "",
        scheme: str = "http",
    ) -> None:
        self.method = method
        self.path = path
        self.raw_query = raw_query
        self.query: dict[str, list[str]] = {}
        if raw_query:
            for k, v in parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True):
                self.query.setdefault(k, []).append(v)
        self.headers = headers
        self._receive = receive
        self._body = body
        self.route_param = ""
        self.client = client
        self.scheme = scheme

    # ------------------------------------------------------------------ query

    def has(self, name: str) -> bool:
        return name in self.query

    def get(self, name: str, default: str = "") -> str:
        v = self.query.get(name)
        return v[0] if v else default

    def get_all(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def bool_param(self, name: str, error: str) -> bool | None:
        """Go ``ParseBool`` of ``?name``; a bare ``?name`` is true; absent is None."""
        if name not in self.query:
            return None
        v = self.get(name)
        if v == "":
            return True
        try:
            return parse_bool(v)
        except ValueError:
            raise BadRequest(error) from None

    def uint_param(self, name: str, error: str | None = None) -> int | None:
        """``strconv.ParseUint(?name, 10, 64)``, or None when absent; a bad value is 400 with
        ``error`` or Go's error text."""
        if name not in self.query:
            return None
        try:
            return parse_uint(self.get(name), 10)
        except ValueError as err:
            raise BadRequest(error or str(err)) from None

    # ------------------------------------------------------------------ body

    async def body(self, limit: int = MAX_BODY) -> bytes:
        if self._body is not None:
            return self._body
        chunks: list[bytes] = []
        size = 0
        if self._receive is not None:
            while True:
                msg = await self._receive()
                if msg["type"] != "http.request":
                    break
                chunk = msg.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit and size > MAX_BODY:
                        raise TooLarge(f"Request body too large, max size: {MAX_BODY} bytes")
                    chunks.append(chunk)
                if not msg.get("more_body", False):
                    break
        self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        """The decoded JSON body; an empty body is None; bad JSON is 400 ``Request decode failed``."""
        raw = await self.body()
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            raise BadRequest(f"Request decode failed: {err}") from None

    # ------------------------------------------------------------------ tokens

    def token(self) -> str:
        """``?token`` -> ``X-Consul-Token`` -> ``Authorization: Bearer`` (docs/compat/http.md#tokens)."""
        t = self.get("token")
        if t:
            return t
        t = self.headers.get("x-consul-token", "")
        if t:
            return t
        auth = self.headers.get("authorization", "")
        parts = auth.split(None, 1)
        if len(parts) == 2 and parts[0] == "Bearer":
            return parts[1].split()[0] if parts[1].split() else ""
        return ""


class Response:
    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        content_type: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers if headers is not None else []


class StreamResponse(Response):
    """A response whose body is written as it is produced (chunked transfer encoding).

    ``chunks`` yields the body piece by piece; the app sends each piece as soon as it is
    yielded, and cancels the iteration when the client hangs up (so a handler's ``finally``
    runs and frees what it holds).  ``body`` is unused."""

    __slots__ = ("chunks",)

    def __init__(
        self,
        status: int,
        chunks: AsyncIterator[bytes],
        content_type: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(status, b"", content_type, headers)
        self.chunks = chunks


def json_response(req: Request, obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    if "pretty" in req.query:
        body = (json.dumps(obj, indent=4) + "\n").encode()
    else:
        body = _json_encode(obj)
    return Response(status, body, "application/json", headers)


def text_response(status: int, text: str) -> Response:
    return Response(status, text.encode(), "text/plain; charset=utf-8")


def parse_query_options(req: Request) -> QueryOptions:
    """``index``, ``wait``, consistency flags and ``filter`` (docs/compat/http.md#common-query-parameters, docs/compat/blocking.md)."""
    opts = QueryOptions()
    if "wait" in req.query:
        w = req.get("wait")
        try:
            opts.wait = parse_duration(w)
        except ValueError:
            raise BadRequest("Invalid wait time") from None
        if opts.wait < 0:
            raise BadRequest("Invalid wait time")
    if "index" in req.query:
        opts.min_index = req.uint_param("index", "Invalid index") or 0
    stale = "stale" in req.query
    consistent = "consistent" in req.query
    if "max_stale" in req.query:
        v = req.get("max_stale")
        try:
            opts.max_stale = parse_duration(v)
        except ValueError:
            raise BadRequest(f'Invalid max_stale value "{v}"') from None
        stale = True
    if stale and consistent:
        raise BadRequest("Cannot specify ?stale with ?consistent, conflicting semantics.")
    if "cached" in req.query and consistent:
        raise BadRequest("Cannot specify ?cached with ?consistent, conflicting semantics.")
    opts.consistency = "stale" if stale else "consistent" if consistent else "leader"
    opts.filter = req.get("filter")
    return opts
