"""Logging as ``-log-level``/``-log-json`` ask: key=value text lines or one JSON object per line."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import TextIO

LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "err": logging.ERROR, "error": logging.ERROR}


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "@timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "@level": record.levelname.lower(),
            "@module": record.name,
            "@message": record.getMessage(),
        }
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out)


class _TextFormatter(logging.Formatter):
    """``%(asctime)s [%(levelname)s] %(name)s: %(message)s``; the date and time part of
    ``asctime`` is formatted once per second, not once per line (same text as
    ``logging.Formatter``: local time, ``,mmm`` milliseconds)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s [%(levelname)s] %(name)s: %(message)s")
        self._sec = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        sec = int(record.created)
        if sec != self._sec:
            self._stamp = time.strftime(self.default_time_format, self.converter(sec))
            self._sec = sec
        return f"{self._stamp},{int(record.msecs):03d}"  # logging.Formatter.default_msec_format


class LoopBufferedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A ``StreamHandler`` that writes once per event-loop turn instead of once per line.

    A record emitted on a thread that runs an event loop is formatted at once (same text as
    ``StreamHandler``) and appended to a buffer; the first buffered line schedules one
    ``flush`` with ``loop.call_soon``, so the lines of one loop turn reach the stream in one
    write and one flush.  Invariants:

    * no line is lost or reordered: every write goes through ``_drain`` under the handler's
      lock, which writes the buffer before anything newer;
    * a record at WARNING or above, a record from a thread without a running loop (the fsync
      thread, start-up before the loop), a buffer of ``MAX_LINES`` lines, and a record on a
      different loop than the one the pending flush was scheduled on (a loop that closed with
      the callback unrun) all write the buffer at once, this line included;
    * ``flush()`` (``logging.shutdown`` at exit, a reload that replaces the handler) writes
      whatever is buffered, so lines are on the stream when the process exits normally.
    """

    MAX_LINES = 256

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._buf: list[str] = []
        self._scheduled: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            buf = self._buf
            buf.append(line)
            if record.levelno >= logging.WARNING or len(buf) >= self.MAX_LINES:
                self._drain()
                return
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._drain()
                return
            if self._scheduled is not loop:
                if self._scheduled is not None:  # pending on another loop: write what it held
                    buf.pop()
                    self._drain()
                    buf.append(line)
                self._scheduled = loop
                loop.call_soon(self.flush)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)

    def _drain(self) -> None:
        """Write and flush the buffer; called with the handler's lock held."""
        buf = self._buf
        if buf:
            text = buf[0] if len(buf) == 1 else "".join(buf)
            buf.clear()
            self.stream.write(text)
        if self.stream and hasattr(self.stream, "flush"):
            self.stream.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            self._scheduled = None
            self._drain()
        finally:
            self.release()


def setup_logging(level: str = "info", as_json: bool = False) -> None:
    """stderr at the configured level, plus the live stream ``/v1/agent/monitor`` reads
    (which may lower the root logger's level while a finer subscriber exists; the stderr
    handler keeps the configured level).

    A ``-dev`` agent logs every HTTP request at debug (``Request finished``, as Consul does), so
    a log line is on the request path: records skip what no format here reads (the caller's
    file and line, thread and process names; logging's documented optimisation flags) and the
    timestamp is formatted once per second (``_TextFormatter``), and stderr is written once
    per event-loop turn, WARNING and above at once (``LoopBufferedHandler``)."""
    from .telemetry.logstream import default_stream

    logging._srcfile = None  # type: ignore[attr-defined]  # no caller lookup per record
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for h in list(root.handlers):
        h.flush()  # a replaced LoopBufferedHandler writes what it still holds
        root.removeHandler(h)
    configured = LEVELS.get(level.lower(), logging.INFO)
    handler = LoopBufferedHandler(sys.stderr)
    handler.setLevel(configured)
    if as_json:
        handler.setFormatter(_JSONFormatter())
    else:
        handler.setFormatter(_TextFormatter())
    root.addHandler(handler)
    stream = default_stream()
    root.addHandler(stream)
    stream.set_base_level(configured)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
