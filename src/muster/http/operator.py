"""Operator surface: snapshots, Raft peers, leadership transfer, autopilot state.

Cluster control is the ``ClusterOperator``'s (``server/operator.py``); these handlers parse the
request and render its answer.

``GET /v1/snapshot`` returns a gzipped tar of ``meta.json`` (ID, Size, Index, Term, Version),
``state.bin`` (the store's snapshot) and ``SHA256SUMS``; ``PUT`` verifies the archive completely
(checksums and a trial restore into a scratch store) *before* proposing it, so a damaged upload
is refused with a 400 and nothing changes.  A restore is one log entry: every server replaces
its state at the same index.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import tarfile
from typing import Any

from ..errors import BadRequest, MusterError
from ..state.store import StateStore
from ..structs import RestoreCommand
from .app import Route
from .common import Ctx, from_leader
from .request import Request, Response, json_response, parse_query_options

MAX_SNAPSHOT = 1024 * 1024 * 1024


def build_archive(state: bytes, index: int, term: int, now_ms: int) -> bytes:
    meta = {"ID": f"{term}-{index}-{now_ms}", "Size": len(state), "Index": index, "Term": term, "Version": 1}
    files = {"meta.json": json.dumps(meta, indent=2).encode(), "state.bin": state}
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in files.items())
    files["SHA256SUMS"] = sums.encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = now_ms // 1000
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def read_archive(blob: bytes) -> tuple[dict[str, Any], bytes]:
    """(meta, state) from an archive; BadRequest if anything is missing or does not verify."""
    try:
        raw = gzip.decompress(blob)
        files: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r") as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                f = tar.extractfile(member)
                if f is not None:
                    files[member.name] = f.read()
    except (OSError, EOFError, tarfile.TarError) as err:
        raise BadRequest(f"failed to read snapshot archive: {err}") from None
    for name in ("meta.json", "state.bin", "SHA256SUMS"):
        if name not in files:
            raise BadRequest(f"snapshot archive is missing {name}")
    for line in files["SHA256SUMS"].decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        digest, name = parts
        if name not in files or hashlib.sha256(files[name]).hexdigest() != digest:
            raise BadRequest(f"snapshot archive checksum mismatch for {name}")
    try:
        meta = json.loads(files["meta.json"])
    except ValueError as err:
        raise BadRequest(f"snapshot meta.json is invalid: {err}") from None
    return meta, files["state.bin"]


def routes(ctx: Ctx) -> list[Route]:
    server = ctx.server
    operator = ctx.services.operator

    async def snapshot(req: Request) -> Response:
        ctx.check_dc(req)
        ctx.authorizer(req).require("snapshot", "write")  # management only, save and restore
        if req.method == "GET":
            opts = parse_query_options(req)
            await server.check_read(opts.consistency)
            # The state at this index, captured now and encoded step by step (the loop serves
            # other requests between steps); archive, checksums and gzip in a worker thread.
            index = server.fsm.last_applied
            term, now_ms = server.log.term(), int(server.clock.wall() * 1000)
            parts: list[bytes] = []
            for piece in server.store.snapshot_stream():
                parts.append(piece)
                await asyncio.sleep(0)
            blob = await asyncio.to_thread(lambda: build_archive(b"".join(parts), index, term, now_ms))
            return Response(200, blob, "application/x-gzip", ctx.meta_headers(index, None))
        body = await req.body(MAX_SNAPSHOT)
        _meta, state = read_archive(body)
        try:
            StateStore().restore(state)  # trial restore: refuse a corrupt state before proposing
        except MusterError as err:
            raise BadRequest(str(err)) from None
        await server.apply(RestoreCommand(state=state))
        return Response(200, b"")

    async def remove_peer(req: Request) -> Response:
        ctx.check_dc(req)
        ctx.authorizer(req).require("operator", "write")
        await operator.remove_peer(operator.find_peer(req.get("id"), req.get("address")))
        return Response(200, b"")

    async def transfer_leader(req: Request) -> Response:
        ctx.check_dc(req)
        ctx.authorizer(req).require("operator", "write")
        await operator.transfer_leader(req.get("id"))
        return json_response(req, {"Success": True})

    async def autopilot_state(req: Request) -> Response:
        ctx.check_dc(req)
        ctx.authorizer(req).require("operator", "read")
        fwd = await from_leader(ctx, req)
        if fwd is not None:
            return fwd
        health = operator.autopilot_health()
        servers = health["Servers"]
        voters = [s["ID"] for s in servers if s["Voter"]]
        lead = next((s["ID"] for s in servers if s["Leader"]), "")
        out = {
            "Healthy": health["Healthy"],
            "FailureTolerance": health["FailureTolerance"],
            "OptimisticFailureTolerance": max(0, len(voters) - (len(voters) // 2 + 1)),
            "Servers": {
                s["ID"]: {
                    "ID": s["ID"],
                    "Name": s["Name"],
                    "Address": s["Address"],
                    "NodeStatus": s["SerfStatus"],
                    "Version": s["Version"],
                    "LastContact": s["LastContact"],
                    "LastTerm": s["LastTerm"],
                    "LastIndex": s["LastIndex"],
                    "Healthy": s["Healthy"],
                    "StableSince": s["StableSince"],
                    "Status": "leader" if s["Leader"] else "voter" if s["Voter"] else "non-voter",
                    "NodeType": "voter",
                }
                for s in servers
            },
            "Leader": lead,
            "Voters": voters,
        }
        return json_response(req, out)

    return [
        Route("/v1/snapshot", ("GET", "PUT"), snapshot),
        Route("/v1/operator/raft/peer", ("DELETE",), remove_peer),
        Route("/v1/operator/raft/transfer-leader", ("POST",), transfer_leader),
        Route("/v1/operator/autopilot/state", ("GET",), autopilot_state),
    ]
