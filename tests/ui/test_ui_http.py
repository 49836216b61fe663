"""The agent started with -ui serves the app under /ui/ (no browser needed)."""

from __future__ import annotations

import re

import httpx
from ui_harness import Agent


def test_root_redirects_to_ui(agent: Agent) -> None:
    resp = httpx.get(f"{agent.url}/", follow_redirects=False, timeout=10)
    assert resp.status_code in (301, 302, 307, 308)
    assert resp.headers["location"].endswith("/ui/")


def test_ui_index_and_assets(agent: Agent) -> None:
    resp = httpx.get(f"{agent.url}/ui/", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    html = resp.text
    refs = re.findall(r"""(?:src|href)="(/ui/[^"]+)\"""", html)
    assert "/ui/js/main.js" in refs and "/ui/css/app.css" in refs
    for ref in refs:
        asset = httpx.get(f"{agent.url}{ref}", timeout=10)
        assert asset.status_code == 200, ref
    js = httpx.get(f"{agent.url}/ui/js/main.js", timeout=10)
    # Browsers refuse ES modules served with a non-JavaScript MIME type.
    assert js.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")


def test_ui_deep_link_serves_index(agent: Agent) -> None:
    resp = httpx.get(f"{agent.url}/ui/services/web", timeout=10)
    assert resp.status_code == 200
    assert '<script type="module" src="/ui/js/main.js">' in resp.text


def test_ui_missing_asset_is_404(agent: Agent) -> None:
    resp = httpx.get(f"{agent.url}/ui/js/does-not-exist.js", timeout=10)
    assert resp.status_code == 404
