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


def setup_logging(level: str = "info", as_json: bool = False) -> None:
    """stderr at the configured level, plus the live stream ``/v1/agent/monitor`` reads
    (which may lower the root logger's level while a finer subscriber exists; the stderr
    handler keeps the configured level)."""
    from .telemetry.logstream import default_stream

    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    configured = LEVELS.get(level.lower(), logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(configured)
    if as_json:
        handler.setFormatter(_JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    root.addHandler(handler)
    stream = default_stream()
    root.addHandler(stream)
    stream.set_base_level(configured)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
