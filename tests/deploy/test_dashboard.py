"""The Grafana dashboard in ``deploy/grafana``: well-formed, and every query valid PromQL.

promtool (from Debian's ``prometheus`` package, installed by ``make sysdeps``) checks a rules
file made of the dashboard's queries.  That the queries also return data from a real cluster is
checked by ``tests/cluster/test_prometheus.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "muster-dashboard.json"


def _queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_dashboard_shape() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 30
    assert [v["name"] for v in dash["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
    assert all(q.count("consul_") >= 1 for q in _queries())


def _check_rules(tmp_path: Path, exprs: list[str]) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (make sysdeps)")
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"muster:dashboard:{i}", "expr": e} for i, e in enumerate(exprs)
    ]}]}
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    out = _check_rules(tmp_path, _queries())
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_rejects_a_broken_query(tmp_path: Path) -> None:
    out = _check_rules(tmp_path, ["sum(rate(consul_raft_apply[1m])"])
    assert out.returncode != 0
