"""The agent's stderr log format: ``_TextFormatter`` writes exactly what ``logging.Formatter``
with the same format writes, although it formats the date and time once per second."""

from __future__ import annotations

import logging

from muster.logging_setup import _TextFormatter

FORMAT = "%(asctime)s [%(levelname)s] %(name)s: %(message)s"


def _record(created: float, msg: str = "Request finished: method=%s", level: int = logging.DEBUG) -> logging.LogRecord:
    r = logging.LogRecord("muster.http", level, "", 0, msg, ("PUT",), None)
    r.created = created
    r.msecs = (created - int(created)) * 1000
    return r


def test_same_lines_as_the_standard_formatter_across_seconds() -> None:
    ours, std = _TextFormatter(), logging.Formatter(FORMAT)
    times = [1_700_000_000.0, 1_700_000_000.0004, 1_700_000_000.5, 1_700_000_000.9996, 1_700_000_001.0,
             1_700_000_001.25, 1_700_000_000.75, 1_764_680_000.123]  # fmt: skip
    for t in times:  # including a clock step back, and a repeat of an earlier second
        for level in (logging.DEBUG, logging.INFO, logging.WARNING):
            rec = _record(t, level=level)
            assert ours.format(rec) == std.format(rec)
