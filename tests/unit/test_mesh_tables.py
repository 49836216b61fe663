"""Config entries and Connect CA tables through the FSM: CAS rules, indexes, snapshot round trip."""

from __future__ import annotations

from muster.fsm import FSM
from muster.structs import ConfigEntryCommand, ConnectCACommand, encode_command


def _apply(fsm: FSM, idx: int, cmd: object) -> object:
    return fsm.apply(idx, encode_command(cmd))


def test_config_entry_set_cas_delete_and_indexes() -> None:
    fsm = FSM()
    t = fsm.store.tables.config_entries
    e = {"Kind": "service-defaults", "Name": "web", "Protocol": "http"}
    assert _apply(fsm, 1, ConfigEntryCommand(op="set", entry=e, cas=0)) is True
    assert _apply(fsm, 2, ConfigEntryCommand(op="set", entry=e, cas=0)) is False  # 0: only if absent
    assert _apply(fsm, 3, ConfigEntryCommand(op="set", entry=dict(e, Protocol="grpc"), cas=7)) is False
    assert _apply(fsm, 4, ConfigEntryCommand(op="set", entry=dict(e, Protocol="grpc"), cas=1)) is True
    idx, row = t.get(None, "service-defaults", "web")
    assert row is not None and (row["Protocol"], row["CreateIndex"], row["ModifyIndex"], idx) == ("grpc", 1, 4, 4)
    # Another kind does not move this kind's index.
    assert _apply(fsm, 5, ConfigEntryCommand(op="set", entry={"Kind": "mesh", "Name": "mesh"})) is True
    assert t.get(None, "service-defaults", "web")[0] == 4 and t.list(None)[0] == 5
    assert _apply(fsm, 6, ConfigEntryCommand(op="delete", entry={"Kind": "service-defaults", "Name": "web"}, cas=3)) is False
    assert _apply(fsm, 7, ConfigEntryCommand(op="delete", entry={"Kind": "service-defaults", "Name": "web"}, cas=4)) is True
    assert t.get(None, "service-defaults", "web")[1] is None
    assert _apply(fsm, 8, ConfigEntryCommand(op="delete", entry={"Kind": "service-defaults", "Name": "web"})) is True


def test_connect_ca_first_root_is_created_once_and_state_survives_a_snapshot() -> None:
    fsm = FSM()
    root = {"ID": "aa", "Active": True, "RootCert": "pem", "PrivateKey": "key"}
    cfg = {"ClusterID": "c1", "Provider": "consul", "Config": {"LeafCertTTL": "72h"}}
    assert _apply(fsm, 1, ConnectCACommand(config=cfg, roots=[root], cas_roots=0)) is True
    assert _apply(fsm, 2, ConnectCACommand(config=cfg, roots=[dict(root, ID="bb")], cas_roots=0)) is False
    ca = fsm.store.tables.connect_ca
    assert [r["ID"] for r in ca.roots] == ["aa"] and ca.config["CreateIndex"] == 1
    _apply(fsm, 3, ConfigEntryCommand(op="set", entry={"Kind": "service-intentions", "Name": "db",
                                                        "Sources": [{"Name": "web", "Action": "allow"}]}))  # fmt: skip
    blob = fsm.store.snapshot()
    other = FSM()
    other.store.restore(blob)
    assert other.store.tables.connect_ca.roots == ca.roots
    assert other.store.tables.connect_ca.config == ca.config
    assert other.store.tables.config_entries.rows == fsm.store.tables.config_entries.rows
    assert other.store.snapshot() == blob
