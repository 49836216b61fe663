"""Check runners (docs/compat/agent.md#health-checks) against real local servers on 127.0.0.1, and their pure helpers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from muster.agent.checks import (
    GRPCCheck,
    HTTPCheck,
    IntervalCheck,
    ScriptCheck,
    StatusHandler,
    TailBuffer,
    TCPCheck,
    TTLCheck,
    UDPCheck,
    alias_status,
    split_host_port,
    truncate_head,
)
from muster.agent.definitions import CheckDefinition, parse_check
from muster.runtime import Rng
from muster_testkit.webfake import serve

MS = 1_000_000


class Recorder:
    def __init__(self) -> None:
        self.updates: list[tuple[str, str, str]] = []
        self.event = asyncio.Event()

    def update_check(self, check_id: str, status: str, output: str) -> None:
        self.updates.append((check_id, status, output))
        self.event.set()

    async def next(self, timeout: float = 3.0) -> tuple[str, str, str]:
        n = len(self.updates)
        async with asyncio.timeout(timeout):
            while len(self.updates) == n:
                self.event.clear()
                await self.event.wait()
        return self.updates[n]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


async def probe(cls: type[IntervalCheck], defn: CheckDefinition, output_max: int = 4096) -> tuple[str, str]:
    rec = Recorder()
    runner = cls("c", defn, StatusHandler("c", rec), Rng(1), output_max)
    try:
        return await runner.probe()
    finally:
        await runner.stop()


# --------------------------------------------------------------------------- helpers


def test_status_handler_thresholds() -> None:
    rec = Recorder()
    h = StatusHandler("c", rec, success_before_passing=2, failures_before_warning=1, failures_before_critical=3)
    h.update("passing", "a")
    assert rec.updates == []
    h.update("passing", "b")
    assert rec.updates[-1] == ("c", "passing", "b")
    h.update("critical", "x")
    assert rec.updates[-1] == ("c", "warning", "x")  # warning threshold reached first
    h.update("critical", "y")
    assert rec.updates[-1] == ("c", "warning", "y")
    h.update("critical", "z")
    assert rec.updates[-1] == ("c", "critical", "z")
    h.update("passing", "p")
    assert rec.updates[-1] == ("c", "critical", "z")  # success counter restarted
    plain = Recorder()
    StatusHandler("d", plain).update("critical", "now")
    assert plain.updates == [("d", "critical", "now")]


def test_output_truncation() -> None:
    assert truncate_head("abc", 10) == "abc"
    assert truncate_head("abcdef", 3) == "abc ... (captured 3 of 6 bytes)"
    t = TailBuffer(4)
    t.write(b"hello ")
    t.write(b"world")
    assert (t.text(), t.total) == ("orld", 11)


def test_split_host_port() -> None:
    assert split_host_port("127.0.0.1:80") == ("127.0.0.1", 80)
    assert split_host_port("[::1]:443") == ("::1", 443)
    for bad, text in (("nohost", "missing port"), ("a:b:c", "too many colons"), ("h:99999", "invalid port")):
        with pytest.raises(ValueError, match=text):
            split_host_port(bad)


def test_check_definition_kinds_and_validation() -> None:
    assert parse_check({"ttl": "10s"}).check_type() == "ttl"
    assert parse_check({"http": "http://x", "interval": "5s"}).check_type() == "http"
    assert parse_check({"TCP": "x:1", "Interval": 1_000_000_000}).check_type() == "tcp"
    assert parse_check({"grpc": "x:1", "interval": "1s", "grpc_use_tls": True}).grpc_use_tls
    assert parse_check({"alias_service": "web"}).check_type() == "alias"
    assert parse_check({"args": ["true"], "interval": "1s"}).check_type() == "script"
    assert parse_check({"alias_service": "w", "ttl": "1s"}).validate() == "TTL must be not be set for Alias checks"
    assert parse_check({"tcp": "x:1"}).validate() is not None
    d = parse_check({"http": "http://x", "interval": "10s", "timeout": "1s", "tls_skip_verify": True,
                     "header": {"X-A": ["1"]}, "DeregisterCriticalServiceAfter": "90m"}).definition()
    assert d == {"HTTP": "http://x", "Interval": "10s", "Timeout": "1s", "TLSSkipVerify": True,
                 "Header": {"X-A": ["1"]}, "DeregisterCriticalServiceAfter": "1h30m0s"}
    c = parse_check({"failures_before_critical": 3})
    assert c.effective_failures_before_warning() == 3


def test_alias_status() -> None:
    chk = [
        {"Node": "n", "CheckID": "node", "Name": "node", "ServiceID": "", "Status": "passing", "Output": ""},
        {"Node": "n", "CheckID": "a", "Name": "a", "ServiceID": "web", "Status": "warning", "Output": "slow"},
        {"Node": "n", "CheckID": "b", "Name": "b", "ServiceID": "other", "Status": "critical", "Output": "x"},
    ]
    assert alias_status(chk, "n", "web", True) == ("warning", 'Aliased check "a" failing: slow')
    assert alias_status(chk[:1], "n", "", True) == ("passing", "All checks passing.")
    assert alias_status([], "n", "", True) == ("passing", "No checks found.")
    assert alias_status(chk[:1], "n", "db", False) == ("critical", "Service db could not be found on node n")


# --------------------------------------------------------------------------- HTTP


@pytest.fixture
async def http_server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def handler(req: web.Request) -> web.StreamResponse:
        seen.append({"method": req.method, "headers": dict(req.headers), "body": await req.text(), "path": req.path})
        if req.path == "/ok":
            return web.Response(text="all good")
        if req.path == "/busy":
            return web.Response(status=429, text="slow down")
        if req.path == "/redirect":
            raise web.HTTPFound("/ok")
        if req.path == "/slow":
            await asyncio.sleep(0.5)
            return web.Response(text="late")
        if req.path == "/big":
            return web.Response(text="a" * 100 + "TAIL")
        return web.Response(status=500, text="broken")

    async with serve(handler) as port:
        yield f"http://127.0.0.1:{port}", seen


async def test_http_check_statuses_and_output(http_server: tuple[str, list[dict[str, Any]]]) -> None:
    base, seen = http_server
    status, out = await probe(HTTPCheck, parse_check({"http": f"{base}/ok", "interval": "1s"}))
    assert (status, out) == ("passing", f"HTTP GET {base}/ok: 200 OK Output: all good")
    assert seen[-1]["headers"]["User-Agent"] == "Consul Health Check"
    assert seen[-1]["headers"]["Accept"] == "text/plain, text/*, */*"
    assert (await probe(HTTPCheck, parse_check({"http": f"{base}/busy", "interval": "1s"})))[0] == "warning"
    status, out = await probe(HTTPCheck, parse_check({"http": f"{base}/err", "interval": "1s"}))
    assert status == "critical" and out.endswith(": 500 Internal Server Error Output: broken")
    status, out = await probe(HTTPCheck, parse_check({"http": f"{base}/big", "interval": "1s"}), output_max=10)
    assert out.endswith("Output: aaaaaaTAIL")  # the tail of the body is kept


async def test_http_check_method_headers_body_redirects(http_server: tuple[str, list[dict[str, Any]]]) -> None:
    base, seen = http_server
    defn = parse_check({"http": f"{base}/ok", "interval": "1s", "method": "post", "body": "{\"a\":1}",
                        "header": {"X-Token": ["t1"], "User-Agent": ["mine"]}})
    status, out = await probe(HTTPCheck, defn)
    assert status == "passing" and out.startswith(f"HTTP POST {base}/ok: 200 OK")
    last = seen[-1]
    assert last["method"] == "POST" and last["body"] == '{"a":1}'
    assert last["headers"]["X-Token"] == "t1" and last["headers"]["User-Agent"] == "mine"
    assert (await probe(HTTPCheck, parse_check({"http": f"{base}/redirect", "interval": "1s"})))[0] == "passing"
    status, out = await probe(HTTPCheck, parse_check({"http": f"{base}/redirect", "interval": "1s", "DisableRedirects": True}))
    assert status == "critical" and ": 302 Found Output:" in out


async def test_http_check_failures(http_server: tuple[str, list[dict[str, Any]]]) -> None:
    base, _ = http_server
    port = free_port()
    status, out = await probe(HTTPCheck, parse_check({"http": f"http://127.0.0.1:{port}/", "interval": "1s"}))
    assert status == "critical"
    assert out == f'Get "http://127.0.0.1:{port}/": dial tcp 127.0.0.1:{port}: connect: connection refused'
    status, out = await probe(HTTPCheck, parse_check({"http": f"{base}/slow", "interval": "1s", "timeout": "200ms"}))
    assert status == "critical" and "context deadline exceeded" in out


# --------------------------------------------------------------------------- TCP / UDP


async def test_tcp_check() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        res = await probe(TCPCheck, parse_check({"tcp": f"127.0.0.1:{port}", "interval": "1s"}))
        assert res == ("passing", f"TCP connect 127.0.0.1:{port}: Success")
    finally:
        server.close()
        await server.wait_closed()
    closed = free_port()
    status, out = await probe(TCPCheck, parse_check({"tcp": f"127.0.0.1:{closed}", "interval": "1s"}))
    assert (status, out) == ("critical", f"dial tcp 127.0.0.1:{closed}: connect: connection refused")
    assert (await probe(TCPCheck, parse_check({"tcp": "nohost", "interval": "1s"})))[0] == "critical"


async def test_udp_check() -> None:
    loop = asyncio.get_running_loop()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.t = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.t.sendto(data, addr)

    transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        res = await probe(UDPCheck, parse_check({"udp": f"127.0.0.1:{port}", "interval": "1s", "timeout": "1s"}))
        assert res == ("passing", f"UDP connect 127.0.0.1:{port}: Success")
    finally:
        transport.close()
    closed = free_port()
    status, _ = await probe(UDPCheck, parse_check({"udp": f"127.0.0.1:{closed}", "interval": "1s", "timeout": "500ms"}))
    assert status == "critical"  # ICMP port unreachable surfaces as a refused read


# --------------------------------------------------------------------------- TTL / script / gRPC / scheduling


async def test_ttl_expiry_and_reset() -> None:
    rec = Recorder()
    ttl = TTLCheck("t", 0.1, rec, 4096)
    ttl.start()
    try:
        assert await rec.next() == ("t", "critical", "TTL expired")
        ttl.set_status("passing", "fine")
        assert rec.updates[-1] == ("t", "passing", "fine")
        await asyncio.sleep(0.05)
        ttl.set_status("passing", "still")  # resets the timer
        assert await rec.next() == ("t", "critical", "TTL expired (last output before timeout follows): still")
    finally:
        await ttl.stop()


async def test_script_check_exit_codes_and_output() -> None:
    assert await probe(ScriptCheck, parse_check({"args": ["sh", "-c", "echo ok"], "interval": "1s"})) == ("passing", "ok\n")
    assert (await probe(ScriptCheck, parse_check({"args": ["sh", "-c", "exit 1"], "interval": "1s"})))[0] == "warning"
    assert (await probe(ScriptCheck, parse_check({"args": ["sh", "-c", "echo e >&2; exit 2"], "interval": "1s"}))) == ("critical", "e\n")
    status, out = await probe(ScriptCheck, parse_check({"args": ["sh", "-c", "printf 0123456789"], "interval": "1s"}), output_max=4)
    assert out == "Captured 4 of 10 bytes\n...\n6789"
    status, out = await probe(ScriptCheck, parse_check({"args": ["sleep", "5"], "interval": "1s", "timeout": "100ms"}))
    assert (status, out) == ("critical", "Timed out (100ms) running check")
    status, out = await probe(ScriptCheck, parse_check({"args": ["/nonexistent/bin"], "interval": "1s"}))
    assert status == "critical" and out.startswith("Failed to start check")


async def test_grpc_without_support() -> None:
    try:
        import grpc  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        res = await probe(GRPCCheck, parse_check({"grpc": "127.0.0.1:1", "interval": "1s"}))
        assert res == ("critical", "grpc support not installed")
    else:
        pytest.skip("grpc is installed: the fallback path does not apply")


async def test_interval_runner_staggers_then_repeats() -> None:
    class Counting(IntervalCheck):
        times: list[float] = []

        async def probe(self) -> tuple[str, str]:
            self.times.append(asyncio.get_running_loop().time())
            return "passing", str(len(self.times))

    rec = Recorder()
    defn = CheckDefinition(tcp="x:1", interval=100 * MS)
    runner = Counting("i", defn, StatusHandler("i", rec), Rng(3), 4096, min_interval=0.01)
    start = asyncio.get_running_loop().time()
    runner.start()
    try:
        await rec.next()
        await rec.next()
        await rec.next()
    finally:
        await runner.stop()
    t = Counting.times
    assert t[0] - start < 0.1 + 0.05  # first run within one interval (random stagger)
    assert all(b - a >= 0.09 for a, b in zip(t, t[1:], strict=False))
    assert runner.interval == 0.1
    assert IntervalCheck("m", CheckDefinition(tcp="x:1", interval=1 * MS), StatusHandler("m", rec), Rng(1), 10).interval == 1.0


def test_probe_timeouts() -> None:
    rec = Recorder()

    def timeout(cls: type[IntervalCheck], **kw: Any) -> float:
        return cls("t", parse_check(kw), StatusHandler("t", rec), Rng(1), 10).timeout

    assert timeout(HTTPCheck, http="h", interval="30s") == 10.0
    assert timeout(HTTPCheck, http="h", interval="2s") == 2.0  # capped by a short interval
    assert timeout(HTTPCheck, http="h", interval="30s", timeout="3s") == 3.0
    assert timeout(TCPCheck, tcp="h:1", interval="30s", timeout="45s") == 45.0
    assert timeout(ScriptCheck, args=["x"], interval="2s") == 30.0
