"""Agent endpoint contract tests (docs/compat/agent.md), anti-entropy and config-file services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from muster.config import config_from_dict
from muster.errors import MusterError
from muster.process import AgentProcess
from muster.runtime import Rng
from muster.telemetry.metrics import default_metrics


async def wait_for(cond: Callable[[], Awaitable[bool]], timeout: float = 3.0) -> None:
    """Poll ``cond`` every 10 ms; fail the test if it is not true within ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def build(extra: dict[str, Any] | None = None) -> AgentProcess:
    raw = {"node_name": "test-node"}
    raw.update(extra or {})
    proc = AgentProcess(config_from_dict(raw, dev=True), rng=Rng(7))
    proc.agent.min_check_interval = 0.05
    return proc


@pytest.fixture
async def custom() -> AsyncIterator[Callable[[dict[str, Any]], Awaitable[tuple[AgentProcess, httpx.AsyncClient]]]]:
    """Start an in-process agent with extra config; everything started is stopped afterwards."""
    started: list[tuple[AgentProcess, httpx.AsyncClient]] = []

    async def make(extra: dict[str, Any]) -> tuple[AgentProcess, httpx.AsyncClient]:
        proc = build(extra)
        await proc.server.start()
        await proc.agent.start()
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=proc.app), base_url="http://muster.test")
        started.append((proc, c))
        return proc, c

    yield make
    for proc, c in started:
        await c.aclose()
        await proc.agent.stop()
        await proc.server.stop()


async def catalog_ids(c: httpx.AsyncClient, node: str = "test-node") -> list[str]:
    body = (await c.get(f"/v1/catalog/node/{node}")).json()
    return sorted(body["Services"]) if body else []


async def catalog_check(c: httpx.AsyncClient, cid: str) -> dict[str, Any] | None:
    for chk in (await c.get("/v1/health/node/test-node")).json():
        if chk["CheckID"] == cid:
            return dict(chk)
    return None


# --------------------------------------------------------------------------- self / members


async def test_self_and_members(client: httpx.AsyncClient, agent: AgentProcess) -> None:
    body = (await client.get("/v1/agent/self")).json()
    cfg = body["Config"]
    assert cfg["Datacenter"] == "dc1" and cfg["NodeName"] == "test-node" and cfg["Server"] is True
    assert cfg["NodeID"] == agent.server.ident.node_id and cfg["Version"].count(".") == 2
    assert body["Meta"]["consul-network-segment"] == ""
    for section, values in body["Stats"].items():
        assert all(isinstance(v, str) for v in values.values()), section
    assert body["Stats"]["consul"]["leader"] == "true" and body["Stats"]["raft"]["state"] == "Leader"
    assert int(body["Stats"]["raft"]["last_log_index"]) == agent.server.log.last_index()
    assert body["Member"]["Tags"]["role"] == "consul"
    [m] = (await client.get("/v1/agent/members")).json()
    assert m["Name"] == "test-node" and m["Status"] == 1 and m["Port"] == 8301
    tags = m["Tags"]
    assert tags["dc"] == "dc1" and tags["id"] == agent.server.ident.node_id and tags["port"] == "8300"
    assert tags["build"].split(":")[0] == cfg["Version"] and tags["vsn"] == "2"
    [w] = (await client.get("/v1/agent/members?wan=1")).json()
    assert w["Name"] == "test-node.dc1" and w["Port"] == 8302
    assert (await client.get("/v1/agent/members", params={"filter": 'Name == "x"'})).json() == []
    assert "X-Consul-Index" not in (await client.get("/v1/agent/self")).headers


async def test_member_source_seam(client: httpx.AsyncClient, agent: AgentProcess) -> None:
    agent.agent.member_source = lambda wan: [{"Name": "wan" if wan else "lan", "Status": 1}]
    assert [m["Name"] for m in (await client.get("/v1/agent/members")).json()] == ["lan"]


# --------------------------------------------------------------------------- services


