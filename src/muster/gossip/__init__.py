"""Gossip membership: a sans-IO SWIM/Lifeguard core, Serf semantics on top, an asyncio driver.

Modules: :mod:`.codec` (wire format), :mod:`.keyring` (AES-GCM keys), :mod:`.core` (SWIM),
:mod:`.serf` (member status, intents, user events), :mod:`.transport` (UDP+TCP for one pool)
and :mod:`.sim` (seeded simulator).
"""
