#!/usr/bin/env python3
"""The disk's physical limit for a write-ahead log: fdatasync rate of 4 KiB appends.

Every acknowledged write in Muster costs at least one fdatasync on a quorum (the leader's own
and one follower's); group commit lets one fsync carry many writes. This script measures how
many fsyncs per second this disk does for the pattern the Raft log uses (append a record,
fdatasync), so the cluster figures in BENCHMARKS.md can be read as "writes per fsync" and "how
close to the disk's limit". Bounded: ``--seconds`` (default 5) per pattern, in a temp dir that
is removed at the end.

    python bench/fsync_rate.py [--seconds 5] [--dir /path/on/the/same/disk]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time


def measure(directory: str, seconds: float, size: int, preallocate: bool) -> dict[str, float]:
    """Append ``size`` bytes and fdatasync, repeatedly, for ``seconds``; latency percentiles in ms."""
    path = os.path.join(directory, f"wal-{size}-{int(preallocate)}.bin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if preallocate:
            os.posix_fallocate(fd, 0, 64 << 20)
        block = os.urandom(size)
        lat: list[float] = []
        offset = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end and offset + size <= (64 << 20):
            t0 = time.perf_counter()
            os.pwrite(fd, block, offset)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t0)
            offset += size
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    total = sum(lat)
    return {
        "size": size,
        "preallocated": preallocate,
        "fsyncs": len(lat),
        "per_second": round(len(lat) / total, 1) if total else 0.0,
        "p50_ms": round(1000 * statistics.median(lat), 3),
        "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 3),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--dir", default=None, help="directory on the disk to measure (default: a temp dir)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="fsync-rate-", dir=args.dir) as d:
        for size, prealloc in ((4096, False), (4096, True), (65536, False)):
            print(json.dumps(measure(d, args.seconds, size, prealloc)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
