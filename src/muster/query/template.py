"""Prepared-query templates: HIL ``${...}`` interpolation of a query's ``Service`` block.

A template query (``Template.Type = "name_prefix_match"``) answers every name it is the longest
prefix of.  Before execution every string of its ``Service`` block (service name, ``Near``,
tags, node/service meta values, ``IgnoreCheckIDs``, failover datacenters) is rendered with the
looked-up name (Consul ``agent/consul/prepared_query/template.go``):

* ``${name.full}``: the whole name looked up; ``${name.prefix}``: the template's Name;
  ``${name.suffix}``: the rest;
* ``${match(N)}``: capture group ``N`` of ``Template.Regexp`` applied to the full name (group 0
  is the whole match; ``""`` when the regexp does not match or has no such group);
* ``${agent.segment}``: the agent's network segment (always ``""`` in CE).

``$${`` is a literal ``${``.  Anything else inside ``${...}`` is a compile error, reported at
create time (Consul compiles and test-renders every template when it is stored).  Go's RE2
regexps and Python's differ in corners (lookaround, backreferences exist only here); patterns
that Python cannot compile are refused with Consul's error prefix.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import MusterError

__all__ = ["CompiledTemplate", "TemplateError", "compile_template"]

TEMPLATE_TYPE = "name_prefix_match"

_EXPR = re.compile(r"\s*(?:(name\.full|name\.prefix|name\.suffix|agent\.segment)|match\(\s*(-?\d+)\s*\))\s*\Z")


class TemplateError(MusterError):
    pass


Piece = str | Callable[["_Vars"], str]


@dataclass(frozen=True)
class _Vars:
    full: str
    prefix: str
    matches: tuple[str, ...]

    def var(self, name: str) -> str:
        if name == "name.full":
            return self.full
        if name == "name.prefix":
            return self.prefix
        if name == "name.suffix":
            return self.full[len(self.prefix):] if self.full.startswith(self.prefix) else self.full
        return ""  # agent.segment: CE has no segments


def _var_piece(name: str) -> Callable[[_Vars], str]:
    def piece(v: _Vars) -> str:
        return v.var(name)
    return piece


def _match_piece(n: int) -> Callable[[_Vars], str]:
    def piece(v: _Vars) -> str:
        return v.matches[n] if 0 <= n < len(v.matches) else ""
    return piece


def _parse(s: str) -> list[Piece]:
    out: list[Piece] = []
    i, lit = 0, []
    while i < len(s):
        if s.startswith("$${", i):
            lit.append("${")
            i += 3
            continue
        if s.startswith("${", i):
            end = s.find("}", i + 2)
            if end < 0:
                raise TemplateError(f"Failed compiling template: unterminated interpolation in {s!r}")
            m = _EXPR.match(s[i + 2:end])
            if m is None:
                raise TemplateError(f"Failed compiling template: unknown variable or function in ${{{s[i + 2:end]}}}")
            if lit:
                out.append("".join(lit))
                lit = []
            if m.group(1):
                out.append(_var_piece(m.group(1)))
            else:
                out.append(_match_piece(int(m.group(2))))
            i = end + 1
            continue
        lit.append(s[i])
        i += 1
    if lit:
        out.append("".join(lit))
    return out


def _walk(obj: Any, fn: Callable[[str], str]) -> Any:
    """Apply ``fn`` to every string value (map keys stay as they are)."""
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, list):
        return [_walk(x, fn) for x in obj]
    if isinstance(obj, dict):
        return {k: _walk(v, fn) for k, v in obj.items()}
    return obj


@dataclass(frozen=True)
class CompiledTemplate:
    prefix: str
    regexp: re.Pattern[str] | None
    remove_empty_tags: bool
    service: dict[str, Any]

    def render(self, full_name: str, query: dict[str, Any]) -> dict[str, Any]:
        """``query`` with its Service block rendered for ``full_name``."""
        matches: tuple[str, ...] = ()
        if self.regexp is not None:
            m = self.regexp.search(full_name)
            if m is not None:
                matches = (m.group(0),) + tuple(g or "" for g in m.groups())
        v = _Vars(full_name, self.prefix, matches)
        cache: dict[str, str] = {}

        def interp(s: str) -> str:
            if s not in cache:
                cache[s] = "".join(p if isinstance(p, str) else p(v) for p in _parse(s))
            return cache[s]

        out = copy.deepcopy(query)
        svc = _walk(self.service, interp)
        if self.remove_empty_tags and isinstance(svc.get("Tags"), list):
            svc["Tags"] = [t for t in svc["Tags"] if t]
        out["Service"] = svc
        return out


def compile_template(query: dict[str, Any]) -> CompiledTemplate:
    """Compile a query's template (``query["Template"]["Type"]`` must be set); raises
    :class:`TemplateError` with Consul's texts."""
    tpl = query.get("Template") or {}
    if tpl.get("Type") != TEMPLATE_TYPE:
        raise TemplateError(f"Bad Template.Type '{tpl.get('Type', '')}'")
    rx = None
    if tpl.get("Regexp"):
        try:
            rx = re.compile(tpl["Regexp"])
        except re.error as err:
            raise TemplateError(f"Failed compiling Regexp for template: {err}") from None
    service = query.get("Service") or {}
    _walk(service, lambda s: (_parse(s), s)[1])  # every string must compile
    return CompiledTemplate(query.get("Name", ""), rx, bool(tpl.get("RemoveEmptyTags")), service)
