"""The finite state machine: applies one encoded command at one log index to the store.

One registry maps each ``MessageType`` to its handler.  ``apply`` is deterministic: it reads
only the command and the store (never the clock, never randomness), so every replica that
applies the same log reaches the same state.  A command type we do not know is fatal
(``FatalApplyError``): skipping it would let this replica diverge from the others.

A command the store refuses (``StateError``, e.g. an invalid session on acquire) is not fatal:
it is the *result* of that index, returned to whoever proposed it, and the store is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import FatalApplyError, MusterError
from .state.store import StateStore
from .structs import (
    ACLAuthMethodDeleteCommand,
    ACLAuthMethodSetCommand,
    ACLBindingRuleDeleteCommand,
    ACLBindingRuleSetCommand,
    ACLBootstrapCommand,
    ACLPolicyDeleteCommand,
    ACLPolicySetCommand,
    ACLRoleDeleteCommand,
    ACLRoleSetCommand,
    ACLTokenDeleteCommand,
    ACLTokenSetCommand,
    AutopilotCommand,
    DeregisterCommand,
    KVSCommand,
    MessageType,
    NoopCommand,
    RegisterCommand,
    RestoreCommand,
    SessionCommand,
    TombstoneCommand,
    TxnCommand,
    UnknownCommand,
    decode_command,
)

Handler = Callable[[int, Any], Any]


class FSM:
    def __init__(self, store: StateStore | None = None) -> None:
        self.store = store if store is not None else StateStore()
        self.last_applied = 0
        #: Called after every applied command with (index, command, result).  The server uses it
        #: for leader-only side effects (session TTL timers); it must not mutate the store.
        self.on_apply: Callable[[int, Any, Any], None] | None = None
        self._handlers: dict[type[Any], Handler] = {}
        self._register(KVSCommand, self._apply_kvs)
        self._register(RegisterCommand, self._apply_register)
        self._register(DeregisterCommand, self._apply_deregister)
        self._register(SessionCommand, self._apply_session)
        self._register(TxnCommand, self._apply_txn)
        self._register(TombstoneCommand, self._apply_tombstone)
        self._register(AutopilotCommand, self._apply_autopilot)
        self._register(RestoreCommand, self._apply_restore)
        self._register(NoopCommand, lambda idx, cmd: None)
        acl = self.store.acl
        self._register(ACLBootstrapCommand, lambda idx, c: acl.bootstrap(idx, c.reset_index, c.token))
        self._register(ACLTokenSetCommand, lambda idx, c: acl.token_set(idx, c.tokens))
        self._register(ACLTokenDeleteCommand, lambda idx, c: acl.token_delete(idx, c.accessors))
        self._register(ACLPolicySetCommand, lambda idx, c: acl.policy_set(idx, c.policies))
        self._register(ACLPolicyDeleteCommand, lambda idx, c: acl.policy_delete(idx, c.ids))
        self._register(ACLRoleSetCommand, lambda idx, c: acl.role_set(idx, c.roles))
        self._register(ACLRoleDeleteCommand, lambda idx, c: acl.role_delete(idx, c.ids))
        self._register(ACLBindingRuleSetCommand, lambda idx, c: acl.binding_rule_set(idx, c.rules))
        self._register(ACLBindingRuleDeleteCommand, lambda idx, c: acl.binding_rule_delete(idx, c.ids))
        self._register(ACLAuthMethodSetCommand, lambda idx, c: acl.auth_method_set(idx, c.methods))
        self._register(ACLAuthMethodDeleteCommand, lambda idx, c: acl.auth_method_delete(idx, c.names))
        assert len(self._handlers) == len(MessageType), "every message type needs a handler"

    def _register(self, cls: type[Any], fn: Handler) -> None:
        if cls in self._handlers:
            raise ValueError(f"handler for {cls.__name__} registered twice")
        self._handlers[cls] = fn

    def apply(self, index: int, data: bytes) -> Any:
        """Apply the command at ``index``; returns its result or the ``MusterError`` it raised."""
        if index <= self.last_applied:
            raise FatalApplyError(f"index {index} applied out of order (last applied {self.last_applied})")
        try:
            cmd = decode_command(data)
        except UnknownCommand as err:
            raise FatalApplyError(f"refusing to apply index {index}: {err}") from err
        self.last_applied = index
        return self.apply_decoded(index, cmd)

    def apply_decoded(self, index: int, cmd: Any) -> Any:
        """Apply an already-decoded command (the single-server log skips the decode)."""
        self.last_applied = index
        try:
            res = self._handlers[type(cmd)](index, cmd)
        except MusterError as err:
            res = err
        if self.on_apply is not None:
            self.on_apply(index, cmd, res)
        return res

    # ------------------------------------------------------------------ handlers

    def _apply_kvs(self, idx: int, c: KVSCommand) -> Any:
        s = self.store
        op = c.op
        if op == "set":
            return s.kv_set(idx, c.key, c.value, c.flags)
        if op == "cas":
            return s.kv_cas(idx, c.key, c.value, c.flags, c.index)
        if op == "delete":
            return s.kv_delete(idx, c.key)
        if op == "delete-cas":
            return s.kv_delete_cas(idx, c.key, c.index)
        if op == "delete-tree":
            return s.kv_delete_tree(idx, c.key)
        if op == "lock":
            return s.kv_lock(idx, c.key, c.value, c.flags, c.session, c.ts)
        if op == "unlock":
            return s.kv_unlock(idx, c.key, c.value, c.flags, c.session)
        raise FatalApplyError(f"unknown KV op {op!r} at index {idx}")

    def _apply_register(self, idx: int, c: RegisterCommand) -> Any:
        # Validate service/check links before touching anything: a refused registration must
        # leave no partial node behind.  ensure_registration runs under the undo log.
        s = self.store
        s._undo = []
        try:
            s.ensure_registration(idx, c.node, c.service, c.checks, c.skip_node_update, c.ts)
        except MusterError:
            undo, s._undo = s._undo, None
            for fn in reversed(undo):
                fn()
            raise
        s._undo = None
        return True

    def _apply_deregister(self, idx: int, c: DeregisterCommand) -> Any:
        self.store.deregister(idx, c.node, c.service_id, c.check_id, c.ts)
        return True

    def _apply_session(self, idx: int, c: SessionCommand) -> Any:
        if c.op == "create":
            return self.store.session_create(idx, c.session)
        if c.op == "destroy":
            return self.store.session_destroy(idx, c.session["ID"], c.ts)
        raise FatalApplyError(f"unknown session op {c.op!r} at index {idx}")

    def _apply_txn(self, idx: int, c: TxnCommand) -> Any:
        return self.store.txn_apply(idx, c.ops, c.ts)

    def _apply_tombstone(self, idx: int, c: TombstoneCommand) -> Any:
        return self.store.kv_reap_tombstones(idx, c.index)

    def _apply_autopilot(self, idx: int, c: AutopilotCommand) -> Any:
        s = self.store
        cur = s.autopilot
        if c.cas >= 0 and int(cur.get("ModifyIndex", 0)) != c.cas:
            return False
        new = dict(c.config)
        new["CreateIndex"] = cur.get("CreateIndex", idx)
        new["ModifyIndex"] = idx
        s.autopilot = new
        s._bump("autopilot", idx)
        return True

    def _apply_restore(self, idx: int, c: RestoreCommand) -> Any:
        """A user snapshot replaces every table; the store wakes every blocking query."""
        self.store.restore(c.state)
        return True

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> bytes:
        return self.store.snapshot()

    def restore(self, data: bytes, index: int) -> None:
        self.store.restore(data)
        self.last_applied = index
