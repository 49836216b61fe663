"""Persistence of API-registered services and checks across agent restarts (non-dev agents).

Consul writes every service and check registered through the HTTP API (and maintenance
checks) to ``<data_dir>/services`` and ``<data_dir>/checks``, and the result of TTL checks to
``<data_dir>/checks/state``, then restores them on start: a client that registered a service
does not have to notice that the agent restarted, and a TTL check that was passing a moment
ago does not flap to critical.  Config-file entries are not persisted (the files are the
source of truth).  ``-dev`` agents have no data dir and persist nothing.

Layout: one JSON file per entry, named by the SHA-256 of its ID (IDs may contain any
character).  Writes are atomic (temp file, fsync, rename), so a crash leaves either the old
or the new file, never a torn one; an unreadable file is skipped with a warning rather than
preventing the agent from starting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from .definitions import CheckDefinition

log = logging.getLogger("muster.agent.persist")

_CHECK_FIELDS = {f.name for f in dataclasses.fields(CheckDefinition)}


def _name(ident: str) -> str:
    return hashlib.sha256(ident.encode()).hexdigest()


def definition_to_json(defn: CheckDefinition | None) -> dict[str, Any] | None:
    return None if defn is None else dataclasses.asdict(defn)


def definition_from_json(d: Any) -> CheckDefinition | None:
    if not isinstance(d, dict):
        return None
    return CheckDefinition(**{k: v for k, v in d.items() if k in _CHECK_FIELDS})


class Persistence:
    def __init__(self, data_dir: str) -> None:
        root = Path(data_dir)
        self.services_dir = root / "services"
        self.checks_dir = root / "checks"
        self.state_dir = root / "checks" / "state"

    # ------------------------------------------------------------------ writes

    def _write(self, path: Path, obj: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _delete(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    def save_service(self, service: dict[str, Any], token: str, sidecar_of: str = "") -> None:
        """``sidecar_of``: the parent's ID when the agent registered this as its sidecar."""
        body: dict[str, Any] = {"Service": service, "Token": token}
        if sidecar_of:
            body["SidecarOf"] = sidecar_of
        self._write(self.services_dir / _name(service["ID"]), body)

    def delete_service(self, sid: str) -> None:
        self._delete(self.services_dir / _name(sid))

    def save_check(self, check: dict[str, Any], definition: CheckDefinition | None, token: str) -> None:
        body = {"Check": check, "Definition": definition_to_json(definition), "Token": token}
        self._write(self.checks_dir / _name(check["CheckID"]), body)

    def delete_check(self, cid: str) -> None:
        self._delete(self.checks_dir / _name(cid))
        self._delete(self.state_dir / _name(cid))

    def save_check_state(self, cid: str, status: str, output: str, expires_wall: float) -> None:
        """A TTL check's last result and when it would expire (wall seconds)."""
        self._write(self.state_dir / _name(cid), {"CheckID": cid, "Status": status, "Output": output, "Expires": expires_wall})

    # ------------------------------------------------------------------ reads

    def _load_dir(self, d: Path) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not d.is_dir():
            return out
        for p in sorted(d.iterdir()):
            if not p.is_file() or p.suffix == ".tmp":
                continue
            try:
                with open(p, encoding="utf-8") as f:
                    obj = json.load(f)
            except (OSError, ValueError) as err:
                log.warning("skipping unreadable persisted entry %s: %s", p, err)
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def load_services(self) -> list[dict[str, Any]]:
        return [o for o in self._load_dir(self.services_dir) if isinstance(o.get("Service"), dict)]

    def load_checks(self) -> list[dict[str, Any]]:
        return [o for o in self._load_dir(self.checks_dir) if isinstance(o.get("Check"), dict)]

    def load_check_state(self, cid: str) -> dict[str, Any] | None:
        p = self.state_dir / _name(cid)
        try:
            with open(p, encoding="utf-8") as f:
                obj = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.warning("skipping unreadable check state %s: %s", p, err)
            return None
        return obj if isinstance(obj, dict) and obj.get("CheckID") == cid else None
