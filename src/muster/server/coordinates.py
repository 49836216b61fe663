"""Network coordinates on their way into the catalog: batching updates through Raft, and each
agent's periodic report of its own LAN coordinate.

Consul does not write one Raft entry per coordinate: servers collect updates and apply them
every ``coordinate_update_period`` (5 s) as batches of at most ``batch_size`` (128), at most
``max_batches`` (5) per period; updates beyond that are dropped (the next report replaces them
anyway) (``agent/consul/coordinate_endpoint.go``).  :class:`CoordinateBatcher` does the same
for the updates this agent receives (``PUT /v1/coordinate/update`` and its own reports): the
last update per (node, segment) wins, each batch is one ``CoordinateBatchUpdateCommand``
proposed through the log (a follower or client agent forwards it to the leader like any
write).  The store drops updates for nodes that are not in the catalog.

Every agent reports its own LAN coordinate every ``sync_interval`` (Consul's
``SyncCoordinateIntervalMin``, 15 s) with up to 1/16 jitter, starting after one interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..coordinate import Coordinate
from ..errors import MusterError
from ..runtime import Rng
from ..structs import CoordinateBatchUpdateCommand

log = logging.getLogger("muster.coordinates")

__all__ = ["CoordinateBatcher"]


class CoordinateBatcher:
    def __init__(self, apply: Callable[[Any], Awaitable[Any]], rng: Rng, node_name: str = "",
                 own: Callable[[], Coordinate | None] | None = None, period: float = 5.0,
                 batch_size: int = 128, max_batches: int = 5, sync_interval: float = 15.0) -> None:
        self._apply = apply
        self._rng = rng
        self.period = period
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.sync_interval = sync_interval
        self._pending: dict[tuple[str, str], dict[str, Any]] = {}
        self.counters = {"applied": 0, "discarded": 0, "batches": 0, "failed_batches": 0}
        #: This agent's node name and where its own LAN coordinate comes from.
        self.node_name = node_name
        self._own = own or (lambda: None)
        self._tasks: list[asyncio.Task[None]] = []

    def submit(self, node: str, segment: str, coord: Coordinate) -> None:
        self._pending[(node, segment)] = {"Node": node, "Segment": segment, "Coord": coord.as_json()}

    def own_coordinate(self) -> Coordinate | None:
        """This agent's current LAN coordinate."""
        return self._own()

    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        """Apply what is pending: up to ``max_batches`` commands; the rest is discarded."""
        if not self._pending:
            return
        updates = list(self._pending.values())
        self._pending.clear()
        limit = self.batch_size * self.max_batches
        if len(updates) > limit:
            self.counters["discarded"] += len(updates) - limit
            log.warning("discarded %d coordinate updates (more than %d per period)", len(updates) - limit, limit)
            updates = updates[:limit]
        for i in range(0, len(updates), self.batch_size):
            batch = updates[i:i + self.batch_size]
            try:
                await self._apply(CoordinateBatchUpdateCommand(batch))
            except MusterError as err:
                # No leader, or it moved: the next report brings fresher coordinates anyway.
                self.counters["failed_batches"] += 1
                log.debug("coordinate batch of %d not applied: %s", len(batch), err)
                continue
            self.counters["batches"] += 1
            self.counters["applied"] += len(batch)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            await self.flush()

    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sync_interval * (1 + self._rng.random() / 16))
            c = self._own()
            if c is not None and self.node_name:
                self.submit(self.node_name, "", c)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._flush_loop(), name="coordinate-batches"),
                       asyncio.create_task(self._sync_loop(), name="coordinate-sync")]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        self._tasks = []
