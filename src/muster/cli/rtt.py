"""``muster rtt [-wan] node1 [node2]``: the estimated round trip time between two nodes from
their network coordinates (Consul ``command/rtt``).

LAN: both nodes' coordinates from ``/v1/coordinate/nodes`` (the same network segment); with
one node the other is this agent.  WAN (``-wan``): server names ``<node>.<dc>`` from
``/v1/coordinate/datacenters``; with one name the other is this agent's server.  Output:
``Estimated a <-> b rtt: 0.610 ms (using LAN coordinates)``.
"""

from __future__ import annotations

from typing import Any

from muster.api import ConsulError
from muster.cli.flags import FlagSet, add_http_flags
from muster.cli.ui import UI, make_client, parse_or_usage
from muster.coordinate import Coordinate, distance


def _coord(d: Any) -> Coordinate | None:
    try:
        return Coordinate.from_json(d)
    except ValueError:
        return None


def rtt(ui: UI, args: list[str]) -> int:
    fs = FlagSet("Usage: muster rtt [options] node1 [node2]\n\n  Estimates the network round trip time "
                 "between two nodes using their network coordinates.")
    fs.add("wan", "bool", False, "Use WAN coordinates instead of LAN coordinates.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    nodes = list(p.args)
    if len(nodes) < 1 or len(nodes) > 2:
        ui.err("One or two node names must be specified")
        ui.err(fs.help_text())
        return 1
    client = make_client(ui, p)
    try:
        if p["wan"]:
            if len(nodes) == 1:
                cfg = client.agent_self().get("Config", {})
                nodes.append(f"{cfg.get('NodeName', '')}.{cfg.get('Datacenter', '')}")
            found: dict[str, Coordinate | None] = {}
            for area in client._call("GET", "/v1/coordinate/datacenters").json() or []:
                for e in area.get("Coordinates") or []:
                    if e.get("Node") in nodes:
                        found[e["Node"]] = _coord(e.get("Coord"))
            source = "WAN"
        else:
            if len(nodes) == 1:
                nodes.append(client.agent_node_name())
            rows = client._call("GET", "/v1/coordinate/nodes").json() or []
            segs: dict[str, dict[str, Coordinate | None]] = {}
            for e in rows:
                segs.setdefault(e.get("Segment", ""), {})[e.get("Node")] = _coord(e.get("Coord"))
            found = next((s for s in segs.values() if all(n in s for n in nodes)), {})
            if not found:
                for s in segs.values():
                    found.update({k: v for k, v in s.items() if k in nodes and k not in found})
            source = "LAN"
    except ConsulError as err:
        ui.err(f"Error getting coordinates: {err}")
        return 1
    for n in nodes:
        if found.get(n) is None:
            ui.err(f'Could not find a coordinate for node "{n}"')
            return 1
    a, b = found[nodes[0]], found[nodes[1]]
    assert a is not None and b is not None
    ui.out(f"Estimated {nodes[0]} <-> {nodes[1]} rtt: {distance(a, b) * 1000.0:.3f} ms (using {source} coordinates)")
    return 0
