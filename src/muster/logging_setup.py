"""Logging as ``-log-level``/``-log-json`` ask: key=value text lines or one JSON object per line."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from .telemetry.logstream import LogStream

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
        return self._asctime(record.created, record.msecs)

    def _asctime(self, created: float, msecs: float) -> str:
        sec = int(created)
        if sec != self._sec:
            self._stamp = time.strftime(self.default_time_format, self.converter(sec))
            self._sec = sec
        return f"{self._stamp},{int(msecs):03d}"  # logging.Formatter.default_msec_format

    def line(self, name: str, level: int, message: str) -> str:
        """What ``format`` returns for a record of ``name`` at ``level`` whose message (no
        arguments left, no exception) is ``message``, created now: the clock is read as
        ``LogRecord`` reads it (``time.time()``, milliseconds as its ``msecs``)."""
        ct = time.time()
        msecs = int((ct - int(ct)) * 1000) + 0.0  # LogRecord.__init__'s rounding (gh-89047)
        return f"{self._asctime(ct, msecs)} [{logging.getLevelName(level)}] {name}: {message}"


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
            self._append(self.format(record) + self.terminator, record.levelno)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)

    def emit_line(self, line: str, level: int) -> None:
        """Write an already formatted ``line`` (terminator included) at ``level`` exactly as
        ``emit`` writes a record's: same buffer, same order, same flushing rules."""
        self.acquire()
        try:
            self._append(line, level)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(logging.makeLogRecord({"msg": line, "levelno": level}))
        finally:
            self.release()

    def _append(self, line: str, level: int) -> None:
        """Buffer ``line`` and write or schedule the write; called with the handler's lock held."""
        buf = self._buf
        buf.append(line)
        if level >= logging.WARNING or len(buf) >= self.MAX_LINES:
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


#: What ``setup_logging`` installed with the text format: the stderr handler, its formatter, the
#: monitor stream and the root logger's handler list as it left it; None otherwise.
_direct: tuple[LoopBufferedHandler, _TextFormatter, LogStream, list[logging.Handler]] | None = None


def log_line(logger: logging.Logger, level: int, message: str) -> bool:
    """Write ``message`` at ``level`` to stderr without a ``LogRecord`` when that is all
    ``logger.log(level, "%s", message)`` would do; False when the caller must log it so.

    The caller has checked ``logger.isEnabledFor(level)`` and ``message`` is final (a format
    already applied to its arguments, exactly ``LogRecord.getMessage()``'s text).  The shortcut
    is taken only while the logging configuration is still the one ``setup_logging`` made in
    text format: the root logger's handlers are exactly its stderr handler (with its own
    formatter, no filter, a level the line passes) and the monitor stream, the stream has no
    subscriber (``/v1/agent/monitor`` gets its lines through ``logging`` as before), and no
    logger from ``logger`` up to the root has a filter, a handler or ``propagate`` off.  The
    line is then the text ``_TextFormatter.format`` gives such a record, buffered in order with
    every other line.  Any other configuration (JSON, a test's capture handler, a monitor
    subscriber, a reload in progress) takes the ``logging`` path, so what every handler
    receives never changes; this only saves the record and the handler chain (~5-7 us per line,
    BENCHMARKS.md)."""
    d = _direct
    if d is None:
        return False
    handler, fmt, stream, handlers = d
    root = logging.root
    if (
        root.handlers != handlers
        or stream.subs
        or handler.formatter is not fmt
        or handler.filters
        or level < handler.level
        or logger.filters
    ):
        return False
    c: logging.Logger | None = logger
    while c is not None and c is not root:
        if c.handlers or not c.propagate:
            return False
        c = c.parent
    handler.emit_line(fmt.line(logger.name, level, message) + handler.terminator, level)
    return True


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
    global _direct
    _direct = None
    configured = LEVELS.get(level.lower(), logging.INFO)
    handler = LoopBufferedHandler(sys.stderr)
    handler.setLevel(configured)
    text = _TextFormatter()
    handler.setFormatter(_JSONFormatter() if as_json else text)
    root.addHandler(handler)
    stream = default_stream()
    root.addHandler(stream)
    stream.set_base_level(configured)
    if not as_json:
        _direct = (handler, text, stream, list(root.handlers))
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
