"""Autopilot table: the one replicated autopilot configuration (``/v1/operator/autopilot``).

The record is the configuration as the HTTP layer normalised it plus ``CreateIndex`` and
``ModifyIndex``; a check-and-set write (``cas >= 0``) applies only if ``ModifyIndex`` matches.
Index: ``autopilot``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tables import Tables
    from .write import WriteTxn


class AutopilotTable:
    def __init__(self, tables: Tables) -> None:
        self._t = tables
        self.config: dict[str, Any] = {}

    def set(self, tx: WriteTxn, config: dict[str, Any], cas: int) -> bool:
        cur = self.config
        if cas >= 0 and int(cur.get("ModifyIndex", 0)) != cas:
            return False
        new = dict(config)
        new["CreateIndex"] = cur.get("CreateIndex", tx.index)
        new["ModifyIndex"] = tx.index
        old = self.config

        def back() -> None:
            self.config = old

        tx.record(back)
        self.config = new
        tx.bump("autopilot")
        return True
