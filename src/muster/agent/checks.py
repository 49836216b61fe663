"""Check runners (docs/compat/agent.md#health-checks, Consul's ``agent/checks``): TTL, HTTP, TCP, UDP, script, gRPC, alias.

Every runner is one asyncio task owned by the agent, reporting through a one-method
``Notifier`` (the agent's local state).  Runners never touch the catalog: anti-entropy does.

Scheduling: an interval runner first waits a random stagger in ``[0, interval)`` (so many
checks registered at once do not probe in lockstep), then probes, then sleeps one interval
after each probe ends.  Intervals below ``min_interval`` (1 s, as Consul's ``MinInterval``) are
raised to it.  A probe never outlives its timeout, so a runner's loop is bounded.

Thresholds (``StatusHandler``): a passing/warning result is reported only after
``SuccessBeforePassing`` consecutive successes; a critical one only after
``FailuresBeforeCritical`` consecutive failures, with a warning in between once
``FailuresBeforeWarning`` is reached.  With all thresholds 0 every result is reported as is.

Output texts are Consul's (clients and dashboards display them): ``HTTP GET <url>: 200 OK
Output: <body>``, ``TCP connect <addr>: Success``, ``TTL expired``, ``Timed out (30s) running
check``; output is capped at ``output_max_size`` bytes (4 KiB by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import ssl
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp

from ..runtime import Rng
from ..state.watch import WatchSet
from .definitions import CheckDefinition

log = logging.getLogger("muster.checks")

DEFAULT_OUTPUT_MAX = 4096
DEFAULT_TIMEOUT = 10.0
SCRIPT_TIMEOUT = 30.0
MIN_INTERVAL = 1.0
USER_AGENT = "Consul Health Check"
ACCEPT = "text/plain, text/*, */*"
ALIAS_REFRESH = 60.0
NS = 1_000_000_000


class Notifier(Protocol):
    def update_check(self, check_id: str, status: str, output: str) -> None: ...


class StatusHandler:
    """Consecutive-result thresholds between a runner and the notifier (see module doc)."""

    def __init__(self, check_id: str, notify: Notifier, success_before_passing: int = 0,
                 failures_before_warning: int = 0, failures_before_critical: int = 0) -> None:
        self.check_id = check_id
        self.notify = notify
        self.success_before_passing = success_before_passing
        self.failures_before_warning = failures_before_warning or failures_before_critical
        self.failures_before_critical = failures_before_critical
        self.successes = 0
        self.failures = 0

    def update(self, status: str, output: str) -> None:
        if status in ("passing", "warning"):
            self.successes += 1
            self.failures = 0
            if self.successes >= self.success_before_passing:
                self.notify.update_check(self.check_id, status, output)
            return
        self.failures += 1
        self.successes = 0
        if self.failures >= self.failures_before_critical:
            self.notify.update_check(self.check_id, status, output)
        elif self.failures >= self.failures_before_warning:
            self.notify.update_check(self.check_id, "warning", output)


def output_limit(defn: CheckDefinition, agent_max: int) -> int:
    """The per-check cap: the agent's ``check_output_max_size``, lowered by ``OutputMaxSize``."""
    limit = agent_max if agent_max > 0 else DEFAULT_OUTPUT_MAX
    if 0 < defn.output_max_size < limit:
        limit = defn.output_max_size
    return limit


def truncate_head(output: str, limit: int) -> str:
    """TTL/update output: keep the first ``limit`` bytes, noting what was dropped."""
    raw = output.encode()
    if len(raw) <= limit:
        return output
    head = raw[:limit].decode(errors="ignore")
    return f"{head} ... (captured {limit} of {len(raw)} bytes)"


