"""Tests of the linearizability checker itself (no server involved).

Three layers: hand-written histories with a known verdict (each illegal one is a distinct real
bug shape), a brute-force oracle compared against the checker on small random histories
(any history, legal or not), and property tests on sequential-by-construction histories
(always accepted, with a valid witness) and their mutations (rejected).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from muster_testkit.linearizability import (
    Op,
    OpKind,
    Status,
    Verdict,
    _cut,
    check_history,
    check_key,
)

INF = math.inf


class H:
    """Builds a one-key history with automatic op ids."""

    def __init__(self, key: str = "k") -> None:
        self.key = key
        self.ops: list[Op] = []

    def _add(self, kind: OpKind, status: Status, call: float, ret: float, **kw: object) -> Op:
        op = Op(len(self.ops), self.key, kind, status, call, ret, **kw)  # type: ignore[arg-type]
        self.ops.append(op)
        return op

    def w(self, v: str, call: float, ret: float, status: Status = "ok") -> Op:
        return self._add("write", status, call, INF if status == "info" else ret, value=v)

    def r(self, v: str | None, call: float, ret: float, version: int | None = None) -> Op:
        return self._add("read", "ok", call, ret, value=v, version=version)

    def cas(
        self,
        e: str | None,
        n: str,
        call: float,
        ret: float,
        outcome: str = "ok",
        version: int | None = None,
    ) -> Op:
        if outcome == "ok":
            return self._add("cas", "ok", call, ret, expected=e, value=n, result=True, version=version)
        if outcome == "false":
            return self._add("cas", "fail", call, ret, expected=e, value=n, result=False, version=version)
        if outcome == "error":  # 4xx: definitely not applied, nothing observed
            return self._add("cas", "fail", call, ret, expected=e, value=n, version=version)
        return self._add("cas", "info", call, INF, expected=e, value=n, version=version)

    def check(self, **kw: object) -> Verdict:
        return check_key(self.key, self.ops, **kw).verdict  # type: ignore[arg-type]


LIN = Verdict.LINEARIZABLE
NOT = Verdict.NOT_LINEARIZABLE


# ---------------------------------------------------------------------------------------------
# Hand-written histories
# ---------------------------------------------------------------------------------------------


def test_sequential_register_is_linearizable() -> None:
    h = H()
    h.r(None, 0, 1)
    h.w("a", 2, 3)
    h.r("a", 4, 5)
    h.cas("a", "b", 6, 7)
    h.cas("a", "c", 8, 9, outcome="false")
    h.r("b", 10, 11)
    res = check_key("k", h.ops)
    assert res.verdict is LIN
    assert res.linearization == [0, 1, 2, 3, 4, 5]


def test_stale_read_after_completed_write() -> None:
    h = H()
    h.w("a", 0, 1)
    h.w("b", 2, 3)
    stale = h.r("a", 4, 5)
    res = check_key("k", h.ops)
    assert res.verdict is NOT
    v = res.violation
    assert v is not None and v.kind == "no-linearization"
    assert v.blocked == stale
    assert [op.value for op in v.prefix] == ["a", "b"] and v.state == "b"
    assert "read -> 'a'" in v.describe()
    # Narrowed: illegal as soon as the stale read returned, and it is the one observation needed.
    assert v.window_end == 5 and v.core == [stale]


def test_violation_is_narrowed_to_its_window_and_needed_observations() -> None:
    h = H()
    h.w("a", 0, 1)
    h.w("b", 2, 3)
    for i in range(10):
        h.r("b", 4 + i, 4.5 + i)
    h.w("c", 20, 21)
    h.r("c", 22, 23)
    bad = h.r("b", 24, 25)  # b again after c was acknowledged and read
    for i in range(10):
        h.r("c", 26 + i, 26.5 + i)
    res = check_key("k", h.ops, prechecks=False)
    v = res.violation
    assert v is not None and v.window_end == 25
    assert bad in v.core and len(v.core) <= 2, [op.describe() for op in v.core]
    assert "already illegal" in v.describe()
    res2 = check_key("k", h.ops, prechecks=False, explain=False)
    assert res2.violation is not None and res2.violation.window_end is None


def test_read_concurrent_with_write_may_see_either_value() -> None:
    for seen in ("a", "b"):
        h = H()
        h.w("a", 0, 1)
        h.w("b", 2, 6)
        h.r(seen, 3, 4)
        assert h.check() is LIN, seen


def test_two_readers_observe_concurrent_writes_in_opposite_orders() -> None:
    h = H()
    h.w("a", 0, 10)
    h.w("b", 0, 10)
    h.r("a", 1, 2)  # client 1: a then b
    h.r("b", 3, 4)
    h.r("b", 1, 2)  # client 2: b then a
    h.r("a", 3, 4)
    assert h.check() is NOT
    # Each reader alone is fine: the checker must not reject an admissible order.
    for drop in ((2, 3), (4, 5)):
        h2 = H()
        h2.ops = [op for op in h.ops if op.id not in drop]
        assert h2.check() is LIN


def test_concurrent_writes_admit_an_order() -> None:
    h = H()
    h.w("a", 0, 10)
    h.w("b", 0, 10)
    h.w("c", 0, 10)
    h.r("b", 1, 2)
    h.r("a", 3, 4)
    h.r("c", 5, 6)
    assert h.check() is LIN


def test_lost_cas_two_creates_both_succeed() -> None:
    h = H()
    h.cas(None, "a", 0, 1)
    h.cas(None, "b", 2, 3)  # cas=0 on an existing key must answer false
    assert h.check() is NOT


def test_lost_cas_two_swaps_from_the_same_value() -> None:
    h = H()
    h.w("a", 0, 1)
    h.cas("a", "b", 2, 5)
    h.cas("a", "c", 3, 6)  # concurrent, but only one can win
    assert h.check() is NOT
    h2 = H()
    h2.w("a", 0, 1)
    h2.cas("a", "b", 2, 5)
    h2.cas("a", "c", 3, 6, outcome="false")
    assert h2.check() is LIN


def test_lost_update_read_after_acknowledged_cas() -> None:
    h = H()
    h.w("a", 0, 1)
    h.cas("a", "b", 2, 3)
    h.r("a", 4, 5)
    assert h.check() is NOT


def test_cas_answered_false_without_a_reason() -> None:
    h = H()
    h.w("a", 0, 1)
    h.cas("a", "b", 2, 3, outcome="false")
    assert h.check() is NOT
    # ... but a concurrent write is a reason.
    h.w("c", 1.5, 2.5)
    assert h.check() is LIN


def test_read_of_a_value_never_written() -> None:
    h = H()
    h.w("a", 0, 1)
    h.r("zz", 2, 3)
    res = check_key("k", h.ops)
    assert res.verdict is NOT
    assert res.violation is not None and res.violation.kind == "never-written"


def test_read_of_a_definitely_failed_write() -> None:
    h = H()
    h.w("a", 0, 1, status="fail")
    h.r("a", 2, 3)
    res = check_key("k", h.ops)
    assert res.verdict is NOT and res.violation is not None
    assert res.violation.kind == "never-written" and len(res.violation.ops) == 2
    # And a CAS answered false wrote nothing either.
    h2 = H()
    h2.cas(None, "a", 0, 1, outcome="false")
    h2.r("a", 2, 3)
    assert h2.check() is NOT


def test_failed_and_indeterminate_reads_constrain_nothing() -> None:
    h = H()
    h.w("a", 0, 1)
    h._add("read", "info", 2, INF, value="garbage")
    h._add("read", "fail", 2, 3, value="garbage")
    assert h.check() is LIN


def test_indeterminate_write_linearizable_only_if_it_took_effect() -> None:
    h = H()
    h.w("a", 0, 1)
    h.w("b", 2, 3, status="info")
    h.r("b", 5, 6)
    assert h.check() is LIN
    # The same history with the write definitely failed is illegal.
    h2 = H()
    h2.w("a", 0, 1)
    h2.w("b", 2, 3, status="fail")
    h2.r("b", 5, 6)
    assert h2.check() is NOT


def test_indeterminate_write_may_also_never_take_effect() -> None:
    h = H()
    h.w("a", 0, 1)
    h.w("b", 2, 3, status="info")
    h.r("a", 5, 6)
    h.r("a", 50, 60)
    assert h.check() is LIN


def test_indeterminate_write_cannot_be_seen_before_it_was_invoked() -> None:
    h = H()
    h.r("b", 0, 1)
    h.w("b", 2, 3, status="info")
    assert h.check() is NOT


def test_indeterminate_write_takes_effect_once() -> None:
    h = H()
    h.w("a", 0, 1)
    h.w("b", 2, 3, status="info")
    h.r("b", 4, 5)
    h.w("c", 6, 7)
    h.r("b", 8, 9)  # b cannot come back after c overwrote it
    assert h.check() is NOT


def test_indeterminate_cas_observed_then_overwritten_order() -> None:
    h = H()
    h.w("a", 0, 1)
    h.cas("a", "b", 2, 3, outcome="info")
    h.r("b", 5, 6)
    assert h.check() is LIN
    h.r("a", 7, 8)  # the swap happened before the read of b, so a is gone
    assert h.check() is NOT


def test_unobserved_indeterminate_write_can_justify_a_cas_false() -> None:
    # Only explanation of the false answer: the indeterminate write x landed first.  The
    # checker's history patching must not drop it.
    h = H()
    h.w("a", 0, 1)
    h.w("x", 2, 3, status="info")
    h.cas("a", "y", 4, 5, outcome="false")
    assert h.check() is LIN
    h2 = H()
    h2.w("a", 0, 1)
    h2.cas("a", "y", 4, 5, outcome="false")
    h2.w("x", 6, 7, status="info")  # invoked after the CAS returned: cannot help
    assert h2.check() is NOT


def test_cas_with_transport_error_is_ignored() -> None:
    h = H()
    h.w("a", 0, 1)
    h.cas("zz", "b", 2, 3, outcome="error")
    h.r("a", 4, 5)
    assert h.check() is LIN


def test_version_regression_is_a_violation_even_when_values_admit_an_order() -> None:
    # Value-only, W(a) R(a) W(b) R(b) is a fine order; but b carries an older ModifyIndex than
    # a although b was written after a was already read: indexes never go backwards.
    h = H()
    h.w("a", 0, 1)
    h.r("a", 2, 3, version=5)
    h.w("b", 0, 10)
    h.r("b", 4, 5, version=3)
    res = check_key("k", h.ops)
    assert res.verdict is NOT and res.violation is not None
    assert res.violation.kind == "version-regression"
    h2 = H()
    h2.ops = [op for op in h.ops if op.id != 3] + [Op(3, "k", "read", "ok", 4, 5, value="b", version=7)]
    assert h2.check() is LIN


def test_version_regression_inside_the_search() -> None:
    # All ops overlap, so no real-time pair exposes it; but b is written by a CAS from a, so
    # b (@3) must follow a (@5) in every order.
    h = H()
    h.w("a", 0, 10)
    h.cas("a", "b", 0, 10)
    h.r("a", 1, 10, version=5)
    h.r("b", 1, 10, version=3)
    res = check_key("k", h.ops)
    assert res.verdict is NOT and res.violation is not None
    assert res.violation.kind == "no-linearization"
    h2 = H()
    h2.ops = [op for op in h.ops if op.id != 3] + [Op(3, "k", "read", "ok", 1, 10, value="b", version=6)]
    assert h2.check() is LIN


def test_version_conflicts() -> None:
    h = H()
    h.w("a", 0, 1)
    h.r("a", 2, 3, version=5)
    h.r("a", 4, 5, version=6)
    res = check_key("k", h.ops)
    assert res.verdict is NOT and res.violation is not None and res.violation.kind == "version-conflict"
    h2 = H()
    h2.w("a", 0, 1)
    h2.w("b", 0, 1)
    h2.r("a", 2, 3, version=5)
    h2.r("b", 4, 5, version=5)
    assert h2.check() is NOT
    h3 = H()
    h3.w("a", 0, 1)
    h3.r("a", 2, 3, version=5)
    h3.cas("a", "b", 4, 5, version=4)  # the CAS's GET saw a different index for a
    assert h3.check() is NOT


def test_budget_exhaustion_is_unknown_not_a_verdict() -> None:
    h = H()
    for i in range(12):
        h.w(f"v{i}", 0, 100)
    for i in range(12):
        h.r(f"v{11 - i}", 1 + i, 1.5 + i)
    assert h.check() is LIN
    res = check_key("k", h.ops, max_steps=5)
    assert res.verdict is Verdict.UNKNOWN
    assert "budget" in res.reason
    res = check_key("k", h.ops, max_steps=10**9, time_limit=0.0)
    assert res.verdict in (Verdict.UNKNOWN, LIN)  # 0 s: unknown unless it finishes in < 4096 steps


def test_history_is_checked_per_key() -> None:
    good = H("good")
    good.w("a", 0, 1)
    good.r("a", 2, 3)
    bad = H("bad")
    bad.w("a", 0, 1)
    bad.w("b", 2, 3)
    bad.r("a", 4, 5)
    # ids must not collide across keys for the report to be readable
    bad.ops = [Op(op.id + 100, op.key, op.kind, op.status, op.call, op.ret, value=op.value) for op in bad.ops]
    res = check_history(good.ops + bad.ops)
    assert res.verdict is NOT
    assert res.keys["good"].verdict is LIN
    assert [v.key for v in res.violations] == ["bad"]
    # Same values on different keys are independent registers.
    h1, h2 = H("x"), H("y")
    h1.w("a", 0, 1)
    h2.w("a", 0, 1)
    h2.r("a", 2, 3)
    h1.r("a", 2, 3)
    h2.ops = [Op(op.id + 10, op.key, op.kind, op.status, op.call, op.ret, value=op.value) for op in h2.ops]
    assert check_history(h1.ops + h2.ops).verdict is LIN


def test_invalid_histories_are_refused() -> None:
    h = H()
    h.w("a", 0, 1)
    h.w("a", 2, 3)
    with pytest.raises(ValueError, match="unique"):
        h.check()
    h2 = H()
    h2.r(None, 5, 4)
    with pytest.raises(ValueError, match="precedes"):
        h2.check()


# ---------------------------------------------------------------------------------------------
# Brute-force oracle on small arbitrary histories
# ---------------------------------------------------------------------------------------------


def brute_force(ops: Sequence[Op]) -> bool:
    """Exhaustive: some subset of indeterminate ops plus all definite ones, in some order that
    respects real time (a before b if a returned strictly before b was invoked), replays legally
    on a register starting absent, and applies writes in strictly increasing order of the
    versions that were observed for their values (Raft indexes only grow)."""
    required: list[Op] = []
    optional: list[Op] = []
    known: dict[str, int] = {}
    for op in ops:
        if op.kind == "read" and op.status == "ok" and op.value is not None and op.version is not None:
            known[op.value] = op.version
        if op.kind == "cas" and op.expected is not None and op.version is not None:
            known[op.expected] = op.version
        if op.kind == "read" and op.status != "ok":
            continue
        if op.kind != "read" and op.status == "fail" and not (op.kind == "cas" and op.result is False):
            continue
        (optional if op.status == "info" else required).append(op)

    def ret(op: Op) -> float:
        return INF if op.status == "info" else op.ret

    def legal(order: Sequence[Op]) -> bool:
        for i, a in enumerate(order):
            for b in order[i + 1 :]:
                if ret(b) < a.call:
                    return False
        state: str | None = None
        top = 0
        for op in order:
            applies = False
            if op.kind == "read":
                if state != op.value:
                    return False
            elif op.kind == "write":
                applies = True
            elif op.status == "ok":
                if state != op.expected:
                    return False
                applies = True
            elif op.status == "fail":
                if state == op.expected:
                    return False
            elif state == op.expected:  # indeterminate CAS that happened, and swapped
                applies = True
            if applies:
                assert op.value is not None
                v = known.get(op.value)
                if v is not None:
                    if v <= top:
                        return False
                    top = v
                state = op.value
        return True

    for r in range(len(optional) + 1):
        for chosen in itertools.combinations(optional, r):
            for order in itertools.permutations(required + list(chosen)):
                if legal(order):
                    return True
    return False


@st.composite
def small_histories(draw: st.DrawFn) -> list[Op]:
    """Arbitrary (mostly illegal) small histories.  When versions are on, every written value
    gets a distinct version and every observation of it reports that version consistently, so
    the version logic is exercised without trivial version conflicts."""
    n = draw(st.integers(1, 7))
    use_versions = draw(st.booleans())
    version_of = dict(zip([f"v{i}" for i in range(n)], draw(st.permutations(range(1, n + 1))), strict=True))

    def ver(v: str | None) -> int | None:
        if not use_versions:
            return None
        return 0 if v is None else version_of.get(v)

    ops: list[Op] = []
    written: list[str] = []
    for i in range(n):
        kind = draw(st.sampled_from(["read", "read", "write", "cas"]))
        call = draw(st.integers(0, 12))
        ret = call + draw(st.integers(0, 6))
        status: Status = draw(st.sampled_from(["ok", "ok", "ok", "fail", "info"]))
        pool = [None, "zz", *written]
        if kind == "read":
            seen = draw(st.sampled_from(pool))
            version = ver(seen) if seen is not None else None
            ops.append(
                Op(
                    i,
                    "k",
                    "read",
                    status,
                    call,
                    INF if status == "info" else ret,
                    value=seen,
                    version=version,
                )
            )
            continue
        value = f"v{i}"
        written.append(value)
        if kind == "write":
            ops.append(Op(i, "k", "write", status, call, INF if status == "info" else ret, value=value))
        else:
            expected = draw(st.sampled_from(pool))
            result = {"ok": True, "info": None}.get(status, draw(st.sampled_from([False, None])))
            ops.append(
                Op(
                    i,
                    "k",
                    "cas",
                    status,
                    call,
                    INF if status == "info" else ret,
                    value=value,
                    expected=expected,
                    result=result,
                    version=ver(expected),
                )
            )
    # Reads may name values written later in the list: draw from the final pool too.
    final_pool = [None, "zz", *written]
    out = []
    for op in ops:
        if op.kind == "read" and draw(st.booleans()):
            seen = draw(st.sampled_from(final_pool))
            version = ver(seen) if seen is not None else None
            op = Op(op.id, op.key, op.kind, op.status, op.call, op.ret, value=seen, version=version)
        out.append(op)
    return out


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_histories())
def test_checker_agrees_with_brute_force(ops: list[Op]) -> None:
    expected = LIN if brute_force(ops) else NOT
    assert check_key("k", ops).verdict is expected, [op.describe() for op in ops]
    # The search alone must agree too (the pre-checks must not be what makes it right).
    res = check_key("k", ops, prechecks=False)
    assert res.verdict is expected, [op.describe() for op in ops]
    # A narrowed explanation is itself a genuinely illegal history.
    v = res.violation
    if v is not None and v.window_end is not None:
        core = {op.id for op in v.core}
        observer = {"read", "cas-false"}
        sub = [
            op
            for op in _cut(ops, v.window_end)
            if ("cas-false" if op.kind == "cas" and op.result is False else op.kind) not in observer
            or op.id in core
        ]
        assert not brute_force(sub), ([op.describe() for op in ops], [op.describe() for op in v.core])


# ---------------------------------------------------------------------------------------------
# Properties of sequential-by-construction histories
# ---------------------------------------------------------------------------------------------


@st.composite
def sequential_histories(draw: st.DrawFn) -> list[Op]:
    """Run a register sequentially (op j takes effect at time 10*j+5), then widen each op's
    interval around that point and randomly turn effective writes into indeterminate ones.
    Every op's effect stays inside its interval, so the history is linearizable."""
    n_keys = draw(st.integers(1, 3))
    n = draw(st.integers(1, 60))
    use_versions = draw(st.booleans())
    states: dict[str, tuple[str | None, int]] = {}
    versions: dict[tuple[str, str], int] = {}
    ops: list[Op] = []
    for j in range(n):
        key = f"k{draw(st.integers(0, n_keys - 1))}"
        state, ver = states.get(key, (None, 0))
        point = 10.0 * j + 5
        call = point - draw(st.floats(0, 40))
        ret = point + draw(st.floats(0, 40))
        kind = draw(st.sampled_from(["read", "read", "write", "cas", "cas_false", "fail_write"]))
        value = f"{key}.{j}"
        if kind == "read":
            v = versions.get((key, state)) if state is not None and use_versions else None
            ops.append(Op(j, key, "read", "ok", call, ret, value=state, version=v))
            continue
        if kind == "fail_write":
            ops.append(Op(j, key, "write", "fail", call, ret, value=value, error="HTTP 400"))
            continue
        if kind == "cas_false":
            ops.append(Op(j, key, "cas", "fail", call, ret, value=value, expected=f"never-{j}", result=False))
            continue
        status: Status = "info" if draw(st.integers(0, 5)) == 0 else "ok"
        if kind == "write":
            ops.append(Op(j, key, "write", status, call, INF if status == "info" else ret, value=value))
        else:
            ev = versions.get((key, state), 0) if (state is not None and use_versions) else None
            ops.append(
                Op(
                    j,
                    key,
                    "cas",
                    status,
                    call,
                    INF if status == "info" else ret,
                    value=value,
                    expected=state,
                    version=ev,
                    result=True if status == "ok" else None,
                )
            )
        ver += 1
        versions[(key, value)] = ver
        states[key] = (value, ver)
    return ops


