"""The audit log: one JSON line per write request, to one or more files rotated by size or age.

Consul's audit log is an Enterprise feature; Muster keeps its configuration shape (``audit {
enabled = true  sink "name" { type = "file"  format = "json"  path = ...  rotate_bytes = ...
rotate_duration = ...  rotate_max_files = ...  mode = ... } }``) and its event shape: an
``HTTPEvent`` payload with ``auth`` (the token's AccessorID and description), ``request``
(``operation`` = the method, ``endpoint`` = the path, ``remote_addr``, ``user_agent``,
``host``) and ``response`` (``status``).  Differences, by choice: Muster records write
requests only (PUT, POST, DELETE, PATCH), one ``OperationComplete`` line each (Consul also
writes an ``OperationStart`` line and records reads), and does not require ACLs (without them
the accessor is empty).

Invariants: a secret never reaches the file (the endpoint is the path without its query
string, where ``?token=`` would be; only the AccessorID of the token is written); a line is
written whole (one ``write`` of the encoded line, then a flush) and the active file is rotated
only between lines; a failing sink (disk full, directory removed) loses lines but never fails
or delays the request beyond the write itself; it is reported once in the agent's log.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger("muster.audit")

#: The methods whose requests are audited.
WRITE_METHODS = frozenset({"PUT", "POST", "DELETE", "PATCH"})


@dataclass(frozen=True)
class FileSinkSpec:
    """One file sink, as configured (``rotate_*`` of 0: that rotation is off)."""

    name: str
    path: str
    rotate_bytes: int = 0
    rotate_duration: float = 0.0
    rotate_max_files: int = 0  # archives kept; 0 keeps every archive
    mode: int = 0o600


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


class FileSink:
    """Appends lines to ``spec.path``; rotates it to ``<stem>-<unix nanoseconds><suffix>``
    before a line that would take it past ``rotate_bytes`` or once it is older than
    ``rotate_duration``, then keeps the newest ``rotate_max_files`` archives."""

    def __init__(self, spec: FileSinkSpec, clock: Callable[[], float] = time.time) -> None:
        self.spec = spec
        self.clock = clock
        self.path = Path(spec.path)
        self._file: IO[bytes] | None = None
        self._size = 0
        self._opened = 0.0
        self._failed = False

    def _open(self) -> IO[bytes]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self.spec.mode)
        f = os.fdopen(fd, "ab")
        self._size = f.tell()
        self._opened = self.clock()
        self._file = f
        return f

    def archives(self) -> list[Path]:
        """The rotated files of this sink, oldest first."""
        stem, suffix = self.path.stem, self.path.suffix
        found = []
        for p in self.path.parent.glob(f"{stem}-*{suffix}"):
            mid = p.name[len(stem) + 1 : len(p.name) - len(suffix)]
            if mid.isdigit():
                found.append((int(mid), p))
        return [p for _, p in sorted(found)]

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        stem, suffix = self.path.stem, self.path.suffix
        stamp = time.time_ns()
        target = self.path.with_name(f"{stem}-{stamp}{suffix}")
        while target.exists():  # two rotations within one clock tick
            stamp += 1
            target = self.path.with_name(f"{stem}-{stamp}{suffix}")
        os.replace(self.path, target)
        keep = self.spec.rotate_max_files
        if keep > 0:
            for old in self.archives()[:-keep]:
                old.unlink(missing_ok=True)

    def write(self, line: bytes) -> None:
        try:
            f = self._file if self._file is not None else self._open()
            spec = self.spec
            if self._size > 0 and (
                (spec.rotate_bytes > 0 and self._size + len(line) > spec.rotate_bytes)
                or (spec.rotate_duration > 0 and self.clock() - self._opened >= spec.rotate_duration)
            ):
                self._rotate()
                f = self._open()
            f.write(line)
            f.flush()
            self._size += len(line)
            self._failed = False
        except OSError as exc:
            if not self._failed:
                log.error("audit sink %r: cannot write %s: %s", self.spec.name, self.path, exc)
            self._failed = True
            if self._file is not None:
                try:
                    self._file.close()
                except OSError:
                    pass
                self._file = None

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                log.error("audit sink %r: cannot close %s: %s", self.spec.name, self.path, exc)
            self._file = None


class AuditLog:
    """Writes one event per audited request to every sink."""

    def __init__(self, specs: Sequence[FileSinkSpec], clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.sinks = [FileSink(s, clock) for s in specs]

    def record(
        self,
        *,
        method: str,
        endpoint: str,
        remote_addr: str,
        accessor_id: str,
        description: str,
        status: int,
        user_agent: str = "",
        host: str = "",
    ) -> None:
        """Write the ``OperationComplete`` event of one request (``endpoint``: the path only)."""
        ts = _rfc3339(self.clock())
        event = {
            "created_at": ts,
            "event_type": "audit",
            "payload": {
                "id": str(uuid.uuid4()),
                "version": "1",
                "type": "HTTPEvent",
                "timestamp": ts,
                "auth": {"accessor_id": accessor_id, "description": description},
                "request": {
                    "operation": method,
                    "endpoint": endpoint,
                    "remote_addr": remote_addr,
                    "user_agent": user_agent,
                    "host": host,
                },
                "response": {"status": str(status)},
                "stage": "OperationComplete",
            },
        }
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        for sink in self.sinks:
            sink.write(line)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
