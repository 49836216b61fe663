"""Free ports on 127.0.0.1 for the agents that tests start (``realagent``, the client-suite shim).

A port is taken only if both its TCP and its UDP twin are free at that moment (an agent binds
DNS and gossip over UDP on some of them).  Nothing holds the port afterwards: the caller binds it
soon, and a clash shows as a startup error, not a wrong result.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now, its UDP twin too; RuntimeError after 50 tries."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port found")
