"""A blocking query whose client hangs up stops waiting and leaves no watcher behind."""

from __future__ import annotations

import asyncio
import socket

from muster.http.serve import Listener
from muster.process import AgentProcess


async def test_disconnected_blocking_query_frees_its_watch(agent: AgentProcess) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lst = Listener(agent.app, "127.0.0.1", port)
    await lst.start()
    try:
        store = agent.server.store
        idx, _ = store.kv_get(None, "watched")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /v1/kv/watched?index={max(idx, 1)}&wait=5m HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        for _ in range(100):
            if store.waiter_count() >= 1:
                break
            await asyncio.sleep(0.02)
        assert store.waiter_count() >= 1
        writer.close()
        for _ in range(200):
            if store.waiter_count() == 0:
                break
            await asyncio.sleep(0.02)
        assert store.waiter_count() == 0
        del reader
    finally:
        await lst.stop()
