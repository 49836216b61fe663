"""Which catalog instances serve a service over the mesh (``/catalog/connect``, ``/health/connect``,
``/health/ingress``, DNS ``<svc>.connect``).

Consul's "connect-enabled" view of a service ``S``: every ``connect-proxy`` instance whose
``Proxy.DestinationServiceName`` is ``S``, and every instance of ``S`` itself registered with
``Connect.Native``.  Results are ordered like every other catalog read (node name, then
service ID) and the index is the catalog's ``services`` index, which moves whenever any of
them can change.
"""

from __future__ import annotations

from typing import Any

from ..agent.mesh import CONNECT_PROXY, is_connect_for
from ..state.rows import Node, Service
from ..state.watch import WatchSet

Pair = tuple[Node, Service]


def connect_instances(store: Any, ws: WatchSet | None, name: str) -> tuple[int, list[Pair]]:
    """``[(node record, NodeService)]`` of the proxies and native instances of ``name``."""
    idx, by_name = store.list_services(ws)
    out: list[tuple[str, str, Service]] = []
    for svc_name, pairs in by_name.items():
        for node_name, svc in pairs:
            if (svc_name.lower() == name.lower() or svc.kind == CONNECT_PROXY) and is_connect_for(svc, name):
                out.append((node_name, svc.id, svc))
    out.sort(key=lambda t: (t[0], t[1]))
    result = []
    for node_name, _, svc in out:
        node = store.nodes.get(node_name)
        if node is not None:
            result.append((node, svc))
    return idx, result


def instances_of_kind(store: Any, ws: WatchSet | None, kind: str, names: set[str] | None = None) -> tuple[int, list[Pair]]:
    """Instances of ``kind`` (optionally only those whose service name is in ``names``)."""
    idx, by_name = store.list_services(ws)
    out: list[tuple[str, str, Service]] = []
    for svc_name, pairs in by_name.items():
        if names is not None and svc_name not in names:
            continue
        for node_name, svc in pairs:
            if svc.kind == kind:
                out.append((node_name, svc.id, svc))
    out.sort(key=lambda t: (t[0], t[1]))
    return idx, [(store.nodes[n], s) for n, _, s in out if n in store.nodes]


def gateway_services(store: Any, ws: WatchSet | None, gateway: str) -> tuple[int, list[dict[str, Any]]]:
    """Consul's ``GatewayService`` rows of ``gateway``, from its ingress-gateway or
    terminating-gateway config entry.  A ``*`` service stands for every typical service in
    the catalog but ``consul`` (``FromWildcard``)."""
    from ..connect.config_entries import INGRESS_GATEWAY, TERMINATING_GATEWAY, field

    table = store.tables.config_entries
    idx_i, ingress = table.get(ws, INGRESS_GATEWAY, gateway)
    idx_t, terminating = table.get(ws, TERMINATING_GATEWAY, gateway)
    idx_s, by_name = store.list_services(ws)
    typical = sorted(n for n, pairs in by_name.items() if n != "consul" and any(not s.kind for _, s in pairs))
    rows: list[dict[str, Any]] = []

    def add(entry: dict[str, Any], kind: str, svc: dict[str, Any], extra: dict[str, Any]) -> None:
        name = str(field(svc, "Name") or "")
        names, wildcard = ([n for n in typical], True) if name == "*" else ([name], False)
        for n in names:
            row: dict[str, Any] = {"Gateway": {"Name": gateway}, "Service": {"Name": n}, "GatewayKind": kind}
            row.update({k: v for k, v in extra.items() if v})
            if wildcard:
                row["FromWildcard"] = True
            row["CreateIndex"] = entry.get("CreateIndex", 0)
            row["ModifyIndex"] = entry.get("ModifyIndex", 0)
            rows.append(row)

    if ingress is not None:
        for listener in ingress.get("Listeners") or []:
            for svc in field(listener, "Services") or []:
                add(ingress, INGRESS_GATEWAY, svc, {
                    "Port": field(listener, "Port", 0),
                    "Protocol": str(field(listener, "Protocol") or "tcp"),
                    "Hosts": list(field(svc, "Hosts") or []),
                })  # fmt: skip
    if terminating is not None:
        for svc in terminating.get("Services") or []:
            add(terminating, TERMINATING_GATEWAY, svc, {
                k: str(field(svc, k) or "") for k in ("CAFile", "CertFile", "KeyFile", "SNI")
            })  # fmt: skip
    rows.sort(key=lambda r: (r["Service"]["Name"], r["GatewayKind"]))
    return max(idx_i, idx_t, idx_s), rows


def ingress_instances(store: Any, ws: WatchSet | None, service: str) -> tuple[int, list[Pair]]:
    """Instances of the ingress gateways whose config entry routes to ``service``."""
    from ..connect.config_entries import INGRESS_GATEWAY

    idx_e, entries = store.tables.config_entries.list(ws, INGRESS_GATEWAY)
    gateways = set()
    for entry in entries:
        _, rows = gateway_services(store, ws, str(entry["Name"]))
        if any(r["Service"]["Name"] == service for r in rows):
            gateways.add(str(entry["Name"]))
    idx, pairs = instances_of_kind(store, ws, INGRESS_GATEWAY, gateways)
    return max(idx, idx_e), pairs
