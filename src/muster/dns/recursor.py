"""Forwarding out-of-zone questions to the configured ``recursors`` (docs/compat/dns.md#out-of-zone-questions).

Consul semantics: recursors are tried in order (``recursor_strategy = "random"`` shuffles the
order per query), each with ``recursor_timeout``; the first reply whose rcode is NOERROR or
NXDOMAIN wins and is relayed unchanged except for its ID; if every recursor fails (timeout,
network error, SERVFAIL/REFUSED/garbage) the client gets SERVFAIL.  Without recursors nothing is
forwarded at all (the server answers REFUSED), so an agent is never an open resolver by accident.

Each upstream exchange uses a fresh random query ID and accepts only a reply with that ID and
the same question (case-insensitively), so spoofed or stale datagrams are ignored.  A reply
with TC set is retried over TCP to the same upstream.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import struct
from collections.abc import Sequence

from ..runtime import Rng
from .wire import Query

log = logging.getLogger("muster.dns")

RCODE_NOERROR = 0
RCODE_NXDOMAIN = 3
_TC = 0x0200
_QR = 0x8000


def parse_recursor(spec: str) -> tuple[str, int]:
    """``"1.2.3.4"``, ``"1.2.3.4:5353"``, ``"::1"``, ``"[::1]:5353"`` -> (host, port)."""
    s = spec.strip()
    if s.startswith("["):
        host, _, rest = s[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif s.count(":") == 1:
        host, _, p = s.partition(":")
        port = int(p)
    else:
        host, port = s, 53
    ipaddress.ip_address(host)  # raises ValueError: recursors must be IP addresses
    if not 0 < port < 65536:
        raise ValueError(f"recursor port out of range: {spec!r}")
    return host, port


class _OneReply(asyncio.DatagramProtocol):
    def __init__(self, want_id: int, question: bytes) -> None:
        self.want_id = want_id
        self.question = question.lower()
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if self.reply.done() or not _matches(data, self.want_id, self.question):
            return
        self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


def _matches(data: bytes, want_id: int, question_lower: bytes) -> bool:
    if len(data) < 12 + len(question_lower):
        return False
    rid, flags = struct.unpack_from("!HH", data)
    return rid == want_id and bool(flags & _QR) and data[12 : 12 + len(question_lower)].lower() == question_lower


class Forwarder:
    def __init__(self, recursors: Sequence[str], timeout: float, strategy: str, rng: Rng) -> None:
        self.upstreams: list[tuple[str, int]] = []
        for r in recursors:
            try:
                self.upstreams.append(parse_recursor(r))
            except ValueError as err:
                raise ValueError(f"invalid recursor {r!r} (want IP or IP:port): {err}") from None
        self.timeout = timeout if timeout > 0 else 2.0
        self.random = strategy == "random"
        self.rng = rng

    async def forward(self, data: bytes, q: Query) -> bytes | None:
        """The first acceptable upstream reply, with the client's ID; None if all failed."""
        order = list(self.upstreams)
        if self.random:
            self.rng.shuffle(order)
        for host, port in order:
            nid = self.rng.randrange(0x10000)
            out = struct.pack("!H", nid) + data[2:]
            try:
                reply = await self._udp(host, port, out, nid, q.question)
                if struct.unpack_from("!H", reply, 2)[0] & _TC:
                    reply = await self._tcp(host, port, out, nid, q.question)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as err:
                log.debug("recursor %s:%d failed: %r", host, port, err)
                continue
            rcode = struct.unpack_from("!H", reply, 2)[0] & 0xF
            if rcode in (RCODE_NOERROR, RCODE_NXDOMAIN):
                return struct.pack("!H", q.id) + reply[2:]
            log.debug("recursor %s:%d answered rcode %d", host, port, rcode)
        return None

    async def _udp(self, host: str, port: int, out: bytes, nid: int, question: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _OneReply(nid, question), remote_addr=(host, port)
        )
        try:
            transport.sendto(out)
            return await asyncio.wait_for(proto.reply, self.timeout)
        finally:
            transport.close()

    async def _tcp(self, host: str, port: int, out: bytes, nid: int, question: bytes) -> bytes:
        async def exchange() -> bytes:
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
                n = struct.unpack("!H", await reader.readexactly(2))[0]
                reply = await reader.readexactly(n)
            finally:
                writer.close()
            if not _matches(reply, nid, question.lower()):
                raise ValueError("recursor TCP reply does not match the query")
            return reply

        return await asyncio.wait_for(exchange(), self.timeout)
