"""Metrics with Consul's names and types, kept the way go-metrics keeps them.

Consul reports through go-metrics: counters (``IncrCounter``), gauges (``SetGauge``) and samples
(``AddSample``/``MeasureSince``, in milliseconds), each a dotted key under the ``consul`` prefix
with optional labels.  Two sinks read them, and ``Metrics`` is both:

* the in-memory sink behind ``GET /v1/agent/metrics``: 10-second intervals, the last minute
  kept; the endpoint shows the most recent *finished* interval (the current one while it is
  the only one), counters and samples aggregated per interval (Count, Rate = Sum / 10 s, Sum,
  Min, Max, Mean, Stddev), gauges as their last value in the interval;
* the Prometheus sink behind ``?format=prometheus``: counters cumulative, gauges last value,
  samples as summaries (quantiles 0.5/0.9/0.99 over the last 10 s, plus ``_sum``/``_count``);
  a series not updated for ``prometheus_retention_time`` disappears.

Names: ``<prefix>.<key>`` (prefix ``telemetry.metrics_prefix``, default ``consul``); gauges get
the host name inserted after the prefix unless ``telemetry.disable_hostname`` is set, as
go-metrics does (``consul.<host>.runtime.alloc_bytes``).  Prometheus names replace ``.``, ``-``,
``/``, ``=`` and spaces with ``_``.

Cost on the hot path (measured in BENCHMARKS.md, ``bench/telemetry_cost.py``): a record
touches only the current interval.  It reads the clock once (to notice the interval's end), finds
its series with one dict lookup and appends the value to the series' pending list; every 512
values, at the interval's end and when a view is read, the pending values are folded into the
series' aggregate with C-speed builtins (``len``, ``math.fsum``, ``min``, ``max``).  The
Prometheus totals are the folded finished intervals plus the current one, so nothing cumulative
is touched per record either.  A series is named by a string id (``series_id``: the key, plus its
labels for a labelled series), so finding it hashes a string whose hash Python caches, never a
tuple.  Callers on the request path build their id once (a constant, or cached per route) and
call ``incr_key``/``sample_key``/``measure_key``: nothing is allocated per record but the value,
once the series exists in the interval.  Recording happens on the event loop;
a record from another thread is safe in CPython (a lost value at worst), never a crash or a block.
"""

from __future__ import annotations

import math
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

V = TypeVar("V")

Labels = tuple[tuple[str, str], ...]
Key = tuple[str, Labels]
#: A series' id: its key, or ``key\x00label=value...`` for a labelled series (``series_id``).
SeriesId = str

_SERIES: dict[SeriesId, Key] = {}


def series_id(key: str, labels: Labels = ()) -> SeriesId:
    """The id of series ``(key, labels)``, registered so the views can show its key and labels.
    Ids of different series differ (keys never contain NUL)."""
    sid = key if not labels else key + "".join(f"\x00{k}={v}" for k, v in labels)
    if sid not in _SERIES:
        _SERIES[sid] = (key, labels)
    return sid


INTERVAL = 10.0
RETAIN = 60.0
SUMMARY_WINDOW = 10.0
QUANTILES = (0.5, 0.9, 0.99)

#: Keys recorded on every write, built once (the hot path passes them to ``*_key``).
RAFT_APPLY = series_id("raft.apply")
RAFT_COMMIT_TIME = series_id("raft.commitTime")
RAFT_FSM_APPLY = series_id("raft.fsm.apply")

_FORBIDDEN = str.maketrans({c: "_" for c in " .=-/:"})


def prom_name(name: str) -> str:
    """go-metrics' flattening of a dotted key into a Prometheus metric name."""
    return name.translate(_FORBIDDEN)


FOLD = 512  # pending values per series folded into its aggregate at once (also the quantile sample)


