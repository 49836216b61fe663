"""Rendering catalog records into Consul's response objects (docs/compat/catalog-health.md#response-objects).

Store rows are typed (``state/rows.py``: nodes, services, checks, sessions).  These functions
are the only place rows become JSON: they produce the exact response shape, filling Consul's
defaults (the empty ``Proxy`` object, ``[]``/``{}`` instead of null) and omitting what Consul
omits.  They never mutate the row.

Also here: the read-side filters several endpoints share (``node-meta``, ``tag``), and the
aggregate-status rule clients and agent health endpoints use.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..state.rows import Check, Node, Service, ServiceAddress
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


def _proxy(svc: Service) -> dict[str, Any]:
    p = svc.proxy
    return dict(p) if p else {"Mode": "", "MeshGateway": {}, "Expose": {}}


def _tagged(addrs: dict[str, ServiceAddress]) -> dict[str, dict[str, Any]]:
    return {tag: {"Address": a.address, "Port": a.port} for tag, a in addrs.items()}


def _weights(svc: Service) -> dict[str, int]:
    w = svc.weights
    return {"Passing": w.passing, "Warning": w.warning}


def node_service(svc: Service) -> dict[str, Any]:
    """NodeService (``Service`` of a health entry, values of ``/catalog/node``)."""
    out: dict[str, Any] = {}
    if svc.kind:
        out["Kind"] = svc.kind
    out["ID"] = svc.id
    out["Service"] = svc.service
    out["Tags"] = list(svc.tags)
    out["Address"] = svc.address
    if svc.tagged_addresses:
        out["TaggedAddresses"] = _tagged(svc.tagged_addresses)
    out["Meta"] = dict(svc.meta)
    if svc.port:
        out["Port"] = svc.port
    if svc.socket_path:
        out["SocketPath"] = svc.socket_path
    out["Weights"] = _weights(svc)
    out["EnableTagOverride"] = svc.enable_tag_override
    if svc.locality is not None:
        out["Locality"] = dict(svc.locality)
    out["Proxy"] = _proxy(svc)
    out["Connect"] = dict(svc.connect)
    out["PeerName"] = ""
    out["CreateIndex"] = svc.create_index
    out["ModifyIndex"] = svc.modify_index
    return out


def service_node(n: Node, svc: Service) -> dict[str, Any]:
    """ServiceNode (``/catalog/service/:name`` element): node fields then ``Service*`` fields."""
    out: dict[str, Any] = {
        "ID": n.id,
        "Node": n.node,
        "Address": n.address,
        "Datacenter": n.datacenter,
        "TaggedAddresses": dict(n.tagged_addresses),
        "NodeMeta": dict(n.meta),
        "ServiceKind": svc.kind,
        "ServiceID": svc.id,
        "ServiceName": svc.service,
        "ServiceTags": list(svc.tags),
        "ServiceAddress": svc.address,
    }
    if svc.tagged_addresses:
        out["ServiceTaggedAddresses"] = _tagged(svc.tagged_addresses)
    out["ServiceWeights"] = _weights(svc)
    out["ServiceMeta"] = dict(svc.meta)
    out["ServicePort"] = svc.port
    out["ServiceSocketPath"] = svc.socket_path
    out["ServiceEnableTagOverride"] = svc.enable_tag_override
    out["ServiceProxy"] = _proxy(svc)
    out["ServiceConnect"] = dict(svc.connect)
    out["ServiceLocality"] = dict(svc.locality) if svc.locality is not None else None
    out["CreateIndex"] = svc.create_index
    out["ModifyIndex"] = svc.modify_index
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


def tags_match(svc: Service, tags: list[str]) -> bool:
    """The instance carries every requested tag (case-insensitive, as Consul's tag filter)."""
    if not tags:
        return True
    have = {t.lower() for t in svc.tags}
    return all(t.lower() in have for t in tags)


def peer_name(req: Request) -> str:
    """``?peer=<name>``: read records imported from that cluster peer instead of local ones."""
    return req.get("peer")


def peer_match(rec: dict[str, Any] | Node | Service | Check, peer: str) -> bool:
    """Whether ``rec`` belongs to ``peer`` (``""``: the local cluster).

    Muster has no cluster peering, so every stored record is local (``PeerName`` absent or
    ``""``) and a named peer matches nothing, exactly as in a Consul with no such peering.
    """
    if isinstance(rec, (Node, Service, Check)):
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
