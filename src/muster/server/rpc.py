"""Server RPC on port 8300: length-prefixed msgpack frames, multiplexed on one TCP connection.

Wire format.  A connection starts with one ``HELLO`` frame from the dialer carrying its
cluster id and node id; the acceptor answers ``HELLO`` with its own, or closes the connection
when the cluster ids differ (both set): a server never talks Raft to a peer from another
cluster.  Every frame is a 4-byte big-endian length, then a msgpack array:

    [RAFT, 0, "", payload]            one-way: an encoded Raft message
    [REQ, seq, method, payload]       a request; the answer carries the same seq
    [REP, seq, error, payload]        a reply; error is "" or "<status>\\x00<text>"

Requests are multiplexed by ``seq`` (any number in flight on one connection).  Frames larger than
``MAX_FRAME`` are refused: a peer cannot make us allocate without bound.

Shutdown.  Each accepted connection is served by a task that asyncio's streams create and own;
Python 3.11 reports such a task ending *cancelled* as a traceback ("Exception in callback
...connection_made.<locals>.callback": its done-callback asks a cancelled task for its exception).
So ``close`` never leaves them to the loop's final cancel-all: it stops listening, closes every
accepted connection (its reader sees end of stream and the task returns normally) and waits,
bounded, for those tasks; a task cancelled all the same ends quietly (``_accept``).

Addresses.  ``RPCPool`` keys connections by *node id*; on every dial attempt it calls
``resolve(node_id)`` again for the current candidate addresses (gossip first, then the stable
DNS name, then the stored configuration), so a peer that comes back on a new IP is found again
without any special case.

Source address.  ``source_ip`` (Consul's ``RPCSrcAddr``: the agent's bind address when it is not
a wildcard) is the local address of every outgoing connection, with an ephemeral port: the
peer sees the dialing agent's own address, so the acceptor's per-IP connection cap
(``max_conns_per_client``) counts each agent on its own, also when several agents share a host
(on loopback the kernel would otherwise pick 127.0.0.1 for all of them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from ..errors import MusterError
from ..telemetry.metrics import METRICS

log = logging.getLogger("muster.rpc")

HELLO, RAFT, REQ, REP = 0, 1, 2, 3
MAX_FRAME = 64 * 1024 * 1024
_LEN = struct.Struct(">I")
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()

Handler = Callable[[Any], Awaitable[Any]]
RaftHandler = Callable[[bytes], None]
Resolver = Callable[[str], list[str]]


class RPCError(MusterError):
    """The remote side failed the request (its status and text are preserved)."""


class ConnectionLost(MusterError):
    """The connection failed.  ``sent`` tells whether the request may have reached the peer:
    only a request that was never sent may be retried blindly (a write is not idempotent)."""

    def __init__(self, what: str, sent: bool = False) -> None:
        super().__init__(f"rpc error: {what}")
        self.sent = sent


def encode_frame(obj: Any) -> bytes:
    body = _enc.encode(obj)
    return _LEN.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> Any:
    head = await reader.readexactly(4)
    (n,) = _LEN.unpack(head)
    if n > MAX_FRAME:
        raise ValueError(f"frame of {n} bytes exceeds the {MAX_FRAME} byte limit")
    return _dec.decode(await reader.readexactly(n))


class Conn:
    """One multiplexed connection (either side)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer_id: str) -> None:
        self.reader = reader
        self.writer = writer
        self.peer_id = peer_id
        self._seq = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.closed = False

    def send(self, frame: Any) -> None:
        if self.closed:
            raise ConnectionLost("connection closed")
        self.writer.write(encode_frame(frame))

    async def call(self, method: str, payload: Any, timeout: float) -> Any:
        self._seq += 1
        seq = self._seq
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[seq] = fut
        try:
            self.send([REQ, seq, method, payload])
            try:
                return await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                raise ConnectionLost(f"no answer to {method} within {timeout:.0f}s", sent=True) from None
        finally:
            self._pending.pop(seq, None)

    def resolve(self, seq: int, error: str, payload: Any) -> None:
        fut = self._pending.get(seq)
        if fut is None or fut.done():
            return
        if error:
            status, _, text = error.partition("\x00")
            fut.set_exception(RPCError(text, int(status) if status.isdigit() else 500))
        else:
            fut.set_result(payload)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionLost("connection lost while waiting for the answer", sent=True))
        self._pending.clear()
        with contextlib.suppress(Exception):
            self.writer.close()


