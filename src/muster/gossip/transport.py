"""The asyncio driver for one gossip pool (LAN on 8301, or WAN on 8302): UDP packets, TCP
push/pull streams, one timer.

:class:`GossipPool` owns the sockets and a :class:`~.serf.Serf` (sans-IO).  Every input (a
datagram, a stream, the timer, an API call) is fed to Serf with ``now = clock.monotonic()``;
afterwards :meth:`GossipPool._flush` sends the packets Serf produced, starts the streams it asked
for, delivers its events to ``on_event`` and re-arms the single loop timer at
``serf.next_deadline()``.  No other task touches Serf, so there is no locking.

Streams: a 4-byte big-endian length, then one frame (sealed like a packet, so encryption covers
push/pull too); the requester sends one frame and reads one reply frame.  Frames over
``MAX_STREAM_FRAME`` are refused.

Joining (``-join``/``-retry-join``): each ``host[:port]`` (``[v6]:port`` too) is resolved again
on every attempt and every A record is tried; a name that does not resolve is normal while pods
are starting (kubernetes.md B.4) and is logged at debug level, never cached.

Wiring (what the agent does)::

    pool = GossipPool(name=node_name, node_id=node_id, bind_addr=bind, bind_port=8301,
                      advertise_addr=advertise, tags={"role": "consul", "dc": dc, "id": node_id, ...},
                      gossip=GossipConfig.lan(), serf=SerfConfig(reconnect_timeout=72 * 3600),
                      keyring=Keyring.from_base64(encrypt_key) if encrypt_key else None,
                      on_event=reconcile_queue.put_nowait)
    await pool.start()
    asyncio.create_task(pool.retry_join(["consul-0.consul.ns.svc", ...], interval=30.0))
    ...
    pool.members()            # [SerfMember]; SerfMember.to_api() is Consul's Member JSON
    pool.fire_user_event("deploy", b"...")   # /v1/event/fire
    await pool.leave()        # graceful (-> "left" elsewhere); pool.stop() is a crash to peers

Identity across restarts: the initial incarnation defaults to the wall clock in milliseconds, so
a member that restarts (same name and node id, maybe a new address) outranks everything its
previous life gossiped (that life would have needed more refutations than milliseconds lived) and
is recognised at once (see :mod:`.core`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping

from ..runtime import Clock, RealClock, Rng
from ..telemetry.metrics import METRICS
from .core import GossipConfig, StreamRequest
from .keyring import Keyring, KeyringError, decode_key, encode_key
from .serf import KeyringResponse, QueryEvent, Serf, SerfConfig, SerfEvent, SerfMember

__all__ = ["GossipPool", "Resolver", "parse_join_address", "resolve_join_addresses"]

log = logging.getLogger("muster.gossip.transport")

Addr = tuple[str, int]
#: ``(host, port) -> [ip, ...]``; raising ``OSError`` means "does not resolve (yet)".
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_STREAM_FRAME = 16 * 1024 * 1024
_BIND_ATTEMPTS = 20


def parse_join_address(text: str, default_port: int) -> Addr:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> ``(host, port)``."""
    text = text.strip()
    if not text:
        raise ValueError("empty join address")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"bad join address {text!r}")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port


async def _system_resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM)
    out: list[str] = []
    for _fam, _type, _proto, _canon, sa in infos:
        ip = str(sa[0])
        if ip not in out:
            out.append(ip)
    return out


