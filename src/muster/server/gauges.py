"""The server's gauges, sampled by the telemetry collector: state sizes and Raft progress.

Names are Consul's (``consul.state.*`` usage gauges, ``consul.server.isLeader``,
``consul.raft.applied_index``/``last_index``).
"""

from __future__ import annotations

from collections.abc import Callable

from ..telemetry.metrics import Labels
from .server import Server


def server_gauges(server: Server) -> Callable[[], list[tuple[str, float, Labels]]]:
    def sample() -> list[tuple[str, float, Labels]]:
        st = server.store
        return [
            ("server.isLeader", 1.0 if server.is_leader() else 0.0, ()),
            ("raft.applied_index", float(server.fsm.last_applied), ()),
            ("raft.last_index", float(server.log.last_index()), ()),
            ("state.nodes", float(len(st.nodes)), ()),
            ("state.services", float(len(st.service_instances)), ()),
            ("state.service_instances", float(sum(len(p) for p in st.services.values())), ()),
            ("state.kv_entries", float(len(st.kvs)), ()),
            ("state.sessions", float(len(st.sessions)), ()),
        ]

    return sample
