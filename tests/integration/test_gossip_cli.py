"""Gossip from the outside: ``muster join``, members, encrypted keyring rotation, force-leave."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable

from realagent import AgentProcess, run_cli

from muster.tls import keygen


def wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def cli(args: list[str], agent: AgentProcess) -> tuple[int, str, str]:
    r = run_cli(args, agent)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def members(a: AgentProcess) -> dict[str, int]:
    import urllib.request

    with urllib.request.urlopen(a.url + "/v1/agent/members", timeout=5) as r:
        return {m["Name"]: m["Status"] for m in json.loads(r.read())}


def test_join_keyring_rotation_and_force_leave(agent_factory: Callable[..., AgentProcess]) -> None:
    key1 = keygen()
    a = agent_factory(f"-encrypt={key1}", "-node=g-one", name="gossip-a")
    b = agent_factory(f"-encrypt={key1}", "-node=g-two", name="gossip-b")
    code, out, err = cli(["join", f"127.0.0.1:{a.ports['serf_lan']}"], b)
    assert code == 0, err
    assert "Successfully joined cluster by contacting 1 nodes." in out
    wait(lambda: members(a) == {"g-one": 1, "g-two": 1}, 20, "both members alive on g-one")

    code, out, err = cli(["keyring", "-list"], a)
    assert code == 0, err
    assert f"{key1} [2/2]" in out
    key2 = keygen()
    for action, key in (("-install", key2), ("-use", key2), ("-remove", key1)):
        code, out, err = cli(["keyring", f"{action}={key}"], a)
        assert code == 0, (action, err)
    code, out, err = cli(["keyring", "-list"], b)
    assert f"{key2} [2/2]" in out and key1 not in out, out
    # the pool still works on the new key
    wait(lambda: members(b) == {"g-one": 1, "g-two": 1}, 10, "members after rotation")

    # a crashed member is failed; force-leave moves it to left
    b.proc.send_signal(signal.SIGKILL)
    wait(lambda: members(a).get("g-two") == 4, 30, "g-two failed")
    code, out, err = cli(["force-leave", "g-two"], a)
    assert code == 0, err
    wait(lambda: members(a).get("g-two") in (3, None), 15, "g-two left")
    code, out, err = cli(["force-leave", "nobody"], a)
    assert code == 1 and "No node found with name 'nobody'" in err


def test_join_without_a_port_uses_the_pools_own_port(agent_factory: Callable[..., AgentProcess]) -> None:
    # memberlist resolves an address given without a port to its own bind port (not 8301): an
    # agent on other ports joins "127.0.0.1" (itself, here) as Consul does.
    import urllib.request

    a = agent_factory("-node=g-self", name="gossip-self")
    assert a.ports["serf_lan"] != 8301
    req = urllib.request.Request(a.url + "/v1/agent/join/127.0.0.1", method="PUT")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    # force-leave of our own (alive) name is accepted and changes nothing, as serf refutes it.
    req = urllib.request.Request(a.url + "/v1/agent/force-leave/g-self", method="PUT")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    assert members(a) == {"g-self": 1}
