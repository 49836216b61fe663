"""ACL table: tokens, policies, roles, auth methods, binding rules and the bootstrap index.

Only the FSM writes it, at a log index, inside the command's write transaction, so every server
holds the same rows and resolves tokens locally (``muster.acl.resolver``).

Invariants (checked before any change; a refused write raises and the transaction rolls back):

* a token's ``AccessorID`` and ``SecretID`` are each unique; ``by_secret`` maps every live
  secret to its accessor;
* policy and role names are unique (``policy_names``/``role_names``);
* ``CreateIndex`` is the index of a row's first write and never changes; ``ModifyIndex`` the
  index of its latest;
* ``expiring`` maps the accessor of every token with an ``ExpirationTime`` to that time in
  seconds (parsed from the row, so every replica computes the same value): the leader's reaper
  reads it instead of scanning every token;
* ``bootstrap_index`` is 0 until the one bootstrap, then the index it happened at; a later
  bootstrap needs that exact value as its reset index (Consul's ``acl-bootstrap-reset`` file).

Index: ``acl`` (every ACL write bumps it; blocking reads of ``/v1/acl/*`` watch it).

``version`` is process-local and never repeats, across table instances too (a restore builds a
new ``Tables``): the resolver's authorizer cache is valid for exactly one value of it.  It moves
on every write attempt, so a rolled-back write only costs a cache refill.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import msgspec

from ..acl.model import ACLPolicy, ACLRole, ACLToken, parse_rfc3339
from ..errors import StateError
from .watch import WatchSet

if TYPE_CHECKING:
    from .tables import Tables
    from .write import WriteTxn

_versions = itertools.count(1)


class ACLTable:
    def __init__(self, tables: Tables) -> None:
        self._t = tables
        self.tokens: dict[str, ACLToken] = {}
        self.by_secret: dict[str, str] = {}
        self.expiring: dict[str, float] = {}
        self.policies: dict[str, ACLPolicy] = {}
        self.policy_names: dict[str, str] = {}
        self.roles: dict[str, ACLRole] = {}
        self.role_names: dict[str, str] = {}
        self.auth_methods: dict[str, dict[str, Any]] = {}
        self.binding_rules: dict[str, dict[str, Any]] = {}
        self.bootstrap_index = 0
        self.version = next(_versions)

    # ------------------------------------------------------------------ reads

    @property
    def index(self) -> int:
        return self._t.index("acl")

    def watch(self, ws: WatchSet | None) -> None:
        self._t.watches.table(ws, "acl")

    def acl_table_index(self) -> int:
        return self.version

    def acl_token_by_secret(self, secret: str) -> ACLToken | None:
        acc = self.by_secret.get(secret)
        return self.tokens.get(acc) if acc is not None else None

    def acl_policy_get(self, policy_id: str) -> ACLPolicy | None:
        return self.policies.get(policy_id)

    def acl_role_get(self, role_id: str) -> ACLRole | None:
        return self.roles.get(role_id)

    def policy_by_name(self, name: str) -> ACLPolicy | None:
        pid = self.policy_names.get(name)
        return self.policies.get(pid) if pid is not None else None

    def role_by_name(self, name: str) -> ACLRole | None:
        rid = self.role_names.get(name)
        return self.roles.get(rid) if rid is not None else None

    # ------------------------------------------------------------------ writes

    def _changed(self, tx: WriteTxn) -> None:
        self.version = next(_versions)
        tx.bump("acl")

    def bootstrap(self, tx: WriteTxn, reset_index: int, token: ACLToken) -> ACLToken:
        if self.bootstrap_index:
            if reset_index == 0:
                raise StateError(f"Permission denied: ACL bootstrap no longer allowed (reset index: {self.bootstrap_index})", 403)
            if reset_index != self.bootstrap_index:
                raise StateError(
                    f"Invalid bootstrap reset index (specified {reset_index}, reset index: {self.bootstrap_index})"
                )
        self._check_tokens([token])
        old = self.bootstrap_index

        def back() -> None:
            self.bootstrap_index = old

        tx.record(back)
        self.bootstrap_index = tx.index
        self._put_token(tx, token)
        self._changed(tx)
        return self.tokens[token.AccessorID]

    def _check_tokens(self, tokens: list[ACLToken]) -> None:
        seen: set[str] = set()
        for t in tokens:
            if not t.AccessorID or not t.SecretID:
                raise StateError("Missing token AccessorID or SecretID")
            owner = self.by_secret.get(t.SecretID)
            if (owner is not None and owner != t.AccessorID) or t.SecretID in seen:
                raise StateError("Invalid Token: SecretID is already in use")
            seen.add(t.SecretID)
            cur = self.tokens.get(t.AccessorID)
            if cur is not None and cur.SecretID != t.SecretID:
                raise StateError("Changing a token's SecretID is not permitted")

    def _put_token(self, tx: WriteTxn, t: ACLToken) -> None:
        cur = self.tokens.get(t.AccessorID)
        t = msgspec.structs.replace(t, CreateIndex=cur.CreateIndex if cur is not None else tx.index, ModifyIndex=tx.index)
        tx.put(self.tokens, t.AccessorID, t)
        tx.put(self.by_secret, t.SecretID, t.AccessorID)
        when = _expiry(t)
        if when is not None:
            tx.put(self.expiring, t.AccessorID, when)
        elif t.AccessorID in self.expiring:
            tx.pop(self.expiring, t.AccessorID)

    def token_set(self, tx: WriteTxn, tokens: list[ACLToken]) -> bool:
        self._check_tokens(tokens)
        for t in tokens:
            self._put_token(tx, t)
        self._changed(tx)
        return True

    def _drop_token(self, tx: WriteTxn, acc: str) -> None:
        t = self.tokens.get(acc)
        if t is not None:
            tx.pop(self.tokens, acc)
            tx.pop(self.by_secret, t.SecretID)
            if acc in self.expiring:
                tx.pop(self.expiring, acc)

    def token_delete(self, tx: WriteTxn, accessors: list[str]) -> bool:
        for acc in accessors:
            self._drop_token(tx, acc)
        self._changed(tx)
        return True

    def policy_set(self, tx: WriteTxn, policies: list[ACLPolicy]) -> bool:
        for p in policies:
            owner = self.policy_names.get(p.Name)
            if owner is not None and owner != p.ID:
                raise StateError(f'Invalid Policy: A Policy with Name "{p.Name}" already exists')
        for p in policies:
            cur = self.policies.get(p.ID)
            if cur is not None:
                tx.pop(self.policy_names, cur.Name)
            p = msgspec.structs.replace(p, CreateIndex=cur.CreateIndex if cur is not None else tx.index, ModifyIndex=tx.index)
            tx.put(self.policies, p.ID, p)
            tx.put(self.policy_names, p.Name, p.ID)
        self._changed(tx)
        return True

    def policy_delete(self, tx: WriteTxn, ids: list[str]) -> bool:
        for pid in ids:
            p = self.policies.get(pid)
            if p is not None:
                tx.pop(self.policies, pid)
                tx.pop(self.policy_names, p.Name)
        self._changed(tx)
        return True

    def role_set(self, tx: WriteTxn, roles: list[ACLRole]) -> bool:
        for r in roles:
            owner = self.role_names.get(r.Name)
            if owner is not None and owner != r.ID:
                raise StateError(f'Invalid Role: A Role with Name "{r.Name}" already exists')
        for r in roles:
            cur = self.roles.get(r.ID)
            if cur is not None:
                tx.pop(self.role_names, cur.Name)
            r = msgspec.structs.replace(r, CreateIndex=cur.CreateIndex if cur is not None else tx.index, ModifyIndex=tx.index)
            tx.put(self.roles, r.ID, r)
            tx.put(self.role_names, r.Name, r.ID)
        self._changed(tx)
        return True

    def role_delete(self, tx: WriteTxn, ids: list[str]) -> bool:
        for rid in ids:
            r = self.roles.get(rid)
            if r is not None:
                tx.pop(self.roles, rid)
                tx.pop(self.role_names, r.Name)
        self._changed(tx)
        return True

    def auth_method_set(self, tx: WriteTxn, methods: list[dict[str, Any]]) -> bool:
        for m in methods:
            cur = self.auth_methods.get(m["Name"])
            row = dict(m, CreateIndex=cur["CreateIndex"] if cur is not None else tx.index, ModifyIndex=tx.index)
            tx.put(self.auth_methods, m["Name"], row)
        self._changed(tx)
        return True

    def auth_method_delete(self, tx: WriteTxn, names: list[str]) -> bool:
        """Deleting a method deletes its binding rules and the tokens it issued (as Consul)."""
        for n in names:
            if n not in self.auth_methods:
                continue
            tx.pop(self.auth_methods, n)
            for rid in [k for k, v in self.binding_rules.items() if v.get("AuthMethod") == n]:
                tx.pop(self.binding_rules, rid)
            for acc in [a for a, t in self.tokens.items() if t.AuthMethod == n]:
                self._drop_token(tx, acc)
        self._changed(tx)
        return True

    def binding_rule_set(self, tx: WriteTxn, rules: list[dict[str, Any]]) -> bool:
        for r in rules:
            if r.get("AuthMethod") not in self.auth_methods:
                raise StateError(f"failed inserting acl binding rule: auth method not found: {r.get('AuthMethod')!r}")
        for r in rules:
            cur = self.binding_rules.get(r["ID"])
            tx.put(self.binding_rules, r["ID"], dict(r, CreateIndex=cur["CreateIndex"] if cur is not None else tx.index, ModifyIndex=tx.index))
        self._changed(tx)
        return True

    def binding_rule_delete(self, tx: WriteTxn, ids: list[str]) -> bool:
        for i in ids:
            tx.pop(self.binding_rules, i)
        self._changed(tx)
        return True

    # ------------------------------------------------------------------ snapshot

    def dump(self) -> dict[str, Any]:
        return {
            "tokens": [msgspec.to_builtins(t) for t in self.tokens.values()],
            "policies": [msgspec.to_builtins(p) for p in self.policies.values()],
            "roles": [msgspec.to_builtins(r) for r in self.roles.values()],
            "auth_methods": list(self.auth_methods.values()),
            "binding_rules": list(self.binding_rules.values()),
            "bootstrap_index": self.bootstrap_index,
        }

    def load(self, data: dict[str, Any] | None) -> None:
        """Fill this (fresh) table from a ``dump()``; None for a snapshot older than ACLs."""
        data = data or {}
        for t in data.get("tokens", []):
            tok = msgspec.convert(t, ACLToken)
            self.tokens[tok.AccessorID] = tok
            self.by_secret[tok.SecretID] = tok.AccessorID
            when = _expiry(tok)
            if when is not None:
                self.expiring[tok.AccessorID] = when
        for p in data.get("policies", []):
            pol = msgspec.convert(p, ACLPolicy)
            self.policies[pol.ID] = pol
            self.policy_names[pol.Name] = pol.ID
        for r in data.get("roles", []):
            role = msgspec.convert(r, ACLRole)
            self.roles[role.ID] = role
            self.role_names[role.Name] = role.ID
        for m in data.get("auth_methods", []):
            self.auth_methods[m["Name"]] = m
        for b in data.get("binding_rules", []):
            self.binding_rules[b["ID"]] = b
        self.bootstrap_index = int(data.get("bootstrap_index", 0))

    def expired(self, now: float, limit: int) -> list[str]:
        """Accessors of up to ``limit`` tokens whose expiry is at or before ``now``, oldest first."""
        due = sorted((when, acc) for acc, when in self.expiring.items() if when <= now)
        return [acc for _, acc in due[:limit]]

    def summary(self) -> dict[str, int]:
        return {"ACLToken": len(self.tokens), "ACLPolicy": len(self.policies), "ACLRole": len(self.roles)}


def _expiry(t: ACLToken) -> float | None:
    if not t.ExpirationTime:
        return None
    try:
        return parse_rfc3339(t.ExpirationTime)
    except ValueError:
        return None
