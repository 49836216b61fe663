"""Every document a comment or doc cites exists in the repository.

Code and docs explain themselves by pointing at rules written down elsewhere; a pointer to a
document that is not in the repository (an old design note, a file on someone's disk) leaves
the reader with nothing.  So, over the sources (``src/``, ``tests/``, ``bench/``), the docs
(``docs/``, ``README.md``, ``BENCHMARKS.md``) and the test data:

* a path ending in ``.md`` must name a file of the repository (bare names are looked up next
  to the citing file, at the root and in ``docs/``); an ``#anchor`` must be a heading of it;
* a markdown link inside ``docs/`` must resolve the same way;
* "contract §..." and "the contract" (the compatibility rules now live in ``docs/compat/``)
  are not allowed, and a bare ``§`` must name its source (the Raft paper or thesis, Lifeguard,
  an RFC, or a ``docs/`` page) just before it;
* "pitfall Pn" must be a pitfall ``docs/compat/raft.md`` defines, in a file that cites that page.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RAFT_PAGE = "docs/compat/raft.md"


def _scanned_files() -> list[Path]:
    files: list[Path] = []
    for top, pattern in (
        ("src", "*.py"),
        ("tests", "*.py"),
        ("tests", "*.txt"),
        ("bench", "*.py"),
        ("docs", "*.md"),
        ("scripts", "*"),
    ):
        base = REPO / top
        if base.is_dir():
            files += [p for p in base.rglob(pattern) if p.is_file() and "__pycache__" not in p.parts]
    files += [REPO / n for n in ("README.md", "BENCHMARKS.md", "Makefile") if (REPO / n).is_file()]
    # This file's own examples are broken on purpose.
    return sorted(set(files) - {Path(__file__).resolve()})


def slug(heading: str) -> str:
    """GitHub's anchor for a markdown heading: lower case, punctuation dropped, spaces to '-'."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    out: set[str] = set()
    in_code = False
    for line in md.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"#{1,6}\s+(.*)", line)):
            out.add(slug(m.group(1)))
    return out


# A path or bare file name ending in .md, optionally with an anchor; not part of a URL.
MD_REF = re.compile(r"(?<![\w/.:-])((?:[\w.-]+/)*[\w.-]+\.md)(#[\w-]+)?(?![\w])")
MD_LINK = re.compile(r"\]\(([^)\s]+?\.md)(#[\w-]+)?\)")
SECTION = re.compile(r"§")
SOURCE_BEFORE = re.compile(r"(Raft|thesis|Lifeguard|RFC|paper|docs/[\w/.-]+\.md[#\w-]*)", re.IGNORECASE)
PITFALL = re.compile(r"pitfalls?\s+((?:P\d+)(?:(?:,\s*|\s+and\s+|\s*/\s*)P\d+)*)", re.IGNORECASE)
CONTRACT = re.compile(r"contract\s*§|\b(?:the|compatibility)\s+contract\b(?!\s+tests?)", re.IGNORECASE)


def _resolve(ref: str, citing: Path) -> Path | None:
    candidates = [citing.parent / ref, REPO / ref]
    if "/" not in ref:
        candidates.append(REPO / "docs" / ref)
    for c in candidates:
        if c.is_file():
            return c
    return None


def problems_in(path: Path, text: str) -> list[str]:
    """Every broken reference in one file's text (``path`` is where the text lives)."""
    rel = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    out: list[str] = []

    def where(pos: int) -> str:
        return f"{rel}:{text.count(chr(10), 0, pos) + 1}"

    refs = [(m.start(), m.group(1), m.group(2)) for m in MD_REF.finditer(text)]
    if path.suffix == ".md":
        refs += [(m.start(), m.group(1), m.group(2)) for m in MD_LINK.finditer(text) if "://" not in m.group(1)]
    for pos, ref, anchor in refs:
        target = _resolve(ref, path)
        if target is None:
            out.append(f"{where(pos)}: cites {ref}, which is not in the repository")
        elif anchor and anchor[1:] not in anchors(target):
            out.append(f"{where(pos)}: cites {ref}{anchor}, but {ref} has no such heading")
    for m in CONTRACT.finditer(text):
        out.append(f"{where(m.start())}: cites {m.group(0)!r}; cite a docs/compat page instead")
    for m in SECTION.finditer(text):
        before = text[max(0, m.start() - 120) : m.start()]
        if not SOURCE_BEFORE.search(before):
            out.append(f"{where(m.start())}: a bare § with no source named before it")
    pitfalls = [(m.start(), n) for m in PITFALL.finditer(text) for n in re.findall(r"P\d+", m.group(1))]
    if pitfalls:
        defined = {a.split("-")[0].upper() for a in anchors(REPO / RAFT_PAGE)} if (REPO / RAFT_PAGE).is_file() else set()
        cites_page = RAFT_PAGE in text or (path.name == "raft.md" and path.parent.name == "compat")
        for pos, n in pitfalls:
            if not cites_page:
                out.append(f"{where(pos)}: pitfall {n} cited without pointing at {RAFT_PAGE}")
            elif n.upper() not in defined:
                out.append(f"{where(pos)}: pitfall {n} is not defined in {RAFT_PAGE}")
    return out


def test_every_cited_document_exists() -> None:
    found: list[str] = []
    for path in _scanned_files():
        found += problems_in(path, path.read_text(encoding="utf-8", errors="replace"))
    assert found == [], "\n".join(found)


def test_compat_index_lists_every_page() -> None:
    index = (REPO / "docs/compat/README.md").read_text(encoding="utf-8")
    pages = {p.name for p in (REPO / "docs/compat").glob("*.md")} - {"README.md"}
    assert pages and all(f"({name})" in index for name in pages), sorted(pages)


@pytest.mark.parametrize(
    "text, complaint",
    [
        ("# see consul-api.md §2.1\n", "consul-api.md, which is not in the repository"),
        ("# see docs/reliability.md\n", "docs/reliability.md, which is not in the repository"),
        ("# see docs/compat/kv.md#no-such-heading\n", "has no such heading"),
        ('"""Blocking queries (contract §1.6)."""\n', "'contract §'"),
        ("# as the contract asks\n", "'the contract'"),
        ("# (§2.5, §9 #12)\n", "a bare §"),
        ("# pre-vote guards against pitfall P5\n", "without pointing at docs/compat/raft.md"),
        ("# pitfall P99, docs/compat/raft.md\n", "P99 is not defined"),
    ],
)
def test_checker_catches(text: str, complaint: str) -> None:
    found = problems_in(REPO / "src/muster/example.py", text)
    assert any(complaint in f for f in found), found


@pytest.mark.parametrize(
    "text",
    [
        "# see docs/compat/kv.md#writes and docs/compat/blocking.md\n",
        "# pre-vote (Ongaro's thesis §9.6), pitfall P5 in docs/compat/raft.md\n",
        "# Raft §5.4.2 / §8\n",
        "# pitfalls P2 and P10 (docs/compat/raft.md)\n",
        "# the Ready ordering contract (etcd's)\n",
        "# HTTP contract tests\n",
        "# https://example.com/some/page.md is a URL, not a repo path\n",
    ],
)
def test_checker_accepts(text: str) -> None:
    assert problems_in(REPO / "src/muster/example.py", text) == []
