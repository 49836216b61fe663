"""``Services``: every long-lived part of one agent, built once by the process root.

(These are the agent's internal services, not the catalog's.)  ``muster.process.AgentProcess``
builds each part in dependency order, each one receiving what it needs in its constructor,
then freezes them into one ``Services`` *before* any HTTP route exists.  Every endpoint module's
``routes(ctx)`` receives the same ``muster.http.common.Ctx``, whose ``services`` field is this
object: a handler reaches a part as a typed attribute (``ctx.services.operator``,
``ctx.services.events``...; ``ctx.server`` and ``ctx.agent`` are shortcuts).  Nothing is looked
up by a string and nothing is assigned onto a built object afterwards.

Adding a service (say an ACL resolver):

1. write it in its own module below ``http/`` (e.g. ``muster/acl/resolver.py``), taking what it
   needs (the server, the config...) as constructor arguments;
2. add a typed field here (``acl: ACLResolver``) and import its class at the top;
3. build it in ``AgentProcess.__init__`` (``process.py``) next to the others, before
   ``Services(...)``, and pass it in;
4. in a handler, use ``ctx.services.acl``.  In tests, the ``agent`` fixture of ``tests/http``
   exposes the same object as ``agent.services``.

Imports point down: ``process`` -> ``http`` -> ``services`` -> (server, agent, membership,
events).  A service must not import ``http`` or ``process``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .events import EventBuffer
from .membership import Membership
from .server.acl import ACLService
from .server.operator import ClusterOperator
from .server.server import Server

if TYPE_CHECKING:  # the agent pulls in aiohttp (HTTP checks): imported where it is built
    from .agent.agent import Agent


class Lifecycle:
    """Shutdown, reload and graceful leave of the agent process.

    ``shutdown`` asks the process to stop (signals, ``/v1/agent/leave``, a fatal error);
    ``stopping`` is set once asked.  ``left`` records a graceful leave, so the gossip pool
    announces ``left`` rather than a failure.  ``reload`` re-reads the configuration files
    (``PUT /v1/agent/reload``, SIGHUP).
    """

    def __init__(self, reload: Callable[[], Awaitable[None]]) -> None:
        self._reload = reload
        self.stopping = asyncio.Event()
        self.left = False
        self.fatal_error = ""

    async def reload(self) -> None:
        await self._reload()

    def shutdown(self) -> None:
        self.stopping.set()

    def shutdown_soon(self, delay: float = 0.2) -> None:
        """Stop after ``delay`` seconds (lets an HTTP answer reach its client first)."""
        asyncio.get_running_loop().call_later(delay, self.shutdown)

    def fatal(self, msg: str) -> None:
        """Stop with exit status 1 (Consul's behaviour when retry_max is exhausted)."""
        self.fatal_error = msg
        self.shutdown()


@dataclass(frozen=True)
class Services:
    """The agent's parts, for handlers and the process root (see the module docstring)."""

    server: Server
    agent: Agent
    events: EventBuffer
    operator: ClusterOperator
    lifecycle: Lifecycle
    #: Tokens, policies and roles; answers every request when ACLs are disabled (allow all).
    acl: ACLService
    #: The LAN (and, on servers, WAN) gossip pools; None when a ``-dev`` agent does not gossip.
    membership: Membership | None = None
