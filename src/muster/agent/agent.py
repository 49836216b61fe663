"""``Agent``: the agent-side process root (local state, check runners, anti-entropy)."""

from __future__ import annotations

from typing import Any

from ..runtime import Clock, Rng
from ..server.server import Server


class Agent:
    def __init__(self, server: Server, config: Any, rng: Rng, clock: Clock) -> None:
        self.server = server
        self.config = config
        self.rng = rng
        self.clock = clock
        self.local: Any = None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def reload(self, new_config: Any) -> None:
        self.config = new_config
