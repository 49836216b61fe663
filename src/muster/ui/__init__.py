"""Muster's web UI: a dependency-free single-page app served under ``/ui/``.

The HTTP server answers ``GET /ui/<path>`` with :func:`muster.ui.assets.lookup`.
The app only talks to the public ``/v1/...`` HTTP API.
"""

from muster.ui.assets import lookup

__all__ = ["lookup"]
