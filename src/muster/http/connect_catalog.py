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

from ..agent.mesh import CONNECT_PROXY
from ..state.rows import Node
from ..state.watch import WatchSet

Pair = tuple[Node, dict[str, Any]]


def is_connect_for(svc: dict[str, Any], name: str) -> bool:
    """Whether the instance ``svc`` accepts mesh traffic for the service ``name``."""
    if svc.get("Kind") == CONNECT_PROXY:
        return (svc.get("Proxy") or {}).get("DestinationServiceName") == name
    return not svc.get("Kind") and svc.get("Service") == name and bool((svc.get("Connect") or {}).get("Native"))


def connect_instances(store: Any, ws: WatchSet | None, name: str) -> tuple[int, list[Pair]]:
    """``[(node record, NodeService)]`` of the proxies and native instances of ``name``."""
    idx, by_name = store.list_services(ws)
    out: list[tuple[str, str, dict[str, Any]]] = []
    for svc_name, pairs in by_name.items():
        for node_name, svc in pairs:
            if (svc_name == name or svc.get("Kind") == CONNECT_PROXY) and is_connect_for(svc, name):
                out.append((node_name, str(svc["ID"]), svc))
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
    out: list[tuple[str, str, dict[str, Any]]] = []
    for svc_name, pairs in by_name.items():
        if names is not None and svc_name not in names:
            continue
        for node_name, svc in pairs:
            if svc.get("Kind") == kind:
                out.append((node_name, str(svc["ID"]), svc))
    out.sort(key=lambda t: (t[0], t[1]))
    return idx, [(store.nodes[n], s) for n, _, s in out if n in store.nodes]
