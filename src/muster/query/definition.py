"""Prepared-query definitions: decoding a request body into Consul's ``PreparedQuery`` object,
validating it, and finding the query a name or ID refers to.

The canonical form is the JSON object Consul returns (``/v1/query``): ``ID``, ``Name``,
``Session``, ``Token``, ``Template`` {``Type``, ``Regexp``, ``RemoveEmptyTags``}, ``Service``
{``Service``, ``Failover`` {``NearestN``, ``Datacenters``, ``Targets``}, ``IgnoreCheckIDs``,
``OnlyPassing``, ``Near``, ``Tags``, ``NodeMeta``, ``ServiceMeta``, ``Connect``, ``Peer``,
``SamenessGroup``}, ``DNS`` {``TTL``}, ``CreateIndex``, ``ModifyIndex``.  Bodies are decoded
case-insensitively at every level (py-consul sends ``{"name", "service": {"service"}}``), but
never inside user maps (``NodeMeta``, ``ServiceMeta``).  Empty lists and maps are ``null``,
as Go's nil slices encode.

Rules (Consul ``agent/consul/prepared_query_endpoint.go`` ``parseQuery`` and
``state/prepared_query.go``), checked before anything is written, so a refused query changes
nothing:

* ``Service.Service`` is required; ``Failover.NearestN >= 0``; ``DNS.TTL`` is a duration >= 0;
* a query is bound to a session, or has a name, or is a template;
* a template compiles (:mod:`.template`);
* names are unique case-insensitively, a name may not look like another query's ID, at most
  one template has the empty name, and the session must exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..agent.definitions import canonical_keys, get_bool, get_int, get_str, get_str_list, get_str_map
from ..durations import parse_duration
from ..errors import MusterError, NotFound
from ..state.prepared_queries import looks_like_uuid, validate_against
from .template import TEMPLATE_TYPE, TemplateError, compile_template

__all__ = ["QueryNotFound", "decode_query", "resolve", "validate_against", "looks_like_uuid"]

_QUERY = ("ID", "Name", "Session", "Token", "Template", "Service", "DNS")
_TEMPLATE = ("Type", "Regexp", "RemoveEmptyTags")
_SERVICE = ("Service", "Failover", "IgnoreCheckIDs", "OnlyPassing", "Near", "Tags", "NodeMeta", "ServiceMeta",
            "Connect", "Peer", "SamenessGroup", "Namespace", "Partition")
_FAILOVER = ("NearestN", "Datacenters", "Targets")
_TARGET = ("Peer", "Datacenter", "Partition", "Namespace")
_DNS = ("TTL",)


class QueryNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Query not found")


def _nil(xs: list[Any] | dict[str, Any]) -> Any:
    return xs if xs else None


def decode_query(body: Any) -> dict[str, Any]:
    """A request body as a canonical query (without ID and indexes); raises Consul's errors."""
    d = canonical_keys(body, _QUERY, None, "structs.PreparedQuery")
    tpl = canonical_keys(d.get("Template"), _TEMPLATE, None, "structs.QueryTemplateOptions")
    svc = canonical_keys(d.get("Service"), _SERVICE, None, "structs.ServiceQuery")
    fo = canonical_keys(svc.get("Failover"), _FAILOVER, None, "structs.QueryFailoverOptions")
    dns = canonical_keys(d.get("DNS"), _DNS, None, "structs.QueryDNSOptions")
    targets = []
    raw_targets = fo.get("Targets")
    if raw_targets is not None:
        if not isinstance(raw_targets, list):
            raise MusterError("Request decode failed: json: cannot unmarshal Targets")
        for t in raw_targets:
            td = canonical_keys(t, _TARGET, None, "structs.QueryFailoverTarget")
            targets.append({k: get_str(td, k) for k in _TARGET})
    q: dict[str, Any] = {
        "ID": get_str(d, "ID"),
        "Name": get_str(d, "Name"),
        "Session": get_str(d, "Session"),
        "Token": get_str(d, "Token"),
        "Template": {"Type": get_str(tpl, "Type"), "Regexp": get_str(tpl, "Regexp"),
                     "RemoveEmptyTags": get_bool(tpl, "RemoveEmptyTags")},
        "Service": {
            "Service": get_str(svc, "Service"),
            "Failover": {"NearestN": get_int(fo, "NearestN"), "Datacenters": _nil(get_str_list(fo, "Datacenters")),
                         "Targets": _nil(targets)},
            "OnlyPassing": get_bool(svc, "OnlyPassing"),
            "IgnoreCheckIDs": _nil(get_str_list(svc, "IgnoreCheckIDs")),
            "Near": get_str(svc, "Near"),
            "Tags": _nil(get_str_list(svc, "Tags")),
            "NodeMeta": _nil(get_str_map(svc, "NodeMeta")),
            "ServiceMeta": _nil(get_str_map(svc, "ServiceMeta")),
            "Connect": get_bool(svc, "Connect"),
            "Peer": get_str(svc, "Peer"),
            "SamenessGroup": get_str(svc, "SamenessGroup"),
        },
        "DNS": {"TTL": get_str(dns, "TTL")},
    }
    _parse(q)
    return q


