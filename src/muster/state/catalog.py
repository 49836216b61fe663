"""Catalog table: nodes, service instances and health checks (Consul's ``state/catalog.go``).

Rows are typed (``rows.Node``, ``rows.Service``, ``rows.Check``).  Commands carry Consul-shaped
dicts (the HTTP layer and the agent normalise requests into canonical form first); each write
converts its dict into a row (``to_row``: a malformed one is refused with ``StateError``) and
compares it with the stored row ignoring Create/ModifyIndex, so an identical re-registration
changes nothing.  A row is replaced, never mutated in place: readers that already hold one see
a consistent object.

Indexes: ``nodes``, ``services``, ``checks`` per table, and ``svc:<name>`` per service name,
bumped whenever anything a ``/v1/health/service/<name>`` answer contains changes (an instance,
its checks, the node-level checks or the node record of a node that hosts it).

A check turning critical, or disappearing, invalidates the sessions bound to it (see
``sessions.py``); that happens inside the same transaction, at the same index, on every replica.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from ..errors import StateError
from .rows import Check, Node, Service
from .watch import WatchSet

if TYPE_CHECKING:
    from .tables import Tables
    from .write import WriteTxn

R = TypeVar("R", bound=msgspec.Struct)


def to_row(fields: dict[str, Any], cls: type[R], what: str) -> R:
    """A typed row from a command's dict (Consul field names); a malformed one is refused."""
    try:
        return msgspec.convert(fields, cls)
    except msgspec.ValidationError as err:
        raise StateError(f"invalid {what}: {err}") from None


def service_row(fields: dict[str, Any]) -> Service:
    """A ``Service`` row from a NodeService dict.  A ``null`` member means the member's zero
    value, as Go's JSON decoding reads it (``"Weights": null``: the 1/1 default)."""
    if None in fields.values():
        fields = {k: v for k, v in fields.items() if v is not None}
    return to_row(fields, Service, "service")


def same_row(new: msgspec.Struct, old: msgspec.Struct) -> bool:
    """Equal ignoring Create/ModifyIndex: an identical re-registration changes nothing."""
    return msgspec.structs.replace(new, create_index=old.create_index, modify_index=old.modify_index) == old  # type: ignore[attr-defined]


#: Watch-only names (no index, never in a snapshot) that fire on every change about one node or
#: one service name, keyed by the lowercase name, so that a follower of a name that does not
#: exist yet (in any case) is woken when it appears.  ``NODE_WATCH + <node>``: the node's row,
#: services or checks changed (or it was added or removed).  ``SERVICE_WATCH + <service>``:
#: whatever bumps ``svc:<service>`` (an instance, its node, its checks or the node's checks),
#: plus any change of a Connect proxy whose destination is the service.  A client's catalog
#: cache waits on these instead of the whole tables (``server/remote.py``
#: ``ClientEndpoints.rpc_catalog_mirror``): a write about nodes and services it does not follow
#: wakes none of the many clients' queries, as Consul's blocking queries watch only the radix
#: nodes they read.
NODE_WATCH = "watch:node:"
SERVICE_WATCH = "watch:svc:"


def _bump_service(tx: WriteTxn, name: str) -> None:
    tx.bump("svc:" + name)
    tx.fire(SERVICE_WATCH + name.lower())


def _fire_destination(tx: WriteTxn, svc: Service) -> None:
    """A Connect proxy's change also concerns who follows its destination service."""
    if svc.kind == "connect-proxy":
        dest = svc.proxy.get("DestinationServiceName")
        if dest:
            tx.fire(SERVICE_WATCH + str(dest).lower())