def assert_valid_witness(ops: Sequence[Op], order: Sequence[int]) -> None:
    """The witness replays on a register and respects real time among its ops."""
    by_id = {op.id: op for op in ops}
    seq = [by_id[i] for i in order]
    pos = {op.id: i for i, op in enumerate(seq)}
    state: str | None = None
    for op in seq:
        if op.kind == "read":
            assert op.value == state
        elif op.kind == "write":
            state = op.value
        elif op.status == "ok":
            assert op.expected == state
            state = op.value
        elif op.status == "fail":
            assert op.expected != state
        elif op.expected == state:
            state = op.value
    for a in seq:
        for b in seq:
            if a.status != "info" and a.ret < b.call:
                assert pos[a.id] < pos[b.id], (a.describe(), b.describe())
    definite = {op.id for op in ops if op.status == "ok" or (op.kind == "cas" and op.result is False)}
    assert definite <= set(pos), "every definite op must be linearized"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequential_histories())
def test_sequential_histories_are_accepted_with_a_valid_witness(ops: list[Op]) -> None:
    res = check_history(ops)
    assert res.verdict is LIN, res.describe()
    for key, kr in res.keys.items():
        assert_valid_witness([op for op in ops if op.key == key], kr.linearization)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequential_histories(), st.data())
def test_read_of_a_never_written_value_is_rejected(ops: list[Op], data: st.DataObject) -> None:
    reads = [i for i, op in enumerate(ops) if op.kind == "read"]
    assume(reads)
    i = data.draw(st.sampled_from(reads))
    op = ops[i]
    ops[i] = Op(op.id, op.key, "read", "ok", op.call, op.ret, value="never-written", version=op.version)
    res = check_history(ops)
    assert res.verdict is NOT
    assert [v.key for v in res.violations] == [op.key]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequential_histories(), st.data())