async def test_service_register_roundtrip(client: httpx.AsyncClient) -> None:
    body = {"name": "web", "id": "web-1", "port": 8080, "tags": ["v1"], "meta": {"Version": "2"},
            "enabletagoverride": True, "tagged_addresses": {"lan": {"address": "10.0.0.1", "port": 80}},
            "checks": [{"ttl": "30s"}, {"name": "second", "ttl": "30s", "status": "passing"}]}
    r = await client.put("/v1/agent/service/register", json=body)
    assert (r.status_code, r.text) == (200, "")
    svc = (await client.get("/v1/agent/services")).json()["web-1"]
    assert svc == {"ID": "web-1", "Service": "web", "Tags": ["v1"], "Meta": {"Version": "2"}, "Port": 8080,
                   "Address": "", "TaggedAddresses": {"lan": {"Address": "10.0.0.1", "Port": 80}},
                   "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": True, "Datacenter": "dc1"}
    checks = (await client.get("/v1/agent/checks")).json()
    c1, c2 = checks["service:web-1:1"], checks["service:web-1:2"]
    assert c1["Name"] == "Service 'web' check" and c1["Status"] == "critical" and c1["Type"] == "ttl"
    assert c2["Name"] == "second" and c2["Status"] == "passing" and c2["ServiceName"] == "web"
    r = await client.get("/v1/agent/service/web-1")
    assert r.json()["ContentHash"] == r.headers["X-Consul-ContentHash"] and r.json()["Service"] == "web"
    r = await client.get("/v1/agent/service/nope")
    assert (r.status_code, r.text) == (404, "unknown service ID: nope")
    await wait_for(lambda: _has(client, "web-1"))
    filtered = (await client.get("/v1/agent/services", params={"filter": 'Service == "none"'})).json()
    assert filtered == {}


async def _has(c: httpx.AsyncClient, sid: str) -> bool:
    return sid in await catalog_ids(c)


async def test_single_embedded_check_id(client: httpx.AsyncClient) -> None:
    await client.put("/v1/agent/service/register", json={"Name": "db", "Check": {"TTL": "10s"}})
    assert list((await client.get("/v1/agent/checks")).json()) == ["service:db"]


async def test_service_register_errors(client: httpx.AsyncClient) -> None:
    cases = [
        ({"port": 1}, "Missing service name"),
        ({"name": "a", "address": "0.0.0.0"}, "Invalid service address"),
        ({"name": "a", "weights": {"passing": 0, "warning": 1}}, "Invalid Weights: Passing must be greater than 0"),
        ({"name": "a", "meta": {"consul-x": "1"}},
         "Invalid Service Meta: Couldn't load metadata pair ('consul-x', '1'): Key prefix 'consul-' is reserved for internal use"),
        ({"name": "a", "check": {"http": "http://x"}},
         "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"),
        ({"name": "a", "check": {"ttl": "1s", "interval": "1s"}}, "Invalid check: Interval and TTL cannot both be specified"),
        ({"name": "a", "check": {"ttl": "1s", "status": "bad"}}, "Status for checks must 'passing', 'warning', 'critical'"),
    ]
    for body, text in cases:
        r = await client.put("/v1/agent/service/register", json=body)
        assert (r.status_code, r.text) == (400, text), body
    r = await client.put("/v1/agent/service/register", json={"name": "a", "check": {"args": ["true"], "interval": "1s"}})
    assert r.status_code == 500 and r.text.startswith("Scripts are disabled on this agent")
    assert (await client.get("/v1/agent/services")).json() == {}


async def test_script_check_sources(custom: Any) -> None:
    _, c = await custom({"enable_local_script_checks": True})
    r = await c.put("/v1/agent/check/register", json={"name": "s", "args": ["true"], "interval": "1s"})
    assert r.status_code == 500
    assert r.text == ("Scripts are disabled on this agent from remote calls; to enable, configure "
                      "'enable_script_checks' to true")
    _, c2 = await custom({"enable_script_checks": True})
    r = await c2.put("/v1/agent/check/register", json={"name": "s", "args": ["sh", "-c", "echo hi; exit 1"], "interval": "1s"})
    assert r.status_code == 200

    async def warned() -> bool:
        chk = (await c2.get("/v1/agent/checks")).json()["s"]
        return bool(chk["Status"] == "warning" and chk["Output"] == "hi\n")

    await wait_for(warned)


