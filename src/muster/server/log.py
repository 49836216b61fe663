"""``Log``: what the server needs from its log, whether single-server or replicated.

Three classes implement it: ``DevLog`` (``-dev``: a quorum of one in memory), ``ReplicatedLog``
(the Raft driver) and ``ClusterLog`` (what a cluster server holds for its whole life: leaderless
while the cluster forms, then the ``ReplicatedLog`` it was handed).  Callers use only this
protocol: no ``hasattr``/``isinstance`` on a log outside ``server/``.

``propose_now`` is the synchronous fast path of the single-server log (the hot KV path pays no
task switch).  A log that must wait for a quorum or a disk returns ``PENDING`` without doing
anything, and the caller awaits ``propose`` instead; so the fast path is an optimisation, never
a different behaviour.
"""

from __future__ import annotations

from typing import Any, Final, Protocol


class _Pending:
    """The type of ``PENDING``."""

    def __repr__(self) -> str:
        return "PENDING"


#: ``propose_now``'s answer when the command was not applied (await ``propose`` instead).
PENDING: Final = _Pending()


class Log(Protocol):
    """What the server needs from a log, single-server or replicated."""

    def is_leader(self) -> bool: ...

    def leader_id(self) -> str | None: ...

    def last_contact(self) -> float:
        """Seconds since this server last heard from the leader (0 on the leader)."""
        ...

    def propose_now(self, cmd: Any) -> Any:
        """Apply ``cmd`` at once and return the FSM's result if this log can without waiting;
        else do nothing and return ``PENDING``."""
        ...

    async def propose(self, cmd: Any) -> Any:
        """Append ``cmd``; return the FSM's result once it is committed and applied."""
        ...

    async def read_barrier(self, consistent: bool = True) -> None:
        """Return once this server may serve a read: ReadIndex when ``consistent``."""
        ...

    def last_index(self) -> int: ...

    def commit_index(self) -> int: ...

    def term(self) -> int: ...

    def last_snapshot(self) -> tuple[int, int]:
        """(index, term) of the newest snapshot, (0, 0) when there is none."""
        ...

    def configuration_index(self) -> int:
        """Index of the log entry holding the Raft configuration in effect (0: none)."""
        ...
