"""The agent's stderr log: ``_TextFormatter`` writes exactly what ``logging.Formatter`` with the
same format writes, although it formats the date and time once per second; ``LoopBufferedHandler``
writes every line, in order, once per event-loop turn (at once for WARNING and above, from a
thread without a loop, and on ``flush``)."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import threading
import time

import pytest

from muster.http.app import REQUEST_LINE
from muster.logging_setup import LoopBufferedHandler, _TextFormatter, log_line, setup_logging
from muster.telemetry.logstream import default_stream

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


# --- LoopBufferedHandler: stderr written once per event-loop turn ---------------------------


def _buffered() -> tuple[LoopBufferedHandler, io.StringIO, logging.Logger]:
    out = io.StringIO()
    handler = LoopBufferedHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test.buffered.{id(out)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return handler, out, logger


def test_lines_are_written_after_the_loop_turn_in_order() -> None:
    handler, out, logger = _buffered()

    async def main() -> list[str]:
        seen = []
        for i in range(3):
            logger.debug("line %d", i)
        seen.append(out.getvalue())  # nothing yet: the turn is not over
        await asyncio.sleep(0)  # the flush scheduled on the first line ran before this resumes
        seen.append(out.getvalue())
        logger.info("line 3")
        seen.append(out.getvalue())
        await asyncio.sleep(0)
        seen.append(out.getvalue())
        return seen

    seen = asyncio.run(main())
    assert seen == ["", "DEBUG line 0\nDEBUG line 1\nDEBUG line 2\n",
                    "DEBUG line 0\nDEBUG line 1\nDEBUG line 2\n",
                    "DEBUG line 0\nDEBUG line 1\nDEBUG line 2\nINFO line 3\n"]  # fmt: skip
    handler.close()


def test_a_warning_writes_the_buffer_and_itself_at_once() -> None:
    handler, out, logger = _buffered()

    async def main() -> str:
        logger.debug("before")
        logger.warning("now")
        return out.getvalue()

    assert asyncio.run(main()) == "DEBUG before\nWARNING now\n"
    handler.close()


def test_without_a_running_loop_lines_are_written_at_once() -> None:
    handler, out, logger = _buffered()
    logger.debug("no loop")
    assert out.getvalue() == "DEBUG no loop\n"

    def in_thread() -> None:
        logger.info("from a thread")

    async def main() -> str:
        logger.debug("loop line")  # buffered; the thread's line must come after it
        t = threading.Thread(target=in_thread)
        t.start()
        t.join()
        return out.getvalue()

    assert asyncio.run(main()) == "DEBUG no loop\nDEBUG loop line\nINFO from a thread\n"
    handler.close()


def test_flush_writes_what_a_closed_loop_left_and_a_new_loop_still_flushes() -> None:
    handler, out, logger = _buffered()
    loop = asyncio.new_event_loop()

    async def one_line(text: str) -> None:
        logger.debug(text)

    loop.run_until_complete(one_line("first"))  # its flush callback may be left unrun
    loop.close()
    asyncio.run(one_line("second"))  # a different loop: "first" is written, then "second"
    handler.flush()  # what logging.shutdown does at exit
    assert out.getvalue() == "DEBUG first\nDEBUG second\n"
    logger.debug("third")
    assert out.getvalue().endswith("DEBUG third\n")
    handler.close()


def test_a_full_buffer_is_written_without_waiting_for_the_turn() -> None:
    handler, out, logger = _buffered()

    async def main() -> int:
        for i in range(LoopBufferedHandler.MAX_LINES):
            logger.debug("%d", i)
        return out.getvalue().count("\n")

    assert asyncio.run(main()) == LoopBufferedHandler.MAX_LINES
    assert out.getvalue().splitlines() == [f"DEBUG {i}" for i in range(LoopBufferedHandler.MAX_LINES)]
    handler.close()


def test_setup_logging_installs_the_buffered_handler_and_keeps_the_monitor_stream() -> None:
    root = logging.getLogger()
    saved, level, base = list(root.handlers), root.level, default_stream().base_level
    try:
        setup_logging("debug")
        kinds = [type(h) for h in root.handlers]
        assert LoopBufferedHandler in kinds
        assert default_stream() in root.handlers
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved:
            root.addHandler(h)
        default_stream().base_level = base
        root.setLevel(level)


# --- log_line: the request line without a LogRecord, only where nothing else would see it ------


class _Setup:
    """``setup_logging`` with stderr captured; restores the root logger afterwards."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, as_json: bool = False) -> None:
        self.root = logging.getLogger()
        self.saved, self.level, self.base = list(self.root.handlers), self.root.level, default_stream().base_level
        self.out = io.StringIO()
        monkeypatch.setattr(sys, "stderr", self.out)
        monkeypatch.setattr(time, "time", lambda: 1_764_680_000.1239)  # LogRecord's clock and log_line's
        setup_logging("debug", as_json=as_json)

    def restore(self) -> None:
        for h in list(self.root.handlers):
            h.flush()
            self.root.removeHandler(h)
        for h in self.saved:
            self.root.addHandler(h)
        default_stream().base_level = self.base
        self.root.setLevel(self.level)