class TailBuffer:
    """Keeps the last ``size`` bytes written (Consul's circular buffer) and the total count."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.buf = bytearray()
        self.total = 0

    def write(self, data: bytes) -> None:
        self.total += len(data)
        self.buf += data
        if len(self.buf) > self.size:
            del self.buf[: len(self.buf) - self.size]

    def text(self) -> str:
        return self.buf.decode(errors="replace")


def split_host_port(addr: str) -> tuple[str, int]:
    """Go's ``net.SplitHostPort`` for ``host:port`` / ``[v6]:port``; ValueError with Go's text."""
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise ValueError(f"address {addr}: missing ']' in address")
        host, rest = addr[1:end], addr[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError(f"address {addr}: missing port in address")
        port_s = rest[1:]
    else:
        host, sep, port_s = addr.rpartition(":")
        if not sep:
            raise ValueError(f"address {addr}: missing port in address")
        if ":" in host:
            raise ValueError(f"address {addr}: too many colons in address")
    try:
        port = int(port_s)
        if not 0 <= port <= 65535:
            raise ValueError(port_s)
    except ValueError:
        raise ValueError(f"address {addr}: invalid port") from None
    return host, port


def _errno_text(err: OSError) -> str:
    """Go's rendering of a dial error (``connect: connection refused``)."""
    if err.errno == errno.ECONNREFUSED:
        return "connect: connection refused"
    if err.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "connect: no route to host" if err.errno == errno.EHOSTUNREACH else "connect: network is unreachable"
    return err.strerror or str(err)


# --------------------------------------------------------------------------- runners


class CheckRunner:
    """Base: one task per check.  ``start`` is idempotent; ``stop`` waits for the task to end."""

    def __init__(self, check_id: str) -> None:
        self.check_id = check_id
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._main(), name=f"check:{self.check_id}")

    async def _main(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        t, self._task = self._task, None
        if t is not None:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self._cleanup()

    async def _cleanup(self) -> None:
        return None


class TTLCheck(CheckRunner):
    """Critical with ``TTL expired`` unless updated within ``ttl`` seconds of the last update.

    The timer starts at registration.  ``set_status`` reports at once (no thresholds, as in
    Consul) and remembers the output so the expiry message can quote it.
    """

    def __init__(self, check_id: str, ttl: float, notify: Notifier, output_max: int) -> None:
        super().__init__(check_id)
        self.ttl = ttl
        self.notify = notify
        self.output_max = output_max
        self.last_output = ""
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.ttl, self._expire)

    def _expire(self) -> None:
        self._timer = None
        out = "TTL expired"
        if self.last_output:
            out = f"TTL expired (last output before timeout follows): {self.last_output}"
        self.notify.update_check(self.check_id, "critical", out)

    def set_status(self, status: str, output: str) -> str:
        output = truncate_head(output, self.output_max)
        self.last_output = output
        self.notify.update_check(self.check_id, status, output)
        self._arm()
        return output

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class IntervalCheck(CheckRunner):
    """Probe every ``interval`` after a random initial stagger; subclasses implement ``probe``."""

    default_timeout = DEFAULT_TIMEOUT
    cap_by_interval = True  # network probes time out by the next interval at the latest

    def __init__(self, check_id: str, defn: CheckDefinition, handler: StatusHandler, rng: Rng,
                 output_max: int, min_interval: float = MIN_INTERVAL) -> None:
        super().__init__(check_id)
        self.defn = defn
        self.handler = handler
        self.rng = rng
        self.output_max = output_max
        self.interval = max(defn.interval / NS, min_interval)
        given = defn.timeout / NS
        self.timeout = given if given > 0 else self.default_timeout
        if self.cap_by_interval and not 0 < given < self.interval and self.interval < self.default_timeout:
            # As Consul: a short-interval probe should end before the next one is due.
            self.timeout = self.interval

    async def _main(self) -> None:
        await asyncio.sleep(self.rng.uniform(0, self.interval))
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval)

    async def run_once(self) -> None:
        try:
            status, output = await self.probe()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a probe bug must not kill the runner: report it as the check's failure
            log.warning("check %s probe failed: %r", self.check_id, err)
            status, output = "critical", str(err) or type(err).__name__
        self.handler.update(status, output)

    async def probe(self) -> tuple[str, str]:
        raise NotImplementedError


