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


def test_aggregates_are_exact_across_folds() -> None:
    """Values are folded in chunks (``FOLD``): the interval's aggregate is still every value's."""
    from muster.telemetry.metrics import FOLD, series_id

    m = Metrics(clock=Clock(), hostname="h")
    m.configure("consul", True, 60)
    vals = [float((i * 37) % 101) for i in range(3 * FOLD + 7)]
    k = series_id("kvs.apply")
    for v in vals:
        m.sample_key(k, v)
    (s,) = m.display()["Samples"]
    n = len(vals)
    mean = sum(vals) / n
    assert (s["Count"], s["Sum"], s["Min"], s["Max"]) == (n, sum(vals), min(vals), max(vals))
    assert math.isclose(s["Mean"], mean)
    assert math.isclose(s["Stddev"], math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)))
    # Reading the view folds what is pending; recording afterwards keeps adding to the same series.
    m.sample_key(k, 1000.0)
    (s,) = m.display()["Samples"]
    assert (s["Count"], s["Max"]) == (n + 1, 1000.0)


def test_prometheus_totals_add_up_every_interval() -> None:
    clk = Clock()
    m = Metrics(clock=clk, hostname="h")
    m.configure("consul", True, 600)
    for i in range(5):
        m.incr("raft.apply", 2.0)
        m.sample("raft.commitTime", float(i))
        clk.t += 10
    m.incr("raft.apply")  # the current interval counts too
    text = render_text(m).decode()
    assert "consul_raft_apply 11.0\n" in text
    assert "consul_raft_commitTime_sum 10.0\n" in text
    assert "consul_raft_commitTime_count 5.0\n" in text
    # The quantile window (10 s) reaches into the previous interval: its value 4.0 is still there.
    assert 'consul_raft_commitTime{quantile="0.5"} 4.0' in text
    # The JSON view shows the last finished interval only.
    assert m.display()["Counters"][0]["Sum"] == 2.0
