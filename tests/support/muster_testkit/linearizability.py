"""Linearizability checker for Consul-style KV registers (Wing & Gong search, Lowe's memoisation).

What is checked
===============

A *history* is a list of :class:`Op` records, one per client operation, each with an invocation
time ``call`` and a completion time ``ret`` taken from **one** monotonic clock.  Linearizability
is *local* (Herlihy & Wing; "P-compositionality" in Horn & Kroening): a history is linearizable
iff every key's sub-history is, so :func:`check_history` splits by key and checks each key on its
own with :func:`check_key`.

The model: a versioned register
-------------------------------

Each key is a register holding a **value** (``None`` = absent; the register starts absent and
the workload never deletes).  Operations:

* ``read`` -> returns the value (or ``None`` for a 404) and, optionally, the entry's
  ``ModifyIndex`` (``version``).
* ``write(v)`` -> plain ``PUT``; sets the value to ``v``.
* ``cas(expected -> new)`` -> ``PUT ?cas=<version>``.

**Why the CAS is modelled on values although Consul compares ModifyIndex.**  The workload client
implements a CAS as ``GET`` (learns ``value=u``, ``ModifyIndex=i``) followed by ``PUT ?cas=i``
(``cas=0`` when the GET returned 404).  The GET is recorded as an ordinary read; the CAS op is
recorded as ``cas(expected=u, new=v, version=i)`` whose interval is the PUT's own interval (the
GET's interval is *not* included: the swap can only take effect while the PUT is in flight).
Written values are **unique** per key.  For a correct server:

1. An entry's ``ModifyIndex`` is the Raft index of the write that produced it, so the pair
   (value, ModifyIndex) is fixed when the entry is written: every observation of value ``u``
   reports the same index, and index ``i`` names exactly one written value.  Uniqueness of
   values makes this a bijection (an idempotent rewrite of the same value cannot happen).
2. Hence at any instant ``ModifyIndex == i  <=>  value == u``: if the index is ``i`` the last
   modification is the write that wrote ``u``; if the value is ``u`` the last modification is
   the only write that ever wrote ``u``, whose index is ``i``.  For ``cas=0``: succeeds iff the
   key is absent iff ``value is None``.
3. So "``cas=i`` succeeds at time t" equals "``value(t) == u``": the value-based CAS is exactly
   Consul's CAS, and the checker needs no server-assigned numbers in its state.

Versions add checking power at little cost.  Every observed (value, version) pair and every
CAS's (expected, version) pair populates a map ``value -> version``; a conflict in that map is
itself a violation of point 1 (reported as ``version-conflict``).  Raft indexes grow, so along
the linearization the *known* versions of the applied writes must strictly increase (writes
whose value was never observed have unknown versions and are unconstrained).  The search state
is therefore ``(value, top)`` with ``top`` the largest known version applied so far; since the
version is a function of the value, ``top`` is nearly determined by the linearized set and
Lowe's cache stays small.

Outcomes
--------

``status`` follows Jepsen: ``ok`` (definite success), ``fail`` (definitely did not take effect),
``info`` (indeterminate: timeout, reset, 5xx after sending).

* read ``ok`` -> must be linearized and must return its value; read ``fail``/``info`` are dropped
  (a read that returned nothing constrains nothing).
* write ``ok`` -> must be linearized; write ``fail`` is dropped, but its value counts as *never
  written* (reading it is a violation); write ``info`` stays pending until the end of the
  history (``ret = +inf``) and may be linearized anywhere after its call, or not at all.
* cas ``ok`` (server answered ``true``) -> must swap.  cas ``fail`` with ``result=False`` (server
  answered ``false``) -> a completed op that must be linearized where ``value != expected``;
  cas ``fail`` without an answer (4xx, refused connection) is dropped; cas ``info`` is pending to
  the end and, where linearized, swaps if it can and is otherwise a no-op.

Why treating an indeterminate op as "a no-op here" or "applied here" is sound and complete:
an indeterminate op has no return constraint, so "it never happened" is equivalent to
"linearized last", where its effect is unobservable; a no-op anywhere is equivalent to never
happening.  The step function is deterministic, which is what Lowe's memoisation needs.

Algorithm
---------

Wing & Gong's backtracking search as restated by Lowe and implemented in porcupine: call/return
entries sorted by time (calls before returns on ties, the permissive choice, so touching
intervals count as concurrent) in a doubly linked list; at a call entry try to linearize the op
(step the model); at a return entry the op was not linearized in time, so backtrack.  The cache
holds every (linearized-set bitmask, state) pair ever reached: reaching it again cannot succeed
where the first visit did not, so the search visits each pair at most once.  The search is
bounded by ``max_steps`` loop iterations and an optional wall-clock limit; running out yields
:attr:`Verdict.UNKNOWN`, never a pass.

Cheap exact pre-checks run first and give precise explanations: reads of never-written values,
version conflicts, and version regressions in real time (an op that completed before another op
began observed a larger version than the later op: impossible, versions only grow).  Every
pre-check is implied by the versioned model, so it never rejects a linearizable history.

Limits (by design): no deletes, sessions or multi-key transactions in the model (a DELETE
would make ``None`` recur and break "404 means version 0"); the explanation is the longest
linearizable prefix plus the blocked op and the ops pending at that point, not a minimal core;
the worst case stays exponential in the number of mutually concurrent ops whose effect nobody
observed (dozens of them within one key exhaust the budget and give ``UNKNOWN``), which is why
the workload retires keys after ~200 ops and keeps ~8 clients.

Invariants the caller must keep: values written to one key are unique and never ``None``;
``call <= ret``; one monotonic clock for all ops.  :func:`check_key` raises ``ValueError`` when a
history breaks them, because the verdict would otherwise be meaningless.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

OpKind = Literal["read", "write", "cas"]
Status = Literal["ok", "fail", "info"]

__all__ = [
    "CheckResult",
    "KeyResult",
    "Op",
    "Verdict",
    "Violation",
    "check_history",
    "check_key",
    "version_regressions",
]


@dataclass(frozen=True, slots=True)
class Op:
    """One client operation on one key.

    ``value``: read -> the value returned (``None`` = 404); write -> the value written;
    cas -> the new value.  ``expected``: cas only, the value the client's preceding GET returned
    (``None`` = absent, i.e. ``cas=0``).  ``version``: read -> the observed ``ModifyIndex``
    (``None`` if unknown or 404); cas -> the index sent as ``?cas=``.  ``result``: cas only, the
    server's answer (``True``/``False``) when it gave one.  ``ret`` is ignored (treated as +inf)
    for ``info`` ops.
    """

    id: int
    key: str
    kind: OpKind
    status: Status
    call: float
    ret: float
    value: str | None = None
    expected: str | None = None
    version: int | None = None
    result: bool | None = None
    client: int = 0
    server: str = ""
    error: str = ""

    def describe(self) -> str:
        """A one-line human rendering, e.g. ``#12 c3 cas('a'->'b' @7) ok [1.20, 1.25]``."""
        ret = "inf" if self.status == "info" or math.isinf(self.ret) else f"{self.ret:.6f}"
        if self.kind == "read":
            body = f"read -> {self.value!r}" + (f" @{self.version}" if self.version is not None else "")
        elif self.kind == "write":
            body = f"write({self.value!r})"
        else:
            at = f" @{self.version}" if self.version is not None else ""
            ans = "" if self.result is None else f" -> {str(self.result).lower()}"
            body = f"cas({self.expected!r} -> {self.value!r}{at}){ans}"
        extra = f" ({self.error})" if self.error else ""
        return f"#{self.id} c{self.client} {body} {self.status}{extra} [{self.call:.6f}, {ret}]"