async def test_legacy_script_key_is_ignored(client: httpx.AsyncClient) -> None:
    # Consul dropped the ``script`` string in 1.1 and ignores it as an unknown key: with a TTL
    # the check is a TTL check (python-consul2's deprecated Check.script sends exactly this).
    r = await client.put("/v1/agent/check/register", json={"Name": "legacy", "script": "exit 0", "ttl": "10s"})
    assert (r.status_code, r.text) == (200, "")
    chk = (await client.get("/v1/agent/checks")).json()["legacy"]
    assert chk["Type"] == "ttl" and chk["Status"] == "critical"
    r = await client.put("/v1/agent/check/register", json={"Name": "only-script", "Script": "exit 0", "Interval": "1s"})
    assert r.status_code == 400, r.text


async def test_replace_existing_checks(client: httpx.AsyncClient) -> None:
    await client.put("/v1/agent/service/register", json={"Name": "r", "Checks": [{"TTL": "9s"}, {"TTL": "9s"}]})
    await client.put("/v1/agent/check/register", json={"Name": "extra", "TTL": "9s", "ServiceID": "r"})
    await client.put("/v1/agent/service/register", json={"Name": "r", "Check": {"CheckID": "only", "TTL": "9s"}})
    assert sorted((await client.get("/v1/agent/checks")).json()) == ["extra", "only", "service:r:1", "service:r:2"]
    await client.put("/v1/agent/service/register?replace-existing-checks", json={"Name": "r", "Check": {"CheckID": "only", "TTL": "9s"}})
    assert sorted((await client.get("/v1/agent/checks")).json()) == ["only"]


async def test_service_deregister(client: httpx.AsyncClient) -> None:
    await client.put("/v1/agent/service/register", json={"Name": "gone", "Check": {"TTL": "9s"}})
    await wait_for(lambda: _has(client, "gone"))
    assert (await client.put("/v1/agent/service/deregister/gone")).status_code == 200
    assert (await client.get("/v1/agent/services")).json() == {}
    assert (await client.get("/v1/agent/checks")).json() == {}

    async def gone() -> bool:
        return "gone" not in await catalog_ids(client) and await catalog_check(client, "service:gone") is None

    await wait_for(gone)
    r = await client.put("/v1/agent/service/deregister/gone")
    assert r.status_code == 404
    assert r.text == 'Unknown service ID "gone". Ensure that the service ID is passed, not the service name.'


# --------------------------------------------------------------------------- checks


async def test_check_register_and_ttl_updates(client: httpx.AsyncClient) -> None:
    r = await client.put("/v1/agent/check/register", json={"Name": "mem", "TTL": "30s", "Notes": "n"})
    assert r.status_code == 200
    chk = (await client.get("/v1/agent/checks")).json()["mem"]
    assert chk["Status"] == "critical" and chk["Notes"] == "n" and chk["ServiceID"] == "" and chk["Type"] == "ttl"
    for verb, status in (("pass", "passing"), ("warn", "warning"), ("fail", "critical")):
        assert (await client.put(f"/v1/agent/check/{verb}/mem?note=via-{verb}")).status_code == 200
        chk = (await client.get("/v1/agent/checks")).json()["mem"]
        assert (chk["Status"], chk["Output"]) == (status, f"via-{verb}")
    r = await client.put("/v1/agent/check/update/mem", json={"status": "passing", "output": "x" * 5000})
    assert r.status_code == 200
    out = (await client.get("/v1/agent/checks")).json()["mem"]["Output"]
    assert out == "x" * 4096 + " ... (captured 4096 of 5000 bytes)"
    r = await client.put("/v1/agent/check/update/mem", json={"Status": "meh"})
    assert (r.status_code, r.text) == (400, "Invalid check status: 'meh'")

    async def synced() -> bool:
        c = await catalog_check(client, "mem")
        return c is not None and c["Status"] == "passing"

    await wait_for(synced)


async def test_check_errors(client: httpx.AsyncClient) -> None:
    r = await client.put("/v1/agent/check/register", json={"TTL": "1s"})
    assert (r.status_code, r.text) == (400, "Missing check name")
    r = await client.put("/v1/agent/check/register", json={"Name": "x", "TTL": "1s", "Status": "fine"})
    assert (r.status_code, r.text) == (400, "Bad check status")
    r = await client.put("/v1/agent/check/register", json={"Name": "x"})
    assert (r.status_code, r.text) == (400, "Invalid check: TTL must be > 0 for TTL checks")
    r = await client.put("/v1/agent/check/register", json={"Name": "x", "TTL": "1s", "ServiceID": "nosvc"})
    assert (r.status_code, r.text) == (404, 'ServiceID "nosvc" does not exist')
    r = await client.put("/v1/agent/check/register", json={"Name": "x", "TTL": "bogus"})
    assert r.status_code == 400 and r.text.startswith("Request decode failed:")
    r = await client.put("/v1/agent/check/pass/nope")
    assert r.status_code == 404 and r.text.startswith('Unknown check ID "nope"')
    await client.put("/v1/agent/check/register", json={"Name": "tcp", "TCP": "127.0.0.1:1", "Interval": "10s"})
    r = await client.put("/v1/agent/check/pass/tcp")
    assert (r.status_code, r.text) == (500, 'CheckID "tcp" does not have associated TTL')
    assert (await client.put("/v1/agent/check/deregister/tcp")).status_code == 200
    r = await client.put("/v1/agent/check/deregister/tcp")
    assert r.status_code == 404