def test_read_of_a_value_overwritten_in_real_time_is_rejected(ops: list[Op], data: st.DataObject) -> None:
    """Mutation: a read returns u although u's write finished before another write x started,
    and x finished before the read started.  No order can explain it."""
    writers = [op for op in ops if op.status == "ok" and op.kind in ("write", "cas")]
    candidates = [
        (r, u)
        for r in ops
        if r.kind == "read" and r.status == "ok"
        for u in writers
        if u.key == r.key and any(x.key == r.key and u.ret < x.call and x.ret < r.call for x in writers)
    ]
    assume(candidates)
    r, u = data.draw(st.sampled_from(candidates))
    mutated = [
        Op(op.id, op.key, "read", "ok", op.call, op.ret, value=u.value) if op.id == r.id else op for op in ops
    ]
    assert check_history(mutated).verdict is NOT
    # Without the pre-checks the search finds it too, and the narrowed core must contain the
    # mutated read: every cut/observer subset of the original (legal) history is legal.
    res = check_key(r.key, [op for op in mutated if op.key == r.key], prechecks=False)
    assert res.verdict is NOT and res.violation is not None
    if res.violation.window_end is not None:
        assert r.id in [op.id for op in res.violation.core]
        assert res.violation.window_end >= r.ret


@st.composite
def version_sensitive_histories(draw: st.DrawFn) -> list[Op]:
    """A small sequential register run with widened intervals (legal as far as values go) whose
    versions are assigned in a random order instead of write order: the value order admits many
    linearizations and the versions decide which, if any, is legal."""
    n = draw(st.integers(2, 7))
    state: str | None = None
    written: list[str] = []
    raw: list[tuple[str, Status, str | None, str | None, float, float]] = []
    for j in range(n):
        kind = draw(st.sampled_from(["read", "write", "cas"]))
        point = 10.0 * j + 5
        call, ret = point - draw(st.integers(0, 25)), point + draw(st.integers(0, 25))
        value = f"v{j}"
        if kind == "read":
            raw.append(("read", "ok", state, None, call, ret))
        else:
            status: Status = draw(st.sampled_from(["ok", "ok", "info"]))
            raw.append((kind, status, value, state, call, ret))
            written.append(value)
            state = value
    order = draw(st.permutations(written))
    version_of = {v: i + 1 for i, v in enumerate(order)}
    ops: list[Op] = []
    for j, (kind, status, val, expected, call, ret) in enumerate(raw):
        r = INF if status == "info" else ret
        if kind == "read":
            ver = None if val is None else version_of[val]
            ops.append(Op(j, "k", "read", "ok", call, r, value=val, version=ver))
        elif kind == "write":
            ops.append(Op(j, "k", "write", status, call, r, value=val))
        else:
            ev = 0 if expected is None else version_of[expected]
            res = True if status == "ok" else None
            ops.append(
                Op(j, "k", "cas", status, call, r, value=val, expected=expected, version=ev, result=res)
            )
    return ops


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(version_sensitive_histories())
def test_checker_agrees_with_brute_force_on_versions(ops: list[Op]) -> None:
    expected = LIN if brute_force(ops) else NOT
    assert check_key("k", ops).verdict is expected, [op.describe() for op in ops]
    assert check_key("k", ops, prechecks=False).verdict is expected, [op.describe() for op in ops]