class Verdict(enum.Enum):
    """Outcome of a check.  ``UNKNOWN`` means the search budget ran out: it is not a pass."""

    LINEARIZABLE = "linearizable"
    NOT_LINEARIZABLE = "not linearizable"
    UNKNOWN = "unknown (budget exceeded)"


@dataclass(slots=True)
class Violation:
    """Why one key's sub-history is not linearizable.

    ``kind``: ``never-written`` (a value no write produced was observed), ``version-conflict``
    (one value seen with two versions or one version with two values), ``version-regression``
    (real-time order contradicts version order), ``no-linearization`` (the exhaustive search
    found no order).  ``ops``: the ops directly involved.  ``prefix``: for ``no-linearization``,
    the longest linearizable prefix found (in linearization order) and ``state`` the register
    value after it; ``blocked`` is the op whose completion could not be justified after that
    prefix and ``candidates`` the other ops that were still pending at that moment.
    ``window_end`` / ``core`` (``no-linearization`` only, when narrowing finished in time): the
    earliest completion time T such that the ops invoked by T are already not linearizable, and
    a 1-minimal set of observations (reads, answered-false CASes) that, with the writes invoked
    by T, still admits no linearization.
    """

    key: str
    kind: str
    message: str
    ops: list[Op] = field(default_factory=list)
    prefix: list[Op] = field(default_factory=list)
    state: str | None = None
    blocked: Op | None = None
    candidates: list[Op] = field(default_factory=list)
    window_end: float | None = None
    core: list[Op] = field(default_factory=list)

    def describe(self, max_prefix: int = 8) -> str:
        """A multi-line explanation; only the last ``max_prefix`` prefix ops are listed."""
        lines = [f"key {self.key!r}: {self.kind}: {self.message}"]
        for op in self.ops:
            lines.append(f"  involved: {op.describe()}")
        if self.kind == "no-linearization":
            lines.append(
                f"  longest linearizable prefix: {len(self.prefix)} ops, state after it: {self.state!r}"
            )
            shown = self.prefix[-max_prefix:]
            if len(shown) < len(self.prefix):
                lines.append(f"    ... {len(self.prefix) - len(shown)} earlier ops")
            for op in shown:
                lines.append(f"    {op.describe()}")
            if self.blocked is not None:
                lines.append(f"  cannot linearize before it returns: {self.blocked.describe()}")
            for op in self.candidates[:max_prefix]:
                lines.append(f"    pending then: {op.describe()}")
            if len(self.candidates) > max_prefix:
                lines.append(f"    ... {len(self.candidates) - max_prefix} more pending ops")
        if self.window_end is not None and not self.core:
            lines.append(
                f"  already illegal among the ops invoked by t={self.window_end:.6f}; the acknowledged "
                "writes/CASes invoked by then conflict on their own (no read needed)"
            )
        elif self.window_end is not None:
            lines.append(
                f"  already illegal among the ops invoked by t={self.window_end:.6f}; "
                f"observations it needs ({len(self.core)}):"
            )
            for op in self.core[: 2 * max_prefix]:
                lines.append(f"    {op.describe()}")
        return "\n".join(lines)


