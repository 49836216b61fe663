"""Reading configuration sources: files, directories, HCL and JSON text, and normalising them.

Consul loads ``-config-file``/``-config-dir`` arguments in command-line order (a directory's
entries in lexical order, without recursion), then ``-hcl`` fragments.  Each source is parsed
to a JSON-like dict and normalised before type checking (:mod:`.coerce`):

* legacy and alias keys are rewritten to their canonical place (``ui`` ->
  ``ui_config.enabled``, ``acl_token`` -> ``acl.tokens.default``, ``service`` -> ``services``,
  ``acl.tokens.master`` -> ``initial_management``...); the modern spelling wins when both are
  present in one source, as in Consul;
* service and check definitions, which python-hcl2 returns with blocks wrapped in lists,
  are brought back to the shape the HTTP API takes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError, SourceError, type_name
from .merge import merge_block_list, merge_raw

__all__ = ["legacy_acl_keys", "load_path", "normalise_definition", "normalise_source", "parse_text"]


# Keys inside service/check definitions whose values are lists of objects; any other
# list-of-objects value in a definition is an HCL block and collapses to one object.
# Compared after lower-casing and dropping "_", because definitions may be written in the
# API's CamelCase ("Checks") as well as snake_case ("checks").
_DEF_LIST_KEYS = frozenset({"checks", "upstreams", "paths", "services"})
# User maps inside definitions: never rewritten.
_DEF_USER_MAPS = frozenset({"meta", "servicemeta", "nodemeta", "header", "taggedaddresses", "config"})


def _canon(key: str) -> str:
    return key.lower().replace("_", "")


def normalise_definition(d: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Normalise one service/check definition from a config file.

    HCL blocks arrive as lists of dicts: ``check { ... }`` becomes ``check = [{...}]``,
    ``meta { ... }`` becomes ``meta = [{...}]``.  We turn ``check`` back into a single object
    (extra ``check`` blocks are moved to ``checks``), keep ``checks``/``upstreams`` as lists,
    and collapse every other single block into an object.  Field names are otherwise left
    as written: the agent decodes definitions with its API rules (case-insensitive,
    snake_case aliases), which are the same for files and ``/v1/agent/service/register``.
    """
    out: dict[str, Any] = {}
    for k, v in d.items():
        ck = _canon(k)
        if ck in _DEF_USER_MAPS:
            out[k] = merge_block_list(v, f"{key}.{k}") if isinstance(v, list) else v
        elif ck in _DEF_LIST_KEYS:
            if isinstance(v, dict):
                v = [v]
            if not isinstance(v, list):
                raise SourceError(f"{key}.{k}: expected a list, got {type_name(v)}")
            out[k] = list(out.get(k, [])) + [
                normalise_definition(x, f"{key}.{k}[{i}]") if isinstance(x, dict) else x for i, x in enumerate(v)
            ]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            if ck == "check" and len(v) > 1:
                out["check"] = normalise_definition(v[0], f"{key}.check")
                extra = [normalise_definition(x, f"{key}.check") for x in v[1:]]
                out["checks"] = list(out.get("checks", [])) + extra
            else:
                merged: dict[str, Any] = {}
                for x in v:
                    merged = merge_raw(merged, x)
                out[k] = normalise_definition(merged, f"{key}.{k}")
        elif isinstance(v, dict):
            out[k] = normalise_definition(v, f"{key}.{k}")
        else:
            out[k] = v
    return out


def _set_if_absent(d: dict[str, Any], path: Sequence[str], value: object) -> None:
    for p in path[:-1]:
        nxt = d.get(p)
        if isinstance(nxt, list):  # hcl2 block form
            nxt = merge_block_list(nxt, p)
        if nxt is None:
            nxt = {}
        if not isinstance(nxt, dict):
            raise SourceError(f"{p}: expected an object, got {type_name(nxt)}")
        d[p] = nxt
        d = nxt
    d.setdefault(path[-1], value)