class Series(list[float]):
    """One series (counter or sample) in one interval: go-metrics' ``AggregateSample``.

    The list itself holds the values recorded since the last fold (at most ``FOLD``);
    ``n`` (the count)/``sum``/``sumsq``/``min``/``max`` aggregate the values folded so far, ``recent``
    keeps the last ``FOLD`` values (the Prometheus quantiles' sample), ``last`` is the time of
    the latest record.  Invariant: the interval's aggregate is the folded part plus the list.
    """

    __slots__ = ("n", "sum", "sumsq", "min", "max", "recent", "last")

    def __init__(self) -> None:
        super().__init__()
        self.n = 0
        self.sum = 0.0
        self.sumsq = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.recent: list[float] = []
        self.last = 0.0

    def fold(self) -> None:
        """Move the pending values into the aggregate (idempotent when none are pending)."""
        vals = self[:]
        if not vals:
            return
        del self[: len(vals)]
        self.n += len(vals)
        self.sum += math.fsum(vals)
        self.sumsq += math.fsum([v * v for v in vals])
        lo, hi = min(vals), max(vals)
        if lo < self.min:
            self.min = lo
        if hi > self.max:
            self.max = hi
        self.recent = vals if len(vals) >= FOLD else (self.recent + vals)[-FOLD:]

    def stddev(self) -> float:
        n = self.n
        if n < 2:
            return 0.0
        var = (self.sumsq - self.sum * self.sum / n) / (n - 1)
        return math.sqrt(var) if var > 0 else 0.0

    def display(self, name: str, labels: Labels, interval: float) -> dict[str, Any]:
        self.fold()
        return {
            "Name": name,
            "Count": self.n,
            "Rate": self.sum / interval,
            "Sum": self.sum,
            "Min": self.min if self.n else 0.0,
            "Max": self.max if self.n else 0.0,
            "Mean": self.sum / self.n if self.n else 0.0,
            "Stddev": self.stddev(),
            "Labels": dict(labels),
        }


@dataclass
class Interval:
    start: float
    gauges: dict[SeriesId, float]
    counters: dict[SeriesId, Series]
    samples: dict[SeriesId, Series]


class Total:
    """A Prometheus series' totals over the finished intervals: value (counter sum) or the
    summary's sum and count, and the time of its latest record."""

    __slots__ = ("sum", "count", "last")

    def __init__(self) -> None:
        self.sum = 0.0
        self.count = 0
        self.last = 0.0

    def add(self, s: Series) -> None:
        s.fold()
        self.sum += s.sum
        self.count += s.n
        if s.last > self.last:
            self.last = s.last


def _by_key(table: Mapping[SeriesId, V]) -> list[tuple[Key, V]]:
    """A table's series as ``((key, labels), value)``, sorted by key and labels."""
    return sorted(((_SERIES[sid], v) for sid, v in table.items()), key=lambda kv: kv[0])


def _quantiles(vals: list[float]) -> list[tuple[float, float]]:
    if not vals:
        return [(q, math.nan) for q in QUANTILES]
    vals = sorted(vals)
    n = len(vals)
    return [(q, vals[min(n - 1, int(q * n))]) for q in QUANTILES]


