"""Drive a real ``muster agent -dev`` process through py-consul (PyPI, unmodified).

Every test works under its own unique key prefix / service name because the agent is
shared by the whole session.  Expected values come from the compatibility notes
(docs/compat/) and the behaviour of Consul itself.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import consul
import pytest
from realagent import AgentProcess

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def c(muster_agent: AgentProcess) -> Iterator[consul.Consul]:
    client = consul.Consul(host="127.0.0.1", port=muster_agent.http_port)
    yield client


def _agent_node(c: consul.Consul) -> str:
    return str(c.agent.self()["Config"]["NodeName"])


# -- KV ----------------------------------------------------------------------------------


def test_kv_put_get_flags_and_index(c: consul.Consul, unique: str) -> None:
    key = f"{unique}/greeting"
    assert c.kv.put(key, "hello", flags=42) is True
    index, entry = c.kv.get(key)
    assert entry["Key"] == key
    assert entry["Value"] == b"hello"
    assert entry["Flags"] == 42
    assert entry["LockIndex"] == 0
    assert "Session" not in entry
    assert int(index) == entry["ModifyIndex"] >= entry["CreateIndex"] >= 1

    # Full u64 flags survive.
    assert c.kv.put(key, "hello", flags=2**64 - 1) is True
    _, entry = c.kv.get(key)
    assert entry["Flags"] == 2**64 - 1


def test_kv_missing_key_returns_none_with_index(c: consul.Consul, unique: str) -> None:
    index, entry = c.kv.get(f"{unique}/missing")
    assert entry is None
    assert int(index) >= 1


def test_kv_empty_value_reads_back_none(c: consul.Consul, unique: str) -> None:
    key = f"{unique}/empty"
    assert c.kv.put(key, None) is True
    _, entry = c.kv.get(key)
    assert entry is not None
    assert entry["Value"] is None


def test_kv_binary_value(c: consul.Consul, unique: str) -> None:
    key = f"{unique}/bin"
    blob = bytes(range(256))
    assert c.kv.put(key, blob) is True
    _, entry = c.kv.get(key)
    assert entry["Value"] == blob


def test_kv_recurse_and_keys(c: consul.Consul, unique: str) -> None:
    for k in ("a/b", "a/c/d", "a/c/e", "z"):
        assert c.kv.put(f"{unique}/{k}", k) is True
    _, entries = c.kv.get(f"{unique}/a", recurse=True)
    assert [e["Key"] for e in entries] == [f"{unique}/a/b", f"{unique}/a/c/d", f"{unique}/a/c/e"]
    assert [e["Value"] for e in entries] == [b"a/b", b"a/c/d", b"a/c/e"]

    _, keys = c.kv.get(f"{unique}/", keys=True)
    assert keys == [f"{unique}/a/b", f"{unique}/a/c/d", f"{unique}/a/c/e", f"{unique}/z"]
    _, keys = c.kv.get(f"{unique}/a/", keys=True, separator="/")
    assert keys == [f"{unique}/a/b", f"{unique}/a/c/"]

    # No match under a non-empty prefix: 404 -> None.
    _, none = c.kv.get(f"{unique}/nothing/", recurse=True)
    assert none is None


def test_kv_delete_and_delete_recurse(c: consul.Consul, unique: str) -> None:
    for k in ("x/1", "x/2", "y"):
        c.kv.put(f"{unique}/{k}", "v")
    assert c.kv.delete(f"{unique}/y") is True
    assert c.kv.get(f"{unique}/y")[1] is None
    # Deleting a missing key is still true.
    assert c.kv.delete(f"{unique}/y") is True
    assert c.kv.delete(f"{unique}/x/", recurse=True) is True
    assert c.kv.get(f"{unique}/", recurse=True)[1] is None


def test_kv_cas(c: consul.Consul, unique: str) -> None:
    key = f"{unique}/cas"
    assert c.kv.put(key, "one", cas=0) is True
    # cas=0 is create-only.
    assert c.kv.put(key, "two", cas=0) is False
    _, entry = c.kv.get(key)
    idx = entry["ModifyIndex"]
    assert c.kv.put(key, "two", cas=idx + 1000) is False
    assert c.kv.put(key, "two", cas=idx) is True
    _, entry = c.kv.get(key)
    assert entry["Value"] == b"two"
    # Delete-CAS: stale index fails, current index succeeds.
    assert c.kv.delete(key, cas=idx) is False
    assert c.kv.delete(key, cas=entry["ModifyIndex"]) is True
    assert c.kv.get(key)[1] is None


def test_kv_identical_put_keeps_modify_index(c: consul.Consul, unique: str) -> None:
    key = f"{unique}/same"
    c.kv.put(key, "v", flags=3)
    _, first = c.kv.get(key)
    c.kv.put(key, "v", flags=3)
    _, second = c.kv.get(key)
    assert second["ModifyIndex"] == first["ModifyIndex"]


# -- sessions and locks --------------------------------------------------------------------


def test_session_lifecycle(c: consul.Consul, unique: str) -> None:
    node = _agent_node(c)
    sid = c.session.create(name=f"s-{unique}", ttl=10, lock_delay=5)
    try:
        _, info = c.session.info(sid)
        assert info["ID"] == sid
        assert info["Name"] == f"s-{unique}"
        assert info["Node"] == node
        assert info["TTL"] == "10s"
        assert info["Behavior"] == "release"
        assert info["LockDelay"] == 5_000_000_000
        assert "serfHealth" in (info.get("NodeChecks") or info.get("Checks") or [])

        renewed = c.session.renew(sid)
        assert renewed["ID"] == sid

        _, sessions = c.session.list()
        assert sid in [s["ID"] for s in sessions]
        _, on_node = c.session.node(node)
        assert sid in [s["ID"] for s in on_node]
    finally:
        assert c.session.destroy(sid) is True
    _, gone = c.session.info(sid)
    assert gone is None
    with pytest.raises(consul.NotFound):
        c.session.renew(sid)
    # Destroying an unknown session is idempotent.
    assert c.session.destroy(sid) is True


def test_session_ttl_out_of_range_is_rejected(c: consul.Consul) -> None:
    # py-consul asserts 10 <= ttl, so send the raw request through its HTTP layer.
    from consul.callback import CB

    with pytest.raises(consul.ConsulException) as err:
        c.http.put(CB.json(), "/v1/session/create", data='{"TTL": "5s"}')
    assert "Invalid Session TTL" in str(err.value)


def test_lock_acquire_release_and_contention(c: consul.Consul, unique: str) -> None:
    key = f"{unique}/lock"
    a = c.session.create(name="a", lock_delay=0)
    b = c.session.create(name="b", lock_delay=0)
    try:
        assert c.kv.put(key, "held-by-a", acquire=a) is True
        _, entry = c.kv.get(key)
        assert entry["Session"] == a
        assert entry["LockIndex"] == 1
        assert c.kv.put(key, "b-wants", acquire=b) is False
        # Re-acquire by the holder keeps LockIndex.
        assert c.kv.put(key, "again", acquire=a) is True
        assert c.kv.get(key)[1]["LockIndex"] == 1
        # A plain PUT keeps the lock.
        assert c.kv.put(key, "plain") is True
        assert c.kv.get(key)[1]["Session"] == a
        # Release by the wrong session fails; by the holder it writes the body.
        assert c.kv.put(key, "x", release=b) is False
        assert c.kv.put(key, "released", release=a) is True
        _, entry = c.kv.get(key)
        assert "Session" not in entry
        assert entry["Value"] == b"released"
        assert entry["LockIndex"] == 1
        # Now b can take it: a new holder bumps LockIndex.
        assert c.kv.put(key, "b", acquire=b) is True
        assert c.kv.get(key)[1]["LockIndex"] == 2
    finally:
        c.session.destroy(a)
        c.session.destroy(b)


def test_acquire_with_unknown_session_is_500(c: consul.Consul, unique: str) -> None:
    bogus = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(consul.ConsulException) as err:
        c.kv.put(f"{unique}/k", "v", acquire=bogus)
    assert f'invalid session "{bogus}"' in str(err.value)


def test_session_behavior_release_and_delete(c: consul.Consul, unique: str) -> None:
    rel = c.session.create(behavior="release", lock_delay=0)
    dele = c.session.create(behavior="delete", lock_delay=0)
    assert c.kv.put(f"{unique}/rel", "r", acquire=rel) is True
    assert c.kv.put(f"{unique}/del", "d", acquire=dele) is True
    c.session.destroy(rel)
    c.session.destroy(dele)
    _, entry = c.kv.get(f"{unique}/rel")
    assert entry is not None and "Session" not in entry
    assert entry["Value"] == b"r"
    assert c.kv.get(f"{unique}/del")[1] is None


def test_lock_delay_blocks_reacquire(c: consul.Consul, unique: str) -> None:
    key = f"{unique}/delayed"
    holder = c.session.create(lock_delay=15)
    other = c.session.create(lock_delay=0)
    try:
        assert c.kv.put(key, "v", acquire=holder) is True
        # Invalidation (not an explicit release) starts the lock-delay.
        c.session.destroy(holder)
        assert c.kv.put(key, "v", acquire=other) is False
    finally:
        c.session.destroy(other)
    # An explicit release does not start a lock-delay.
    s1 = c.session.create(lock_delay=15)
    s2 = c.session.create(lock_delay=0)
    try:
        key2 = f"{unique}/nodelay"
        assert c.kv.put(key2, "v", acquire=s1) is True
        assert c.kv.put(key2, "v", release=s1) is True
        assert c.kv.put(key2, "v", acquire=s2) is True
    finally:
        c.session.destroy(s1)
        c.session.destroy(s2)


# -- transactions ------------------------------------------------------------------------


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_txn_all_or_nothing(c: consul.Consul, unique: str) -> None:
    ok = c.txn.put(
        [
            {"KV": {"Verb": "set", "Key": f"{unique}/t1", "Value": _b64("one")}},
            {"KV": {"Verb": "set", "Key": f"{unique}/t2", "Value": _b64("two"), "Flags": 7}},
            {"KV": {"Verb": "get", "Key": f"{unique}/t1"}},
        ]
    )
    assert ok["Errors"] is None
    results = ok["Results"]
    assert [r["KV"]["Key"] for r in results] == [f"{unique}/t1", f"{unique}/t2", f"{unique}/t1"]
    assert results[0]["KV"]["Value"] is None
    assert base64.b64decode(results[2]["KV"]["Value"]) == b"one"
    assert c.kv.get(f"{unique}/t2")[1]["Flags"] == 7

    with pytest.raises(consul.ConsulException) as err:
        c.txn.put(
            [
                {"KV": {"Verb": "set", "Key": f"{unique}/t3", "Value": _b64("three")}},
                {"KV": {"Verb": "check-index", "Key": f"{unique}/t1", "Index": 999_999_999}},
            ]
        )
    assert "409" in str(err.value)
    assert c.kv.get(f"{unique}/t3")[1] is None


# -- catalog -----------------------------------------------------------------------------


def test_catalog_register_query_deregister(c: consul.Consul, unique: str) -> None:
    node = f"ext-{unique}"
    svc = f"svc-{unique}"
    assert c.catalog.register(
        node,
        "10.9.8.7",
        service={
            "Service": svc,
            "ID": f"{svc}-1",
            "Port": 8080,
            "Tags": ["blue", "v1"],
            "Address": "10.9.8.70",
        },
        check={"Name": "ext check", "CheckID": f"chk-{unique}", "Status": "passing", "ServiceID": f"{svc}-1"},
    )
    _, nodes = c.catalog.nodes()
    mine = [n for n in nodes if n["Node"] == node]
    assert len(mine) == 1
    assert mine[0]["Address"] == "10.9.8.7"
    assert mine[0]["Meta"] == {}
    assert any(n["Node"] == _agent_node(c) for n in nodes)

    _, services = c.catalog.services()
    assert sorted(services[svc]) == ["blue", "v1"]
    assert "consul" in services

    _, instances = c.catalog.service(svc)
    assert len(instances) == 1
    inst = instances[0]
    assert inst["Node"] == node
    assert inst["ServiceID"] == f"{svc}-1"
    assert inst["ServiceAddress"] == "10.9.8.70"
    assert inst["ServicePort"] == 8080
    assert inst["Address"] == "10.9.8.7"
    _, tagged = c.catalog.service(svc, tag="blue")
    assert len(tagged) == 1
    _, none = c.catalog.service(svc, tag="green")
    assert none == []

    _, node_info = c.catalog.node(node)
    assert f"{svc}-1" in node_info["Services"]

    _, passing = c.health.service(svc, passing=True)
    assert [e["Service"]["ID"] for e in passing] == [f"{svc}-1"]

    assert c.catalog.deregister(node, service_id=f"{svc}-1")
    _, instances = c.catalog.service(svc)
    assert instances == []
    assert c.catalog.deregister(node)
    _, nodes = c.catalog.nodes()
    assert node not in [n["Node"] for n in nodes]
    _, missing = c.catalog.node(node)
    assert missing is None


def test_catalog_consul_service_present(c: consul.Consul) -> None:
    _, entries = c.catalog.service("consul")
    assert len(entries) >= 1
    assert entries[0]["ServiceID"] == "consul"


# -- agent services, TTL checks and health ----------------------------------------------


def _eventually(probe: Callable[[], object], expected: object, timeout: float = 5.0) -> object:
    """Agent-local writes reach the catalog through anti-entropy, asynchronously (as in Consul).

    Poll ``probe()`` until it equals ``expected`` (bounded); return the last value seen.
    """
    deadline = time.monotonic() + timeout
    value = probe()
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        value = probe()
    return value


def test_agent_service_with_ttl_check_and_health(c: consul.Consul, unique: str) -> None:
    svc = f"web-{unique}"
    check_id = f"service:{svc}"

    def passing_ids() -> list[str]:
        return [e["Service"]["ID"] for e in c.health.service(svc, passing=True)[1]]

    def statuses() -> list[str]:
        return [chk["Status"] for chk in c.health.checks(svc)[1]]

    assert c.agent.service.register(svc, port=9000, tags=["t1"], check=consul.Check.ttl("30s")) is True
    try:
        services = c.agent.services()
        assert services[svc]["Service"] == svc
        assert services[svc]["Port"] == 9000
        assert services[svc]["Tags"] == ["t1"]
        checks = c.agent.checks()
        assert checks[check_id]["Status"] == "critical"
        assert checks[check_id]["ServiceID"] == svc

        # New checks start critical: the instance is in the catalog but invisible to ?passing.
        assert _eventually(lambda: len(c.health.service(svc)[1]), 1) == 1
        assert statuses() == ["critical"]
        assert passing_ids() == []

        assert c.agent.check.ttl_pass(check_id, "all good") is True
        assert c.agent.checks()[check_id]["Status"] == "passing"
        assert c.agent.checks()[check_id]["Output"] == "all good"
        assert _eventually(passing_ids, [svc]) == [svc]
        _, entries = c.health.service(svc, passing=True)
        assert {chk["CheckID"] for chk in entries[0]["Checks"]} >= {check_id, "serfHealth"}

        assert c.agent.check.ttl_warn(check_id, "hmm") is True
        assert _eventually(statuses, ["warning"]) == ["warning"]
        assert passing_ids() == []  # warning is dropped by ?passing

        assert c.agent.check.ttl_fail(check_id, "down") is True
        assert _eventually(statuses, ["critical"]) == ["critical"]
        _, critical = c.health.state("critical")
        assert check_id in [chk["CheckID"] for chk in critical]
        _, any_state = c.health.state("any")
        assert check_id in [chk["CheckID"] for chk in any_state]
    finally:
        assert c.agent.service.deregister(svc) is True
    assert svc not in c.agent.services()
    assert check_id not in c.agent.checks()
    assert _eventually(lambda: c.health.service(svc)[1], []) == []


def test_ttl_update_errors(c: consul.Consul, unique: str) -> None:
    # An unknown check ID is a 404 in Consul >= 1.11 (py-consul's boolean callback -> False).
    from consul.callback import CB

    assert c.agent.check.ttl_pass(f"no-such-check-{unique}") is False
    resp = c.http.put(lambda r: r, f"/v1/agent/check/pass/no-such-check-{unique}")
    assert resp.code == 404
    assert resp.body.startswith(f'Unknown check ID "no-such-check-{unique}"')
    # An existing check that is not a TTL check: 500 with the text clients match on.
    name = f"tcp-{unique}"
    assert c.agent.check.register(name, check=consul.Check.tcp("127.0.0.1", 1, "30s")) is True
    try:
        with pytest.raises(consul.ConsulException) as err:
            c.http.put(CB.boolean(), f"/v1/agent/check/pass/{name}")
        assert f'CheckID "{name}" does not have associated TTL' in str(err.value)
    finally:
        c.agent.check.deregister(name)


def test_agent_check_register_standalone(c: consul.Consul, unique: str) -> None:
    name = f"node-ttl-{unique}"
    assert c.agent.check.register(name, check=consul.Check.ttl("60s"), notes="n") is True
    try:
        assert c.agent.checks()[name]["Status"] == "critical"
        assert c.agent.check.ttl_pass(name) is True
        node = _agent_node(c)

        def status() -> str | None:
            found = [chk["Status"] for chk in c.health.node(node)[1] if chk["CheckID"] == name]
            return found[0] if found else None

        assert _eventually(status, "passing") == "passing"
    finally:
        assert c.agent.check.deregister(name) is True


# -- blocking queries ------------------------------------------------------------------


def test_blocking_get_wakes_on_put(c: consul.Consul, unique: str) -> None:
    key = f"{unique}/watched"
    c.kv.put(key, "v1")
    index, _ = c.kv.get(key)

    def writer() -> None:
        time.sleep(0.5)
        consul.Consul(host=c.http.host, port=c.http.port).kv.put(key, "v2")

    t = threading.Thread(target=writer)
    start = time.monotonic()
    t.start()
    new_index, entry = c.kv.get(key, index=index, wait="20s")
    elapsed = time.monotonic() - start
    t.join()
    assert entry["Value"] == b"v2"
    assert int(new_index) > int(index)
    assert 0.3 < elapsed < 10


def test_blocking_get_times_out_with_same_index(c: consul.Consul, unique: str) -> None:
    key = f"{unique}/quiet"
    c.kv.put(key, "v")
    index, _ = c.kv.get(key)
    start = time.monotonic()
    again, entry = c.kv.get(key, index=index, wait="1s")
    elapsed = time.monotonic() - start
    assert again == index
    assert entry["Value"] == b"v"
    # wait=1s plus at most wait/16 jitter (plus slack for a loaded machine).
    assert 0.9 <= elapsed < 8


def test_blocking_recurse_wakes_on_delete(c: consul.Consul, unique: str) -> None:
    c.kv.put(f"{unique}/dir/a", "1")
    index, _ = c.kv.get(f"{unique}/dir/", recurse=True)

    def deleter() -> None:
        time.sleep(0.3)
        consul.Consul(host=c.http.host, port=c.http.port).kv.delete(f"{unique}/dir/a")

    t = threading.Thread(target=deleter)
    t.start()
    new_index, entries = c.kv.get(f"{unique}/dir/", recurse=True, index=index, wait="20s")
    t.join()
    assert entries is None
    assert int(new_index) > int(index)


def test_blocking_health_service_wakes_on_check_update(c: consul.Consul, unique: str) -> None:
    svc = f"blk-{unique}"
    assert c.agent.service.register(svc, check=consul.Check.ttl("60s")) is True
    try:
        assert _eventually(lambda: len(c.health.service(svc)[1]), 1) == 1
        index, entries = c.health.service(svc, passing=True)
        assert entries == []

        def passer() -> None:
            time.sleep(0.5)
            consul.Consul(host=c.http.host, port=c.http.port).agent.check.ttl_pass(f"service:{svc}")

        t = threading.Thread(target=passer)
        start = time.monotonic()
        t.start()
        new_index, entries = c.health.service(svc, passing=True, index=index, wait="20s")
        elapsed = time.monotonic() - start
        t.join()
        # The wake-up may be spurious (any catalog change); a client loops until data changes.
        while not entries and time.monotonic() - start < 20:
            new_index, entries = c.health.service(svc, passing=True, index=new_index, wait="20s")
        assert [e["Service"]["ID"] for e in entries] == [svc]
        assert int(new_index) > int(index)
        assert elapsed < 20
    finally:
        c.agent.service.deregister(svc)


def test_blocking_catalog_services_wakes_on_register(c: consul.Consul, unique: str) -> None:
    svc = f"new-{unique}"
    index, services = c.catalog.services()
    assert svc not in services

    def registrar() -> None:
        time.sleep(0.5)
        consul.Consul(host=c.http.host, port=c.http.port).catalog.register(
            f"n-{unique}", "10.1.1.1", service={"Service": svc}
        )

    t = threading.Thread(target=registrar)
    start = time.monotonic()
    t.start()
    try:
        seen: dict[str, list[str]] = {}
        idx = index
        while svc not in seen and time.monotonic() - start < 20:
            idx, seen = c.catalog.services(index=idx, wait="20s")
        assert svc in seen
        assert int(idx) > int(index)
    finally:
        t.join()
        c.catalog.deregister(f"n-{unique}")


# -- events, status ----------------------------------------------------------------------


def test_event_fire_and_list(c: consul.Consul, unique: str) -> None:
    name = f"deploy-{unique}"
    fired = c.event.fire(name, "payload-1")
    assert fired["Name"] == name
    assert len(fired["ID"]) == 36
    index, events = c.event.list(name=name)
    assert [e["ID"] for e in events] == [fired["ID"]]
    assert events[0]["Payload"] == b"payload-1"
    assert int(index) >= 1


def test_status_leader_and_peers(c: consul.Consul) -> None:
    leader = c.status.leader()
    assert leader and ":" in leader
    peers = c.status.peers()
    assert leader in peers


# -- Patroni-style flow ---------------------------------------------------------------------


def test_patroni_style_leader_lock(c: consul.Consul, unique: str) -> None:
    scope = f"service/{unique}"
    member = "pg-0"
    sid = c.session.create(
        name=f"{unique}-{member}", checks=[], behavior="delete", ttl=15.0, lock_delay=0.001
    )
    try:
        _, info = c.session.info(sid)
        assert info["TTL"] == "15.0s"
        assert info["Behavior"] == "delete"
        assert info["LockDelay"] == 1_000_000
        assert not info.get("NodeChecks")
        assert not info.get("Checks")

        assert c.kv.put(f"{scope}/members/{member}", '{"role":"primary"}', acquire=sid) is True
        assert c.kv.put(f"{scope}/leader", member, acquire=sid) is True
        leader_index, leader = c.kv.get(f"{scope}/leader")
        assert leader["Value"] == member.encode()
        assert int(leader_index) == leader["ModifyIndex"]

        # Unrelated writes must not change the single-key index Patroni blocks on.
        c.kv.put(f"{unique}/unrelated", "x")
        start = time.monotonic()
        again, same = c.kv.get(f"{scope}/leader", index=leader_index, wait="1s")
        assert time.monotonic() - start >= 0.9
        assert again == leader_index
        assert same["Session"] == sid

        assert c.session.renew(sid)["ID"] == sid
    finally:
        c.session.destroy(sid)
    # behavior=delete: the leader and member keys are gone with the session.
    assert c.kv.get(f"{scope}/leader")[1] is None
    assert c.kv.get(f"{scope}/members/{member}")[1] is None
    # lock_delay of 1 ms: another member can take over almost at once.
    time.sleep(0.05)
    sid2 = c.session.create(name=f"{unique}-pg-1", checks=[], behavior="delete", ttl=15.0, lock_delay=0.001)
    try:
        assert c.kv.put(f"{scope}/leader", "pg-1", acquire=sid2) is True
    finally:
        c.session.destroy(sid2)


# -- python-consul2 ------------------------------------------------------------------------

#: python-consul2 installs the same top-level package ``consul`` as py-consul, so the Makefile
#: installs it apart, into this directory, and the test runs it in a child interpreter.
PYTHON_CONSUL2 = Path(__file__).resolve().parents[2] / ".venv" / "python-consul2"

_PC2_SCRIPT = """
import sys, consul
c = consul.Consul(host="127.0.0.1", port=int(sys.argv[1]))
key = sys.argv[2]
assert c.kv.put(key, "v") is True
_, entry = c.kv.get(key)
assert entry["Value"] == b"v", entry
sid = c.session.create(ttl=10)
assert c.kv.put(key + "/lock", "me", acquire=sid) is True
assert c.session.destroy(sid) is True
_, services = c.catalog.services()
assert "consul" in services, services
print("python-consul2 ok", consul.__file__)
"""


def test_python_consul2_basics(muster_agent: AgentProcess, unique: str) -> None:
    if not PYTHON_CONSUL2.is_dir():
        pytest.skip(f"python-consul2 is not installed in {PYTHON_CONSUL2} (make test installs it)")
    env = {**os.environ, "PYTHONPATH": str(PYTHON_CONSUL2)}
    out = subprocess.run(
        [sys.executable, "-c", _PC2_SCRIPT, str(muster_agent.http_port), f"{unique}/pc2"],
        capture_output=True, env=env, timeout=60,
    )
    assert out.returncode == 0, out.stderr.decode()
    assert str(PYTHON_CONSUL2) in out.stdout.decode()  # it really was python-consul2
