"""``?near=<node>`` on catalog and health lists: sort by estimated round trip time from that
node (Consul ``sortByDistanceFrom``; docs/multi-datacenter.md).

``_agent`` is the node serving the request.  The distance is computed from the LAN coordinates
stored in the catalog (``/v1/coordinate/nodes``); entries whose node has no coordinate go last,
keeping their order; when the source node has no coordinate nothing is reordered.  The sort is
stable, so ``/catalog/service`` and ``/health/service`` still list the same instances in the
same order (Traefik zips them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from ..coordinate import distance
from .common import Ctx
from .request import Request

T = TypeVar("T")


def near_sorter(ctx: Ctx, req: Request) -> Callable[[list[T], Callable[[T], str]], list[T]]:
    """A function sorting a list by its items' node distance from ``?near`` (identity without)."""
    near = req.get("near")
    if not near:
        return lambda items, node_of: items
    if near == "_agent":
        near = ctx.server.ident.node_name
    store = ctx.server.store

    def sort(items: list[T], node_of: Callable[[T], str]) -> list[T]:
        src = store.coordinate_of(near)
        if src is None:
            return items
        memo: dict[str, float] = {}

        def key(item: T) -> float:
            n = node_of(item)
            if n not in memo:
                c = store.coordinate_of(n)
                memo[n] = distance(src, c) if c is not None else math.inf
            return memo[n]

        return sorted(items, key=key)

    return sort


__all__ = ["near_sorter", "Any"]
