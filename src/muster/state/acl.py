"""The replicated ACL tables: tokens, policies, roles, auth methods, binding rules, bootstrap.

One ``ACLTables`` instance lives in the state store; only the FSM writes it, at a log index, so
every server holds the same tables and resolves tokens locally (``muster.acl.resolver``).

Invariants (checked on every write, before anything changes, so a refused write changes nothing):

* a token's ``AccessorID`` and ``SecretID`` are each unique; ``by_secret`` maps every live
  secret to its accessor;
* policy and role names are unique (``policy_names``/``role_names``);
* ``CreateIndex`` is the index of the first write of a row and never changes; ``ModifyIndex``
  is the index of its latest write;
* ``bootstrap_index`` is 0 until the one bootstrap, then the index it happened at; a later
  bootstrap needs that exact value as its reset index (Consul's ``acl-bootstrap-reset`` file).

``index`` is the tables' modification index (``X-Consul-Index`` of ACL reads).  ``version`` is a
local counter bumped by every change and every restore (which may move ``index`` backwards):
the resolver's authorizer cache is valid for exactly one value of it.  Writes fire ``watch`` so blocking reads of ``/v1/acl/*`` wake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ..acl.model import ACLPolicy, ACLRole, ACLToken
from ..errors import StateError
from .watch import Watch


class ACLTables:
    def __init__(self) -> None:
        self.tokens: dict[str, ACLToken] = {}
        self.by_secret: dict[str, str] = {}
        self.policies: dict[str, ACLPolicy] = {}
        self.policy_names: dict[str, str] = {}
        self.roles: dict[str, ACLRole] = {}
        self.role_names: dict[str, str] = {}
        self.auth_methods: dict[str, dict[str, Any]] = {}
        self.binding_rules: dict[str, dict[str, Any]] = {}
        self.bootstrap_index = 0
        self.index = 0
        self.version = 0
        self.watch = Watch()
        #: Called with the index after every change (the store bumps its own table index).
        self.on_change: Callable[[int], None] | None = None

    # ------------------------------------------------------------------ reads (ACLTables protocol)

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

    # ------------------------------------------------------------------ writes (FSM only)

    def _changed(self, idx: int) -> None:
        self.index = max(self.index, idx)
        self.version += 1
        self.watch.fire()
        self.watch = Watch()
        if self.on_change is not None:
            self.on_change(idx)

    def bootstrap(self, idx: int, reset_index: int, token: ACLToken) -> ACLToken:
        if self.bootstrap_index:
            if reset_index == 0:
                raise StateError(f"Permission denied: ACL bootstrap no longer allowed (reset index: {self.bootstrap_index})", 403)
            if reset_index != self.bootstrap_index:
                raise StateError(
                    f"Invalid bootstrap reset index (specified {reset_index}, reset index: {self.bootstrap_index})"
                )
        self._check_tokens([token])
        self.bootstrap_index = idx
        self._put_token(idx, token)
        self._changed(idx)
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

    def _put_token(self, idx: int, t: ACLToken) -> None:
        cur = self.tokens.get(t.AccessorID)
        t = msgspec.structs.replace(t, CreateIndex=cur.CreateIndex if cur is not None else idx, ModifyIndex=idx)
        self.tokens[t.AccessorID] = t
        self.by_secret[t.SecretID] = t.AccessorID

    def token_set(self, idx: int, tokens: list[ACLToken]) -> bool:
        self._check_tokens(tokens)
        for t in tokens:
            self._put_token(idx, t)
        self._changed(idx)
        return True

    def token_delete(self, idx: int, accessors: list[str]) -> bool:
        for acc in accessors:
            t = self.tokens.pop(acc, None)
            if t is not None:
                self.by_secret.pop(t.SecretID, None)
        self._changed(idx)
        return True

    def policy_set(self, idx: int, policies: list[ACLPolicy]) -> bool:
        for p in policies:
            owner = self.policy_names.get(p.Name)
            if owner is not None and owner != p.ID:
                raise StateError(f'Invalid Policy: A Policy with Name "{p.Name}" already exists')
        for p in policies:
            cur = self.policies.get(p.ID)
            if cur is not None:
                self.policy_names.pop(cur.Name, None)
            p = msgspec.structs.replace(p, CreateIndex=cur.CreateIndex if cur is not None else idx, ModifyIndex=idx)
            self.policies[p.ID] = p
            self.policy_names[p.Name] = p.ID
        self._changed(idx)
        return True

    def policy_delete(self, idx: int, ids: list[str]) -> bool:
        for pid in ids:
            p = self.policies.pop(pid, None)
            if p is not None:
                self.policy_names.pop(p.Name, None)
        self._changed(idx)
        return True

    def role_set(self, idx: int, roles: list[ACLRole]) -> bool:
        for r in roles:
            owner = self.role_names.get(r.Name)
            if owner is not None and owner != r.ID:
                raise StateError(f'Invalid Role: A Role with Name "{r.Name}" already exists')
        for r in roles:
            cur = self.roles.get(r.ID)
            if cur is not None:
                self.role_names.pop(cur.Name, None)
            r = msgspec.structs.replace(r, CreateIndex=cur.CreateIndex if cur is not None else idx, ModifyIndex=idx)
            self.roles[r.ID] = r
            self.role_names[r.Name] = r.ID
        self._changed(idx)
        return True

    def role_delete(self, idx: int, ids: list[str]) -> bool:
        for rid in ids:
            r = self.roles.pop(rid, None)
            if r is not None:
                self.role_names.pop(r.Name, None)
        self._changed(idx)
        return True

    def auth_method_set(self, idx: int, methods: list[dict[str, Any]]) -> bool:
        for m in methods:
            cur = self.auth_methods.get(m["Name"])
            row = dict(m, CreateIndex=cur["CreateIndex"] if cur is not None else idx, ModifyIndex=idx)
            self.auth_methods[m["Name"]] = row
        self._changed(idx)
        return True

    def auth_method_delete(self, idx: int, names: list[str]) -> bool:
        for n in names:
            if self.auth_methods.pop(n, None) is not None:
                for rid in [k for k, v in self.binding_rules.items() if v.get("AuthMethod") == n]:
                    del self.binding_rules[rid]
                for acc in [a for a, t in self.tokens.items() if t.AuthMethod == n]:
                    self.by_secret.pop(self.tokens.pop(acc).SecretID, None)
        self._changed(idx)
        return True

    def binding_rule_set(self, idx: int, rules: list[dict[str, Any]]) -> bool:
        for r in rules:
            if r.get("AuthMethod") not in self.auth_methods:
                raise StateError(f"failed inserting acl binding rule: auth method not found: {r.get('AuthMethod')!r}")
        for r in rules:
            cur = self.binding_rules.get(r["ID"])
            self.binding_rules[r["ID"]] = dict(r, CreateIndex=cur["CreateIndex"] if cur is not None else idx, ModifyIndex=idx)
        self._changed(idx)
        return True

    def binding_rule_delete(self, idx: int, ids: list[str]) -> bool:
        for i in ids:
            self.binding_rules.pop(i, None)
        self._changed(idx)
        return True

    # ------------------------------------------------------------------ snapshot

    def snapshot(self) -> dict[str, Any]:
        return {
            "tokens": [msgspec.to_builtins(t) for t in self.tokens.values()],
            "policies": [msgspec.to_builtins(p) for p in self.policies.values()],
            "roles": [msgspec.to_builtins(r) for r in self.roles.values()],
            "auth_methods": list(self.auth_methods.values()),
            "binding_rules": list(self.binding_rules.values()),
            "bootstrap_index": self.bootstrap_index,
            "index": self.index,
        }

    def restore(self, data: dict[str, Any] | None) -> None:
        """Replace every table with ``data`` (a ``snapshot()``; None for a pre-ACL snapshot)."""
        data = data or {}
        watch = self.watch
        on_change = self.on_change
        version = self.version
        self.__init__()  # type: ignore[misc]
        self.on_change = on_change
        self.version = version + 1
        for t in data.get("tokens", []):
            tok = msgspec.convert(t, ACLToken)
            self.tokens[tok.AccessorID] = tok
            self.by_secret[tok.SecretID] = tok.AccessorID
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
        # A restore may move the index backwards: make sure every cached authorizer is dropped.
        self.index = int(data.get("index", 0))
        self.watch = Watch()
        watch.fire()

    def summary(self) -> dict[str, int]:
        return {"ACLToken": len(self.tokens), "ACLPolicy": len(self.policies), "ACLRole": len(self.roles)}
