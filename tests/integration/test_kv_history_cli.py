"""``muster kv history`` / ``muster kv rollback`` against a real agent (docs/kv-history.md), and
the rollback race: writers and rollbacks on one key at once, every rollback either applies as a
CAS write of the chosen version or is refused cleanly, and the history holds exactly the writes
that applied."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable

import pytest
from realagent import AgentProcess, run_cli

from muster.api import Client, ClientConfig

pytestmark = pytest.mark.timeout(180)


def _ok(res: subprocess.CompletedProcess[bytes]) -> str:
    assert res.returncode == 0, f"exit {res.returncode}; stderr: {res.stderr.decode(errors='replace')}"
    assert b"Traceback" not in res.stderr
    return res.stdout.decode()


def _fails(res: subprocess.CompletedProcess[bytes]) -> str:
    assert res.returncode == 1, f"exit {res.returncode}; stdout: {res.stdout!r}; stderr: {res.stderr!r}"
    assert b"Traceback" not in res.stderr
    return res.stderr.decode()


def test_history_and_rollback_commands(muster_agent: AgentProcess, unique: str) -> None:
    key = f"{unique}/cfg"
    _ok(run_cli(["kv", "put", key, "good value"], muster_agent))
    _ok(run_cli(["kv", "put", "-flags=4", key, "bad value"], muster_agent))
    api = Client(ClientConfig(address=muster_agent.http_addr))
    versions, _ = api.kv_history(key)
    new, old = versions[0]["ModifyIndex"], versions[1]["ModifyIndex"]

    out = _ok(run_cli(["kv", "history", key], muster_agent)).splitlines()
    assert out[0].split() == ["Index", "Time", "Operation", "Flags", "Accessor", "Client", "Value"]
    assert out[1].split()[0] == f"{new}*" and out[1].split()[2:4] == ["set", "4"]
    assert out[1].endswith("bad value") and out[2].endswith("good value")
    assert out[2].split()[0] == str(old) and "127.0.0.1" in out[2]

    diff = _ok(run_cli(["kv", "history", "-diff", key], muster_agent))
    assert f"--- {key}@{old}" in diff and "-good value" in diff and "+bad value" in diff
    assert diff.rstrip().endswith("Flags differ")

    # A stale -modify-index: refused cleanly, nothing written.
    err = _fails(run_cli(["kv", "rollback", f"-index={old}", f"-modify-index={old}", key], muster_agent))
    assert err == f"Error! Did not roll back {key}: the key changed since the version was chosen (CAS failed)\n"
    assert _ok(run_cli(["kv", "get", key], muster_agent)) == "bad value\n"

    out = _ok(run_cli(["kv", "rollback", f"-index={old}", f"-modify-index={new}", key], muster_agent))
    assert out == f"Success! Rolled back {key} to version {old}\n"
    assert _ok(run_cli(["kv", "get", key], muster_agent)) == "good value\n"
    top = _ok(run_cli(["kv", "history", key], muster_agent)).splitlines()[1]
    assert f"rollback of {old}" in top

    rec = _ok(run_cli(["kv", "history", "-recurse", f"{unique}/"], muster_agent)).splitlines()
    assert rec[0].split()[0] == "Key" and all(line.startswith(key) for line in rec[1:]) and len(rec) == 4


def test_history_command_errors(muster_agent: AgentProcess, unique: str) -> None:
    assert _fails(run_cli(["kv", "history", f"{unique}/none"], muster_agent)) == f"Error! No history exists for: {unique}/none\n"
    assert _fails(run_cli(["kv", "history"], muster_agent)) == "Error! Missing KEY argument\n"
    assert "Cannot specify -from or -to without -diff!" in _fails(run_cli(["kv", "history", "-from=3", "k"], muster_agent))
    assert "Missing -index" in _fails(run_cli(["kv", "rollback", "k"], muster_agent))
    _ok(run_cli(["kv", "put", f"{unique}/k", "v"], muster_agent))
    err = _fails(run_cli(["kv", "rollback", "-index=999999", f"{unique}/k"], muster_agent))
    assert err.startswith(f"Error! Did not roll back {unique}/k: Unexpected response code: 404")


def test_rollback_race_with_concurrent_writers(agent_factory: Callable[..., AgentProcess], unique: str) -> None:
    """Two writers and a roller on one key.  The roller reads the key's ModifyIndex, then rolls
    back to the first version with that index as CAS; a write in between must make it fail with
    nothing written.  With room for every version, the history then holds exactly the writes
    that applied, and each rollback sits right after the version it saw."""
    agent = agent_factory("-hcl=kv_history { versions = 1000 }", name="kvhist-race")
    key = f"{unique}/race"
    api = Client(ClientConfig(address=agent.http_addr))
    assert api.kv_put(key, b"origin")
    first = api.kv_history(key)[0][0]
    origin, origin_value = first["ModifyIndex"], first["Value"]
    lock = threading.Lock()
    writes = [1]  # the origin
    done = threading.Event()

    def writer(name: str) -> None:
        c = Client(ClientConfig(address=agent.http_addr))
        for i in range(60):
            assert c.kv_put(key, f"{name}-{i}".encode())
            with lock:
                writes[0] += 1

    applied: list[int] = []  # the CAS index of each rollback that applied
    refused = [0]

    def roller() -> None:
        c = Client(ClientConfig(address=agent.http_addr))
        while not done.is_set():
            entry, _ = c.kv_get(key)
            assert entry is not None
            seen = entry["ModifyIndex"]
            if c.kv_rollback(key, origin, cas=seen):
                if entry["Value"] != origin_value:  # writing the same value again changes nothing
                    applied.append(seen)
                    with lock:
                        writes[0] += 1
            else:
                refused[0] += 1

    writers = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    rt = threading.Thread(target=roller)
    for t in (*writers, rt):
        t.start()
    for t in writers:
        t.join(120)
    done.set()
    rt.join(60)
    assert not any(t.is_alive() for t in (*writers, rt))
    assert applied or refused[0], "the roller never ran"

    versions, _ = api.kv_history(key)
    versions.reverse()  # oldest first
    assert len(versions) == writes[0]
    indexes = [v["ModifyIndex"] for v in versions]
    assert indexes == sorted(set(indexes))
    after = [versions[i - 1]["ModifyIndex"] for i, v in enumerate(versions) if v["Operation"] == "rollback"]
    assert sorted(after) == sorted(applied)
    assert all(v["Value"] == versions[0]["Value"] for v in versions if v["Operation"] == "rollback")
    entry, _ = api.kv_get(key)
    assert entry is not None and versions[-1]["ModifyIndex"] == entry["ModifyIndex"]
