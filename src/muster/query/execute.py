"""Executing a prepared query against one datacenter's catalog, and choosing failover targets.

Pure functions over the catalog's ``(node, service, checks)`` entries (the records
``/v1/health/service`` renders) so that the same code runs for a local execution and for the
remote half of a failover (Consul ``PreparedQuery.execute``, ``queryFailover``):

1. health: an instance with a critical check is dropped; with ``OnlyPassing`` a warning one
   too; checks listed in ``IgnoreCheckIDs`` are not looked at;
2. ``NodeMeta`` / ``ServiceMeta``: every pair must match exactly;
3. ``Tags``: case-insensitive; every plain tag is required, no ``!tag`` may be present;
4. shuffled (the injected RNG), then sorted by estimated RTT from the ``near`` node when it has a
   coordinate (nodes without one go last, in shuffled order); the ``near`` node itself goes first
   when it is among the first ten; then ``limit``.

Failover order (when nothing survives locally): the ``NearestN`` nearest other datacenters by
WAN RTT, then each of ``Failover.Datacenters`` that is known and not already listed, in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ..coordinate import Coordinate, distance
from ..runtime import Rng

__all__ = ["Entry", "failover_targets", "filter_entries", "sort_near"]

#: (node row, service record, check rows): the store's typed rows, or their JSON form.
Entry = tuple[Any, Any, list[Any]]


def _field(obj: Any, attr: str, key: str) -> Any:
    """A field of a typed store row, or of its Consul JSON form (remote answers, tests)."""
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, attr, None)


def node_name(node: Any) -> str:
    return str(_field(node, "node", "Node") or "")


def _healthy(checks: list[dict[str, Any]], only_passing: bool, ignore: set[str]) -> bool:
    for c in checks:
        if _field(c, "check_id", "CheckID") in ignore:
            continue
        st = _field(c, "status", "Status")
        if st == "critical" or (only_passing and st != "passing"):
            return False
    return True


def _tags_ok(svc_tags: list[str] | None, want: list[str]) -> bool:
    have = {t.lower() for t in svc_tags or []}
    for t in want:
        t = t.lower()
        if t.startswith("!"):
            if t[1:] in have:
                return False
        elif t not in have:
            return False
    return True


def _meta_ok(meta: dict[str, str] | None, want: dict[str, str]) -> bool:
    meta = meta or {}
    return all(meta.get(k) == v for k, v in want.items())


def filter_entries(entries: Sequence[Entry], service: dict[str, Any]) -> list[Entry]:
    """Steps 1-3 of the module docstring, for a rendered query's ``Service`` block."""
    ignore = set(service.get("IgnoreCheckIDs") or [])
    only_passing = bool(service.get("OnlyPassing"))
    tags = list(service.get("Tags") or [])
    node_meta = dict(service.get("NodeMeta") or {})
    svc_meta = dict(service.get("ServiceMeta") or {})
    out = []
    for node, svc, checks in entries:
        if not _healthy(checks, only_passing, ignore):
            continue
        if node_meta and not _meta_ok(_field(node, "meta", "Meta"), node_meta):
            continue
        if svc_meta and not _meta_ok(_field(svc, "meta", "Meta"), svc_meta):
            continue
        if tags and not _tags_ok(_field(svc, "tags", "Tags"), tags):
            continue
        out.append((node, svc, checks))
    return out


def sort_near(entries: list[Entry], rng: Rng | None, near: str,
              coordinate: Callable[[str], Coordinate | None]) -> list[Entry]:
    """Step 4 (without the limit): shuffle, then order by RTT from node ``near``."""
    out = list(entries)
    if rng is not None:
        rng.shuffle(out)
    if not near:
        return out
    src = coordinate(near)
    if src is not None:
        def key(e: Entry) -> float:
            c = coordinate(node_name(e[0]))
            return distance(src, c) if c is not None else math.inf
        out.sort(key=key)
    for i, e in enumerate(out[:10]):
        if node_name(e[0]) == near:
            out.insert(0, out.pop(i))
            break
    return out


def failover_targets(service: dict[str, Any], local_dc: str, by_distance: Sequence[str]) -> list[str]:
    """The datacenters to try, in order (``by_distance``: every known DC, nearest first)."""
    fo = service.get("Failover") or {}
    others = [dc for dc in by_distance if dc != local_dc]
    out = others[: max(0, int(fo.get("NearestN") or 0))]
    known = set(by_distance)
    for dc in fo.get("Datacenters") or []:
        if dc in known and dc not in out and dc != local_dc:
            out.append(dc)
    for t in fo.get("Targets") or []:
        dc = t.get("Datacenter", "")
        if dc and dc in known and dc not in out and dc != local_dc:
            out.append(dc)
    return out
