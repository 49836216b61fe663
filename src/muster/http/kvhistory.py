"""``/v1/muster/kv-history/<key>``: the history of KV keys, diffs and rollback (a Muster
extension outside Consul's namespace; docs/kv-history.md is the reference).

- ``GET``: the versions of one key, newest first (``?recurse``: of every key under the prefix,
  grouped by key), as a blocking query on the key (or prefix) like ``/v1/kv``; a key without
  history is a 404 with the index headers.  ``?diff`` compares two versions (``from``/``to``
  indexes; by default the newest version and the one before it).  Needs ``key:read`` on each
  key (``?recurse`` leaves out the keys the token cannot read).
- ``PUT ?rollback=<index>``: writes the version made at ``index`` back, as an ordinary CAS write
  of its value and flags (a CAS delete if that version was a deletion) against the key's
  current ModifyIndex, or against ``?cas=`` when given; the body is ``true``, or ``false`` when
  the key changed in between.  Needs ``key:write``.
"""

from __future__ import annotations

import base64
import difflib
from typing import Any

from ..acl.model import rfc3339
from ..errors import BadRequest, NotFound
from ..goparse import parse_uint
from ..server.blocking import blocking_query
from ..server.log import PENDING
from ..state.kvhistory import KVVersion
from ..state.watch import WatchSet
from ..structs import KVSCommand
from .app import Route
from .common import Ctx
from .request import Request, Response, json_response, parse_query_options

PREFIX = "/v1/muster/kv-history/"
FILTERED = ("X-Consul-Results-Filtered-By-ACLs", "true")

History = list[tuple[str, tuple[KVVersion, ...]]]


def render_version(key: str, v: KVVersion, current: int) -> dict[str, Any]:
    """One version as JSON: ``Value`` standard base64 or null, as in a KVPair; ``Current`` is
    true for the version the key holds now."""
    d: dict[str, Any] = {
        "Key": key,
        "ModifyIndex": v.index,
        "Operation": v.op,
        "Time": rfc3339(v.ts) if v.ts else "",
        "Flags": v.flags,
        "Value": base64.b64encode(v.value).decode() if v.value else None,
        "Deleted": v.deleted,
        "Current": v.index == current,
        "AccessorID": v.accessor,
        "ClientAddr": v.addr,
    }
    if v.session:
        d["Session"] = v.session
    if v.rollback_of:
        d["RollbackOf"] = v.rollback_of
    return d


def _text(v: KVVersion | None) -> tuple[list[str], bool]:
    """The lines a diff compares, and whether the value is binary (not UTF-8)."""
    if v is None or v.value is None:
        return [], False
    try:
        return v.value.decode("utf-8").splitlines(keepends=True), False
    except UnicodeDecodeError:
        return [v.value.hex() + "\n"], True


def diff_versions(key: str, a: KVVersion | None, b: KVVersion) -> dict[str, Any]:
    """A unified diff of the values of ``a`` (None: nothing before) and ``b``, and what else
    changed (flags, deletion)."""
    la, bin_a = _text(a)
    lb, bin_b = _text(b)
    fa = f"{key}@{a.index}" if a is not None else "/dev/null"
    text = "".join(difflib.unified_diff(la, lb, fa, f"{key}@{b.index}"))
    return {
        "Key": key,
        "From": a.index if a is not None else 0,
        "To": b.index,
        "Binary": bin_a or bin_b,
        "FlagsChanged": (a.flags if a is not None else 0) != b.flags,
        "DeletedChanged": (a.deleted if a is not None else True) != b.deleted,
        "Diff": text,
    }


def _index_param(req: Request, name: str) -> int:
    try:
        return parse_uint(req.get(name), 10)
    except ValueError:
        raise BadRequest(f"Invalid {name} index: {req.get(name)!r}") from None


