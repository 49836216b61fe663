"""Rendering catalog records into Consul's response objects (docs/compat/catalog-health.md#response-objects).

Store rows are typed (``state/rows.py``: nodes, sessions) or Consul-shaped dicts that may lack
optional keys (services, checks).  These functions are the only place rows become JSON: they
produce the exact response shape, filling Consul's defaults (``Weights`` 1/1, ``[]``/``{}``
instead of null) and omitting what Consul omits.  They never mutate the row.

Also here: the read-side filters several endpoints share (``node-meta``, ``tag``), and the
aggregate-status rule clients and agent health endpoints use.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..state.rows import Check, Node
from .request import Request

DEFAULT_WEIGHTS = {"Passing": 1, "Warning": 1}
MAINT_NODE = "_node_maintenance"
MAINT_SERVICE_PREFIX = "_service_maintenance:"


def node(rec: Node) -> dict[str, Any]:
    """Node object: ``TaggedAddresses``/``Meta`` are objects, never null."""
    return {
        "ID": rec.id,
        "Node": rec.node,
        "Address": rec.address,
        "Datacenter": rec.datacenter,
        "TaggedAddresses": dict(rec.tagged_addresses),
        "Meta": dict(rec.meta),
        "CreateIndex": rec.create_index,
        "ModifyIndex": rec.modify_index,
    }


def _proxy(svc: dict[str, Any]) -> dict[str, Any]:
    p = svc.get("Proxy")
    return dict(p) if isinstance(p, dict) and p else {"Mode": "", "MeshGateway": {}, "Expose": {}}


def node_service(svc: dict[str, Any]) -> dict[str, Any]:
    """NodeService (``Service`` of a health entry, values of ``/catalog/node``)."""
    out: dict[str, Any] = {}
    if svc.get("Kind"):
        out["Kind"] = svc["Kind"]
    out["ID"] = svc["ID"]
    out["Service"] = svc["Service"]
    out["Tags"] = list(svc.get("Tags") or [])
    out["Address"] = svc.get("Address", "")
    if svc.get("TaggedAddresses"):
        out["TaggedAddresses"] = svc["TaggedAddresses"]
    out["Meta"] = dict(svc.get("Meta") or {})
    if svc.get("Port"):
        out["Port"] = svc["Port"]
    if svc.get("SocketPath"):
        out["SocketPath"] = svc["SocketPath"]
    out["Weights"] = dict(svc.get("Weights") or DEFAULT_WEIGHTS)
    out["EnableTagOverride"] = bool(svc.get("EnableTagOverride", False))
    if svc.get("Locality") is not None:
        out["Locality"] = dict(svc["Locality"])
    out["Proxy"] = _proxy(svc)
    out["Connect"] = dict(svc.get("Connect") or {})
    out["PeerName"] = ""
    out["CreateIndex"] = svc.get("CreateIndex", 0)
    out["ModifyIndex"] = svc.get("ModifyIndex", 0)
    return out


def service_node(n: Node, svc: dict[str, Any]) -> dict[str, Any]:
    """ServiceNode (``/catalog/service/:name`` element): node fields then ``Service*`` fields."""
    out: dict[str, Any] = {
        "ID": n.id,
        "Node": n.node,
        "Address": n.address,
        "Datacenter": n.datacenter,
        "TaggedAddresses": dict(n.tagged_addresses),
        "NodeMeta": dict(n.meta),
        "ServiceKind": svc.get("Kind", ""),
        "ServiceID": svc["ID"],
        "ServiceName": svc["Service"],
        "ServiceTags": list(svc.get("Tags") or []),
        "ServiceAddress": svc.get("Address", ""),
    }
    if svc.get("TaggedAddresses"):
        out["ServiceTaggedAddresses"] = svc["TaggedAddresses"]
    out["ServiceWeights"] = dict(svc.get("Weights") or DEFAULT_WEIGHTS)
    out["ServiceMeta"] = dict(svc.get("Meta") or {})
    out["ServicePort"] = svc.get("Port", 0)
    out["ServiceSocketPath"] = svc.get("SocketPath", "")
    out["ServiceEnableTagOverride"] = bool(svc.get("EnableTagOverride", False))
    out["ServiceProxy"] = _proxy(svc)
    out["ServiceConnect"] = dict(svc.get("Connect") or {})
    out["ServiceLocality"] = dict(svc["Locality"]) if svc.get("Locality") is not None else None
    out["CreateIndex"] = svc.get("CreateIndex", 0)
    out["ModifyIndex"] = svc.get("ModifyIndex", 0)
    return out


def health_check(chk: Check | dict[str, Any]) -> dict[str, Any]:
    """HealthCheck: ``ServiceTags`` always a list, ``Definition`` always an object.  A dict (the
    agent's local checks) is read as a catalog row: a missing key means the row's default."""
    c = chk if isinstance(chk, Check) else msgspec.convert(chk, Check)
    return {
        "Node": c.node,
        "CheckID": c.check_id,
        "Name": c.name,
        "Status": c.status,
        "Notes": c.notes,
        "Output": c.output,
        "ServiceID": c.service_id,
        "ServiceName": c.service_name,
        "ServiceTags": list(c.service_tags),
        "Type": c.type,
        "Interval": c.interval,
        "Timeout": c.timeout,
        "ExposedPort": c.exposed_port,
        "Definition": dict(c.definition),
        "CreateIndex": c.create_index,
        "ModifyIndex": c.modify_index,
    }


# --------------------------------------------------------------------------- read filters


def node_meta_filters(req: Request) -> list[tuple[str, str]]:
    """``?node-meta=key:value`` (repeatable); a pair without ``:`` matches an empty value."""
    out = []
    for raw in req.get_all("node-meta"):
        key, _, value = raw.partition(":")
        out.append((key, value))
    return out


def node_meta_match(n: Node | None, filters: list[tuple[str, str]]) -> bool:
    """All filters must match the node's Meta (AND), as Consul's ``structs.SatisfiesMetaFilters``."""
    if not filters:
        return True
    meta = n.meta if n is not None else {}
    return all(k in meta and meta[k] == v for k, v in filters)


def tags_match(svc: dict[str, Any], tags: list[str]) -> bool:
    """The instance carries every requested tag (case-insensitive, as Consul's tag filter)."""
    if not tags:
        return True
    have = {t.lower() for t in svc.get("Tags") or []}
    return all(t.lower() in have for t in tags)


def peer_name(req: Request) -> str:
    """``?peer=<name>``: read records imported from that cluster peer instead of local ones."""
    return req.get("peer")


def peer_match(rec: dict[str, Any] | Node | Check, peer: str) -> bool:
    """Whether ``rec`` belongs to ``peer`` (``""``: the local cluster).

    Muster has no cluster peering, so every stored record is local (``PeerName`` absent or
    ``""``) and a named peer matches nothing, exactly as in a Consul with no such peering.
    """
    if isinstance(rec, (Node, Check)):
        return rec.peer_name == peer
    return str(rec.get("PeerName") or "") == peer


def aggregated_status(checks: list[dict[str, Any]]) -> str:
    """Consul's ``HealthChecks.AggregatedStatus``: maintenance > critical > warning > passing."""
    warning = critical = maintenance = False
    for c in checks:
        cid = c.get("CheckID", "")
        if cid == MAINT_NODE or cid.startswith(MAINT_SERVICE_PREFIX):
            maintenance = True
            continue
        st = c.get("Status")
        if st == "passing":
            continue
        if st == "warning":
            warning = True
        elif st == "critical":
            critical = True
        else:
            return ""
    if maintenance:
        return "maintenance"
    if critical:
        return "critical"
    if warning:
        return "warning"
    return "passing"
