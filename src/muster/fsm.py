"""The finite state machine: applies one encoded command at one log index to the store.

One registry maps each ``MessageType`` to its handler.  ``apply`` is deterministic: it reads
only the command and the store (never the clock, never randomness), so every replica that
applies the same log reaches the same state.  A command type we do not know is fatal
(``FatalApplyError``): skipping it would let this replica diverge from the others.

Every command runs in one write transaction of the store (``store.write(index)``): it applies
entirely or not at all.  A command the store refuses (``StateError``, e.g. an invalid session on
acquire) is not fatal: it is the *result* of that index, returned to whoever proposed it, and
the transaction's rollback leaves the store, its indexes and its watches untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .errors import FatalApplyError, MusterError, StateError
from .state.store import StateStore
from .state.txn import apply_ops
from .state.write import WriteTxn
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
    ConfigEntryCommand,
    ConnectCACommand,
    CoordinateBatchUpdateCommand,
    DeregisterCommand,
    KVSCommand,
    MessageType,
    NoopCommand,
    PreparedQueryCommand,
    RegisterCommand,
    RestoreCommand,
    SessionCommand,
    TombstoneCommand,
    TxnCommand,
    UnknownCommand,
    decode_command,
)

Handler = Callable[[WriteTxn, Any], Any]


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
        self._register(CoordinateBatchUpdateCommand, self._apply_coordinates)
        self._register(PreparedQueryCommand, self._apply_prepared_query)
        self._register(ConfigEntryCommand, self._apply_config_entry)
        self._register(ConnectCACommand, self._apply_connect_ca)
        self._register(RestoreCommand, self._apply_restore)
        self._register(NoopCommand, lambda tx, cmd: None)
        self._register(ACLBootstrapCommand, lambda tx, c: tx.tables.acl.bootstrap(tx, c.reset_index, c.token))
        self._register(ACLTokenSetCommand, lambda tx, c: tx.tables.acl.token_set(tx, c.tokens))
        self._register(ACLTokenDeleteCommand, lambda tx, c: tx.tables.acl.token_delete(tx, c.accessors))
        self._register(ACLPolicySetCommand, lambda tx, c: tx.tables.acl.policy_set(tx, c.policies))
        self._register(ACLPolicyDeleteCommand, lambda tx, c: tx.tables.acl.policy_delete(tx, c.ids))
        self._register(ACLRoleSetCommand, lambda tx, c: tx.tables.acl.role_set(tx, c.roles))
        self._register(ACLRoleDeleteCommand, lambda tx, c: tx.tables.acl.role_delete(tx, c.ids))
        self._register(ACLBindingRuleSetCommand, lambda tx, c: tx.tables.acl.binding_rule_set(tx, c.rules))
        self._register(ACLBindingRuleDeleteCommand, lambda tx, c: tx.tables.acl.binding_rule_delete(tx, c.ids))
        self._register(ACLAuthMethodSetCommand, lambda tx, c: tx.tables.acl.auth_method_set(tx, c.methods))
        self._register(ACLAuthMethodDeleteCommand, lambda tx, c: tx.tables.acl.auth_method_delete(tx, c.names))
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
        """Apply an already-decoded command (the single-server log skips the decode).

        The handler runs inside one write transaction: if it raises, every change it made is
        rolled back (tables, indexes, watches) before the error becomes the result
        (``MusterError``) or propagates (anything else, a bug: fatal for this replica)."""
        self.last_applied = index
        handler = self._handlers[type(cmd)]
        # ``with self.store.write(index) as tx: res = handler(tx, cmd)``, unrolled: the same
        # commit/rollback, without the context manager's cost on the path of every write.
        tx = self.store.write(index)
        try:
            res = handler(tx, cmd)
        except MusterError as err:
            tx.rollback()
            res = err
        except BaseException:
            tx.rollback()
            raise
        else:
            tx.commit()
        if self.on_apply is not None:
            self.on_apply(index, cmd, res)
        return res

    # ------------------------------------------------------------------ handlers

    def _apply_kvs(self, tx: WriteTxn, c: KVSCommand) -> Any:
        kv = tx.tables.kv
        op = c.op
        tx.meta = (c.ts, c.accessor, c.addr, c.rollback_of)
        if c.rollback_of:
            # A rollback is an ordinary CAS write (or CAS delete) of an old version.
            if op == "cas":
                return kv.cas(tx, c.key, c.value, c.flags, c.index, "rollback")
            if op == "delete-cas":
                return kv.delete_cas(tx, c.key, c.index, "rollback-delete")
            raise FatalApplyError(f"KV op {op!r} cannot be a rollback at index {tx.index}")
        if op == "set":
            return kv.set(tx, c.key, c.value, c.flags)
        if op == "cas":
            return kv.cas(tx, c.key, c.value, c.flags, c.index)
        if op == "delete":
            return kv.delete(tx, c.key)
        if op == "delete-cas":
            return kv.delete_cas(tx, c.key, c.index)
        if op == "delete-tree":
            return kv.delete_tree(tx, c.key)
        if op == "lock":
            return kv.lock(tx, c.key, c.value, c.flags, c.session, c.ts)
        if op == "unlock":
            return kv.unlock(tx, c.key, c.value, c.flags, c.session)
        raise FatalApplyError(f"unknown KV op {op!r} at index {tx.index}")

    def _apply_register(self, tx: WriteTxn, c: RegisterCommand) -> Any:
        # A refused registration (a check naming a missing service...) raises after the node
        # may have been written: the transaction rolls it back.
        tx.meta = (c.ts, "", "", 0)
        tx.tables.catalog.ensure_registration(tx, c.node, c.service, c.checks, c.skip_node_update, c.ts)
        return True

    def _apply_deregister(self, tx: WriteTxn, c: DeregisterCommand) -> Any:
        tx.meta = (c.ts, "", "", 0)
        tx.tables.catalog.deregister(tx, c.node, c.service_id, c.check_id, c.ts)
        return True

    def _apply_session(self, tx: WriteTxn, c: SessionCommand) -> Any:
        tx.meta = (c.ts, c.accessor, c.addr, 0)
        if c.op == "create":
            return tx.tables.sessions.create(tx, c.session)
        if c.op == "destroy":
            return tx.tables.sessions.destroy(tx, c.session["ID"], c.ts)
        raise FatalApplyError(f"unknown session op {c.op!r} at index {tx.index}")

    def _apply_txn(self, tx: WriteTxn, c: TxnCommand) -> Any:
        tx.meta = (c.ts, c.accessor, c.addr, 0)
        return apply_ops(tx, c.ops, c.ts)

    def _apply_tombstone(self, tx: WriteTxn, c: TombstoneCommand) -> Any:
        t = tx.tables
        n = t.kv.reap_tombstones(tx, c.index)
        t.kv_history.prune(tx, c.ts, t.kv.entries)
        return n

    def _apply_autopilot(self, tx: WriteTxn, c: AutopilotCommand) -> Any:
        return tx.tables.autopilot.set(tx, c.config, c.cas)

    def _apply_coordinates(self, tx: WriteTxn, c: CoordinateBatchUpdateCommand) -> Any:
        return tx.tables.coordinates.batch_update(tx, c.updates)

    def _apply_prepared_query(self, tx: WriteTxn, c: PreparedQueryCommand) -> Any:
        pq = tx.tables.prepared_queries
        if c.op == "delete":
            pq.delete(tx, str(c.query.get("ID", "")))
            return True
        if c.op in ("create", "update"):
            return pq.set(tx, c.op, c.query)
        raise StateError(f"unknown prepared query operation {c.op!r}")
    def _apply_config_entry(self, tx: WriteTxn, c: ConfigEntryCommand) -> Any:
        table = tx.tables.config_entries
        if c.op == "delete":
            return table.delete(tx, str(c.entry["Kind"]), str(c.entry["Name"]), c.cas)
        return table.set(tx, c.entry, c.cas)

    def _apply_connect_ca(self, tx: WriteTxn, c: ConnectCACommand) -> Any:
        return tx.tables.connect_ca.set(tx, c.config, c.roots, c.cas_roots)

    def _apply_restore(self, tx: WriteTxn, c: RestoreCommand) -> Any:
        """A user snapshot replaces every table; the commit wakes every blocking query."""
        tx.replace_tables(self.store.load(c.state))
        return True

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> bytes:
        return self.store.snapshot()

    def snapshot_stream(self) -> Iterator[bytes]:
        """The state at ``last_applied``, captured now, encoded piece by piece
        (``StateStore.snapshot_stream``)."""
        return self.store.snapshot_stream()

    def restore(self, data: bytes, index: int) -> None:
        self.store.restore(data)
        self.last_applied = index
