"""Decoding JSON bodies the way Go's ``encoding/json`` does for Consul's structs.

Keys are matched case-insensitively and without ``_``/``-`` (plus per-struct aliases), unknown
keys are dropped, and a value of the wrong JSON type is a 400 with the text Go's decoder gives
(``Request decode failed: json: cannot unmarshal string into Go struct field .Port of type
int``).  Shared by the service and check definitions (``definitions.py``) and their service-mesh
parts (``mesh.py``); it imports neither, so both can import it.
"""

from __future__ import annotations

from typing import Any

from ..durations import parse_body_duration_ns
from ..errors import BadRequest

# --------------------------------------------------------------------------- key matching


def _fold(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


_tables: dict[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], dict[str, str]] = {}


def canonical_keys(obj: Any, names: tuple[str, ...], aliases: dict[str, str] | None = None, what: str = "") -> dict[str, Any]:
    """Rename the top-level keys of ``obj`` to the canonical ``names`` (unknown keys dropped).

    A key that appears twice under different spellings keeps the last one, as Go does.
    ``None`` is an empty object; anything that is not an object is a decode error.
    """
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise BadRequest(f"Request decode failed: json: cannot unmarshal {_kind(obj)} into Go value of type {what or 'object'}")
    akey = (names, tuple(sorted((aliases or {}).items())))
    table = _tables.get(akey)
    if table is None:
        table = {_fold(n): n for n in names}
        for a, target in (aliases or {}).items():
            table.setdefault(_fold(a), target)
        _tables[akey] = table
    out: dict[str, Any] = {}
    for k, v in obj.items():
        c = table.get(_fold(str(k)))
        if c is not None:
            out[c] = v
    return out


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def _decode_error(field_name: str, v: Any, go_type: str) -> BadRequest:
    return BadRequest(f"Request decode failed: json: cannot unmarshal {_kind(v)} into Go struct field .{field_name} of type {go_type}")


def get_str(d: dict[str, Any], key: str, default: str = "") -> str:
    v = d.get(key)
    if v is None:
        return default
    if not isinstance(v, str):
        raise _decode_error(key, v, "string")
    return v


def get_bool(d: dict[str, Any], key: str) -> bool:
    v = d.get(key)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise _decode_error(key, v, "bool")
    return v


def get_int(d: dict[str, Any], key: str, default: int = 0) -> int:
    v = d.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
        raise _decode_error(key, v, "int")
    return int(v)


def get_str_list(d: dict[str, Any], key: str) -> list[str]:
    v = d.get(key)
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _decode_error(key, v, "[]string")
    return list(v)


def get_str_map(d: dict[str, Any], key: str) -> dict[str, str]:
    v = d.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
        raise _decode_error(key, v, "map[string]string")
    return {str(k): x for k, x in v.items()}


def get_duration_ns(d: dict[str, Any], key: str) -> int:
    """A duration field: Go duration string or integer nanoseconds; absent/empty is 0."""
    v = d.get(key)
    if v is None:
        return 0
    try:
        return parse_body_duration_ns(v)
    except ValueError as err:
        raise BadRequest(f"Request decode failed: {err}") from None
