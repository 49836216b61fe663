"""Gauges sampled once a second: the interpreter's (``consul.runtime.*``) and the agent's own.

Go's runtime gauges have Python counterparts, reported under Consul's names so that dashboards
keep working: ``num_goroutines`` is the number of asyncio tasks, ``alloc_bytes`` the resident
set size, ``sys_bytes`` the virtual size, ``heap_objects`` the interpreter's allocated blocks,
``total_gc_runs`` the collections of every generation, ``total_gc_pause_ns`` their summed
duration; each collection is also a ``gc_pause_ns`` sample.

``Collector`` is owned by one agent: the gauge sources it evaluates (state-store sizes,
autopilot health...) are that agent's, and stopping the agent stops them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable

from .metrics import Labels, Metrics

log = logging.getLogger("muster.telemetry")

GaugeSource = Callable[[], Iterable[tuple[str, float, Labels]]]


#: A collection that holds the process at least this long is logged (with its generation), so
#: a latency spike can be told apart from the collector (bench/scalekit.py reads the line).
SLOW_GC_SECONDS = 0.02


class _GCTimer:
    """Times every garbage collection through ``gc.callbacks`` (installed once per process)."""

    def __init__(self) -> None:
        self.total_ns = 0
        self.runs = 0
        self._started = 0
        self.metrics: Metrics | None = None

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
            return
        if not self._started:
            return
        pause = time.perf_counter_ns() - self._started
        self._started = 0
        self.total_ns += pause
        self.runs += 1
        if pause >= SLOW_GC_SECONDS * 1e9:
            log.info(
                "gc: generation %d collection held the process %.1f ms (%d collected)",
                info.get("generation", -1), pause / 1e6, info.get("collected", 0),
            )
        m = self.metrics
        if m is not None:
            m.sample("runtime.gc_pause_ns", float(pause))


_GC = _GCTimer()


def _install_gc_timer(metrics: Metrics) -> None:
    _GC.metrics = metrics
    if _GC not in gc.callbacks:
        gc.callbacks.append(_GC)


def freeze_startup_heap() -> int:
    """Move every object alive once the agent has started into the collector's permanent
    generation (``gc.freeze``), after one full collection; returns how many were moved.

    Why: a full (generation 2) collection walks every tracked object and holds the event loop
    meanwhile.  A started agent holds ~60-100k tracked objects that live as long as the process
    (modules, classes, functions, the routes, the configuration, the restored store's
    containers); walking them made each full collection of a busy server cost tens of
    milliseconds, a latency spike for every request in flight.  Frozen objects are still freed
    by reference counting; the one cost is that a reference cycle made of objects that were
    alive at the freeze is never collected, which for start-up objects (they live until exit)
    is nothing.  Only the CLI's agent process calls this (``process.run_agent``), once: an
    in-process test agent must not freeze its test runner's heap.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def _statm() -> tuple[int, int]:
    """(virtual, resident) bytes from /proc; zeros where unavailable."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            parts = f.read().split()
        page = os.sysconf("SC_PAGE_SIZE")
        return int(parts[0]) * page, int(parts[1]) * page
    except (OSError, ValueError, IndexError):
        return 0, 0


def runtime_gauges() -> list[tuple[str, float, Labels]]:
    vsize, rss = _statm()
    try:
        tasks = len(asyncio.all_tasks())
    except RuntimeError:
        tasks = 0
    return [
        ("runtime.num_goroutines", float(tasks), ()),
        ("runtime.alloc_bytes", float(rss), ()),
        ("runtime.sys_bytes", float(vsize), ()),
        ("runtime.heap_objects", float(sys.getallocatedblocks()), ()),
        ("runtime.total_gc_runs", float(sum(s["collections"] for s in gc.get_stats())), ()),
        ("runtime.total_gc_pause_ns", float(_GC.total_ns), ()),
    ]


class Collector:
    """Evaluates gauge sources into ``metrics`` once a second while the agent runs."""

    PERIOD = 1.0

    def __init__(self, metrics: Metrics, sources: list[GaugeSource] | None = None) -> None:
        self.metrics = metrics
        self.sources: list[GaugeSource] = [runtime_gauges] + list(sources or [])
        self.counter_sources: list[tuple[Callable[[], dict[str, float]], dict[str, float]]] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, source: GaugeSource) -> None:
        self.sources.append(source)

    def add_counters(self, source: Callable[[], dict[str, float]]) -> None:
        """A source of cumulative totals kept elsewhere (a sans-IO core's counters): each
        collection reports what they grew by since the last one."""
        self.counter_sources.append((source, {}))

    def collect(self) -> None:
        m = self.metrics
        for csrc, last in self.counter_sources:
            try:
                totals = csrc()
            except Exception:  # noqa: BLE001 - one broken source must not stop the others
                log.exception("counter source %r failed", csrc)
                continue
            for key, total in totals.items():
                grew = total - last.get(key, 0.0)
                last[key] = total
                if grew > 0:
                    m.incr(key, grew)
        for src in self.sources:
            try:
                for key, value, labels in src():
                    m.gauge(key, value, labels)
            except Exception:  # noqa: BLE001 - one broken source must not stop the others
                log.exception("gauge source %r failed", src)

    async def _run(self) -> None:
        while True:
            self.collect()
            await asyncio.sleep(self.PERIOD)

    def start(self) -> None:
        _install_gc_timer(self.metrics)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="telemetry-collector")

    async def stop(self) -> None:
        t, self._task = self._task, None
        if t is not None:
            t.cancel()
            try:
                await t
            except asyncio.CancelledError:
                pass
