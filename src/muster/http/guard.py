"""Connection guards for the HTTP listeners: a per-client connection cap and a header deadline.

* ``limits.http_max_conns_per_client`` (Consul's default 200): one client IP may hold at most
  that many open connections; the next one is answered ``429 Too Many Requests`` and closed at
  once (Consul's go-connlimit behaviour), so one client cannot exhaust the agent's file
  descriptors (the CVE-2020-7219 class).  0 disables the cap.
* A client that starts a request must finish its headers within ``header_timeout`` seconds or
  the connection is closed (slowloris).  Idle keep-alive connections are uvicorn's
  ``timeout_keep_alive``.
* A request's header block (request line and headers) may hold at most ``MAX_HEADER_BYTES``
  (Consul's HTTP server keeps Go's default of 1 MiB, plus the 4 KiB of slack Go's reader
  allows); beyond that the answer is ``431 Request Header Fields Too Large`` and the connection
  is closed, so one request cannot make the agent buffer headers without bound.
* A request the parser rejects (bad request line, header syntax, chunk framing, conflicting
  lengths) is answered with exactly the bytes Consul's Go server writes: ``400 Bad Request``
  as status and body, ``Connection: close``.

Both live in a subclass of uvicorn's httptools protocol: the checks run when the connection is
accepted and when a request's first byte and last header arrive, before any ASGI work.

The same subclass sends a response's header block and its body in one write
(``CoalescingTransport``): uvicorn writes them with two ``transport.write`` calls, i.e. two
``send`` system calls and, on loopback, two trips through the receiving TCP stack.  The app
(``App._send``) finds the connection's ``CoalescingTransport`` in the ASGI scope under
``SCOPE_KEY``, calls ``hold()`` before the start message and ``release()`` after the body, so
the bytes, their order and the moment the response is complete are unchanged.

The header deadline and uvicorn's keep-alive timeout cost no timer per request (a
``call_later`` plus its cancel was ~1.5 us on every keep-alive request, and uvicorn arms one per
response for the keep-alive wait): the protocol notes when the open phase ends (``_deadline``:
a header block, from the accept or a request's first byte until its headers are complete; or
the keep-alive wait, from a response's end until the next byte arrives) and clears it when the
phase closes.  One timer per connection runs only while a phase is open; it fires at most
``min(header_timeout, timeout_keep_alive)`` after it was armed (no phase is shorter), closes
the connection if the open phase's deadline has passed and otherwise re-arms itself for that
deadline or one step, whichever is sooner.  Invariant: while a phase is open, a timer is
pending at or before its deadline.  The parser is fed from one ``data_received`` override
that also ends the keep-alive wait and counts the header block's bytes.

A request starts without a task: uvicorn creates an ``asyncio.Task`` per request, scheduled
for the next turn of the loop.  Here a request whose headers complete while a chunk is parsed
is run, once the whole chunk is parsed (its body may be in it), by stepping its coroutine
straight from ``data_received``; most requests of a ``-dev`` agent (a KV GET or PUT) are
answered in that first step and never need a task.  A request that waits continues in a task
(``_Rest``: the coroutine's remaining steps, every future it waits on passed up and every
value or cancellation passed down), tracked by uvicorn's server like its own.  Until its
first wait, a request has no current task (``asyncio.current_task()`` is None): code that
needs its task (``App``'s hang-up watchers) yields to the loop once first (``app._own_task``);
``asyncio.timeout`` would need the same.  The future a first step waits on leaves that step
with its "blocking" mark cleared, as a task's step clears it, and ``_Rest`` sets it again when
its task takes the future: otherwise a second request awaiting the same future in the same
turn (a batched ``?consistent`` round) fails.  Fed from inside a task (tests), a request gets its
own task as in uvicorn.  This is the ``eager_start`` of Python 3.12's tasks, done by hand for
3.11.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Coroutine, Generator
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("muster.http")

TOO_MANY_BODY = b"Your IP is issuing too many concurrent connections, please rate limit your calls\n"
TOO_MANY = (
    b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\n"
    + b"Content-Length: " + str(len(TOO_MANY_BODY)).encode() + b"\r\nConnection: close\r\n\r\n" + TOO_MANY_BODY
)
DEFAULT_HEADER_TIMEOUT = 10.0
MAX_HEADER_BYTES = (1 << 20) + 4096
_ERROR_HEADERS = b"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
BAD_REQUEST = b"HTTP/1.1 400 Bad Request" + _ERROR_HEADERS + b"400 Bad Request"
HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large" + _ERROR_HEADERS + b"431 Request Header Fields Too Large"
)


#: The ASGI scope key under which the guarded protocol hands the app the connection's
#: ``CoalescingTransport`` (an ASGI extension key: other servers and test clients leave it out).
SCOPE_KEY = "muster.transport"


class CoalescingTransport(asyncio.Transport):
    """A connection's transport that can keep one write back and send it with the next.

    ``hold()`` makes the next ``write`` wait; the write after it sends both in one call.
    ``release()`` sends whatever is still held (the caller's promise that nothing is held
    after its response is sent); ``close``, ``write_eof`` and ``writelines`` send it first,
    ``abort`` drops it with the rest of the unsent data.  Invariant: bytes reach the real
    transport in the order they were written, and a held write is followed by either another
    write or a ``release()`` in the same synchronous step of the app (``App._send``), so
    nothing waits on a later event.  Every other method is the real transport's.
    """

    __slots__ = ("_t", "_holding", "_held")

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._t = transport
        self._holding = False
        self._held: bytes | None = None

    def hold(self) -> None:
        self._holding = True

    def release(self) -> None:
        self._holding = False
        held = self._held
        if held is not None:
            self._held = None
            self._t.write(held)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._t.write(held + data)
        elif self._holding:
            self._holding = False
            self._held = bytes(data)
        else:
            self._t.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        self.release()
        self._t.write_eof()

    def can_write_eof(self) -> bool:
        return self._t.can_write_eof()

    def close(self) -> None:
        self.release()
        self._t.close()

    def abort(self) -> None:
        self._holding = False
        self._held = None
        self._t.abort()

    def is_closing(self) -> bool:
        return self._t.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._t.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._t.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._t.get_protocol()

    def is_reading(self) -> bool:
        return self._t.is_reading()

    def pause_reading(self) -> None:
        self._t.pause_reading()

    def resume_reading(self) -> None:
        self._t.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._t.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._t.get_write_buffer_size() + (len(self._held) if self._held is not None else 0)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._t.get_write_buffer_limits()


class _Rest:
    """The rest of a coroutine that already ran its first step: awaiting this passes every
    future it waits on up to the task that awaits it, and every value or exception (a
    cancellation) back down, as ``await coro`` would have from the start."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, None], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, None]:
        coro = self._coro
        pending = self._first
        self._first = None
        if getattr(pending, "_asyncio_future_blocking", None) is False:
            # Cleared by the eager step (see ``_run_eagerly``); set again so that the task
            # awaiting us treats the future as an await (wake me when done), not a bare yield.
            pending._asyncio_future_blocking = True
        while True:
            try:
                value = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - handed to the coroutine, as await does
                try:
                    pending = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    pending = coro.send(value)
                except StopIteration:
                    return