async def test_ttl_expiry_reaches_catalog(client: httpx.AsyncClient) -> None:
    await client.put("/v1/agent/check/register", json={"Name": "short", "TTL": "150ms"})
    await client.put("/v1/agent/check/pass/short?note=alive")

    async def expired() -> bool:
        c = await catalog_check(client, "short")
        return c is not None and c["Status"] == "critical" and c["Output"].startswith("TTL expired")

    await wait_for(expired)
    c = await catalog_check(client, "short")
    assert c is not None and c["Output"] == "TTL expired (last output before timeout follows): alive"


# --------------------------------------------------------------------------- maintenance


async def test_maintenance(client: httpx.AsyncClient) -> None:
    await client.put("/v1/agent/service/register", json={"Name": "m"})
    r = await client.put("/v1/agent/service/maintenance/m")
    assert (r.status_code, r.text) == (400, "Missing value for enable")
    r = await client.put("/v1/agent/service/maintenance/m?enable=sure")
    assert (r.status_code, r.text) == (400, "Invalid value for enable")
    assert (await client.put("/v1/agent/service/maintenance/m?enable=true&reason=upgrade")).status_code == 200
    chk = (await client.get("/v1/agent/checks")).json()["_service_maintenance:m"]
    assert chk["Name"] == "Service Maintenance Mode" and chk["Notes"] == "upgrade" and chk["Status"] == "critical"
    assert chk["ServiceID"] == "m"
    info = (await client.get("/v1/agent/health/service/id/m")).json()
    assert info["AggregatedStatus"] == "maintenance"
    await client.put("/v1/agent/service/maintenance/m?enable=false")
    assert "_service_maintenance:m" not in (await client.get("/v1/agent/checks")).json()
    r = await client.put("/v1/agent/service/maintenance/zzz?enable=true")
    assert r.status_code == 404
    await client.put("/v1/agent/maintenance?enable=1")
    chk = (await client.get("/v1/agent/checks")).json()["_node_maintenance"]
    assert chk["Name"] == "Node Maintenance Mode"
    assert chk["Notes"] == ("Maintenance mode is enabled for this node, but no reason was provided. "
                            "This is a default message.")

    async def in_catalog() -> bool:
        return await catalog_check(client, "_node_maintenance") is not None

    await wait_for(in_catalog)
    ids = [e["Service"]["ID"] for e in (await client.get("/v1/health/service/m?passing")).json()]
    assert ids == []
    await client.put("/v1/agent/maintenance?enable=false")
    assert "_node_maintenance" not in (await client.get("/v1/agent/checks")).json()


async def test_local_service_health(client: httpx.AsyncClient) -> None:
    await client.put("/v1/agent/service/register", json={"Name": "h", "ID": "h1", "Check": {"TTL": "30s", "Status": "passing"}})
    await client.put("/v1/agent/service/register", json={"Name": "h", "ID": "h2", "Check": {"TTL": "30s", "Status": "warning"}})
    r = await client.get("/v1/agent/health/service/id/h1")
    assert r.status_code == 200 and r.json()["AggregatedStatus"] == "passing" and r.headers["X-Consul-Reason"] == "passing"
    assert r.json()["Service"]["ID"] == "h1" and [c["CheckID"] for c in r.json()["Checks"]] == ["service:h1"]
    r = await client.get("/v1/agent/health/service/id/h2?format=text")
    assert (r.status_code, r.text) == (429, "warning")
    r = await client.get("/v1/agent/health/service/name/h")
    assert r.status_code == 429 and [i["Service"]["ID"] for i in r.json()] == ["h1", "h2"]
    await client.put("/v1/agent/check/fail/service:h1")
    r = await client.get("/v1/agent/health/service/name/h", headers={"Accept": "text/plain"})
    assert (r.status_code, r.text) == (503, "critical")
    r = await client.get("/v1/agent/health/service/id/none")
    assert r.status_code == 404 and r.json() == {"AggregatedStatus": "critical", "Service": None, "Checks": None}
    r = await client.get("/v1/agent/health/service/name/none?format=text")
    assert (r.status_code, r.text) == (404, "ServiceName none Not Found")


