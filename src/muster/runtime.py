"""The seams through which clock and randomness enter Muster.

Pure cores (state store, FSM, Raft, gossip) never import ``time`` or ``random`` directly: they
are handed a ``Clock`` and an ``Rng``.  Production code passes ``RealClock``/``Rng(None)``; a
simulator passes a virtual clock and a seeded ``Rng`` so that any run can be replayed.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (timeouts, leases)."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch (timestamps shown to users, lock-delay stamps)."""
        ...


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class ManualClock:
    """A clock moved by hand: for tests and the simulator."""

    def __init__(self, start: float = 1_000.0, wall_offset: float = 1_700_000_000.0) -> None:
        self.now = start
        self.wall_offset = wall_offset

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self.wall_offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock never goes backwards")
        self.now += seconds


class Rng:
    """Randomness with an optional seed; also the only source of UUIDs."""

    def __init__(self, seed: int | None = None) -> None:
        self._r = random.Random(seed) if seed is not None else random.SystemRandom()

    def random(self) -> float:
        return self._r.random()

    def uniform(self, a: float, b: float) -> float:
        return self._r.uniform(a, b)

    def randrange(self, n: int) -> int:
        return self._r.randrange(n)

    def shuffle(self, items: list) -> None:  # type: ignore[type-arg]
        self._r.shuffle(items)

    def uuid(self) -> str:
        return str(uuid.UUID(int=self._r.getrandbits(128), version=4))
