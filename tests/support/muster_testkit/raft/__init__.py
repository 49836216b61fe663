"""Test support for :mod:`muster.raft`: the simulated node/disk harness and the fault simulator."""
