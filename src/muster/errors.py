"""The error tree shared by the store, the server and the HTTP layer.

Every error that can reach a client carries the HTTP status and the exact text Consul uses,
because clients string-match those texts (Patroni greps ``invalid session`` and ``Invalid
Session TTL``; py-consul maps status codes to exception classes).  The HTTP layer turns a
``MusterError`` into a plain-text response and never shows a traceback.
"""

from __future__ import annotations


class MusterError(Exception):
    """Base class: ``status`` is the HTTP status, ``str(err)`` the exact body text."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class BadRequest(MusterError):
    """A malformed request: 400."""

    status = 400


class NotFound(MusterError):
    """A missing object where Consul answers 404 with a text body."""

    status = 404


class MethodNotAllowed(MusterError):
    status = 405


class PermissionDenied(MusterError):
    status = 403


class TooLarge(MusterError):
    status = 413


class ACLDisabled(MusterError):
    status = 401

    def __init__(self) -> None:
        super().__init__("ACL support disabled")


class NoLeader(MusterError):
    """No leader is known after ``rpc_hold_timeout``."""

    def __init__(self) -> None:
        super().__init__("No cluster leader")


class NotLeader(MusterError):
    """This server is not the leader; ``leader`` is its best guess (node id) or None."""

    def __init__(self, leader: str | None = None) -> None:
        super().__init__("node is not the leader")
        self.leader = leader


class NoPathToDatacenter(MusterError):
    def __init__(self) -> None:
        super().__init__("No path to datacenter")


class StateError(MusterError):
    """A command was refused by the state store (a 500 with Consul's text).

    Raised *before* any mutation, so a refused command never leaves half-applied state.
    """


class FatalApplyError(Exception):
    """The FSM met a command it cannot decode: continuing would let replicas diverge."""
