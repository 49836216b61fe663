"""Endpoint module (being filled in)."""

from __future__ import annotations

from .app import Route
from .common import Ctx


def routes(ctx: Ctx) -> list[Route]:
    return []
