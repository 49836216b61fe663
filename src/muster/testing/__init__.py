"""Test support shipped inside the package (fakes and simulators).

* :mod:`muster.testing.raftsim` - SimDisk (loses unsynced writes on crash),
  SimFSM, SimNode (a RaftCore plus the Ready-handling driver loop) and
  human-readable formatting of Raft messages, used by the transcript tests.
* :mod:`muster.testing.sim` - the seeded Raft fault simulator with safety
  checkers (``python -m muster.testing.sim --seed N``).
"""
