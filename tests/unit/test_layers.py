"""The shape of the outer layer, checked: imports point down, handlers reach the agent's parts
through typed ``Services`` fields, and only ``server/`` reads the Raft core.

The import test parses every module of ``src/muster`` (function-level imports included) and
collapses each import to its top-level unit (``muster.http``, ``muster.server``...).  A unit may
import only units of a strictly lower layer.  A new top-level package or module must be given a
layer in ``LAYERS`` below: pick the lowest layer above everything it imports.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "muster"

#: Lower number = lower layer.  A unit may import from strictly lower layers only.
LAYERS: dict[str, int] = {
    # leaves: no muster imports
    "muster.__version__": 0,
    "muster.version": 0,
    "muster.errors": 0,
    "muster.runtime": 0,
    "muster.telemetry": 0,
    "muster.tls": 0,
    "muster.goparse": 0,
    "muster.eventloop": 0,
    "muster.durations": 1,
    "muster.coordinate": 1,
    "muster.logging_setup": 1,
    "muster.acl": 1,
    "muster.connect": 1,
    "muster.filter": 2,
    "muster.structs": 2,
    "muster.api": 2,
    "muster.config": 2,
    # cores: sans-IO state, Raft, gossip
    "muster.state": 3,
    "muster.raft": 3,
    "muster.gossip": 3,
    "muster.fsm": 4,
    "muster.events": 4,
    # the server (log, cluster, operator, ACL service) and what runs on top of it
    "muster.server": 5,
    "muster.agent": 6,
    "muster.membership": 6,
    "muster.services": 7,
    "muster.query": 7,
    # edges: HTTP, DNS, UI
    "muster.http": 8,
    "muster.dns": 8,
    "muster.ui": 8,
    # the process root and the command line
    "muster.process": 9,
    "muster.cli": 10,
    "muster.__main__": 11,
}


def _unit(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _module_name(path: Path) -> tuple[str, str]:
    """(module, package it resolves relative imports against)."""
    rel = path.relative_to(SRC.parent).with_suffix("")
    mod = ".".join(rel.parts)
    if path.name == "__init__.py":
        mod = mod.rsplit(".", 1)[0]
        return mod, mod
    return mod, mod.rsplit(".", 1)[0]


def _imports(path: Path) -> set[str]:
    """Every muster module ``path`` imports (module level or inside functions)."""
    mod, pkg = _module_name(path)
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = pkg.split(".")
                base = parts[: len(parts) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "muster":
                out.update(f"muster.{a.name}" for a in node.names)
            elif target.startswith("muster."):
                out.add(target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("muster."))
    return out


def test_imports_point_down() -> None:
    unknown: set[str] = set()
    upward: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        mod, _pkg = _module_name(path)
        here = _unit(mod)
        if here == "muster":
            continue  # the package's own __init__
        if here not in LAYERS:
            unknown.add(here)
            continue
        for target in sorted(_imports(path)):
            there = _unit(target)
            if there == here:
                continue
            if there not in LAYERS:
                unknown.add(there)
            elif LAYERS[there] >= LAYERS[here]:
                upward.append(f"{mod} (layer {LAYERS[here]}) imports {target} (layer {LAYERS[there]})")
    assert not unknown, f"give these units a layer in tests/unit/test_layers.py LAYERS: {sorted(unknown)}"
    assert not upward, "imports must point down:\n" + "\n".join(upward)


def test_layer_test_sees_real_imports() -> None:
    """Guard against a vacuous pass: the parser finds known edges of each kind."""
    assert "muster.services" in _imports(SRC / "http" / "common.py")  # relative, from a subpackage
    assert "muster.server.operator" in _imports(SRC / "services.py")  # relative, top level
    assert any(t.startswith("muster.ui") for t in _imports(SRC / "process.py"))  # inside a function


# What handlers and the process root must not do: look parts up by string, read the Raft core,
# or ask a log what it is.
_FORBIDDEN = {
    "string-keyed service lookup": re.compile(r"\bctx\.extra\b|\.extra\[\"|\bextra\.get\(\""),
    "Raft core access": re.compile(
        r"\.core\.(voters|learners|prs|committed|lead|term|log)\b|\blast_heard\b|\.replicated\b|\._?rpc_(remove_peer|join|status|apply|read_index|transfer_leader)\b"
    ),
    "log type test": re.compile(r"(hasattr|isinstance)\([^)\n]*\blog\b|isinstance\([^)\n]*(ReplicatedLog|DevLog|ClusterLog|FormingLog)"),
}
#: Code outside ``server/`` (and the Raft and gossip cores) that serves or drives the agent.
_OUTER = ["http", "dns", "agent", "ui", "cli", "process.py", "services.py", "membership.py", "events.py"]


def test_outer_layer_neither_looks_up_by_string_nor_reads_the_raft_core() -> None:
    found: list[str] = []
    files: list[Path] = []
    for name in _OUTER:
        p = SRC / name
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p] if p.exists() else []
    assert len(files) > 20
    for path in files:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for what, rx in _FORBIDDEN.items():
                if rx.search(line):
                    found.append(f"{path.relative_to(SRC)}:{lineno}: {what}: {line.strip()}")
    assert not found, "\n".join(found)


def test_forbidden_patterns_match_what_they_forbid() -> None:
    samples = {
        "string-keyed service lookup": 'c = ctx.extra.get("cluster")',
        "Raft core access": "for v in lg.core.voters:",
        "log type test": 'fast = hasattr(server.log, "propose_sync")',
    }
    for what, line in samples.items():
        assert _FORBIDDEN[what].search(line), what


def test_handlers_get_typed_services() -> None:
    from muster.http.common import Ctx
    from muster.services import Services

    assert "extra" not in {f.name for f in dataclasses.fields(Ctx)}
    hints = {f.name: str(f.type) for f in dataclasses.fields(Services)}
    assert {"server", "agent", "events", "operator", "lifecycle", "membership"} <= set(hints)
    assert not [n for n, t in hints.items() if "Any" in t], hints
    assert Ctx.agent.fget.__annotations__["return"] == "Agent"  # type: ignore[attr-defined]
