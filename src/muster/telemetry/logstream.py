"""The agent's log lines, fanned out live to ``/v1/agent/monitor`` subscribers.

``LogStream`` is a ``logging.Handler`` installed on the root logger next to the stderr handler.
Each subscriber chose a level and a format (hclog's text layout or its JSON object) and owns a
bounded buffer of formatted lines (512, as Consul's monitor).  Invariants:

* the logger never blocks on a subscriber: when a subscriber's buffer is full the new line is
  dropped and counted (``Subscription.dropped``), exactly as Consul's monitor drops on a full
  channel; the count is reported in a warning when the subscription ends;
* a record is formatted at most once per format, however many subscribers want it;
* records may come from any thread (the fsync thread, the CLI's lock monitor): buffers are
  guarded by a lock and the subscriber's event loop is woken with ``call_soon_threadsafe``
  when the record was emitted elsewhere;
* a subscriber at a finer level than the agent's own (``-log-level=info`` but a monitor at
  ``debug``) lowers the root logger's level while it lives, and the stderr handler keeps the
  configured level, so the agent's own output does not change.  When the last such subscriber
  leaves the root level goes back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque

log = logging.getLogger("muster.agent")

BUFFER_LINES = 512

#: hclog level names (``hclog.LevelFromString``): case-insensitive, surrounding space ignored.
#: Python has no TRACE below DEBUG; both map to DEBUG.
LEVEL_NAMES: dict[str, int] = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "off": logging.CRITICAL + 10,
}

_HCLOG_LEVEL = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARN",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "ERROR",
}


def parse_level(name: str) -> int | None:
    """The logging level of an hclog level name, or None when it is not one."""
    return LEVEL_NAMES.get(name.strip().lower())


def _module(record: logging.LogRecord) -> str:
    name = record.name
    return name[len("muster.") :] if name.startswith("muster.") else name


def _timestamp(record: logging.LogRecord, sep: str = "T") -> str:
    return time.strftime(f"%Y-%m-%d{sep}%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def format_text(record: logging.LogRecord) -> str:
    """hclog's text layout: ``2026-01-02T15:04:05.000Z [INFO]  agent: message``."""
    level = _HCLOG_LEVEL.get(record.levelno, record.levelname)
    msg = record.getMessage()
    if record.exc_info:
        msg += "\n" + logging.Formatter().formatException(record.exc_info)
    return f"{_timestamp(record)} [{level}] {' ' * (5 - len(level))}{_module(record)}: {msg}\n"


def format_json(record: logging.LogRecord) -> str:
    """hclog's JSON object, one per line (``@level``, ``@message``, ``@module``, ``@timestamp``)."""
    out = {
        "@level": _HCLOG_LEVEL.get(record.levelno, record.levelname).lower(),
        "@message": record.getMessage(),
        "@module": _module(record),
        "@timestamp": _timestamp(record),
    }
    if record.exc_info:
        out["error"] = logging.Formatter().formatException(record.exc_info)
    return json.dumps(out) + "\n"


class Subscription:
    """One live reader of the log: a bounded buffer of formatted lines and a wake-up event."""

    def __init__(self, stream: LogStream, level: int, as_json: bool, capacity: int) -> None:
        self.stream = stream
        self.level = level
        self.as_json = as_json
        self.capacity = capacity
        self.dropped = 0
        self.closed = False
        self._lines: deque[str] = deque()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._ready = asyncio.Event()

    def _offer(self, line: str) -> None:
        """Called with the stream's lock held, from any thread."""
        if len(self._lines) >= self.capacity:
            self.dropped += 1
            return
        self._lines.append(line)
        if not self._ready.is_set():
            if threading.get_ident() == self._loop_thread:
                self._ready.set()
            else:
                self._loop.call_soon_threadsafe(self._ready.set)

    async def next_lines(self) -> list[str]:
        """Wait for at least one line and take every buffered one; [] once closed."""
        while True:
            with self.stream._subs_lock:
                if self._lines:
                    out = list(self._lines)
                    self._lines.clear()
                    self._ready.clear()
                    return out
                if self.closed:
                    return []
                self._ready.clear()
            await self._ready.wait()

    def close(self) -> None:
        """Stop receiving lines and wake the reader (which then sees the end of the stream)."""
        if self.closed:
            return
        self.stream._remove(self)
        self.closed = True
        if threading.get_ident() == self._loop_thread:
            self._ready.set()
        else:
            self._loop.call_soon_threadsafe(self._ready.set)
        if self.dropped:
            log.warning("Dropped logs during monitor request: dropped_count=%d", self.dropped)


class LogStream(logging.Handler):
    """Fans every record out to the live subscriptions that want it."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.subs: list[Subscription] = []
        self._subs_lock = threading.Lock()
        #: the level the operator configured (``-log-level``); the root logger's level is the
        #: finest of it and every subscriber's.
        self.base_level = logging.INFO

    def subscribe(self, level: int, as_json: bool = False, capacity: int = BUFFER_LINES) -> Subscription:
        sub = Subscription(self, level, as_json, capacity)
        with self._subs_lock:
            self.subs.append(sub)
        self._apply_root_level()
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._subs_lock:
            if sub in self.subs:
                self.subs.remove(sub)
        self._apply_root_level()

    def install(self) -> None:
        """Attach to the root logger if ``setup_logging`` has not (an embedded agent)."""
        root = logging.getLogger()
        if self not in root.handlers:
            self.base_level = root.getEffectiveLevel()
            root.addHandler(self)

    def set_base_level(self, level: int) -> None:
        self.base_level = level
        self._apply_root_level()

    def _apply_root_level(self) -> None:
        with self._subs_lock:
            want = min([self.base_level] + [s.level for s in self.subs])
        logging.getLogger().setLevel(want)

    def emit(self, record: logging.LogRecord) -> None:
        subs = self.subs
        if not subs:
            return
        text: str | None = None
        js: str | None = None
        try:
            with self._subs_lock:
                for sub in subs:
                    if record.levelno < sub.level:
                        continue
                    if sub.as_json:
                        if js is None:
                            js = format_json(record)
                        sub._offer(js)
                    else:
                        if text is None:
                            text = format_text(record)
                        sub._offer(text)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


_STREAM = LogStream()


def default_stream() -> LogStream:
    """The process's stream (logging itself is process-wide: one root logger, one stream)."""
    return _STREAM


class Monitors:
    """The monitor subscriptions one agent opened, so that stopping the agent ends their
    streams (an open stream would otherwise hold the HTTP server's shutdown)."""

    def __init__(self, stream: LogStream | None = None) -> None:
        self.stream = stream or default_stream()
        self.live: set[Subscription] = set()

    def open(self, level: int, as_json: bool) -> Subscription:
        self.stream.install()
        sub = self.stream.subscribe(level, as_json)
        self.live.add(sub)
        return sub

    def release(self, sub: Subscription) -> None:
        self.live.discard(sub)
        sub.close()

    def close_all(self) -> None:
        for sub in list(self.live):
            self.release(sub)
