"""A small transcript ("datadriven") test runner in the style of etcd's.

A transcript file is a sequence of stanzas::

    # comments and blank lines between stanzas are kept verbatim
    command arg key=value key=(a,b)
    ----
    expected output, one or more lines, ending at the first blank line

The handler receives a :class:`Cmd` and returns the actual output; the runner
compares it with the expectation.  Outputs must not contain blank lines (the
blank line terminates a stanza).  With ``MUSTER_REWRITE=1`` in the environment
the file is rewritten with the actual outputs instead, so an intended change
shows up as a reviewable text diff.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Cmd", "run_file"]

SEPARATOR = "----"


@dataclass
class Cmd:
    name: str
    pos: list[str] = field(default_factory=list)
    kw: dict[str, list[str]] = field(default_factory=dict)
    line: str = ""
    where: str = ""

    def get(self, key: str, default: str | None = None) -> str | None:
        vals = self.kw.get(key)
        return vals[0] if vals else default

    def int(self, key: str, default: int) -> int:
        v = self.get(key)
        return default if v is None else int(v)


def parse_line(line: str, where: str = "") -> Cmd:
    toks = line.split()
    cmd = Cmd(toks[0], line=line, where=where)
    for tok in toks[1:]:
        if "=" in tok:
            k, v = tok.split("=", 1)
            if v.startswith("(") and v.endswith(")"):
                cmd.kw[k] = [x for x in v[1:-1].split(",") if x]
            else:
                cmd.kw[k] = [v]
        else:
            cmd.pos.append(tok)
    return cmd


def run_file(path: str | Path, handler: Callable[[Cmd], str]) -> None:
    """Run every stanza of ``path`` through ``handler`` (see module docstring)."""
    path = Path(path)
    lines = path.read_text().splitlines()
    rewrite = os.environ.get("MUSTER_REWRITE") == "1"
    out: list[str] = []
    failures: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            out.append(line)
            i += 1
            continue
        where = f"{path.name}:{i + 1}"
        cmd = parse_line(line, where)
        i += 1
        if i >= len(lines) or lines[i] != SEPARATOR:
            raise ValueError(f"{where}: expected {SEPARATOR!r} after command {line!r}")
        i += 1
        expected: list[str] = []
        while i < len(lines) and lines[i].strip():
            expected.append(lines[i])
            i += 1
        actual = [x.rstrip() for x in handler(cmd).rstrip("\n").splitlines()] or ["ok"]
        if any(not x.strip() for x in actual):
            raise ValueError(f"{where}: handler output for {line!r} contains a blank line")
        out += [line, SEPARATOR, *actual]
        if actual != expected:
            diff = "\n".join(difflib.unified_diff(expected, actual, "expected", "actual", lineterm=""))
            failures.append(f"{where}: {line}\n{diff}")
    if rewrite:
        path.write_text("\n".join(out) + "\n")
        return
    if failures:
        raise AssertionError(
            f"{len(failures)} stanza(s) differ in {path} (MUSTER_REWRITE=1 to accept):\n\n"
            + "\n\n".join(failures)
        )
