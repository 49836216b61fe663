"""Server RPC refuses connections beyond ``limits.rpc_max_conns_per_client`` from one IP, and
counts them down again when they close (one client cannot exhaust the server's descriptors).
Outgoing connections leave from the agent's bind address (``source_ip``, Consul's
``RPCSrcAddr``), so agents sharing a host are counted each on its own."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from muster.config.schema import Config
from muster.process import rpc_source_ip
from muster.server.rpc import ConnectionLost, RPCNode


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


async def test_outgoing_connections_leave_from_the_source_ip() -> None:
    server = RPCNode("srv", lambda: "", lambda _n: [])
    server.max_conns_per_client = 1

    async def echo(payload: Any) -> Any:
        return payload

    server.handlers["echo"] = echo
    port = await server.listen("127.0.0.1", 0)
    clients = []
    try:
        for ip in ("127.0.0.21", "127.0.0.22", "127.0.0.21"):
            c = RPCNode(f"client-{len(clients)}", lambda: "", lambda _n: [f"127.0.0.1:{port}"],
                        info=lambda: {"client": "1"})
            c.source_ip = ip
            clients.append(c)
        # Two agents on two addresses of one host: one connection each, under a cap of one.
        assert await clients[0].call("srv", "echo", "a", timeout=5) == "a"
        assert await clients[1].call("srv", "echo", "b", timeout=5) == "b"
        assert server._conns_by_ip == {"127.0.0.21": 1, "127.0.0.22": 1}
        # A second connection from the first address is over the cap.
        with pytest.raises(ConnectionLost):
            await clients[2].call("srv", "echo", "c", timeout=5)
    finally:
        for c in clients:
            await c.close()
        await server.close()


def test_rpc_source_ip_is_the_bind_address_unless_a_wildcard() -> None:
    base = Config()
    assert rpc_source_ip(dataclasses.replace(base, bind_addr="127.0.3.7")) == "127.0.3.7"
    assert rpc_source_ip(dataclasses.replace(base, bind_addr="0.0.0.0")) is None
    assert rpc_source_ip(dataclasses.replace(base, bind_addr="::")) is None