def _both(logger: logging.Logger) -> tuple[bool, str, str]:
    """log_line's result and output, then logging's output for the same line (one loop)."""
    args = ("PUT", "/v1/kv/a?cas=1", "127.0.0.1", 0.123456)
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, LoopBufferedHandler))
    out = handler.stream
    assert isinstance(out, io.StringIO)

    async def main() -> tuple[bool, str, str]:
        await asyncio.sleep(0)
        handler.flush()
        start = len(out.getvalue())
        took = log_line(logger, logging.DEBUG, REQUEST_LINE % args)
        await asyncio.sleep(0)
        mid = len(out.getvalue())
        logger.debug(REQUEST_LINE, *args)
        await asyncio.sleep(0)
        return took, out.getvalue()[start:mid], out.getvalue()[mid:]

    return asyncio.run(main())


def test_log_line_writes_what_logging_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    s = _Setup(monkeypatch)
    try:
        took, direct, std = _both(logging.getLogger("muster.http"))
        assert took
        assert direct == std and std.endswith(
            " [DEBUG] muster.http: Request finished: method=PUT url=/v1/kv/a?cas=1 from=127.0.0.1 latency=0.123ms\n"
        )
        assert ",123 [DEBUG]" in std
    finally:
        s.restore()


def test_log_line_declines_when_a_monitor_or_another_handler_would_see_the_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = _Setup(monkeypatch)
    logger = logging.getLogger("muster.http")
    try:

        async def subscribed() -> tuple[bool, list[str]]:
            sub = default_stream().subscribe(logging.DEBUG)
            try:
                took = log_line(logger, logging.DEBUG, "x")
                logger.debug("y")
                return took, await sub.next_lines()
            finally:
                sub.close()

        took, lines = asyncio.run(subscribed())
        assert not took and len(lines) == 1 and lines[0].endswith("http: y\n")

        extra = logging.NullHandler()
        s.root.addHandler(extra)  # e.g. pytest's capture handler
        assert not log_line(logger, logging.DEBUG, "x")
        s.root.removeHandler(extra)

        child = logging.getLogger("muster.http.child-test")
        child.propagate = False
        assert not log_line(child, logging.DEBUG, "x")
        child.propagate = True
        child.addFilter(lambda r: False)
        assert not log_line(child, logging.DEBUG, "x")
        assert log_line(logger, logging.DEBUG, "back on the short path")
    finally:
        s.restore()


def test_log_line_declines_in_json_format(monkeypatch: pytest.MonkeyPatch) -> None:
    s = _Setup(monkeypatch, as_json=True)
    try:
        took, direct, std = _both(logging.getLogger("muster.http"))
        assert not took and direct == ""
        assert '"@message": "Request finished: method=PUT' in std
    finally:
        s.restore()