async def resolve_join_addresses(addrs: list[str], default_port: int,
                                 resolver: Resolver | None = None) -> list[Addr]:
    """Resolve every name now (all A records); unresolvable names are skipped, not errors."""
    resolve = resolver or _system_resolve
    out: list[Addr] = []
    for text in addrs:
        try:
            host, port = parse_join_address(text, default_port)
        except ValueError as e:
            log.warning("gossip: ignoring join address %r: %s", text, e)
            continue
        try:
            ips = await resolve(host, port)
        except OSError as e:  # socket.gaierror included: "not yet" is normal on Kubernetes
            log.debug("gossip: join address %s does not resolve (yet): %s", host, e)
            continue
        for ip in ips:
            if (ip, port) not in out:
                out.append((ip, port))
    return out


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, pool: GossipPool) -> None:
        self.pool = pool

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.pool._on_packet(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("gossip: UDP error: %s", exc)


class GossipPool:
    """One Serf pool bound to ``bind_addr:bind_port`` (UDP and TCP on the same port).

    ``bind_port=0`` picks a free port (tests); the advertised port is then the bound one.
    ``on_event`` receives :class:`~.serf.MemberEvent` and :class:`~.serf.UserEvent` objects
    synchronously on the event loop; it must not block (exceptions are logged and swallowed).
    """

    def __init__(self, *, name: str, node_id: str, bind_addr: str = "0.0.0.0", bind_port: int = 8301,
                 advertise_addr: str | None = None, advertise_port: int | None = None,
                 tags: Mapping[str, str] | None = None, gossip: GossipConfig | None = None,
                 serf: SerfConfig | None = None, keyring: Keyring | None = None,
                 on_event: Callable[[SerfEvent], None] | None = None, clock: Clock | None = None,
                 rng: Rng | None = None, default_join_port: int | None = None,
                 resolver: Resolver | None = None, incarnation: int | None = None) -> None:
        if advertise_addr is None and bind_addr in ("0.0.0.0", "::", ""):
            raise ValueError("advertise_addr is required when binding to a wildcard address")
        self.name = name
        self.node_id = node_id
        self.bind_addr = bind_addr
        self.bind_port = bind_port
        self.advertise_addr = advertise_addr or bind_addr
        self._advertise_port = advertise_port
        self._tags = dict(tags or {})
        self.gossip_config = gossip or GossipConfig()
        self.serf_config = serf or SerfConfig()
        self.keyring = keyring
        self.on_event = on_event
        self.clock: Clock = clock or RealClock()
        self.rng = rng or Rng()
        self.default_join_port = default_join_port or bind_port or 8301
        self._resolver = resolver
        self._incarnation = incarnation
        self._serf: Serf | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stream_waiters: dict[int, asyncio.Future[bool]] = {}
        self._left = asyncio.Event()
        self._stopped = False
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def serf(self) -> Serf:
        if self._serf is None:
            raise RuntimeError("gossip pool not started")
        return self._serf

    @property
    def running(self) -> bool:
        return self._serf is not None and not self._stopped

    async def start(self) -> None:
        """Bind UDP and TCP on the same port and start the protocol."""
        loop = asyncio.get_running_loop()
        last: OSError | None = None
        for _ in range(_BIND_ATTEMPTS if self.bind_port == 0 else 1):
            udp = None
            try:
                udp, _ = await loop.create_datagram_endpoint(lambda: _UDP(self),
                                                             local_addr=(self.bind_addr, self.bind_port))
                port = int(udp.get_extra_info("sockname")[1])
                self._tcp = await asyncio.start_server(self._on_stream, host=self.bind_addr, port=port)
                self._udp = udp
                self.port = port
                break
            except OSError as e:  # the TCP port may be taken when UDP's ephemeral port was free
                last = e
                if udp is not None:
                    udp.close()
        else:
            raise OSError(f"cannot bind gossip UDP+TCP on {self.bind_addr}:{self.bind_port}: {last}")
        now = self.clock.monotonic()
        inc = self._incarnation if self._incarnation is not None else max(1, int(self.clock.wall() * 1000))
        self._serf = Serf(name=self.name, node_id=self.node_id, addr=self.advertise_addr,
                          port=self._advertise_port or self.port, rng=self.rng, now=now, tags=self._tags,
                          config=self.serf_config, gossip=self.gossip_config, keyring=self.keyring,
                          incarnation=inc)
        log.info("gossip: %s (%s) listening on %s:%d (encryption %s)", self.name, self.node_id,
                 self.bind_addr, self.port, "on" if self.keyring else "off")
        self._flush()

    async def stop(self) -> None:
        """Close the sockets at once (a crash, as far as peers can tell, unless :meth:`leave`
        ran first).  Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(OSError):
                await self._tcp.wait_closed()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for fut in self._stream_waiters.values():
            if not fut.done():
                fut.set_result(False)

    # ------------------------------------------------------------------ API

    async def join(self, addrs: list[str], ignore_old: bool = True, count_self: bool = False) -> int:
        """Resolve ``addrs`` now and push/pull with every address; returns how many answered.

        Our own address is skipped; with ``count_self`` (the join API) it counts as answered,
        as memberlist's push/pull with itself does.  ``retry_join`` leaves it out so that it
        keeps trying until another member answers."""
        resolved = await resolve_join_addresses(addrs, self.default_join_port, self._resolver)
        targets = [t for t in resolved if t != (self.advertise_addr, self.port)]
        # Our own address answers a join at once (memberlist's push/pull with itself succeeds):
        # `consul join 127.0.0.1` on a lone agent reports one node contacted.
        own = len(resolved) - len(targets) if count_self else 0
        if self._stopped:
            return 0
        if not targets:
            return own
        tokens = self.serf.join(targets, self.clock.monotonic(), ignore_old=ignore_old)
        loop = asyncio.get_running_loop()
        futs = []
        for tok in tokens:
            fut: asyncio.Future[bool] = loop.create_future()
            self._stream_waiters[tok] = fut
            futs.append(fut)
        self._flush()
        results = await asyncio.gather(*futs)
        n = own + sum(1 for r in results if r)
        log.info("gossip: join %s: %d of %d addresses answered", ",".join(addrs), n, len(resolved))
        return n

    async def retry_join(self, addrs: list[str], interval: float = 30.0, max_attempts: int = 0) -> int:
        """``-retry-join``: try :meth:`join` until one address answers; ``max_attempts=0`` means
        no limit.  Returns the number that answered on the successful attempt (0 if given up)."""
        attempt = 0
        while not self._stopped:
            attempt += 1
            n = await self.join(addrs)
            if n > 0:
                return n
            if max_attempts and attempt >= max_attempts:
                log.warning("gossip: retry-join gave up after %d attempts", attempt)
                return 0
            log.info("gossip: retry-join attempt %d failed; retrying in %.1fs", attempt, interval)
            await asyncio.sleep(interval)
        return 0

    async def leave(self, timeout: float | None = None) -> None:
        """Graceful leave: broadcast it, wait until it has spread (at most ``timeout``, default
        serf's broadcast timeout), then stop."""
        if self._stopped:
            return
        self.serf.leave(self.clock.monotonic())
        self._flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._left.wait(), timeout or self.serf_config.broadcast_timeout)
        await self.stop()

    def members(self) -> list[SerfMember]:
        return self.serf.members()

    def local_member(self) -> SerfMember:
        return self.serf.local_member()

    def member(self, name: str) -> SerfMember | None:
        return self.serf.member(name)

    def member_by_id(self, node_id: str) -> SerfMember | None:
        return self.serf.member_by_id(node_id)

    def fire_user_event(self, name: str, payload: bytes, coalesce: bool = True) -> int:
        """Gossip a user event; returns its Lamport time (raises ValueError if too large)."""
        lt = self.serf.user_event(name, payload, self.clock.monotonic(), coalesce)
        self._flush()
        return lt

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.serf.set_tags(tags, self.clock.monotonic())
        self._flush()

    def force_leave(self, name: str, prune: bool = False) -> bool:
        ok = self.serf.force_leave(name, self.clock.monotonic(), prune)
        self._flush()
        return ok

    async def query(self, name: str, payload: bytes, timeout: float | None = None) -> dict[str, bytes]:
        """Ask every member; returns the answers (member name -> payload) received in time."""
        timeout = timeout if timeout is not None else self.serf.default_query_timeout()
        qid = self.serf.query(name, payload, self.clock.monotonic(), timeout)
        self._flush()
        await asyncio.sleep(timeout)
        return self.serf.query_result(qid)

    def respond(self, q: QueryEvent, payload: bytes) -> None:
        """Answer a :class:`~.serf.QueryEvent` delivered to ``on_event``."""
        self.serf.respond(q, payload)
        self._flush()

    async def keyring_operation(self, op: str, key_b64: str | None = None,
                                timeout: float | None = None) -> KeyringResponse:
        """Cluster-wide ``install``/``use``/``remove``/``list`` (``muster keyring``)."""
        timeout = timeout if timeout is not None else self.serf.default_query_timeout()
        qid = self.serf.keyring_query(op, key_b64, self.clock.monotonic(), timeout)
        self._flush()
        await asyncio.sleep(timeout)
        return self.serf.keyring_result(qid)

    # --- keyring (this node only; see the module docstring of .keyring for the rules) ---

    def list_keys(self) -> list[str]:
        """Installed keys, base64, primary first (empty when encryption is off)."""
        return [encode_key(k) for k in self.keyring.keys()] if self.keyring is not None else []

    def install_key(self, key_b64: str) -> None:
        self._require_keyring().install(decode_key(key_b64))

    def use_key(self, key_b64: str) -> None:
        self._require_keyring().use(decode_key(key_b64))

    def remove_key(self, key_b64: str) -> None:
        self._require_keyring().remove(decode_key(key_b64))

    def _require_keyring(self) -> Keyring:
        if self.keyring is None:
            raise KeyringError("gossip encryption is not enabled on this pool")
        return self.keyring

    def stats(self) -> dict[str, str]:
        return self.serf.stats()

    def counters(self) -> dict[str, int]:
        return {**self.serf.core.counters, **self.serf.counters}

    # ------------------------------------------------------------------ plumbing

    def _on_packet(self, data: bytes, addr: Addr) -> None:
        if self._stopped or self._serf is None:
            return
        METRICS.incr("memberlist.udp.received", float(len(data)))
        self._serf.receive_packet(data, addr, self.clock.monotonic())
        self._flush()

    def _on_timer(self) -> None:
        self._timer = None
        self._armed_at = None
        if self._stopped or self._serf is None:
            return
        self._serf.handle_timeout(self.clock.monotonic())
        self._flush()

    def _flush(self) -> None:
        serf = self._serf
        if serf is None or self._stopped:
            return
        if self._udp is not None:
            for addr, data in serf.packets_to_send():
                try:
                    self._udp.sendto(data, addr)
                    METRICS.incr("memberlist.udp.sent", float(len(data)))
                except OSError as e:
                    log.debug("gossip: send to %s:%d failed: %s", addr[0], addr[1], e)
        for req in serf.streams_to_open():
            self._spawn(self._push_pull(req))
        for ev in serf.events():
            if self.on_event is not None:
                try:
                    self.on_event(ev)
                except Exception:  # a faulty consumer must not stop the failure detector
                    log.exception("gossip: event callback failed")
        if serf.core.leaving and serf.leave_propagated():
            self._left.set()
        deadline = serf.next_deadline()
        if self._armed_at is None or deadline < self._armed_at - 1e-6 or deadline > self._armed_at + 1e-6:
            if self._timer is not None:
                self._timer.cancel()
            delay = max(0.0, deadline - self.clock.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)
            self._armed_at = deadline

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push_pull(self, req: StreamRequest) -> None:
        reply: bytes | None = None
        writer: asyncio.StreamWriter | None = None
        # A fallback ping is only useful within its probe round.
        timeout = (self.gossip_config.probe_interval if req.kind == "ping"
                   else self.gossip_config.stream_timeout)
        METRICS.incr("memberlist.tcp.connect")
        try:
            reader, w = await asyncio.wait_for(asyncio.open_connection(*req.addr), timeout)
            writer = w
            w.write(len(req.data).to_bytes(4, "big") + req.data)
            await asyncio.wait_for(w.drain(), timeout)
            reply = await asyncio.wait_for(_read_frame(reader), timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as e:
            log.debug("gossip: %s with %s:%d failed: %s", req.kind, req.addr[0], req.addr[1], e)
        finally:
            if writer is not None:
                writer.close()
        if self._stopped or self._serf is None:
            return
        ok = self._serf.stream_response(req.token, reply, self.clock.monotonic())
        fut = self._stream_waiters.pop(req.token, None)
        if fut is not None and not fut.done():
            fut.set_result(ok)
        self._flush()

    async def _on_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        METRICS.incr("memberlist.tcp.accept")
        try:
            data = await asyncio.wait_for(_read_frame(reader), self.gossip_config.stream_timeout)
            if self._stopped or self._serf is None:
                return
            reply = self._serf.receive_stream(data, (str(peer[0]), int(peer[1])), self.clock.monotonic())
            self._flush()
            if reply is not None:
                writer.write(len(reply).to_bytes(4, "big") + reply)
                await asyncio.wait_for(writer.drain(), self.gossip_config.stream_timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as e:
            log.debug("gossip: stream from %s failed: %s", peer, e)
        finally:
            writer.close()


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    n = int.from_bytes(await reader.readexactly(4), "big")
    if n > MAX_STREAM_FRAME:
        raise ValueError(f"stream frame of {n} bytes exceeds {MAX_STREAM_FRAME}")
    return await reader.readexactly(n)
