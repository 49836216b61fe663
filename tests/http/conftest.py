"""In-process agent fixtures for HTTP contract tests.

``agent`` builds a full ``AgentProcess`` in ``-dev`` mode (server, agent, every route) without
opening sockets; ``client`` is an httpx client speaking ASGI to it.  Tests therefore exercise
exactly the code path of a real request, minus uvicorn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from muster.config import parse_agent_flags
from muster.process import AgentProcess
from muster.runtime import Rng


@pytest.fixture
async def agent() -> AsyncIterator[AgentProcess]:
    cfg = parse_agent_flags(["-dev", "-node=test-node", "-client=127.0.0.1"])
    proc = AgentProcess(cfg, rng=Rng(1234))
    await proc.server.start()
    await proc.agent.start()
    try:
        yield proc
    finally:
        await proc.agent.stop()
        await proc.server.stop()


@pytest.fixture
async def client(agent: AgentProcess) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=agent.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://muster.test") as c:
        yield c
