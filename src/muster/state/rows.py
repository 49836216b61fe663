"""Typed rows of the catalog and session tables (msgspec structs): nodes, service instances,
checks, sessions.

Attributes are snake_case; ``consul_name`` maps each to Consul's field name (``service_id`` ->
``ServiceID``, ``ttl`` -> ``TTL``), which is the name a row has in a snapshot and in the
dict-shaped commands of the log (``msgspec.convert(d, Session)`` reads those).  Rows are frozen:
a write replaces a row, never mutates it, so a reader holding one sees a consistent object.
Rows know nothing of JSON: the HTTP layer renders them (``http/render.py``, ``http/session.py``).

Adding a field (a new member of Consul's ``NodeService``...): add it
with a default equal to what an older snapshot or command without it means; snapshots of older
versions then still load, and equality (``_same`` in ``catalog.py``: an identical
re-registration changes nothing) covers the new field automatically.  Render it in the HTTP
layer.
"""

from __future__ import annotations

from typing import Any

import msgspec

_UPPER = {"id": "ID", "ttl": "TTL"}


def consul_name(name: str) -> str:
    """``service_id`` -> ``ServiceID``: each word capitalised, ``id``/``ttl`` upper-cased."""
    return "".join(_UPPER.get(w) or w.capitalize() for w in name.split("_"))


class ServiceCheck(msgspec.Struct, frozen=True, rename=consul_name):
    """A service check a session is bound to (Consul's ``ServiceCheck``)."""

    id: str
    namespace: str = ""


class Session(msgspec.Struct, frozen=True, kw_only=True, rename=consul_name):
    id: str
    name: str = ""
    node: str
    node_checks: list[str] = []
    service_checks: list[ServiceCheck] = []
    lock_delay: int = 0  # nanoseconds
    behavior: str = "release"
    ttl: str = ""
    create_index: int = 0
    modify_index: int = 0

    def check_ids(self) -> list[str]:
        """Every check the session is bound to (node checks, then service checks)."""
        return [*self.node_checks, *(c.id for c in self.service_checks)]


class Node(msgspec.Struct, frozen=True, kw_only=True, rename=consul_name):
    """A catalog node (Consul's ``structs.Node``)."""

    id: str = ""
    node: str
    address: str = ""
    datacenter: str = ""
    tagged_addresses: dict[str, str] = {}
    meta: dict[str, str] = {}
    peer_name: str = ""  # always local: Muster has no cluster peering
    create_index: int = 0
    modify_index: int = 0


class Check(msgspec.Struct, frozen=True, kw_only=True, rename=consul_name):
    """A health check in the catalog (Consul's ``structs.HealthCheck``).  ``service_name`` and
    ``service_tags`` are copied by the store from the linked service."""

    node: str
    check_id: str
    name: str = ""
    status: str = "critical"
    notes: str = ""
    output: str = ""
    service_id: str = ""
    service_name: str = ""
    service_tags: list[str] = []
    type: str = ""
    interval: str = ""
    timeout: str = ""
    exposed_port: int = 0
    definition: dict[str, Any] = {}
    peer_name: str = ""  # always local: Muster has no cluster peering
    create_index: int = 0
    modify_index: int = 0


class ServiceAddress(msgspec.Struct, frozen=True, rename=consul_name):
    """One of a service's ``TaggedAddresses`` (Consul's ``structs.ServiceAddress``)."""

    address: str = ""
    port: int = 0


class Weights(msgspec.Struct, frozen=True, rename=consul_name):
    """DNS SRV weights of an instance (Consul's ``structs.Weights``).  A row that never had
    any reads as 1/1, the default the catalog fills in."""

    passing: int = 1
    warning: int = 1


class Service(msgspec.Struct, frozen=True, kw_only=True, rename=consul_name):
    """A service instance on a node (Consul's ``structs.NodeService``).

    ``proxy`` and ``connect`` are Consul's nested ``ConnectProxyConfig``/``ServiceConnect``
    objects with Consul's field names, as ``agent/mesh.py`` decodes and validates them (``{}``:
    none; the renderer fills the empty proxy object Consul shows).  ``locality`` is ``None``
    when the instance has none (rendered as absent/null), else only its non-empty parts.
    ``namespace``/``partition`` stay empty (Consul Enterprise only) and are never rendered."""

    kind: str = ""
    id: str
    service: str
    tags: list[str] = []
    address: str = ""
    tagged_addresses: dict[str, ServiceAddress] = {}
    meta: dict[str, str] = {}
    port: int = 0
    socket_path: str = ""
    weights: Weights = msgspec.field(default_factory=Weights)
    enable_tag_override: bool = False
    locality: dict[str, str] | None = None
    proxy: dict[str, Any] = {}
    connect: dict[str, Any] = {}
    peer_name: str = ""  # always local: Muster has no cluster peering
    namespace: str = ""
    partition: str = ""
    create_index: int = 0
    modify_index: int = 0
