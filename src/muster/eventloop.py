"""Which asyncio event loop runs the agent.

uvloop (the ``fast`` extra) when it is installed, the stdlib loop otherwise.
``MUSTER_EVENT_LOOP=asyncio|uvloop`` forces one (benchmarks compare both in the same run;
``uvloop`` fails fast when it is not installed instead of silently falling back).

Both loops must serve HTTP without per-request stalls: the stdlib loop turns Nagle off on an
accepted connection only when the listening socket's proto is IPPROTO_TCP, which is why
``http/serve.py`` creates it that way (tests/http/test_listener_socket.py pins it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any

Runner = Callable[[Coroutine[Any, Any, Any]], Any]


class EventLoopChoiceError(ValueError):
    """MUSTER_EVENT_LOOP names a loop that is unknown or not installed."""


def choose_runner(env: dict[str, str] | None = None) -> tuple[str, Runner]:
    """The loop's name and its ``run`` function, from ``MUSTER_EVENT_LOOP`` (default ``auto``)."""
    want = (os.environ if env is None else env).get("MUSTER_EVENT_LOOP", "auto").strip().lower() or "auto"
    if want not in ("auto", "asyncio", "uvloop"):
        raise EventLoopChoiceError(f"MUSTER_EVENT_LOOP={want!r}: expected auto, asyncio or uvloop")
    if want != "asyncio":
        try:
            import uvloop
        except ImportError:
            if want == "uvloop":
                raise EventLoopChoiceError("MUSTER_EVENT_LOOP=uvloop but uvloop is not installed") from None
        else:
            return "uvloop", uvloop.run
    return "asyncio", asyncio.run