@dataclass(slots=True)
class KeyResult:
    """Result for one key: verdict, op count, search steps, seconds, and witness or violation.

    ``linearization`` (when linearizable) lists the checked op ids in a legal order: dropped
    ops (failed/indeterminate reads, failed writes) are absent.
    """

    key: str
    verdict: Verdict
    ops: int
    steps: int
    seconds: float
    violation: Violation | None = None
    linearization: list[int] = field(default_factory=list)
    reason: str = ""


@dataclass(slots=True)
class CheckResult:
    """Whole-history result: NOT_LINEARIZABLE if any key is, else UNKNOWN if any key is, else OK."""

    verdict: Verdict
    keys: dict[str, KeyResult]
    seconds: float

    @property
    def violations(self) -> list[Violation]:
        return [r.violation for r in self.keys.values() if r.violation is not None]

    @property
    def unknown_keys(self) -> list[str]:
        return [k for k, r in self.keys.items() if r.verdict is Verdict.UNKNOWN]

    def describe(self) -> str:
        n_ops = sum(r.ops for r in self.keys.values())
        lines = [
            f"{self.verdict.value}: {len(self.keys)} keys, {n_ops} checked ops, "
            f"{len(self.unknown_keys)} unknown, {len(self.violations)} violations, {self.seconds:.2f}s"
        ]
        lines.extend(v.describe() for v in self.violations)
        for k in self.unknown_keys:
            lines.append(f"key {k!r}: {self.keys[k].reason}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Preparation
# ---------------------------------------------------------------------------------------------

# Action codes of the internal (model-level) operations.
_READ, _WRITE, _CAS, _CAS_FALSE, _MAYBE_WRITE, _MAYBE_CAS = range(6)


def _action(op: Op) -> int | None:
    """Map an op to its model action, or ``None`` when the op constrains nothing."""
    if op.kind == "read":
        return _READ if op.status == "ok" else None
    if op.kind == "write":
        return {"ok": _WRITE, "info": _MAYBE_WRITE}.get(op.status)
    if op.status == "ok":
        return _CAS
    if op.status == "info":
        return _MAYBE_CAS
    return _CAS_FALSE if op.result is False else None


def _validate(key: str, ops: Sequence[Op], unique_values: bool) -> None:
    seen: dict[str, int] = {}
    ids: set[int] = set()
    for op in ops:
        if op.id in ids:
            raise ValueError(f"op id #{op.id} is used twice")
        ids.add(op.id)
        if op.key != key:
            raise ValueError(f"op #{op.id} is for key {op.key!r}, not {key!r}")
        if op.kind not in ("read", "write", "cas") or op.status not in ("ok", "fail", "info"):
            raise ValueError(f"op #{op.id}: bad kind/status {op.kind!r}/{op.status!r}")
        if op.status != "info" and not op.call <= op.ret:
            raise ValueError(f"op #{op.id}: completion {op.ret} precedes invocation {op.call}")
        if op.kind == "cas" and op.status == "ok" and op.result is False:
            raise ValueError(f"op #{op.id}: cas with status ok must not have result False")
        if op.kind in ("write", "cas"):
            if op.value is None:
                raise ValueError(f"op #{op.id}: writes of None are not part of the model")
            if unique_values and op.value in seen:
                raise ValueError(
                    f"ops #{seen[op.value]} and #{op.id} both write {op.value!r}: values must be unique"
                )
            seen[op.value] = op.id


def _never_written(key: str, ops: Sequence[Op]) -> Violation | None:
    """A successful read observed a value that no possibly-effective write produced.

    Only reads count: a CAS's ``expected`` is the client's claim, and a CAS expecting a value that
    was never written may legitimately answer ``false`` (the search handles a CAS that succeeded).
    """
    possible = {
        op.value for op in ops if op.kind != "read" and _action(op) is not None and _action(op) != _CAS_FALSE
    }
    failed = {op.value: op for op in ops if op.kind != "read" and op.value not in possible}
    for op in ops:
        if op.kind != "read" or op.status != "ok" or op.value is None or op.value in possible:
            continue
        involved = [op]
        msg = f"{op.describe()} observed {op.value!r}, which no write could have produced"
        if op.value in failed:
            involved.append(failed[op.value])
            msg += " (its write definitely did not take effect)"
        return Violation(key, "never-written", msg, ops=involved)
    return None


def _version_map(key: str, ops: Sequence[Op]) -> tuple[dict[str, int], Violation | None]:
    """Build value -> version from observations; a conflicting pair is a violation."""
    by_value: dict[str, tuple[int, Op]] = {}
    by_version: dict[int, tuple[str, Op]] = {}
    for op in ops:
        if op.version is None:
            continue
        if op.kind == "read" and op.status == "ok":
            value = op.value
        elif op.kind == "cas" and _action(op) is not None:
            value = op.expected
        else:
            continue
        if value is None:
            continue  # 404 / cas=0: the absent register has no ModifyIndex
        prev = by_value.get(value)
        if prev is not None and prev[0] != op.version:
            return {}, Violation(
                key,
                "version-conflict",
                f"value {value!r} observed with versions {prev[0]} and {op.version}",
                ops=[prev[1], op],
            )
        prev_v = by_version.get(op.version)
        if prev_v is not None and prev_v[0] != value:
            return {}, Violation(
                key,
                "version-conflict",
                f"version {op.version} observed with values {prev_v[0]!r} and {value!r}",
                ops=[prev_v[1], op],
            )
        by_value[value] = (op.version, op)
        by_version[op.version] = (value, op)
    return {v: ver for v, (ver, _) in by_value.items()}, None


def _post_version(op: Op, vmap: dict[str, int]) -> int | None:
    """The register's version right after ``op`` took effect, when it is known."""
    if op.kind == "read":
        if op.status != "ok":
            return None
        return 0 if op.value is None else vmap.get(op.value)
    if op.status == "ok":  # a write, or a successful CAS
        return vmap.get(op.value) if op.value is not None else None
    return None


def version_regressions(key: str, ops: Sequence[Op], limit: int = 1) -> list[tuple[Op, Op]]:
    """Pairs ``(earlier, later)`` where ``earlier`` completed before ``later`` was invoked but the
    register version after ``earlier`` is larger than the version ``later`` observed/produced.

    Sound for a register whose versions only grow (Raft indexes, no deletes): at ``earlier``'s
    linearization point the version was already that large, and ``later`` linearizes after it.
    For a read this is exactly a *stale read*; the workload reports their count in non-consistent
    modes.  For a write the comparison is ``>=`` because a write creates a strictly newer version.
    O(n log n); returns at most ``limit`` pairs (``limit <= 0`` means all).
    """
    vmap, _ = _version_map(key, ops)
    done = sorted(
        ((op.ret, v, op) for op in ops if op.status == "ok" and (v := _post_version(op, vmap)) is not None),
        key=lambda t: t[0],
    )
    starts = sorted(
        ((op.call, v, op) for op in ops if op.status == "ok" and (v := _post_version(op, vmap)) is not None),
        key=lambda t: t[0],
    )
    out: list[tuple[Op, Op]] = []
    best: tuple[int, Op] | None = None
    i = 0
    for call, v, op in starts:
        while i < len(done) and done[i][0] < call:
            if best is None or done[i][1] > best[0]:
                best = (done[i][1], done[i][2])
            i += 1
        if best is None:
            continue
        bad = best[0] >= v if op.kind != "read" else best[0] > v
        if bad:
            out.append((best[1], op))
            if 0 < limit <= len(out):
                break
    return out


def _patch(ops: Sequence[Op], unique_values: bool = True) -> tuple[list[Op], list[int], list[float]]:
    """Select the ops the search must order, with their actions and effective return times.

    Indeterminate ops are where WGL's cost explodes (each stays pending to +inf), so they are
    reduced first, the way etcd's robustness tests patch histories.  Both rules are exact:

    * **Observed => happened, and before the observer returned.**  If an indeterminate op's new
      value ``u`` was read by a successful read, or expected by a CAS that definitely swapped,
      then the op took effect (values are unique: nothing else writes ``u``) and did so before
      that observer's linearization point, hence before its return.  It becomes a definite op
      whose return time is the earliest observer's return (never earlier than its own call).
      Upgrading a CAS makes its ``expected`` observed, so this runs to a fixpoint.
    * **Unobserved and harmless => dropped.**  An indeterminate op whose value nobody observed
      can matter only by making the state differ from a CAS's ``expected`` (no read returns its
      value; a CAS expecting it would have observed it).  If no answered-false CAS can be
      linearized after its call, "it never happened" loses nothing, and that is a legal outcome
      of an indeterminate op.  Otherwise it is kept, pending to +inf.
    """
    base = [(op, a) for op in ops if (a := _action(op)) is not None]
    actions = {op.id: a for op, a in base}
    rets = {op.id: (math.inf if op.status == "info" else op.ret) for op, _ in base}
    if not unique_values:
        return [op for op, _ in base], [a for _, a in base], [rets[op.id] for op, _ in base]
    first_seen: dict[str, float] = {}
    for op, a in base:
        if a == _READ and op.value is not None:
            first_seen[op.value] = min(first_seen.get(op.value, math.inf), op.ret)
    changed = True
    while changed:
        changed = False
        for op, a in base:
            a = actions[op.id]
            if a == _CAS and op.expected is not None:
                r = rets[op.id]
                if r < first_seen.get(op.expected, math.inf):
                    first_seen[op.expected] = r
                    changed = True
            if a in (_MAYBE_WRITE, _MAYBE_CAS) and op.value in first_seen:
                actions[op.id] = _WRITE if a == _MAYBE_WRITE else _CAS
                rets[op.id] = max(op.call, first_seen[op.value])
                changed = True
    last_cas_false = max((rets[op.id] for op, _ in base if actions[op.id] == _CAS_FALSE), default=-math.inf)
    kept = [
        op for op, _ in base if actions[op.id] not in (_MAYBE_WRITE, _MAYBE_CAS) or last_cas_false >= op.call
    ]
    return kept, [actions[op.id] for op in kept], [rets[op.id] for op in kept]


# ---------------------------------------------------------------------------------------------
# The search
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Search:
    """Outcome of the WGL search on prepared ops (indexes into the prepared list)."""

    verdict: Verdict
    steps: int
    order: list[int]
    best_prefix: list[int]
    best_state: str | None
    blocked: int | None
    candidates: list[int]


def _wgl(
    actions: list[int],
    values: list[str | None],
    expected: list[str | None],
    calls: list[float],
    rets: list[float],
    vmap: dict[str, int],
    max_steps: int,
    deadline: float,
) -> _Search:
    n = len(actions)
    events = sorted(
        [(calls[i], 0, i) for i in range(n)] + [(rets[i], 1, i) for i in range(n)],
        key=lambda t: (t[0], t[1]),
    )
    m = len(events)
    # Node 0 is the head sentinel; node k (1..m) is events[k-1]; -1 is NIL.
    nxt = list(range(1, m + 1)) + [-1]
    prv = [-1] + list(range(0, m))
    is_call = [False] * (m + 1)
    opi = [-1] * (m + 1)
    match = [-1] * (m + 1)
    call_node = [0] * n
    for k, (_, is_ret, i) in enumerate(events, start=1):
        opi[k] = i
        if is_ret:
            match[call_node[i]] = k
        else:
            is_call[k] = True
            call_node[i] = k

    # The version each op's new value is known to carry (None: unknown).  The search state is
    # (value, top): ``top`` is the largest known version among the writes linearized so far.
    # Raft indexes only grow, so a write with a known version must exceed ``top``.  ``top`` is
    # needed (not just the current value's version) because an unknown-version write in between
    # must not hide an out-of-order pair of known ones.
    vers: list[int | None] = [None if v is None else vmap.get(v) for v in values]
    state: str | None = None
    top = 0
    lin = 0
    stack: list[tuple[int, str | None, int]] = []
    cache: set[tuple[int, str | None, int]] = set()
    best_depth = -1
    best_prefix: list[int] = []
    best_state: str | None = None
    blocked: int | None = None
    candidates: list[int] = []
    steps = 0
    e = nxt[0]
    while nxt[0] != -1:
        steps += 1
        if steps > max_steps or (steps & 0xFFF == 0 and time.monotonic() > deadline):
            return _Search(Verdict.UNKNOWN, steps, [], best_prefix, best_state, blocked, candidates)
        if is_call[e]:
            i = opi[e]
            a = actions[i]
            nv = vers[i]
            fresh = nv is None or nv > top
            if a == _READ:
                legal, applies = state == values[i], False
            elif a == _WRITE:
                legal, applies = fresh, True
            elif a == _CAS:
                legal, applies = state == expected[i] and fresh, True
            elif a == _CAS_FALSE:
                legal, applies = state != expected[i], False
            elif a == _MAYBE_WRITE:
                legal, applies = True, fresh
            else:  # _MAYBE_CAS: swaps if it can here, else is a no-op here
                legal, applies = True, state == expected[i] and fresh
            if not legal:
                e = nxt[e]
                continue
            if applies:
                new_state: str | None = values[i]
                new_top = top if nv is None else nv
            else:
                new_state, new_top = state, top
            lin2 = lin | (1 << i)
            ck = (lin2, new_state, new_top)
            if ck not in cache:
                cache.add(ck)
                stack.append((e, state, top))
                state = new_state
                top = new_top
                lin = lin2
                # lift the call and its return out of the list
                r = match[e]
                nxt[prv[e]] = nxt[e]
                if nxt[e] != -1:
                    prv[nxt[e]] = prv[e]
                nxt[prv[r]] = nxt[r]
                if nxt[r] != -1:
                    prv[nxt[r]] = prv[r]
                e = nxt[0]
                continue
            if a != _READ and a != _CAS_FALSE:
                e = nxt[e]
                continue
            # A legal state-preserving op whose successor configuration already failed: by the
            # rearrangement argument below, this configuration fails too.  Fall through.
        elif len(stack) > best_depth:
            best_depth = len(stack)
            best_prefix = [opi[c] for c, _, _ in stack]
            best_state = state
            blocked = opi[e]
            candidates = []
            k = nxt[0]
            while k != e and k != -1:
                if is_call[k] and k != call_node[opi[e]]:
                    candidates.append(opi[k])
                k = nxt[k]
        # Dead end: backtrack.
        if not stack:
            return _Search(Verdict.NOT_LINEARIZABLE, steps, [], best_prefix, best_state, blocked, candidates)
        while True:
            c, state, top = stack.pop()
            lin &= ~(1 << opi[c])
            r = match[c]
            # unlift in reverse order: the return first, then the call
            nxt[prv[r]] = r
            if nxt[r] != -1:
                prv[nxt[r]] = r
            nxt[prv[c]] = c
            if nxt[c] != -1:
                prv[nxt[c]] = c
            # A state-preserving op (read, answered-false CAS) is only ever linearized at its own
            # call entry, reached by scanning from the head, so every op that returned before that
            # call is already linearized.  Any completion of the configuration before it can be
            # rearranged to put it first (it leaves the state unchanged and moving it earlier
            # breaks no real-time edge), so if the search after it failed, the search without it
            # fails too: keep popping instead of trying the alternatives.
            if actions[opi[c]] != _READ and actions[opi[c]] != _CAS_FALSE:
                break
            if not stack:
                return _Search(
                    Verdict.NOT_LINEARIZABLE, steps, [], best_prefix, best_state, blocked, candidates
                )
        e = nxt[c]
    return _Search(Verdict.LINEARIZABLE, steps, [opi[c] for c, _, _ in stack], [], None, None, [])


def _cut(ops: Sequence[Op], t: float) -> list[Op]:
    """The history as it stood at time ``t``: ops invoked after ``t`` removed; of the ops still
    running at ``t``, observers (reads, answered-false CASes) dropped and mutators made
    indeterminate.  Linearizable histories stay linearizable under this cut (a linearization
    restricted to the kept ops still works: every kept observer completed by ``t``, so everything
    it depends on was invoked by ``t``; kept mutators are indeterminate and may be no-ops), so a
    non-linearizable cut proves the whole history non-linearizable, and illegality is monotone
    in ``t``."""
    out: list[Op] = []
    for op in ops:
        a = _action(op)
        if a is None or op.call > t:
            continue
        ret = math.inf if op.status == "info" else op.ret
        if ret <= t:
            out.append(op)
        elif a not in (_READ, _CAS_FALSE):
            out.append(replace(op, status="info", ret=math.inf, result=None))
    return out


def _narrow(
    key: str, ops: Sequence[Op], max_steps: int, deadline: float, unique_values: bool
) -> tuple[float, list[Op]] | None:
    """Binary-search the earliest cut that is provably illegal, then greedily drop observations
    while it stays provably illegal (removing a read or an answered-false CAS never makes a
    linearizable history illegal, so what remains is a genuine, 1-minimal witness set).
    Probes that exhaust their budget count as "not proven".  ``None`` if out of time."""

    def illegal(sub: Sequence[Op]) -> bool | None:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        r = check_key(
            key, sub, max_steps=max_steps, time_limit=left, explain=False, unique_values=unique_values
        )
        return r.verdict is Verdict.NOT_LINEARIZABLE

    times = sorted({op.ret for op in ops if op.status != "info" and _action(op) is not None})
    lo, hi = 0, len(times) - 1
    if hi < 0:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        verdict = illegal(_cut(ops, times[mid]))
        if verdict is None:
            return None
        if verdict:
            hi = mid
        else:
            lo = mid + 1
    t = times[lo]
    cut = _cut(ops, t)
    if illegal(cut) is not True:
        return None
    observers = [op for op in cut if _action(op) in (_READ, _CAS_FALSE)]
    keep = {op.id for op in cut}
    for op in sorted(observers, key=lambda o: o.call):
        keep.discard(op.id)
        verdict = illegal([o for o in cut if o.id in keep])
        if verdict is None:
            return None
        if not verdict:
            keep.add(op.id)
    return t, [op for op in observers if op.id in keep]


def check_key(
    key: str,
    ops: Sequence[Op],
    *,
    max_steps: int = 2_000_000,
    time_limit: float | None = 30.0,
    prechecks: bool = True,
    unique_values: bool = True,
    explain: bool = True,
    explain_time: float = 2.0,
) -> KeyResult:
    """Check one key's sub-history (all ``ops`` must be for ``key``).

    Runs the pre-checks, then the bounded WGL search.  ``max_steps`` bounds the search loop and
    ``time_limit`` (seconds, ``None`` = no limit) its wall time; exceeding either yields
    ``Verdict.UNKNOWN`` with the reason in ``KeyResult.reason``.  The search alone decides
    exactly (pre-checks only make common violations cheap and their explanations precise), so
    ``prechecks=False`` gives the same verdict; the tests use it to test the search against an
    oracle.  Version conflicts are always checked: without a consistent value -> version map the
    versioned model is undefined.

    ``unique_values=False`` accepts histories that write the same value more than once (e.g.
    Jepsen's etcd logs): versions must then be absent, and the history patching, which relies on
    "an observed value names its one write", is skipped; the search itself does not need
    uniqueness (the pruning argument holds for any register).

    ``explain``: for a ``no-linearization`` violation, spend up to ``explain_time`` more seconds
    narrowing it (:attr:`Violation.window_end`, :attr:`Violation.core`).
    """
    t0 = time.monotonic()
    _validate(key, ops, unique_values)
    if not unique_values and any(op.version is not None for op in ops):
        raise ValueError("versions need unique values: a version names the one write of a value")
    violation = _never_written(key, ops) if prechecks else None
    vmap: dict[str, int] = {}
    if violation is None:
        vmap, violation = _version_map(key, ops)
    if violation is None and prechecks:
        regress = version_regressions(key, ops, limit=1)
        if regress:
            a, b = regress[0]
            violation = Violation(
                key,
                "version-regression",
                f"{b.describe()} began after {a.describe()} completed but saw an older version",
                ops=[a, b],
            )
    checked, actions, rets = _patch(ops, unique_values)
    if violation is not None:
        return KeyResult(key, Verdict.NOT_LINEARIZABLE, len(checked), 0, time.monotonic() - t0, violation)

    deadline = math.inf if time_limit is None else t0 + time_limit
    res = _wgl(
        actions,
        [op.value for op in checked],
        [op.expected for op in checked],
        [op.call for op in checked],
        rets,
        vmap,
        max_steps,
        deadline,
    )
    secs = time.monotonic() - t0
    if res.verdict is Verdict.LINEARIZABLE:
        return KeyResult(
            key, res.verdict, len(checked), res.steps, secs, linearization=[checked[i].id for i in res.order]
        )
    if res.verdict is Verdict.UNKNOWN:
        why = "step budget" if res.steps > max_steps else "time limit"
        return KeyResult(
            key,
            res.verdict,
            len(checked),
            res.steps,
            secs,
            reason=f"{why} exceeded after {res.steps} steps, {secs:.2f}s ({len(checked)} ops)",
        )
    blocked = checked[res.blocked] if res.blocked is not None else None
    cands = [checked[i] for i in res.candidates]
    prefix = [checked[i] for i in res.best_prefix]
    msg = "no order of the operations respects both real time and register semantics"
    if blocked is not None:
        msg = f"{blocked.describe()} cannot be explained by any order of the ops before its return"
    violation = Violation(
        key,
        "no-linearization",
        msg,
        ops=[blocked] if blocked is not None else [],
        prefix=prefix,
        state=res.best_state,
        blocked=blocked,
        candidates=cands,
    )
    if explain:
        narrowed = _narrow(key, ops, max(10_000, res.steps), time.monotonic() + explain_time, unique_values)
        if narrowed is not None:
            violation.window_end, violation.core = narrowed
    return KeyResult(key, res.verdict, len(checked), res.steps, time.monotonic() - t0, violation)


def check_history(
    ops: Iterable[Op],
    *,
    max_steps_per_key: int = 2_000_000,
    time_limit_per_key: float | None = 30.0,
    unique_values: bool = True,
    explain_budget: float = 5.0,
) -> CheckResult:
    """Check a multi-key history key by key (linearizability is local).

    ``explain_budget`` bounds the total extra seconds spent narrowing violations (at most 2 s per
    key), so a badly broken server with many illegal keys still gets a prompt answer.
    """
    t0 = time.monotonic()
    by_key: dict[str, list[Op]] = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    results: dict[str, KeyResult] = {}
    explain_deadline = time.monotonic() + explain_budget
    for k, kops in sorted(by_key.items()):
        left = explain_deadline - time.monotonic()
        results[k] = check_key(
            k,
            kops,
            max_steps=max_steps_per_key,
            time_limit=time_limit_per_key,
            unique_values=unique_values,
            explain=left > 0,
            explain_time=min(2.0, left),
        )
    verdicts = {r.verdict for r in results.values()}
    if Verdict.NOT_LINEARIZABLE in verdicts:
        verdict = Verdict.NOT_LINEARIZABLE
    elif Verdict.UNKNOWN in verdicts:
        verdict = Verdict.UNKNOWN
    else:
        verdict = Verdict.LINEARIZABLE
    return CheckResult(verdict, results, time.monotonic() - t0)