# Legacy / alias top-level keys -> canonical path.  Applied only when the canonical key is
# not also set in the same source (the modern spelling wins, as in Consul).
_TOP_ALIASES: dict[str, tuple[str, ...]] = {
    "ui": ("ui_config", "enabled"),
    "ui_dir": ("ui_config", "dir"),
    "ui_content_path": ("ui_config", "content_path"),
    "acl_token": ("acl", "tokens", "default"),
    "acl_agent_token": ("acl", "tokens", "agent"),
    "acl_agent_master_token": ("acl", "tokens", "agent_recovery"),
    "acl_master_token": ("acl", "tokens", "initial_management"),
    "acl_replication_token": ("acl", "tokens", "replication"),
    "acl_default_policy": ("acl", "default_policy"),
    "acl_down_policy": ("acl", "down_policy"),
    "acl_ttl": ("acl", "token_ttl"),
    "acl_datacenter": ("primary_datacenter",),
    "ca_file": ("tls", "defaults", "ca_file"),
    "ca_path": ("tls", "defaults", "ca_path"),
    "cert_file": ("tls", "defaults", "cert_file"),
    "key_file": ("tls", "defaults", "key_file"),
    "verify_incoming": ("tls", "defaults", "verify_incoming"),
    "verify_outgoing": ("tls", "defaults", "verify_outgoing"),
    "verify_server_hostname": ("tls", "internal_rpc", "verify_server_hostname"),
    "verify_incoming_https": ("tls", "https", "verify_incoming"),
    "verify_incoming_rpc": ("tls", "internal_rpc", "verify_incoming"),
    "tls_min_version": ("tls", "defaults", "tls_min_version"),
    "tls_cipher_suites": ("tls", "defaults", "tls_cipher_suites"),
}
# Alias keys whose values are appended to a list key.
_TOP_LIST_ALIASES: dict[str, str] = {
    "service": "services",
    "check": "checks",
    "recursor": "recursors",
    "start_join": "retry_join",
    "start_join_wan": "retry_join_wan",
}


# Pre-1.11 ACL spellings, with the replacement Consul names in its deprecation warning.
_LEGACY_ACL_TOP: dict[str, str] = {
    "acl_datacenter": "primary_datacenter",
    "acl_default_policy": "acl.default_policy",
    "acl_down_policy": "acl.down_policy",
    "acl_ttl": "acl.token_ttl",
    "acl_token": "acl.tokens.default",
    "acl_agent_token": "acl.tokens.agent",
    "acl_agent_master_token": "acl.tokens.agent_recovery",
    "acl_master_token": "acl.tokens.initial_management",
    "acl_replication_token": "acl.tokens.replication",
    "enable_acl_replication": "acl.enable_token_replication",
}
_LEGACY_ACL_TOKENS: dict[str, str] = {
    "master": "acl.tokens.initial_management",
    "agent_master": "acl.tokens.agent_recovery",
}


def legacy_acl_keys(raw: Mapping[str, Any]) -> tuple[list[str], bool | None]:
    """Consul's deprecation warnings for the legacy ACL keys of one raw source, and whether
    that source set the initial management token through a legacy key (True), the modern one
    (False), or not at all (None).  The modern spelling wins within one source."""
    warnings = [
        f"The '{k}' field is deprecated. Use the '{new}' field instead."
        for k, new in _LEGACY_ACL_TOP.items()
        if k in raw
    ]
    acl = raw.get("acl")
    blocks = acl if isinstance(acl, list) else [acl]
    modern = legacy = False
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        tokens = block.get("tokens")
        for t in tokens if isinstance(tokens, list) else [tokens]:
            if not isinstance(t, Mapping):
                continue
            for k, new in _LEGACY_ACL_TOKENS.items():
                if k in t:
                    warnings.append(f"The 'acl.tokens.{k}' field is deprecated. Use the '{new}' field instead.")
            modern = modern or "initial_management" in t
            legacy = legacy or "master" in t
    legacy = legacy or "acl_master_token" in raw
    return warnings, (False if modern else True if legacy else None)


# Consul's spelling of telemetry keys whose names are not identifiers -> the schema's field.
# Consul's only spelling is ``disable_compat_1.9`` (its mapstructure tag); ``disable_compat_1_9``
# is accepted too, and Consul's spelling wins when one block has both.
_TELEMETRY_KEYS: dict[str, str] = {"disable_compat_1.9": "disable_compat_1_9"}


def _telemetry_keys(v: object) -> object:
    """The ``telemetry`` block (an object, or HCL's list of blocks) with Consul's dotted keys
    renamed to the schema's; anything that is not an object is left for type checking."""
    if isinstance(v, list):
        return [_telemetry_keys(x) for x in v]
    if not isinstance(v, dict) or not any(k in v for k in _TELEMETRY_KEYS):
        return v
    out = {k: x for k, x in v.items() if k not in _TELEMETRY_KEYS}
    for k, field_name in _TELEMETRY_KEYS.items():
        if k in v:
            out[field_name] = v[k]
    return out


