"""go-metrics semantics of ``Metrics``: intervals, the JSON display, Prometheus families, naming."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from muster.telemetry.metrics import Metrics, prom_name
from muster.telemetry.prometheus import render_text


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_display_shows_the_only_interval_then_the_last_finished_one() -> None:
    clk = Clock()
    m = Metrics(clock=clk, hostname="h1")
    m.configure("consul", disable_hostname=True, retention=60)
    m.incr("raft.apply")
    m.incr("raft.apply", 2)
    m.sample("kvs.apply", 4.0)
    m.sample("kvs.apply", 2.0)
    m.gauge("runtime.alloc_bytes", 123.0)
    d = m.display()
    assert set(d) == {"Timestamp", "Gauges", "Points", "Counters", "Samples"}
    assert d["Timestamp"].endswith(" +0000 UTC")
    assert d["Gauges"] == [{"Name": "consul.runtime.alloc_bytes", "Value": 123.0, "Labels": {}}]
    (c,) = d["Counters"]
    assert (c["Name"], c["Count"], c["Sum"], c["Min"], c["Max"], c["Mean"]) == ("consul.raft.apply", 2, 3.0, 1.0, 2.0, 1.5)
    assert math.isclose(c["Rate"], 0.3)
    (s,) = d["Samples"]
    assert (s["Name"], s["Count"], s["Sum"], s["Mean"]) == ("consul.kvs.apply", 2, 6.0, 3.0)
    assert math.isclose(s["Stddev"], math.sqrt(2.0))
    assert list(s) == ["Name", "Count", "Rate", "Sum", "Min", "Max", "Mean", "Stddev", "Labels"]
    # A new interval begins: the display keeps showing the finished one until the next ends.
    clk.t += 10
    m.incr("raft.apply", 5)
    assert m.display()["Counters"][0]["Sum"] == 3.0
    clk.t += 10
    m.gauge("runtime.alloc_bytes", 1.0)
    d = m.display()
    assert d["Counters"][0]["Sum"] == 5.0
    assert d["Gauges"] == []  # gauges are per interval: none was set in that one


def test_gauges_carry_the_host_name_unless_disabled() -> None:
    m = Metrics(clock=Clock(), hostname="web-1")
    m.configure("consul", disable_hostname=False, retention=60)
    m.gauge("runtime.num_goroutines", 3)
    m.incr("raft.apply")
    d = m.display()
    assert d["Gauges"][0]["Name"] == "consul.web-1.runtime.num_goroutines"
    assert d["Counters"][0]["Name"] == "consul.raft.apply"  # only gauges get the host name
    fams = {n: k for n, k, _ in m.prometheus_families()}
    assert fams == {"consul_web_1_runtime_num_goroutines": "gauge", "consul_raft_apply": "counter"}


def test_labels_are_kept_per_series() -> None:
    m = Metrics(clock=Clock(), hostname="h")
    m.configure("consul", True, 60)
    m.sample("api.http", 1.0, (("method", "GET"), ("path", "_v1_kv_")))
    m.sample("api.http", 3.0, (("method", "PUT"), ("path", "_v1_kv_")))
    samples = m.display()["Samples"]
    assert [(s["Labels"]["method"], s["Sum"]) for s in samples] == [("GET", 1.0), ("PUT", 3.0)]


def test_prometheus_text_parses_with_consul_names_and_types() -> None:
    clk = Clock()
    m = Metrics(clock=clk, hostname="h")
    m.configure("consul", True, 60)
    for _ in range(4):
        m.incr("raft.apply")
    for v in (1.0, 2.0, 3.0, 4.0):
        m.sample("raft.commitTime", v)
    m.gauge("autopilot.healthy", 1.0)
    m.sample("api.http", 2.5, (("method", "GET"), ("path", "_v1_kv_")))
    text = render_text(m).decode()
    assert "# TYPE consul_raft_apply counter\nconsul_raft_apply 4.0\n" in text  # no _total, as Consul
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["consul_raft_commitTime"].type == "summary"
    got = {(s.name, s.labels.get("quantile")): s.value for s in fams["consul_raft_commitTime"].samples}
    assert got[("consul_raft_commitTime_count", None)] == 4.0
    assert got[("consul_raft_commitTime_sum", None)] == 10.0
    assert got[("consul_raft_commitTime", "0.5")] == 3.0
    assert fams["consul_autopilot_healthy"].type == "gauge"
    http = fams["consul_api_http"].samples[0]
    assert http.labels["method"] == "GET" and http.labels["path"] == "_v1_kv_"
    # Quantiles cover the last 10 seconds only; the totals stay.
    clk.t += 30
    text = render_text(m).decode()
    assert 'consul_raft_commitTime{quantile="0.5"} NaN' in text
    assert "consul_raft_commitTime_count 4.0" in text


def test_series_expire_after_the_retention_time() -> None:
    clk = Clock()
    m = Metrics(clock=clk, hostname="h")
    m.configure("consul", True, retention=30)
    m.incr("raft.apply")
    m.gauge("state.nodes", 3)
    clk.t += 20
    m.incr("kvs.x")
    clk.t += 15
    names = {n for n, _, _ in m.prometheus_families()}
    assert names == {"consul_kvs_x"}


def test_prom_name_flattens_like_go_metrics() -> None:
    assert prom_name("consul.http.GET.v1.kv._") == "consul_http_GET_v1_kv__"
    assert prom_name("consul.web-1.runtime.x") == "consul_web_1_runtime_x"


def _state(m: Metrics) -> tuple[object, ...]:
    """Everything a view reads: every interval's aggregates, the Prometheus tables."""
    ivs = [
        (iv.start, sorted((k, a.count, a.sum, a.sumsq, a.min, a.max) for k, a in iv.samples.items()),
         sorted((k, a.count, a.sum) for k, a in iv.counters.items()))
        for iv in m.intervals
    ]  # fmt: skip
    prom = (sorted((k, s.sum, s.count, list(s.recent)) for k, s in m.p_summaries.items()), sorted(m.p_counters.items()))
    return ivs, prom