class RPCNode:
    """Both sides of the server RPC for one server: the listener and the outgoing pool."""

    def __init__(
        self,
        node_id: str,
        cluster_id: Callable[[], str],
        resolve: Resolver,
        info: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.node_id = node_id
        #: Our advertised identity ({"addr": "ip:port", "name": node name}) sent in HELLO.
        self.info = info or (lambda: {})
        #: Called with (node_id, info) whenever a peer introduces itself.
        self.on_peer: Callable[[str, dict[str, Any]], None] | None = None
        self.cluster_id = cluster_id
        self.resolve = resolve
        self.handlers: dict[str, Handler] = {}
        self.on_raft: RaftHandler | None = None
        self._server: asyncio.base_events.Server | None = None
        self._out: dict[str, Conn] = {}
        self._dialing: dict[str, asyncio.Task[Conn | None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.dial_timeout = 1.0
        #: Local IP of outgoing connections (module doc "Source address"); None: the kernel's pick.
        self.source_ip: str | None = None
        self._mismatch_logged: dict[str, float] = {}
        #: TLS for server RPC (``configure_tls``): contexts for accepting and for dialing, and
        #: the name a server certificate must carry when ``verify_server_hostname`` is on.
        self.server_ssl: ssl.SSLContext | None = None
        self.client_ssl: ssl.SSLContext | None = None
        self.server_name: str | None = None
        #: ``limits.rpc_max_conns_per_client`` (Consul's default 100; 0 = no cap): accepted
        #: connections per peer IP beyond it are closed at once, before any frame is read.
        self.max_conns_per_client = 100
        self._conns_by_ip: dict[str, int] = {}
        #: The tasks serving accepted connections, with each one's writer (``close`` ends both).
        self._accepting: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    def configure_tls(
        self,
        cert_file: str,
        key_file: str,
        ca_file: str | None,
        verify_incoming: bool,
        verify_outgoing: bool,
        verify_server_hostname: str | None,
    ) -> None:
        """Speak RPC over TLS.  ``verify_incoming``: peers must present a certificate from our CA;
        ``verify_outgoing``: the server we dial must; ``verify_server_hostname``: and it must be
        issued for that name (``server.<dc>.<domain>``), so a client certificate cannot pose as
        a server."""
        srv = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca_file)
        srv.load_cert_chain(cert_file, key_file)
        srv.verify_mode = ssl.CERT_REQUIRED if verify_incoming else ssl.CERT_OPTIONAL if ca_file else ssl.CERT_NONE
        cli = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
        cli.load_cert_chain(cert_file, key_file)
        cli.check_hostname = bool(verify_server_hostname)
        cli.verify_mode = ssl.CERT_REQUIRED if (verify_outgoing or verify_server_hostname) else ssl.CERT_NONE
        self.server_ssl, self.client_ssl, self.server_name = srv, cli, verify_server_hostname

    def _warn_mismatch(self, text: str) -> None:
        """Log a cluster-id mismatch clearly, but at most once per 30 s per message."""
        import time

        now = time.monotonic()
        if now - self._mismatch_logged.get(text, -1e9) >= 30:
            self._mismatch_logged[text] = now
            log.error("%s", text)

    # ------------------------------------------------------------------ listener

    async def listen(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._accept, host, port, reuse_address=True, ssl=self.server_ssl)
        return int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        n = self._conns_by_ip.get(ip, 0)
        if self.max_conns_per_client > 0 and n >= self.max_conns_per_client:
            log.warning("rejecting RPC connection from %s: %d connections open (rpc_max_conns_per_client)", ip, n)
            with contextlib.suppress(Exception):
                writer.close()
            return
        self._conns_by_ip[ip] = n + 1
        task = asyncio.current_task()
        if task is not None:
            self._accepting[task] = writer
        try:
            await self._accept_counted(reader, writer)
        except asyncio.CancelledError:
            # Only the loop's teardown cancels this task (nobody else holds it): end normally,
            # or 3.11's streams callback logs the cancellation as a traceback.
            with contextlib.suppress(Exception):
                writer.close()
        finally:
            if task is not None:
                self._accepting.pop(task, None)
            left = self._conns_by_ip.get(ip, 1) - 1
            if left > 0:
                self._conns_by_ip[ip] = left
            else:
                self._conns_by_ip.pop(ip, None)

    async def _accept_counted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn: Conn | None = None
        try:
            hello = await asyncio.wait_for(read_frame(reader), 5)
            if not (isinstance(hello, list) and len(hello) == 5 and hello[0] == HELLO):
                return
            theirs, peer = str(hello[2]), str(hello[3])
            ours = self.cluster_id()
            if ours and theirs and ours != theirs:
                self._warn_mismatch(f"refusing RPC from server {peer}: it belongs to cluster {theirs}, this server to cluster {ours}")
                writer.write(encode_frame([HELLO, 0, ours, self.node_id, {"error": "cluster id mismatch"}]))
                await writer.drain()
                return
            if (self.on_peer is not None and isinstance(hello[4], dict)
                    and not hello[4].get("wan") and not hello[4].get("client")):
                # A server of another datacenter (``wan`` in its HELLO) forwarding a request, or
                # a client agent (``client``, ``server/remote.py``), is not a peer of ours: it
                # stays out of the Raft address book.
                self.on_peer(peer, hello[4])
            writer.write(encode_frame([HELLO, 0, ours, self.node_id, self.info()]))
            conn = Conn(reader, writer, peer)
            await self._serve(conn)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError, msgspec.DecodeError):
            pass
        finally:
            if conn is not None:
                conn.close()
            else:
                with contextlib.suppress(Exception):
                    writer.close()

    async def _serve(self, conn: Conn) -> None:
        while True:
            frame = await read_frame(conn.reader)
            kind = frame[0]
            if kind == RAFT:
                if self.on_raft is not None:
                    self.on_raft(frame[3])
            elif kind == REQ:
                task = asyncio.create_task(self._handle(conn, frame[1], frame[2], frame[3]))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif kind == REP:
                conn.resolve(frame[1], frame[2], frame[3])

    def serve(self, handlers: dict[str, Handler], on_raft: RaftHandler | None) -> None:
        """Install every request handler and the Raft frame sink at once (before ``listen``);
        ``server.operator.serve_rpc`` is the one place that builds them."""
        self.handlers = dict(handlers)
        self.on_raft = on_raft

    async def _handle(self, conn: Conn, seq: int, method: str, payload: Any) -> None:
        handler = self.handlers.get(method)
        METRICS.incr("rpc.request")
        try:
            if handler is None:
                raise MusterError(f"rpc: unknown method {method!r}")
            result = await handler(payload)
            frame = [REP, seq, "", result]
        except MusterError as err:
            METRICS.incr("rpc.request_error")
            frame = [REP, seq, f"{err.status}\x00{err.message}", None]
        except Exception as err:  # noqa: BLE001 - a handler bug must not kill the connection
            log.exception("rpc handler %s failed", method)
            frame = [REP, seq, f"500\x00{err}", None]
        with contextlib.suppress(ConnectionLost, ConnectionError):
            conn.send(frame)

    # ------------------------------------------------------------------ outgoing

    async def _dial(self, peer_id: str, addrs: list[str] | None = None) -> Conn | None:
        """Connect to ``peer_id`` trying ``addrs`` (default: resolve it now); ``*`` accepts anyone."""
        for addr in addrs if addrs is not None else self.resolve(peer_id):
            host, _, port = addr.rpartition(":")
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        host.strip("[]"),
                        int(port),
                        ssl=self.client_ssl,
                        server_hostname=(self.server_name or host.strip("[]")) if self.client_ssl else None,
                        local_addr=(self.source_ip, 0) if self.source_ip else None,
                    ),
                    self.dial_timeout,
                )
            except (TimeoutError, OSError, ValueError):
                continue
            try:
                writer.write(encode_frame([HELLO, 0, self.cluster_id(), self.node_id, self.info()]))
                hello = await asyncio.wait_for(read_frame(reader), self.dial_timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, msgspec.DecodeError):
                writer.close()
                continue
            if not (isinstance(hello, list) and len(hello) == 5 and hello[0] == HELLO):
                writer.close()
                continue
            if isinstance(hello[4], dict) and hello[4].get("error"):
                self._warn_mismatch(
                    f"the server at {addr} belongs to cluster {hello[2]}, but this server's data dir belongs to "
                    f"cluster {self.cluster_id()}: refusing to talk to it (was this volume copied from another cluster?)"
                )
                writer.close()
                continue
            if self.on_peer is not None and isinstance(hello[4], dict):
                self.on_peer(str(hello[3]), hello[4])
            if peer_id != "*" and str(hello[3]) != peer_id:
                # Someone else now owns that address (a pod's old IP reused): not our peer.
                writer.close()
                continue
            if peer_id == "*":
                peer_id = str(hello[3])
            conn = Conn(reader, writer, peer_id)
            task = asyncio.create_task(self._client_loop(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return conn
        return None

    async def _client_loop(self, conn: Conn) -> None:
        try:
            await self._serve(conn)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, msgspec.DecodeError):
            pass
        finally:
            conn.close()
            if self._out.get(conn.peer_id) is conn:
                del self._out[conn.peer_id]

    async def probe(self, addr: str) -> tuple[str, Any] | None:
        """Dial ``addr`` and call ``status`` on whoever answers: (node_id, status) or None."""
        conn = await self._dial_addr(addr)
        if conn is None:
            return None
        try:
            return conn.peer_id, await conn.call("status", None, self.dial_timeout * 2)
        except MusterError:
            return None
        finally:
            conn.close()

    async def _dial_addr(self, addr: str) -> Conn | None:
        return await self._dial("*", [addr])

    async def connection(self, peer_id: str) -> Conn | None:
        conn = self._out.get(peer_id)
        if conn is not None and not conn.closed:
            return conn
        task = self._dialing.get(peer_id)
        if task is None:
            task = asyncio.create_task(self._dial(peer_id))
            self._dialing[peer_id] = task
        try:
            conn = await task
        finally:
            self._dialing.pop(peer_id, None)
        if conn is not None:
            self._out[peer_id] = conn
        return conn

    def send_raft(self, peer_id: str, data: bytes) -> None:
        """Fire and forget: Raft retransmits whatever is lost."""
        conn = self._out.get(peer_id)
        if conn is not None and not conn.closed:
            with contextlib.suppress(ConnectionLost):
                conn.send([RAFT, 0, "", data])
            return
        if peer_id not in self._dialing:
            task = asyncio.create_task(self._dial_and_send(peer_id, data))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _dial_and_send(self, peer_id: str, data: bytes) -> None:
        conn = await self.connection(peer_id)
        if conn is not None:
            with contextlib.suppress(ConnectionLost):
                conn.send([RAFT, 0, "", data])

    async def call(self, peer_id: str, method: str, payload: Any, timeout: float = 10.0) -> Any:
        conn = await self.connection(peer_id)
        if conn is None:
            raise ConnectionLost(f"no route to server {peer_id}")
        return await conn.call(method, payload, timeout)

    def drop(self, peer_id: str) -> None:
        conn = self._out.pop(peer_id, None)
        if conn is not None:
            conn.close()

    async def close(self, grace: float = 2.0) -> None:
        """Stop listening, close every connection both ways, and wait (up to ``grace``
        seconds) for the tasks serving accepted connections to return (see the module doc)."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._out.values()):
            conn.close()
        self._out.clear()
        for writer in list(self._accepting.values()):
            with contextlib.suppress(Exception):
                writer.close()  # the serving task's reader sees end of stream and returns
        if self._accepting:
            await asyncio.wait(set(self._accepting), timeout=grace)
        for t in list(self._tasks) + list(self._dialing.values()):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
