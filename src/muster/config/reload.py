"""What a reload may apply live, and what changed between two configurations.

The agent reloads (SIGHUP, ``PUT /v1/agent/reload``) by re-running
:func:`muster.config.parse_agent_flags` with its original argv, which re-reads every file,
then asks :func:`reloadable_diff` which changed keys it may apply; the rest
(:func:`non_reloadable_diff`) keep their old values until a restart, and the agent warns.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .schema import Config

__all__ = ["RELOADABLE_KEYS", "changed_keys", "non_reloadable_diff", "reloadable_diff"]

RELOADABLE_KEYS: tuple[str, ...] = (
    "log_level",
    "services",
    "checks",
    "node_meta",
    "dns_config",
    "limits",
    "acl.tokens",
)
"""Keys SIGHUP / ``PUT /v1/agent/reload`` apply live (docs/compat/config.md#reload)."""


def _get_path(cfg: Config, dotted: str) -> Any:
    obj: Any = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def changed_keys(old: Config, new: Config) -> frozenset[str]:
    """Top-level config keys whose values differ (``acl.tokens`` is reported separately from
    the rest of ``acl``); provenance fields (set_flags, config_files, warnings) are ignored."""
    out: set[str] = set()
    for f in dataclasses.fields(Config):
        if f.metadata.get("kind") == "internal" and f.name != "extra":
            continue
        if f.name == "acl":
            if old.acl.tokens != new.acl.tokens:
                out.add("acl.tokens")
            if dataclasses.replace(old.acl, tokens=new.acl.tokens) != new.acl:
                out.add("acl")
            continue
        if getattr(old, f.name) != getattr(new, f.name):
            out.add(f.name)
    return frozenset(out)


def reloadable_diff(old: Config, new: Config) -> frozenset[str]:
    """The subset of :data:`RELOADABLE_KEYS` whose value changed between ``old`` and ``new``.

    Anything else in :func:`changed_keys` needs a restart; the agent should log it.
    """
    return frozenset(k for k in RELOADABLE_KEYS if _get_path(old, k) != _get_path(new, k))


def non_reloadable_diff(old: Config, new: Config) -> frozenset[str]:
    """Changed keys that a reload cannot apply (the agent keeps the old values and warns)."""
    return changed_keys(old, new) - frozenset(RELOADABLE_KEYS)
