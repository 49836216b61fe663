"""Server RPC refuses connections beyond ``limits.rpc_max_conns_per_client`` from one IP, and
counts them down again when they close (one client cannot exhaust the server's descriptors)."""

from __future__ import annotations

import asyncio

from muster.server.rpc import RPCNode


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 2) == b""
    except TimeoutError:
        return False


async def test_rpc_max_conns_per_client() -> None:
    node = RPCNode("a", lambda: "", lambda _n: [])
    node.max_conns_per_client = 2
    port = await node.listen("127.0.0.1", 0)
    held = []
    try:
        for _ in range(2):
            held.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await _closed_by_server(reader)  # the third is closed at once
        writer.close()
        assert node._conns_by_ip == {"127.0.0.1": 2}
        for _r, w in held:
            w.close()
        for _ in range(50):
            if not node._conns_by_ip:
                break
            await asyncio.sleep(0.1)
        assert node._conns_by_ip == {}
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        assert node._conns_by_ip.get("127.0.0.1", 0) <= 1
        w2.close()
    finally:
        await node.close()
