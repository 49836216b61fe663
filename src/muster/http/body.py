"""Consul's tolerant JSON body matching (docs/compat/http.md#request-parsing).

Go's ``encoding/json`` matches field names case-insensitively, and Consul's agent endpoints
also accept snake_case spellings.  ``canon`` maps each incoming key, lower-cased with ``_``
removed, onto the canonical Go field name; unknown keys are ignored, as Go does.  Keys *inside*
user maps (``Meta``, ``NodeMeta``, ``Header``, ``TaggedAddresses``...) are never touched:
``canon`` only renames the top level of the object it is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import BadRequest

_cache: dict[tuple[str, ...], dict[str, str]] = {}

ALIASES = {
    "args": "ScriptArgs",
    "scriptargs": "ScriptArgs",
    "checkid": "CheckID",
    "serviceid": "ServiceID",
}


def _lookup(names: tuple[str, ...]) -> dict[str, str]:
    table = _cache.get(names)
    if table is None:
        table = {n.lower().replace("_", ""): n for n in names}
        for alias, target in ALIASES.items():
            if target in names:
                table.setdefault(alias, target)
        _cache[names] = table
    return table


def canon(obj: Any, names: Iterable[str], what: str = "body") -> dict[str, Any]:
    """Rename the keys of ``obj`` to canonical ``names``; a non-object is a 400."""
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise BadRequest(f"Request decode failed: json: cannot unmarshal {_json_kind(obj)} into Go value of type {what}")
    table = _lookup(tuple(names))
    out: dict[str, Any] = {}
    for k, v in obj.items():
        c = table.get(str(k).lower().replace("_", "").replace("-", ""))
        if c is not None:
            out[c] = v
    return out


def _json_kind(v: Any) -> str:
    if isinstance(v, list):
        return "array"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return "value"


def want_str(d: dict[str, Any], key: str, default: str = "") -> str:
    v = d.get(key, default)
    if v is None:
        return default
    if not isinstance(v, str):
        raise BadRequest(f"Request decode failed: json: cannot unmarshal {_json_kind(v)} into Go struct field .{key} of type string")
    return v


def want_int(d: dict[str, Any], key: str, default: int = 0) -> int:
    v = d.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
        raise BadRequest(f"Request decode failed: json: cannot unmarshal {_json_kind(v)} into Go struct field .{key} of type int")
    return int(v)


def want_bool(d: dict[str, Any], key: str, default: bool = False) -> bool:
    v = d.get(key, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise BadRequest(f"Request decode failed: json: cannot unmarshal {_json_kind(v)} into Go struct field .{key} of type bool")
    return v


def want_str_list(d: dict[str, Any], key: str) -> list[str]:
    v = d.get(key)
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise BadRequest(f"Request decode failed: json: cannot unmarshal {_json_kind(v)} into Go struct field .{key} of type []string")
    return list(v)


def want_str_map(d: dict[str, Any], key: str) -> dict[str, str]:
    v = d.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
        raise BadRequest(f"Request decode failed: json: cannot unmarshal {_json_kind(v)} into Go struct field .{key} of type map[string]string")
    return {str(k): x for k, x in v.items()}
