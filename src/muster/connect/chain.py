"""The compiled discovery chain of a service (``/v1/discovery-chain/:service``).

A pure function of the config entries (Consul's ``discoverychain.Compile``, the parts a
registry answers for): the protocol comes from ``service-defaults`` (else ``proxy-defaults``'
``Config.protocol``, else ``tcp``) unless the request overrides it.  For HTTP-like protocols
(``http``, ``http2``, ``grpc``) a ``service-router`` makes the start node a router whose routes
lead to splitters or resolvers, with a catch-all default route, and a ``service-splitter``
becomes a splitter node.  Every resolver node resolves one target
(``<subset.>service.namespace.partition.datacenter``), following the ``service-resolver``'s
``Redirect`` and ``DefaultSubset``, carrying its ``ConnectTimeout`` (5s by default), and its
failover targets for ``Failover``.  With no entry at all the chain is the default chain: one
resolver, ``Default: true``.
"""

from __future__ import annotations

from typing import Any

from . import ca
from .config_entries import (
    PROXY_DEFAULTS,
    SERVICE_DEFAULTS,
    SERVICE_RESOLVER,
    SERVICE_ROUTER,
    SERVICE_SPLITTER,
    field,
)

HTTP_LIKE = ("http", "http2", "grpc")
DEFAULT_CONNECT_TIMEOUT = "5s"
NS = "default"
PARTITION = "default"

Entries = dict[tuple[str, str], dict[str, Any]]


def trust_domain(store: Any) -> str:
    """The cluster's trust domain from the CA configuration (empty before the CA exists)."""
    cluster_id = str(store.tables.connect_ca.config.get("ClusterID") or "")
    return ca.trust_domain(cluster_id) if cluster_id else ""


def target_id(service: str, subset: str, dc: str) -> str:
    base = f"{service}.{NS}.{PARTITION}.{dc}"
    return f"{subset}.{base}" if subset else base


def target_sni(service: str, subset: str, dc: str, td: str) -> str:
    base = f"{service}.{NS}.{dc}.internal.{td}"
    return f"{subset}.{base}" if subset else base


def protocol_of(service: str, entries: Entries) -> str:
    sd = entries.get((SERVICE_DEFAULTS, service))
    if sd is not None and sd.get("Protocol"):
        return str(sd["Protocol"])
    pd = entries.get((PROXY_DEFAULTS, "global"))
    if pd is not None:
        proto = field(pd.get("Config") or {}, "protocol")
        if proto:
            return str(proto).lower()
    return "tcp"


