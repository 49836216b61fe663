"""Serving the ASGI app with uvicorn inside the agent's own event loop.

uvicorn's ``Server.serve`` normally installs SIGINT/SIGTERM handlers; the agent owns signals
(leave on interrupt or not, reload on SIGHUP), so ``_EmbeddedServer`` turns that off.  One
``Listener`` per bound address and port (HTTP and HTTPS share the same app and routes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import uvicorn

from .guard import DEFAULT_HEADER_TIMEOUT, MAX_HEADER_BYTES, ConnLimits, guarded_protocol

log = logging.getLogger("muster.http")


@dataclass(frozen=True)
class TLSFiles:
    cert_file: str
    key_file: str
    ca_file: str | None = None
    verify_incoming: bool = False


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Listener:
    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        tls: TLSFiles | None = None,
        limits: ConnLimits | None = None,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.sock = _bind(host, port)
        self.port = self.sock.getsockname()[1]
        cfg = uvicorn.Config(
            app,
            http=guarded_protocol(limits if limits is not None else ConnLimits(0), header_timeout, max_header_bytes),
            loop="none",
            lifespan="off",
            log_level="warning",
            access_log=False,
            server_header=False,
            proxy_headers=False,  # no X-Forwarded-* rewriting: measured 1-4% of each request
            timeout_keep_alive=75,
            backlog=4096,
        )
        if tls is not None:
            cfg.ssl_certfile = tls.cert_file
            cfg.ssl_keyfile = tls.key_file
            cfg.ssl_ca_certs = tls.ca_file
            cfg.ssl_cert_reqs = ssl.CERT_REQUIRED if tls.verify_incoming else ssl.CERT_NONE
        self.server = _EmbeddedServer(cfg)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve(sockets=[self.sock]), name=f"http-{self.host}:{self.port}")
        while not self.server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError(f"HTTP listener on {self.host}:{self.port} stopped during startup")
            await asyncio.sleep(0.01)
        log.info("HTTP%s listening on %s:%d", "S" if self.tls else "", self.host, self.port)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=5)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto is TCP, and the
    # accepted sockets inherit it; with proto 0 each response waited ~40 ms for a delayed ACK
    # (Nagle) on the stdlib loop.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise OSError(err.errno, f"cannot bind HTTP listener to {host}:{port}: {err.strerror}") from None
    sock.listen(4096)
    sock.setblocking(False)
    return sock
