"""Wiring of the datacenters to each other: the WAN routing table, the RPC dialer that reaches
other datacenters' servers, and the ``?dc=`` forwarder built on them.

A server's cluster RPC refuses peers from another Raft cluster (``server/rpc.py`` HELLO), so the
calls across the WAN use their own dialer: it introduces itself with no cluster id and the
``wan`` flag (the remote server answers it, and keeps it out of its Raft address book), it
resolves a server's node id to the RPC address the WAN pool advertises, and it uses the same
TLS settings as the server RPC.
"""

from __future__ import annotations

from typing import Any

from .http.forward import Answer, DCForwarder
from .server.rpc import ConnectionLost, RPCNode
from .server.wan import WanRouter, WanServer

__all__ = ["build_forwarder"]


def _answer(res: Any) -> Answer:
    return int(res[0]), str(res[1]), [(str(k), str(v)) for k, v in res[2]], bytes(res[3])


def build_forwarder(datacenter: str, node_id: str, membership: Any, cluster: Any) -> tuple[DCForwarder, RPCNode | None]:
    """The forwarder for this agent, and the WAN dialer to close on shutdown (servers only).

    ``membership`` is the agent's :class:`~muster.membership.Membership` (or None without
    gossip); ``cluster`` its :class:`~muster.server.cluster.ClusterMember` (None in ``-dev``)."""
    wan = getattr(membership, "wan", None)
    if wan is None:
        local = None
        if cluster is not None:
            async def local(payload: dict[str, Any], timeout: float) -> Answer:
                lg = cluster.log
                lead = lg.leader_id() if lg is not None else ""
                if not lead:
                    raise ConnectionLost("no known server of this datacenter")
                return _answer(await cluster.rpc.call(lead, "http", payload, timeout=timeout))
        return DCForwarder(datacenter, None, None, local), None

    def coordinate(name: str) -> Any:
        return wan.serf.get_cached_coordinate(name) if wan.running else None

    router = WanRouter(datacenter, lambda: wan.members() if wan.running else [], coordinate, wan.name)

    def resolve(peer_id: str) -> list[str]:
        return [s.rpc_addr for s in router.servers() if s.node_id == peer_id]

    dialer = RPCNode(node_id, lambda: "", resolve, info=lambda: {"wan": "1", "dc": datacenter})

    async def remote(srv: WanServer, payload: dict[str, Any], timeout: float) -> Answer:
        if cluster is not None:
            # TLS is configured when the cluster starts; a remote server's certificate names
            # its own datacenter (server.<dc>.<domain>).
            dialer.client_ssl = cluster.rpc.client_ssl
            name = cluster.rpc.server_name
            dialer.server_name = (name.replace(f"server.{datacenter}.", f"server.{srv.datacenter}.", 1)
                                  if name else None)
        return _answer(await dialer.call(srv.node_id, "http", payload, timeout=timeout))

    return DCForwarder(datacenter, router, remote), dialer
