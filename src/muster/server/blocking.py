"""Blocking queries, exactly as Consul's ``blockingquery.Query`` (docs/compat/blocking.md).

``min_index`` 0 runs the query once.  Otherwise the wait is capped at ``max_query_time`` (a
missing or non-positive wait means ``default_query_time``), jitter in ``[0, wait/16)`` is added,
and the query re-runs each time one of the watches it registered fires, returning as soon as its
index is *strictly greater* than ``min_index``.  An index that went backwards (a restore) keeps
blocking, as Consul does; the abandon watch wakes every query on restore so it re-reads.
The reported index is never 0 (clients would spin).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..runtime import Rng
from ..state.store import StateStore
from ..state.watch import WatchSet

T = TypeVar("T")

DEFAULT_QUERY_TIME = 300.0
MAX_QUERY_TIME = 600.0
JITTER_FRACTION = 16


@dataclass(slots=True)
class QueryOptions:
    min_index: int = 0
    wait: float = 0.0  # seconds; <= 0 means the default
    consistency: str = "leader"  # leader | stale | consistent
    max_stale: float = 0.0
    filter: str = ""


def effective_wait(wait: float, rng: Rng, default: float = DEFAULT_QUERY_TIME, maximum: float = MAX_QUERY_TIME) -> float:
    w = wait if wait > 0 else default
    w = min(w, maximum)
    return w + rng.random() * (w / JITTER_FRACTION)


async def blocking_query(
    store: StateStore,
    opts: QueryOptions,
    run: Callable[[WatchSet | None], tuple[int, T]],
    rng: Rng,
    default_wait: float = DEFAULT_QUERY_TIME,
    max_wait: float = MAX_QUERY_TIME,
) -> tuple[int, T]:
    """Run ``run`` (which registers its watches in the set it is given) until its index moves."""
    if opts.min_index <= 0:
        idx, res = run(None)
        return max(idx, 1), res
    loop = asyncio.get_running_loop()
    deadline = loop.time() + effective_wait(opts.wait, rng, default_wait, max_wait)
    while True:
        ws = WatchSet()
        ws.add(store.abandon_watch)
        idx, res = run(ws)
        idx = max(idx, 1)
        if idx > opts.min_index:
            return idx, res
        remaining = deadline - loop.time()
        if remaining <= 0:
            return idx, res
        fired = await ws.wait(remaining)
        if not fired:
            idx, res = run(None)
            return max(idx, 1), res


def count_waiters(store: StateStore) -> int:
    return store.waiter_count()


__all__ = ["QueryOptions", "blocking_query", "effective_wait", "count_waiters", "Any"]