@st.composite
def small_histories_with_repeated_values(draw: st.DrawFn) -> list[Op]:
    """Like Jepsen's etcd register: values from a tiny domain, written many times."""
    n = draw(st.integers(1, 7))
    domain = st.sampled_from(["1", "2", "3"])
    ops: list[Op] = []
    for i in range(n):
        kind = draw(st.sampled_from(["read", "read", "write", "cas"]))
        call = draw(st.integers(0, 12))
        ret = call + draw(st.integers(0, 6))
        status: Status = draw(st.sampled_from(["ok", "ok", "ok", "fail", "info"]))
        r = INF if status == "info" else ret
        if kind == "read":
            ops.append(Op(i, "k", "read", status, call, r, value=draw(st.one_of(st.none(), domain))))
        elif kind == "write":
            ops.append(Op(i, "k", "write", status, call, r, value=draw(domain)))
        else:
            result = {"ok": True, "info": None}.get(status, draw(st.sampled_from([False, None])))
            expected = draw(st.one_of(st.none(), domain))
            ops.append(
                Op(i, "k", "cas", status, call, r, value=draw(domain), expected=expected, result=result)
            )
    return ops


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_histories_with_repeated_values())
def test_checker_agrees_with_brute_force_on_repeated_values(ops: list[Op]) -> None:
    expected = LIN if brute_force(ops) else NOT
    assert check_key("k", ops, unique_values=False).verdict is expected, [op.describe() for op in ops]
    written = [op.value for op in ops if op.kind != "read"]
    if len(set(written)) < len(written):  # the default (unique-values) mode refuses such histories
        with pytest.raises(ValueError, match="unique"):
            check_key("k", ops)
