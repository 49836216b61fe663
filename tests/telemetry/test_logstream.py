"""The live log stream behind ``/v1/agent/monitor``: levels, formats, bounded buffers, threads."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from muster.telemetry.logstream import LogStream, Monitors, format_text, parse_level


@pytest.fixture
def stream() -> Iterator[LogStream]:
    """A private stream on the root logger (removed afterwards, root level restored)."""
    root = logging.getLogger()
    old_level = root.level
    s = LogStream()
    s.set_base_level(logging.INFO)
    root.addHandler(s)
    try:
        yield s
    finally:
        root.removeHandler(s)
        root.setLevel(old_level)


def test_parse_level_accepts_hclog_names_in_any_case() -> None:
    assert parse_level("INFO") == logging.INFO
    assert parse_level(" debug ") == logging.DEBUG
    assert parse_level("trace") == logging.DEBUG
    assert parse_level("Warn") == logging.WARNING
    assert parse_level("ERROR") == logging.ERROR
    assert parse_level("warning") is None
    assert parse_level("foo") is None
    assert parse_level("") is None


def test_text_format_is_hclogs_layout() -> None:
    rec = logging.LogRecord("muster.http", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    rec.created = 0.0
    rec.msecs = 5
    assert format_text(rec) == "1970-01-01T00:00:00.005Z [INFO]  http: hello x\n"
    rec.levelno, rec.levelname = logging.WARNING, "WARNING"
    assert format_text(rec) == "1970-01-01T00:00:00.005Z [WARN]  http: hello x\n"


async def test_subscriber_gets_lines_at_or_above_its_level(stream: LogStream) -> None:
    lg = logging.getLogger("muster.testmod")
    info = stream.subscribe(logging.INFO)
    debug = stream.subscribe(logging.DEBUG, as_json=True)
    lg.debug("fine detail")
    lg.info("an event %d", 7)
    got_info = await asyncio.wait_for(info.next_lines(), 5)
    assert len(got_info) == 1 and got_info[0].endswith("[INFO]  testmod: an event 7\n")
    got_debug = await asyncio.wait_for(debug.next_lines(), 5)
    objs = [json.loads(line) for line in got_debug]
    assert [(o["@level"], o["@message"], o["@module"]) for o in objs] == [
        ("debug", "fine detail", "testmod"),
        ("info", "an event 7", "testmod"),
    ]
    info.close()
    debug.close()


async def test_a_finer_subscriber_lowers_the_root_level_only_while_it_lives(stream: LogStream) -> None:
    root = logging.getLogger()
    assert root.level == logging.INFO
    sub = stream.subscribe(logging.DEBUG)
    assert root.level == logging.DEBUG
    sub.close()
    assert root.level == logging.INFO
    assert stream.subs == []


async def test_full_buffer_drops_new_lines_and_never_blocks_the_logger(stream: LogStream) -> None:
    lg = logging.getLogger("muster.testmod")
    sub = stream.subscribe(logging.INFO, capacity=3)
    for i in range(10):
        lg.info("line %d", i)  # returns at once although nobody reads
    assert sub.dropped == 7
    got = await sub.next_lines()
    assert [line.rsplit(": ", 1)[1] for line in got] == ["line 0\n", "line 1\n", "line 2\n"]
    lg.info("after")
    got = await sub.next_lines()
    assert got[0].endswith("after\n")
    sub.close()


async def test_closing_wakes_the_reader_with_end_of_stream(stream: LogStream) -> None:
    sub = stream.subscribe(logging.INFO)
    reader = asyncio.ensure_future(sub.next_lines())
    await asyncio.sleep(0.01)
    assert not reader.done()
    sub.close()
    assert await asyncio.wait_for(reader, 5) == []


async def test_lines_logged_on_other_threads_wake_the_loop(stream: LogStream) -> None:
    sub = stream.subscribe(logging.INFO)
    reader = asyncio.ensure_future(sub.next_lines())
    t = threading.Thread(target=lambda: logging.getLogger("muster.fsync").info("from a thread"))
    t.start()
    t.join()
    got = await asyncio.wait_for(reader, 5)
    assert got and got[0].endswith("fsync: from a thread\n")
    sub.close()


async def test_monitors_close_all_ends_every_stream(stream: LogStream) -> None:
    mons = Monitors(stream)
    a = mons.open(logging.INFO, False)
    b = mons.open(logging.DEBUG, True)
    mons.close_all()
    assert a.closed and b.closed and not mons.live and not stream.subs
    assert await a.next_lines() == []