# --------------------------------------------------------------------------- metrics / reload


async def test_metrics_json_and_prometheus_disabled(client: httpx.AsyncClient) -> None:
    default_metrics().reset()
    body = (await client.get("/v1/agent/metrics")).json()
    assert set(body) == {"Timestamp", "Gauges", "Points", "Counters", "Samples"}
    names = {g["Name"] for g in body["Gauges"]}
    host = default_metrics().hostname  # go-metrics puts the host name in gauge names by default
    assert f"consul.{host}.runtime.num_goroutines" in names and f"consul.{host}.state.nodes" in names
    r = await client.get("/v1/agent/metrics?format=prometheus")
    assert (r.status_code, r.text) == (200, "")
    assert r.headers["X-Consul-Reason"] == "Prometheus is not enabled since its retention time is not positive"


async def test_metrics_prometheus_enabled(custom: Any) -> None:
    _, c = await custom({"telemetry": {"prometheus_retention_time": "60s", "disable_hostname": True}})
    r = await c.get("/v1/agent/metrics?format=prometheus")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "consul_state_nodes 1.0" in r.text
    # Prometheus offers OpenMetrics first; like Consul's handler the answer stays the text format.
    r = await c.get("/v1/agent/metrics", headers={"Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# EOF" not in r.text and "consul_state_nodes 1.0" in r.text


async def test_config_services_and_reload(custom: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    proc, c = await custom({
        "services": [{"name": "cfg", "port": 1, "check": {"ttl": "30s"}}],
        "checks": [{"name": "node-ttl", "ttl": "30s"}],
    })
    assert list((await c.get("/v1/agent/services")).json()) == ["cfg"]
    assert sorted((await c.get("/v1/agent/checks")).json()) == ["node-ttl", "service:cfg"]
    await c.put("/v1/agent/check/pass/service:cfg")
    await c.put("/v1/agent/service/register", json={"Name": "api-added"})
    new = config_from_dict({"node_name": "test-node", "services": [
        {"name": "cfg", "port": 1, "check": {"ttl": "30s"}}, {"name": "second"}]}, dev=True)
    monkeypatch.setattr(proc.lifecycle, "reload", lambda: proc.agent.reload(new))
    assert (await c.put("/v1/agent/reload")).status_code == 200
    assert sorted((await c.get("/v1/agent/services")).json()) == ["api-added", "cfg", "second"]
    checks = (await c.get("/v1/agent/checks")).json()
    assert sorted(checks) == ["service:cfg"] and checks["service:cfg"]["Status"] == "passing"  # no flap


async def test_config_script_check_needs_local_flag(custom: Any) -> None:
    _, c = await custom({"checks": [{"name": "s", "args": ["true"], "interval": "10s"}]})
    assert (await c.get("/v1/agent/checks")).json() == {}
    _, c2 = await custom({"enable_local_script_checks": True, "checks": [{"name": "s", "args": ["true"], "interval": "10s"}]})
    assert list((await c2.get("/v1/agent/checks")).json()) == ["s"]


# --------------------------------------------------------------------------- anti-entropy


async def test_anti_entropy_repairs_catalog(client: httpx.AsyncClient, agent: AgentProcess) -> None:
    await client.put("/v1/agent/service/register", json={"Name": "ae", "Port": 5, "Check": {"TTL": "30s"}})
    await wait_for(lambda: _has(client, "ae"))
    # Deleted behind the agent's back: the next full sync puts it back.
    await client.put("/v1/catalog/deregister", json={"Node": "test-node", "ServiceID": "ae"})
    assert "ae" not in await catalog_ids(client)
    # A foreign service on our node is removed; the server's own "consul" service is kept.
    await client.put("/v1/catalog/register", json={"Node": "test-node", "Address": "127.0.0.1", "SkipNodeUpdate": True,
                                                   "Service": {"Service": "intruder"}})
    await agent.agent.syncer.full_sync()
    assert await catalog_ids(client) == ["ae", "consul"]
    assert await catalog_check(client, "service:ae") is not None
    assert await catalog_check(client, "serfHealth") is not None
    # An altered record is rewritten.
    await client.put("/v1/catalog/register", json={"Node": "test-node", "Address": "127.0.0.1", "SkipNodeUpdate": True,
                                                   "Service": {"Service": "ae", "Port": 9999}})
    await agent.agent.syncer.full_sync()
    [sn] = (await client.get("/v1/catalog/service/ae")).json()
    assert sn["ServicePort"] == 5
    # Nothing differs now: a full sync writes nothing.
    before = agent.server.log.last_index()
    await agent.agent.syncer.full_sync()
    assert agent.server.log.last_index() == before


async def test_output_only_changes_are_deferred(client: httpx.AsyncClient, agent: AgentProcess) -> None:
    agent.agent.local.check_update_interval = 0.2
    await client.put("/v1/agent/check/register", json={"Name": "o", "TTL": "30s"})
    await client.put("/v1/agent/check/pass/o?note=first")

    async def first() -> bool:
        ch = await catalog_check(client, "o")
        return ch is not None and ch["Output"] == "first"

    await wait_for(first)
    await client.put("/v1/agent/check/pass/o?note=second")
    await asyncio.sleep(0.05)
    ch = await catalog_check(client, "o")
    assert ch is not None and ch["Output"] == "first"  # not yet written back
    assert (await client.get("/v1/agent/checks")).json()["o"]["Output"] == "second"

    async def second() -> bool:
        ch = await catalog_check(client, "o")
        return ch is not None and ch["Output"] == "second"

    await wait_for(second, timeout=2.0)
    # A status change is pushed at once.
    await client.put("/v1/agent/check/fail/o?note=third")

    async def third() -> bool:
        ch = await catalog_check(client, "o")
        return ch is not None and ch["Status"] == "critical"

    await wait_for(third, timeout=0.5)


async def test_critical_service_reaped(client: httpx.AsyncClient, agent: AgentProcess) -> None:
    a = agent.agent
    a.deregister_min = 0.0
    await client.put("/v1/agent/service/register", json={
        "Name": "flaky", "Check": {"TTL": "30s", "DeregisterCriticalServiceAfter": "100ms"}})
    assert a.reap_critical_services() == []  # critical, but not for long enough yet
    await asyncio.sleep(0.15)
    assert a.reap_critical_services() == ["flaky"]
    assert (await client.get("/v1/agent/services")).json() == {}


async def test_hash_blocking_service_read(client: httpx.AsyncClient) -> None:
    await client.put("/v1/agent/service/register", json={"Name": "hb", "Port": 1})
    h = (await client.get("/v1/agent/service/hb")).headers["X-Consul-ContentHash"]

    async def change() -> None:
        await asyncio.sleep(0.05)
        await client.put("/v1/agent/service/register", json={"Name": "hb", "Port": 2})

    task = asyncio.create_task(change())
    r = await client.get("/v1/agent/service/hb", params={"hash": h, "wait": "5s"})
    await task
    assert r.json()["Port"] == 2 and r.headers["X-Consul-ContentHash"] != h
    r = await client.get("/v1/agent/service/hb", params={"hash": r.headers["X-Consul-ContentHash"], "wait": "50ms"})
    assert r.status_code == 200 and r.json()["Port"] == 2  # unchanged: answers at the timeout


async def test_py_consul_end_to_end() -> None:
    """The unmodified py-consul client against a real HTTP listener (it runs in a thread)."""
    import consul

    from muster.http.serve import Listener

    proc = build()
    await proc.server.start()
    await proc.agent.start()
    lst = Listener(proc.app, "127.0.0.1", 0)
    await lst.start()
    try:
        c = consul.Consul(host="127.0.0.1", port=lst.port)

        def scenario() -> dict[str, Any]:
            import time

            out: dict[str, Any] = {}
            out["registered"] = c.agent.service.register(
                "pyweb", service_id="pyweb1", port=8080, tags=["v1"], check=consul.Check.ttl("30s"))
            out["agent_services"] = c.agent.services()
            c.agent.check.ttl_pass("service:pyweb1", "fine")
            deadline = time.monotonic() + 3  # anti-entropy is asynchronous: poll, bounded
            while True:
                _, out["passing"] = c.health.service("pyweb", passing=True)
                if out["passing"] or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            _, out["catalog_services"] = c.catalog.services()
            out["self"] = c.agent.self()
            out["members"] = c.agent.members()
            _, out["catalog_nodes"] = c.catalog.nodes()
            out["deregistered"] = c.agent.service.deregister("pyweb1")
            return out

        res = await asyncio.to_thread(scenario)
        assert res["registered"] is True and res["deregistered"] is True
        assert res["agent_services"]["pyweb1"]["Port"] == 8080
        [entry] = res["passing"]
        assert entry["Service"]["ID"] == "pyweb1" and entry["Checks"][-1]["Output"] == "fine"
        assert res["catalog_services"] == {"consul": [], "pyweb": ["v1"]}
        assert res["self"]["Config"]["NodeName"] == "test-node"
        assert res["members"][0]["Tags"]["role"] == "consul"
        assert [n["Node"] for n in res["catalog_nodes"]] == ["test-node"]
    finally:
        await lst.stop()
        await proc.agent.stop()
        await proc.server.stop()


async def test_default_tagged_addresses_and_status_kept_on_reregister(client: httpx.AsyncClient) -> None:
    body = {"Name": "ip", "Address": "10.1.2.3", "Port": 9000, "Check": {"TTL": "30s"}}
    await client.put("/v1/agent/service/register", json=body)
    svc = (await client.get("/v1/agent/services")).json()["ip"]
    assert svc["TaggedAddresses"] == {"lan_ipv4": {"Address": "10.1.2.3", "Port": 9000},
                                      "wan_ipv4": {"Address": "10.1.2.3", "Port": 9000}}
    await client.put("/v1/agent/check/pass/service:ip?note=up")
    await client.put("/v1/agent/service/register", json=body)
    chk = (await client.get("/v1/agent/checks")).json()["service:ip"]
    assert (chk["Status"], chk["Output"]) == ("passing", "up")
    r = await client.put("/v1/agent/service/register", json={
        "Name": "bad", "TaggedAddresses": {"lan_ipv4": {"Address": "not-an-ip", "Port": 1}}})
    assert (r.status_code, r.text) == (500, 'Service tagged address "lan_ipv4" must be a valid ipv4 address')


async def test_http_check_through_agent_reaches_catalog(client: httpx.AsyncClient, agent: AgentProcess) -> None:
    from aiohttp import web

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="healthy")

    app = web.Application()
    app.router.add_get("/health", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    agent.agent.min_check_interval = 0.05
    try:
        url = f"http://127.0.0.1:{port}/health"
        await client.put("/v1/agent/service/register", json={
            "Name": "hc", "Port": port, "Check": {"HTTP": url, "Interval": "100ms"}})
        # New checks start critical: invisible to ?passing until the first probe succeeds.
        assert (await client.get("/v1/health/service/hc?passing")).json() == []

        async def healthy() -> bool:
            entries = (await client.get("/v1/health/service/hc?passing")).json()
            return len(entries) == 1

        await wait_for(healthy)
        [entry] = (await client.get("/v1/health/service/hc")).json()
        assert entry["Checks"][-1]["Output"] == f"HTTP GET {url}: 200 OK Output: healthy"
        assert entry["Checks"][-1]["Definition"]["HTTP"] == url
    finally:
        await client.put("/v1/agent/service/deregister/hc")
        await runner.cleanup()


async def test_alias_check_follows_local_service(client: httpx.AsyncClient) -> None:
    await client.put("/v1/agent/service/register", json={"Name": "target", "Check": {"TTL": "30s"}})
    await client.put("/v1/agent/check/register", json={"Name": "al", "AliasService": "target"})

    async def status(want: str) -> bool:
        return bool((await client.get("/v1/agent/checks")).json()["al"]["Status"] == want)

    await wait_for(lambda: status("critical"))
    await client.put("/v1/agent/check/pass/service:target")
    await wait_for(lambda: status("passing"))
    assert (await client.get("/v1/agent/checks")).json()["al"]["Output"] == "All checks passing."
    await client.put("/v1/agent/service/deregister/target")
    await wait_for(lambda: status("critical"))
    out = (await client.get("/v1/agent/checks")).json()["al"]["Output"]
    assert out == "Service target could not be found on node test-node"


async def test_reload_keeps_attached_checks(custom: Any) -> None:
    svc = {"name": "k", "check": {"ttl": "30s"}}
    proc, c = await custom({"services": [svc], "checks": [{"name": "side", "service_id": "k", "ttl": "30s"}]})
    await c.put("/v1/agent/check/register", json={"Name": "api", "ServiceID": "k", "TTL": "30s"})
    for cid in ("service:k", "side", "api"):
        await c.put(f"/v1/agent/check/pass/{cid}")
    same = config_from_dict({"node_name": "test-node", "services": [svc],
                             "checks": [{"name": "side", "service_id": "k", "ttl": "30s"}]}, dev=True)
    await proc.agent.reload(same)
    checks = (await c.get("/v1/agent/checks")).json()
    assert {cid: ch["Status"] for cid, ch in checks.items()} == {"service:k": "passing", "side": "passing", "api": "passing"}
    await proc.agent.reload(config_from_dict({"node_name": "test-node", "services": [svc]}, dev=True))
    assert sorted((await c.get("/v1/agent/checks")).json()) == ["api", "service:k"]
    bad = config_from_dict({"node_name": "test-node", "services": [{"name": "x", "check": {"http": "http://h"}}]}, dev=True)
    with pytest.raises(MusterError, match='Failed reloading services: Failed to register service "x": Invalid check'):
        await proc.agent.reload(bad)


async def test_host_and_token(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/agent/host")).json()
    assert set(body) == {"Memory", "CPU", "Host", "Disk", "CollectionTime", "Errors"}
    assert body["Host"]["hostname"] and body["Memory"]["total"] > 0
    r = await client.put("/v1/agent/token/default", json={"Token": "x"})
    assert (r.status_code, r.text) == (401, "ACL support disabled")


async def test_api_registrations_survive_restart(tmp_path: Any) -> None:
    """Non-dev agents persist API registrations (and TTL results) in the data dir, as Consul."""
    import dataclasses

    from muster.agent.agent import Agent
    from muster.agent.definitions import parse_check, parse_service
    from muster.runtime import ManualClock
    from muster.server.server import Server, ServerIdentity

    cfg = dataclasses.replace(config_from_dict({"node_name": "p-node"}, dev=True), dev_mode=False, data_dir=str(tmp_path))
    clock = ManualClock()
    server = Server(ServerIdentity("p-node", "0b5f7f2e-8a1c-4d3e-9f00-112233445566", "dc1", "127.0.0.1"))
    await server.start()

    async def boot() -> Agent:
        a = Agent(server, cfg, Rng(5), clock)
        await a.start()
        return a

    a1 = await boot()
    a1.add_service(parse_service({"Name": "db", "Port": 5432, "Check": {"TTL": "30s"}}))
    a1.add_check(parse_check({"Name": "disk", "TTL": "30s"}))
    a1.add_check(parse_check({"Name": "gone-soon", "TTL": "30s"}))
    a1.update_ttl("service:db", "passing", "replica ok")
    a1.update_ttl("disk", "warning", "80%")
    a1.enable_service_maintenance("db", "upgrade")
    a1.remove_check("gone-soon")
    await a1.stop()

    clock.advance(10)  # within the TTL: results come back
    a2 = await boot()
    try:
        assert a2.local.service("db") is not None and a2.local.service("db")["Port"] == 5432  # type: ignore[index]
        checks = a2.local.checks()
        assert sorted(checks) == ["_service_maintenance:db", "disk", "service:db"]
        assert (checks["service:db"]["Status"], checks["service:db"]["Output"]) == ("passing", "replica ok")
        assert checks["disk"]["Status"] == "warning" and checks["_service_maintenance:db"]["Notes"] == "upgrade"
        assert "service:db" in a2.ttl_checks  # the runner is back too
    finally:
        await a2.stop()

    clock.advance(60)  # past the TTL: the stale result is not trusted
    a3 = await boot()
    try:
        assert a3.local.checks()["service:db"]["Status"] == "critical"
        a3.remove_service("db")  # its checks, the maintenance one included, go with it
    finally:
        await a3.stop()
    a4 = await boot()
    try:
        assert a4.local.services() == {} and sorted(a4.local.checks()) == ["disk"]
    finally:
        await a4.stop()
        await server.stop()
