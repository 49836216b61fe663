"""Recording KV histories against live servers, with fault hooks, and checking them.

The pieces, from the bottom up:

* :class:`History` - the recorded :class:`~muster_testkit.linearizability.Op` list plus fault
  events and workload metadata; JSON-lines dump/load so a failing run can be re-checked offline.
* :func:`arun_workload` - an asyncio driver: ``clients`` concurrent clients, each strictly
  sequential (one request in flight), issue random ``get`` / ``put`` (unique value) / ``cas``
  (``GET`` then ``PUT ?cas=<ModifyIndex>``) on a small rotating keyspace of ``keys`` slots; a
  slot's key is retired after ``ops_per_key`` ops and replaced by a fresh one (Jepsen's
  ``register`` workload does the same, so each key's sub-history stays small enough for WGL).
* :class:`FaultSchedule` - hooks run concurrently with the workload: :class:`NoFaults`,
  :class:`TimedFaults` (callbacks at given offsets) and :class:`ProcessFaults`
  (SIGSTOP/SIGCONT/SIGKILL of an explicit list of PIDs).
* :func:`run_and_check` / :func:`arun_and_check` - run, check, and return a :class:`Report`.

Recording rules (they are what makes the checker's verdict meaningful):

* One clock: ``time.monotonic()`` in this process, read immediately before the request is handed
  to the HTTP client (invocation) and after the whole response is read (completion).
* Outcome classification.  ``ok``: a definite answer.  ``fail``: definitely no effect - the
  request was never sent (connect error/timeout, pool timeout), a 4xx, or a CAS answered
  ``false`` (recorded with ``result=False``: the CAS still observed "value != expected").
  ``info``: anything else - read/write timeouts, resets, 5xx, unparsable 200s.  An ``info`` write
  may have been applied at any later time, so it stays open to +inf.
* No transparent retries: httpx does not retry a request once any byte of it may have been sent
  (aiohttp re-sends PUT on a dropped keep-alive connection, which could apply a write twice and
  break the unique-value assumption, so it is not used here).  ``trust_env=False`` so proxy
  environment variables cannot redirect the traffic.
* Values are unique per key (``"<client>.<seq>"``), keys are unique per run (a random run id), so
  every key starts absent, which is the model's initial state.
* A client whose op ended ``info`` continues under a new process number (Jepsen's convention:
  a process with an op that may still be in flight is never reused).  On a transport error or
  5xx the client moves to the next base URL.
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import base64
import binascii
import contextlib
import dataclasses
import ipaddress
import json
import math
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx

from .linearizability import (
    CheckResult,
    Op,
    OpKind,
    Status,
    Verdict,
    Violation,
    check_history,
    version_regressions,
)

ReadMode = Literal["consistent", "default", "stale"]

__all__ = [
    "FaultContext",
    "FaultEvent",
    "FaultSchedule",
    "History",
    "NoFaults",
    "ProcessFaults",
    "ReadMode",
    "Report",
    "TimedFaults",
    "WorkloadConfig",
    "arun_and_check",
    "arun_workload",
    "check_recorded",
    "run_and_check",
]


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """Something a fault schedule did, at ``t`` (the same monotonic clock as the ops)."""

    t: float
    kind: str
    detail: str = ""


@dataclass(slots=True)
class History:
    """A recorded run: ops (in invocation order), fault events, and what produced them."""

    ops: list[Op] = field(default_factory=list)
    faults: list[FaultEvent] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def dump(self, path: str | Path) -> None:
        """Write as JSON lines: one ``meta`` line, then ``op``/``fault``/``anomaly`` lines."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps({"type": "meta", **self.meta}) + "\n")
            for op in self.ops:
                f.write(json.dumps({"type": "op", **dataclasses.asdict(op)}) + "\n")
            for ev in self.faults:
                f.write(json.dumps({"type": "fault", **dataclasses.asdict(ev)}) + "\n")
            for a in self.anomalies:
                f.write(json.dumps({"type": "anomaly", "text": a}) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> History:
        h = cls()
        with open(path, encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                typ = d.pop("type")
                if typ == "meta":
                    h.meta = d
                elif typ == "op":
                    h.ops.append(Op(**d))
                elif typ == "fault":
                    h.faults.append(FaultEvent(**d))
                elif typ == "anomaly":
                    h.anomalies.append(d["text"])
        return h


@dataclass(slots=True)
class WorkloadConfig:
    """Knobs of :func:`arun_workload`.  ``max_ops`` counts recorded ops (a CAS's GET counts)."""

    clients: int = 8
    keys: int = 10
    ops_per_key: int = 200
    max_ops: int = 3000
    max_seconds: float = 60.0
    read_mode: ReadMode = "consistent"
    read_ratio: float = 0.5
    write_ratio: float = 0.25  # the rest are CAS (GET + PUT ?cas=)
    timeout: float = 1.0  # per request, after connecting
    connect_timeout: float = 0.5
    think_time: float = 0.0  # pause between a client's ops
    seed: int | None = None
    key_prefix: str = "muster-lin"
    allow_non_loopback: bool = False


# ---------------------------------------------------------------------------------------------
# Fault schedules
# ---------------------------------------------------------------------------------------------


class FaultContext:
    """Handed to a :class:`FaultSchedule`: the run's clock origin, a stop flag, an event log."""

    def __init__(self, t0: float, events: list[FaultEvent]) -> None:
        self.t0 = t0
        self.stopping = asyncio.Event()
        self._events = events

    def record(self, kind: str, detail: str = "") -> None:
        self._events.append(FaultEvent(time.monotonic(), kind, detail))

    async def sleep(self, seconds: float) -> bool:
        """Sleep, but wake early when the run stops.  Returns ``False`` if stopping."""
        if self.stopping.is_set():
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=max(0.0, seconds))
        return not self.stopping.is_set()

    async def sleep_until(self, offset: float) -> bool:
        """Sleep until ``t0 + offset``; ``False`` if the run stopped first."""
        return await self.sleep(self.t0 + offset - time.monotonic())


class FaultSchedule(abc.ABC):
    """A fault hook run concurrently with the workload.

    Contract: :meth:`run` injects faults until it returns or ``ctx.stopping`` is set (it may also
    be cancelled at any await); :meth:`heal` is then called exactly once, even after errors or
    cancellation, and must undo every fault still in force (resume paused processes, heal
    partitions) so the system is usable afterwards.  Both must be bounded in time.
    """

    @abc.abstractmethod
    async def run(self, ctx: FaultContext) -> None: ...

    @abc.abstractmethod
    async def heal(self, ctx: FaultContext) -> None: ...


class NoFaults(FaultSchedule):
    """The control run: no faults."""

    async def run(self, ctx: FaultContext) -> None:
        return None

    async def heal(self, ctx: FaultContext) -> None:
        return None


FaultCallback = Callable[[], Awaitable[None] | None]


class TimedFaults(FaultSchedule):
    """Call ``callback`` at each ``(offset_seconds, name, callback)``, in offset order.

    The generic hook for cluster tests: e.g. ``[(2.0, "isolate leader", isolate), (7.0, "heal",
    heal)]``.  ``on_heal`` runs from :meth:`heal` (always).  Callbacks may be sync or async.
    """

    def __init__(
        self, schedule: Sequence[tuple[float, str, FaultCallback]], on_heal: FaultCallback | None = None
    ) -> None:
        self.schedule = sorted(schedule, key=lambda t: t[0])
        self.on_heal = on_heal

    async def run(self, ctx: FaultContext) -> None:
        for offset, name, cb in self.schedule:
            if not await ctx.sleep_until(offset):
                return
            ctx.record(name)
            res = cb()
            if res is not None:
                await res

    async def heal(self, ctx: FaultContext) -> None:
        if self.on_heal is not None:
            ctx.record("heal")
            res = self.on_heal()
            if res is not None:
                await res


def _proc_start_time(pid: int) -> int | None:
    """The process start time from ``/proc/<pid>/stat`` (field 22), or ``None`` if unavailable.

    Used to make sure a PID still names the process we were given before signalling it: PIDs are
    reused after a process dies, and signalling a stranger is exactly what we must never do.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[19])  # field 22 overall; fields[0] is field 3 (state)


class ProcessFaults(FaultSchedule):
    """SIGSTOP/SIGCONT (``mode="pause"``), SIGKILL (``"kill"``) or both (``"mixed"``) against an
    explicit list of PIDs, one random PID per round.

    Bounded: at most ``max_rounds`` rounds, each waiting ``interval`` then (for pauses) holding
    the pause for ``duration`` seconds (uniform in the given ranges).  Only the listed PIDs (and
    PIDs returned by ``restart``) are ever signalled, never a process group, never ``<= 1`` or
    ourselves, and only while ``/proc/<pid>/stat`` still shows the start time it had when we were
    given it.  A killed PID leaves the pool unless ``restart(old_pid)`` returns a replacement PID.
    :meth:`heal` resumes every PID this schedule paused.
    """

    def __init__(
        self,
        pids: Sequence[int],
        *,
        mode: Literal["pause", "kill", "mixed"] = "pause",
        interval: tuple[float, float] = (1.0, 2.0),
        duration: tuple[float, float] = (0.3, 1.0),
        max_rounds: int = 50,
        seed: int | None = None,
        restart: Callable[[int], Awaitable[int | None]] | None = None,
    ) -> None:
        for pid in pids:
            self._check_pid(pid)
        self.mode = mode
        self.interval = interval
        self.duration = duration
        self.max_rounds = max_rounds
        self.rng = random.Random(seed)
        self.restart = restart
        self.pool: dict[int, int | None] = {pid: _proc_start_time(pid) for pid in pids}
        self.paused: set[int] = set()
        self.rounds = 0

    @staticmethod
    def _check_pid(pid: int) -> None:
        if not isinstance(pid, int) or pid <= 1 or pid == os.getpid():
            raise ValueError(f"refusing to manage PID {pid!r}")

    def _signal(self, ctx: FaultContext, pid: int, sig: signal.Signals) -> bool:
        self._check_pid(pid)
        if pid not in self.pool:
            raise ValueError(f"PID {pid} is not one of ours")
        if self.pool[pid] is not None and _proc_start_time(pid) != self.pool[pid]:
            ctx.record("skip", f"pid {pid} is gone or was reused; not sending {sig.name}")
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            ctx.record("skip", f"pid {pid} no longer exists")
            return False
        ctx.record(sig.name, f"pid {pid}")
        return True

    async def run(self, ctx: FaultContext) -> None:
        while self.rounds < self.max_rounds and self.pool:
            if not await ctx.sleep(self.rng.uniform(*self.interval)):
                return
            self.rounds += 1
            pid = self.rng.choice(sorted(self.pool))
            kill = self.mode == "kill" or (self.mode == "mixed" and self.rng.random() < 0.5)
            if kill:
                if self._signal(ctx, pid, signal.SIGKILL):
                    del self.pool[pid]
                    self.paused.discard(pid)
                    if self.restart is not None:
                        new = await self.restart(pid)
                        if new is not None:
                            self._check_pid(new)
                            self.pool[new] = _proc_start_time(new)
                            ctx.record("restart", f"pid {pid} -> {new}")
                continue
            if not self._signal(ctx, pid, signal.SIGSTOP):
                continue
            self.paused.add(pid)
            try:
                await ctx.sleep(self.rng.uniform(*self.duration))
            finally:
                if pid in self.pool and self._signal(ctx, pid, signal.SIGCONT):
                    self.paused.discard(pid)

    async def heal(self, ctx: FaultContext) -> None:
        for pid in sorted(self.paused):
            if pid in self.pool:
                self._signal(ctx, pid, signal.SIGCONT)
        self.paused.clear()


# ---------------------------------------------------------------------------------------------
# The workload
# ---------------------------------------------------------------------------------------------


class _Keyspace:
    """``n`` slots, each naming a key; a slot's key is replaced after ``per_key`` ops."""

    def __init__(self, prefix: str, n: int, per_key: int) -> None:
        self.prefix = prefix
        self.per_key = per_key
        self.gen = [0] * n
        self.used = [0] * n

    def take(self, rng: random.Random) -> str:
        slot = rng.randrange(len(self.gen))
        key = f"{self.prefix}/{slot}-{self.gen[slot]}"
        self.used[slot] += 1
        if self.used[slot] >= self.per_key:
            self.gen[slot] += 1
            self.used[slot] = 0
        return key


class _Recorder:
    def __init__(self, history: History) -> None:
        self.history = history
        self.next_id = 0
        self.issued = 0

    def new_id(self) -> int:
        self.next_id += 1
        self.issued += 1
        return self.next_id - 1

    def add(self, op: Op) -> None:
        self.history.ops.append(op)


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _classify(exc: BaseException) -> Status:
    """``fail`` when the request provably never left this process, else ``info``."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return "fail"
    return "info"


class _Client:
    def __init__(
        self,
        idx: int,
        urls: Sequence[str],
        cfg: WorkloadConfig,
        keyspace: _Keyspace,
        rec: _Recorder,
        deadline: float,
        rng: random.Random,
    ) -> None:
        self.idx = idx
        self.process = idx
        self.urls = list(urls)
        self.server = idx % len(self.urls)
        self.cfg = cfg
        self.keyspace = keyspace
        self.rec = rec
        self.deadline = deadline
        self.rng = rng
        self.seq = 0
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(cfg.timeout, connect=cfg.connect_timeout),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            trust_env=False,
            verify=False,  # plain HTTP to loopback; skips loading the CA bundle once per client
        )
        q = {"consistent": "?consistent", "stale": "?stale", "default": ""}
        self.read_query = q[cfg.read_mode]

    def _url(self, key: str) -> str:
        return f"{self.urls[self.server].rstrip('/')}/v1/kv/{quote(key, safe='/')}"

    def _move(self) -> None:
        self.server = (self.server + 1) % len(self.urls)

    def _done(self) -> bool:
        return self.rec.issued >= self.cfg.max_ops or time.monotonic() >= self.deadline

    async def _request(self, method: str, url: str, body: bytes | None) -> httpx.Response:
        # A hard cap above httpx's own timeouts, in case a phase is not covered by them.
        async with asyncio.timeout(self.cfg.timeout + self.cfg.connect_timeout + 1.0):
            return await self.http.request(method, url, content=body)

    async def read(self, key: str) -> Op:
        server = self.urls[self.server]
        op_id = self.rec.new_id()
        call = time.monotonic()
        try:
            resp = await self._request("GET", self._url(key) + self.read_query, None)
        except (httpx.HTTPError, TimeoutError) as exc:
            ret = time.monotonic()
            self._move()
            return self._record(op_id, key, "read", _classify(exc), call, ret, server, error=repr(exc))
        ret = time.monotonic()
        if resp.status_code == 404:
            return self._record(op_id, key, "read", "ok", call, ret, server)
        if resp.status_code != 200:
            if resp.status_code >= 500:
                self._move()
            status: Status = "fail" if 400 <= resp.status_code < 500 else "info"
            return self._record(
                op_id, key, "read", status, call, ret, server, error=f"HTTP {resp.status_code}"
            )
        try:
            entries = resp.json()
            entry = entries[0]
            raw = entry["Value"]
            value = "" if raw is None else base64.b64decode(raw, validate=True).decode()
            version = int(entry["ModifyIndex"])
            if len(entries) != 1 or entry["Key"] != key:
                raise ValueError(f"unexpected entries {entries!r}")
        except (ValueError, KeyError, IndexError, TypeError, binascii.Error) as exc:
            self.rec.history.anomalies.append(f"op #{op_id}: unparsable KV GET response: {exc!r}")
            return self._record(op_id, key, "read", "info", call, ret, server, error=f"bad body: {exc!r}")
        return self._record(op_id, key, "read", "ok", call, ret, server, value=value, version=version)

    async def write(self, key: str, value: str, cas: tuple[str | None, int] | None) -> Op:
        server = self.urls[self.server]
        kind: OpKind = "write" if cas is None else "cas"
        expected, version = (None, None) if cas is None else cas
        op_id = self.rec.new_id()
        url = self._url(key) + ("" if cas is None else f"?cas={cas[1]}")
        call = time.monotonic()
        try:
            resp = await self._request("PUT", url, value.encode())
        except (httpx.HTTPError, TimeoutError) as exc:
            ret = time.monotonic()
            self._move()
            return self._record(
                op_id, key, kind, _classify(exc), call, ret, server, value, expected, version, error=repr(exc)
            )
        ret = time.monotonic()
        body = resp.text.strip()
        if resp.status_code == 200 and body == "true":
            return self._record(
                op_id,
                key,
                kind,
                "ok",
                call,
                ret,
                server,
                value,
                expected,
                version,
                result=True if cas else None,
            )
        if resp.status_code == 200 and body == "false" and cas is not None:
            return self._record(
                op_id, key, kind, "fail", call, ret, server, value, expected, version, result=False
            )
        if 400 <= resp.status_code < 500:
            return self._record(
                op_id,
                key,
                kind,
                "fail",
                call,
                ret,
                server,
                value,
                expected,
                version,
                error=f"HTTP {resp.status_code}",
            )
        if resp.status_code == 200:
            self.rec.history.anomalies.append(f"op #{op_id}: plain PUT answered {body!r}")
        else:
            self._move()
        return self._record(
            op_id,
            key,
            kind,
            "info",
            call,
            ret,
            server,
            value,
            expected,
            version,
            error=f"HTTP {resp.status_code} {body[:80]!r}",
        )

    def _record(
        self,
        op_id: int,
        key: str,
        kind: OpKind,
        status: Status,
        call: float,
        ret: float,
        server: str,
        value: str | None = None,
        expected: str | None = None,
        version: int | None = None,
        *,
        result: bool | None = None,
        error: str = "",
    ) -> Op:
        op = Op(
            id=op_id,
            key=key,
            kind=kind,
            status=status,
            call=call,
            ret=math.inf if status == "info" else ret,
            value=value,
            expected=expected,
            version=version,
            result=result,
            client=self.process,
            server=server,
            error=error,
        )
        self.rec.add(op)
        if status == "info":
            self.process += self.cfg.clients
        return op

    def _value(self) -> str:
        self.seq += 1
        return f"{self.idx}.{self.seq}"

    async def run(self) -> None:
        try:
            while not self._done():
                key = self.keyspace.take(self.rng)
                r = self.rng.random()
                if r < self.cfg.read_ratio:
                    await self.read(key)
                elif r < self.cfg.read_ratio + self.cfg.write_ratio:
                    await self.write(key, self._value(), None)
                else:
                    got = await self.read(key)
                    if got.status == "ok" and not self._done():
                        await self.write(key, self._value(), (got.value, got.version or 0))
                if self.cfg.think_time > 0:
                    await asyncio.sleep(self.cfg.think_time)
        finally:
            await self.http.aclose()


async def arun_workload(
    urls: Sequence[str] | str, config: WorkloadConfig | None = None, faults: FaultSchedule | None = None
) -> History:
    """Run the workload until ``max_ops`` ops were issued or ``max_seconds`` passed.

    The fault schedule runs alongside and is always healed before returning.  Bounded: clients
    stop issuing at the deadline and each request is capped by its timeouts, so the call returns
    within about ``max_seconds + timeout + connect_timeout + 1`` plus the schedule's heal time.
    """
    cfg = config or WorkloadConfig()
    if cfg.clients < 1 or cfg.keys < 1 or cfg.ops_per_key < 1:
        raise ValueError("clients, keys and ops_per_key must be >= 1")
    if not (0 <= cfg.read_ratio and 0 <= cfg.write_ratio and cfg.read_ratio + cfg.write_ratio <= 1):
        raise ValueError("read_ratio and write_ratio must be >= 0 with a sum <= 1")
    url_list = [urls] if isinstance(urls, str) else list(urls)
    if not url_list:
        raise ValueError("no base URLs")
    if not cfg.allow_non_loopback:
        for u in url_list:
            if not _is_loopback(u):
                raise ValueError(f"{u} is not a loopback address (set allow_non_loopback)")
    seed = cfg.seed if cfg.seed is not None else random.SystemRandom().randrange(2**32)
    run_id = uuid.UUID(int=random.Random(seed).getrandbits(128)).hex[:12] + f"-{os.getpid()}-{time.time_ns()}"
    history = History(
        meta={
            "urls": url_list,
            "seed": seed,
            "run_id": run_id,
            "config": dataclasses.asdict(cfg),
        }
    )
    faults = faults or NoFaults()
    rec = _Recorder(history)
    keyspace = _Keyspace(f"{cfg.key_prefix}/{run_id}", cfg.keys, cfg.ops_per_key)
    t0 = time.monotonic()
    ctx = FaultContext(t0, history.faults)
    master = random.Random(seed)
    clients = [
        _Client(i, url_list, cfg, keyspace, rec, t0 + cfg.max_seconds, random.Random(master.getrandbits(64)))
        for i in range(cfg.clients)
    ]
    fault_task = asyncio.create_task(faults.run(ctx))
    try:
        async with asyncio.TaskGroup() as tg:  # one client's crash cancels the others
            for c in clients:
                tg.create_task(c.run())
    finally:
        ctx.stopping.set()
        fault_error: BaseException | None = None
        try:
            await asyncio.wait_for(fault_task, timeout=5.0)
        except TimeoutError:
            ctx.record("error", "fault schedule did not stop within 5s; cancelled")
        except Exception as exc:  # a broken schedule must not hide the history; re-raised below
            fault_error = exc
        await faults.heal(ctx)
        history.meta["seconds"] = time.monotonic() - t0
    if fault_error is not None:
        raise fault_error
    history.ops.sort(key=lambda op: op.id)
    return history


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Report:
    """What :func:`run_and_check` found.

    ``linearizable`` is ``True``/``False``/``None`` (unknown: some key exhausted its budget).
    ``stale_reads`` counts successful reads that observed an older ModifyIndex than an op that
    had completed before the read began (a lower bound on stale reads; in ``consistent`` mode
    each one is also a violation).
    """

    verdict: Verdict
    ops: int
    ok: int
    fail: int
    info: int
    by_kind: dict[str, dict[str, int]]
    seconds: float
    check_seconds: float
    keys: int
    unknown_keys: list[str]
    violations: list[Violation]
    reads_ok: int
    stale_reads: int
    read_mode: str
    faults: list[FaultEvent]
    anomalies: list[str]
    history: History
    check: CheckResult

    @property
    def linearizable(self) -> bool | None:
        return {Verdict.LINEARIZABLE: True, Verdict.NOT_LINEARIZABLE: False}.get(self.verdict)

    def summary(self) -> str:
        rate = self.ops / self.seconds if self.seconds > 0 else 0.0
        kinds = ", ".join(
            f"{k}: " + "/".join(f"{v.get(s, 0)}" for s in ("ok", "fail", "info"))
            for k, v in sorted(self.by_kind.items())
        )
        fault_counts: dict[str, int] = {}
        for ev in self.faults:
            fault_counts[ev.kind] = fault_counts.get(ev.kind, 0) + 1
        lines = [
            f"{self.verdict.value}: {self.ops} ops in {self.seconds:.1f}s ({rate:.0f}/s), "
            f"ok {self.ok} / fail {self.fail} / info {self.info}; {kinds} (ok/fail/info)",
            f"  read mode {self.read_mode}: {self.stale_reads} stale of {self.reads_ok} ok reads; "
            f"{self.keys} keys checked in {self.check_seconds:.2f}s, {len(self.unknown_keys)} unknown, "
            f"{len(self.violations)} violations",
            f"  faults: {fault_counts or 'none'}; anomalies: {len(self.anomalies)}",
        ]
        lines.extend(v.describe() for v in self.violations[:5])
        lines.extend(self.anomalies[:5])
        return "\n".join(lines)


def check_recorded(
    history: History, *, max_steps_per_key: int = 2_000_000, time_limit_per_key: float | None = 30.0
) -> Report:
    """Check a recorded (or loaded) history and summarise it."""
    ops = history.ops
    by_kind: dict[str, dict[str, int]] = {}
    for op in ops:
        d = by_kind.setdefault(op.kind, {})
        d[op.status] = d.get(op.status, 0) + 1
    result = check_history(ops, max_steps_per_key=max_steps_per_key, time_limit_per_key=time_limit_per_key)
    by_key: dict[str, list[Op]] = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    stale = 0
    for key, kops in by_key.items():
        stale += sum(1 for _, later in version_regressions(key, kops, limit=0) if later.kind == "read")
    return Report(
        verdict=result.verdict,
        ops=len(ops),
        ok=sum(1 for op in ops if op.status == "ok"),
        fail=sum(1 for op in ops if op.status == "fail"),
        info=sum(1 for op in ops if op.status == "info"),
        by_kind=by_kind,
        seconds=float(history.meta.get("seconds", 0.0)),
        check_seconds=result.seconds,
        keys=len(result.keys),
        unknown_keys=result.unknown_keys,
        violations=result.violations,
        reads_ok=sum(1 for op in ops if op.kind == "read" and op.status == "ok"),
        stale_reads=stale,
        read_mode=str(history.meta.get("config", {}).get("read_mode", "?")),
        faults=list(history.faults),
        anomalies=list(history.anomalies),
        history=history,
        check=result,
    )


async def arun_and_check(
    urls: Sequence[str] | str,
    *,
    ops: int = 3000,
    seconds: float = 60.0,
    faults: FaultSchedule | None = None,
    config: WorkloadConfig | None = None,
    max_steps_per_key: int = 2_000_000,
    time_limit_per_key: float | None = 30.0,
) -> Report:
    """Run the workload (``ops``/``seconds`` override ``config.max_ops``/``max_seconds``), then
    check the history.  The check is CPU-bound and runs in a worker thread so the loop stays free.
    """
    cfg = dataclasses.replace(config or WorkloadConfig(), max_ops=ops, max_seconds=seconds)
    history = await arun_workload(urls, cfg, faults)
    return await asyncio.to_thread(
        check_recorded, history, max_steps_per_key=max_steps_per_key, time_limit_per_key=time_limit_per_key
    )


def run_and_check(
    urls: Sequence[str] | str,
    *,
    ops: int = 3000,
    seconds: float = 60.0,
    faults: FaultSchedule | None = None,
    config: WorkloadConfig | None = None,
    max_steps_per_key: int = 2_000_000,
    time_limit_per_key: float | None = 30.0,
) -> Report:
    """Synchronous :func:`arun_and_check` (starts its own event loop)."""
    return asyncio.run(
        arun_and_check(
            urls,
            ops=ops,
            seconds=seconds,
            faults=faults,
            config=config,
            max_steps_per_key=max_steps_per_key,
            time_limit_per_key=time_limit_per_key,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m muster_testkit.history --url http://127.0.0.1:8500 --ops 3000``; or
    ``--check FILE`` to re-check a dumped history.  Exit status 0 only when linearizable."""
    p = argparse.ArgumentParser(prog="python -m muster_testkit.history", description=main.__doc__)
    p.add_argument("--url", action="append", default=[], help="base URL (repeatable)")
    p.add_argument("--ops", type=int, default=3000)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--keys", type=int, default=10)
    p.add_argument("--ops-per-key", type=int, default=200)
    p.add_argument("--read-mode", choices=["consistent", "default", "stale"], default="consistent")
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--pause-pid", type=int, action="append", default=[], help="SIGSTOP/SIGCONT this PID")
    p.add_argument("--dump", help="write the history here (JSON lines)")
    p.add_argument("--check", help="re-check a dumped history instead of running")
    args = p.parse_args(argv)
    if args.check:
        report = check_recorded(History.load(args.check))
    else:
        if not args.url:
            p.error("--url is required unless --check is given")
        cfg = WorkloadConfig(
            clients=args.clients,
            keys=args.keys,
            ops_per_key=args.ops_per_key,
            read_mode=args.read_mode,
            timeout=args.timeout,
            seed=args.seed,
        )
        faults: FaultSchedule = ProcessFaults(args.pause_pid) if args.pause_pid else NoFaults()
        report = run_and_check(args.url, ops=args.ops, seconds=args.seconds, faults=faults, config=cfg)
        if args.dump:
            report.history.dump(args.dump)
    print(report.summary())
    return 0 if report.linearizable else 1


if __name__ == "__main__":
    sys.exit(main())
