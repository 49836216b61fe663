"""The single-server log used by ``-dev``: the same shape as Raft with a quorum of one.

``propose`` assigns the next index, keeps the encoded command in a bounded tail (the log is
real: every change is a typed command at an index, as on a cluster) and applies it to the FSM
at once.  There is nothing to fsync: ``-dev`` is in-memory by definition.  It implements the
``Log`` protocol (``server/log.py``) like the replicated log, and is the only log whose
``propose_now`` applies (there is no quorum to wait for).
"""

from __future__ import annotations

from collections import deque
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ..fsm import FSM
from ..runtime import Clock
from ..structs import encode_command
from ..telemetry.metrics import METRICS


class DevLog:
    TAIL = 4096

    def __init__(self, fsm: FSM, node_id: str, clock: Clock) -> None:
        self.fsm = fsm
        self.clock = clock
        self.node_id = node_id
        self._index = fsm.last_applied
        self._tail: deque[tuple[int, bytes]] = deque(maxlen=self.TAIL)
        self._m_apply = METRICS.series("raft.apply")
        self._m_fsm = METRICS.series("raft.fsm.apply")

    def is_leader(self) -> bool:
        return True

    def leader_id(self) -> str | None:
        return self.node_id

    def last_contact(self) -> float:
        return 0.0

    def last_index(self) -> int:
        return self._index

    def term(self) -> int:
        return 1

    def configuration_index(self) -> int:
        """0: the single voter of ``-dev`` is implicit, never a log entry (Consul's dev agent
        reports ``Index: 0`` in ``/v1/operator/raft/configuration`` too)."""
        return 0

    def commit_index(self) -> int:
        return self._index

    def last_snapshot(self) -> tuple[int, int]:
        return (0, 0)

    def propose_now(self, cmd: Any) -> Any:
        """Apply synchronously (no await): the single writer runs to completion."""
        if hasattr(cmd, "ts"):
            cmd.ts = self.clock.wall()
        self._index += 1
        self._tail.append((self._index, encode_command(cmd)))
        started = perf_counter()
        res = self.fsm.apply_decoded(self._index, cmd)
        self._m_fsm.measure_since(started, count=self._m_apply)  # and raft.apply += 1
        return res

    async def propose(self, cmd: Any) -> Any:
        return self.propose_now(cmd)

    async def read_barrier(self, consistent: bool = True) -> None:
        return None

    def entries(self) -> list[tuple[int, bytes]]:
        return list(self._tail)

    def restored(self, index: int) -> None:
        self._index = max(self._index, index)


if TYPE_CHECKING:  # mypy proves the dev log implements the protocol the server relies on
    from .log import Log

    _LOG: type[Log] = DevLog
