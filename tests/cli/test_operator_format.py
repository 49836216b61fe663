"""Formatting of ``muster operator raft list-peers`` (Consul's column layout)."""

from __future__ import annotations

from muster.cli.operator import format_peers


def test_list_peers_table() -> None:
    conf = {
        "Servers": [
            {"ID": "aaaa", "Node": "consul-0", "Address": "10.0.0.1:8300", "Leader": True, "Voter": True, "ProtocolVersion": "3", "LastIndex": 120},
            {"ID": "bbbb", "Node": "consul-1", "Address": "10.0.0.2:8300", "Leader": False, "Voter": True, "ProtocolVersion": "3", "LastIndex": 117},
            {"ID": "cccc", "Node": "consul-2", "Address": "10.0.0.3:8300", "Leader": False, "Voter": False, "ProtocolVersion": "3", "LastIndex": 0},
        ]
    }
    lines = format_peers(conf)
    assert lines[0].split() == ["Node", "ID", "Address", "State", "Voter", "RaftProtocol", "Commit", "Index", "Trails", "Leader", "By"]
    assert lines[1].split() == ["consul-0", "aaaa", "10.0.0.1:8300", "leader", "true", "3", "120", "-"]
    assert lines[2].split() == ["consul-1", "bbbb", "10.0.0.2:8300", "follower", "true", "3", "117", "3", "commits"]
    assert lines[3].split()[3:5] == ["follower", "false"]
    # columns are aligned: every "ID" value starts at the same offset
    assert len({line.index(v) for line, v in zip(lines[1:], ["aaaa", "bbbb", "cccc"], strict=True)}) == 1