def _find(versions: tuple[KVVersion, ...], index: int, key: str) -> KVVersion:
    for v in versions:
        if v.index == index:
            return v
    raise NotFound(f"Version {index} of key {key!r} is not in its history")


def routes(ctx: Ctx) -> list[Route]:
    server = ctx.server
    store = server.store

    async def handler(req: Request) -> Response:
        if req.method == "PUT":
            return await rollback(req)
        return await get(req)

    async def get(req: Request) -> Response:
        key = req.route_param
        ctx.check_dc(req)
        recurse = "recurse" in req.query
        if not key and not recurse:
            raise BadRequest("Missing key name")
        opts = parse_query_options(req)
        if opts.consistency != "stale":
            await server.check_read(opts.consistency)
        filtered = False
        hist = lambda: store.tables.kv_history  # noqa: E731 (a restore swaps the tables)

        def run(ws: WatchSet | None) -> tuple[int, History]:
            nonlocal filtered
            a = ctx.authorizer(req)
            if not recurse:
                a.require("key", "read", key)
                idx, _ = store.kv_get(ws, key)
                vs = hist().get(key)
                return idx, [(key, vs)] if vs else []
            idx, _ = store.kv_list(ws, key)
            rows = hist().scan(key)
            if not a.unrestricted("key"):
                readable = [r for r in rows if a.allowed("key", r[0], "read")]
                filtered = len(readable) != len(rows)
                rows = readable
            return idx, rows

        idx, rows = await blocking_query(store, opts, run, ctx.rng, ctx.default_query_time, ctx.max_query_time)
        headers = ctx.meta_headers(idx, opts)
        if filtered and req.token():
            headers.append(FILTERED)
        if not rows:
            return Response(404, b"", None, headers)
        if "diff" in req.query:
            if recurse:
                raise BadRequest("diff needs one key, not ?recurse")
            versions = rows[0][1]
            to = _find(versions, _index_param(req, "to"), key) if "to" in req.query else versions[-1]
            if "from" in req.query:
                frm: KVVersion | None = _find(versions, _index_param(req, "from"), key)
            else:
                older = [v for v in versions if v.index < to.index]
                frm = older[-1] if older else None
            return json_response(req, diff_versions(key, frm, to), 200, headers)
        out: list[dict[str, Any]] = []
        entries = store.kvs
        for k, versions in rows:
            e = entries.get(k)
            cur = e.modify_index if e is not None else (versions[-1].index if versions[-1].deleted else -1)
            out.extend(render_version(k, v, cur) for v in reversed(versions))
        return json_response(req, out, 200, headers)

    async def rollback(req: Request) -> Response:
        key = req.route_param
        ctx.check_dc(req)
        if not key:
            raise BadRequest("Missing key name")
        if "rollback" not in req.query:
            raise BadRequest("Missing rollback index: PUT needs ?rollback=<ModifyIndex>")
        a = ctx.authorizer(req)
        a.require("key", "write", key)
        target = _index_param(req, "rollback")
        v = _find(store.tables.kv_history.get(key), target, key)
        cur = store.kvs.get(key)
        expect = _index_param(req, "cas") if "cas" in req.query else (cur.modify_index if cur is not None else 0)
        if v.deleted:
            if cur is None:
                # Already deleted: nothing to write, unless the caller expected another state.
                return Response(200, b"true" if expect == 0 else b"false", "application/json")
            cmd = KVSCommand(op="delete-cas", key=key, index=expect, accessor=a.accessor, addr=req.client, rollback_of=target)
        else:
            cmd = KVSCommand(
                op="cas", key=key, value=v.value, flags=v.flags, index=expect,
                accessor=a.accessor, addr=req.client, rollback_of=target,
            )  # fmt: skip
        res = server.apply_now(cmd)
        if res is PENDING:
            res = await server.apply(cmd)
        return Response(200, b"true" if res else b"false", "application/json")

    return [Route(PREFIX, ("GET", "PUT"), handler, prefix=True)]
