"""Connect CA table: the built-in CA's configuration and its roots (``/v1/connect/ca/*``).

``config`` is the CA configuration as ``/v1/connect/ca/configuration`` shows it (``Provider``,
``Config``, ``ClusterID``, ``State``, ``ForceWithoutCrossSigning``, ``CreateIndex``,
``ModifyIndex``).  ``roots`` holds every root still trusted, newest last; exactly one is
``Active``.  A root's private key is stored with it (``PrivateKey``, never rendered): every
server must be able to sign leaf certificates after a leader change, as Consul's built-in
provider keeps its key in the replicated provider state.

``set(tx, config, roots, cas_roots)`` replaces both; ``cas_roots`` >= 0 applies only if the
roots index still equals it (0: only while there are no roots, which makes the first
initialisation idempotent when two leaders race).  Indexes: ``connect-ca-config`` and
``connect-ca-roots`` (the leaf-certificate blocking query waits on the latter: a rotation
wakes it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tables import Tables
    from .watch import WatchSet
    from .write import WriteTxn

CONFIG = "connect-ca-config"
ROOTS = "connect-ca-roots"


class ConnectCATable:
    def __init__(self, tables: Tables) -> None:
        self._t = tables
        self.config: dict[str, Any] = {}
        self.roots: list[dict[str, Any]] = []

    def set(self, tx: WriteTxn, config: dict[str, Any], roots: list[dict[str, Any]], cas_roots: int = -1) -> bool:
        if cas_roots >= 0 and self._t.index(ROOTS) != cas_roots:
            return False
        if cas_roots == 0 and self.roots:
            return False
        old_config, old_roots = self.config, self.roots

        def back() -> None:
            self.config, self.roots = old_config, old_roots

        tx.record(back)
        new_config = dict(config)
        new_config["CreateIndex"] = old_config.get("CreateIndex", tx.index)
        new_config["ModifyIndex"] = tx.index
        self.config = new_config
        self.roots = [dict(r) for r in roots]
        for r in self.roots:
            r.setdefault("CreateIndex", tx.index)
            r["ModifyIndex"] = r.get("ModifyIndex") or tx.index
        tx.bump(CONFIG)
        tx.bump(ROOTS)
        return True

    def read_roots(self, ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
        self._t.watches.table(ws, ROOTS)
        return self._t.index(ROOTS), self.roots

    def read_config(self, ws: WatchSet | None) -> tuple[int, dict[str, Any]]:
        self._t.watches.table(ws, CONFIG)
        return self._t.index(CONFIG), self.config

    def active_root(self) -> dict[str, Any] | None:
        return next((r for r in self.roots if r.get("Active")), None)
