"""Type-checking one source against the schema.

Each source (a file, an ``-hcl`` fragment, the command-line flags, the ``-dev`` defaults) is
checked on its own, so that an error names the file it came from.  The result is a *typed
partial dict*: only the keys the source sets, with values converted to the field's kind.

Scalars accept the weak typing Consul's decoder accepts (``"8500"`` for an int, ``"true"``
for a bool), read with Go's rules (:mod:`muster.goparse`).  Unknown keys are errors, except
the pass-through keys (Consul features Muster does not model), which are kept in ``extra``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from muster.durations import parse_duration
from muster.goparse import parse_bool, parse_float, parse_int

from .errors import ConfigError, SourceError, type_name
from .merge import merge_block_list
from .schema import PASSTHROUGH_TOP, Config
from .sources import normalise_definition, normalise_source

__all__ = ["coerce_scalar", "coerce_source"]


def _coerce_scalar(kind: str, v: object, key: str) -> Any:
    """Convert a scalar config value, accepting the weak typing Consul's decoder accepts
    (``"8500"`` for ints, ``"true"`` for bools)."""
    base = kind[3:] if kind.startswith("opt") else kind
    if v is None and kind.startswith("opt"):
        return None
    if base == "str":
        if isinstance(v, str):
            return v
        if isinstance(v, int | float) and not isinstance(v, bool):
            return str(v)
        raise SourceError(f"{key}: expected a string, got {type_name(v)}")
    if base == "bool":
        if isinstance(v, bool):
            return v
        if isinstance(v, str):
            try:
                return parse_bool(v)
            except ValueError:
                raise SourceError(f"{key}: invalid boolean {v!r}") from None
        if isinstance(v, int) and v in (0, 1):
            return bool(v)
        raise SourceError(f"{key}: expected a boolean, got {type_name(v)}")
    if base == "int":
        if isinstance(v, bool):
            raise SourceError(f"{key}: expected an integer, got bool")
        if isinstance(v, int):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, str):
            try:
                return parse_int(v)
            except ValueError:
                raise SourceError(f"{key}: invalid integer {v!r}") from None
        raise SourceError(f"{key}: expected an integer, got {type_name(v)}")
    if base == "float":
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
        if isinstance(v, str):
            try:
                return parse_float(v)
            except ValueError:
                raise SourceError(f"{key}: invalid number {v!r}") from None
        raise SourceError(f"{key}: expected a number, got {type_name(v)}")
    if base == "dur":
        if isinstance(v, str):
            try:
                return parse_duration(v)
            except ValueError as exc:
                raise SourceError(f"{key}: {exc}") from None
        if isinstance(v, int | float) and not isinstance(v, bool):
            # Consul's decoder stringifies numbers, which then lack a unit.
            raise SourceError(f'{key}: time: missing unit in duration "{v}"')
        raise SourceError(f"{key}: expected a duration string, got {type_name(v)}")
    raise AssertionError(f"unknown kind {kind}")


#: One scalar value of a given kind (for maps whose keys the schema cannot list, e.g. audit sinks).
coerce_scalar = _coerce_scalar


def _coerce_deflist(v: object, key: str) -> tuple[dict[str, Any], ...]:
    items: list[Any]
    if isinstance(v, dict):
        items = [v]
    elif isinstance(v, list):
        items = v
    else:
        raise SourceError(f"{key}: expected a list of definitions, got {type_name(v)}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise SourceError(f"{key}[{i}]: expected an object, got {type_name(item)}")
        out.append(normalise_definition(item, f"{key}[{i}]"))
    return tuple(out)


def _coerce_value(f: dataclasses.Field[Any], v: object, key: str) -> Any:
    kind = f.metadata["kind"]
    if kind == "section":
        return _coerce_section(f.metadata["cls"], merge_block_list(v, key), key + ".")
    if kind == "strlist":
        if isinstance(v, str):
            return (v,)
        if isinstance(v, list | tuple):
            return tuple(_coerce_scalar("str", x, f"{key}[{i}]") for i, x in enumerate(v))
        raise SourceError(f"{key}: expected a list of strings, got {type_name(v)}")
    if kind == "deflist":
        return _coerce_deflist(v, key)
    if kind in ("strmap", "durmap", "rawmap"):
        m = merge_block_list(v, key)
        if kind == "rawmap":
            return dict(m)
        inner = "str" if kind == "strmap" else "dur"
        return {str(k): _coerce_scalar(inner, x, f"{key}.{k}") for k, x in m.items()}
    return _coerce_scalar(kind, v, key)


def _coerce_section(cls: type, raw: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Type-check ``raw`` against dataclass ``cls``; return a typed partial dict (only keys present).

    Unknown keys are errors (as in Consul), except a class's ``PASSTHROUGH`` keys, which are
    collected under ``extra``.
    """
    fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("kind") != "internal"}
    passthrough: frozenset[str] = getattr(cls, "PASSTHROUGH", frozenset())
    out: dict[str, Any] = {}
    for k, v in raw.items():
        f = fields.get(k)
        if v is None and f is not None and k != "extra":
            continue  # JSON null means "not set" (Go pointer fields), so the default applies
        if f is None or k == "extra":
            if k in passthrough:
                out.setdefault("extra", {})[k] = v
                continue
            raise SourceError(f"invalid config key {prefix}{k}")
        out[k] = _coerce_value(f, v, prefix + k)
    return out


def coerce_source(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Normalise and type-check one configuration source; errors name the source."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"Error parsing {name}: top level must be an object, got {type_name(raw)}")
    try:
        normalised = normalise_source(raw)
        extra = {k: normalised.pop(k) for k in list(normalised) if k in PASSTHROUGH_TOP}
        typed = _coerce_section(Config, normalised, "")
    except SourceError as exc:
        raise ConfigError(f"Error parsing {name}: {exc}") from None
    if extra:
        typed["extra"] = extra
    return typed
