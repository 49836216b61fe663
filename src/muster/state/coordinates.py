"""Coordinates table: each node's network coordinate per network segment (Consul's
``coordinates`` table), written in batches (``CoordinateBatchUpdateCommand``).

An update for a node that is not in the catalog is skipped (Consul: a coordinate must never
outlive or precede its node); deregistering a node deletes its coordinates (``catalog.py``
calls :meth:`CoordinateTable.delete_node`).  Rows are ``{"Node", "Segment", "Coord"}`` with
``Coord`` in Consul's JSON shape.  Index: ``coordinates``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..coordinate import Coordinate
from .watch import WatchSet

if TYPE_CHECKING:
    from .tables import Tables
    from .write import WriteTxn


class CoordinateTable:
    def __init__(self, tables: Tables) -> None:
        self._t = tables
        #: (node, segment) -> row.
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.by_node: dict[str, set[str]] = {}

    # ------------------------------------------------------------------ writes

    def batch_update(self, tx: WriteTxn, updates: list[dict[str, Any]]) -> int:
        """Store every update whose node exists; returns how many were stored."""
        nodes = self._t.catalog.nodes
        n = 0
        for u in updates:
            node, segment = str(u.get("Node", "")), str(u.get("Segment", "") or "")
            if node not in nodes or not isinstance(u.get("Coord"), dict):
                continue
            tx.put(self.rows, (node, segment), {"Node": node, "Segment": segment, "Coord": u["Coord"]})
            tx.add_member(self.by_node, node, segment)
            n += 1
        if n:
            tx.bump("coordinates")
        return n

    def delete_node(self, tx: WriteTxn, node: str) -> None:
        segments = self.by_node.get(node)
        if not segments:
            return
        for seg in sorted(segments):
            tx.pop(self.rows, (node, seg))
            tx.discard_member(self.by_node, node, seg)
        tx.bump("coordinates")

    # ------------------------------------------------------------------ reads

    def list_all(self, ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
        self._t.watches.table(ws, "coordinates")
        return self._t.index("coordinates"), [self.rows[k] for k in sorted(self.rows)]

    def for_node(self, ws: WatchSet | None, node: str) -> tuple[int, list[dict[str, Any]]]:
        self._t.watches.table(ws, "coordinates")
        segs = sorted(self.by_node.get(node, ()))
        return self._t.index("coordinates"), [self.rows[(node, s)] for s in segs]

    def coordinate_of(self, node: str, segment: str = "") -> Coordinate | None:
        row = self.rows.get((node, segment))
        if row is None:
            return None
        try:
            return Coordinate.from_json(row["Coord"])
        except ValueError:
            return None
