"""``/v1/kv/<key>``: the hot path (docs/compat/kv.md, docs/compat/blocking.md).

Reads: a single key reports *that key's* ModifyIndex in ``X-Consul-Index`` (Patroni's leader
watch depends on it); a missing key is a 404 with an empty body but full index headers.  The
rendered JSON of an entry is cached on the entry itself (entries are immutable once stored), so
a hot key is encoded and base64'd once per write, not once per read.

Writes: ``cas``/``acquire``/``release`` are mutually exclusive; values over
``kv_max_value_size`` get 413 before anything is proposed; the result of the command (``true`` /
``false``) is the body.
"""

from __future__ import annotations

import base64
from typing import Any

from ..acl.authorizer import Authorizer
from ..errors import BadRequest, MusterError, TooLarge
from ..goparse import parse_uint
from ..server.blocking import blocking_query
from ..server.log import PENDING
from ..state.kv import DirEntry
from ..state.watch import WatchSet
from ..structs import KVSCommand
from .app import Route
from .common import Ctx
from .request import Request, Response, json_response, parse_query_options

TRUE = b"true"
FALSE = b"false"
FILTERED = ("X-Consul-Results-Filtered-By-ACLs", "true")
KV_DOC = "https://developer.hashicorp.com/consul/docs/agent/config/config-files#kv_max_value_size"


def render_entry(e: DirEntry) -> dict[str, Any]:
    """Consul's KVPair: ``Value`` standard base64 or null, ``Session`` only when held."""
    d: dict[str, Any] = {
        "LockIndex": e.lock_index,
        "Key": e.key,
        "Flags": e.flags,
        "Value": base64.b64encode(e.value).decode() if e.value else None,
    }
    if e.session:
        d["Session"] = e.session
    d["CreateIndex"] = e.create_index
    d["ModifyIndex"] = e.modify_index
    return d


#: key -> (entry, its single-key GET body).  Entries are immutable and a write stores a new
#: one, so a hit is one whose entry *is* the current one: a hot key is rendered once per write,
#: not once per read.  Bounded: cleared when it reaches ``_RENDERED_MAX`` keys.
_RENDERED: dict[str, tuple[DirEntry, bytes]] = {}
_RENDERED_MAX = 16384


def _rendered(e: DirEntry) -> bytes:
    """The single-key GET body of ``e`` (cached, see ``_RENDERED``)."""
    hit = _RENDERED.get(e.key)
    if hit is not None and hit[0] is e:
        return hit[1]
    from .request import _json_encode

    r = b"[" + _json_encode(render_entry(e)) + b"]"
    if len(_RENDERED) >= _RENDERED_MAX:
        _RENDERED.clear()
    _RENDERED[e.key] = (e, r)
    return r


def _check_key(key: str) -> None:
    if ".." in key.split("/"):
        raise BadRequest(f"Invalid key name: {key!r} contains a path traversal")