class Metrics:
    """The process's metrics (go-metrics' global registry); see the module docstring."""

    def __init__(self, clock: Callable[[], float] = time.time, prefix: str = "consul", hostname: str | None = None) -> None:
        self.clock = clock
        self.prefix = prefix
        self.hostname = hostname if hostname is not None else socket.gethostname().split(".")[0]
        self.disable_hostname = False
        self.retention = 0.0
        self._name_cache: dict[str, str] = {}
        self.reset()

    def reset(self) -> None:
        """Forget every series (a test that reads exact values starts from here)."""
        now = self.clock()
        self.intervals: deque[Interval] = deque(maxlen=int(RETAIN / INTERVAL))
        self.p_counters: dict[SeriesId, Total] = {}
        self.p_gauges: dict[SeriesId, list[float]] = {}  # [value, updated]
        self.p_summaries: dict[SeriesId, Total] = {}
        self._start(now)

    def configure(self, prefix: str, disable_hostname: bool, retention: float) -> None:
        self.prefix = prefix or "consul"
        self.disable_hostname = disable_hostname
        self.retention = retention
        self._name_cache.clear()

    # ------------------------------------------------------------------ recording

    def _start(self, now: float) -> None:
        """Begin the interval holding ``now``: the hot path's aliases point into it."""
        start = now - now % INTERVAL
        cur = Interval(start, {}, {}, {})
        self.current = cur
        self.intervals.append(cur)
        self._counters = cur.counters
        self._samples = cur.samples
        self._ends = start + INTERVAL

    def _rotate(self, now: float) -> None:
        """Close the current interval if ``now`` is past its end: its series are folded into
        the Prometheus totals (each interval exactly once), then a new interval begins."""
        if now < self._ends:
            return
        done = self.current
        for table, src in ((self.p_counters, done.counters), (self.p_summaries, done.samples)):
            for k, s in src.items():
                t = table.get(k)
                if t is None:
                    t = table[k] = Total()
                t.add(s)
        self._start(now)

    def incr_key(self, k: SeriesId, value: float = 1.0) -> None:
        """``IncrCounter`` of a series id (``series_id``): the hot path's form."""
        now = self.clock()
        if now >= self._ends:
            self._rotate(now)
        s = self._counters.get(k)
        if s is None:
            s = self._counters[k] = Series()
        s.append(value)
        s.last = now
        if len(s) >= FOLD:
            s.fold()

    def sample_key(self, k: SeriesId, ms: float) -> None:
        """``AddSample`` of a series id (``series_id``): the hot path's form."""
        now = self.clock()
        if now >= self._ends:
            self._rotate(now)
        s = self._samples.get(k)
        if s is None:
            s = self._samples[k] = Series()
        s.append(ms)
        s.last = now
        if len(s) >= FOLD:
            s.fold()

    def measure_key(self, k: SeriesId, started: float) -> None:
        """A sample of the milliseconds since ``started`` (a ``time.perf_counter()`` value);
        ``sample_key`` written out, to spare the hot path a call."""
        ms = (time.perf_counter() - started) * 1000.0
        now = self.clock()
        if now >= self._ends:
            self._rotate(now)
        s = self._samples.get(k)
        if s is None:
            s = self._samples[k] = Series()
        s.append(ms)
        s.last = now
        if len(s) >= FOLD:
            s.fold()

    def count_and_measure(self, counter: SeriesId, sample: SeriesId, started: float) -> None:
        """``incr_key(counter)`` and ``measure_key(sample, started)`` with one clock reading
        (the single-server log counts ``raft.apply`` and times ``raft.fsm.apply`` together)."""
        ms = (time.perf_counter() - started) * 1000.0
        now = self.clock()
        if now >= self._ends:
            self._rotate(now)
        c = self._counters.get(counter)
        if c is None:
            c = self._counters[counter] = Series()
        c.append(1.0)
        c.last = now
        s = self._samples.get(sample)
        if s is None:
            s = self._samples[sample] = Series()
        s.append(ms)
        s.last = now
        if len(s) >= FOLD:
            s.fold()
        if len(c) >= FOLD:
            c.fold()

    def incr(self, key: str, value: float = 1.0, labels: Labels = ()) -> None:
        self.incr_key(series_id(key, labels), value)

    def sample(self, key: str, ms: float, labels: Labels = ()) -> None:
        self.sample_key(series_id(key, labels), ms)

    def measure_since(self, key: str, started: float, labels: Labels = ()) -> None:
        """A sample of the milliseconds since ``started`` (a ``time.perf_counter()`` value)."""
        self.sample_key(series_id(key, labels), (time.perf_counter() - started) * 1000.0)

    def gauge(self, key: str, value: float, labels: Labels = ()) -> None:
        now = self.clock()
        if now >= self._ends:
            self._rotate(now)
        k = series_id(key, labels)
        self.current.gauges[k] = value
        p = self.p_gauges.get(k)
        if p is None:
            self.p_gauges[k] = [value, now]
        else:
            p[0] = value
            p[1] = now

    # ------------------------------------------------------------------ naming

    def full_name(self, key: str, gauge: bool = False) -> str:
        ck = ("g:" if gauge else "") + key
        name = self._name_cache.get(ck)
        if name is None:
            parts = [self.prefix] if self.prefix else []
            if gauge and not self.disable_hostname and self.hostname:
                parts.append(self.hostname)
            parts.append(key)
            name = self._name_cache[ck] = ".".join(parts)
        return name

    # ------------------------------------------------------------------ the JSON view

    def display(self) -> dict[str, Any]:
        """``/v1/agent/metrics``: the last finished interval (or the only one), go-metrics' shape."""
        self._rotate(self.clock())
        data = self.intervals
        iv = data[-2] if len(data) >= 2 else data[-1]
        gauges = [
            {"Name": self.full_name(k, True), "Value": v, "Labels": dict(lb)}
            for (k, lb), v in _by_key(iv.gauges)
        ]
        counters = [a.display(self.full_name(k), lb, INTERVAL) for (k, lb), a in _by_key(iv.counters)]
        samples = [a.display(self.full_name(k), lb, INTERVAL) for (k, lb), a in _by_key(iv.samples)]
        return {
            "Timestamp": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(iv.start)),
            "Gauges": gauges,
            "Points": [],
            "Counters": counters,
            "Samples": samples,
        }

    # ------------------------------------------------------------------ the Prometheus view

    def expire(self) -> None:
        """Forget the Prometheus totals of series not updated within the retention time (a
        series recorded in the current interval was updated at its ``last``)."""
        if self.retention <= 0:
            return
        cutoff = self.clock() - self.retention
        for k in [k for k, v in self.p_gauges.items() if v[1] < cutoff]:
            del self.p_gauges[k]
        cur = self.current
        for table, live in ((self.p_counters, cur.counters), (self.p_summaries, cur.samples)):
            for k in [k for k, t in table.items() if t.last < cutoff]:
                s = live.get(k)
                if s is None or s.last < cutoff:
                    del table[k]

    def _window(self, k: SeriesId, now: float) -> list[float]:
        """The recent values of series ``k`` recorded within the summary window: those of the
        current interval and, while it overlaps the window, of the previous one."""
        out: list[float] = []
        ivs = self.intervals
        for iv in (ivs[-2], ivs[-1]) if len(ivs) >= 2 else (ivs[-1],):
            s = iv.samples.get(k)
            if s is not None and now - s.last <= SUMMARY_WINDOW:
                s.fold()
                out.extend(s.recent)
        return out

    def prometheus_families(self) -> list[tuple[str, str, list[tuple[str, Labels, float]]]]:
        """(name, type, samples) per metric family, sorted by name; labels sorted per sample.

        Counters and summary totals are the finished intervals' totals plus the current one."""
        now = self.clock()
        self._rotate(now)
        self.expire()
        fams: dict[str, tuple[str, list[tuple[str, Labels, float]]]] = {}

        def fam(name: str, kind: str) -> list[tuple[str, Labels, float]]:
            got = fams.get(name)
            if got is None:
                got = fams[name] = (kind, [])
            return got[1]

        cutoff = now - self.retention if self.retention > 0 else -math.inf

        def totals(table: dict[SeriesId, Total], live: dict[SeriesId, Series]) -> dict[SeriesId, tuple[float, int]]:
            out = {k: (t.sum, t.count) for k, t in table.items()}
            for k, s in live.items():
                if s.last < cutoff and k not in table:
                    continue  # expired within this interval (a retention shorter than it)
                s.fold()
                total, count = out.get(k, (0.0, 0))
                out[k] = (total + s.sum, count + s.n)
            return out

        cur = self.current
        for sid, (v, _n) in totals(self.p_counters, cur.counters).items():
            k, lb = _SERIES[sid]
            n = prom_name(self.full_name(k))
            fam(n, "counter").append((n, lb, v))
        for sid, (v, _t) in self.p_gauges.items():
            k, lb = _SERIES[sid]
            n = prom_name(self.full_name(k, True))
            fam(n, "gauge").append((n, lb, v))
        for sid, (total, count) in totals(self.p_summaries, cur.samples).items():
            k, lb = _SERIES[sid]
            n = prom_name(self.full_name(k))
            out = fam(n, "summary")
            for q, v in _quantiles(self._window(sid, now)):
                out.append((n, lb + (("quantile", repr(q)),), v))
            out.append((n + "_sum", lb, total))
            out.append((n + "_count", lb, float(count)))
        return [(n, kind, samples) for n, (kind, samples) in sorted(fams.items())]


METRICS = Metrics()


def default_metrics() -> Metrics:
    """The process's registry (go-metrics' global sink: every subsystem reports to it)."""
    return METRICS