class _Compiler:
    def __init__(self, service: str, dc: str, td: str, entries: Entries, protocol: str, timeout: str) -> None:
        self.service = service
        self.dc = dc
        self.td = td
        self.entries = entries
        self.protocol = protocol
        self.timeout_override = timeout
        self.nodes: dict[str, dict[str, Any]] = {}
        self.targets: dict[str, dict[str, Any]] = {}
        self.customized = bool(protocol or timeout)

    def mesh_gateway(self, service: str) -> dict[str, Any]:
        for key in ((SERVICE_DEFAULTS, service), (PROXY_DEFAULTS, "global")):
            entry = self.entries.get(key)
            mode = field((entry or {}).get("MeshGateway") or {}, "Mode")
            if mode:
                return {"Mode": str(mode)}
        return {}

    def target(self, service: str, subset: str, dc: str, timeout: str) -> str:
        tid = target_id(service, subset, dc)
        if tid not in self.targets:
            resolver = self.entries.get((SERVICE_RESOLVER, service)) or {}
            subset_def = field(resolver.get("Subsets") or {}, subset) if subset else None
            sub: dict[str, Any] = {}
            if isinstance(subset_def, dict):
                if field(subset_def, "Filter"):
                    sub["Filter"] = str(field(subset_def, "Filter"))
                if field(subset_def, "OnlyPassing"):
                    sub["OnlyPassing"] = True
            sni = target_sni(service, subset, dc, self.td)
            self.targets[tid] = {
                "ID": tid,
                "Service": service,
                "ServiceSubset": subset,
                "Namespace": NS,
                "Partition": PARTITION,
                "Datacenter": dc,
                "Peer": "",
                "MeshGateway": self.mesh_gateway(service),
                "Subset": sub,
                "TransparentProxy": {},
                "ConnectTimeout": timeout,
                "External": False,
                "SNI": sni,
                "Name": sni,
                "Locality": None,
            }
        return tid

    def resolver_node(self, service: str, subset: str = "", dc: str = "", depth: int = 0) -> str:
        """The resolver node of ``service`` (after ``Redirect`` and ``DefaultSubset``)."""
        dc = dc or self.dc
        entry = self.entries.get((SERVICE_RESOLVER, service))
        if entry is not None:
            self.customized = True
            redirect = entry.get("Redirect")
            if isinstance(redirect, dict) and depth < 8:
                r_service = str(field(redirect, "Service") or service)
                r_subset = str(field(redirect, "ServiceSubset") or "")
                r_dc = str(field(redirect, "Datacenter") or dc)
                if (r_service, r_subset, r_dc) != (service, subset, dc):
                    return self.resolver_node(r_service, r_subset, r_dc, depth + 1)
            if not subset:
                subset = str(entry.get("DefaultSubset") or "")
        timeout = self.timeout_override or str((entry or {}).get("ConnectTimeout") or DEFAULT_CONNECT_TIMEOUT)
        tid = self.target(service, subset, dc, timeout)
        name = f"resolver:{tid}"
        if name not in self.nodes:
            resolver: dict[str, Any] = {"ConnectTimeout": timeout, "Target": tid}
            if entry is None:
                resolver = {"Default": True, **resolver}
            failover = self.failover(entry, service, subset, dc, timeout)
            if failover is not None:
                resolver["Failover"] = failover
            if entry is not None and entry.get("RequestTimeout"):
                resolver["RequestTimeout"] = entry["RequestTimeout"]
            node: dict[str, Any] = {"Type": "resolver", "Name": tid, "Resolver": resolver}
            if entry is not None and entry.get("LoadBalancer"):
                node["LoadBalancer"] = entry["LoadBalancer"]
            self.nodes[name] = node
        return name

    def failover(self, entry: dict[str, Any] | None, service: str, subset: str, dc: str, timeout: str) -> dict[str, Any] | None:
        if entry is None:
            return None
        failovers = entry.get("Failover") or {}
        if not isinstance(failovers, dict):
            return None
        rule = failovers.get(subset or "*") or failovers.get("*")
        if not isinstance(rule, dict):
            return None
        targets: list[str] = []
        f_service = str(field(rule, "Service") or service)
        f_subset = str(field(rule, "ServiceSubset") or "")
        dcs = field(rule, "Datacenters") or []
        for other_dc in dcs if dcs else [dc]:
            tid = self.target(f_service, f_subset, str(other_dc), timeout)
            if tid != target_id(service, subset, dc):
                targets.append(tid)
        for t in field(rule, "Targets") or []:
            tid = self.target(str(field(t, "Service") or service), str(field(t, "ServiceSubset") or ""),
                              str(field(t, "Datacenter") or dc), timeout)  # fmt: skip
            targets.append(tid)
        return {"Targets": targets} if targets else None

    def splitter_or_resolver(self, service: str, subset: str = "") -> str:
        if not subset and self.protocol in HTTP_LIKE:
            entry = self.entries.get((SERVICE_SPLITTER, service))
            if entry is not None:
                self.customized = True
                name = f"splitter:{service}.{NS}.{PARTITION}"
                if name not in self.nodes:
                    self.nodes[name] = {"Type": "splitter", "Name": f"{service}.{NS}.{PARTITION}", "Splits": []}
                    splits = []
                    for split in entry.get("Splits") or []:
                        s_service = str(field(split, "Service") or service)
                        s_subset = str(field(split, "ServiceSubset") or "")
                        nxt = (self.resolver_node(s_service, s_subset) if s_service == service
                               else self.splitter_or_resolver(s_service, s_subset))  # fmt: skip
                        splits.append({"Weight": field(split, "Weight", 0), "NextNode": nxt})
                    self.nodes[name]["Splits"] = splits
                return name
        return self.resolver_node(service, subset)

    def start(self) -> str:
        if self.protocol in HTTP_LIKE:
            router = self.entries.get((SERVICE_ROUTER, self.service))
            if router is not None:
                self.customized = True
                name = f"router:{self.service}.{NS}.{PARTITION}"
                routes = []
                for route in router.get("Routes") or []:
                    dest = field(route, "Destination") or {}
                    d_service = str(field(dest, "Service") or self.service)
                    d_subset = str(field(dest, "ServiceSubset") or "")
                    definition = {"Match": field(route, "Match"), "Destination": dest}
                    routes.append({"Definition": definition, "NextNode": self.splitter_or_resolver(d_service, d_subset)})
                routes.append({
                    "Definition": {"Match": {"HTTP": {"PathPrefix": "/"}}, "Destination": {"Service": self.service}},
                    "NextNode": self.splitter_or_resolver(self.service),
                })  # fmt: skip
                self.nodes[name] = {"Type": "router", "Name": f"{self.service}.{NS}.{PARTITION}", "Routes": routes}
                return name
        return self.splitter_or_resolver(self.service)


def compile_chain(
    service: str, dc: str, evaluate_dc: str, td: str, entries: Entries, override_protocol: str = "",
    override_timeout: str = "",
) -> dict[str, Any]:
    """The ``Chain`` object of ``/v1/discovery-chain/:service``."""
    protocol = override_protocol.lower() or protocol_of(service, entries)
    comp = _Compiler(service, evaluate_dc or dc, td, entries, protocol, override_timeout)
    comp.customized = bool(override_protocol or override_timeout)
    start = comp.start()
    out: dict[str, Any] = {
        "ServiceName": service,
        "Namespace": NS,
        "Partition": PARTITION,
        "Datacenter": evaluate_dc or dc,
    }
    if comp.customized and (override_protocol or override_timeout):
        out["CustomizationHash"] = _customization_hash(override_protocol, override_timeout)
    if not comp.customized and (SERVICE_DEFAULTS, service) not in entries:
        out["Default"] = True
    out["Protocol"] = protocol
    out["StartNode"] = start
    out["Nodes"] = comp.nodes
    out["Targets"] = comp.targets
    return out


def _customization_hash(protocol: str, timeout: str) -> str:
    import hashlib

    return hashlib.sha256(f"{protocol}\x00{timeout}".encode()).hexdigest()[:8]
