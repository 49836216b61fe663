"""Building a :class:`Config` from its sources, lowest precedence first.

    built-in defaults  <  -dev defaults  <  config files/dirs (in command-line order)
                       <  -hcl fragments  <  command-line flags

Each source is type-checked on its own (:mod:`.coerce`), the typed sources are merged
(:mod:`.merge`), the dataclasses are constructed, and :func:`.validate.finalise` checks the
cross-field rules and fills the derived values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .coerce import coerce_source
from .flags import parse_flags
from .merge import construct, merge_typed
from .schema import Config
from .sources import legacy_acl_keys, load_path, parse_text
from .validate import finalise

__all__ = ["config_from_dict", "parse_agent_flags"]

# Applied between the built-in defaults and config files when -dev is given (Consul DevSource).
_DEV_SOURCE: dict[str, Any] = {
    "bind_addr": "127.0.0.1",
    "client_addr": "127.0.0.1",
    "server": True,
    "bootstrap": True,
    "ui_config": {"enabled": True},
    "log_level": "debug",
    "ports": {"grpc": 8502},
    "performance": {"raft_multiplier": 1},
    "disable_anonymous_signature": True,
    "disable_keyring_file": True,
    "enable_debug": True,
}


def _build(sources: Iterable[tuple[str, Mapping[str, Any]]], *, set_flags: Iterable[str] = (),
           config_files: Sequence[str] = (), warnings: Sequence[str] = ()) -> Config:
    typed: dict[str, Any] = {}
    all_warnings = list(warnings)
    legacy_master = False
    for name, raw in sources:
        typed = merge_typed(typed, coerce_source(raw, name), Config)
        if isinstance(raw, Mapping):
            acl_warnings, legacy = legacy_acl_keys(raw)
            all_warnings.extend(acl_warnings)
            if legacy is not None:
                legacy_master = legacy
    cfg = construct(Config, typed)
    cfg = dataclasses.replace(
        cfg, set_flags=frozenset(set_flags), config_files=tuple(config_files), warnings=tuple(all_warnings)
    )
    if legacy_master:
        tokens = dataclasses.replace(cfg.acl.tokens, initial_management_legacy=True)
        cfg = dataclasses.replace(cfg, acl=dataclasses.replace(cfg.acl, tokens=tokens))
    return finalise(cfg)


def config_from_dict(raw: Mapping[str, Any], *, dev: bool = False) -> Config:
    """Build and validate a Config from one JSON-like dict of config keys (as in a JSON file).

    ``dev=True`` layers the ``-dev`` defaults underneath, exactly as the flag does.  Meant for
    tests and embedding; the agent uses :func:`parse_agent_flags`.
    """
    sources: list[tuple[str, Mapping[str, Any]]] = []
    if dev:
        sources.append(("-dev defaults", {**_DEV_SOURCE, "dev_mode": True}))
    sources.append(("config", raw))
    return _build(sources)


def parse_agent_flags(argv: Sequence[str]) -> Config:
    """Parse ``muster agent`` arguments (without the word ``agent``), load the config files they
    name, merge everything and validate.

    Raises :class:`UsageError` for a malformed command line (unknown flag, missing value,
    positional argument), :class:`HelpRequested` for ``-h``, and :class:`ConfigError` for bad
    values, unreadable/invalid files and failed validation.
    """
    parsed = parse_flags(argv)
    sources: list[tuple[str, Mapping[str, Any]]] = []
    if parsed.raw.get("dev_mode"):
        sources.append(("-dev defaults", _DEV_SOURCE))
    files: list[str] = []
    warnings: list[str] = []
    for p in parsed.config_paths:
        for name, data in load_path(p, parsed.config_format, warnings):
            files.append(name)
            sources.append((name, data))
    for i, frag in enumerate(parsed.hcl):
        sources.append((f"-hcl fragment {i + 1}", parse_text(frag, "hcl", f"-hcl fragment {i + 1}")))
    sources.append(("command-line flags", parsed.raw))
    return _build(sources, set_flags=parsed.set_flags, config_files=files, warnings=warnings)