def _parse(q: dict[str, Any]) -> None:
    """Consul ``parseQuery``: the checks that need nothing but the query itself."""
    svc = q["Service"]
    if not svc["Service"]:
        raise MusterError("Invalid prepared query: Must provide a Service name to query")
    n = svc["Failover"]["NearestN"]
    if n < 0:
        raise MusterError(f"Invalid prepared query: Bad NearestN '{n}', must be >= 0")
    fo = svc["Failover"]
    if fo["Targets"] and (n or fo["Datacenters"]):
        raise MusterError("Invalid prepared query: Targets cannot be populated with NearestN or Datacenters")
    ttl = q["DNS"]["TTL"]
    if ttl:
        try:
            secs = parse_duration(ttl)
        except ValueError as err:
            raise MusterError(f"Invalid prepared query: Bad DNS TTL '{ttl}': {err}") from None
        if secs < 0:
            raise MusterError(f"Invalid prepared query: DNS TTL '{ttl}', must be >=0")
    if q["Token"] == "<hidden>":
        raise MusterError("Invalid prepared query: Cannot use <hidden> as a token")
    if q["Template"]["Type"]:
        if q["Template"]["Type"] != TEMPLATE_TYPE:
            raise MusterError(f"Invalid prepared query: Bad Template.Type '{q['Template']['Type']}'")
        try:
            compile_template(q).render(q["Name"], q)
        except TemplateError as err:
            raise MusterError(f"Invalid prepared query template: {err}") from None
    if not q["Session"] and not q["Template"]["Type"] and not q["Name"]:
        raise MusterError("Invalid prepared query: Must be bound to a session")


def resolve(queries: Iterable[Mapping[str, Any]], id_or_name: str) -> dict[str, Any]:
    """The query ``id_or_name`` refers to, rendered if it is a template (Consul
    ``PreparedQueryResolve``): an ID (templates cannot be used by ID), then an exact name, then
    the template whose name is the longest prefix of it.  Raises ``Query not found`` (404)."""
    if not id_or_name:
        raise MusterError("Query lookup failed: missing query ID or name")
    qs = list(queries)
    if looks_like_uuid(id_or_name):
        for q in qs:
            if q["ID"] == id_or_name.lower():
                if q["Template"]["Type"]:
                    raise MusterError("prepared query templates can only be resolved up by name, not by ID")
                return dict(q)
    low = id_or_name.lower()
    for q in qs:
        if q["Name"] and q["Name"].lower() == low:
            found = dict(q)
            return compile_template(found).render(id_or_name, found) if found["Template"]["Type"] else found
    best: Mapping[str, Any] | None = None
    for q in qs:
        if q["Template"]["Type"] and low.startswith(q["Name"].lower()):
            if best is None or len(q["Name"]) > len(best["Name"]):
                best = q
    if best is None:
        raise QueryNotFound()
    chosen = dict(best)
    return compile_template(chosen).render(id_or_name, chosen)