def normalise_source(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Rewrite legacy/alias keys into canonical ones (see the alias tables)."""
    out: dict[str, Any] = {}
    aliases: list[tuple[str, object]] = []
    for k, v in raw.items():
        if k in _TOP_ALIASES:
            aliases.append((k, v))
        elif k in _TOP_LIST_ALIASES:
            target = _TOP_LIST_ALIASES[k]
            items = v if isinstance(v, list) else [v]
            existing = out.get(target)
            out[target] = (existing if isinstance(existing, list) else [] if existing is None else [existing]) + items
        elif k == "acl":
            acl = merge_block_list(v, "acl") if isinstance(v, list) else v
            if isinstance(acl, dict) and "tokens" in acl:
                acl = dict(acl)
                tokens = acl["tokens"]
                if isinstance(tokens, list):
                    tokens = merge_block_list(tokens, "acl.tokens")
                if isinstance(tokens, dict):  # anything else is reported by type checking
                    tokens = dict(tokens)
                    if "master" in tokens:
                        tokens.setdefault("initial_management", tokens.pop("master"))
                    if "agent_master" in tokens:
                        tokens.setdefault("agent_recovery", tokens.pop("agent_master"))
                acl["tokens"] = tokens
            out[k] = acl
        elif k == "telemetry":
            out[k] = _telemetry_keys(v)
        elif k in out and isinstance(out[k], list):
            out[k] = out[k] + (v if isinstance(v, list) else [v])
        else:
            out[k] = v
    for k, v in aliases:
        _set_if_absent(out, _TOP_ALIASES[k], v)
    return out




# Consul parses HCL1, where a block body may use quoted keys (``node_meta { "rack-id" = "r1" }``);
# HCL2 only allows quoted keys in object expressions.  For keys that are user maps the two
# forms mean the same thing, so ``<map-key> {`` at the start of a line is rewritten to
# ``<map-key> = {`` before parsing.  Blocks that are not user maps are left alone.
_HCL_USER_MAP_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)(?P<key>node_meta|meta|service_meta|tagged_addresses|service_ttl|response_headers"
    r"|dashboard_url_templates|header)(?P<ws>[ \t]*)\{",
    re.MULTILINE,
)
# HCL1 identifiers may contain dots, HCL2's may not: Consul's ``disable_compat_1.9 = ...`` is
# rewritten to the schema's ``disable_compat_1_9`` before parsing (only as an attribute name at
# the start of a line or of a one-line block, so a string value that mentions it is untouched).
_HCL_DOTTED_KEY = re.compile(r"(?P<indent>(?:^|\{)[ \t]*)disable_compat_1\.9(?=[ \t]*=)", re.MULTILINE)


def _hcl_loads(text: str) -> Any:
    import hcl2
    from hcl2.utils import SerializationOptions

    text = _HCL_USER_MAP_BLOCK.sub(lambda m: f"{m['indent']}{m['key']} = {{", text)
    text = _HCL_DOTTED_KEY.sub(lambda m: f"{m['indent']}disable_compat_1_9", text)

    options = SerializationOptions(
        with_comments=False,
        explicit_blocks=False,
        strip_string_quotes=True,
        preserve_heredocs=False,
        preserve_scientific_notation=False,
    )
    return hcl2.loads(text, serialization_options=options)


def parse_text(text: str, fmt: str, name: str) -> Mapping[str, Any]:
    if fmt == "json":
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"Error parsing {name}: {exc}") from None
    else:
        try:
            data = _hcl_loads(text)
        # python-hcl2 surfaces lark's exception hierarchy plus assorted ValueErrors from its
        # transformer; any failure here is a syntax error in the user's file.
        except Exception as exc:  # noqa: BLE001
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"Error parsing {name}: {first}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Error parsing {name}: top level must be an object, got {type_name(data)}")
    return data


def _format_for(path: Path, forced: str | None) -> str | None:
    if forced:
        return forced
    if path.suffix == ".json":
        return "json"
    if path.suffix == ".hcl":
        return "hcl"
    return None


def _load_file(path: Path, fmt: str) -> tuple[str, Mapping[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Error loading {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Error loading {path}: not UTF-8 text ({exc.reason})") from None
    return str(path), parse_text(text, fmt, str(path))


def load_path(p: str, forced: str | None, warnings: list[str]) -> list[tuple[str, Mapping[str, Any]]]:
    """Load one ``-config-file``/``-config-dir`` argument, as Consul does.

    Either flag may name a file or a directory.  A directory loads its entries in lexical
    order without recursion.  A file is parsed by its extension (``.json``/``.hcl``) unless
    ``-config-format`` forces one format for every file; a file with another extension and
    no forced format is skipped with a warning (Consul's behaviour, not an error).
    """
    path = Path(p)
    try:
        exists = path.exists()
        is_dir = path.is_dir()
    except OSError as exc:
        raise ConfigError(f"Error loading {p}: {exc}") from None
    if not exists:
        raise ConfigError(f"Error loading {p}: no such file or directory")
    if is_dir:
        try:
            candidates = [path / entry for entry in sorted(os.listdir(path))]
        except OSError as exc:
            raise ConfigError(f"Error loading {p}: {exc.strerror or exc}") from None
        candidates = [c for c in candidates if not c.is_dir()]
    else:
        candidates = [path]
    out = []
    for child in candidates:
        fmt = _format_for(child, forced)
        if fmt is None:
            warnings.append(
                f"skipping file {child}, extension must be .hcl or .json, or config format must be set"
            )
            continue
        out.append(_load_file(child, fmt))
    return out
