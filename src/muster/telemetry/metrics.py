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

Cost on the hot path: recording is one dict lookup and a few float operations per view, no lock,
no allocation once a series exists.  A call site that records the same series on every request
(the KV PUT path: ``api.http``, ``kvs.apply``, ``raft.apply``, ``raft.fsm.apply``) holds a
``Series`` instead (``METRICS.series(key, labels)``): it keeps the series' aggregate and
Prometheus slot between records, so a record is a clock read and the float updates (no key
tuple, no dict probe, ~2x cheaper; bench/put_path.py).  While ``prometheus_retention_time`` is
0 (Consul's default: the Prometheus view answers nothing) no Prometheus series is kept at all,
so a record updates only the current interval's aggregate (bench/telemetry_cost.py); setting a
retention starts the Prometheus series from then on.  A series re-resolves its slots whenever
the registry's ``epoch`` moved (a new interval, ``reset``, a Prometheus series expired), so it
never writes into a slot the registry no longer holds.

Threads: recording happens on the event loop and on the DNS receive threads (``dns/server.py``).
A record from another thread is safe: appends to ``pending`` and dict probes/inserts are atomic
under the GIL; the two read-modify-write steps that are not, folding an aggregate's pending
values and starting a new interval, take a lock (once per ``FOLD`` records / per interval, never
per record); readers iterate over snapshots (``list(...)``, one C call) so a series a thread adds
meanwhile cannot break their loop.  A Prometheus counter/summary total may still lose an update
when two threads add to it at the same instant (the DNS threads record samples only).
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Labels = tuple[tuple[str, str], ...]
Key = tuple[str, Labels]

INTERVAL = 10.0
RETAIN = 60.0
SUMMARY_WINDOW = 10.0
SUMMARY_RESERVOIR = 2048
QUANTILES = (0.5, 0.9, 0.99)

#: Serializes the rare read-modify-write steps a second thread could interleave (see the docstring).
_FOLD_LOCK = threading.Lock()
_ROTATE_LOCK = threading.Lock()

_FORBIDDEN = str.maketrans({c: "_" for c in " .=-/:"})


def prom_name(name: str) -> str:
    """go-metrics' flattening of a dotted key into a Prometheus metric name."""
    return name.translate(_FORBIDDEN)


FOLD = 256  # values an Aggregate holds unfolded at most


class Aggregate:
    """go-metrics' ``AggregateSample`` for one series in one interval.

    A record appends its value to ``pending`` (one list append: the hot path's whole cost);
    ``fold`` moves the pending values into the totals with C-speed builtins, when ``FOLD`` are
    pending and whenever a total is read (``count``, ``sum``, ``sumsq``, ``min``, ``max`` fold
    first), so a reader always sees every value recorded.  ``pending`` is cleared in place, never
    replaced: a ``Series`` may hold it."""

    __slots__ = ("_count", "_sum", "_sumsq", "_min", "_max", "pending")

    def __init__(self) -> None:
        self._count = 0
        self._sum = 0.0
        self._sumsq = 0.0
        self._min = math.inf
        self._max = -math.inf
        self.pending: list[float] = []

    def ingest(self, v: float) -> None:
        p = self.pending
        p.append(v)
        if len(p) >= FOLD:
            self.fold()

    def fold(self) -> None:
        p = self.pending
        if not p:
            return
        with _FOLD_LOCK:
            vals = p[:]
            if not vals:
                return
            del p[: len(vals)]
            self._count += len(vals)
            self._sum += math.fsum(vals)
            self._sumsq += math.fsum([v * v for v in vals])
            lo, hi = min(vals), max(vals)
            if lo < self._min:
                self._min = lo
            if hi > self._max:
                self._max = hi

    @property
    def count(self) -> int:
        self.fold()
        return self._count

    @property
    def sum(self) -> float:
        self.fold()
        return self._sum

    @property
    def sumsq(self) -> float:
        self.fold()
        return self._sumsq

    @property
    def min(self) -> float:
        self.fold()
        return self._min

    @property
    def max(self) -> float:
        self.fold()
        return self._max

    def stddev(self) -> float:
        n = self.count
        if n < 2:
            return 0.0
        var = (self.sumsq - self.sum * self.sum / n) / (n - 1)
        return math.sqrt(var) if var > 0 else 0.0

    def display(self, name: str, labels: Labels, interval: float) -> dict[str, Any]:
        return {
            "Name": name,
            "Count": self.count,
            "Rate": self.sum / interval,
            "Sum": self.sum,
            "Min": self.min if self.count else 0.0,
            "Max": self.max if self.count else 0.0,
            "Mean": self.sum / self.count if self.count else 0.0,
            "Stddev": self.stddev(),
            "Labels": dict(labels),
        }


@dataclass
class Interval:
    start: float
    gauges: dict[Key, float]
    counters: dict[Key, Aggregate]
    samples: dict[Key, Aggregate]


class Summary:
    """A Prometheus summary: cumulative sum/count and a bounded window of recent values."""

    __slots__ = ("sum", "count", "recent", "updated")

    def __init__(self) -> None:
        self.sum = 0.0
        self.count = 0
        self.recent: deque[tuple[float, float]] = deque(maxlen=SUMMARY_RESERVOIR)
        self.updated = 0.0

    def quantiles(self, now: float) -> list[tuple[float, float]]:
        vals = sorted(v for t, v in list(self.recent) if now - t <= SUMMARY_WINDOW)
        if not vals:
            return [(q, math.nan) for q in QUANTILES]
        n = len(vals)
        return [(q, vals[min(n - 1, int(q * n))]) for q in QUANTILES]


class Series:
    """One series (``key`` with fixed ``labels``) of a ``Metrics`` registry, resolved once at its
    call site; ``incr`` records it as a counter, ``sample``/``measure_since`` as a sample (one
    series is used as one kind only, as go-metrics' keys are).  Same result as
    ``Metrics.incr``/``sample`` with the same arguments, minus the per-record key tuple and
    dict probes.  Invariant: ``_agg``/``_prom`` are the registry's current slots for this key
    whenever ``_epoch == metrics.epoch`` and the clock is still inside ``_start``'s interval;
    ``_prom``/``_count`` are None while the registry keeps no Prometheus series (retention 0)."""

    __slots__ = ("_m", "registry", "_k", "_epoch", "_start", "_agg", "_prom", "_count", "_pend", "_ends_pc", "_off")

    def __init__(self, metrics: Metrics, key: str, labels: Labels = ()) -> None:
        self._m = metrics
        #: The registry this series records into (a plain attribute: the request path reads it).
        self.registry = metrics
        self._k: Key = (key, labels)
        self._epoch = -1
        self._start = 0.0
        self._agg: Aggregate | None = None
        self._prom: Summary | None = None
        self._count: list[float] | None = None
        self._pend: list[float] = []
        #: ``measure_since`` reads only ``perf_counter``: the interval's end on that clock, and
        #: the registry clock minus ``perf_counter`` (both taken when the slots were resolved).
        self._ends_pc = 0.0
        self._off = 0.0

    def _resolve_sample(self, now: float) -> tuple[Aggregate, Summary | None]:
        m = self._m
        cur = m._rotate(now)
        k = self._k
        agg = cur.samples.get(k)
        if agg is None:
            agg = cur.samples[k] = Aggregate()
        s: Summary | None = None
        if m.retention > 0:
            s = m.p_summaries.get(k)
            if s is None:
                s = m.p_summaries[k] = Summary()
        self._agg, self._prom, self._start, self._epoch = agg, s, cur.start, m.epoch
        self._pend = agg.pending
        pc = time.perf_counter()
        self._ends_pc = pc + (cur.start + INTERVAL - now)
        self._off = now - pc
        return agg, s

    def sample(self, ms: float) -> None:
        m = self._m
        now = m.clock()
        agg, s = self._agg, self._prom
        if self._epoch != m.epoch or now - self._start >= INTERVAL or agg is None:
            agg, s = self._resolve_sample(now)
        p = self._pend
        p.append(ms)
        if len(p) >= FOLD:
            agg.fold()
        if s is not None:
            s.sum += ms
            s.count += 1
            s.recent.append((now, ms))
            s.updated = now

    def measure_since(self, started: float, count: Series | None = None) -> None:
        """A sample of the milliseconds since ``started`` (a ``time.perf_counter()`` value);
        ``sample`` written out, to spare the hot path a call, and timed on ``perf_counter``
        alone: the interval's end and the record's time are that reading mapped onto the
        registry clock (the mapping is taken again at every interval, reset or expiry).  With ``count``, that counter
        series is incremented by one on the same clock reading (the single-server log counts
        ``raft.apply`` and times ``raft.fsm.apply`` together)."""
        pc = time.perf_counter()
        ms = (pc - started) * 1000.0
        m = self._m
        agg, s = self._agg, self._prom
        if self._epoch != m.epoch or pc >= self._ends_pc or agg is None:
            agg, s = self._resolve_sample(m.clock())
        p = self._pend
        p.append(ms)
        if len(p) >= FOLD:
            agg.fold()
        if s is not None or count is not None:
            now = pc + self._off
            if s is not None:
                s.sum += ms
                s.count += 1
                s.recent.append((now, ms))
                s.updated = now
            if count is not None:
                count._incr(1.0, now)

    def incr(self, value: float = 1.0) -> None:
        self._incr(value, self._m.clock())

    def _incr(self, value: float, now: float) -> None:
        m = self._m
        agg, c = self._agg, self._count
        if self._epoch != m.epoch or now - self._start >= INTERVAL or agg is None:
            cur = m._rotate(now)
            k = self._k
            agg = cur.counters.get(k)
            if agg is None:
                agg = cur.counters[k] = Aggregate()
            c = None
            if m.retention > 0:
                c = m.p_counters.get(k)
                if c is None:
                    c = m.p_counters[k] = [0.0, now]
            self._agg, self._count, self._start, self._epoch = agg, c, cur.start, m.epoch
            self._pend = agg.pending
        p = self._pend
        p.append(value)
        if len(p) >= FOLD:
            agg.fold()
        if c is not None:
            c[0] += value
            c[1] = now


class Metrics:
    """The process's metrics (go-metrics' global registry); see the module docstring."""

    def __init__(self, clock: Callable[[], float] = time.time, prefix: str = "consul", hostname: str | None = None) -> None:
        self.clock = clock
        self.prefix = prefix
        self.hostname = hostname if hostname is not None else socket.gethostname().split(".")[0]
        self.disable_hostname = False
        self.retention = 0.0
        self._name_cache: dict[str, str] = {}
        #: Moves whenever a slot a ``Series`` may hold stops being the registry's (see ``Series``).
        self.epoch = 0
        self.reset()

    def reset(self) -> None:
        """Forget every series (a test that reads exact values starts from here)."""
        self.epoch += 1
        now = self.clock()
        self.current = Interval(now - now % INTERVAL, {}, {}, {})
        self.intervals: deque[Interval] = deque([self.current], maxlen=int(RETAIN / INTERVAL))
        self.p_counters: dict[Key, list[float]] = {}  # [value, updated]
        self.p_gauges: dict[Key, list[float]] = {}
        self.p_summaries: dict[Key, Summary] = {}

    def configure(self, prefix: str, disable_hostname: bool, retention: float) -> None:
        self.prefix = prefix or "consul"
        self.disable_hostname = disable_hostname
        self.retention = retention
        self._name_cache.clear()
        self.epoch += 1  # a held Series re-resolves: its Prometheus slots follow the retention

    # ------------------------------------------------------------------ recording

    def _rotate(self, now: float) -> Interval:
        cur = self.current
        if now - cur.start < INTERVAL:
            return cur
        with _ROTATE_LOCK:  # two threads crossing the boundary together start one interval
            cur = self.current
            if now - cur.start < INTERVAL:
                return cur
            cur = Interval(now - now % INTERVAL, {}, {}, {})
            self.current = cur
            self.intervals.append(cur)
            self.epoch += 1
            return cur

    def series(self, key: str, labels: Labels = ()) -> Series:
        """A handle recording ``key``/``labels`` (counter or sample) without per-record lookups."""
        return Series(self, key, labels)

    def incr(self, key: str, value: float = 1.0, labels: Labels = ()) -> None:
        now = self.clock()
        k = (key, labels)
        cur = self._rotate(now)
        agg = cur.counters.get(k)
        if agg is None:
            agg = cur.counters[k] = Aggregate()
        agg.ingest(value)
        if self.retention <= 0:
            return
        p = self.p_counters.get(k)
        if p is None:
            self.p_counters[k] = [value, now]
        else:
            p[0] += value
            p[1] = now

    def gauge(self, key: str, value: float, labels: Labels = ()) -> None:
        now = self.clock()
        k = (key, labels)
        self._rotate(now).gauges[k] = value
        if self.retention <= 0:
            return
        p = self.p_gauges.get(k)
        if p is None:
            self.p_gauges[k] = [value, now]
        else:
            p[0] = value
            p[1] = now

    def sample(self, key: str, ms: float, labels: Labels = ()) -> None:
        now = self.clock()
        k = (key, labels)
        cur = self._rotate(now)
        agg = cur.samples.get(k)
        if agg is None:
            agg = cur.samples[k] = Aggregate()
        agg.ingest(ms)
        if self.retention <= 0:
            return
        s = self.p_summaries.get(k)
        if s is None:
            s = self.p_summaries[k] = Summary()
        s.sum += ms
        s.count += 1
        s.recent.append((now, ms))
        s.updated = now

    def measure_since(self, key: str, started: float, labels: Labels = ()) -> None:
        """A sample of the milliseconds since ``started`` (a ``time.perf_counter()`` value)."""
        self.sample(key, (time.perf_counter() - started) * 1000.0, labels)

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
        data = list(self.intervals)
        iv = data[-2] if len(data) >= 2 else data[-1]
        gauges = [
            {"Name": self.full_name(k, True), "Value": v, "Labels": dict(lb)}
            for (k, lb), v in sorted(iv.gauges.items())
        ]
        counters = [a.display(self.full_name(k), lb, INTERVAL) for (k, lb), a in sorted(iv.counters.items())]
        samples = [a.display(self.full_name(k), lb, INTERVAL) for (k, lb), a in sorted(iv.samples.items())]
        return {
            "Timestamp": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(iv.start)),
            "Gauges": gauges,
            "Points": [],
            "Counters": counters,
            "Samples": samples,
        }

    # ------------------------------------------------------------------ the Prometheus view

    def expire(self) -> None:
        """Forget Prometheus series not updated within the retention time."""
        if self.retention <= 0:
            return
        cutoff = self.clock() - self.retention
        for table in (self.p_counters, self.p_gauges):
            for k in [k for k, v in list(table.items()) if v[1] < cutoff]:
                del table[k]
        for k in [k for k, s in list(self.p_summaries.items()) if s.updated < cutoff]:
            del self.p_summaries[k]
        self.epoch += 1  # a series may hold a slot just dropped

    def prometheus_families(self) -> list[tuple[str, str, list[tuple[str, Labels, float]]]]:
        """(name, type, samples) per metric family, sorted by name; labels sorted per sample."""
        self.expire()
        now = self.clock()
        fams: dict[str, tuple[str, list[tuple[str, Labels, float]]]] = {}

        def fam(name: str, kind: str) -> list[tuple[str, Labels, float]]:
            got = fams.get(name)
            if got is None:
                got = fams[name] = (kind, [])
            return got[1]

        for (k, lb), (v, _t) in list(self.p_counters.items()):
            n = prom_name(self.full_name(k))
            fam(n, "counter").append((n, lb, v))
        for (k, lb), (v, _t) in list(self.p_gauges.items()):
            n = prom_name(self.full_name(k, True))
            fam(n, "gauge").append((n, lb, v))
        for (k, lb), s in list(self.p_summaries.items()):
            n = prom_name(self.full_name(k))
            out = fam(n, "summary")
            for q, v in s.quantiles(now):
                out.append((n, lb + (("quantile", repr(q)),), v))
            out.append((n + "_sum", lb, s.sum))
            out.append((n + "_count", lb, float(s.count)))
        return [(n, kind, samples) for n, (kind, samples) in sorted(fams.items())]


METRICS = Metrics()


def default_metrics() -> Metrics:
    """The process's registry (go-metrics' global sink: every subsystem reports to it)."""
    return METRICS
