"""pytest plugin loaded (``-p muster_clientsuite``) into a client library's own test suite.

It changes no test: it only chooses which of the suite's collected tests run.

* Tests parametrized over Consul versions (py-consul's ``consul_instance`` fixtures) run once,
  for the version whose ``major.minor`` Muster reports (``MUSTER_CLIENTSUITE_VERSION``); the
  others would start the same agent again and repeat the same requests.
* Tests named in the deselect list (``MUSTER_CLIENTSUITE_LIST``, lines
  ``<suite> | <node id> | <owner> | <reason>`` for ``MUSTER_CLIENTSUITE_NAME``) are deselected;
  with ``MUSTER_CLIENTSUITE_MODE=listed`` only those run (the stale-entry check).
* Tests that need the container-local ``127.0.0.1:8500`` (``NEEDS_LOCAL_API``, see
  ``docker.LocalAPIPort``) are deselected, and named in the summary, only when that port is
  taken on this machine (e.g. by ``make run``).
* A JSON summary (``MUSTER_CLIENTSUITE_SUMMARY``) records what was selected and every list
  entry that matched no collected test, so the harness can refuse a stale or mistyped list.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

_VERSION_FIXTURES = ("consul_instance", "acl_consul_instance")
#: py-consul tests whose HTTP checks target http://127.0.0.1:8500 (or localhost:8500), the
#: agent's own API inside its container.
NEEDS_LOCAL_API = ("tests/api/test_agent.py::TestAgent::test_agent_checks", "tests/api/test_agent.py::TestAgent::test_service_multi_check")


def local_api_port_busy() -> str | None:
    """Why ``127.0.0.1:8500`` cannot be bound for the relay, or None when it is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", 8500))
        except OSError as err:
            return f"127.0.0.1:8500 is in use on this machine ({err.strerror})"
    return None
_SUMMARY: dict[str, Any] = {}


def read_list(path: Path, suite: str) -> dict[str, str]:
    """``{node id: "owner: reason"}`` for ``suite`` from the deselect list file."""
    entries: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 4 or not all(parts):
            raise ValueError(f"{path}:{lineno}: want '<suite> | <node id> | <owner> | <reason>', got {raw!r}")
        if parts[0] == suite:
            if parts[1] in entries:
                raise ValueError(f"{path}:{lineno}: {parts[1]} is listed twice")
            entries[parts[1]] = f"{parts[2]}: {parts[3]}"
    return entries


def _other_version(item: pytest.Item, wanted: str) -> bool:
    callspec: Any = getattr(item, "callspec", None)
    if callspec is None:
        return False
    for name in _VERSION_FIXTURES:
        if name in callspec.params:
            version = str(callspec.params[name])
            return version.split(".")[:2] != wanted.split(".")[:2]
    return False


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    suite = os.environ["MUSTER_CLIENTSUITE_NAME"]
    wanted = os.environ["MUSTER_CLIENTSUITE_VERSION"]
    listed = read_list(Path(os.environ["MUSTER_CLIENTSUITE_LIST"]), suite)
    only_listed = os.environ.get("MUSTER_CLIENTSUITE_MODE", "run") == "listed"

    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    other_versions = 0
    seen: set[str] = set()
    busy = local_api_port_busy()
    needs_port: list[str] = []
    for item in items:
        if _other_version(item, wanted):
            other_versions += 1
            drop.append(item)
            continue
        if busy and item.nodeid.split("[")[0] in NEEDS_LOCAL_API:
            needs_port.append(item.nodeid)
            drop.append(item)
            continue
        is_listed = item.nodeid in listed
        if is_listed:
            seen.add(item.nodeid)
        (keep if is_listed == only_listed else drop).append(item)
    items[:] = keep
    if drop:
        config.hook.pytest_deselected(items=drop)

    _SUMMARY.update(
        selected=[i.nodeid for i in keep],
        other_versions=other_versions,
        listed=listed,
        unknown_list_entries=sorted(set(listed) - seen),
        deselected_local_api_busy={"reason": busy, "tests": needs_port} if needs_port else {},
    )
    if needs_port:
        print(f"\nmuster_clientsuite: deselected {needs_port}: {busy}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Outcome per node id: the worst of setup/call/teardown ("error" outside the call)."""
    outcomes: dict[str, str] = _SUMMARY.setdefault("outcomes", {})
    if report.failed:
        outcomes[report.nodeid] = "failed" if report.when == "call" else "error"
    elif report.skipped:
        outcomes.setdefault(report.nodeid, "skipped")
    elif report.when == "call":
        outcomes.setdefault(report.nodeid, "passed")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    summary_path = os.environ.get("MUSTER_CLIENTSUITE_SUMMARY")
    if summary_path:
        Path(summary_path).write_text(json.dumps(_SUMMARY, indent=1), encoding="utf-8")