class CatalogTable:
    def __init__(self, tables: Tables) -> None:
        self._t = tables
        self.nodes: dict[str, Node] = {}
        self.services: dict[str, dict[str, Service]] = {}  # node -> service id -> NodeService
        self.checks: dict[str, dict[str, Check]] = {}  # node -> check id -> HealthCheck
        self.service_instances: dict[str, set[tuple[str, str]]] = {}  # name -> {(node, id)}
        #: name -> (its ``svc:<name>`` index, the union of its instances' tags).  A derived
        #: cache, not state: every change to an instance of ``name`` bumps ``svc:<name>`` (a
        #: rolled-back one restores it), so an entry whose index matches is current.
        self._tags: dict[str, tuple[int, list[str]]] = {}

    # ------------------------------------------------------------------ helpers

    def _node_service_names(self, node: str) -> set[str]:
        return {s.service for s in self.services.get(node, {}).values()}

    @staticmethod
    def _bump_services(tx: WriteTxn, names: set[str] | list[str]) -> None:
        for n in names:
            _bump_service(tx, n)

    # ------------------------------------------------------------------ writes

    def ensure_node(self, tx: WriteTxn, fields: dict[str, Any]) -> None:
        node = to_row(fields, Node, "node")
        name = node.node
        old = self.nodes.get(name)
        if old is not None and same_row(node, old):
            return
        idx = tx.index
        rec = msgspec.structs.replace(node, create_index=old.create_index if old else idx, modify_index=idx)
        tx.put(self.nodes, name, rec)
        tx.bump("nodes")
        tx.fire(NODE_WATCH + name.lower())
        self._bump_services(tx, self._node_service_names(name))

    def ensure_service(self, tx: WriteTxn, node: str, fields: dict[str, Any]) -> None:
        if node not in self.nodes:
            raise StateError("Missing node registration")
        svc = service_row(fields)
        sid = svc.id
        per_node = self.services.get(node)
        old = per_node.get(sid) if per_node else None
        if old is not None and same_row(svc, old):
            return
        idx = tx.index
        rec = msgspec.structs.replace(svc, create_index=old.create_index if old else idx, modify_index=idx)
        name = rec.service
        if per_node is None:
            per_node = {}
            tx.put(self.services, node, per_node)
        tx.put(per_node, sid, rec)
        if old is not None and old.service != name:
            tx.discard_member(self.service_instances, old.service, (node, sid))
            _bump_service(tx, old.service)
        tx.add_member(self.service_instances, name, (node, sid))
        tx.bump("services")
        tx.fire(NODE_WATCH + node.lower())
        _fire_destination(tx, rec)
        if old is not None:
            _fire_destination(tx, old)
        _bump_service(tx, name)
        # Checks of this service carry its name and tags: keep them in step.
        for cid, chk in list(self.checks.get(node, {}).items()):
            if chk.service_id == sid and (chk.service_name != name or chk.service_tags != rec.tags):
                new = msgspec.structs.replace(chk, service_name=name, service_tags=list(rec.tags), modify_index=idx)
                tx.put(self.checks[node], cid, new)
                tx.bump("checks")

    def ensure_check(self, tx: WriteTxn, fields: dict[str, Any], ts: float) -> None:
        chk = to_row(fields, Check, "check")
        node = chk.node
        if node not in self.nodes:
            raise StateError("Missing node registration")
        sid = chk.service_id
        if sid:
            svc = self.services.get(node, {}).get(sid)
            if svc is None:
                raise StateError(f"Missing service registration for check '{chk.check_id}'")
            chk = msgspec.structs.replace(chk, service_name=svc.service, service_tags=list(svc.tags))
        per_node = self.checks.get(node)
        old = per_node.get(chk.check_id) if per_node else None
        if old is not None and same_row(chk, old):
            return
        idx = tx.index
        rec = msgspec.structs.replace(chk, create_index=old.create_index if old else idx, modify_index=idx)
        if per_node is None:
            per_node = {}
            tx.put(self.checks, node, per_node)
        tx.put(per_node, rec.check_id, rec)
        tx.bump("checks")
        tx.fire(NODE_WATCH + node.lower())
        if sid:
            _bump_service(tx, rec.service_name)
        else:
            self._bump_services(tx, self._node_service_names(node))
        if rec.status == "critical" and (old is None or old.status != "critical"):
            self._t.sessions.invalidate_check(tx, node, rec.check_id, ts)

    def ensure_registration(
        self,
        tx: WriteTxn,
        node: dict[str, Any],
        service: dict[str, Any] | None,
        checks: list[dict[str, Any]],
        skip_node_update: bool,
        ts: float,
    ) -> None:
        """Node, then service, then checks, as Consul's ``EnsureRegistration``."""
        name = node["Node"]
        if not (skip_node_update and name in self.nodes):
            self.ensure_node(tx, node)
        if service is not None:
            self.ensure_service(tx, name, service)
        for chk in checks:
            self.ensure_check(tx, chk, ts)

    def delete_check(self, tx: WriteTxn, node: str, check_id: str, ts: float) -> None:
        per_node = self.checks.get(node)
        if not per_node or check_id not in per_node:
            return
        chk = per_node[check_id]
        tx.pop(per_node, check_id)
        tx.bump("checks")
        tx.fire(NODE_WATCH + node.lower())
        if chk.service_id:
            _bump_service(tx, chk.service_name)
        else:
            self._bump_services(tx, self._node_service_names(node))
        self._t.sessions.invalidate_check(tx, node, check_id, ts)

    def delete_service(self, tx: WriteTxn, node: str, service_id: str, ts: float) -> None:
        per_node = self.services.get(node)
        if not per_node or service_id not in per_node:
            return
        svc = per_node[service_id]
        for cid, chk in list(self.checks.get(node, {}).items()):
            if chk.service_id == service_id:
                self.delete_check(tx, node, cid, ts)
        tx.pop(per_node, service_id)
        tx.discard_member(self.service_instances, svc.service, (node, service_id))
        tx.bump("services")
        tx.fire(NODE_WATCH + node.lower())
        _fire_destination(tx, svc)
        _bump_service(tx, svc.service)

    def delete_node(self, tx: WriteTxn, node: str, ts: float) -> None:
        if node not in self.nodes:
            return
        for sid in list(self.services.get(node, {})):
            self.delete_service(tx, node, sid, ts)
        for cid in list(self.checks.get(node, {})):
            self.delete_check(tx, node, cid, ts)
        self._t.sessions.invalidate_node(tx, node, ts)
        self._t.coordinates.delete_node(tx, node)
        tx.pop(self.services, node)
        tx.pop(self.checks, node)
        tx.pop(self.nodes, node)
        tx.bump("nodes")
        tx.fire(NODE_WATCH + node.lower())

    def deregister(self, tx: WriteTxn, node: str, service_id: str, check_id: str, ts: float) -> None:
        if service_id:
            self.delete_service(tx, node, service_id, ts)
        if check_id:
            self.delete_check(tx, node, check_id, ts)
        if not service_id and not check_id:
            self.delete_node(tx, node, ts)

    # ------------------------------------------------------------------ reads

    def catalog_index(self) -> int:
        return self._t.index("nodes", "services", "checks")

    def list_nodes(self, ws: WatchSet | None) -> tuple[int, list[Node]]:
        self._t.watches.table(ws, "nodes")
        return self._t.index("nodes"), [self.nodes[n] for n in sorted(self.nodes)]

    def get_node(self, ws: WatchSet | None, name: str) -> tuple[int, Node | None]:
        w = self._t.watches
        w.table(ws, "nodes")
        w.table(ws, "services")
        return self._t.index("nodes", "services"), self.nodes.get(name)

    def node_services(self, ws: WatchSet | None, name: str) -> tuple[int, Node | None, list[Service]]:
        w = self._t.watches
        w.table(ws, "nodes")
        w.table(ws, "services")
        node = self.nodes.get(name)
        per = self.services.get(name, {})
        return self._t.index("nodes", "services"), node, [per[s] for s in sorted(per)]

    def list_services(self, ws: WatchSet | None) -> tuple[int, dict[str, list[tuple[str, Service]]]]:
        """Service name -> [(node, NodeService)] for every instance."""
        self._t.watches.table(ws, "services")
        out: dict[str, list[tuple[str, Service]]] = {}
        for node, per in self.services.items():
            for svc in per.values():
                out.setdefault(svc.service, []).append((node, svc))
        return self._t.index("services"), out

    def service_names(self, ws: WatchSet | None) -> tuple[int, list[str]]:
        """Every service name with at least one instance, sorted (``/v1/catalog/services``)."""
        self._t.watches.table(ws, "services")
        return self._t.index("services"), sorted(self.service_instances)

    def service_tags(self, name: str) -> list[str]:
        """The tags of every instance of ``name``, each once, in the order they first appear
        going through the instances by (node, service id).  Cost: one dict probe while nothing
        about ``name`` changed, so ``/v1/catalog/services`` is O(service names), not
        O(instances).  The list is shared: callers must not change it."""
        idx = self._t.indexes.get("svc:" + name, 0)
        hit = self._tags.get(name)
        if hit is not None and hit[0] == idx:
            return hit[1]
        tags: list[str] = []
        seen: set[str] = set()
        services = self.services
        for node, sid in sorted(self.service_instances.get(name, ())):
            for t in services[node][sid].tags:
                if t not in seen:
                    seen.add(t)
                    tags.append(t)
        self._tags[name] = (idx, tags)
        return tags

    def service_index(self, name: str) -> int:
        return self._t.indexes.get("svc:" + name) or self._t.index("services")

    def service_instances_of(self, ws: WatchSet | None, name: str) -> tuple[int, list[tuple[Node, Service]]]:
        """[(node record, NodeService)] sorted by node name then service id."""
        self._t.watches.table(ws, "svc:" + name)
        pairs = sorted(self.service_instances.get(name, ()))
        out = []
        for node, sid in pairs:
            out.append((self.nodes[node], self.services[node][sid]))
        return self.service_index(name), out

    def checks_for_instance(self, node: str, service_id: str) -> list[Check]:
        """Node-level checks then this instance's checks, each group sorted by check id."""
        per = self.checks.get(node, {})
        node_checks = [per[c] for c in sorted(per) if not per[c].service_id]
        svc_checks = [per[c] for c in sorted(per) if per[c].service_id == service_id]
        return node_checks + svc_checks

    def node_checks(self, ws: WatchSet | None, node: str) -> tuple[int, list[Check]]:
        self._t.watches.table(ws, "checks")
        per = self.checks.get(node, {})
        return self._t.index("checks"), [per[c] for c in sorted(per)]

    def all_checks(self, ws: WatchSet | None) -> tuple[int, list[Check]]:
        self._t.watches.table(ws, "checks")
        out: list[Check] = []
        for node in sorted(self.checks):
            per = self.checks[node]
            out.extend(per[c] for c in sorted(per))
        return self._t.index("checks"), out

    def service_checks(self, ws: WatchSet | None, name: str) -> tuple[int, list[Check]]:
        self._t.watches.table(ws, "svc:" + name)
        out: list[Check] = []
        for node, sid in sorted(self.service_instances.get(name, ())):
            per = self.checks.get(node, {})
            out.extend(per[c] for c in sorted(per) if per[c].service_id == sid)
        return self.service_index(name), out
