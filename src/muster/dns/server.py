"""The DNS listener: UDP and TCP on ``ports.dns`` for each DNS address, with the answer cache.

Per query (``DNSServer.handle``):

1. ``wire.parse_query`` reads the common one-question shape without dnspython; anything else
   is parsed by dnspython, which decides FORMERR.  Fewer than 12 bytes, or a packet with QR set
   (a response - answering it could start a loop), is dropped; an unparsable packet with a
   readable header gets FORMERR; opcodes other than QUERY get NOTIMP; EDNS versions other than 0
   get BADVERS.  Nothing a client sends can stop the listener: the handlers log and drop (or
   SERVFAIL) on any unexpected error.
2. The cache is looked up by (lowercase question name, type, class).  It is emptied whenever
   the store's catalog index, the store's tables (a snapshot restore) or the ACL version change,
   so an entry is always the answer the store would give now.  An entry is the *compiled* record
   set (see ``wire.py``): shuffling, truncation for the transport and the OPT record are applied
   on the way out, so cached answers still come back in a fresh random order each time.  (One
   visible effect: the SOA serial - "now" in Consul - is the time the entry was built, some
   time after the last catalog change.)  A hit costs ~4 us of Python on a receive thread
   (below; small replies come from ``wire.render``'s memo), a miss ~85 us (A) / ~120 us (SRV)
   (CPU time, 100 services x 3 instances).
3. Questions outside our zones go to the recursors (a task per query, bounded by
   ``MAX_FORWARDS`` in flight) or are REFUSED when there are none.

Threads (UDP).  Each UDP socket has a receive thread (``_UDPThread``) running a blocking
``recvfrom`` loop; the GIL is released inside the socket calls, and under a DNS-only load the
event loop is idle, so the thread gets the interpreter.  Going through the loop's datagram
transport cost ~18 us per query on top of the answer itself; the thread pays two plain socket
calls (~5 us), which took Muster from 0.28x to ~0.6x of NSD's qps (BENCHMARKS.md).  Division
of work:

* the thread parses the question and answers it itself only when the cache already holds the
  answer for the current generation (``answer_cached``): it reads, never writes, the shared
  state, and renders with its own RNG; the reply goes out with ``sendto`` on the same socket;
* everything else - a miss, a generation change, anything dnspython must parse, BADVERS, a
  forward, a remote or prepared-query lookup, a stateless client's name its catalog cache
  does not follow yet - is handed to the loop (``call_soon_threadsafe``, at most
  ``MAX_HANDOFF`` queued, past that dropped as a full receive buffer would), which runs
  ``handle`` as before (builds, caches, forwards) and sends with a non-blocking ``sendto``;
* TCP stays on asyncio.

Why the thread's reads are safe: the store, the cache and the ACL state are only ever written
on the loop thread.  The thread compares the store's generation (tables' identity, catalog
index, ACL version: plain attribute and dict reads, each atomic under the GIL) with the
generation the cache was built for, and ``_view`` holds that generation and its entries as one
tuple, replaced (never mutated into another generation) by the loop, so the thread can never
pair a current generation with older entries.  A write bumps the catalog index in the same
loop step that changes the rows, so once the write has returned, the next datagram sees a new
generation and goes to the loop: a check turning critical leaves DNS at once, as on the loop
path.  A query read concurrently with the write may get the answer from just before it, which
is a valid order for two concurrent events.  ``dict.get`` on an entry the loop is evicting is
atomic; compiled entries are immutable.  Counters the thread bumps (``hits``, ``handed``) are
its own; the loop writes ``taken``.  Metrics recording is thread-safe (``telemetry/metrics.py``).
``known_leader`` and ``staleness`` read attributes only.

Stopping: ``stop`` sets a flag, shuts the socket down (which wakes a blocked ``recvfrom`` on
Linux) and sends a wake-up datagram to it as well, joins with ``THREAD_JOIN_TIMEOUT``, then
closes the socket; hand-offs still queued on the loop see the flag and send nothing.  With
``udp_thread=False`` UDP is served by the loop's datagram transport instead (the tests compare
the two paths).  Both event loops (stdlib and uvloop) work the same: the thread uses only
``call_soon_threadsafe`` of the loop.

Reads use the local store directly (stale reads, ``allow_stale``, the default): a DNS answer
never waits on a leader or on the log.  On a stateless client agent that store is the catalog
cache (``server/remote.py``), answered from while it is no older than ``max_stale``.  With
``allow_stale = false`` a server that knows no leader answers SERVFAIL instead.  The cache is
bounded in entries and bytes (``MAX_CACHE``, ``MAX_CACHE_BYTES``, oldest entry evicted first),
so random names cannot grow it without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Callable
from time import perf_counter
from typing import Any, cast

import dns.edns
import dns.exception
import dns.message
import dns.name
import dns.opcode
import dns.rcode

from ..config import Config
from ..runtime import Clock, RealClock, Rng
from ..server.server import Server
from ..telemetry.metrics import METRICS, Labels
from . import names, wire
from .answers import Answer, Answerer
from .recursor import Forwarder
from .wire import Compiled, Query

log = logging.getLogger("muster.dns")

MAX_CACHE = 10_000  # entries
MAX_CACHE_BYTES = 32 << 20  # wire bytes held by cached answers
MAX_FORWARDS = 512
CACHE_FILL_TIMEOUT = 5.0  # seconds a stateless client's first question for a name may wait
UDP_RCVBUF = 4 << 20
TCP_IDLE_TIMEOUT = 10.0
TCP_READ_TIMEOUT = 5.0
RCODE_BADVERS = 16
MAX_HANDOFF = 1024  # datagrams a receive thread may have queued on the event loop at once
THREAD_JOIN_TIMEOUT = 2.0  # seconds ``stop`` waits for a receive thread
PARSE_MEMO = 4096  # packet shapes a receive thread remembers the parse of (emptied when full)

# What dnspython raises on a malformed message (it has no single base for all of them).
_PARSE_ERRORS = (dns.exception.DNSException, ValueError, struct.error, IndexError, UnicodeError, TypeError)


class DNSServer:
    def __init__(
        self,
        server: Server,
        config: Config,
        *,
        rng: Rng | None = None,
        clock: Clock | None = None,
        cache: bool = True,
        udp_thread: bool = True,
    ) -> None:
        self.server = server
        self.config = config
        self.rng = rng or Rng()
        self._node_label: Labels = (("node", server.ident.node_name),)
        self.clock = clock or RealClock()
        self.cache_enabled = cache
        #: UDP served by a receive thread per socket (``_UDPThread``) rather than the loop's transport.
        self.udp_thread = udp_thread
        # Shuffling draws a few numbers per query: a seeded Mersenne Twister derived from the
        # injected Rng (still reproducible in tests) instead of SystemRandom's urandom syscalls,
        # which cost ~6 us per query.  Load spreading needs no cryptographic randomness.
        self.shuffle_rng = Rng(self.rng.randrange(1 << 62))
        self.answerer = Answerer(config)
        dcfg = config.dns_config
        self.compress = not dcfg.disable_compression
        self.udp_answer_limit = dcfg.udp_answer_limit
        self.enable_truncate = dcfg.enable_truncate
        self.allow_stale = dcfg.allow_stale
        self.max_stale = dcfg.max_stale
        #: How old the answers' data may be, in seconds (a stateless client's catalog cache,
        #: ``server/remote.py``); None on servers, whose store is the replica itself.
        self.staleness: Callable[[], float] | None = None
        #: A stateless client's cache holds only the services and nodes asked about
        #: (``CatalogMirror.want`` / ``wait_covered``); None on servers.
        self.cache: Any = None
        self._covered: set[bytes] = set()
        self._covered_gen = -1
        self.forwarder = (
            Forwarder(config.recursors, dcfg.recursor_timeout, dcfg.recursor_strategy, self.rng)
            if config.recursors
            else None
        )
        self.recursion_available = self.forwarder is not None
        self.remote: Any = None
        self._cache: dict[tuple[bytes, int, int], Compiled] = {}
        self._cache_bytes = 0
        self._generation: tuple[int, int, int] | None = None
        #: What the receive threads read: (generation, entries), replaced as one reference
        #: whenever the generation changes, so a thread never pairs one generation with
        #: another generation's entries.
        self._view: tuple[tuple[int, int, int] | None, dict[tuple[bytes, int, int], Compiled]] = (None, self._cache)
        self._transports: list[asyncio.DatagramTransport] = []
        self._udp_threads: list[_UDPThread] = []
        self._tcp_servers: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.addresses: list[tuple[str, int]] = []
        self._loop_hits = 0
        self.misses = 0
        #: ACL table version (answers depend on the DNS token's rights); 0 when ACLs are off.
        self.acl_version: Callable[[], int] = lambda: 0

    @property
    def hits(self) -> int:
        """Answers served from the cache, by the loop and by the receive threads."""
        return self._loop_hits + sum(t.hits for t in self._udp_threads)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, hosts: list[str], port: int) -> None:
        """Bind UDP and TCP on ``port`` (0 = any free port, the same for both) on every host."""
        loop = asyncio.get_running_loop()
        for host in hosts:
            h = host.strip("[]")
            family = socket.AF_INET6 if ":" in h else socket.AF_INET
            # With port 0 the UDP port is picked first; its TCP twin may be taken: retry (bounded).
            for attempt in range(1 if port else 20):
                if self.udp_thread:
                    udp: socket.socket | asyncio.DatagramTransport = _udp_socket(family, h, port)
                    bound = cast(socket.socket, udp).getsockname()[1]
                else:
                    udp, _ = await loop.create_datagram_endpoint(
                        lambda: _UDPProtocol(self), local_addr=(h, port), family=family
                    )
                    bound = udp.get_extra_info("sockname")[1]
                try:
                    srv = await asyncio.start_server(self._tcp_client, h, bound, family=family, reuse_address=True)
                except OSError:
                    udp.close()
                    if port or attempt == 19:
                        raise
                    continue
                break
            if isinstance(udp, socket.socket):
                worker = _UDPThread(self, udp, loop, Rng(self.rng.randrange(1 << 62)))
                self._udp_threads.append(worker)
                worker.start()
            else:
                sock = udp.get_extra_info("socket")
                if sock is not None:
                    # Bursts of queries arrive faster than one loop iteration drains them: a larger
                    # receive buffer turns would-be drops into a little queueing.  Best effort.
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
                self._transports.append(udp)
            self._tcp_servers.append(srv)
            self.addresses.append((h, bound))
            log.info("DNS listening on %s:%d (udp, tcp)", h, bound)

    async def stop(self) -> None:
        for w in self._udp_threads:
            w.stop()
        for t in self._transports:
            t.close()
        for s in self._tcp_servers:
            s.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for s in self._tcp_servers:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(s.wait_closed(), 2.0)
        self._transports.clear()
        self._tcp_servers.clear()
        self._loop_hits += sum(w.hits for w in self._udp_threads)
        self._udp_threads.clear()

    # ------------------------------------------------------------------ query handling

    def handle(self, data: bytes, tcp: bool) -> bytes | Query | None:
        """The reply bytes, a ``Query`` to forward to the recursors, or None (drop)."""
        started = perf_counter()
        q = wire.parse_query(data)
        if q is None:
            out = self._slow_parse(data, tcp)
            METRICS.measure_since("dns.domain_query", started, self._node_label)
            return out
        res = self._respond(q, tcp)
        METRICS.measure_since("dns.ptr_query" if q.qtype == 12 else "dns.domain_query", started, self._node_label)
        return res

    def _slow_parse(self, data: bytes, tcp: bool) -> bytes | Query | None:
        if len(data) < 12 or struct.unpack_from("!H", data, 2)[0] & wire.FLAG_QR:
            return None
        try:
            msg = dns.message.from_wire(data)
        except _PARSE_ERRORS:
            return wire.error_response(data, dns.rcode.FORMERR)
        if msg.opcode() != dns.opcode.QUERY:
            return wire.error_response(data, dns.rcode.NOTIMP)
        if len(msg.question) != 1:
            return wire.error_response(data, dns.rcode.FORMERR)
        rrset = msg.question[0]
        qname = bytes(rrset.name.to_wire() or b"")
        question = qname + struct.pack("!HH", rrset.rdtype, rrset.rdclass)
        q = Query(msg.id, msg.flags, question, qname.lower(), rrset.rdtype, rrset.rdclass)
        if msg.edns >= 0:
            q.edns, q.payload, q.edns_version = True, msg.payload, msg.edns
            for opt in msg.options:
                if isinstance(opt, dns.edns.ECSOption):
                    raw = bytes(opt.to_wire() or b"")
                    q.ecs = raw[:3] + b"\x00" + raw[4:]
        return self._respond(q, tcp)

    def _respond(self, q: Query, tcp: bool, fill: bool = True) -> bytes | Query:
        if q.edns and q.edns_version != 0:
            return wire.header_reply(q.id, q.flags, RCODE_BADVERS, q.question, opt=True)
        if fill and self.cache is not None and not self._cache_covers(q):
            return q  # ``forward`` waits for the cache to hold the name, then answers
        t = self.compiled(q)
        if t.remote or (t.forward and self.forwarder is not None):
            return q
        return self._finish(q, t, tcp, self.shuffle_rng)

    def _finish(self, q: Query, t: Compiled, tcp: bool, rng: Rng) -> bytes:
        """The reply for ``q`` from its compiled answer ``t`` (runs on the loop or a receive thread)."""
        if not self.allow_stale and not t.forward and not self.server.known_leader():
            # dns_config.allow_stale = false: without a leader no read is allowed (Consul: SERVFAIL).
            return self._plain(q, dns.rcode.SERVFAIL)
        if self.staleness is not None and not t.forward and self.staleness() > self.max_stale:
            # A client's cache no server confirmed within dns_config.max_stale (Consul: the
            # stale answer is refused and the leader is asked, which fails too): SERVFAIL.
            return self._plain(q, dns.rcode.SERVFAIL)
        return wire.render(
            t, q, rng, tcp=tcp, udp_answer_limit=self.udp_answer_limit,
            enable_truncate=self.enable_truncate, recursion_available=self.recursion_available,
        )

    def answer_cached(self, data: bytes, worker: Worker) -> bytes | None | _Handoff:
        """A receive thread's answer to one UDP datagram from what the cache holds now: the
        reply bytes, None (drop), or ``HANDOFF`` when the event loop must answer (a miss, a
        stale generation, a forward or remote lookup, a stateless client's name not yet
        followed, anything dnspython must parse).  Only reads shared state; see the module
        docstring for why each read is safe off the loop."""
        started = perf_counter()
        # A parse depends on every byte but the ID: the thread keeps the Query of each recent
        # packet shape (ID excluded) and patches the ID into the reply.
        parsed = worker.parsed
        shape = data[2:]
        q = parsed.get(shape)
        if q is None:
            q = wire.parse_query(data)
            if q is None:
                if len(data) < 12 or struct.unpack_from("!H", data, 2)[0] & wire.FLAG_QR:
                    return None
                return HANDOFF
            if len(parsed) >= PARSE_MEMO:
                parsed.clear()
            parsed[shape] = q
        if q.edns and q.edns_version != 0:
            return HANDOFF
        if not self.cache_enabled:
            return HANDOFF
        cache = self.cache
        if cache is not None and not (cache.generation == self._covered_gen and q.qname_lower in self._covered):
            return HANDOFF
        gen, entries = self._view
        if gen != self._store_generation():
            return HANDOFF
        t = entries.get(q.key)
        if t is None or t.remote or (t.forward and self.forwarder is not None):
            return HANDOFF
        worker.hits += 1
        out = data[:2] + self._finish(q, t, False, worker.rng)[2:]  # this datagram's ID
        (worker.ptr_query if q.qtype == 12 else worker.domain_query).measure_since(started)
        return out

    def _store_generation(self) -> tuple[int, int, int]:
        """Changes whenever an answer could: the store's tables replaced (a snapshot restore),
        a catalog write (``store.catalog_index()``, written out: a receive thread calls this
        for every datagram), an ACL change."""
        tables = self.server.store.tables
        get = tables.indexes.get
        return (id(tables.catalog.nodes), max(get("nodes", 0), get("services", 0), get("checks", 0)), self.acl_version())

    def compiled(self, q: Query) -> Compiled:
        """The compiled answer for ``q`` from the cache, building (and caching) it on a miss."""
        if not self.cache_enabled:
            self.misses += 1
            return self._build(q)
        gen = self._store_generation()
        if gen != self._generation:
            # A new dict rather than clear(): the receive threads read ``_view`` (generation and
            # entries as one reference) and must never see this generation with older entries.
            self._cache = {}
            self._cache_bytes = 0
            self._generation = gen
            self._view = (gen, self._cache)
        key = q.key
        t = self._cache.get(key)
        if t is not None:
            self._loop_hits += 1
            return t
        self.misses += 1
        t = self._build(q)
        if t.size > MAX_CACHE_BYTES // 4:
            return t  # a huge answer is rebuilt each time rather than evicting everything else
        while self._cache and (len(self._cache) >= MAX_CACHE or self._cache_bytes + t.size > MAX_CACHE_BYTES):
            self._cache_bytes -= self._cache.pop(next(iter(self._cache))).size  # oldest first
        self._cache[key] = t
        self._cache_bytes += t.size
        return t

    def _build(self, q: Query) -> Compiled:
        qname = dns.name.from_wire(q.qname_lower, 0)[0]
        ans: Answer = self.answerer.build(self.server.store, qname, q.qtype, q.qclass, self.clock.wall())
        return wire.compile_answer(ans, q.qname_lower, self.compress)

    def enable_remote(self, http_get: Any, translate_wan_addrs: bool = False) -> None:
        """Answer other datacenters' names and prepared queries through the HTTP API
        (``http_get(path, raw_query) -> (status, body)``; see ``remote.py``)."""
        from .remote import RemoteLookup

        self.remote = RemoteLookup(self.answerer, http_get, translate_wan_addrs)
        self.answerer.remote_enabled = True
        self._cache.clear()

    async def _remote_answer(self, q: Query, tcp: bool) -> bytes:
        assert self.remote is not None
        qname = dns.name.from_wire(q.qname_lower, 0)[0]
        ans = await self.remote.build(qname, q.qtype, self.clock.wall())
        t = wire.compile_answer(ans, q.qname_lower, self.compress)
        return wire.render(
            t, q, self.shuffle_rng, tcp=tcp, udp_answer_limit=self.udp_answer_limit,
            enable_truncate=self.enable_truncate, recursion_available=self.recursion_available,
        )

    def _cache_covers(self, q: Query) -> bool:
        """Whether a stateless client's cache holds what ``q`` asks about (a service - with
        its Connect proxies for ``<service>.connect`` -, a node of our datacenter or a PTR
        address); asks the cache to follow it when it does not."""
        cache = self.cache
        if cache.generation != self._covered_gen or len(self._covered) > MAX_CACHE:
            self._covered.clear()
            self._covered_gen = cache.generation
        if q.qname_lower in self._covered:
            return True
        try:
            lk = names.parse(dns.name.from_wire(q.qname_lower, 0)[0], q.qtype, self.answerer.domains)
        except dns.exception.DNSException:
            return True
        services = [lk.service.lower()] if lk.kind in ("service", "mesh") and lk.service else []
        nodes = [lk.node.lower()] if lk.kind == "node" and lk.node else []
        # a reverse lookup follows its address (``names.parse`` spells it canonically)
        addresses = [lk.address] if lk.kind == "ptr" and lk.address else []
        if lk.datacenter and lk.datacenter != self.config.datacenter.lower():
            services, nodes = [], []  # another datacenter's names are answered remotely
        ok = bool(cache.want(services, nodes, addresses))
        if ok:
            self._covered.add(q.qname_lower)
        return ok

    async def forward(self, data: bytes, q: Query, tcp: bool) -> bytes:
        """Relay ``q`` to the recursors; SERVFAIL if none answered usefully.  Questions for
        other datacenters and prepared queries are answered by ``remote.py`` instead.  On a
        stateless client, a name its cache does not follow yet is answered once the cache
        holds it (at most ``CACHE_FILL_TIMEOUT`` later)."""
        if self.cache is not None and not self._cache_covers(q):
            await self.cache.wait_covered(CACHE_FILL_TIMEOUT)
            out = self._respond(q, tcp, fill=False)
            if not isinstance(out, Query):
                return out
        if self.remote is not None and self.compiled(q).remote:
            try:
                return await self._remote_answer(q, tcp)
            except Exception:  # noqa: BLE001 - one failed lookup is one SERVFAIL, never the listener
                log.exception("DNS remote lookup failed")
                return self._plain(q, dns.rcode.SERVFAIL)
        assert self.forwarder is not None
        reply = await self.forwarder.forward(data, q)
        if reply is None:
            return self._plain(q, dns.rcode.SERVFAIL)
        if not tcp and len(reply) > wire.max_udp_reply(q):
            return wire.truncated_reply(q, wire.rcode_of(reply), True)
        return reply

    def _plain(self, q: Query, rcode: int) -> bytes:
        empty = Compiled(rcode, False, False, (), False, 0, (), False, 0, ())
        return wire.render(
            empty, q, self.shuffle_rng, tcp=True, udp_answer_limit=self.udp_answer_limit,
            enable_truncate=False, recursion_available=self.recursion_available,
        )

    def servfail(self, data: bytes) -> bytes | None:
        """Best-effort SERVFAIL after an internal error (None if the header is unreadable)."""
        if len(data) < 12 or struct.unpack_from("!H", data, 2)[0] & wire.FLAG_QR:
            return None
        return wire.error_response(data, dns.rcode.SERVFAIL)

    # ------------------------------------------------------------------ transports

    def answer_udp(self, data: bytes, send: Callable[[bytes], None]) -> None:
        """One UDP query on the event loop: ``handle`` (a bug costs this query a SERVFAIL, never
        the listener), then the reply through ``send``, at once or after a forward."""
        try:
            out = self.handle(data, False)
        except Exception:  # a bug must cost one query, never the listener
            log.exception("DNS query failed")
            out = self.servfail(data)
        if isinstance(out, Query):
            self.spawn_forward(data, out, send, False)
        elif out is not None:
            send(out)

    def spawn_forward(self, data: bytes, q: Query, send: Any, tcp: bool) -> None:
        if len(self._tasks) >= MAX_FORWARDS:
            send(self._plain(q, dns.rcode.SERVFAIL))
            return

        async def run() -> None:
            send(await self.forward(data, q, tcp))

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                (n,) = struct.unpack("!H", head)
                data = await asyncio.wait_for(reader.readexactly(n), TCP_READ_TIMEOUT)
                try:
                    out = self.handle(data, True)
                    if isinstance(out, Query):
                        out = await self.forward(data, out, True)
                except Exception:  # a bug must cost one query, never the listener
                    log.exception("DNS query failed")
                    out = self.servfail(data)
                if out is None:
                    break
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError, OSError):
                await asyncio.wait_for(writer.wait_closed(), 2.0)


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, srv: DNSServer) -> None:
        self.srv = srv
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport is not a subclass of asyncio.DatagramTransport, but has sendto.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        transport = self.transport
        if transport is None:
            return
        self.srv.answer_udp(data, lambda b: None if transport.is_closing() else transport.sendto(b, addr))

    def error_received(self, exc: Exception) -> None:
        log.debug("DNS UDP socket error: %r", exc)


class _Handoff:
    """The type of ``HANDOFF``: a receive thread's "the event loop must answer this one"."""


