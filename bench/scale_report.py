"""Markdown tables (one row per run, i.e. a curve over sizes) from the raw results of
``bench/scale_catalog.py`` and ``bench/scale_kv.py``.

    .venv/bin/python bench/scale_report.py bench/results/*-scale-*.jsonl
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


def _runs(paths: list[str]) -> list[dict[str, dict[str, Any]]]:
    runs = []
    for p in paths:
        phases: dict[str, dict[str, Any]] = {}
        for line in Path(p).read_text().splitlines():
            if line.strip():
                obj = json.loads(line)
                phases[obj["phase"]] = obj
        if phases:
            phases["_file"] = {"name": Path(p).name}
            runs.append(phases)
    return runs


def _mib(d: dict[str, float]) -> str:
    return f"{max(d.values()):.0f}"


def _f(v: Any, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def catalog(runs: list[dict[str, dict[str, Any]]]) -> list[str]:
    out = [
        "| instances | code | register/s | RSS max MiB | bytes/instance | health ?passing p50 / p99 ms | "
        "catalog/services p50 / p99 ms | last Raft snapshot MB | its encode s / loop held s | snapshot save s | "
        "restart s (restore s) | new server catch-up s (restore s) | file |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(runs, key=lambda r: (r["load"]["tag"], r["load"]["instances"])):
        ld, rd = r["load"], r["read"]
        snaps = r.get("raft-snapshots", {}).get("snapshots", [])
        last = snaps[-1] if snaps else None
        rs, cu, sv = r.get("restart", {}), r.get("catchup", {}), r.get("save", {})
        out.append(
            f"| {ld['instances']:,} | {ld['tag']} | {ld['registrations_per_s']:,.0f} | {_mib(r.get('rss', ld)['rss_mib'] if 'rss' in r else ld['rss_after_mib'])} "
            f"| {max(ld['rss_bytes_per_instance'].values()):,.0f} "
            f"| {rd['health']['p50_ms']:.1f} / {rd['health']['p99_ms']:.1f} "
            f"| {rd['catalog_services']['p50_ms']:.1f} / {rd['catalog_services']['p99_ms']:.1f} "
            f"| {_f(last['bytes'] / 1e6 if last else None, '.1f')} "
            f"| {_f(last['encode_s'] if last else None)} / {_f(last['loop_s'] if last else None)} "
            f"| {_f(sv.get('save_s'))} | {_f(rs.get('restart_s'))} ({_f(rs.get('restore_s'))}) "
            f"| {_f(cu.get('catch_up_s'))} ({_f(cu.get('restore_s'))}) | `{r['_file']['name']}` |"
        )
    return out


def kv(runs: list[dict[str, dict[str, Any]]]) -> list[str]:
    out = [
        "| keys | layout | code | load keys/s | RSS max MiB | bytes/key | recurse (100) p50 / p99 ms | ?keys (100) p50 / p99 ms "
        "| writers p50 / p99 / max ms | during a snapshot: writes, p99 / max ms | snapshots: MB, encode s, loop held s (max) "
        "| restart s (restore s) | catch-up s (restore s) | file |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(runs, key=lambda r: (r["load"]["tag"], r["load"]["layout"], r["load"]["keys"])):
        ld, rd = r["load"], r["read"]
        w = r.get("writers", {})
        rs, cu = r.get("restart", {}), r.get("catchup", {})
        snap = "-"
        if w.get("snapshots"):
            snap = (f"{max(w['snapshot_bytes']) / 1e6:.1f}, {max(w['snapshot_encode_s']):.2f}, "
                    f"{max(w['snapshot_loop_s']):.3f} ({w['snapshots']} snapshots)")
        out.append(
            f"| {ld['keys']:,} | {ld['layout']} | {ld['tag']} | {ld['keys_per_s']:,.0f} "
            f"| {_mib(r['rss']['rss_mib'] if 'rss' in r else ld['rss_after_mib'])} | {max(ld['rss_bytes_per_key'].values()):,.0f} "
            f"| {rd['recurse']['p50_ms']:.2f} / {rd['recurse']['p99_ms']:.2f} "
            f"| {rd['keys_list']['p50_ms']:.2f} / {rd['keys_list']['p99_ms']:.2f} "
            f"| {_f(w.get('p50_ms'), '.1f')} / {_f(w.get('p99_ms'), '.1f')} / {_f(w.get('max_ms'), '.1f')} "
            f"| {w.get('writes_during_snapshots', '-')}, {_f(w.get('during_p99_ms'), '.1f')} / {_f(w.get('during_max_ms'), '.1f')} "
            f"| {snap} | {_f(rs.get('restart_s'))} ({_f(rs.get('restore_s'))}) "
            f"| {_f(cu.get('catch_up_s'))} ({_f(cu.get('restore_s'))}) | `{r['_file']['name']}` |"
        )
    return out


def main(argv: list[str]) -> int:
    by: dict[str, list[dict[str, dict[str, Any]]]] = defaultdict(list)
    for r in _runs(argv):
        if "load" in r and "read" in r:
            by[r["load"]["bench"]].append(r)
    if by.get("scale_catalog"):
        print("\n".join(catalog(by["scale_catalog"])) + "\n")
    if by.get("scale_kv"):
        print("\n".join(kv(by["scale_kv"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
