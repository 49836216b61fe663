"""Test support shipped inside the package (fakes, simulators, checkers).

Raft:

* :mod:`muster.testing.raftsim` - SimDisk (loses unsynced writes on crash),
  RealDisk (a real DiskStorage whose WAL tail is torn on crash), SimFSM,
  SimNode (a RaftCore plus the Ready-handling driver loop) and readable
  formatting of Raft messages, used by the transcript tests.
* :mod:`muster.testing.sim` - the seeded Raft fault simulator with safety
  checkers (``python -m muster.testing.sim --seed N``).

Other modules in this package serve other subsystems' tests.
"""
