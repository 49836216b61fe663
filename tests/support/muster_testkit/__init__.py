"""Muster's test kit: everything that exists only to drive or judge Muster under test.

It lives in ``tests/support/`` and is not part of the ``muster`` wheel (``tests/unit/
test_wheel_contents.py`` builds the wheel and checks).  ``make venv`` installs it into the
development venv (``pip install -e tests/support``) so that the command lines below work, and
pytest also finds it through ``pythonpath`` in ``pyproject.toml``.

The rule for simulators: each one sits in the kit package named after the core it drives,
mirroring ``src/muster/<core>/``.

Raft (``muster_testkit.raft``):

* :mod:`muster_testkit.raft.simnode` - SimDisk (loses unsynced writes on crash),
  RealDisk (a real DiskStorage whose WAL tail is torn on crash), SimFSM,
  SimNode (a RaftCore plus the Ready-handling driver loop) and readable
  formatting of Raft messages, used by the transcript tests.
* :mod:`muster_testkit.raft.sim` - the seeded Raft fault simulator with safety
  checkers (``python -m muster_testkit.raft.sim --seed N``).

Gossip (``muster_testkit.gossip``):

* :mod:`muster_testkit.gossip.sim` - the seeded SWIM/Serf fault simulator
  (``python -m muster_testkit.gossip.sim --seed N``).

Whole system:

* :mod:`muster_testkit.linearizability` - the linearizability checker for KV histories.
* :mod:`muster_testkit.ports` - free 127.0.0.1 ports (TCP and UDP twin) for the agents tests
  start (``tests/integration/realagent.py``, the client-suite docker stand-in).
* :mod:`muster_testkit.history` - recorded client histories against real agents, with faults
  (SIGKILL, pauses, partitions) (``python -m muster_testkit.history --url ...``).
* :mod:`muster_testkit.k8ssim` - the seed's StatefulSet run as processes in Linux network
  namespaces (``make k8s-sim``).
* :mod:`muster_testkit.webfake` - a catch-all HTTP(S) server on 127.0.0.1 for the fakes of
  what an agent calls (JWKS, Kubernetes, AWS STS/IAM, HTTP check targets).
"""
