"""Catalog tables: nodes, service instances and health checks (Consul's ``state/catalog.go``).

Records are Consul-shaped dicts (the HTTP layer normalises requests into canonical form first),
so reads hand them out without conversion.  A record is replaced, never mutated in place:
readers that already hold one see a consistent object.

Indexes: ``nodes``, ``services``, ``checks`` per table, and ``svc:<name>`` per service name,
bumped whenever anything a ``/v1/health/service/<name>`` answer contains changes (an instance,
its checks, the node-level checks or the node record of a node that hosts it).

A check turning critical, or disappearing, invalidates the sessions bound to it (see
``session.py``); that happens inside the same command, at the same index, on every replica.
"""

from __future__ import annotations

import abc
from typing import Any

from ..errors import StateError
from .kv import KVStore
from .watch import WatchSet

_INDEX_FIELDS = ("CreateIndex", "ModifyIndex")


def _same(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Equal ignoring Create/ModifyIndex: an identical re-registration changes nothing."""
    for k, v in new.items():
        if k not in _INDEX_FIELDS and old.get(k, _MISSING) != v:
            return False
    for k in old:
        if k not in _INDEX_FIELDS and k not in new:
            return False
    return True


_MISSING = object()


class CatalogStore(KVStore, abc.ABC):
    # ------------------------------------------------------------------ hooks

    @abc.abstractmethod
    def _invalidate_check_sessions(self, idx: int, node: str, check_id: str, ts: float) -> None:
        """Destroy the sessions bound to a check that went critical or away (``SessionStore``)."""

    @abc.abstractmethod
    def _invalidate_node_sessions(self, idx: int, node: str, ts: float) -> None:
        """Destroy the sessions of a deregistered node (``SessionStore``)."""

    # ------------------------------------------------------------------ helpers

    def _node_service_names(self, node: str) -> set[str]:
        return {s["Service"] for s in self.services.get(node, {}).values()}

    def _bump_services(self, idx: int, names: set[str] | list[str]) -> None:
        for n in names:
            self._bump("svc:" + n, idx)

    # ------------------------------------------------------------------ writes

    def ensure_node(self, idx: int, node: dict[str, Any]) -> None:
        name = node["Node"]
        old = self.nodes.get(name)
        if old is not None and _same(node, old):
            return
        rec = dict(node)
        rec["CreateIndex"] = old["CreateIndex"] if old else idx
        rec["ModifyIndex"] = idx
        self._dict_set(self.nodes, name, rec)
        self._bump("nodes", idx)
        self._bump_services(idx, self._node_service_names(name))

    def ensure_service(self, idx: int, node: str, svc: dict[str, Any]) -> None:
        if node not in self.nodes:
            raise StateError("Missing node registration")
        sid = svc["ID"]
        per_node = self.services.get(node)
        old = per_node.get(sid) if per_node else None
        if old is not None and _same(svc, old):
            return
        rec = dict(svc)
        rec["CreateIndex"] = old["CreateIndex"] if old else idx
        rec["ModifyIndex"] = idx
        if per_node is None:
            per_node = {}
            self._dict_set(self.services, node, per_node)
        self._dict_set(per_node, sid, rec)
        if old is not None and old["Service"] != rec["Service"]:
            self._set_discard(self.service_instances, old["Service"], (node, sid))
            self._bump("svc:" + old["Service"], idx)
        self._set_add(self.service_instances, rec["Service"], (node, sid))
        self._bump("services", idx)
        self._bump("svc:" + rec["Service"], idx)
        # Checks of this service carry its name and tags: keep them in step.
        for cid, chk in list(self.checks.get(node, {}).items()):
            if chk.get("ServiceID") == sid and (
                chk.get("ServiceName") != rec["Service"] or chk.get("ServiceTags") != rec["Tags"]
            ):
                new = dict(chk, ServiceName=rec["Service"], ServiceTags=list(rec["Tags"]), ModifyIndex=idx)
                self._dict_set(self.checks[node], cid, new)
                self._bump("checks", idx)

    def ensure_check(self, idx: int, chk: dict[str, Any], ts: float) -> None:
        node = chk["Node"]
        if node not in self.nodes:
            raise StateError("Missing node registration")
        sid = chk.get("ServiceID") or ""
        rec = dict(chk)
        if sid:
            svc = self.services.get(node, {}).get(sid)
            if svc is None:
                raise StateError(f"Missing service registration for check '{chk['CheckID']}'")
            rec["ServiceName"] = svc["Service"]
            rec["ServiceTags"] = list(svc["Tags"])
        per_node = self.checks.get(node)
        old = per_node.get(chk["CheckID"]) if per_node else None
        if old is not None and _same(rec, old):
            return
        rec["CreateIndex"] = old["CreateIndex"] if old else idx
        rec["ModifyIndex"] = idx
        if per_node is None:
            per_node = {}
            self._dict_set(self.checks, node, per_node)
        self._dict_set(per_node, rec["CheckID"], rec)
        self._bump("checks", idx)
        if sid:
            self._bump("svc:" + rec["ServiceName"], idx)
        else:
            self._bump_services(idx, self._node_service_names(node))
        if rec["Status"] == "critical" and (old is None or old["Status"] != "critical"):
            self._invalidate_check_sessions(idx, node, rec["CheckID"], ts)

    def ensure_registration(
        self,
        idx: int,
        node: dict[str, Any],
        service: dict[str, Any] | None,
        checks: list[dict[str, Any]],
        skip_node_update: bool,
        ts: float,
    ) -> None:
        """Node, then service, then checks, as Consul's ``EnsureRegistration``."""
        name = node["Node"]
        if not (skip_node_update and name in self.nodes):
            self.ensure_node(idx, node)
        if service is not None:
            self.ensure_service(idx, name, service)
        for chk in checks:
            self.ensure_check(idx, chk, ts)

    def delete_check(self, idx: int, node: str, check_id: str, ts: float) -> None:
        per_node = self.checks.get(node)
        if not per_node or check_id not in per_node:
            return
        chk = per_node[check_id]
        self._dict_del(per_node, check_id)
        self._bump("checks", idx)
        if chk.get("ServiceID"):
            self._bump("svc:" + chk["ServiceName"], idx)
        else:
            self._bump_services(idx, self._node_service_names(node))
        self._invalidate_check_sessions(idx, node, check_id, ts)

    def delete_service(self, idx: int, node: str, service_id: str, ts: float) -> None:
        per_node = self.services.get(node)
        if not per_node or service_id not in per_node:
            return
        svc = per_node[service_id]
        for cid, chk in list(self.checks.get(node, {}).items()):
            if chk.get("ServiceID") == service_id:
                self.delete_check(idx, node, cid, ts)
        self._dict_del(per_node, service_id)
        self._set_discard(self.service_instances, svc["Service"], (node, service_id))
        self._bump("services", idx)
        self._bump("svc:" + svc["Service"], idx)

    def delete_node(self, idx: int, node: str, ts: float) -> None:
        if node not in self.nodes:
            return
        for sid in list(self.services.get(node, {})):
            self.delete_service(idx, node, sid, ts)
        for cid in list(self.checks.get(node, {})):
            self.delete_check(idx, node, cid, ts)
        self._invalidate_node_sessions(idx, node, ts)
        self._dict_del(self.services, node)
        self._dict_del(self.checks, node)
        self._dict_del(self.nodes, node)
        self._bump("nodes", idx)

    def deregister(self, idx: int, node: str, service_id: str, check_id: str, ts: float) -> None:
        if service_id:
            self.delete_service(idx, node, service_id, ts)
        if check_id:
            self.delete_check(idx, node, check_id, ts)
        if not service_id and not check_id:
            self.delete_node(idx, node, ts)

    # ------------------------------------------------------------------ reads

    def catalog_index(self) -> int:
        return self.index("nodes", "services", "checks")

    def list_nodes(self, ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
        self.watch_table(ws, "nodes")
        return self.index("nodes"), [self.nodes[n] for n in sorted(self.nodes)]

    def get_node(self, ws: WatchSet | None, name: str) -> tuple[int, dict[str, Any] | None]:
        self.watch_table(ws, "nodes")
        self.watch_table(ws, "services")
        return self.index("nodes", "services"), self.nodes.get(name)

    def node_services(self, ws: WatchSet | None, name: str) -> tuple[int, dict[str, Any] | None, list[dict[str, Any]]]:
        self.watch_table(ws, "nodes")
        self.watch_table(ws, "services")
        node = self.nodes.get(name)
        per = self.services.get(name, {})
        return self.index("nodes", "services"), node, [per[s] for s in sorted(per)]

    def list_services(self, ws: WatchSet | None) -> tuple[int, dict[str, list[tuple[str, dict[str, Any]]]]]:
        """Service name -> [(node, NodeService)] for every instance."""
        self.watch_table(ws, "services")
        out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for node, per in self.services.items():
            for svc in per.values():
                out.setdefault(svc["Service"], []).append((node, svc))
        return self.index("services"), out

    def service_index(self, name: str) -> int:
        return self.indexes.get("svc:" + name) or self.index("services")

    def service_instances_of(self, ws: WatchSet | None, name: str) -> tuple[int, list[tuple[dict[str, Any], dict[str, Any]]]]:
        """[(node record, NodeService)] sorted by node name then service id."""
        self.watch_table(ws, "svc:" + name)
        pairs = sorted(self.service_instances.get(name, ()))
        out = []
        for node, sid in pairs:
            out.append((self.nodes[node], self.services[node][sid]))
        return self.service_index(name), out

    def checks_for_instance(self, node: str, service_id: str) -> list[dict[str, Any]]:
        """Node-level checks then this instance's checks, each group sorted by check id."""
        per = self.checks.get(node, {})
        node_checks = [per[c] for c in sorted(per) if not per[c].get("ServiceID")]
        svc_checks = [per[c] for c in sorted(per) if per[c].get("ServiceID") == service_id]
        return node_checks + svc_checks

    def node_checks(self, ws: WatchSet | None, node: str) -> tuple[int, list[dict[str, Any]]]:
        self.watch_table(ws, "checks")
        per = self.checks.get(node, {})
        return self.index("checks"), [per[c] for c in sorted(per)]

    def all_checks(self, ws: WatchSet | None) -> tuple[int, list[dict[str, Any]]]:
        self.watch_table(ws, "checks")
        out: list[dict[str, Any]] = []
        for node in sorted(self.checks):
            per = self.checks[node]
            out.extend(per[c] for c in sorted(per))
        return self.index("checks"), out

    def service_checks(self, ws: WatchSet | None, name: str) -> tuple[int, list[dict[str, Any]]]:
        self.watch_table(ws, "svc:" + name)
        out: list[dict[str, Any]] = []
        for node, sid in sorted(self.service_instances.get(name, ())):
            per = self.checks.get(node, {})
            out.extend(per[c] for c in sorted(per) if per[c].get("ServiceID") == sid)
        return self.service_index(name), out
