"""Client libraries' own test suites, unmodified, against ``muster agent -dev``.

What runs and why is in ``clientsuite.py``; which tests are still deselected, by whom they are
owned and why, is in ``deselected.txt``.  This test fails when any selected test of the
suite fails or errors, when the suite selects nothing, or when a line of the list names a
test the suite does not have (a typo or a renamed test would otherwise hide a failure).
``make clientsuites-stale`` reports the deselected tests that pass now.
"""

from __future__ import annotations

import pytest
from clientsuite import PY_CONSUL, run_suite

pytestmark = pytest.mark.timeout(1500)


def test_py_consul_own_suite() -> None:
    result = run_suite(PY_CONSUL)
    summary = result.summary
    assert summary, f"the suite did not run (exit {result.returncode}):\n{result.output[-4000:]}"
    assert not summary["unknown_list_entries"], (
        f"deselected.txt names tests py-consul 1.8.0 does not have: {summary['unknown_list_entries']}"
    )
    bad = result.with_outcome("failed", "error")
    assert not bad, f"{len(bad)} py-consul tests failed: {bad}\n{result.output[-8000:]}"
    passed = result.with_outcome("passed")
    assert len(passed) >= 1 and result.returncode == 0, result.output[-4000:]
