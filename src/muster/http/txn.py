"""``PUT /v1/txn``: several KV/catalog operations applied all-or-nothing at one index (docs/compat/kv.md#transactions).

Parsing refuses bad input before anything is proposed: too many operations or too large a body
(413), malformed JSON (400 ``Failed to parse body``), a value over the KV limit (413).  A
transaction of reads and checks only is answered from the local store without a log entry.
A transaction the store rolls back answers 409 with the failing operation's index and reason.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import msgspec

from ..acl.authorizer import Authorizer
from ..errors import BadRequest, MusterError, TooLarge
from ..state.kv import DirEntry
from ..state.rows import Service
from ..structs import KVSCommand, TxnCommand, TxnOp
from . import render
from .app import Route
from .body import canon
from .common import Ctx
from .kv import render_entry
from .request import Request, Response, json_response, parse_query_options

MAX_OPS = 128
READ_VERBS = frozenset({"get", "get-or-empty", "get-tree", "check-index", "check-session", "check-not-exists"})
KV_FIELDS = ("Verb", "Key", "Value", "Flags", "Index", "Session")
NODE_FIELDS = ("ID", "Node", "Address", "Datacenter", "TaggedAddresses", "Meta", "CreateIndex", "ModifyIndex")
SERVICE_FIELDS = (
    "ID", "Service", "Tags", "Address", "TaggedAddresses", "Meta", "Port", "Weights", "EnableTagOverride",
    "Kind", "Proxy", "Connect", "CreateIndex", "ModifyIndex",
)
CHECK_FIELDS = (
    "Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID", "ServiceName", "ServiceTags", "Type",
    "Interval", "Timeout", "Definition", "CreateIndex", "ModifyIndex",
)


def _parse_failed(msg: str) -> BadRequest:
    return BadRequest(f"Failed to parse body: {msg}")


def _u64(v: Any, field: str) -> int:
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int) or v < 0 or v > 2**64 - 1:
        raise _parse_failed(f"json: cannot unmarshal {json.dumps(v)} into Go struct field .{field} of type uint64")
    return v


def parse_ops(raw: Any, value_limit: int) -> list[TxnOp]:
    if not isinstance(raw, list):
        raise _parse_failed("json: cannot unmarshal object into Go value of type api.TxnOps")
    if len(raw) > MAX_OPS:
        raise TooLarge(f"Transaction contains too many operations ({len(raw)} > {MAX_OPS})")
    ops: list[TxnOp] = []
    for item in raw:
        if not isinstance(item, dict):
            raise _parse_failed("json: cannot unmarshal non-object into Go value of type api.TxnOp")
        top = canon(item, ("KV", "Node", "Service", "Check"))
        present = [k for k in ("KV", "Node", "Service", "Check") if top.get(k) is not None]
        if len(present) != 1:
            raise _parse_failed("each operation must have exactly one of KV, Node, Service, Check")
        kind = present[0]
        if kind == "KV":
            kv = canon(top["KV"], KV_FIELDS)
            verb = kv.get("Verb")
            if not isinstance(verb, str):
                raise _parse_failed("missing KV verb")
            key = kv.get("Key", "")
            if not isinstance(key, str):
                raise _parse_failed("json: cannot unmarshal into Go struct field .Key of type string")
            value = None
            if kv.get("Value") is not None:
                if not isinstance(kv["Value"], str):
                    raise _parse_failed("json: cannot unmarshal into Go struct field .Value of type []byte")
                try:
                    value = base64.b64decode(kv["Value"], validate=True) or None
                except (binascii.Error, ValueError) as err:
                    raise _parse_failed(f"illegal base64 data: {err}") from None
                if value is not None and len(value) > value_limit:
                    raise TooLarge(f'Value for key "{key}" is too large ({len(value)} > {value_limit} bytes)')
            session = kv.get("Session") or ""
            if not isinstance(session, str):
                raise _parse_failed("json: cannot unmarshal into Go struct field .Session of type string")
            cmd = KVSCommand(
                op=verb, key=key, value=value, flags=_u64(kv.get("Flags"), "Flags"),
                index=_u64(kv.get("Index"), "Index"), session=session,
            )
            ops.append(TxnOp(kind="KV", verb=verb, kv=cmd))
        else:
            body = canon(top[kind], ("Verb", "Node", "Service", "Check"))
            verb = body.get("Verb")
            if not isinstance(verb, str):
                raise _parse_failed(f"missing {kind} verb")
            if kind == "Node":
                ops.append(TxnOp(kind=kind, verb=verb, node=canon(body.get("Node"), NODE_FIELDS)))
            elif kind == "Service":
                svc = canon(body.get("Service"), SERVICE_FIELDS)
                svc.setdefault("ID", svc.get("Service", ""))
                svc.setdefault("Tags", [])
                svc.setdefault("Meta", {})
                svc.setdefault("Weights", {"Passing": 1, "Warning": 1})
                node = body.get("Node")
                ops.append(TxnOp(kind=kind, verb=verb, node={"Node": node if isinstance(node, str) else ""}, service=svc))
            else:
                chk = canon(body.get("Check"), CHECK_FIELDS)
                chk.setdefault("CheckID", chk.get("Name", ""))
                chk.setdefault("Status", "critical")
                ops.append(TxnOp(kind=kind, verb=verb, check=chk))
    return ops


def _render(r: dict[str, Any]) -> dict[str, Any]:
    """One result as Consul's ``TxnResult``: a KV entry (carried as its tuple) or a service
    instance (carried as its row's builtins) rendered as the read endpoints render them."""
    kv = r.get("KV")
    if kv is not None:
        return {"KV": render_entry(DirEntry(*kv))}
    svc = r.get("Service")
    if svc is not None:
        return {"Service": render.node_service(msgspec.convert(svc, Service))}
    return r


def acl_precheck(a: Authorizer, ops: list[TxnOp]) -> list[dict[str, Any]]:
    """Consul's ``preCheck``: every op is checked before anything applies; a denied op is an
    error at its index (the whole transaction answers 409 and nothing changes).  KV ``get`` and
    ``get-tree`` are not refused here: their results are filtered afterwards."""
    errors: list[dict[str, Any]] = []
    for i, op in enumerate(ops):
        try:
            if op.kind == "KV":
                assert op.kv is not None
                key = op.kv.key
                if op.verb in ("get", "get-tree"):
                    continue
                if op.verb in ("check-index", "check-session", "check-not-exists", "get-or-empty"):
                    a.require("key", "read", key)
                elif op.verb == "delete-tree":
                    a.require_key_write_prefix(key)
                else:
                    a.require("key", "write", key)
            elif op.kind == "Node":
                a.require("node", "read" if op.verb == "get" else "write", (op.node or {}).get("Node", ""))
            elif op.kind == "Service":
                svc = (op.service or {}).get("Service") or (op.service or {}).get("ID", "")
                a.require("service", "read" if op.verb == "get" else "write", str(svc))
            elif op.kind == "Check":
                chk = op.check or {}
                level = "read" if op.verb == "get" else "write"
                if chk.get("ServiceName"):
                    a.require("service", level, str(chk["ServiceName"]))
                else:
                    a.require("node", level, str(chk.get("Node", "")))
        except MusterError as err:
            errors.append({"OpIndex": i, "What": err.message})
    return errors


def acl_filter_results(a: Authorizer, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop KV results the caller may not read (``get``/``get-tree``)."""
    if a.unrestricted("key"):
        return results
    return [r for r in results if "KV" not in r or a.allowed("key", r["KV"]["Key"], "read")]


def _flatten(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The store's results (plain data) as Consul's ``Results``; a tree read yields one result
    per entry."""
    out: list[dict[str, Any]] = []
    for r in results:
        if "_tree" in r:
            out.extend(_render(x) for x in r["_tree"] if x is not None)
        else:
            out.append(_render(r))
    return out


def routes(ctx: Ctx) -> list[Route]:
    server = ctx.server

    async def txn(req: Request) -> Response:
        ctx.check_dc(req)
        limit = max(ctx.txn_max_req_len, ctx.kv_max_value_size)
        raw = await req.body(limit)
        if len(raw) > limit:
            raise TooLarge(f"Request body too large, max size: {limit} bytes")
        try:
            data = json.loads(raw) if raw.strip() else []
        except (ValueError, UnicodeDecodeError) as err:
            raise _parse_failed(str(err)) from None
        ops = parse_ops(data, ctx.kv_max_value_size)
        authz = ctx.authorizer(req)
        denied = acl_precheck(authz, ops)
        if denied:
            return json_response(req, {"Results": None, "Errors": denied}, 409)
        read_only = all(op.verb in READ_VERBS for op in ops)
        if read_only:
            opts = parse_query_options(req)
            await server.check_read(opts.consistency)
            results, errors = server.store.txn_read(ops)
            headers = ctx.meta_headers(None, None)
        else:
            results, errors = await server.apply(TxnCommand(ops=ops, accessor=authz.accessor, addr=req.client))
            headers = []
        if errors:
            return json_response(req, {"Results": None, "Errors": errors}, 409, headers)
        return json_response(req, {"Results": acl_filter_results(authz, _flatten(results or [])), "Errors": None}, 200, headers)

    return [Route("/v1/txn", ("PUT",), txn)]
