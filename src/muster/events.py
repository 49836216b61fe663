"""The agent's user-event buffer: the last 256 user events this agent has seen, oldest first.

In Consul user events travel by gossip and are never replicated through Raft, so they live in
the agent, not in the store.  ``/v1/event/fire`` adds to it (through gossip when the agent
gossips, directly otherwise), ``Membership`` adds what the pool delivers, and
``/v1/event/list`` blocks on its watch.  The list's blocking index is derived from the newest
event's UUID, as Consul does (clients only compare it for equality).
"""

from __future__ import annotations

from typing import Any

from .state.watch import Watch, WatchSet

MAX_EVENTS = 256


def uuid_to_index(uid: str) -> int:
    """Fold a UUID into 64 bits: hex of parts 1-3 XOR hex of parts 4-5 (Consul's rule)."""
    parts = uid.split("-")
    if len(parts) != 5:
        return 1
    try:
        lo = int(parts[0] + parts[1] + parts[2], 16)
        hi = int(parts[3] + parts[4], 16)
    except ValueError:
        return 1
    return (lo ^ hi) & (2**64 - 1) or 1


class EventBuffer:
    """The last ``MAX_EVENTS`` user events this agent has seen, with a watch for blocking lists."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.ltime = 0
        self._watch = Watch()

    def add(self, ev: dict[str, Any]) -> None:
        self.ltime = max(self.ltime, int(ev.get("LTime", 0)))
        self.events.append(ev)
        del self.events[:-MAX_EVENTS]
        w, self._watch = self._watch, Watch()
        w.fire()

    def next_ltime(self) -> int:
        self.ltime += 1
        return self.ltime

    def query(self, ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
        if ws is not None:
            ws.add(self._watch)
        idx = uuid_to_index(self.events[-1]["ID"]) if self.events else 1
        return idx, list(self.events)
