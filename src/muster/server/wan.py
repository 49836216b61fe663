"""The WAN routing table: which datacenters exist, which of their servers to call, in which order.

Built on demand from the WAN gossip pool's members (Consul ``agent/router``): a member is a
server of datacenter ``D`` when its tags say ``role=consul``, ``dc=D`` and carry a numeric
RPC ``port`` (Consul ``metadata.IsConsulServer``); its RPC address is the member address and
that port, its identity the ``id`` tag.  Members that *left* are gone; *failed* ones stay in
the datacenter list (the datacenter is still known) but are never chosen as a target.

Choosing a server (Consul's server manager): the healthy servers of a datacenter in an order
that is rotated past a server whenever a call to it failed (``notify_failed``) and reshuffled
periodically by the caller's RNG, so load spreads and a dead server stops being first at once.

Distance: every server's WAN coordinate (Vivaldi, carried by the WAN pool's probe acks); a
datacenter's distance from us is the median estimated RTT from our WAN coordinate to its
servers (Consul ``GetDatacentersByDistance``); names are sorted alphabetically first, then
stably by distance, so equal or unknown distances keep a deterministic order.  The local
datacenter is always known, with distance 0.

Pure: the members and coordinates are handed in as callables, nothing here touches a socket.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..coordinate import Coordinate, median_distance
from ..errors import MusterError, NoPathToDatacenter
from ..gossip.serf import MemberStatus, SerfMember

__all__ = ["NoReachableServer", "WanRouter", "WanServer"]


class NoReachableServer(MusterError):
    """The datacenter is known but none of its servers can be called (Consul
    ``ErrNoDCPath``'s sibling ``structs.ErrNoServers`` for remote DCs)."""

    def __init__(self) -> None:
        super().__init__("Remote DC has no server currently reachable")


@dataclass(frozen=True)
class WanServer:
    name: str  # the WAN member name, ``<node>.<dc>``
    node_id: str
    datacenter: str
    rpc_addr: str  # ``ip:port`` of its server RPC listener
    alive: bool

    @property
    def short_name(self) -> str:
        suffix = "." + self.datacenter
        return self.name[: -len(suffix)] if self.name.endswith(suffix) else self.name


def server_of(m: SerfMember) -> WanServer | None:
    """The WAN server a member is, or None (not a server, malformed tags, or left)."""
    tags = m.tags
    if tags.get("role") != "consul" or not tags.get("dc") or m.status == MemberStatus.LEFT:
        return None
    port = tags.get("port", "")
    if not port.isdigit():
        return None
    host = f"[{m.addr}]" if ":" in m.addr else m.addr
    return WanServer(m.name, tags.get("id", "") or m.node_id, tags["dc"], f"{host}:{port}",
                     m.status == MemberStatus.ALIVE)


class WanRouter:
    def __init__(self, local_dc: str, members: Callable[[], Sequence[SerfMember]],
                 coordinate: Callable[[str], Coordinate | None] | None = None,
                 self_name: str = "") -> None:
        self.local_dc = local_dc
        self._members = members
        self._coordinate = coordinate or (lambda name: None)
        self._self_name = self_name
        #: Per datacenter, how many places to rotate its server list (bumped by failures).
        self._rotation: dict[str, int] = {}

    def servers(self) -> list[WanServer]:
        out = []
        for m in self._members():
            s = server_of(m)
            if s is not None:
                out.append(s)
        return out

    def datacenter_map(self) -> dict[str, list[WanServer]]:
        by: dict[str, list[WanServer]] = {self.local_dc: []}
        for s in self.servers():
            by.setdefault(s.datacenter, []).append(s)
        return by

    def known(self, dc: str) -> bool:
        return dc == self.local_dc or dc in self.datacenter_map()

    def distance(self, dc: str, by: dict[str, list[WanServer]] | None = None) -> float:
        """Median estimated RTT (seconds) from us to ``dc``'s servers; 0 for our own datacenter,
        infinity when no coordinate is known."""
        if dc == self.local_dc:
            return 0.0
        by = by if by is not None else self.datacenter_map()
        coords = [c for c in (self._coordinate(s.name) for s in by.get(dc, [])) if c is not None]
        return median_distance(self._coordinate(self._self_name), coords)

    def datacenters(self) -> list[str]:
        """Every known datacenter, nearest first (names alphabetical among equals)."""
        by = self.datacenter_map()
        names = sorted(by)
        dist = {dc: self.distance(dc, by) for dc in names}
        return sorted(names, key=lambda dc: (dist[dc] if not math.isnan(dist[dc]) else math.inf))

    def route(self, dc: str) -> list[WanServer]:
        """The alive servers of ``dc`` in the order to try them.  Raises Consul's errors:
        ``No path to datacenter`` for an unknown one, ``Remote DC has no server currently
        reachable`` when none is alive."""
        by = self.datacenter_map()
        if dc not in by or (dc == self.local_dc and not by[dc]):
            raise NoPathToDatacenter()
        alive = sorted((s for s in by[dc] if s.alive), key=lambda s: s.name)
        if not alive:
            raise NoReachableServer()
        k = self._rotation.get(dc, 0) % len(alive)
        return alive[k:] + alive[:k]

    def notify_failed(self, server: WanServer) -> None:
        """A call to ``server`` failed: move its datacenter's list past it."""
        self._rotation[server.datacenter] = self._rotation.get(server.datacenter, 0) + 1

    def rebalance(self, dc: str, shift: int) -> None:
        """Spread load: start the rotation of ``dc`` at ``shift`` (the caller draws it)."""
        self._rotation[dc] = shift
