"""Gossip membership: a sans-IO SWIM/Lifeguard core, Serf semantics on top, an asyncio driver.

Layers, bottom up:

* :mod:`.codec` and :mod:`.keyring`: the wire format (msgpack messages in a CRC or AES-GCM
  envelope) and memberlist-style keyrings;
* :mod:`.queue`: the transmit-limited broadcast queue;
* :mod:`.core`: ``SwimCore``, the failure detector (sans-IO: bytes and ``now`` in, bytes, stream
  requests and member events out; one deadline);
* :mod:`.serf`: ``Serf``, member status (1 alive, 2 leaving, 3 left, 4 failed), Lamport-clocked
  intents, tags, user events, queries (cluster-wide keyring), reaping -- still sans-IO;
* :mod:`.transport`: ``GossipPool``, the asyncio UDP+TCP driver for one pool (LAN or WAN);
* the seeded fault simulator lives with the test kit, not in the package:
  ``python -m muster_testkit.gossip.sim --seed N`` (``tests/support/muster_testkit/gossip/sim.py``).
"""
