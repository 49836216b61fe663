"""In-process agents with ACLs on (default deny and default allow) for the ACL contract tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from muster.config import parse_agent_flags
from muster.process import AgentProcess
from muster.runtime import Rng

ROOT = "root-secret-0123"


def _hcl(default: str, extra: str = "") -> str:
    return f'acl {{\n  enabled = true\n  default_policy = "{default}"\n  tokens {{\n    initial_management = "{ROOT}"\n  }}\n{extra}}}\n'


async def _start(default: str, extra: str = "") -> AgentProcess:
    cfg = parse_agent_flags(["-dev", "-node=test-node", "-client=127.0.0.1", f"-hcl={_hcl(default, extra)}"])
    proc = AgentProcess(cfg, rng=Rng(4321))
    await proc.server.start()
    await proc.agent.start()
    return proc


@pytest.fixture
async def deny_agent() -> AsyncIterator[AgentProcess]:
    proc = await _start("deny")
    try:
        yield proc
    finally:
        await proc.agent.stop()
        await proc.server.stop()


@pytest.fixture
async def allow_agent() -> AsyncIterator[AgentProcess]:
    proc = await _start("allow")
    try:
        yield proc
    finally:
        await proc.agent.stop()
        await proc.server.stop()


def _client(proc: AgentProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=proc.app), base_url="http://muster.test")


@pytest.fixture
async def deny(deny_agent: AgentProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(deny_agent) as c:
        yield c


@pytest.fixture
async def allow(allow_agent: AgentProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(allow_agent) as c:
        yield c


MakeToken = Callable[[httpx.AsyncClient, str], "object"]


async def make_token(c: httpx.AsyncClient, rules: str, name: str = "p") -> dict[str, str]:
    """A policy with ``rules`` and a token linked to it; returns the token JSON."""
    r = await c.put("/v1/acl/policy", json={"Name": name, "Rules": rules}, headers={"X-Consul-Token": ROOT})
    assert r.status_code == 200, r.text
    r = await c.put("/v1/acl/token", json={"Policies": [{"Name": name}]}, headers={"X-Consul-Token": ROOT})
    assert r.status_code == 200, r.text
    tok: dict[str, str] = r.json()
    return tok


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """An agent with ACLs off (the default)."""
    cfg = parse_agent_flags(["-dev", "-node=test-node", "-client=127.0.0.1"])
    proc = AgentProcess(cfg, rng=Rng(1))
    await proc.server.start()
    await proc.agent.start()
    try:
        async with _client(proc) as c:
            yield c
    finally:
        await proc.agent.stop()
        await proc.server.stop()
