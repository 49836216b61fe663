"""Real-process fixtures: a ``muster agent -dev`` subprocess shared by the integration suite.

* ``muster_agent`` (session scope): one agent for the whole run.  Tests must use unique
  key prefixes / service names (``unique`` fixture) because they share its state.
* ``agent_factory``: start extra, private agents (stopped at the end of the test), e.g.
  for ``leave`` or restart tests: ``agent_factory(name="leave")``.

Logs go to ``test-artifacts/<name>-<port>.log``.  The helpers live in ``realagent.py``
(``start_agent``, ``run_cli``, ``free_port``) so other real-process tests can import them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from realagent import AgentProcess, start_agent


@pytest.fixture(scope="session")
def muster_agent() -> Iterator[AgentProcess]:
    agent = start_agent(name="integration")
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture
def agent_factory() -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def factory(*extra_args: str, name: str = "private") -> AgentProcess:
        agent = start_agent(extra_args, name=name)
        started.append(agent)
        return agent

    try:
        yield factory
    finally:
        for agent in started:
            agent.stop()


@pytest.fixture
def unique() -> str:
    """A short unique token for key prefixes and service names."""
    return uuid.uuid4().hex[:10]
