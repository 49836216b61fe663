"""Intentions, stored as ``service-intentions`` config entries (as Consul does since 1.9).

An intention ``source -> destination`` is the source named ``source`` in the entry named
``destination``.  This module turns entries into Consul's ``Intention`` objects, finds and
edits sources, and answers "may A talk to B" (L4) with Consul's precedence:

    exact source, exact destination      9
    wildcard source, exact destination   8
    exact source, wildcard destination   6
    wildcard source, wildcard destination 5

The highest precedence match decides; an intention with ``Permissions`` (L7) counts as deny for
an L4 decision, as in Consul's ``/v1/agent/connect/authorize``; with no match the default
decision is the ACL default policy (allow when ACLs are off).
"""

from __future__ import annotations

import copy
from typing import Any

from .config_entries import SERVICE_INTENTIONS, field

WILDCARD = "*"


def precedence(source: str, destination: str) -> int:
    if destination != WILDCARD:
        return 9 if source != WILDCARD else 8
    return 6 if source != WILDCARD else 5


def to_intention(entry: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    """Consul's ``Intention`` JSON for one source of one service-intentions entry."""
    source = str(field(src, "Name") or "")
    dest = str(entry["Name"])
    out: dict[str, Any] = {
        "ID": str(field(src, "LegacyID") or ""),
        "Description": str(field(src, "Description") or ""),
        "SourceNS": "default",
        "SourceName": source,
        "DestinationNS": "default",
        "DestinationName": dest,
        "SourceType": str(field(src, "Type") or "consul"),
    }
    if field(src, "Peer"):
        out["SourcePeer"] = str(field(src, "Peer"))
    action = field(src, "Action")
    if action:
        out["Action"] = str(action)
    perms = field(src, "Permissions")
    if perms:
        out["Permissions"] = copy.deepcopy(perms)
    out["Meta"] = dict(field(src, "LegacyMeta") or entry.get("Meta") or {})
    out["Precedence"] = precedence(source, dest)
    out["CreateIndex"] = entry.get("CreateIndex", 0)
    out["ModifyIndex"] = entry.get("ModifyIndex", 0)
    return out


def all_intentions(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every intention, highest precedence first, then by destination and source name."""
    out = []
    for entry in entries:
        if entry.get("Kind") != SERVICE_INTENTIONS:
            continue
        for src in entry.get("Sources") or []:
            out.append(to_intention(entry, src))
    out.sort(key=lambda i: (-i["Precedence"], i["DestinationName"], i["SourceName"]))
    return out


def find_source(entry: dict[str, Any] | None, source: str) -> int:
    """Index of the (local) source ``source`` in ``entry``'s ``Sources``, or -1."""
    for i, src in enumerate((entry or {}).get("Sources") or []):
        if str(field(src, "Name") or "") == source and not field(src, "Peer"):
            return i
    return -1


def upsert_source(entry: dict[str, Any] | None, destination: str, source: dict[str, Any]) -> dict[str, Any]:
    """``entry`` (or a new one for ``destination``) with ``source`` added or replaced."""
    new = copy.deepcopy(entry) if entry else {"Kind": SERVICE_INTENTIONS, "Name": destination, "Sources": []}
    for k in ("CreateIndex", "ModifyIndex"):
        new.pop(k, None)
    sources = list(new.get("Sources") or [])
    i = find_source(new, str(source["Name"]))
    if i >= 0:
        sources[i] = source
    else:
        sources.append(source)
    new["Sources"] = sources
    return new


def remove_source(entry: dict[str, Any], source: str) -> dict[str, Any] | None:
    """``entry`` without ``source``; None when no source is left (delete the entry)."""
    new = copy.deepcopy(entry)
    for k in ("CreateIndex", "ModifyIndex"):
        new.pop(k, None)
    new["Sources"] = [s for s in new.get("Sources") or [] if not (str(field(s, "Name") or "") == source and not field(s, "Peer"))]
    return new if new["Sources"] else None


def matches(intentions: list[dict[str, Any]], by: str, name: str) -> list[dict[str, Any]]:
    """The intentions that apply to ``name`` as a source or destination, highest precedence first."""
    key = "SourceName" if by == "source" else "DestinationName"
    return [i for i in intentions if i[key] in (name, WILDCARD)]


def decide(intentions: list[dict[str, Any]], source: str, destination: str, default_allow: bool = True) -> tuple[bool, dict[str, Any] | None]:
    """(allowed, the deciding intention or None) for an L4 connection ``source -> destination``."""
    for ixn in intentions:  # sorted by precedence, highest first
        if ixn["DestinationName"] in (destination, WILDCARD) and ixn["SourceName"] in (source, WILDCARD):
            if ixn.get("SourcePeer"):
                continue
            return ixn.get("Action") == "allow" and not ixn.get("Permissions"), ixn
    return default_allow, None


def describe(ixn: dict[str, Any]) -> str:
    """Consul's ``Intention.String()``."""
    return (
        f"{ixn['SourceNS']}/{ixn['SourceName']} => {ixn['DestinationNS']}/{ixn['DestinationName']} "
        f"(ID: {ixn['ID']}, Precedence: {ixn['Precedence']})"
    )
