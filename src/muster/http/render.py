"""Rendering catalog records into Consul's response objects (docs/compat/catalog-health.md#response-objects).

Store records are Consul-shaped dicts, but not always complete: the server's own registration
and catalog-registered external nodes may lack optional keys.  These functions produce the
exact response shape from whatever is stored, filling Consul's defaults (``Weights`` 1/1,
``[]``/``{}`` instead of null) and omitting what Consul omits.  They never mutate the record.

Also here: the read-side filters several endpoints share (``node-meta``, ``tag``), and the
aggregate-status rule clients and agent health endpoints use.
"""

from __future__ import annotations

from typing import Any

from .request import Request

DEFAULT_WEIGHTS = {"Passing": 1, "Warning": 1}
MAINT_NODE = "_node_maintenance"
MAINT_SERVICE_PREFIX = "_service_maintenance:"


def node(rec: dict[str, Any]) -> dict[str, Any]:
    """Node object: ``TaggedAddresses``/``Meta`` are objects, never null."""
    return {
        "ID": rec.get("ID", ""),
        "Node": rec["Node"],
        "Address": rec.get("Address", ""),
        "Datacenter": rec.get("Datacenter", ""),
        "TaggedAddresses": dict(rec.get("TaggedAddresses") or {}),
        "Meta": dict(rec.get("Meta") or {}),
        "CreateIndex": rec.get("CreateIndex", 0),
        "ModifyIndex": rec.get("ModifyIndex", 0),
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


def service_node(n: dict[str, Any], svc: dict[str, Any]) -> dict[str, Any]:
    """ServiceNode (``/catalog/service/:name`` element): node fields then ``Service*`` fields."""
    out: dict[str, Any] = {
        "ID": n.get("ID", ""),
        "Node": n["Node"],
        "Address": n.get("Address", ""),
        "Datacenter": n.get("Datacenter", ""),
        "TaggedAddresses": dict(n.get("TaggedAddresses") or {}),
        "NodeMeta": dict(n.get("Meta") or {}),
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


def health_check(chk: dict[str, Any]) -> dict[str, Any]:
    """HealthCheck: ``ServiceTags`` always a list, ``Definition`` always an object."""
    return {
        "Node": chk["Node"],
        "CheckID": chk["CheckID"],
        "Name": chk.get("Name", ""),
        "Status": chk.get("Status", "critical"),
        "Notes": chk.get("Notes", ""),
        "Output": chk.get("Output", ""),
        "ServiceID": chk.get("ServiceID", ""),
        "ServiceName": chk.get("ServiceName", ""),
        "ServiceTags": list(chk.get("ServiceTags") or []),
        "Type": chk.get("Type", ""),
        "Interval": chk.get("Interval", ""),
        "Timeout": chk.get("Timeout", ""),
        "ExposedPort": chk.get("ExposedPort", 0),
        "Definition": dict(chk.get("Definition") or {}),
        "CreateIndex": chk.get("CreateIndex", 0),
        "ModifyIndex": chk.get("ModifyIndex", 0),
    }


# --------------------------------------------------------------------------- read filters


def node_meta_filters(req: Request) -> list[tuple[str, str]]:
    """``?node-meta=key:value`` (repeatable); a pair without ``:`` matches an empty value."""
    out = []
    for raw in req.get_all("node-meta"):
        key, _, value = raw.partition(":")
        out.append((key, value))
    return out


def node_meta_match(n: dict[str, Any], filters: list[tuple[str, str]]) -> bool:
    """All filters must match the node's Meta (AND), as Consul's ``structs.SatisfiesMetaFilters``."""
    if not filters:
        return True
    meta = n.get("Meta") or {}
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


def peer_match(rec: dict[str, Any], peer: str) -> bool:
    """Whether ``rec`` belongs to ``peer`` (``""``: the local cluster).

    Muster has no cluster peering, so every stored record is local (``PeerName`` absent or
    ``""``) and a named peer matches nothing, exactly as in a Consul with no such peering.
    """
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
