"""MUSTER_EVENT_LOOP picks the agent's event loop; a wrong value is a clear error."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from muster.eventloop import EventLoopChoiceError, choose_runner

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


def test_asyncio_forced() -> None:
    assert choose_runner({"MUSTER_EVENT_LOOP": "asyncio"}) == ("asyncio", asyncio.run)


def test_auto_prefers_uvloop_when_installed() -> None:
    name, _ = choose_runner({})
    assert name == ("uvloop" if HAVE_UVLOOP else "asyncio")


def test_unknown_value_is_refused() -> None:
    with pytest.raises(EventLoopChoiceError, match="expected auto, asyncio or uvloop"):
        choose_runner({"MUSTER_EVENT_LOOP": "trio"})


@pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop not installed")
def test_uvloop_forced() -> None:
    name, run = choose_runner({"MUSTER_EVENT_LOOP": "UVLOOP"})
    assert name == "uvloop" and run is not asyncio.run
