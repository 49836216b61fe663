"""Logging as ``-log-level``/``-log-json`` ask: key=value text lines or one JSON object per line."""

from __future__ import annotations

import json
import logging
import sys
import time

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


def setup_logging(level: str = "info", as_json: bool = False) -> None:
    """stderr at the configured level, plus the live stream ``/v1/agent/monitor`` reads
    (which may lower the root logger's level while a finer subscriber exists; the stderr
    handler keeps the configured level).

    A ``-dev`` agent logs every HTTP request at debug (``Request finished``, as Consul does), so
    a log line is on the request path: records skip what no format here reads (the caller's
    file and line, thread and process names; logging's documented optimisation flags) and the
    timestamp is formatted once per second (``_TextFormatter``)."""
    from .telemetry.logstream import default_stream

    logging._srcfile = None  # type: ignore[attr-defined]  # no caller lookup per record
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    configured = LEVELS.get(level.lower(), logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
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
