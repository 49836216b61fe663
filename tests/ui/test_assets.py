"""muster.ui.assets.lookup: what /ui/<path> serves (no browser, no agent)."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from muster.ui.assets import lookup


def _index() -> bytes:
    found = lookup("index.html")
    assert found is not None
    return found[0]


@pytest.mark.parametrize("path", ["", "/", "index.html", "/index.html", "./index.html"])
def test_root_serves_index(path: str) -> None:
    found = lookup(path)
    assert found is not None
    body, ctype = found
    assert ctype == "text/html; charset=utf-8"
    assert b'<script type="module" src="/ui/js/main.js"></script>' in body


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("js/main.js", "text/javascript; charset=utf-8"),
        ("css/app.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
        ("vendor/js-yaml.mjs", "text/javascript; charset=utf-8"),
        ("vendor/js-yaml.LICENSE.txt", "text/plain; charset=utf-8"),
    ],
)
def test_assets_have_content_types(path: str, ctype: str) -> None:
    found = lookup(path)
    assert found is not None, path
    body, got = found
    assert got == ctype
    assert body == resources.files("muster.ui").joinpath("static", *path.split("/")).read_bytes()


@pytest.mark.parametrize(
    "path", ["services", "services/web", "nodes/node-1", "kv/a/b/", "dc1/kv/x", "cluster?x=1"]
)
def test_deep_links_fall_back_to_index(path: str) -> None:
    found = lookup(path)
    assert found is not None
    assert found == (_index(), "text/html; charset=utf-8")


@pytest.mark.parametrize("path", ["js/missing.js", "css/nope.css", "favicon.ico", "img/logo.png"])
def test_missing_assets_are_not_replaced_by_html(path: str) -> None:
    assert lookup(path) is None


@pytest.mark.parametrize(
    "path",
    [
        "../__init__.py",
        "js/../../assets.py",
        "%2e%2e/assets.py",
        "..",
        "a/../../x",
        "js\\..\\..\\assets.py",
        "x\x00y",
    ],
)
def test_traversal_is_refused(path: str) -> None:
    assert lookup(path) is None


def test_query_and_fragment_are_ignored() -> None:
    found = lookup("js/main.js?v=1")
    assert found is not None and found[1].startswith("text/javascript")


def test_every_module_import_resolves() -> None:
    """Each relative import in the shipped JS names a shipped file (no build step, no CDN)."""
    static = resources.files("muster.ui").joinpath("static")
    pending = ["js/main.js"]
    seen: set[str] = set()
    import_re = re.compile(r"""(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']""")
    while pending:
        rel = pending.pop()
        if rel in seen:
            continue
        seen.add(rel)
        found = lookup(rel)
        assert found is not None, f"{rel} is imported but not shipped"
        text = found[0].decode()
        for spec in import_re.findall(text):
            assert spec.startswith("."), (
                f"{rel} imports non-relative module {spec!r} (would need a network fetch)"
            )
            base = rel.rsplit("/", 1)[0]
            parts: list[str] = []
            for part in f"{base}/{spec}".split("/"):
                if part == "..":
                    parts.pop()
                elif part not in ("", "."):
                    parts.append(part)
            pending.append("/".join(parts))
    assert "js/pages/kv.js" in seen and "vendor/js-yaml.mjs" in seen
    assert static.joinpath("index.html").is_file()


EXTERNAL_REFS = [
    re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//"""),
    re.compile(r"""url\(\s*["']?(?:https?:)?//"""),
    re.compile(r"""(?:from|import)\s*\(?\s*["'](?:https?:)?//"""),
    re.compile(r"""@import\s"""),
    re.compile(r"""fetch\(\s*["'](?:https?:)?//"""),
]


def test_no_external_urls_in_assets() -> None:
    """No CDN, web font or other network fetch at run time."""
    static = resources.files("muster.ui").joinpath("static")
    offenders = []
    stack = [static]
    while stack:
        node = stack.pop()
        for child in node.iterdir():
            if child.is_dir():
                stack.append(child)
            elif child.name.endswith((".html", ".js", ".mjs", ".css")):
                text = child.read_text(encoding="utf-8")
                for pattern in EXTERNAL_REFS:
                    offenders += [f"{child.name}: {m.group(0)[:80]}" for m in pattern.finditer(text)]
    assert offenders == []
