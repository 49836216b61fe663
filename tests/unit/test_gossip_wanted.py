"""When a -dev agent runs gossip (``process.gossip_wanted``)."""

from __future__ import annotations

from muster.config import parse_agent_flags
from muster.process import gossip_wanted


def test_dev_agent_gossips_when_a_lan_port_or_join_is_given() -> None:
    assert not gossip_wanted(parse_agent_flags(["-dev"]))
    assert gossip_wanted(parse_agent_flags(["-dev", "-serf-lan-port=18301"]))
    assert gossip_wanted(parse_agent_flags(["-dev", '-hcl=ports { serf_lan = 18301 }']))
    assert gossip_wanted(parse_agent_flags(["-dev", "-retry-join=127.0.0.1"]))
    assert gossip_wanted(parse_agent_flags(["-server", "-data-dir=/tmp/x"]))
