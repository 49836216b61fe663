"""End-to-end teeth: the workload + checker must flag deliberately broken KV servers.

Each fake speaks just enough of Consul's KV API (``GET``/``PUT ?cas=`` on ``/v1/kv/<key>``) and
runs in the test's own event loop on 127.0.0.1.  The correct fake is the control: it must pass,
so a failure of the broken ones is caused by their bug and not by the harness.
"""

from __future__ import annotations

import base64
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest
from aiohttp import web

from muster_testkit.history import WorkloadConfig, arun_and_check
from muster_testkit.linearizability import Verdict

STALE_LAG = 5


class FakeKV:
    """A single-key-space KV store with optional, deliberate consistency bugs.

    ``stale``: GETs are served from a cached copy that may miss the last ``STALE_LAG - 1`` writes
    (a stale cache).  The lag is counted in writes, not time, so the bug shows however fast or
    slow the machine runs the workload (a 50 ms cache went unnoticed on a loaded machine).
    ``follower``: like ``stale`` but only for GETs without ``?consistent`` (a lagging follower
    that forwards consistent reads correctly).
    ``lost_write``: 5% of plain PUTs answer ``true`` without being applied.
    ``blind_cas``: ``?cas=N`` succeeds whenever the key exists, ignoring ModifyIndex.
    """

    def __init__(self, bug: str | None) -> None:
        self.bug = bug
        self.data: dict[str, tuple[bytes, int]] = {}
        self.index = 1
        self.snapshot: dict[str, tuple[bytes, int]] = {}
        self.snapshot_index = 0
        self.rng = random.Random(1)

    async def get(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        view = self.data
        if self.bug == "stale" or (self.bug == "follower" and "consistent" not in request.query):
            if self.index - self.snapshot_index >= STALE_LAG:
                self.snapshot, self.snapshot_index = dict(self.data), self.index
            view = self.snapshot
        if key not in view:
            return web.Response(status=404, headers={"X-Consul-Index": str(self.index)})
        value, mi = view[key]
        entry = {
            "LockIndex": 0,
            "Key": key,
            "Flags": 0,
            "Value": base64.b64encode(value).decode(),
            "CreateIndex": mi,
            "ModifyIndex": mi,
        }
        return web.json_response([entry], headers={"X-Consul-Index": str(mi)})

    async def put(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        body = await request.read()
        if "cas" in request.query:
            want = int(request.query["cas"])
            cur = self.data.get(key)
            if want == 0:
                ok = cur is None
            elif self.bug == "blind_cas":
                ok = cur is not None
            else:
                ok = cur is not None and cur[1] == want
            if not ok:
                return web.json_response(False)
        elif self.bug == "lost_write" and self.rng.random() < 0.05:
            return web.json_response(True)
        self.index += 1
        self.data[key] = (body, self.index)
        return web.json_response(True)


@asynccontextmanager
async def serve_many(bug: str | None, n: int) -> AsyncIterator[list[str]]:
    """``n`` HTTP front-ends (ports) over one shared store, like servers of one cluster."""
    kv = FakeKV(bug)
    app = web.Application()
    app.router.add_get("/v1/kv/{key:.+}", kv.get)
    app.router.add_put("/v1/kv/{key:.+}", kv.put)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for _ in range(n):
        await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield [f"http://127.0.0.1:{int(addr[1])}" for addr in runner.addresses]
    finally:
        await runner.cleanup()


@asynccontextmanager
async def serve(bug: str | None) -> AsyncIterator[str]:
    async with serve_many(bug, 1) as urls:
        yield urls[0]


CFG = WorkloadConfig(clients=8, keys=4, ops_per_key=200, timeout=2.0, seed=42)


async def test_correct_fake_passes() -> None:
    async with serve(None) as url:
        report = await arun_and_check(url, ops=800, seconds=20.0, config=CFG)
    assert report.verdict is Verdict.LINEARIZABLE, report.summary()
    assert report.ops >= 800 and report.stale_reads == 0


@pytest.mark.parametrize("bug", ["stale", "lost_write", "blind_cas"])
async def test_broken_fake_is_caught(bug: str) -> None:
    async with serve(bug) as url:
        report = await arun_and_check(url, ops=800, seconds=20.0, config=CFG)
    assert report.verdict is Verdict.NOT_LINEARIZABLE, report.summary()
    assert report.violations
    text = report.violations[0].describe()
    assert report.violations[0].key in text


async def test_stale_follower_reads_are_counted_and_consistent_reads_are_clean() -> None:
    async with serve_many("follower", 2) as urls:
        stale = await arun_and_check(urls, ops=500, seconds=20.0, config=replace(CFG, read_mode="stale"))
        consistent = await arun_and_check(urls, ops=500, seconds=20.0, config=CFG)
    assert stale.verdict is Verdict.NOT_LINEARIZABLE and stale.stale_reads > 0, stale.summary()
    assert stale.stale_reads <= stale.reads_ok
    assert consistent.verdict is Verdict.LINEARIZABLE and consistent.stale_reads == 0, consistent.summary()
    # Both front-ends were used.
    assert {op.server for op in consistent.history.ops} == set(urls)
