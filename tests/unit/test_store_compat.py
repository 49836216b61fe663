"""Snapshots written before the store had typed rows still restore, and the rows render to the
exact JSON they rendered to then (field names, order, null vs empty, defaults of missing keys).

``data/snapshot-before-typed-rows.bin`` was written by the store as of commit eea236e (rows as
dicts); ``data/render-before-typed-rows.json`` holds what that version's renderers produced from
it: nodes (one registered by an agent, one external with few keys), a service, checks and
sessions (one without service checks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from muster.http import render
from muster.http.session import render_session
from muster.state.store import StateStore

DATA = Path(__file__).parent / "data"


def rendered(s: StateStore) -> dict[str, Any]:
    return {
        "nodes": [render.node(n) for n in s.list_nodes(None)[1]],
        "node_services": [render.node_service(v) for v in s.node_services(None, "a")[2]],
        "service_nodes": [render.service_node(n, v) for n, v in s.service_instances_of(None, "web")[1]],
        "checks": [render.health_check(c) for c in s.all_checks(None)[1]],
        "sessions": [render_session(x) for x in s.session_list(None)[1]],
    }


def test_old_snapshot_restores_and_renders_identically() -> None:
    s = StateStore()
    s.restore((DATA / "snapshot-before-typed-rows.bin").read_bytes())
    want = json.loads((DATA / "render-before-typed-rows.json").read_text())
    got = json.loads(json.dumps(rendered(s)))
    for section in want:
        # Compare as text: key order is part of the answer.
        assert json.dumps(got[section]) == json.dumps(want[section]), section
    assert s.kv_get(None, "locks/one")[1] is not None
    assert s.kvs["locks/one"].session == "s1"
    counts = {"KVS": 2, "Tombstone": 1, "Register": 2, "Service": 1, "Check": 2, "Session": 2}
    assert {k: v for k, v in s.summary().items() if k in counts} == counts


def test_snapshot_of_restored_state_is_stable() -> None:
    s = StateStore()
    s.restore((DATA / "snapshot-before-typed-rows.bin").read_bytes())
    blob = s.snapshot()
    other = StateStore()
    other.restore(blob)
    assert other.snapshot() == blob
    assert json.dumps(rendered(other)) == json.dumps(rendered(s))
