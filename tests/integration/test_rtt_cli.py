"""``muster rtt`` against a real agent: LAN estimates from the coordinates in the catalog,
WAN from /v1/coordinate/datacenters, and the error for a node without a coordinate."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable

from realagent import AgentProcess, run_cli


def _put(agent: AgentProcess, path: str, body: object) -> None:
    req = urllib.request.Request(agent.url + path, data=json.dumps(body).encode(), method="PUT")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200


def test_rtt_lan_and_wan(agent_factory: Callable[..., AgentProcess]) -> None:
    a = agent_factory("-node=rtt-self", name="rtt")
    _put(a, "/v1/catalog/register", {"Node": "rtt-other", "Address": "10.9.0.1"})
    vec = [0.0] * 8
    far = [0.003, 0.004] + [0.0] * 6  # 5 ms away, plus both heights
    for node, v in (("rtt-self", vec), ("rtt-other", far)):
        _put(a, "/v1/coordinate/update", {"Node": node, "Coord": {"Vec": v, "Error": 0.1, "Adjustment": 0.0,
                                                                  "Height": 0.0001}})
    deadline = time.monotonic() + 20  # applied with the next batch (every 5 s)
    while time.monotonic() < deadline:
        with urllib.request.urlopen(a.url + "/v1/coordinate/nodes", timeout=5) as r:
            if len(json.loads(r.read())) >= 2:
                break
        time.sleep(0.5)
    r = run_cli(["rtt", "rtt-other"], a)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == "Estimated rtt-other <-> rtt-self rtt: 5.200 ms (using LAN coordinates)"
    r = run_cli(["rtt", "rtt-self", "rtt-other"], a)
    assert r.stdout.decode().strip().startswith("Estimated rtt-self <-> rtt-other rtt: 5.200 ms")
    r = run_cli(["rtt", "nobody"], a)
    assert r.returncode == 1 and 'Could not find a coordinate for node "nobody"' in r.stderr.decode()
    r = run_cli(["rtt", "-wan", "rtt-self.dc1"], a)
    assert r.returncode == 0, r.stderr
    assert "rtt-self.dc1 <-> rtt-self.dc1" in r.stdout.decode() and "(using WAN coordinates)" in r.stdout.decode()
    r = run_cli(["rtt"], a)
    assert r.returncode == 1