HANDOFF = _Handoff()


def _udp_socket(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    """A bound, blocking UDP socket for a receive thread (closed again if binding fails)."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        # Bursts of queries arrive faster than one thread drains them: a larger receive
        # buffer turns would-be drops into a little queueing.  Best effort.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class Worker:
    """What ``answer_cached`` needs of the thread calling it: its own hit counter, shuffle RNG
    and metric series (nothing here is shared with another thread)."""

    def __init__(self, rng: Rng, labels: Labels) -> None:
        self.rng = rng
        self.hits = 0
        #: Query bytes after the ID -> their parse (``answer_cached``), at most ``PARSE_MEMO``.
        self.parsed: dict[bytes, Query] = {}
        self.domain_query = METRICS.series("dns.domain_query", labels)
        self.ptr_query = METRICS.series("dns.ptr_query", labels)


class _UDPThread(Worker):
    """One UDP socket and the thread that receives on it (see the module docstring).

    The thread owns ``recvfrom`` and answers cache hits itself; everything else goes to the
    event loop through ``call_soon_threadsafe`` (at most ``MAX_HANDOFF`` datagrams queued: past
    that a datagram is dropped, as a full receive buffer would, and the client retries).
    ``handed`` is written only by the thread and ``taken`` only by the loop, so their difference
    is exact without a lock.  ``hits`` and ``rng`` are the thread's own."""

    def __init__(self, srv: DNSServer, sock: socket.socket, loop: asyncio.AbstractEventLoop, rng: Rng) -> None:
        super().__init__(rng, srv._node_label)
        self.srv = srv
        self.sock = sock
        self.loop = loop
        self.handed = 0
        self.taken = 0
        self.dropped = 0
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name=f"muster-dns-udp-{sock.getsockname()[1]}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Wake the thread, wait for it (at most ``THREAD_JOIN_TIMEOUT``), close the socket.
        Bounded whatever the thread is doing: a blocked ``recvfrom`` returns on ``shutdown``
        (Linux) or on the wake-up datagram sent to the socket's own address."""
        self._stopping = True
        sock = self.sock
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # ENOTCONN on an unconnected socket, but it wakes readers
        with contextlib.suppress(OSError):
            addr = sock.getsockname()
            with socket.socket(sock.family, socket.SOCK_DGRAM) as wake:
                wake.sendto(b"", addr)
        self._thread.join(THREAD_JOIN_TIMEOUT)
        if self._thread.is_alive():
            log.warning("DNS receive thread on %s did not stop within %.0f s", sock.getsockname(), THREAD_JOIN_TIMEOUT)
        sock.close()

    def _run(self) -> None:
        recvfrom = self.sock.recvfrom
        sendto = self.sock.sendto
        answer = self.srv.answer_cached
        while not self._stopping:
            try:
                data, addr = recvfrom(65535)
            except OSError as exc:  # nothing here is fatal but a closed socket
                if self._stopping or self.sock.fileno() < 0:
                    break
                log.debug("DNS UDP receive error: %r", exc)
                continue
            if self._stopping:
                break
            try:
                out = answer(data, self)
            except Exception:  # a bug must cost one query, never the listener
                log.exception("DNS query failed")
                out = self.srv.servfail(data)
            if out is HANDOFF:
                self._handoff(data, addr)
            elif isinstance(out, bytes):
                try:
                    sendto(out, addr)
                except OSError as exc:
                    log.debug("DNS UDP send to %s failed: %r", addr, exc)

    def _handoff(self, data: bytes, addr: Any) -> None:
        if self.handed - self.taken >= MAX_HANDOFF:
            self.dropped += 1
            return
        self.handed += 1
        try:
            self.loop.call_soon_threadsafe(self._on_loop, data, addr)
        except RuntimeError:  # the loop is closed: we are shutting down
            self._stopping = True

    def _on_loop(self, data: bytes, addr: Any) -> None:
        """On the event loop: the full path (``handle``: builds and caches), then the reply."""
        self.taken += 1
        if self._stopping:
            return
        self.srv.answer_udp(data, lambda b: self.send(b, addr))

    def send(self, out: bytes, addr: Any) -> None:
        """Send from the loop: never blocks it (MSG_DONTWAIT; a full send buffer drops the
        reply as UDP may), and a closed socket after ``stop`` is ignored."""
        if self._stopping:
            return
        try:
            self.sock.sendto(out, socket.MSG_DONTWAIT, addr)
        except OSError as exc:
            log.debug("DNS UDP send to %s failed: %r", addr, exc)
