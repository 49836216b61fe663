"""Merging configuration sources, with Consul's rules, and building the dataclasses.

Two levels of merge exist because sources are normalised before they are type-checked:

* :func:`merge_raw` / :func:`merge_block_list` merge untyped JSON-like dicts (python-hcl2
  returns repeated blocks as lists of dicts; one block may be written several times);
* :func:`merge_typed` merges type-checked partial dicts, driven by the schema's field kinds:
  scalars are replaced, lists (``strlist``, ``deflist``) appended, maps and sections merged
  key by key.  A later source wins.

:func:`construct` turns the merged typed dict into the frozen dataclasses; fields absent from
every source keep the schema's defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .errors import SourceError, type_name

__all__ = ["construct", "merge_block_list", "merge_raw", "merge_typed"]


def merge_block_list(v: object, key: str) -> dict[str, Any]:
    """Collapse python-hcl2's list-wrapped block form (``[{...}, {...}]``) into one dict."""
    if isinstance(v, dict):
        return v
    if isinstance(v, list) and all(isinstance(x, dict) for x in v):
        out: dict[str, Any] = {}
        for item in v:
            out = merge_raw(out, item)
        return out
    raise SourceError(f"{key}: expected an object, got {type_name(v)}")


def merge_raw(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Merge untyped dicts: nested dicts merged, lists appended, scalars replaced."""
    out = dict(a)
    for k, v in b.items():
        if k in out and isinstance(out[k], dict) and isinstance(v, dict):
            out[k] = merge_raw(out[k], v)
        elif k in out and isinstance(out[k], list) and isinstance(v, list):
            out[k] = out[k] + v
        else:
            out[k] = v
    return out


def merge_typed(a: dict[str, Any], b: Mapping[str, Any], cls: type) -> dict[str, Any]:
    """Merge typed partial dicts per Consul: scalars replaced, lists appended, maps merged."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = dict(a)
    for k, v in b.items():
        if k not in out:
            out[k] = v
            continue
        f = fields[k]
        kind = f.metadata.get("kind")
        if kind == "section":
            out[k] = merge_typed(out[k], v, f.metadata["cls"])
        elif kind in ("strlist", "deflist"):
            out[k] = tuple(out[k]) + tuple(v)
        elif kind in ("strmap", "durmap", "rawmap") or k == "extra":
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def construct(cls: type, typed: Mapping[str, Any]) -> Any:
    """Build dataclass ``cls`` (and its sections) from a merged typed dict; absent keys keep their defaults."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in typed:
            continue
        v = typed[f.name]
        if f.metadata.get("kind") == "section":
            v = construct(f.metadata["cls"], v)
        kwargs[f.name] = v
    return cls(**kwargs)
