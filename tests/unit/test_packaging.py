"""What ships and how the package hangs together.

* The ``muster`` wheel holds the product only: the test kit (simulators, the linearizability
  checker, netns pods; ``tests/support/muster_testkit``) and the tests never go into it.  The
  wheel is built for real (``pip wheel --no-deps``) and its file list inspected.
* No module of ``muster`` imports the test kit or a test-only library.
* The import graph of ``muster`` has no cycle, counting imports inside functions too (a cycle
  hidden in a function body, like the one ``dns/answers.py`` once had with ``dns/wire.py`` for a
  test helper, is still a cycle for a reader).  Imports under ``if TYPE_CHECKING:`` are left
  out: they only name types for annotations and never run.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
TEST_ONLY = ("muster_testkit", "pytest", "hypothesis", "httpx", "playwright", "tests")


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is_package) for every module under src/."""
    out: dict[str, tuple[Path, bool]] = {}
    for p in SRC.rglob("*.py"):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (p, is_pkg)
    return out


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (annotation-only
    imports never run, so a type hint naming an upper module is not an upward import)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def _imports(name: str, path: Path, is_pkg: bool) -> set[str]:
    """Every module name ``path`` imports at run time (module level and inside functions),
    resolved to absolute names; ``from x import y`` yields both ``x`` and ``x.y``."""
    pkg = name if is_pkg else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, todo = work[-1]
            if todo:
                w = todo.pop()
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, sorted(graph[w])))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp: list[str] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))
    return comps


def test_cycle_finder_finds_a_function_level_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_type_checking_imports_are_not_runtime_imports(tmp_path: Path) -> None:
    mod = tmp_path / "m.py"
    mod.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .up import T\nelse:\n    import side\n"
        "def f():\n    from . import wire\n"
    )
    assert _imports("pkg.m", mod, False) == {"typing", "typing.TYPE_CHECKING", "side", "pkg", "pkg.wire"}


def test_muster_import_graph_has_no_cycle() -> None:
    mods = _modules()
    graph = {
        name: {d for d in _imports(name, path, is_pkg) if d in mods and d != name}
        for name, (path, is_pkg) in mods.items()
    }
    assert _cycles(graph) == []


def test_muster_never_imports_test_support() -> None:
    bad = []
    for name, (path, is_pkg) in sorted(_modules().items()):
        for dep in _imports(name, path, is_pkg):
            if dep.split(".")[0] in TEST_ONLY:
                bad.append(f"{name} imports {dep}")
    assert bad == []


def test_no_test_support_left_under_src() -> None:
    names = {p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")}
    assert not [n for n in names if n.startswith("muster/testing/") or n.endswith("/sim.py")]


def _build_backend_available() -> bool:
    return importlib.util.find_spec("hatchling") is not None


def test_wheel_contains_no_test_support(tmp_path: Path) -> None:
    """Build the wheel as a user would get it and list what is inside."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)]
    if _build_backend_available():
        cmd.insert(4, "--no-build-isolation")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    if proc.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}")
    wheels = list(tmp_path.glob("muster-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as zf:
        files = zf.namelist()
    top = {f.split("/")[0] for f in files}
    # The product is there (so an empty or mis-rooted wheel fails here too) ...
    assert "muster/__init__.py" in files
    assert "muster/raft/core.py" in files
    assert "muster/gossip/core.py" in files
    # ... and nothing else: one package plus its metadata.
    assert top == {"muster", wheels[0].name.split("-")[0] + "-" + wheels[0].name.split("-")[1] + ".dist-info"}
    leaked = [
        f for f in files
        if f.startswith(("muster/testing/", "muster_testkit/", "tests/"))
        or f.endswith(("/sim.py", "/simnode.py", "linearizability.py", "k8ssim.py", "conftest.py"))
        or "/test_" in f
    ]
    assert leaked == []
