"""Typed commands: every replicated change is one of these, applied by the FSM at a log index.

Commands travel as msgpack (``encode_command``/``decode_command``): the first byte is the
``MessageType``, the rest the msgpack body of that type's Struct.  The FSM refuses an unknown
type byte (see ``fsm.py``) so that replicas never diverge silently.

Commands never carry a reference to the clock: when a command's effect depends on time (a
lock-delay, a session invalidated at a moment), the leader stamps ``ts`` (wall seconds) into it
and every replica applies the same value.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from .acl.model import ACLPolicy, ACLRole, ACLToken


class MessageType(enum.IntEnum):
    REGISTER = 0
    DEREGISTER = 1
    KVS = 2
    SESSION = 3
    COORDINATE_BATCH_UPDATE = 5
    TXN = 6
    PREPARED_QUERY = 7
    TOMBSTONE = 8
    ACL_BOOTSTRAP = 11
    CONNECT_CA = 13
    AUTOPILOT = 14
    ACL_TOKEN_SET = 17
    ACL_TOKEN_DELETE = 18
    ACL_POLICY_SET = 19
    ACL_POLICY_DELETE = 20
    CONFIG_ENTRY = 22
    ACL_ROLE_SET = 23
    ACL_ROLE_DELETE = 24
    ACL_BINDING_RULE_SET = 25
    ACL_BINDING_RULE_DELETE = 26
    ACL_AUTH_METHOD_SET = 27
    ACL_AUTH_METHOD_DELETE = 28
    RESTORE = 62
    NOOP = 63


class KVSCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    """One KV write.  ``op`` is one of ``KV_OPS``.

    ``accessor`` (the caller's token AccessorID, when ACLs are on) and ``addr`` (the HTTP
    client's address) are who made the change, recorded in the key's history with ``ts``;
    ``rollback_of`` > 0 marks a ``cas``/``delete-cas`` as the rollback to that version
    (docs/kv-history.md).  Trailing fields with defaults: older encodings still decode."""

    op: str
    key: str
    value: bytes | None = None
    flags: int = 0
    index: int = 0
    session: str = ""
    ts: float = 0.0
    accessor: str = ""
    addr: str = ""
    rollback_of: int = 0


KV_OPS = frozenset({"set", "cas", "delete", "delete-cas", "delete-tree", "lock", "unlock"})


class RegisterCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    """A catalog registration: node, optionally one service and checks (Consul-shaped dicts)."""

    node: dict[str, Any]
    service: dict[str, Any] | None = None
    checks: list[dict[str, Any]] = []
    skip_node_update: bool = False
    ts: float = 0.0


class DeregisterCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    node: str
    service_id: str = ""
    check_id: str = ""
    ts: float = 0.0


class SessionCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    """``op`` is ``create`` (with the full session dict) or ``destroy`` (``session['ID']``)."""

    op: str
    session: dict[str, Any]
    ts: float = 0.0
    accessor: str = ""
    addr: str = ""


class TxnOp(msgspec.Struct, array_like=True, omit_defaults=True):
    """One operation of a transaction; ``kind`` is KV, Node, Service or Check."""

    kind: str
    verb: str
    kv: KVSCommand | None = None
    node: dict[str, Any] | None = None
    service: dict[str, Any] | None = None
    check: dict[str, Any] | None = None


class TxnCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    """``accessor``/``addr``: who sent the transaction (the KV history of the keys it writes)."""

    ops: list[TxnOp]
    ts: float = 0.0
    accessor: str = ""
    addr: str = ""


class TombstoneCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    """Reap KV tombstones whose deletion index is <= ``index``; with ``ts`` (stamped by the
    leader) also drop KV history versions older than the history's ``max_age`` at that time."""

    index: int
    ts: float = 0.0


class AutopilotCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    config: dict[str, Any]
    cas: int = -1


class ConfigEntryCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    """Upsert (``op`` ``set``) or delete a config entry; ``cas`` >= 0 makes it check-and-set.

    ``entry`` is the normalised, validated entry (``Kind`` and ``Name`` always present)."""

    op: str
    entry: dict[str, Any]
    cas: int = -1


class ConnectCACommand(msgspec.Struct, array_like=True, omit_defaults=True):
    """Replace the CA configuration and its roots (initialisation, configuration change,
    rotation).  The leader generates keys and certificates and puts them in the command, so
    every replica applies the same bytes; ``cas_roots`` >= 0: only if the roots index is that."""

    config: dict[str, Any]
    roots: list[dict[str, Any]]
    cas_roots: int = -1


class RestoreCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    """Replace the whole state with a user snapshot (``PUT /v1/snapshot``) on every replica."""

    state: bytes


class NoopCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    pass


class CoordinateBatchUpdateCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    """Network coordinates ``[{"Node", "Segment", "Coord"}]`` (Consul's batched update);
    updates for nodes not in the catalog are skipped when applied."""

    updates: list[dict[str, Any]]


class PreparedQueryCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    """``op`` is ``create``/``update`` (with the whole validated query, ID set by the proposer)
    or ``delete`` (``query['ID']``)."""

    op: str
    query: dict[str, Any]


class ACLBootstrapCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    """The one bootstrap (or a reset one: ``reset_index`` must equal the recorded index)."""

    token: ACLToken
    reset_index: int = 0


class ACLTokenSetCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    """Upsert whole tokens (validated by the proposer; the tables re-check uniqueness)."""

    tokens: list[ACLToken]


class ACLTokenDeleteCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    accessors: list[str]


class ACLPolicySetCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    policies: list[ACLPolicy]


class ACLPolicyDeleteCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    ids: list[str]


class ACLRoleSetCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    roles: list[ACLRole]


class ACLRoleDeleteCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    ids: list[str]


class ACLBindingRuleSetCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    rules: list[dict[str, Any]]


class ACLBindingRuleDeleteCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    ids: list[str]


class ACLAuthMethodSetCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    methods: list[dict[str, Any]]


class ACLAuthMethodDeleteCommand(msgspec.Struct, array_like=True, omit_defaults=True):
    names: list[str]


Command = (
    KVSCommand
    | RegisterCommand
    | DeregisterCommand
    | SessionCommand
    | TxnCommand
    | TombstoneCommand
    | AutopilotCommand
    | RestoreCommand
    | NoopCommand
    | CoordinateBatchUpdateCommand
    | PreparedQueryCommand
    | ACLBootstrapCommand
    | ACLTokenSetCommand
    | ACLTokenDeleteCommand
    | ACLPolicySetCommand
    | ACLPolicyDeleteCommand
    | ACLRoleSetCommand
    | ACLRoleDeleteCommand
    | ACLBindingRuleSetCommand
    | ACLBindingRuleDeleteCommand
    | ACLAuthMethodSetCommand
    | ACLAuthMethodDeleteCommand
)

COMMAND_TYPES: dict[MessageType, type[Any]] = {
    MessageType.REGISTER: RegisterCommand,
    MessageType.DEREGISTER: DeregisterCommand,
    MessageType.KVS: KVSCommand,
    MessageType.SESSION: SessionCommand,
    MessageType.TXN: TxnCommand,
    MessageType.TOMBSTONE: TombstoneCommand,
    MessageType.CONFIG_ENTRY: ConfigEntryCommand,
    MessageType.CONNECT_CA: ConnectCACommand,
    MessageType.AUTOPILOT: AutopilotCommand,
    MessageType.RESTORE: RestoreCommand,
    MessageType.NOOP: NoopCommand,
    MessageType.COORDINATE_BATCH_UPDATE: CoordinateBatchUpdateCommand,
    MessageType.PREPARED_QUERY: PreparedQueryCommand,
    MessageType.ACL_BOOTSTRAP: ACLBootstrapCommand,
    MessageType.ACL_TOKEN_SET: ACLTokenSetCommand,
    MessageType.ACL_TOKEN_DELETE: ACLTokenDeleteCommand,
    MessageType.ACL_POLICY_SET: ACLPolicySetCommand,
    MessageType.ACL_POLICY_DELETE: ACLPolicyDeleteCommand,
    MessageType.ACL_ROLE_SET: ACLRoleSetCommand,
    MessageType.ACL_ROLE_DELETE: ACLRoleDeleteCommand,
    MessageType.ACL_BINDING_RULE_SET: ACLBindingRuleSetCommand,
    MessageType.ACL_BINDING_RULE_DELETE: ACLBindingRuleDeleteCommand,
    MessageType.ACL_AUTH_METHOD_SET: ACLAuthMethodSetCommand,
    MessageType.ACL_AUTH_METHOD_DELETE: ACLAuthMethodDeleteCommand,
}
TYPE_OF: dict[type[Any], MessageType] = {v: k for k, v in COMMAND_TYPES.items()}

_encoder = msgspec.msgpack.Encoder()
_decoders = {t: msgspec.msgpack.Decoder(cls) for t, cls in COMMAND_TYPES.items()}


def encode_command(cmd: Any) -> bytes:
    """Type byte + msgpack body."""
    return bytes((TYPE_OF[type(cmd)],)) + _encoder.encode(cmd)


class UnknownCommand(Exception):
    pass


def decode_command(data: bytes) -> Any:
    """Inverse of ``encode_command``; ``UnknownCommand`` for a type byte we do not know."""
    if not data:
        raise UnknownCommand("empty command")
    try:
        decoder = _decoders[MessageType(data[0])]
    except (ValueError, KeyError) as err:
        raise UnknownCommand(f"unknown message type {data[0]}") from err
    return decoder.decode(data[1:])