class HTTPCheck(IntervalCheck):
    """2xx passing, 429 warning, anything else (or no response) critical."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ctx: ssl.SSLContext | bool = True
            if self.defn.tls_skip_verify:
                ctx = False
            # Keep-alives off: every probe opens a fresh connection, as Consul's checker does.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, ssl=ctx))
        return self._session

    async def _cleanup(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def probe(self) -> tuple[str, str]:
        d = self.defn
        method = (d.method or "GET").upper()
        url = d.http
        op = method[:1] + method[1:].lower()
        headers: list[tuple[str, str]] = []
        given = {k.lower() for k in d.header}
        if "user-agent" not in given:
            headers.append(("User-Agent", USER_AGENT))
        if "accept" not in given:
            headers.append(("Accept", ACCEPT))
        for k, vals in d.header.items():
            for v in vals:
                headers.append((k, v))
        kwargs: dict[str, Any] = {}
        if d.tls_server_name:
            kwargs["server_hostname"] = d.tls_server_name
        try:
            async with self._client().request(
                method,
                url,
                headers=headers,
                data=d.body.encode() if d.body else None,
                allow_redirects=not d.disable_redirects,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                **kwargs,
            ) as resp:
                tail = TailBuffer(self.output_max)
                async for chunk in resp.content.iter_chunked(16384):
                    tail.write(chunk)
                code = resp.status
                result = f"HTTP {method} {url}: {code} {resp.reason or ''} Output: {tail.text()}"
        except TimeoutError:
            return "critical", f'{op} "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
        except aiohttp.ClientConnectorError as err:
            return "critical", f'{op} "{url}": dial tcp {err.host}:{err.port}: {_errno_text(err.os_error)}'
        except (aiohttp.ClientError, OSError, ValueError) as err:
            return "critical", f'{op} "{url}": {err}'
        if 200 <= code <= 299:
            return "passing", result
        if code == 429:
            return "warning", result
        return "critical", result


class TCPCheck(IntervalCheck):
    async def probe(self) -> tuple[str, str]:
        addr = self.defn.tcp
        try:
            host, port = split_host_port(addr)
        except ValueError as err:
            return "critical", str(err)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.timeout)
        except TimeoutError:
            return "critical", f"dial tcp {addr}: i/o timeout"
        except OSError as err:
            return "critical", f"dial tcp {addr}: {_errno_text(err)}"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return "passing", f"TCP connect {addr}: Success"


class _UDPProbe(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.done: asyncio.Future[tuple[bool, str]] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.done.done():
            self.done.set_result((True, ""))

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_result((False, str(exc)))


class UDPCheck(IntervalCheck):
    """Send a datagram; a reply or silence until the timeout is passing, an ICMP error critical."""

    async def probe(self) -> tuple[str, str]:
        addr = self.defn.udp
        try:
            host, port = split_host_port(addr)
        except ValueError as err:
            return "critical", str(err)
        loop = asyncio.get_running_loop()
        try:
            transport, proto = await loop.create_datagram_endpoint(_UDPProbe, remote_addr=(host, port))
        except OSError as err:
            return "critical", f"dial udp {addr}: {_errno_text(err)}"
        try:
            transport.sendto(b"ping")
            try:
                ok, why = await asyncio.wait_for(asyncio.shield(proto.done), self.timeout)
            except TimeoutError:
                ok, why = True, ""
        finally:
            transport.close()
        if ok:
            return "passing", f"UDP connect {addr}: Success"
        return "critical", f"read udp {addr}: {why}"


class ScriptCheck(IntervalCheck):
    """Run ``ScriptArgs``: exit 0 passing, 1 warning, anything else critical.  Output keeps the tail."""

    default_timeout = SCRIPT_TIMEOUT
    cap_by_interval = False

    async def probe(self) -> tuple[str, str]:
        args = self.defn.script_args
        try:
            proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as err:
            return "critical", f"Failed to start check: {err}"
        tail = TailBuffer(self.output_max)

        async def pump() -> int:
            assert proc.stdout is not None
            while True:
                chunk = await proc.stdout.read(16384)
                if not chunk:
                    break
                tail.write(chunk)
            return await proc.wait()

        try:
            code = await asyncio.wait_for(pump(), self.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            from ..durations import format_duration

            return "critical", f"Timed out ({format_duration(self.timeout)}) running check"
        out = tail.text()
        if tail.total > len(tail.buf):
            out = f"Captured {len(tail.buf)} of {tail.total} bytes\n...\n{out}"
        if code == 0:
            return "passing", out
        if code == 1:
            return "warning", out
        return "critical", out


class GRPCCheck(IntervalCheck):
    """``grpc.health.v1`` Check against ``host:port[/service]``; needs the ``grpc`` extra."""

    async def probe(self) -> tuple[str, str]:
        target = self.defn.grpc
        try:
            import grpc  # type: ignore[import-not-found]
            from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-not-found]
        except ImportError:
            return "critical", "grpc support not installed"
        addr, _, service = target.partition("/")
        if self.defn.grpc_use_tls:
            channel = grpc.aio.secure_channel(addr, grpc.ssl_channel_credentials())
        else:
            channel = grpc.aio.insecure_channel(addr)
        try:
            stub = health_pb2_grpc.HealthStub(channel)
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout)
        except grpc.RpcError as err:
            return "critical", f"gRPC {target} health check failed: {err}"
        finally:
            await channel.close()
        if resp.status == health_pb2.HealthCheckResponse.SERVING:
            return "passing", f"gRPC check {target}: success"
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
        return "critical", f"gRPC check {target}: failed: {name}"


class UnsupportedCheck(IntervalCheck):
    """Docker, H2PING and OS-service checks: accepted (Consul accepts them) but not runnable here."""

    async def probe(self) -> tuple[str, str]:
        return "critical", f"{self.defn.check_type() or 'this kind of'} checks are not supported by this agent"


# --------------------------------------------------------------------------- alias


def alias_status(
    checks: list[dict[str, Any]], node: str, service_id: str, service_exists: bool, own_id: str = ""
) -> tuple[str, str]:
    """Consul's ``CheckAlias.processChecks``: the worst status among the aliased checks.

    Node-level checks of ``node`` always count; service checks only those of ``service_id``.
    An aliased service that does not exist is critical.
    """
    health, msg = "passing", "No checks found."
    found = False
    for chk in checks:
        if own_id and chk.get("CheckID") == own_id:
            continue  # never alias ourselves
        if node and chk.get("Node") != node:
            continue
        sid = chk.get("ServiceID") or ""
        match = sid == service_id
        if sid and not match:
            continue
        if match and sid:
            found = True
        st = chk.get("Status")
        if st in ("critical", "warning"):
            health = str(st)
            msg = f'Aliased check "{chk.get("Name", "")}" failing: {chk.get("Output", "")}'
            if st == "critical":
                break
        elif health == "passing":
            msg = "All checks passing."
    if service_id and not found and not service_exists:
        return "critical", f"Service {service_id} could not be found on node {node}"
    return health, msg


#: (checks, service_exists), or None while the source cannot tell yet (a client's cache
#: not yet holding the aliased node): the check keeps its status and waits for ``ws``.
AliasSource = Callable[[WatchSet], tuple[list[dict[str, Any]], bool] | None]


class AliasCheck(CheckRunner):
    """Mirror another node's or service's health; re-evaluated whenever its source changes.

    ``source(ws)`` returns (checks, service_exists) and registers in ``ws`` the watches that
    fire when they change (the local state for a local alias, the catalog otherwise).  A
    periodic refresh bounds the wait even if a watch is missed.  ``hold`` (a stateless
    client's alias of another node) is called when the check starts and returns the release
    called when it stops: it makes the client's catalog cache follow the aliased node, as
    Consul's client runs a blocking query on a server for that node's checks.
    """

    def __init__(self, check_id: str, node: str, service_id: str, source: AliasSource, notify: Notifier,
                 hold: Callable[[], Callable[[], None]] | None = None) -> None:
        super().__init__(check_id)
        self.node = node
        self.service_id = service_id
        self.source = source
        self.notify = notify
        self.hold = hold

    async def _main(self) -> None:
        release = self.hold() if self.hold is not None else None
        try:
            last: tuple[str, str] | None = None
            while True:
                ws = WatchSet()
                got = self.source(ws)
                if got is None:
                    await ws.wait(ALIAS_REFRESH)
                    continue
                res = alias_status(got[0], self.node, self.service_id, got[1], self.check_id)
                if res != last:
                    self.notify.update_check(self.check_id, res[0], res[1])
                    last = res
                await ws.wait(ALIAS_REFRESH)
        finally:
            if release is not None:
                release()
