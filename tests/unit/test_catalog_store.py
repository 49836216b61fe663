"""Catalog tables of the state store, driven through the FSM with the records the HTTP layer and
the agent build (``agent.definitions``), plus the local-state / anti-entropy core."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from muster.agent.definitions import catalog_check, catalog_service, parse_check, service_record
from muster.agent.local import AntiEntropy, LocalState, same_as_row, same_record
from muster.errors import MusterError, NoLeader
from muster.fsm import FSM
from muster.runtime import ManualClock, Rng
from muster.state.rows import Service, ServiceAddress, Weights
from muster.structs import DeregisterCommand, RegisterCommand, SessionCommand


class Harness:
    def __init__(self) -> None:
        self.fsm = FSM()
        self.store = self.fsm.store
        self.idx = 0

    def apply(self, cmd: Any) -> Any:
        self.idx += 1
        res = self.fsm.apply_decoded(self.idx, cmd)
        if isinstance(res, MusterError):
            raise res
        return res


def node(name: str, addr: str = "10.0.0.1", **meta: str) -> dict[str, Any]:
    return {"ID": "", "Node": name, "Address": addr, "Datacenter": "dc1", "TaggedAddresses": {}, "Meta": dict(meta)}


def svc(sid: str, name: str, *tags: str) -> dict[str, Any]:
    return catalog_service({"ID": sid, "Service": name, "Tags": list(tags)})


def chk(node_name: str, cid: str, status: str = "passing", service_id: str = "") -> dict[str, Any]:
    return catalog_check({"CheckID": cid, "Name": cid, "Status": status, "ServiceID": service_id}, node_name)


def test_identical_registration_changes_nothing() -> None:
    h = Harness()
    cmd = RegisterCommand(node=node("a"), service=svc("w1", "web", "x"), checks=[chk("a", "c1", service_id="w1")])
    h.apply(cmd)
    before = dict(h.store.indexes)
    rec = h.store.services["a"]["w1"]
    h.apply(RegisterCommand(node=node("a"), service=svc("w1", "web", "x"), checks=[chk("a", "c1", service_id="w1")]))
    assert h.store.indexes == before and h.store.services["a"]["w1"] is rec
    h.apply(RegisterCommand(node=node("a"), service=svc("w1", "web", "x", "y")))
    assert h.store.services["a"]["w1"].modify_index == h.idx and h.store.services["a"]["w1"].create_index == 1
    # The service's checks follow its tags.
    assert h.store.checks["a"]["c1"].service_tags == ["x", "y"]


def test_refused_registration_leaves_nothing() -> None:
    h = Harness()
    with pytest.raises(MusterError, match="Missing service registration"):
        h.apply(RegisterCommand(node=node("ghost"), checks=[chk("ghost", "c", service_id="nope")]))
    assert "ghost" not in h.store.nodes and h.store.max_index() == 0


def test_per_service_index_isolation_and_ordering() -> None:
    h = Harness()
    h.apply(RegisterCommand(node=node("b"), service=svc("w2", "web")))
    h.apply(RegisterCommand(node=node("a"), service=svc("w9", "web")))
    h.apply(RegisterCommand(node=node("a"), service=svc("w1", "web")))
    web_idx = h.store.service_index("web")
    h.apply(RegisterCommand(node=node("c"), service=svc("d1", "db")))
    assert h.store.service_index("web") == web_idx  # another service does not move web's index
    _, pairs = h.store.service_instances_of(None, "web")
    assert [(n.node, s.id) for n, s in pairs] == [("a", "w1"), ("a", "w9"), ("b", "w2")]
    # A node-level check on a host of web moves web's index (its health entries changed).
    h.apply(RegisterCommand(node=node("a"), checks=[chk("a", "node-c", "critical")]))
    assert h.store.service_index("web") == h.idx
    assert [c.check_id for c in h.store.checks_for_instance("a", "w1")] == ["node-c"]
    h.apply(RegisterCommand(node=node("a"), checks=[chk("a", "s-c", service_id="w1")]))
    assert [c.check_id for c in h.store.checks_for_instance("a", "w1")] == ["node-c", "s-c"]
    assert [c.check_id for c in h.store.checks_for_instance("a", "w9")] == ["node-c"]


def test_service_rename_moves_instance() -> None:
    h = Harness()
    h.apply(RegisterCommand(node=node("a"), service=svc("s1", "old")))
    h.apply(RegisterCommand(node=node("a"), service=svc("s1", "new")))
    assert h.store.service_instances_of(None, "old")[1] == []
    assert [s.id for _, s in h.store.service_instances_of(None, "new")[1]] == ["s1"]


def test_deregister_cascades_and_invalidates_sessions() -> None:
    h = Harness()
    h.apply(RegisterCommand(node=node("a"), service=svc("w", "web"),
                            checks=[chk("a", "serfHealth"), chk("a", "wc", service_id="w")]))
    h.apply(SessionCommand(op="create", session={"ID": "s1", "Node": "a", "NodeChecks": ["serfHealth"],
                                                 "ServiceChecks": [{"ID": "wc", "Namespace": ""}], "TTL": ""}))
    h.apply(DeregisterCommand(node="a", service_id="w"))
    assert "wc" not in h.store.checks["a"] and "s1" not in h.store.sessions  # bound check went away
    h.apply(SessionCommand(op="create", session={"ID": "s2", "Node": "a", "NodeChecks": ["serfHealth"], "TTL": ""}))
    h.apply(DeregisterCommand(node="a"))
    assert "a" not in h.store.nodes and "s2" not in h.store.sessions
    assert h.store.list_nodes(None)[1] == []


def test_check_going_critical_destroys_session() -> None:
    h = Harness()
    h.apply(RegisterCommand(node=node("a"), checks=[chk("a", "serfHealth")]))
    h.apply(SessionCommand(op="create", session={"ID": "s", "Node": "a", "NodeChecks": ["serfHealth"], "TTL": ""}))
    h.apply(RegisterCommand(node=node("a"), checks=[chk("a", "serfHealth", "warning")]))
    assert "s" in h.store.sessions
    h.apply(RegisterCommand(node=node("a"), checks=[chk("a", "serfHealth", "critical")]))
    assert "s" not in h.store.sessions


def test_service_rows_are_typed_nulls_read_as_defaults_and_bad_rows_are_refused() -> None:
    h = Harness()
    h.apply(RegisterCommand(node=node("a")))
    h.apply(RegisterCommand(node=node("a"), service={"ID": "w", "Service": "web", "Tags": None, "Weights": None,
                                                    "TaggedAddresses": {"wan": {"Address": "1.2.3.4", "Port": 8}}},
                            skip_node_update=True))
    row = h.store.services["a"]["w"]
    assert isinstance(row, Service) and row.tags == [] and row.weights == Weights(1, 1)
    assert row.tagged_addresses == {"wan": ServiceAddress("1.2.3.4", 8)} and row.create_index == row.modify_index == h.idx
    before = (dict(h.store.indexes), h.store.services["a"]["w"])
    with pytest.raises(MusterError, match="invalid service"):
        h.apply(RegisterCommand(node=node("a"), service={"ID": "w", "Service": "web", "Port": "eighty"}, skip_node_update=True))
    assert (h.store.indexes, h.store.services["a"]["w"]) == before


def test_same_record_ignores_indexes() -> None:
    a = {"ID": "x", "CreateIndex": 1, "ModifyIndex": 2}
    assert same_record(a, {"ID": "x"}) and not same_record(a, {"ID": "y"})
    assert not same_record({"ID": "x", "Extra": 1}, {"ID": "x"})
    assert same_record({"O": "a", "S": 1}, {"O": "b", "S": 1}, ignore=("O",))


# --------------------------------------------------------------------------- local state + anti-entropy


class FakeServer:
    """An FSM-backed ``apply`` that can be switched off (no leader)."""

    def __init__(self) -> None:
        self.h = Harness()
        self.down = False
        self.commands: list[Any] = []

    async def apply(self, cmd: Any) -> Any:
        if self.down:
            raise NoLeader()
        self.commands.append(cmd)
        return self.h.apply(cmd)


def make_ae(interval: float = 60.0) -> tuple[FakeServer, LocalState, AntiEntropy]:
    srv = FakeServer()
    local = LocalState("me", ManualClock(), Rng(1), check_update_interval=0)
    rec = node("me", "127.0.0.1")

    def catalog() -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        st = srv.h.store
        return st.nodes.get("me"), dict(st.services.get("me", {})), dict(st.checks.get("me", {}))

    ae = AntiEntropy(local, srv.apply, catalog, lambda: rec, Rng(2), interval=interval, retry_interval=0.05)
    return srv, local, ae


def web() -> dict[str, Any]:
    return service_record(service_id="web", name="web", tags=["t"], port=80)


async def test_sync_pushes_and_is_idempotent() -> None:
    srv, local, ae = make_ae()
    local.add_service(web())
    defn = parse_check({"ttl": "10s"})
    local.add_check(defn.record("me", "service:web", "c", "web"), defn)
    await ae.full_sync()
    assert srv.h.store.services["me"]["web"].port == 80
    assert srv.h.store.checks["me"]["service:web"].service_name == "web"
    n = len(srv.commands)
    await ae.full_sync()
    assert len(srv.commands) == n  # everything in sync: no writes


async def test_sync_failure_keeps_entries_out_of_sync() -> None:
    srv, local, ae = make_ae()
    srv.down = True
    local.add_service(web())
    with pytest.raises(NoLeader):
        await ae.full_sync()
    assert local.out_of_sync()
    srv.down = False
    await ae.sync_changes()
    assert not local.out_of_sync() and "web" in srv.h.store.services["me"]


async def test_syncer_task_retries_after_failure() -> None:
    srv, local, ae = make_ae()
    srv.down = True
    ae.start()
    try:
        local.add_service(web())
        await asyncio.sleep(0.05)
        assert "me" not in srv.h.store.nodes
        srv.down = False
        async with asyncio.timeout(2):
            while "web" not in srv.h.store.services.get("me", {}):
                await asyncio.sleep(0.01)
    finally:
        await ae.stop()


async def test_racing_change_is_not_lost() -> None:
    srv, local, ae = make_ae()
    local.add_service(web())
    orig_apply = srv.apply

    async def apply_and_change(cmd: Any) -> Any:
        res = await orig_apply(cmd)
        if isinstance(cmd, RegisterCommand) and cmd.service is not None and cmd.service["Port"] == 80:
            local.add_service(dict(web(), Port=81))  # changed while the write was in flight
        return res

    ae.apply = apply_and_change
    await ae.full_sync()
    assert local.services_["web"].in_sync is False
    await ae.sync_changes()
    assert srv.h.store.services["me"]["web"].port == 81


def test_local_check_rules() -> None:
    local = LocalState("me", ManualClock(), Rng(1))
    with pytest.raises(MusterError) as err:
        local.add_check(parse_check({"ttl": "1s"}).record("me", "c", "c", "nosvc"))
    assert err.value.status == 404
    local.add_service(web())
    local.add_check(parse_check({"ttl": "1s"}).record("me", "c", "c", "web"))
    assert local.check("c") is not None and local.check("c")["ServiceTags"] == ["t"]  # type: ignore[index]
    clock = local.clock
    assert isinstance(clock, ManualClock)
    clock.advance(5)
    assert local.critical_for("c") == 5.0
    local.update_check("c", "passing", "ok")
    assert local.critical_for("c") is None
    assert local.remove_service("web") and local.check("c") is None and local.service("web") is None
    assert not local.remove_service("web")


# --------------------------------------------------------------------------- property: full sync converges

SIDS = ("s1", "s2", "s3")
CIDS = ("c1", "c2", "c3", "c4")
op_strategy = st.one_of(
    st.tuples(st.just("add_service"), st.sampled_from(SIDS), st.integers(0, 3)),
    st.tuples(st.just("remove_service"), st.sampled_from(SIDS), st.just(0)),
    st.tuples(st.just("add_check"), st.sampled_from(CIDS), st.integers(0, 3)),
    st.tuples(st.just("remove_check"), st.sampled_from(CIDS), st.just(0)),
    st.tuples(st.just("update_check"), st.sampled_from(CIDS), st.integers(0, 2)),
    st.tuples(st.just("sync"), st.just(""), st.just(0)),
    st.tuples(st.just("tamper_add"), st.sampled_from(SIDS + ("foreign",)), st.integers(0, 3)),
    st.tuples(st.just("tamper_del_service"), st.sampled_from(SIDS), st.just(0)),
    st.tuples(st.just("tamper_check"), st.sampled_from(CIDS), st.integers(0, 2)),
)
STATUSES = ("passing", "warning", "critical")


@settings(max_examples=60, deadline=None)
@given(st.lists(op_strategy, max_size=25))
def test_full_sync_makes_catalog_equal_local_state(ops: list[tuple[str, str, int]]) -> None:
    """Whatever happened locally or behind the agent's back, one full sync makes the catalog's
    view of our node equal the local state (the server's own serfHealth excepted), and a second
    full sync writes nothing."""

    async def run() -> None:
        srv, local, ae = make_ae()
        srv.h.apply(RegisterCommand(node=node("me", "127.0.0.1"), checks=[chk("me", "serfHealth")]))
        for op, key, n in ops:
            if op == "add_service":
                local.add_service(service_record(service_id=key, name=f"n{n}", tags=[], port=n))
            elif op == "remove_service":
                local.remove_service(key)
            elif op == "add_check":
                sid = SIDS[n] if n < len(SIDS) and local.service(SIDS[n]) is not None else ""
                local.add_check(parse_check({"ttl": "10s"}).record("me", key, key, sid))
            elif op == "remove_check":
                local.remove_check(key)
            elif op == "update_check":
                local.update_check(key, STATUSES[n], f"out{n}")
            elif op == "sync":
                await ae.sync_changes()
            elif op == "tamper_add":
                srv.h.apply(RegisterCommand(node=node("me", "127.0.0.1"), service=svc(key, f"t{n}"), skip_node_update=True))
            elif op == "tamper_del_service":
                srv.h.apply(DeregisterCommand(node="me", service_id=key))
            elif op == "tamper_check" and "me" in srv.h.store.nodes:
                cur = srv.h.store.checks.get("me", {}).get(key)
                if cur is not None:
                    srv.h.apply(RegisterCommand(node=node("me", "127.0.0.1"), checks=[dict(msgspec.to_builtins(cur), Status=STATUSES[n])],
                                                skip_node_update=True))
        await ae.full_sync()
        store = srv.h.store
        remote_svcs = store.services.get("me", {})
        remote_checks = {k: v for k, v in store.checks.get("me", {}).items() if k != "serfHealth"}
        assert set(remote_svcs) == set(local.services())
        for sid, rec in local.services().items():
            assert same_as_row(rec, remote_svcs[sid])
        assert set(remote_checks) == set(local.checks())
        for cid, rec in local.checks().items():
            assert same_as_row(rec, remote_checks[cid])
        n_cmds = len(srv.commands)
        await ae.full_sync()
        assert len(srv.commands) == n_cmds

    asyncio.run(run())


def _naive_tags(store: Any) -> dict[str, list[str]]:
    """``/v1/catalog/services`` as computed before the per-name cache: every instance in
    (name, node, service id) order, each tag once in order of first appearance."""
    out: dict[str, list[str]] = {}
    rows = sorted((s.service, node, sid, s.tags) for node, per in store.services.items() for sid, s in per.items())
    for name, _node, _sid, tags in rows:
        acc = out.setdefault(name, [])
        acc.extend(t for t in tags if t not in acc)
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["reg", "reg", "reg", "dereg-svc", "dereg-node"]),
            st.sampled_from(["n1", "n2", "n3"]),
            st.sampled_from(["i1", "i2", "i3"]),
            st.sampled_from(["web", "db"]),
            st.lists(st.sampled_from(["a", "b", "c"]), max_size=3, unique=True),
        ),
        max_size=25,
    )
)
def test_service_tags_cache_follows_every_change(ops: list[tuple[str, str, str, str, list[str]]]) -> None:
    """The cached tag union per service name (``/v1/catalog/services`` without a filter) equals
    a recomputation from the rows after every registration, rename, deregistration and restore."""
    h = Harness()
    for op, n, sid, name, tags in ops:
        if op == "reg":
            h.apply(RegisterCommand(node=node(n), service=svc(sid, name, *tags)))
        elif op == "dereg-svc":
            h.apply(DeregisterCommand(node=n, service_id=sid))
        else:
            h.apply(DeregisterCommand(node=n))
        want = _naive_tags(h.store)
        assert h.store.service_names(None)[1] == sorted(want)
        assert {k: h.store.service_tags(k) for k in want} == want
    h.store.restore(h.store.snapshot())
    want = _naive_tags(h.store)
    assert {k: h.store.service_tags(k) for k in want} == want


def test_service_tags_cache_survives_a_refused_registration() -> None:
    """A registration that fails inside its transaction rolls back; the cached tags stay right."""
    h = Harness()
    h.apply(RegisterCommand(node=node("a"), service=svc("w1", "web", "x")))
    assert h.store.service_tags("web") == ["x"]
    bad = RegisterCommand(node=node("a"), service=svc("w1", "web", "y"), checks=[chk("a", "c1", service_id="nope")])
    with pytest.raises(MusterError):
        h.apply(bad)
    assert h.store.service_tags("web") == ["x"] == _naive_tags(h.store)["web"]
    h.apply(RegisterCommand(node=node("a"), service=svc("w1", "web", "y")))
    assert h.store.service_tags("web") == ["y"]
