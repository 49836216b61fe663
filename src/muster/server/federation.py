"""The datacenters' link to each other: the WAN routing table, the RPC dialer that reaches other
datacenters' servers, and the one call everything that crosses the WAN goes through.

``Federation.call(dc, payload)`` sends a forwarded request (built by ``http/forward.py``) to a
server of ``dc``.  Retry rule (the one forwarded writes inside a datacenter follow,
``server/raftlog.py``): another server is tried only after a failure that provably sent nothing
(no connection could be made).  Once the request may have reached a server, its failure is the
answer: a write must never be applied twice.  Errors are Consul's: an unknown datacenter is
``No path to datacenter``, a known one without a reachable server ``Remote DC has no server
currently reachable``.

A client agent is not in the WAN pool: ``call_local`` hands the request to its datacenter's
leader, which forwards it on.

A server's cluster RPC refuses peers from another Raft cluster (``server/rpc.py`` HELLO), so
the calls across the WAN use their own dialer: it introduces itself with no cluster id and the
``wan`` flag (the remote server answers it and keeps it out of its Raft address book), resolves
a server's node id to the RPC address the WAN pool advertises, and uses the server RPC's TLS
settings (a remote certificate names its own datacenter, ``server.<dc>.<domain>``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..coordinate import Coordinate
from ..errors import MusterError, NoPathToDatacenter
from .rpc import ConnectionLost, RPCNode
from .wan import NoReachableServer, WanRouter, WanServer, server_of

if TYPE_CHECKING:
    from ..gossip.transport import GossipPool
    from .cluster import ClusterMember

log = logging.getLogger("muster.federation")

__all__ = ["Answer", "Federation"]

#: (status, content type, headers, body) of a forwarded HTTP request.
Answer = tuple[int, str, list[tuple[str, str]], bytes]
#: Calls one server of another datacenter: (server, payload, timeout) -> answer.
RemoteCall = Callable[[WanServer, dict[str, Any], float], Awaitable[Answer]]


def _answer(res: Any) -> Answer:
    return int(res[0]), str(res[1]), [(str(k), str(v)) for k, v in res[2]], bytes(res[3])


class Federation:
    def __init__(self, datacenter: str, node_id: str, wan: GossipPool | None = None,
                 cluster: ClusterMember | None = None) -> None:
        """``wan``: this server's WAN gossip pool (None on client agents and without gossip)."""
        self.datacenter = datacenter
        self._cluster = cluster
        self.counters = {"forwarded": 0, "retried_unsent": 0, "failed": 0}
        self._wan = wan
        self.router: WanRouter | None = None
        self.remote: RemoteCall | None = None
        self.dialer: RPCNode | None = None
        if wan is None:
            return

        def coordinate(name: str) -> Coordinate | None:
            return wan.serf.get_cached_coordinate(name) if wan.running else None

        self.router = WanRouter(datacenter, lambda: wan.members() if wan.running else [], coordinate, wan.name)
        router = self.router

        def resolve(peer_id: str) -> list[str]:
            return [s.rpc_addr for s in router.servers() if s.node_id == peer_id]

        self.dialer = RPCNode(node_id, lambda: "", resolve, info=lambda: {"wan": "1", "dc": datacenter})
        self.remote = self._remote

    async def _remote(self, srv: WanServer, payload: dict[str, Any], timeout: float) -> Answer:
        assert self.dialer is not None
        if self._cluster is not None:
            rpc = self._cluster.rpc
            self.dialer.client_ssl = rpc.client_ssl
            self.dialer.source_ip = rpc.source_ip  # WAN calls leave from the bind address too
            name = rpc.server_name
            self.dialer.server_name = (name.replace(f"server.{self.datacenter}.", f"server.{srv.datacenter}.", 1)
                                       if name else None)
        return _answer(await self.dialer.call(srv.node_id, "http", payload, timeout=timeout))

    # ------------------------------------------------------------------ views

    @property
    def in_wan(self) -> bool:
        """Whether this agent routes across the WAN itself (servers)."""
        return self.router is not None and self.remote is not None

    def known_datacenters(self) -> list[str]:
        """Every known datacenter, nearest first (ours alone without a WAN pool)."""
        return self.router.datacenters() if self.router is not None else [self.datacenter]

    def wan_coordinates(self) -> list[tuple[str, str, Coordinate | None]]:
        """(member name, datacenter, coordinate) of every server in the WAN pool."""
        wan = self._wan
        if wan is None or not wan.running:
            return []
        out = []
        for m in wan.members():
            s = server_of(m)
            if s is not None:
                out.append((m.name, s.datacenter, wan.serf.get_cached_coordinate(m.name)))
        return out

    # ------------------------------------------------------------------ calls

    async def call(self, dc: str, payload: dict[str, Any], timeout: float) -> Answer:
        """Send ``payload`` to a server of ``dc`` under the retry rule above."""
        if self.router is None or self.remote is None:
            raise NoPathToDatacenter()
        servers = self.router.route(dc)
        last: ConnectionLost | None = None
        for i, srv in enumerate(servers):
            try:
                ans = await self.remote(srv, payload, timeout)
            except ConnectionLost as err:
                self.router.notify_failed(srv)
                if err.sent:
                    self.counters["failed"] += 1
                    log.warning("forward to %s (%s) failed after sending: %s", srv.name, dc, err)
                    raise MusterError(str(err)) from None
                last = err
                if i + 1 < len(servers):
                    self.counters["retried_unsent"] += 1
                continue
            self.counters["forwarded"] += 1
            return ans
        self.counters["failed"] += 1
        log.warning("forward to %s: no server reachable (%s)", dc, last)
        raise NoReachableServer()

    async def call_local(self, payload: dict[str, Any], timeout: float) -> Answer:
        """A client agent's forward: to its datacenter's leader, which sends it on."""
        c = self._cluster
        lead = c.log.leader_id() if c is not None else None
        if c is None or not lead:
            raise NoPathToDatacenter()
        return _answer(await c.rpc.call(lead, "http", payload, timeout=timeout))

    async def http_call(self, dc: str, method: str, path: str, query: str, token: str, timeout: float) -> Answer:
        """An HTTP request of our own (no body) answered by a server of ``dc``, in the payload
        shape of ``?dc=`` forwarding; a client agent sends it through its datacenter's leader."""
        payload: dict[str, Any] = {
            "m": method,
            "p": path,
            "q": query,
            "b": b"",
            "h": {"x-consul-token": token} if token else {},
            "x": "dc",
        }
        if self.in_wan:
            return await self.call(dc, payload, timeout)
        payload["x"] = "local"
        payload["q"] = f"{query}&dc={dc}" if query else f"dc={dc}"
        return await self.call_local(payload, timeout)

    async def close(self) -> None:
        if self.dialer is not None:
            await self.dialer.close()
