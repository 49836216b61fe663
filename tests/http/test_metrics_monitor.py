"""``/v1/agent/metrics`` after a workload (Consul's names and types) and ``/v1/agent/monitor``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from muster.config import config_from_dict
from muster.http.serve import Listener
from muster.process import AgentProcess
from muster.runtime import Rng
from muster.telemetry.metrics import default_metrics


@pytest.fixture
async def tele() -> AsyncIterator[tuple[AgentProcess, httpx.AsyncClient]]:
    cfg = config_from_dict(
        {
            "node_name": "m-node",
            "telemetry": {"prometheus_retention_time": "60s", "disable_hostname": True, "disable_compat_1_9": False},
        },
        dev=True,
    )
    proc = AgentProcess(cfg, rng=Rng(3))
    await proc.server.start()
    await proc.agent.start()
    m = default_metrics()
    real_clock = m.clock
    frozen = real_clock()
    m.clock = lambda: frozen  # one interval for the whole test: the JSON view shows it
    m.reset()
    c = httpx.AsyncClient(transport=httpx.ASGITransport(app=proc.app), base_url="http://muster.test")
    try:
        yield proc, c
    finally:
        m.clock = real_clock
        await c.aclose()
        await proc.agent.stop()
        await proc.server.stop()


async def test_metric_names_and_types_after_a_workload(tele: tuple[AgentProcess, httpx.AsyncClient]) -> None:
    _, c = tele
    for i in range(5):
        assert (await c.put(f"/v1/kv/wl/{i}", content=b"v")).text == "true"
    r = await c.put("/v1/txn", json=[{"KV": {"Verb": "set", "Key": "wl/t", "Value": "eA=="}}])
    assert r.status_code == 200
    r = await c.put("/v1/catalog/register", json={"Node": "n1", "Address": "10.0.0.1"})
    assert r.status_code == 200
    r = await c.put("/v1/catalog/deregister", json={"Node": "n1"})
    assert r.status_code == 200
    assert (await c.get("/v1/kv/wl/0")).status_code == 200

    body = (await c.get("/v1/agent/metrics")).json()  # the only interval so far: the current one
    counters = {x["Name"]: x for x in body["Counters"]}
    samples = {(x["Name"], tuple(sorted(x["Labels"].items()))): x for x in body["Samples"]}
    gauges = {x["Name"] for x in body["Gauges"]}
    assert counters["consul.raft.apply"]["Count"] >= 8
    assert samples[("consul.kvs.apply", ())]["Count"] == 5
    assert samples[("consul.txn.apply", ())]["Count"] == 1
    assert samples[("consul.catalog.register", ())]["Count"] >= 1
    assert samples[("consul.catalog.deregister", ())]["Count"] == 1
    assert samples[("consul.raft.fsm.apply", ())]["Count"] >= 8
    assert samples[("consul.api.http", (("method", "PUT"), ("path", "_v1_kv_")))]["Count"] == 5
    assert samples[("consul.http.PUT.v1.kv._", ())]["Count"] == 5  # disable_compat_1.9 = false
    assert samples[("consul.http.GET.v1.kv._", ())]["Count"] == 1
    assert {"consul.runtime.num_goroutines", "consul.runtime.alloc_bytes", "consul.runtime.heap_objects",
            "consul.state.kv_entries", "consul.server.isLeader"} <= gauges

    r = await c.get("/v1/agent/metrics?format=prometheus")
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    fams = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert fams["consul_raft_apply"].type == "counter"
    assert fams["consul_kvs_apply"].type == "summary"
    assert fams["consul_runtime_alloc_bytes"].type == "gauge"
    counts = {s.name: s.value for s in fams["consul_kvs_apply"].samples if not s.labels}
    assert counts["consul_kvs_apply_count"] == 5.0
    http = [s for s in fams["consul_api_http"].samples if s.name == "consul_api_http_count"]
    assert any(s.labels == {"method": "PUT", "path": "_v1_kv_"} and s.value == 5.0 for s in http)


async def test_monitor_rejects_an_unknown_level_with_consuls_text(tele: tuple[AgentProcess, httpx.AsyncClient]) -> None:
    _, c = tele
    r = await c.get("/v1/agent/monitor?loglevel=foo")
    assert (r.status_code, r.text) == (400, "Unknown log level: foo")


async def _read_until(reader: asyncio.StreamReader, needle: bytes, timeout: float = 10.0) -> bytes:
    buf = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while needle not in buf:
        chunk = await asyncio.wait_for(reader.read(65536), max(0.1, deadline - loop.time()))
        if not chunk:
            break
        buf += chunk
    return buf


async def test_monitor_streams_a_put_and_frees_the_subscription_on_hang_up(
    tele: tuple[AgentProcess, httpx.AsyncClient],
) -> None:
    """Through a real HTTP listener: chunked, the PUT's request line shows up, and closing the
    connection releases the subscription at once."""
    proc, _ = tele
    lst = Listener(proc.app, "127.0.0.1", 0)
    await lst.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", lst.port)
        writer.write(b"GET /v1/agent/monitor?loglevel=debug&logjson HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await _read_until(reader, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
        for _ in range(100):
            if proc.monitors.live:
                break
            await asyncio.sleep(0.01)
        assert len(proc.monitors.live) == 1
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{lst.port}") as hc:
            assert (await hc.put("/v1/kv/monitored/key", content=b"x")).text == "true"
        got = await _read_until(reader, b"/v1/kv/monitored/key")
        line = next(ln for ln in got.replace(b"\r\n", b"\n").split(b"\n") if b"/v1/kv/monitored/key" in ln)
        obj = json.loads(line)
        assert obj["@level"] == "debug" and obj["@module"] == "http"
        assert obj["@message"].startswith("Request finished: method=PUT url=/v1/kv/monitored/key")
        writer.close()
        for _ in range(300):
            if not proc.monitors.live:
                break
            await asyncio.sleep(0.01)
        assert not proc.monitors.live, "the subscription outlived the client"
    finally:
        await lst.stop()


async def test_stopping_the_agent_ends_open_streams(tele: tuple[AgentProcess, httpx.AsyncClient]) -> None:
    proc, _ = tele
    lst = Listener(proc.app, "127.0.0.1", 0)
    await lst.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", lst.port)
        writer.write(b"GET /v1/agent/monitor HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await _read_until(reader, b"\r\n\r\n")
        for _ in range(100):
            if proc.monitors.live:
                break
            await asyncio.sleep(0.01)
        proc.monitors.close_all()
        rest = await _read_until(reader, b"0\r\n\r\n")
        assert rest.endswith(b"0\r\n\r\n")  # the last chunk: the response ended cleanly
        writer.close()
    finally:
        await lst.stop()
