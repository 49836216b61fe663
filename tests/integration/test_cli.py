"""End-to-end tests of the ``muster`` CLI against a real agent process.

Each command runs as ``python -m muster ...`` with ``CONSUL_HTTP_ADDR`` pointing at the
session's agent; expected outputs and exit codes are Consul's (docs/compat/cli.md).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from realagent import REPO_ROOT, AgentProcess, free_port, run_cli

from muster.api import Client, ClientConfig

pytestmark = pytest.mark.timeout(180)


def _api(agent: AgentProcess) -> Client:
    return Client(ClientConfig(address=agent.http_addr))


def _ok(res: subprocess.CompletedProcess[bytes]) -> str:
    assert res.returncode == 0, f"exit {res.returncode}; stderr: {res.stderr.decode(errors='replace')}"
    assert b"Traceback" not in res.stderr
    return res.stdout.decode()


def _fails(res: subprocess.CompletedProcess[bytes], code: int = 1) -> str:
    assert res.returncode == code, f"exit {res.returncode}; stdout: {res.stdout!r}; stderr: {res.stderr!r}"
    assert b"Traceback" not in res.stderr
    return res.stderr.decode()


# -- kv --------------------------------------------------------------------------------------


def test_kv_put_get_roundtrip(muster_agent: AgentProcess, unique: str) -> None:
    key = f"{unique}/cfg"
    assert (
        _ok(run_cli(["kv", "put", key, "hello world"], muster_agent)) == f"Success! Data written to: {key}\n"
    )
    assert _ok(run_cli(["kv", "get", key], muster_agent)) == "hello world\n"
    # A leading slash is stripped.
    assert _ok(run_cli(["kv", "get", f"/{key}"], muster_agent)) == "hello world\n"
    # Flags after the key are the value, as with Go's flag package.
    _ok(run_cli(["kv", "put", f"{unique}/neg", "-1"], muster_agent))
    assert _ok(run_cli(["kv", "get", f"{unique}/neg"], muster_agent)) == "-1\n"


def test_kv_put_from_file_stdin_and_base64(muster_agent: AgentProcess, unique: str, tmp_path: Path) -> None:
    f = tmp_path / "data.bin"
    f.write_bytes(b"\x00\x01binary\xff")
    _ok(run_cli(["kv", "put", f"{unique}/file", f"@{f}"], muster_agent))
    assert run_cli(["kv", "get", f"{unique}/file"], muster_agent).stdout == b"\x00\x01binary\xff\n"
    _ok(run_cli(["kv", "put", f"{unique}/stdin", "-"], muster_agent, input=b"from stdin"))
    assert _ok(run_cli(["kv", "get", f"{unique}/stdin"], muster_agent)) == "from stdin\n"
    _ok(
        run_cli(
            ["kv", "put", "-base64", f"{unique}/b64", base64.b64encode(b"decoded").decode()], muster_agent
        )
    )
    assert _ok(run_cli(["kv", "get", f"{unique}/b64"], muster_agent)) == "decoded\n"
    assert _ok(run_cli(["kv", "get", "-base64", f"{unique}/b64"], muster_agent)) == "ZGVjb2RlZA==\n"
    err = _fails(run_cli(["kv", "put", f"{unique}/nofile", "@/nonexistent/x"], muster_agent))
    assert err.startswith("Error! Failed to read file: open /nonexistent/x:")


def test_kv_get_detailed(muster_agent: AgentProcess, unique: str) -> None:
    key = f"{unique}/det"
    _ok(run_cli(["kv", "put", "-flags=42", key, "val"], muster_agent))
    entry, _ = _api(muster_agent).kv_get(key)
    assert entry is not None
    out = _ok(run_cli(["kv", "get", "-detailed", key], muster_agent))
    assert out == (
        f"CreateIndex      {entry['CreateIndex']}\n"
        "Flags            42\n"
        f"Key              {key}\n"
        "LockIndex        0\n"
        f"ModifyIndex      {entry['ModifyIndex']}\n"
        "Session          -\n"
        "Value            val\n"
    )


def test_kv_get_missing_key(muster_agent: AgentProcess, unique: str) -> None:
    res = run_cli(["kv", "get", f"{unique}/nope"], muster_agent)
    assert _fails(res) == f"Error! No key exists at: {unique}/nope\n"
    assert res.stdout == b""
    assert _fails(run_cli(["kv", "get"], muster_agent)) == "Error! Missing KEY argument\n"


def test_kv_get_recurse_and_keys(muster_agent: AgentProcess, unique: str) -> None:
    api = _api(muster_agent)
    for k, v in (("a/1", "x"), ("a/2", "y"), ("b/c/d", "z")):
        api.kv_put(f"{unique}/{k}", v.encode())
    out = _ok(run_cli(["kv", "get", "-recurse", f"{unique}/"], muster_agent))
    assert out == f"{unique}/a/1:x\n{unique}/a/2:y\n{unique}/b/c/d:z\n"
    out = _ok(run_cli(["kv", "get", "-keys", f"{unique}/"], muster_agent))
    assert out == f"{unique}/a/\n{unique}/b/\n"
    out = _ok(run_cli(["kv", "get", "-keys", "-separator=", f"{unique}/"], muster_agent))
    assert out == f"{unique}/a/1\n{unique}/a/2\n{unique}/b/c/d\n"
    # No match: no output, success.
    assert _ok(run_cli(["kv", "get", "-recurse", f"{unique}/none/"], muster_agent)) == ""


def test_kv_cas_and_delete(muster_agent: AgentProcess, unique: str) -> None:
    api = _api(muster_agent)
    key = f"{unique}/cas"
    api.kv_put(key, b"v1")
    entry, _ = api.kv_get(key)
    assert entry is not None
    idx = entry["ModifyIndex"]
    err = _fails(run_cli(["kv", "put", "-cas", f"-modify-index={idx + 100}", key, "v2"], muster_agent))
    assert err == f"Error! Did not write to {key}: CAS failed\n"
    assert (
        _fails(run_cli(["kv", "put", "-cas", key, "v2"], muster_agent))
        == "Must specify -modify-index with -cas!\n"
    )
    _ok(run_cli(["kv", "put", "-cas", f"-modify-index={idx}", key, "v2"], muster_agent))
    assert _ok(run_cli(["kv", "get", key], muster_agent)) == "v2\n"

    err = _fails(run_cli(["kv", "delete", "-cas", f"-modify-index={idx}", key], muster_agent))
    assert err == f"Error! Did not delete key {key}: CAS failed\n"
    assert _ok(run_cli(["kv", "delete", key], muster_agent)) == f"Success! Deleted key: {key}\n"
    api.kv_put(f"{unique}/t/1", b"")
    api.kv_put(f"{unique}/t/2", b"")
    out = _ok(run_cli(["kv", "delete", "-recurse", f"{unique}/t/"], muster_agent))
    assert out == f"Success! Deleted keys with prefix: {unique}/t/\n"
    assert api.kv_list(f"{unique}/t/")[0] == []
    err = _fails(
        run_cli(["kv", "delete", "-recurse", "-cas", "-modify-index=3", f"{unique}/t/"], muster_agent)
    )
    assert err == "Cannot specify both -cas and -recurse!\n"


def test_kv_acquire_release(muster_agent: AgentProcess, unique: str) -> None:
    api = _api(muster_agent)
    sid = api.session_create({"Name": "cli-test", "LockDelay": "0s"})
    try:
        key = f"{unique}/locked"
        out = _ok(run_cli(["kv", "put", "-acquire", f"-session={sid}", key, "mine"], muster_agent))
        assert out == f"Success! Lock acquired on: {key}\n"
        entry, _ = api.kv_get(key)
        assert entry is not None and entry["Session"] == sid
        out = _ok(run_cli(["kv", "get", "-detailed", key], muster_agent))
        assert f"Session          {sid}\n" in out
        out = _ok(run_cli(["kv", "put", "-release", f"-session={sid}", key], muster_agent))
        assert out == f"Success! Lock released on: {key}\n"
        err = _fails(run_cli(["kv", "put", "-acquire", key, "x"], muster_agent))
        assert err == "Error! Missing -session (required with -acquire and -release)\n"
        bogus = str(uuid.uuid4())
        err = _fails(run_cli(["kv", "put", "-acquire", f"-session={bogus}", key, "x"], muster_agent))
        assert err.startswith("Error! Failed writing data: Unexpected response code: 500 (invalid session")
    finally:
        api.session_destroy(sid)


def test_kv_export_import_roundtrip(muster_agent: AgentProcess, unique: str, tmp_path: Path) -> None:
    api = _api(muster_agent)
    api.kv_put(f"{unique}/src/a", b"alpha", flags=5)
    api.kv_put(f"{unique}/src/b/c", b"")
    out = _ok(run_cli(["kv", "export", f"{unique}/src/"], muster_agent))
    assert out == (
        "[\n"
        "\t{\n"
        f'\t\t"key": "{unique}/src/a",\n'
        '\t\t"flags": 5,\n'
        '\t\t"value": "YWxwaGE="\n'
        "\t},\n"
        "\t{\n"
        f'\t\t"key": "{unique}/src/b/c",\n'
        '\t\t"flags": 0,\n'
        '\t\t"value": ""\n'
        "\t}\n"
        "]\n"
    )
    dump = tmp_path / "dump.json"
    dump.write_text(out)
    res = run_cli(["kv", "import", f"-prefix={unique}/copy", f"@{dump}"], muster_agent)
    assert _ok(res) == f"Imported: {unique}/copy/{unique}/src/a\nImported: {unique}/copy/{unique}/src/b/c\n"
    entry, _ = api.kv_get(f"{unique}/copy/{unique}/src/a")
    assert entry is not None and entry["Flags"] == 5
    assert base64.b64decode(entry["Value"]) == b"alpha"
    # From stdin.
    data = json.dumps([{"key": f"{unique}/stdin-import", "flags": 0, "value": "eA=="}]).encode()
    assert (
        _ok(run_cli(["kv", "import", "-"], muster_agent, input=data)) == f"Imported: {unique}/stdin-import\n"
    )
    assert _ok(run_cli(["kv", "export", f"{unique}/nothing-here/"], muster_agent)) == "[]\n"
    err = _fails(run_cli(["kv", "import", "not json"], muster_agent))
    assert err.startswith("Cannot unmarshal data: ")


# -- connection settings and errors -------------------------------------------------------


def test_unknown_flag_prints_usage(muster_agent: AgentProcess) -> None:
    err = _fails(run_cli(["kv", "get", "-bogus", "x"], muster_agent))
    assert err.startswith("flag provided but not defined: -bogus\nUsage: muster kv get")
    err = _fails(run_cli(["kv", "put", "-flags=abc", "k", "v"], muster_agent))
    assert err.startswith('invalid value "abc" for flag -flags: parse error\n')
    err = _fails(run_cli(["no-such-command"], muster_agent))
    assert err.startswith('Unknown command "no-such-command"')


def test_help_exits_zero(muster_agent: AgentProcess) -> None:
    out = _ok(run_cli(["kv", "put", "-h"], muster_agent))
    assert out.startswith("Usage: muster kv put")
    assert "Available commands are:" in _ok(run_cli(["--help"], muster_agent))


def test_connection_refused_is_a_clean_error(muster_agent: AgentProcess) -> None:
    port = free_port()
    env = muster_agent.env(CONSUL_HTTP_ADDR=f"127.0.0.1:{port}")
    err = _fails(run_cli(["kv", "get", "x"], env=env))
    assert err == (
        f'Error querying Consul agent: Get "http://127.0.0.1:{port}/v1/kv/x": '
        f"dial tcp 127.0.0.1:{port}: connect: connection refused\n"
    )
    err = _fails(run_cli(["members"], env=env))
    assert err.startswith("Error retrieving members: Get ")


def test_http_addr_flag_and_scheme_forms(muster_agent: AgentProcess, unique: str) -> None:
    key = f"{unique}/addr"
    _api(muster_agent).kv_put(key, b"v")
    bad_env = muster_agent.env(CONSUL_HTTP_ADDR=f"127.0.0.1:{free_port()}")
    # The flag overrides the environment.
    out = _ok(run_cli(["kv", "get", f"-http-addr={muster_agent.http_addr}", key], env=bad_env))
    assert out == "v\n"
    env = muster_agent.env(CONSUL_HTTP_ADDR=f"http://{muster_agent.http_addr}")
    assert _ok(run_cli(["kv", "get", key], env=env)) == "v\n"
    err = _fails(run_cli(["kv", "get", key], env=muster_agent.env(CONSUL_HTTP_ADDR="ftp://x:1")))
    assert err == "Error connecting to Consul agent: Unknown protocol scheme: ftp\n"


def test_token_settings(muster_agent: AgentProcess, unique: str, tmp_path: Path) -> None:
    key = f"{unique}/tok"
    _api(muster_agent).kv_put(key, b"v")
    # ACLs are disabled: any token is accepted.
    assert _ok(run_cli(["kv", "get", "-token=abc", key], muster_agent)) == "v\n"
    token_file = tmp_path / "token"
    token_file.write_text("secret\n")
    env = muster_agent.env(CONSUL_HTTP_TOKEN_FILE=str(token_file))
    assert _ok(run_cli(["kv", "get", key], env=env)) == "v\n"
    env = muster_agent.env(CONSUL_HTTP_TOKEN_FILE=str(tmp_path / "missing"))
    err = _fails(run_cli(["kv", "get", key], env=env))
    assert err.startswith(
        f"Error connecting to Consul agent: Error loading token file {tmp_path / 'missing'}"
    )


# -- agent / cluster commands ---------------------------------------------------------------


def test_members(muster_agent: AgentProcess) -> None:
    node = str(_api(muster_agent).agent_self()["Config"]["NodeName"])
    out = _ok(run_cli(["members"], muster_agent))
    lines = out.splitlines()
    assert lines[0].split() == [
        "Node",
        "Address",
        "Status",
        "Type",
        "Build",
        "Protocol",
        "DC",
        "Partition",
        "Segment",
    ]
    row = lines[1].split()
    assert row[0] == node
    assert row[2:4] == ["alive", "server"]
    assert row[-2:] == ["default", "<all>"]
    out = _ok(run_cli(["members", "-detailed"], muster_agent))
    assert out.splitlines()[0].split() == ["Node", "Address", "Status", "Tags"]
    assert "role=consul" in out
    res = run_cli(["members", "-status=failed"], muster_agent)
    assert res.returncode == 2
    assert res.stdout == b""
    assert _fails(run_cli(["members", "-status=("], muster_agent)).startswith(
        "Failed to compile status regexp"
    )


def test_info(muster_agent: AgentProcess) -> None:
    out = _ok(run_cli(["info"], muster_agent))
    for section in ("agent:", "build:", "consul:", "raft:", "runtime:"):
        assert section + "\n" in out
    assert "\tleader = true\n" in out
    sections = [line for line in out.splitlines() if not line.startswith("\t")]
    assert sections == sorted(sections)


def test_catalog_commands(muster_agent: AgentProcess, unique: str) -> None:
    assert _ok(run_cli(["catalog", "datacenters"], muster_agent)) == "dc1\n"
    node = str(_api(muster_agent).agent_self()["Config"]["NodeName"])
    out = _ok(run_cli(["catalog", "nodes"], muster_agent))
    lines = out.splitlines()
    assert lines[0].split() == ["Node", "ID", "Address", "DC"]
    assert any(line.split()[0] == node for line in lines[1:])
    out = _ok(run_cli(["catalog", "nodes", "-service=consul"], muster_agent))
    assert out.splitlines()[1].split()[0] == node
    out = _ok(run_cli(["catalog", "nodes", "-detailed"], muster_agent))
    assert out.splitlines()[0].split() == ["Node", "ID", "Address", "DC", "TaggedAddresses", "Meta"]
    res = run_cli(["catalog", "nodes", f"-service=missing-{unique}"], muster_agent)
    assert _ok(res) == ""
    assert res.stderr == b"No nodes match the given query - try expanding your search.\n"
    assert "consul\n" in _ok(run_cli(["catalog", "services"], muster_agent))
    out = _ok(run_cli(["catalog", "services", f"-node={node}"], muster_agent))
    assert "consul" in out.split()
    assert (
        _fails(run_cli(["catalog", "nodes", "extra"], muster_agent))
        == "Too many arguments (expected 0, got 1)\n"
    )


def test_services_register_deregister_flags(muster_agent: AgentProcess, unique: str) -> None:
    name = f"cli-web-{unique}"
    out = _ok(
        run_cli(
            ["services", "register", f"-name={name}", "-port=8080", "-tag=a", "-tag=b", "-meta=team=x"],
            muster_agent,
        )
    )
    assert out == f"Registered service: {name}\n"
    svc = _api(muster_agent).agent_services()[name]
    assert svc["Port"] == 8080
    assert svc["Tags"] == ["a", "b"]
    assert svc["Meta"] == {"team": "x"}
    out = _ok(run_cli(["catalog", "services", "-tags"], muster_agent))
    assert any(line.split() == [name, "a,b"] for line in out.splitlines())
    assert (
        _ok(run_cli(["services", "deregister", f"-id={name}"], muster_agent))
        == f"Deregistered service: {name}\n"
    )
    assert name not in _api(muster_agent).agent_services()
    err = _fails(run_cli(["services", "register"], muster_agent))
    assert err == "Service registration requires at least one argument or flags.\n"


def test_services_register_from_files(muster_agent: AgentProcess, unique: str, tmp_path: Path) -> None:
    jname, hname = f"json-svc-{unique}", f"hcl-svc-{unique}"
    jfile = tmp_path / "svc.json"
    jfile.write_text(json.dumps({"service": {"name": jname, "port": 7000, "tags": ["j"]}}))
    hfile = tmp_path / "svc.hcl"
    hfile.write_text(f'service {{\n  name = "{hname}"\n  id = "{hname}-1"\n  port = 7001\n}}\n')
    out = _ok(run_cli(["services", "register", str(jfile), str(hfile)], muster_agent))
    assert out == f"Registered service: {jname}\nRegistered service: {hname}\n"
    services = _api(muster_agent).agent_services()
    assert services[jname]["Port"] == 7000
    assert services[jname]["Tags"] == ["j"]
    assert services[f"{hname}-1"]["Service"] == hname
    out = _ok(run_cli(["services", "deregister", str(jfile), str(hfile)], muster_agent))
    assert out == f"Deregistered service: {jname}\nDeregistered service: {hname}-1\n"
    assert _fails(run_cli(["services", "register", str(tmp_path / "nope.json")], muster_agent)).startswith(
        "Error: "
    )


def test_event(muster_agent: AgentProcess, unique: str) -> None:
    name = f"cli-event-{unique}"
    out = _ok(run_cli(["event", f"-name={name}", "the-payload"], muster_agent))
    assert out.startswith("Event ID: ")
    event_id = out.strip().split(": ")[1]
    uuid.UUID(event_id)
    events, _ = _api(muster_agent).event_list(name)
    assert [e["ID"] for e in events] == [event_id]
    assert base64.b64decode(events[0]["Payload"]) == b"the-payload"
    assert _fails(run_cli(["event"], muster_agent)).startswith("Event name must be specified\n")
    err = _fails(run_cli(["event", "-name=x", "-tag=t"], muster_agent))
    assert err == "Cannot provide tag filter without service filter.\n"


def test_keygen_and_version() -> None:
    out = _ok(run_cli(["keygen"]))
    key = out.strip()
    assert len(key) == 44
    assert len(base64.b64decode(key)) == 32
    assert _ok(run_cli(["keygen"])).strip() != key
    out = _ok(run_cli(["version"]))
    assert out.splitlines()[0].startswith("Consul v1.")
    assert json.loads(_ok(run_cli(["version", "-format=json"])))["Version"].startswith("1.")


def test_reload(muster_agent: AgentProcess) -> None:
    assert _ok(run_cli(["reload"], muster_agent)) == "Configuration reload triggered\n"


def test_leave_stops_private_agent(agent_factory) -> None:  # type: ignore[no-untyped-def]
    agent = agent_factory(name="leave")
    assert _ok(run_cli(["leave"], agent)) == "Graceful leave complete\n"
    deadline = time.monotonic() + 30
    while agent.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not agent.alive(), "agent still running 30s after leave"


def test_agent_bad_flag_exits_1_with_usage() -> None:
    res = run_cli(["agent", "-no-such-flag"])
    err = _fails(res)
    assert "-no-such-flag" in err.splitlines()[0]
    assert "Usage" in err


# -- watch ------------------------------------------------------------------------------------


def test_watch_key_prints_once(muster_agent: AgentProcess, unique: str) -> None:
    key = f"{unique}/w"
    _api(muster_agent).kv_put(key, b"watched", flags=9)
    entry, _ = _api(muster_agent).kv_get(key)
    assert entry is not None
    out = _ok(run_cli(["watch", "-type=key", f"-key={key}"], muster_agent, timeout=30))
    assert json.loads(out) == {
        "Key": key,
        "CreateIndex": entry["CreateIndex"],
        "ModifyIndex": entry["ModifyIndex"],
        "LockIndex": 0,
        "Flags": 9,
        "Value": base64.b64encode(b"watched").decode(),
        "Session": "",
    }
    assert out.startswith('{\n    "Key": ')
    assert (
        _ok(run_cli(["watch", "-type=key", f"-key={unique}/missing"], muster_agent, timeout=30)) == "null\n"
    )
    out = _ok(run_cli(["watch", "-type=keyprefix", f"-prefix={unique}/"], muster_agent, timeout=30))
    assert [e["Key"] for e in json.loads(out)] == [key]
    out = _ok(run_cli(["watch", "-type=services"], muster_agent, timeout=30))
    assert json.loads(out)["consul"] == []
    assert _fails(run_cli(["watch"], muster_agent)).startswith("Watch type must be specified\n")
    assert _fails(run_cli(["watch", "-type=key"], muster_agent)) == "Must specify a single key to watch\n"


def _popen_cli(args: list[str], agent: AgentProcess, **kw: object) -> subprocess.Popen[bytes]:
    env = agent.env()
    env["PYTHONPATH"] = str(REPO_ROOT / "src")
    return subprocess.Popen(
        [sys.executable, "-m", "muster", *args],
        env=env,
        cwd=str(REPO_ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        **kw,  # type: ignore[arg-type]
    )


def _wait_for(cond, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> tuple[int, bytes, bytes]:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
    return proc.returncode, out, err


def test_watch_handler_runs_on_each_change(muster_agent: AgentProcess, unique: str, tmp_path: Path) -> None:
    key = f"{unique}/handled"
    api = _api(muster_agent)
    api.kv_put(key, b"one")
    sink = tmp_path / "calls"
    handler = f'cat >> {sink}; echo >> {sink}; echo "$CONSUL_INDEX" >> {tmp_path / "indexes"}'
    proc = _popen_cli(["watch", "-type=key", f"-key={key}", handler], muster_agent)
    try:
        assert _wait_for(lambda: sink.exists() and sink.read_text().count("\n") >= 2), "first handler call"
        api.kv_put(key, b"two")
        assert _wait_for(lambda: sink.read_text().count("\n") >= 4), "second handler call"
        # An unrelated write does not re-run the handler (unchanged data).
        api.kv_put(f"{unique}/other", b"x")
        time.sleep(1.0)
    finally:
        code, _, err = _stop(proc)
    assert code == 0, err
    calls = [json.loads(line) for line in sink.read_text().splitlines() if line.strip()]
    assert [base64.b64decode(c["Value"]) for c in calls] == [b"one", b"two"]
    indexes = (tmp_path / "indexes").read_text().split()
    assert indexes[1] == str(calls[1]["ModifyIndex"])


def test_watch_handler_failure_exits_1(muster_agent: AgentProcess, unique: str) -> None:
    _api(muster_agent).kv_put(f"{unique}/f", b"x")
    res = run_cli(["watch", "-type=key", f"-key={unique}/f", "exit 3"], muster_agent, timeout=30)
    assert _fails(res) == "Error executing handler: exit status 3\n"


# -- lock -------------------------------------------------------------------------------------


def test_lock_runs_child_and_cleans_up(muster_agent: AgentProcess, unique: str) -> None:
    prefix = f"{unique}/lk"
    res = run_cli(["lock", prefix, "echo held=$CONSUL_LOCK_HELD"], muster_agent, timeout=60)
    assert _ok(res) == "held=true\n"
    api = _api(muster_agent)
    assert api.kv_get(f"{prefix}/.lock")[0] is None
    assert not [
        s for s in api.session_list()[0] if s["Name"].startswith("Consul lock for") and prefix in s["Name"]
    ]


def test_lock_child_exit_code(muster_agent: AgentProcess, unique: str) -> None:
    res = run_cli(["lock", "-child-exit-code", f"{unique}/ec", "exit 3"], muster_agent, timeout=60)
    assert _fails(res, 2) == "Error running handler: exit status 3\n"
    res = run_cli(["lock", f"{unique}/ec", "exit 3"], muster_agent, timeout=60)
    assert res.returncode == 0
    err = _fails(run_cli(["lock", f"{unique}/only-prefix"], muster_agent))
    assert err == "Key prefix and child command must be specified\n"


def test_lock_holds_key_while_child_runs_and_excludes_others(
    muster_agent: AgentProcess, unique: str, tmp_path: Path
) -> None:
    prefix = f"{unique}/excl"
    marker = tmp_path / "started"
    api = _api(muster_agent)
    holder = _popen_cli(["lock", prefix, f"touch {marker}; sleep 30"], muster_agent)
    try:
        assert _wait_for(marker.exists), "child did not start"
        entry, _ = api.kv_get(f"{prefix}/.lock")
        assert entry is not None
        assert entry["Flags"] == 0x2DDCCBC058A50C18
        assert entry.get("Session")
        session, _ = api.session_info(entry["Session"])
        assert session is not None and session["TTL"] == "15s"
        start = time.monotonic()
        res = run_cli(["lock", "-timeout=1s", prefix, "echo never"], muster_agent, timeout=60)
        assert _fails(res) == "Shutdown triggered or timeout during lock acquisition\n"
        assert res.stdout == b""
        assert time.monotonic() - start < 20
    finally:
        code, _, err = _stop(holder, signal.SIGINT)
    assert code == 0, err
    assert api.kv_get(f"{prefix}/.lock")[0] is None


def test_lock_lost_kills_child(muster_agent: AgentProcess, unique: str, tmp_path: Path) -> None:
    prefix = f"{unique}/lost"
    started, terminated = tmp_path / "started", tmp_path / "terminated"
    child = f"trap 'touch {terminated}; exit 0' TERM; touch {started}; while true; do sleep 0.1; done"
    api = _api(muster_agent)
    proc = _popen_cli(["lock", prefix, child], muster_agent)
    try:
        assert _wait_for(started.exists), "child did not start"
        entry, _ = api.kv_get(f"{prefix}/.lock")
        assert entry is not None
        api.session_destroy(entry["Session"])
        assert _wait_for(terminated.exists, 15), "child was not sent SIGTERM after the lock was lost"
        assert _wait_for(lambda: proc.poll() is not None, 15)
    finally:
        code, _, err = _stop(proc)
    assert code == 0, err


def test_semaphore_allows_n_holders(muster_agent: AgentProcess, unique: str, tmp_path: Path) -> None:
    prefix = f"{unique}/sem"
    procs = []
    try:
        for i in range(2):
            marker = tmp_path / f"holder{i}"
            procs.append(_popen_cli(["lock", "-n=2", prefix, f"touch {marker}; sleep 30"], muster_agent))
            assert _wait_for(marker.exists), f"holder {i} did not get a slot"
        res = run_cli(["lock", "-n=2", "-timeout=1s", prefix, "echo third"], muster_agent, timeout=60)
        assert _fails(res) == "Shutdown triggered or timeout during lock acquisition\n"
        # A lock (-n 1) on a semaphore prefix is a conflict.
        res = run_cli(["lock", "-timeout=1s", prefix, "echo x"], muster_agent, timeout=60)
        assert _fails(res) == "Lock acquisition failed: Existing key does not match lock use\n"
    finally:
        for p in procs:
            _stop(p, signal.SIGINT)
    api = _api(muster_agent)
    assert api.kv_list(f"{prefix}/")[0] == []


def test_cli_does_not_need_env_when_flag_given(muster_agent: AgentProcess, unique: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_")}
    res = run_cli(["kv", "put", f"-http-addr={muster_agent.http_addr}", f"{unique}/e", "v"], env=env)
    assert _ok(res) == f"Success! Data written to: {unique}/e\n"


def test_watch_other_types(muster_agent: AgentProcess) -> None:
    node = str(_api(muster_agent).agent_self()["Config"]["NodeName"])
    nodes = json.loads(_ok(run_cli(["watch", "-type=nodes"], muster_agent, timeout=30)))
    assert node in [n["Node"] for n in nodes]
    entries = json.loads(
        _ok(run_cli(["watch", "-type=service", "-service=consul"], muster_agent, timeout=30))
    )
    assert entries[0]["Service"]["ID"] == "consul"
    checks = json.loads(_ok(run_cli(["watch", "-type=checks", "-state=passing"], muster_agent, timeout=30)))
    assert "serfHealth" in [c["CheckID"] for c in checks]
    err = _fails(run_cli(["watch", "-type=bogus"], muster_agent))
    assert err == "Unsupported watch type: bogus\n"


def test_stale_and_datacenter_flags(muster_agent: AgentProcess, unique: str) -> None:
    key = f"{unique}/dc"
    _api(muster_agent).kv_put(key, b"v")
    assert _ok(run_cli(["kv", "get", "-stale", "-datacenter=dc1", key], muster_agent)) == "v\n"
    err = _fails(run_cli(["kv", "get", "-datacenter=nowhere", key], muster_agent))
    assert err == "Error querying Consul agent: Unexpected response code: 500 (No path to datacenter)\n"


# -- TLS ---------------------------------------------------------------------------------------


def _make_tls(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 / server.dc1.consul (not localhost)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Muster Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "server.dc1.consul")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("server.dc1.consul"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server-key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_path, cert_path, key_path


def test_https_connection_settings(agent_factory, unique: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ca, cert, key = _make_tls(tmp_path)
    https_port = free_port()
    agent = agent_factory(
        f"-https-port={https_port}",
        f'-hcl=tls {{ defaults {{ cert_file = "{cert}"\n key_file = "{key}" }} }}',
        name="https",
    )
    key_name = f"{unique}/tls"
    base = agent.env()
    env = dict(base, CONSUL_HTTP_ADDR=f"https://127.0.0.1:{https_port}", CONSUL_CACERT=str(ca))
    assert (
        _ok(run_cli(["kv", "put", key_name, "secure"], env=env)) == f"Success! Data written to: {key_name}\n"
    )
    # host:port + CONSUL_HTTP_SSL=true means https.
    env = dict(
        base, CONSUL_HTTP_ADDR=f"127.0.0.1:{https_port}", CONSUL_HTTP_SSL="true", CONSUL_CACERT=str(ca)
    )
    assert _ok(run_cli(["kv", "get", key_name], env=env)) == "secure\n"
    # The -ca-file flag works as CONSUL_CACERT does.
    env = dict(base, CONSUL_HTTP_ADDR=f"https://127.0.0.1:{https_port}")
    assert _ok(run_cli(["kv", "get", f"-ca-file={ca}", key_name], env=env)) == "secure\n"
    # SNI / verification name.
    env = dict(base, CONSUL_HTTP_ADDR=f"https://127.0.0.1:{https_port}", CONSUL_CACERT=str(ca))
    assert _ok(run_cli(["kv", "get", "-tls-server-name=server.dc1.consul", key_name], env=env)) == "secure\n"
    err = _fails(run_cli(["kv", "get", "-tls-server-name=other.example", key_name], env=env))
    assert err.startswith("Error querying Consul agent: Get ")
    # Without the CA the certificate is refused, cleanly; SSL_VERIFY=false skips the check.
    env = dict(base, CONSUL_HTTP_ADDR=f"https://127.0.0.1:{https_port}")
    err = _fails(run_cli(["kv", "get", key_name], env=env))
    assert err.startswith(
        f'Error querying Consul agent: Get "https://127.0.0.1:{https_port}/v1/kv/{key_name}": tls:'
    )
    env = dict(base, CONSUL_HTTP_ADDR=f"https://127.0.0.1:{https_port}", CONSUL_HTTP_SSL_VERIFY="false")
    assert _ok(run_cli(["kv", "get", key_name], env=env)) == "secure\n"


def test_closed_stdout_pipe_exits_quietly(muster_agent: AgentProcess, unique: str) -> None:
    api = _api(muster_agent)
    for i in range(30):
        api.kv_put(f"{unique}/big/{i:02d}", b"x" * 10_000)
    env = muster_agent.env()
    env["PYTHONPATH"] = str(REPO_ROOT / "src")
    res = subprocess.run(
        f"{sys.executable} -m muster kv get -recurse {unique}/big/ | head -c 10",
        shell=True,
        capture_output=True,
        env=env,
        cwd=str(REPO_ROOT),
        timeout=60,
        check=False,
    )
    assert res.stdout == f"{unique}/bi".encode()[:10]
    assert res.stderr == b""


def test_maint_service(muster_agent: AgentProcess, unique: str) -> None:
    svc = f"maint-{unique}"
    api = _api(muster_agent)
    api.agent_service_register({"Name": svc})
    try:
        out = _ok(run_cli(["maint", "-enable", f"-service={svc}", "-reason=upgrading"], muster_agent))
        assert out == f'Service maintenance is now enabled for "{svc}"\n'
        check = api.agent_checks()[f"_service_maintenance:{svc}"]
        assert check["Status"] == "critical" and check["Notes"] == "upgrading"
        listing = _ok(run_cli(["maint"], muster_agent))
        assert f"Service:\n  ID:     {svc}\n  Reason: upgrading\n\n" in listing
        out = _ok(run_cli(["maint", "-disable", f"-service={svc}"], muster_agent))
        assert out == f'Service maintenance is now disabled for "{svc}"\n'
        assert f"_service_maintenance:{svc}" not in api.agent_checks()
        err = _fails(run_cli(["maint", "-enable", "-service=no-such-service-x"], muster_agent))
        assert err.startswith("Error enabling service maintenance: Unexpected response code: 404")
    finally:
        api.agent_service_deregister(svc)
    assert _fails(run_cli(["maint", "-enable", "-disable"], muster_agent)) == (
        "Only one of -enable or -disable may be provided\n"
    )
    assert (
        _fails(run_cli(["maint", "-reason=x"], muster_agent)) == "Reason may only be provided with -enable\n"
    )


def test_maint_node_on_private_agent(agent_factory) -> None:  # type: ignore[no-untyped-def]
    # Node maintenance makes every service of the node critical: use a private agent.
    agent = agent_factory(name="maint")
    node = str(_api(agent).agent_self()["Config"]["NodeName"])
    assert _ok(run_cli(["maint", "-enable"], agent)) == "Node maintenance is now enabled\n"
    listing = _ok(run_cli(["maint"], agent))
    assert listing.startswith(f"Node:\n  Name:   {node}\n  Reason: Maintenance mode is enabled for this node")
    assert _ok(run_cli(["maint", "-disable"], agent)) == "Node maintenance is now disabled\n"
    assert _ok(run_cli(["maint"], agent)) == ""


def test_lock_interrupted_while_waiting(muster_agent: AgentProcess, unique: str, tmp_path: Path) -> None:
    prefix = f"{unique}/intr"
    marker = tmp_path / "held"
    api = _api(muster_agent)
    holder = _popen_cli(["lock", prefix, f"touch {marker}; sleep 30"], muster_agent)
    waiter = None
    try:
        assert _wait_for(marker.exists), "holder did not start"
        waiter = _popen_cli(["lock", "-name=waiter-" + unique, prefix, "echo never"], muster_agent)

        def waiter_session() -> bool:
            return any(s["Name"] == "waiter-" + unique for s in api.session_list()[0])

        assert _wait_for(waiter_session), "waiter never created its session"
        time.sleep(0.5)  # now blocked on the held key
        code, out, err = _stop(waiter, signal.SIGINT)
        assert code == 1
        assert out == b""
        assert err == b"Shutdown triggered or timeout during lock acquisition\n"
        assert _wait_for(lambda: not waiter_session(), 10), "waiter's session was not destroyed"
    finally:
        if waiter is not None and waiter.poll() is None:
            _stop(waiter)
        code, _, err = _stop(holder, signal.SIGTERM)
    assert code == 0, err
