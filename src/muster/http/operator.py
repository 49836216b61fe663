"""Operator surface: snapshots, Raft peers, leadership transfer, autopilot state, leave.

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
import logging
import tarfile
from typing import Any

from ..errors import BadRequest, MusterError
from ..state.store import StateStore
from ..structs import RestoreCommand
from .app import Route
from .common import Ctx, from_leader
from .request import Request, Response, json_response, parse_query_options

log = logging.getLogger("muster.operator")
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

    async def snapshot(req: Request) -> Response:
        ctx.check_dc(req)
        ctx.authorizer(req).require("snapshot", "write")  # management only, save and restore
        if req.method == "GET":
            opts = parse_query_options(req)
            await server.check_read(opts.consistency)
            index = server.fsm.last_applied
            blob = build_archive(server.store.snapshot(), index, server.log.term(), int(server.clock.wall() * 1000))
            return Response(200, blob, "application/x-gzip", ctx.meta_headers(index, None))
        body = await req.body(MAX_SNAPSHOT)
        _meta, state = read_archive(body)
        try:
            StateStore().restore(state)  # trial restore: refuse a corrupt state before proposing
        except MusterError as err:
            raise BadRequest(str(err)) from None
        await server.apply(RestoreCommand(state=state))
        return Response(200, b"")

    def cluster() -> Any:
        c = ctx.extra.get("cluster")
        if c is None or getattr(c, "log", None) is None:
            raise MusterError("this server is not part of a Raft cluster (-dev runs a single-server log)")
        return c

    def find_peer(req: Request) -> str:
        c = cluster()
        pid = req.get("id")
        addr = req.get("address")
        if not pid and not addr:
            raise BadRequest("Must specify either ?id with the server's ID or ?address with IP:port of peer to remove")
        if pid:
            return pid
        if addr == f"{server.ident.advertise_addr}:{server.ident.server_port}":
            return server.ident.node_id
        for nid, p in c.book.peers.items():
            if p.addr == addr:
                return str(nid)
        raise MusterError(f"address {addr!r} was not found in the Raft configuration")

    async def remove_peer(req: Request) -> Response:
        ctx.check_dc(req)
        ctx.authorizer(req).require("operator", "write")
        c = cluster()
        nid = find_peer(req)
        lead = c.log.leader_id()
        if not lead:
            raise MusterError("No cluster leader")
        if lead == server.ident.node_id:
            await c._rpc_remove_peer(nid)
        else:
            await c.rpc.call(lead, "remove_peer", nid, timeout=15)
        return Response(200, b"")

    async def transfer_leader(req: Request) -> Response:
        ctx.check_dc(req)
        ctx.authorizer(req).require("operator", "write")
        c = cluster()
        lg = c.log
        if not lg.is_leader():
            lead = lg.leader_id()
            if not lead:
                raise MusterError("No cluster leader")
            await c.rpc.call(lead, "transfer_leader", req.get("id"), timeout=15)
            return json_response(req, {"Success": True})
        await transfer(c, req.get("id"))
        return json_response(req, {"Success": True})

    async def transfer(c: Any, target: str) -> None:
        lg = c.log
        voters = [v for v in lg.core.voters if v != server.ident.node_id]
        if target and target not in voters:
            raise MusterError(f"cannot transfer leadership to {target!r}: not a voter")
        if not voters:
            raise MusterError("cannot transfer leadership: there is no other voter")
        if not target:
            # the most caught-up follower
            target = max(voters, key=lambda v: lg.core.prs[v].match if v in lg.core.prs else 0)
        lg.transfer_leadership(target)
        for _ in range(100):
            await asyncio.sleep(0.05)
            if not lg.is_leader():
                return
        raise MusterError("leadership transfer timed out")

    async def rpc_transfer(payload: Any) -> bool:
        c = cluster()
        if not c.log.is_leader():
            raise MusterError("node is not the leader")
        await transfer(c, str(payload or ""))
        return True

    c0 = ctx.extra.get("cluster")
    if c0 is not None:
        c0.rpc.handlers["transfer_leader"] = rpc_transfer

    async def autopilot_state(req: Request) -> Response:
        ctx.check_dc(req)
        ctx.authorizer(req).require("operator", "read")
        fwd = await from_leader(ctx, req)
        if fwd is not None:
            return fwd
        from .status import autopilot_health_view

        health = autopilot_health_view(ctx)
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

    async def leave(req: Request) -> Response:
        """Graceful leave: hand leadership over, leave the Raft configuration, then shut down."""
        ctx.authorizer(req).require("agent", "write", server.ident.node_name)
        c = ctx.extra.get("cluster")
        if c is not None and getattr(c, "log", None) is not None:
            lg = c.log
            me = server.ident.node_id
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while loop.time() < deadline and me in (set(lg.core.voters) | set(lg.core.learners)):
                try:
                    if lg.is_leader():
                        if len(lg.core.voters) <= 1:
                            break  # the last server: nobody to hand over to
                        await transfer(c, "")
                        continue
                    lead = lg.leader_id()
                    if lead:
                        await c.rpc.call(lead, "remove_peer", me, timeout=5)
                        await asyncio.sleep(0.2)  # let the removal reach us
                        break
                except (MusterError, TimeoutError) as err:
                    log.info("leave: retrying after %s", err)
                await asyncio.sleep(0.2)
        ctx.extra["graceful_leave"] = True  # the gossip pool announces `left`, not a failure
        shutdown = ctx.extra.get("shutdown")
        if callable(shutdown):
            asyncio.get_running_loop().call_later(0.2, shutdown)
        log.info("graceful leave complete")
        return Response(200, b"")

    return [
        Route("/v1/snapshot", ("GET", "PUT"), snapshot),
        Route("/v1/operator/raft/peer", ("DELETE",), remove_peer),
        Route("/v1/operator/raft/transfer-leader", ("POST",), transfer_leader),
        Route("/v1/operator/autopilot/state", ("GET",), autopilot_state),
        Route("/v1/agent/leave", ("PUT",), leave),
    ]
