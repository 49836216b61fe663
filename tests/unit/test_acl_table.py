"""The replicated ACL table through the FSM: typed commands, refusals roll back, snapshots."""

from __future__ import annotations

from muster.acl.model import GLOBAL_MANAGEMENT_ID, ACLPolicy, ACLToken, Link, builtin_management_policy
from muster.acl.resolver import ACLNotFound, Resolver
from muster.errors import StateError
from muster.fsm import FSM
from muster.server.acl import _LiveTables
from muster.state.store import StateStore
from muster.structs import (
    ACLBootstrapCommand,
    ACLPolicySetCommand,
    ACLTokenDeleteCommand,
    ACLTokenSetCommand,
    decode_command,
    encode_command,
)


def _apply(fsm: FSM, idx: int, cmd: object) -> object:
    return fsm.apply(idx, encode_command(cmd))


def test_commands_roundtrip_and_apply() -> None:
    fsm = FSM()
    tok = ACLToken(AccessorID="a1", SecretID="s1", Policies=[Link(GLOBAL_MANAGEMENT_ID)])
    cmd = ACLTokenSetCommand(tokens=[tok])
    assert decode_command(encode_command(cmd)) == cmd
    assert _apply(fsm, 1, ACLPolicySetCommand(policies=[builtin_management_policy()])) is True
    assert _apply(fsm, 2, cmd) is True
    acl = fsm.store.tables.acl
    assert acl.acl_token_by_secret("s1").CreateIndex == 2  # type: ignore[union-attr]
    assert fsm.store.index("acl") == 2
    # A second token with the same secret is refused and changes nothing.
    res = _apply(fsm, 3, ACLTokenSetCommand(tokens=[ACLToken(AccessorID="a2", SecretID="s1")]))
    assert isinstance(res, StateError) and "SecretID is already in use" in res.message
    assert set(acl.tokens) == {"a1"} and fsm.store.index("acl") == 2
    # Re-setting keeps CreateIndex and moves ModifyIndex.
    _apply(fsm, 4, ACLTokenSetCommand(tokens=[ACLToken(AccessorID="a1", SecretID="s1", Description="x")]))
    t = acl.tokens["a1"]
    assert (t.CreateIndex, t.ModifyIndex, t.Description) == (2, 4, "x")
    _apply(fsm, 5, ACLTokenDeleteCommand(accessors=["a1"]))
    assert acl.acl_token_by_secret("s1") is None


def test_policy_name_unique_and_rollback() -> None:
    fsm = FSM()
    _apply(fsm, 1, ACLPolicySetCommand(policies=[ACLPolicy(ID="p1", Name="n")]))
    res = _apply(fsm, 2, ACLPolicySetCommand(policies=[ACLPolicy(ID="p2", Name="ok"), ACLPolicy(ID="p3", Name="n")]))
    assert isinstance(res, StateError)
    assert set(fsm.store.tables.acl.policies) == {"p1"}


def test_bootstrap_once_and_reset_index() -> None:
    fsm = FSM()
    assert isinstance(_apply(fsm, 1, ACLBootstrapCommand(token=ACLToken(AccessorID="a", SecretID="s"))), ACLToken)
    res = _apply(fsm, 2, ACLBootstrapCommand(token=ACLToken(AccessorID="b", SecretID="t")))
    assert isinstance(res, StateError) and res.status == 403
    assert res.message == "Permission denied: ACL bootstrap no longer allowed (reset index: 1)"
    res = _apply(fsm, 3, ACLBootstrapCommand(token=ACLToken(AccessorID="b", SecretID="t"), reset_index=7))
    assert isinstance(res, StateError) and res.message == "Invalid bootstrap reset index (specified 7, reset index: 1)"
    assert isinstance(_apply(fsm, 4, ACLBootstrapCommand(token=ACLToken(AccessorID="b", SecretID="t"), reset_index=1)), ACLToken)
    assert fsm.store.tables.acl.bootstrap_index == 4


def test_snapshot_restore_and_resolver_cache() -> None:
    fsm = FSM()
    _apply(fsm, 1, ACLPolicySetCommand(policies=[builtin_management_policy()]))
    _apply(fsm, 2, ACLBootstrapCommand(token=ACLToken(AccessorID="a", SecretID="s", Policies=[Link(GLOBAL_MANAGEMENT_ID)])))
    blob = fsm.store.snapshot()
    other = StateStore()
    other.restore(blob)
    acl = other.tables.acl
    assert acl.acl_token_by_secret("s") is not None and acl.bootstrap_index == 2
    assert other.snapshot() == blob
    resolver = Resolver(_LiveTables(fsm.store), enabled=True, default_policy="deny", datacenter="dc1", now=lambda: 0.0)
    assert resolver.resolve("s").management
    _apply(fsm, 3, ACLTokenDeleteCommand(accessors=["a"]))
    try:
        resolver.resolve("s")
        raise AssertionError("a deleted token must not resolve")
    except ACLNotFound:
        pass
    fsm.store.restore(blob)  # the old state comes back: the cache must follow the new tables
    assert resolver.resolve("s").management
