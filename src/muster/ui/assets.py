"""Static assets of the web UI, served by the HTTP server under ``/ui/``.

Every asset ships inside the package (``muster/ui/static``); nothing is fetched
from the network at run time and there is no build step: the app is plain ES
modules.  :func:`lookup` maps a path relative to ``/ui/`` to the file's bytes
and content type.  Paths that do not name a file but look like an application
route (a single-page-app deep link) get ``index.html`` so that reloading any
page of the app works; a missing *asset* (something with a file extension such
as ``.js`` or ``.css``) is reported as missing instead, so that a broken
reference surfaces as a 404 rather than as HTML parsed as JavaScript.
"""

from __future__ import annotations

import posixpath
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from urllib.parse import unquote

__all__ = ["CONTENT_TYPES", "INDEX", "lookup"]

INDEX = "index.html"

#: Content type by file extension (lower case, with the dot).
CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
    ".webmanifest": "application/manifest+json",
}

_DEFAULT_TYPE = "application/octet-stream"


def _static_root() -> Traversable:
    return resources.files("muster.ui").joinpath("static")


def _content_type(name: str) -> str:
    _, ext = posixpath.splitext(name)
    return CONTENT_TYPES.get(ext.lower(), _DEFAULT_TYPE)


@lru_cache(maxsize=256)
def _read(rel: str) -> bytes | None:
    """Bytes of the static file at ``rel`` (already normalised), or None."""
    node = _static_root()
    for part in rel.split("/"):
        node = node.joinpath(part)
    try:
        if not node.is_file():
            return None
        return node.read_bytes()
    except OSError:
        return None


def _normalise(path: str) -> str | None:
    """Normalise a request path relative to /ui/; None if it is unsafe."""
    # Tolerate a query string or fragment that a caller forgot to strip.
    for sep in ("?", "#"):
        path = path.split(sep, 1)[0]
    path = unquote(path)
    if "\\" in path or "\x00" in path:
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return "/".join(parts)


def lookup(path: str) -> tuple[bytes, str] | None:
    """Return ``(body, content_type)`` for ``path`` (relative to ``/ui/``).

    * ``""``, ``"/"`` and ``"index.html"`` give the application page.
    * A path naming a shipped file gives that file.
    * A path whose last segment has a file extension but names no file gives
      ``None`` (the caller answers 404).
    * Any other path is a client-side route and gives ``index.html``.
    * Paths trying to escape the asset directory (``..``) give ``None``.
    """
    rel = _normalise(path)
    if rel is None:
        return None
    if rel == "":
        rel = INDEX
    body = _read(rel)
    if body is not None:
        return body, _content_type(rel)
    last = rel.rsplit("/", 1)[-1]
    _, ext = posixpath.splitext(last)
    if ext.lower() in CONTENT_TYPES:
        return None
    index = _read(INDEX)
    if index is None:  # pragma: no cover - the package always ships it
        return None
    return index, CONTENT_TYPES[".html"]
