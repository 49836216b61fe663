"""Deciding one permission check from compiled rules (Consul's ``acl/policy_authorizer.go``).

Compilation merges the rules of every policy a token carries: for the same resource, segment
and match kind (exact or prefix) the strongest level wins, ``deny > write > list > read``.

Lookup of a named resource: an *exact* rule for the name wins at once; otherwise the *longest*
prefix rule that the name starts with decides; no rule answers ``DEFAULT``.  Rules of one
resource never influence another (a ``service_prefix`` allow says nothing about keys).  A rule
grants: write -> read, list, write; list -> read, list; read -> read; deny -> nothing, and the
decision is final (no fall-through to a shorter prefix or to the default policy).

``DEFAULT`` falls through to the agent's default policy: ``allow`` allows everything except
the ACL system itself and snapshots (``acl``/``snapshot`` need an explicit ``acl = "write"``),
``deny`` denies everything.  With ACLs disabled every check is allowed (``MANAGE_ALL``).

Cost: an exact lookup is one dict probe; a prefix lookup probes ``name[:n]`` for each distinct
prefix length ``n`` (longest first), so a check costs a handful of dict probes, never a scan.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import PermissionDenied
from .rules import NAMED, PRECEDENCE, Rule


class Decision(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    DEFAULT = "default"


ANONYMOUS_ACCESSOR = "00000000-0000-0000-0000-000000000002"


def enforce(rule: str, need: str) -> Decision:
    """What rule level ``rule`` says about required level ``need`` (Consul ``enforce``)."""
    if rule == "write":
        return Decision.ALLOW
    if rule == "list":
        return Decision.ALLOW if need in ("list", "read") else Decision.DENY
    if rule == "read":
        return Decision.ALLOW if need == "read" else Decision.DENY
    if rule == "deny":
        return Decision.DENY
    return Decision.DEFAULT


@dataclass(slots=True)
class _Tree:
    """One named resource: exact and prefix rules with their distinct prefix lengths."""

    exact: dict[str, str] = field(default_factory=dict)
    prefix: dict[str, str] = field(default_factory=dict)
    lengths: tuple[int, ...] = ()

    def finish(self) -> None:
        self.lengths = tuple(sorted({len(p) for p in self.prefix}, reverse=True))

    def lookup(self, name: str) -> str | None:
        """The level of the governing rule for ``name``, or None when no rule covers it."""
        lvl = self.exact.get(name)
        if lvl is not None:
            return lvl
        prefix = self.prefix
        n = len(name)
        for length in self.lengths:
            if length <= n:
                lvl = prefix.get(name[:length])
                if lvl is not None:
                    return lvl
        return None


def _stronger(a: str | None, b: str) -> str:
    return b if a is None or PRECEDENCE[b] > PRECEDENCE[a] else a


class PolicyRules:
    """The merged, compiled rules of one or more policies."""

    __slots__ = ("trees", "unnamed")

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.trees: dict[str, _Tree] = {}
        self.unnamed: dict[str, str] = {}
        for r in rules:
            self._add(r)
        for t in self.trees.values():
            t.finish()

    def _add(self, r: Rule) -> None:
        if r.segment is None:
            self.unnamed[r.resource] = _stronger(self.unnamed.get(r.resource), r.access)
            return
        self._add_named(r.resource, r.segment, r.prefix, r.access)
        if r.resource == "service" and r.intentions:
            self._add_named("intention", r.segment, r.prefix, r.intentions)

    def _add_named(self, resource: str, segment: str, prefix: bool, access: str) -> None:
        tree = self.trees.setdefault(resource, _Tree())
        table = tree.prefix if prefix else tree.exact
        table[segment] = _stronger(table.get(segment), access)

    def decide(self, resource: str, segment: str, need: str) -> Decision:
        if resource in UNNAMED_RESOURCES:
            lvl = self._unnamed_level(resource)
            return enforce(lvl, need) if lvl is not None else Decision.DEFAULT
        if resource == "snapshot":
            lvl = self.unnamed.get("acl")
            if lvl is None:
                return Decision.DEFAULT
            return Decision.ALLOW if lvl == "write" else Decision.DENY
        tree = self.trees.get(resource)
        if tree is None:
            return Decision.DEFAULT
        lvl = tree.lookup(segment)
        return enforce(lvl, need) if lvl is not None else Decision.DEFAULT

    def _unnamed_level(self, resource: str) -> str | None:
        lvl = self.unnamed.get(resource)
        if lvl is None and resource == "peering":
            lvl = self.unnamed.get("mesh")
        if lvl is None and resource in ("mesh", "peering"):
            lvl = self.unnamed.get("operator")
        return lvl

    def key_write_prefix(self, prefix: str) -> Decision:
        """May every key under ``prefix`` be written (a recursive delete)?  Consul semantics:
        deny when the governing prefix rule is not write, or when any rule at or under
        ``prefix`` is not write; allow when a covering prefix rule is write; else default."""
        tree = self.trees.get("key")
        if tree is None:
            return Decision.DEFAULT
        covering: str | None = None
        for length in tree.lengths:
            if length <= len(prefix):
                lvl = tree.prefix.get(prefix[:length])
                if lvl is not None:
                    covering = lvl
                    break
        if covering is not None and covering != "write":
            return Decision.DENY
        for table in (tree.exact, tree.prefix):
            for seg, lvl in table.items():
                if seg.startswith(prefix) and lvl != "write":
                    return Decision.DENY
        if covering == "write":
            return Decision.ALLOW
        return Decision.DEFAULT


UNNAMED_RESOURCES = frozenset({"acl", "operator", "keyring", "mesh", "peering"})
NAMED_RESOURCES = frozenset(NAMED) | {"intention"}
RESOURCES = frozenset(NAMED) | UNNAMED_RESOURCES | {"intention", "snapshot"}


class Authorizer:
    """A token's compiled rules chained with the default policy.

    ``default`` is ``"allow"``, ``"deny"`` or ``"manage"`` (everything allowed: ACLs disabled).
    ``accessor`` names the token in denial messages ("" for a token-less ACL-disabled agent)."""

    __slots__ = ("rules", "default", "accessor", "management")

    def __init__(self, rules: PolicyRules | None, default: str, accessor: str = "") -> None:
        self.rules = rules
        self.default = default
        self.accessor = accessor
        self.management = self.allowed("acl", "", "write")

    def _fallback(self, resource: str) -> bool:
        if self.default == "manage":
            return True
        if self.default == "allow":
            return resource not in ("acl", "snapshot")
        return False

    def allowed(self, resource: str, segment: str, need: str) -> bool:
        """One check.  The named-resource path is inlined (it runs on every KV request): the
        governing rule's level decides as ``enforce`` does, no rule falls through to the default."""
        rules = self.rules
        if rules is not None:
            tree = rules.trees.get(resource)
            if tree is not None:
                lvl = tree.exact.get(segment)
                if lvl is None:
                    prefix = tree.prefix
                    n = len(segment)
                    for length in tree.lengths:
                        if length <= n:
                            lvl = prefix.get(segment[:length])
                            if lvl is not None:
                                break
                if lvl:
                    if lvl == "write":
                        return True
                    if lvl == "deny":
                        return False
                    if lvl == "list":
                        return need != "write"
                    return need == "read"
            elif resource not in NAMED_RESOURCES:
                d = rules.decide(resource, segment, need)
                if d is not Decision.DEFAULT:
                    return d is Decision.ALLOW
        default = self.default
        if default == "manage":
            return True
        return default == "allow" and resource != "acl" and resource != "snapshot"

    def unrestricted(self, resource: str) -> bool:
        """True when every check on ``resource`` is allowed (no rules, permissive default):
        list endpoints then skip per-item filtering."""
        return self.rules is None and self._fallback(resource)

    def key_write_prefix_allowed(self, prefix: str) -> bool:
        if self.rules is not None:
            d = self.rules.key_write_prefix(prefix)
            if d is not Decision.DEFAULT:
                return d is Decision.ALLOW
        return self._fallback("key")

    # ------------------------------------------------------------------ enforcement helpers

    def denied(self, resource: str, need: str, segment: str | None = None) -> PermissionDenied:
        """Consul's 403 text for a failed check (``acl/errors.go``)."""
        perm = f"'{resource}:{need}'"
        on = f' on "{segment}"' if segment is not None else ""
        if self.accessor == ANONYMOUS_ACCESSOR:
            return PermissionDenied(
                f"Permission denied: anonymous token lacks permission {perm}{on}. The anonymous token is "
                "used implicitly when a request does not specify a token."
            )
        if self.accessor:
            return PermissionDenied(f"Permission denied: token with AccessorID '{self.accessor}' lacks permission {perm}{on}")
        return PermissionDenied("Permission denied")

    def require(self, resource: str, need: str, segment: str = "") -> None:
        """Raise the 403 unless ``need`` is granted on ``resource``/``segment``."""
        if not self.allowed(resource, segment, need):
            if resource == "snapshot":  # Consul checks a snapshot as acl:write
                raise self.denied("acl", "write")
            named = resource not in UNNAMED_RESOURCES and resource != "snapshot"
            raise self.denied(resource, need, segment if named else None)

    def require_key_write_prefix(self, prefix: str) -> None:
        if not self.key_write_prefix_allowed(prefix):
            raise self.denied("key", "write", prefix)


#: ACLs disabled: every check passes.
MANAGE_ALL = Authorizer(None, "manage")