async def _finish(rest: _Rest) -> None:
    await rest


class HeaderBlockTooLarge(Exception):
    """Raised inside the parser's headers-complete callback to stop an oversized request."""


class ConnLimits:
    """Open connections per client IP (shared by every listener of one agent)."""

    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self.counts: dict[str, int] = {}

    def acquire(self, ip: str) -> bool:
        n = self.counts.get(ip, 0)
        if self.per_client > 0 and n >= self.per_client:
            return False
        self.counts[ip] = n + 1
        return True

    def release(self, ip: str) -> None:
        n = self.counts.get(ip, 0) - 1
        if n > 0:
            self.counts[ip] = n
        else:
            self.counts.pop(ip, None)


def guarded_protocol(
    limits: ConnLimits, header_timeout: float = DEFAULT_HEADER_TIMEOUT, max_header_bytes: int = MAX_HEADER_BYTES
) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with the guards (passed as ``uvicorn.Config(http=...)``).

    The header block is measured by counting received bytes, with no Python callback per
    header line (``on_url``/``on_header`` are uvicorn's own): ``_header_bytes`` counts the raw
    bytes of the chunks received since the request began while its block is still open (-1
    outside a header block), so a block that never ends is cut off once it passes the cap.
    When the block ends inside a chunk, ``_header_bytes`` plus that chunk's length bounds the
    block from above; only when that bound passes the cap (a block spanning about 1 MiB of
    reads) is the exact size summed from the request target and the header lines the parser
    handed over (``_block_size``), before the request is dispatched.  uvicorn strips trailing
    blanks from header values, so that sum may miss them; a block is still never buffered past
    the cap plus one read.
    """

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _guard_ip: str | None = None
        #: the connection's one deadline timer (module docstring); None when none is pending
        _timer: asyncio.TimerHandle | None = None
        #: loop time the open phase (header block or keep-alive idle) ends; None when none is open
        _deadline: float | None = None
        #: the open phase is the keep-alive wait between requests (else a header block)
        _idle: bool = False
        #: the timer's period: no phase is shorter, so a pending timer is never late
        _step: float = 0.0
        _header_bytes: int = -1
        #: length of the chunk being parsed (read by on_headers_complete)
        _chunk_len: int = 0
        #: inside ``data_received``'s feed: a request whose headers complete waits here
        _feeding: bool = False
        _ready: tuple[Any, Any] | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(CoalescingTransport(transport))
            ip = self.client[0] if self.client else ""
            if not limits.acquire(ip):
                transport.write(TOO_MANY)
                transport.close()
                return
            self._guard_ip = ip
            self._step = min(header_timeout, float(self.timeout_keep_alive))
            self._open(header_timeout, False)

        def _open(self, timeout: float, idle: bool) -> None:
            now = self.loop.time()
            self._deadline = now + timeout
            self._idle = idle
            if self._timer is None:
                self._timer = self.loop.call_at(now + self._step, self._check_deadline)

        def _check_deadline(self) -> None:
            self._timer = None
            deadline = self._deadline
            if deadline is None:
                return  # no phase open: the next one arms a timer again
            now = self.loop.time()
            if now < deadline - 0.005:  # a later phase: wait, but never past a step (a shorter phase may open)
                self._timer = self.loop.call_at(min(deadline, now + self._step), self._check_deadline)
                return
            self._deadline = None
            if self._idle:  # uvicorn's keep-alive timeout
                if not self.transport.is_closing():
                    self.transport.close()
                return
            log.debug("closing HTTP connection from %s: headers not complete within %.0fs", self._guard_ip, header_timeout)
            self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self._idle:  # the keep-alive wait ends with any byte (uvicorn's rule)
                self._idle = False
                self._deadline = None
            n = self._chunk_len = len(data)
            self._feeding = True
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
                return
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
            finally:
                self._feeding = False
                ready = self._ready
                if ready is not None:
                    self._ready = None
                    self._run_eagerly(*ready)
            if self._header_bytes < 0 or self.transport.is_closing():
                return
            self._header_bytes += n
            if self._header_bytes > max_header_bytes:
                self._too_large()

        def _too_large(self) -> None:
            self._header_bytes = -1
            self.transport.write(HEADERS_TOO_LARGE)
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            if not self.transport.is_closing():  # not after a 431 (see on_headers_complete)
                self.transport.write(BAD_REQUEST)
                self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.scope[SCOPE_KEY] = self.transport  # type: ignore[literal-required]
            self._header_bytes = 0
            self._open(header_timeout, False)

        def _block_size(self) -> int:
            """The request target plus every ``name: value\\r\\n`` line of this block."""
            return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

        def on_headers_complete(self) -> None:
            if self._header_bytes + self._chunk_len > max_header_bytes and self._block_size() > max_header_bytes:
                self._too_large()
                # Abort the parser so that the request is never dispatched; uvicorn's handler
                # for parser errors then finds the transport closing and writes nothing more.
                raise HeaderBlockTooLarge
            self._header_bytes = -1
            self._deadline = None
            super().on_headers_complete()

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            if self._feeding:  # run it once the chunk is parsed (its body may be in it)
                self._ready = (cycle, app)
            else:
                super()._start_asgi_task(cycle, app)

        def _run_eagerly(self, cycle: Any, app: Any) -> None:
            if asyncio.current_task() is not None:  # fed from a task (tests): its own task, as before
                super()._start_asgi_task(cycle, app)
                return
            coro = cycle.run_asgi(app)
            ctx = contextvars.copy_context()
            try:
                first = ctx.run(coro.send, None)
            except StopIteration:
                return  # answered without waiting: no task needed
            if getattr(first, "_asyncio_future_blocking", False):
                # The future the request waits on is marked "blocking" until a task takes it
                # (Task.__step clears the mark and adds its wake-up).  Our task takes it only
                # next turn; another request awaiting the same future in this turn would find
                # the mark set and fail ("await wasn't used with future").  Clear it now, as a
                # task would; ``_Rest`` sets it again when its task takes the future.
                first._asyncio_future_blocking = False
            task = self.loop.create_task(_finish(_Rest(coro, first)), context=ctx)
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)

        def on_response_complete(self) -> None:
            # uvicorn's, with the keep-alive wait as a phase of the connection's one timer
            # instead of a call_later per response (and its cancel on the next byte).
            self.server_state.total_requests += 1
            if self.transport.is_closing():
                return
            self.flow.resume_reading()
            if self.pipeline:
                cycle, app = self.pipeline.pop()
                self._start_asgi_task(cycle, app)
            elif self._deadline is None:  # else the next request's header block is open already
                self._open(self.timeout_keep_alive, True)

        def connection_lost(self, exc: Exception | None) -> None:
            self._deadline = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._guard_ip is not None:
                limits.release(self._guard_ip)
                self._guard_ip = None
            super().connection_lost(exc)

    return GuardedHttpToolsProtocol