def routes(ctx: Ctx) -> list[Route]:
    server = ctx.server
    store = server.store

    list_policy = bool(ctx.acl_enabled() and ctx.config is not None and ctx.config.acl.enable_key_list_policy)

    async def kv(req: Request) -> Response:
        m = req.method
        if m == "GET" or m == "HEAD":
            return await get(req)
        if m == "PUT":
            return await put(req)
        return await delete(req)

    async def get(req: Request) -> Response:
        key = req.route_param
        q = req.query
        ctx.check_dc(req)
        recurse = "recurse" in q
        keys = "keys" in q
        if not key and not recurse and not keys:
            raise BadRequest("Missing key name")
        opts = parse_query_options(req)
        if opts.consistency != "stale":
            await server.check_read(opts.consistency)
        # Permissions are checked inside each run: a blocking query re-checks on every wake.
        filtered = False

        def list_authz() -> Authorizer:
            a = ctx.authorizer(req)
            if list_policy:
                a.require("key", "list", key)
            return a

        if keys:
            sep = req.get("separator") or req.get("seperator")

            def run_keys(ws: WatchSet | None) -> tuple[int, list[str]]:
                nonlocal filtered
                a = list_authz()
                if a.unrestricted("key"):
                    return store.kv_list_keys(ws, key, sep)
                idx, entries = store.kv_list(ws, key)
                readable = [e for e in entries if a.allowed("key", e.key, "read")]
                filtered = len(readable) != len(entries)
                return idx, _key_names(readable, key, sep)

            idx, names = await blocking_query(store, opts, run_keys, ctx.rng, ctx.default_query_time, ctx.max_query_time)
            headers = ctx.meta_headers(idx, opts)
            if filtered and req.token():
                headers.append(FILTERED)
            if not names and key:
                return Response(404, b"", None, headers)
            return json_response(req, names, 200, headers)
        if recurse:

            def run_list(ws: WatchSet | None) -> tuple[int, list[DirEntry]]:
                nonlocal filtered
                a = list_authz()
                idx, entries = store.kv_list(ws, key)
                if a.unrestricted("key"):
                    return idx, entries
                readable = [e for e in entries if a.allowed("key", e.key, "read")]
                filtered = len(readable) != len(entries)
                return idx, readable

            idx, entries = await blocking_query(store, opts, run_list, ctx.rng, ctx.default_query_time, ctx.max_query_time)
            headers = ctx.meta_headers(idx, opts)
            if filtered and req.token():
                headers.append(FILTERED)
            if not entries:
                return Response(404, b"", None, headers)
            return json_response(req, [render_entry(e) for e in entries], 200, headers)

        if opts.min_index:

            def run_get(ws: WatchSet | None) -> tuple[int, DirEntry | None]:
                ctx.authorizer(req).require("key", "read", key)
                return store.kv_get(ws, key)

            idx, entry = await blocking_query(store, opts, run_get, ctx.rng, ctx.default_query_time, ctx.max_query_time)
        else:
            ctx.authorizer(req).require("key", "read", key)
            idx, entry = store.kv_get(None, key)
        headers = ctx.meta_headers(idx, opts)
        if entry is None:
            return Response(404, b"", None, headers)
        if "raw" in q:
            headers.append(("X-Content-Type-Options", "nosniff"))
            headers.append(("Content-Security-Policy", "sandbox"))
            return Response(200, entry.value or b"", "text/plain", headers)
        if "pretty" in q:
            return json_response(req, [render_entry(entry)], 200, headers)
        return Response(200, _rendered(entry), "application/json", headers)

    def _conflict(req: Request) -> BadRequest:
        return BadRequest(f"Conflicting flags: {req.raw_query.decode('latin-1')}\n")

    async def put(req: Request) -> Response:
        key = req.route_param
        q = req.query
        ctx.check_dc(req)
        if not key:
            raise BadRequest("Missing key name")
        _check_key(key)
        authz = ctx.authorizer(req)
        authz.require("key", "write", key)
        who = authz.accessor
        addr = req.client
        n = ("cas" in q) + ("acquire" in q) + ("release" in q)
        if n > 1:
            raise _conflict(req)
        flags = _u64(req, "flags")
        limit = ctx.kv_max_value_size
        body = await req.body(limit)
        if len(body) > limit:
            raise TooLarge(f"Request body({len(body)} bytes) too large, max size: {limit} bytes. See {KV_DOC}.")
        value = body or None
        # ``accessor``/``addr``: who made the change, for the key's history (docs/kv-history.md).
        if "cas" in q:
            cmd = KVSCommand("cas", key, value, flags, _u64(req, "cas"), accessor=who, addr=addr)
        elif "acquire" in q:
            cmd = KVSCommand("lock", key, value, flags, session=req.get("acquire"), accessor=who, addr=addr)
        elif "release" in q:
            cmd = KVSCommand("unlock", key, value, flags, session=req.get("release"), accessor=who, addr=addr)
        else:
            cmd = KVSCommand("set", key, value, flags, accessor=who, addr=addr)
        ok = await _apply(cmd)
        return Response(200, TRUE if ok else FALSE, "application/json")

    async def delete(req: Request) -> Response:
        key = req.route_param
        q = req.query
        ctx.check_dc(req)
        recurse = "recurse" in q
        if recurse and "cas" in q:
            raise _conflict(req)
        if not key and not recurse:
            raise BadRequest("Missing key name")
        authz = ctx.authorizer(req)
        if recurse:
            authz.require_key_write_prefix(key)
        else:
            authz.require("key", "write", key)
        who = authz.accessor
        if recurse:
            cmd = KVSCommand(op="delete-tree", key=key, accessor=who, addr=req.client)
        elif "cas" in q:
            cmd = KVSCommand(op="delete-cas", key=key, index=_u64(req, "cas"), accessor=who, addr=req.client)
        else:
            cmd = KVSCommand(op="delete", key=key, accessor=who, addr=req.client)
        ok = await _apply(cmd)
        return Response(200, TRUE if ok else FALSE, "application/json")

    async def _apply(cmd: KVSCommand) -> bool:
        res = server.apply_now(cmd)
        if res is PENDING:
            res = await server.apply(cmd)
        return bool(res)

    return [Route("/v1/kv/", ("GET", "PUT", "DELETE"), kv, prefix=True)]


def _key_names(entries: list[DirEntry], prefix: str, separator: str) -> list[str]:
    """``?keys`` of already-filtered entries: names, folded at the first separator past the prefix."""
    if not separator:
        return [e.key for e in entries]
    out: list[str] = []
    last = None
    plen = len(prefix)
    for e in entries:
        pos = e.key.find(separator, plen)
        k = e.key if pos < 0 else e.key[: pos + len(separator)]
        if k != last:
            out.append(k)
            last = k
    return out


def _u64(req: Request, name: str) -> int:
    """Consul parses ``flags``/``cas`` with ``strconv.ParseUint`` and answers a failure with 500."""
    if name not in req.query:
        return 0
    try:
        return parse_uint(req.get(name), 10)
    except ValueError as err:
        raise MusterError(str(err)) from None
