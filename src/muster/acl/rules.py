"""The ACL rule language: parse HCL or JSON rule text into typed rules, and translate legacy rules.

A policy's ``Rules`` text is stored verbatim; it is parsed only to validate it (a write with
bad rules is refused before anything is proposed) and to compile it into an authorizer.

Syntax (Consul's ``acl/policy.go``):

* named resources, exact and prefix: ``key``/``key_prefix``, ``node``/``node_prefix``,
  ``service``/``service_prefix``, ``agent``/``agent_prefix``, ``session``/``session_prefix``,
  ``event``/``event_prefix``, ``query``/``query_prefix`` — each a block ``kind "label" {
  policy = "read" }``; service blocks may also carry ``intentions``;
* unnamed resources: ``acl``, ``operator``, ``keyring``, ``mesh``, ``peering`` = ``"read"``;
* access levels ``read``, ``write``, ``deny``, and ``list`` for keys only.

HCL goes through python-hcl2 (the one HCL library the project already depends on); HCL1's
JSON form is accepted as JSON, both as ``{"key": {"a": {...}}}`` and as lists of such objects.

Legacy syntax (tokens made through ``/v1/acl/create``): the un-suffixed blocks are *prefix*
rules and there is no ``acl`` rule.  ``translate_legacy`` rewrites such text into the current
syntax the way ``/v1/acl/rules/translate`` does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import MusterError

#: Named resources (exact block name; the prefix form adds ``_prefix``).
NAMED = ("key", "node", "service", "agent", "session", "event", "query")
#: Resources without a name: one access level each.
UNNAMED = ("acl", "operator", "keyring", "mesh", "peering")
ACCESS = frozenset({"read", "write", "deny"})
KEY_ACCESS = frozenset({"read", "write", "deny", "list"})
#: Merge precedence for the same resource/segment across policies (Consul takesPrecedenceOver).
PRECEDENCE = {"deny": 4, "write": 3, "list": 2, "read": 1, "": 0}

_GO_TYPE = {
    "key": "KeyRule",
    "node": "NodeRule",
    "service": "ServiceRule",
    "agent": "AgentRule",
    "session": "SessionRule",
    "event": "EventRule",
    "query": "PreparedQueryRule",
}


class RulesError(MusterError):
    """Rules that do not parse or validate; the policy write answers 500 with this text."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule.  ``segment`` is None for unnamed resources; ``access`` may be "" only for a
    service rule that sets ``intentions`` alone."""

    resource: str
    segment: str | None
    prefix: bool
    access: str
    intentions: str = ""


def parse_rules(text: str, legacy: bool = False) -> list[Rule]:
    """Parse and validate ``text``; ``RulesError`` names the first problem."""
    if not text.strip():
        return []
    raw = _load(text)
    out: list[Rule] = []
    for key, value in raw.items():
        out.extend(_rules_of(key, value, legacy))
    return out


def _load(text: str) -> dict[str, Any]:
    stripped = text.lstrip()
    data: Any
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as err:
            raise RulesError(f"Failed to parse ACL rules: {err}") from None
    else:
        data = _hcl(text)
    if not isinstance(data, dict):
        raise RulesError("Failed to parse ACL rules: top level must be an object")
    return data


def _hcl(text: str) -> Any:
    import hcl2
    from hcl2.utils import SerializationOptions

    options = SerializationOptions(
        with_comments=False,
        explicit_blocks=False,
        strip_string_quotes=True,
        preserve_heredocs=False,
        preserve_scientific_notation=False,
    )
    try:
        return hcl2.loads(text, serialization_options=options)
    # python-hcl2 raises lark's exception tree and assorted ValueErrors: all are syntax errors.
    except Exception as err:  # noqa: BLE001
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RulesError(f"Failed to parse ACL rules: {first}") from None


def _labelled(kind: str, value: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(label, body)`` pairs of a named block, whatever shape the parser produced."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict):
            raise RulesError(f"Failed to parse ACL rules: {kind}: expected an object")
        for label, body in item.items():
            bodies = body if isinstance(body, list) else [body]
            for b in bodies:
                if not isinstance(b, dict):
                    raise RulesError(f"Failed to parse ACL rules: {kind} {json.dumps(label)}: expected a block")
                yield str(label), b


def _str_field(body: dict[str, Any], name: str) -> str:
    v = body.get(name, "")
    if v is None:
        return ""
    if not isinstance(v, str):
        raise RulesError(f"Failed to parse ACL rules: {name}: expected a string, got {json.dumps(v)}")
    return v


def _rules_of(key: str, value: Any, legacy: bool) -> Iterator[Rule]:
    if key in UNNAMED:
        if legacy and key == "acl":
            return
        level = value[-1] if isinstance(value, list) and value else value
        if not isinstance(level, str):
            raise RulesError(f"Failed to parse ACL rules: {key}: expected a string")
        if level and level not in ACCESS:
            raise RulesError(f'Invalid {key} policy: "{level}"')
        if level:
            yield Rule(key, None, False, level)
        return
    prefix = key.endswith("_prefix")
    kind = key[: -len("_prefix")] if prefix else key
    if kind not in NAMED:
        return  # unknown blocks are ignored, as Consul's decoder does
    if legacy:
        if prefix:
            return  # the legacy syntax has no *_prefix blocks
        prefix = True
    for label, body in _labelled(key, value):
        level = _str_field(body, "policy")
        intentions = _str_field(body, "intentions") if kind == "service" else ""
        go = f'&policy.{_GO_TYPE[kind]}{{Name:"{label}", Policy:"{level}"}}'
        allowed = KEY_ACCESS if kind == "key" else ACCESS
        if kind == "service":
            if level and level not in allowed:
                raise RulesError(f"Invalid service{'_prefix' if prefix else ''} policy: {go}")
            if intentions and intentions not in ACCESS:
                raise RulesError(f"Invalid service{'_prefix' if prefix else ''} intentions policy: {go}")
            if not intentions:
                intentions = "read" if level in ("read", "write") else "deny" if level == "deny" else ""
        elif level not in allowed:
            raise RulesError(f"Invalid {kind}{'_prefix' if prefix else ''} policy: {go}")
        yield Rule(kind, label, prefix, level, intentions)


# ---------------------------------------------------------------------- legacy translation


def _hcl_string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def translate_legacy(text: str) -> str:
    """Legacy rule text in the current syntax (``/v1/acl/rules/translate``).

    The output follows HCL's printer: blocks separated by a blank line, two-space indent, no
    trailing newline.  Un-suffixed named blocks become ``*_prefix`` blocks."""
    if not text.strip():
        return ""
    raw = _load(text)
    parts: list[str] = []
    for key, value in raw.items():
        if key in UNNAMED:
            level = value[-1] if isinstance(value, list) and value else value
            if isinstance(level, str):
                parts.append(f"{key} = {_hcl_string(level)}")
            continue
        kind = key[: -len("_prefix")] if key.endswith("_prefix") else key
        if kind not in NAMED:
            continue
        out_key = kind + "_prefix"
        for label, body in _labelled(key, value):
            lines = [f"{out_key} {_hcl_string(label)} {{"]
            for attr, v in body.items():
                if isinstance(v, str):
                    lines.append(f"  {attr} = {_hcl_string(v)}")
            lines.append("}")
            parts.append("\n".join(lines))
    return "\n\n".join(parts)
