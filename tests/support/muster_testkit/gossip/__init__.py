"""Test support for :mod:`muster.gossip`: the seeded fault simulator."""
