"""Run a client library's own test suite, unmodified, against ``muster agent -dev``.

The suites are unpacked by ``make clientsuites`` from their PyPI sdists (pinned versions)
into ``.venv/clientsuites/<dir>``.  They run in a child pytest, in the sdist's directory
(so its own ``consul`` package, conftest and pytest settings are the ones used), with
``shim/`` on ``PYTHONPATH``: ``shim/docker`` starts ``muster agent`` where the suite
would start a ``hashicorp/consul`` container, and the ``muster_clientsuite`` plugin
applies ``deselected.txt`` and records every outcome.

``python tests/clientsuites/clientsuite.py --listed`` runs only the deselected tests and
prints those that now pass: their line in ``deselected.txt`` should go.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from muster.version import VERSION

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHIM = HERE / "shim"
LIST_FILE = HERE / "deselected.txt"
SUITES_DIR = Path(os.environ.get("MUSTER_CLIENTSUITES_DIR", str(REPO / ".venv" / "clientsuites")))
ARTIFACTS = REPO / "test-artifacts"


@dataclass(frozen=True)
class Suite:
    """A client library's test suite as its sdist ships it."""

    name: str  # the first column of deselected.txt
    directory: str  # under SUITES_DIR, as `make clientsuites` unpacks it
    paths: tuple[str, ...]  # what pytest is given, relative to the directory


PY_CONSUL = Suite("py-consul", "py_consul-1.8.0", ("tests",))


@dataclass
class Result:
    returncode: int
    summary: dict[str, Any]
    output: str

    @property
    def outcomes(self) -> dict[str, str]:
        return dict(self.summary.get("outcomes", {}))

    def with_outcome(self, *wanted: str) -> list[str]:
        return sorted(n for n, o in self.outcomes.items() if o in wanted)


def run_suite(suite: Suite, *, listed: bool = False, timeout: float = 1500.0) -> Result:
    """Run ``suite`` in a child pytest; ``listed`` runs only its deselected tests."""
    root = SUITES_DIR / suite.directory
    if not (root / "conftest.py").exists() and not (root / "tests").is_dir():
        raise FileNotFoundError(f"{root} is missing: run `make clientsuites` (it downloads the pinned sdists)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tag = f"{suite.name}{'-listed' if listed else ''}"
    summary_path = ARTIFACTS / f"clientsuite-{tag}.json"
    summary_path.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSUL_", "PYTEST_"))}
    env.update(
        PYTHONPATH=str(SHIM),
        PYTHONHASHSEED="0",
        MUSTER_CLIENTSUITE_NAME=suite.name,
        MUSTER_CLIENTSUITE_VERSION=VERSION,
        MUSTER_CLIENTSUITE_LIST=str(LIST_FILE),
        MUSTER_CLIENTSUITE_MODE="listed" if listed else "run",
        MUSTER_CLIENTSUITE_SUMMARY=str(summary_path),
        MUSTER_CLIENTSUITE_ARTIFACTS=str(ARTIFACTS),
    )
    argv = [
        sys.executable, "-m", "pytest", "-p", "muster_clientsuite", "-p", "no:cacheprovider",
        "-o", "addopts=", "-o", "timeout=120", "-q", "-rfE", "--no-header", *suite.paths,
    ]  # fmt: skip
    proc = subprocess.run(
        argv, cwd=str(root), env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = proc.stdout + proc.stderr
    (ARTIFACTS / f"clientsuite-{tag}.out").write_text(output, encoding="utf-8")
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    return Result(proc.returncode, summary, output)


def main(argv: list[str]) -> int:
    listed = "--listed" in argv
    result = run_suite(PY_CONSUL, listed=listed)
    if listed:
        passing = result.with_outcome("passed")
        for nodeid in passing:
            print(f"now passes, remove from {LIST_FILE.name}: {nodeid}")
        print(f"{len(passing)} of {len(result.summary.get('selected', []))} deselected tests now pass")
        return 1 if passing else 0
    print(result.output[-5000:])
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
