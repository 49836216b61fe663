"""A 3-server cluster scraped by the real Prometheus (Debian's ``prometheus`` package).

Prometheus scrapes ``/v1/agent/metrics?format=prometheus`` of every server (static targets),
and the series are read back through its HTTP query API: Consul's names arrive with their
types, from all three servers.  Every query of the Grafana dashboard in ``deploy/grafana`` is
then run against the same Prometheus, and each must return data (so a renamed metric breaks
this test, not a dashboard in production).  Skipped only when the ``prometheus`` binary is
absent (``make sysdeps`` installs it).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import Cluster, env_ok, running, wait_until

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "muster-dashboard.json"
PROMETHEUS = shutil.which("prometheus")

pytestmark = [
    pytest.mark.skipif(not env_ok(), reason="127.0.0.2/3 not bindable"),
    pytest.mark.skipif(PROMETHEUS is None, reason="the prometheus binary is not installed (make sysdeps)"),
]

TELEMETRY = 'telemetry {\n  prometheus_retention_time = "120s"\n  disable_hostname = true\n}\n'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with running(Cluster(tmp_path / "cluster", extra=["-hcl", TELEMETRY]), request) as c:
        yield c


@pytest.fixture
def prometheus(tmp_path: Path, cluster: Cluster) -> Iterator[str]:
    port = _free_port()
    targets = [f"{n.ip}:{cluster.http_port}" for n in cluster.nodes]
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: muster\n    metrics_path: /v1/agent/metrics\n"
        "    params:\n      format: [prometheus]\n"
        f"    static_configs:\n      - targets: {json.dumps(targets)}\n"
    )
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    assert PROMETHEUS is not None
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={cfg}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def _api(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    return list(_api(base, "/api/v1/query", query=expr)["result"])


def dashboard_queries() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]


# Panels whose series exist only after an event this test does not cause.
MAY_BE_EMPTY = ("consul_serf_member_failed", "consul_serf_member_left", "consul_dns_")


def test_prometheus_scrapes_consul_named_series_from_every_server(cluster: Cluster, prometheus: str) -> None:
    leader = cluster.wait_leader(timeout=30)
    for i in range(30):
        assert cluster.put(i % 3, f"prom/k{i}", b"v")
    cluster.request(leader, "GET", "/v1/kv/prom/k1")
    targets = [f"{n.ip}:{cluster.http_port}" for n in cluster.nodes]

    def all_up() -> bool:
        res = _query(prometheus, 'up{job="muster"} == 1')
        return sorted(r["metric"]["instance"] for r in res) == sorted(targets)

    wait_until(all_up, 60, "Prometheus to scrape all three servers")
    # Types as Consul declares them, through Prometheus' metadata API.
    meta = _api(prometheus, "/api/v1/metadata")
    assert meta["consul_raft_apply"][0]["type"] == "counter"
    assert meta["consul_kvs_apply"][0]["type"] == "summary"
    assert meta["consul_runtime_alloc_bytes"][0]["type"] == "gauge"
    # Every server reports runtime gauges; the leader's counters count the writes.
    res = _query(prometheus, "consul_runtime_alloc_bytes")
    assert sorted(r["metric"]["instance"] for r in res) == sorted(targets)
    def applied() -> bool:
        res = _query(prometheus, "sum(consul_raft_apply)")
        assert res, [(t["scrapeUrl"], t["health"], t["lastError"]) for t in _api(prometheus, "/api/v1/targets")["activeTargets"]]
        return float(res[0]["value"][1]) >= 30

    wait_until(applied, 20, "the leader's raft.apply counter")
    def kv_writes_counted() -> bool:  # each server timed the writes it received: 30 in all
        kv = _query(prometheus, "sum(consul_kvs_apply_count)")
        http = _query(prometheus, 'sum(consul_api_http_count{method="PUT",path="_v1_kv_"})')
        return bool(kv and http) and float(kv[0]["value"][1]) == 30.0 == float(http[0]["value"][1])

    wait_until(kv_writes_counted, 20, "consul_kvs_apply and consul_api_http to count the 30 writes")
    leaders = _query(prometheus, "consul_server_isLeader == 1")
    assert [r["metric"]["instance"] for r in leaders] == [targets[leader]]

    def dashboard_has_data() -> bool:
        missing = [
            (title, expr)
            for title, expr in dashboard_queries()
            if not any(m in expr for m in MAY_BE_EMPTY) and not _query(prometheus, expr)
        ]
        assert not missing, missing
        return True

    # rate() needs two scrapes of a series: give it a few seconds.
    wait_until(dashboard_has_data, 30, "every dashboard query to return data")