def test_a_series_handle_records_exactly_what_the_registry_methods_record() -> None:
    """Across interval turnover, ``reset`` and a Prometheus expiry, a ``Series`` held by a call
    site leaves the registry in the same state as ``incr``/``sample`` with the same arguments."""
    clk_a, clk_b = Clock(), Clock()
    a, b = Metrics(clock=clk_a, hostname="h"), Metrics(clock=clk_b, hostname="h")
    for m in (a, b):
        m.configure("consul", True, retention=5)
    labels = (("method", "PUT"), ("path", "v1.kv"))
    http, apply = b.series("api.http", labels), b.series("raft.apply")
    # t = 3, 7, 7, 14, 26, 26.5, 57.5, reset, 58.5 (same interval), 61, 67 (idle), expire,
    # 68 (same interval), 108, 110
    steps = [3.0, 4.0, 0.0, 7.0, 12.0, 0.5, 31.0, "reset", 1.0, 2.5, "idle", "expire", 1.0, 40.0, 2.0]
    for i, step in enumerate(steps):
        if step == "reset":
            a.reset()
            b.reset()
            continue
        if step == "idle":  # nothing recorded for longer than the retention
            clk_a.t += 6.0
            clk_b.t += 6.0
            continue
        if step == "expire":
            a.expire()
            b.expire()
            assert not a.p_summaries and not b.p_summaries
            continue
        assert isinstance(step, float)
        clk_a.t += step
        clk_b.t += step
        a.sample("api.http", float(i), labels)
        http.sample(float(i))
        a.incr("raft.apply")
        apply.incr()
        assert _state(a) == _state(b), (i, step)
    assert b.display()["Samples"] == a.display()["Samples"]


def test_measure_since_with_a_counter_records_both_series() -> None:
    """The single-server log's form: one ``perf_counter`` reading times ``raft.fsm.apply`` and
    counts ``raft.apply``; the JSON view shows both, and a reset starts both afresh."""
    import time as _time

    m = Metrics(clock=Clock(), hostname="h")
    m.configure("consul", True, retention=0)
    fsm, apply = m.series("raft.fsm.apply"), m.series("raft.apply")
    for _ in range(3):
        fsm.measure_since(_time.perf_counter(), count=apply)
    d = m.display()
    assert [(c["Name"], c["Count"], c["Sum"]) for c in d["Counters"]] == [("consul.raft.apply", 3, 3.0)]
    assert [(s["Name"], s["Count"]) for s in d["Samples"]] == [("consul.raft.fsm.apply", 3)]
    assert d["Samples"][0]["Min"] >= 0.0
    assert not m.p_counters and not m.p_summaries  # no Prometheus series without a retention
    m.reset()
    fsm.measure_since(_time.perf_counter(), count=apply)
    d = m.display()
    assert (d["Counters"][0]["Count"], d["Samples"][0]["Count"]) == (1, 1)
