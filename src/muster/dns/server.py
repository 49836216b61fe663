"""The DNS listener: UDP and TCP on ``ports.dns`` for each DNS address, with the answer cache.

Per query (``DNSServer.handle``):

1. ``wire.parse_query`` reads the common one-question shape without dnspython; anything else
   is parsed by dnspython, which decides FORMERR.  Fewer than 12 bytes, or a packet with QR set
   (a response - answering it could start a loop), is dropped; an unparsable packet with a
   readable header gets FORMERR; opcodes other than QUERY get NOTIMP; EDNS versions other than 0
   get BADVERS.  Nothing a client sends can stop the listener: the protocol handlers log and
   drop (or SERVFAIL) on any unexpected error.
2. The cache is looked up by (lowercase question name, type, class).  It is cleared whenever
   the store's catalog index (or the store's tables, after a snapshot restore) changes, so an
   entry is always the answer the store would give now.  An entry is the *compiled* record set
   (see ``wire.py``): shuffling, truncation for the transport and the OPT record are applied on
   the way out, so cached answers still come back in a fresh random order each time.  (One
   visible effect: the SOA serial - "now" in Consul - is the time the entry was built, some
   time after the last catalog change.)  Measured (CPU time, 100 services x 3 instances): a
   hit costs ~7-8 us of Python in ``handle``, a miss ~85 us (A) / ~120 us (SRV); over real
   sockets ``bench/dns_bench.py`` gives ~61k (A) / ~46k (SRV) answers per server CPU-second
   with the cache against ~9.4k / ~5.9k without.
3. Questions outside our zones go to the recursors (a task per query, bounded by
   ``MAX_FORWARDS`` in flight) or are REFUSED when there are none.

Reads use the local store directly (stale reads, ``allow_stale``, the default): a DNS answer
never waits on a leader or on the log.  On a stateless client agent that store is the catalog
cache (``server/remote.py``), answered from while it is no older than ``max_stale``.  With ``allow_stale = false`` a server that knows no
leader answers SERVFAIL instead.  The cache is bounded in entries and bytes (``MAX_CACHE``,
``MAX_CACHE_BYTES``, oldest entry evicted first), so random names cannot grow it without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
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
    ) -> None:
        self.server = server
        self.config = config
        self.rng = rng or Rng()
        self._node_label: Labels = (("node", server.ident.node_name),)
        self.clock = clock or RealClock()
        self.cache_enabled = cache
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
        self._transports: list[asyncio.DatagramTransport] = []
        self._tcp_servers: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.addresses: list[tuple[str, int]] = []
        self.hits = 0
        self.misses = 0
        #: ACL table version (answers depend on the DNS token's rights); 0 when ACLs are off.
        self.acl_version: Callable[[], int] = lambda: 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self, hosts: list[str], port: int) -> None:
        """Bind UDP and TCP on ``port`` (0 = any free port, the same for both) on every host."""
        loop = asyncio.get_running_loop()
        for host in hosts:
            h = host.strip("[]")
            family = socket.AF_INET6 if ":" in h else socket.AF_INET
            # With port 0 the UDP port is picked first; its TCP twin may be taken: retry (bounded).
            for attempt in range(1 if port else 20):
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _UDPProtocol(self), local_addr=(h, port), family=family
                )
                bound = transport.get_extra_info("sockname")[1]
                try:
                    srv = await asyncio.start_server(self._tcp_client, h, bound, family=family, reuse_address=True)
                except OSError:
                    transport.close()
                    if port or attempt == 19:
                        raise
                    continue
                break
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Bursts of queries arrive faster than one loop iteration drains them: a larger
                # receive buffer turns would-be drops into a little queueing.  Best effort.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
            self._transports.append(transport)
            self._tcp_servers.append(srv)
            self.addresses.append((h, bound))
            log.info("DNS listening on %s:%d (udp, tcp)", h, bound)

    async def stop(self) -> None:
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
        if not self.allow_stale and not t.forward and not self.server.known_leader():
            # dns_config.allow_stale = false: without a leader no read is allowed (Consul: SERVFAIL).
            return self._plain(q, dns.rcode.SERVFAIL)
        if self.staleness is not None and not t.forward and self.staleness() > self.max_stale:
            # A client's cache no server confirmed within dns_config.max_stale (Consul: the
            # stale answer is refused and the leader is asked, which fails too): SERVFAIL.
            return self._plain(q, dns.rcode.SERVFAIL)
        return wire.render(
            t, q, self.shuffle_rng, tcp=tcp, udp_answer_limit=self.udp_answer_limit,
            enable_truncate=self.enable_truncate, recursion_available=self.recursion_available,
        )

    def compiled(self, q: Query) -> Compiled:
        """The compiled answer for ``q`` from the cache, building (and caching) it on a miss."""
        store = self.server.store
        if not self.cache_enabled:
            self.misses += 1
            return self._build(q)
        gen = (id(store.nodes), store.catalog_index(), self.acl_version())
        if gen != self._generation:
            self._cache.clear()
            self._cache_bytes = 0
            self._generation = gen
        key = q.key
        t = self._cache.get(key)
        if t is not None:
            self.hits += 1
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
        try:
            out = self.srv.handle(data, False)
        except Exception:  # a bug must cost one query, never the listener
            log.exception("DNS query failed")
            out = self.srv.servfail(data)
        if isinstance(out, Query):
            self.srv.spawn_forward(data, out, lambda b: None if transport.is_closing() else transport.sendto(b, addr), False)
        elif out is not None:
            transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("DNS UDP socket error: %r", exc)
