"""Wire format and keyring: round trips, framing, and that wrong keys are dropped and counted."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from muster.gossip import codec
from muster.gossip.codec import (
    Ack,
    Alive,
    AuthError,
    Compound,
    Dead,
    IndirectPing,
    MalformedMessage,
    Nack,
    NodeStateKind,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    User,
)
from muster.gossip.core import SwimCore
from muster.gossip.keyring import DecryptError, Keyring, KeyringError, decode_key, encode_key, generate_key
from muster.runtime import Rng

K1 = bytes(range(32))
K2 = bytes(range(1, 17))
K3 = bytes(range(2, 26))

MESSAGES = [
    Ping(1, "a", "b"),
    IndirectPing(2, "t", "10.0.0.1", 8301, True, "src"),
    Ack(3, b"x"),
    Nack(4),
    Suspect(5, "n", "from"),
    Alive(6, "n", "id-1", "10.0.0.2", 8301, {"role": "consul", "dc": "dc1"}),
    Dead(7, "n", "n"),
    User(b"\x00\x01payload"),
    PushPull(True, [PushNodeState("n", "id", "1.2.3.4", 8301, {"a": "b"}, 9, NodeStateKind.SUSPECT)], b"serf"),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(msg: codec.Message) -> None:
    assert codec.decode(codec.encode(msg)) == msg


def test_compound_round_trip_and_no_nesting() -> None:
    parts = [codec.encode(m) for m in MESSAGES[:4]]
    c = Compound(parts)
    assert codec.decode_compound_parts(codec.decode(codec.encode(c))) == MESSAGES[:4]  # type: ignore[arg-type]
    with pytest.raises(MalformedMessage):
        codec.decode_compound_parts(Compound([codec.encode(c)]))


@given(st.binary(max_size=200))
def test_garbage_is_malformed_not_a_crash(data: bytes) -> None:
    try:
        codec.decode(data)
    except MalformedMessage:
        pass


@pytest.mark.parametrize("keyring", [None, Keyring(K1)], ids=["crc", "aes-gcm"])
def test_seal_open_round_trip(keyring: Keyring | None) -> None:
    body = codec.encode(MESSAGES[5])
    frame = codec.seal(body, keyring, b"lan")
    assert codec.open_frame(frame, keyring, b"lan") == body
    assert len(frame) - len(body) == codec.envelope_overhead(keyring)


def test_crc_detects_corruption_and_label_mismatch() -> None:
    frame = bytearray(codec.seal(b"\x91\x01", None, b"lan"))
    with pytest.raises(MalformedMessage):
        codec.open_frame(bytes(frame), None, b"wan")
    frame[-1] ^= 0xFF
    with pytest.raises(MalformedMessage):
        codec.open_frame(bytes(frame), None, b"lan")


def test_encryption_mismatches_are_auth_errors() -> None:
    plain = codec.seal(b"abc", None)
    enc = codec.seal(b"abc", Keyring(K1))
    with pytest.raises(AuthError):
        codec.open_frame(plain, Keyring(K1))  # we require encryption
    with pytest.raises(AuthError):
        codec.open_frame(enc, None)  # we cannot read it
    with pytest.raises(AuthError):
        codec.open_frame(enc, Keyring(K2))  # wrong key
    with pytest.raises(AuthError):
        codec.open_frame(codec.seal(b"abc", Keyring(K1), b"lan"), Keyring(K1), b"wan")  # label is AAD


def test_frame_layout_version_nonce_tag() -> None:
    kr = Keyring(K1)
    f1, f2 = kr.encrypt(b"hello"), kr.encrypt(b"hello")
    assert f1[0] == 1 and len(f1) == 1 + 12 + 5 + 16
    assert f1[1:13] != f2[1:13], "nonces must not repeat"


def test_keyring_rotation_install_use_remove() -> None:
    old, new = Keyring(K1), Keyring(K1)
    frame_old = old.encrypt(b"m")
    new.install(K2)
    new.use(K2)
    assert new.keys() == [K2, K1]
    # The primary encrypts; every installed key decrypts.
    with pytest.raises(DecryptError):
        old.decrypt(new.encrypt(b"m"))
    assert new.decrypt(frame_old) == b"m"
    with pytest.raises(KeyringError, match="primary"):
        new.remove(K2)
    new.remove(K1)
    with pytest.raises(DecryptError):
        new.decrypt(frame_old)
    with pytest.raises(KeyringError):
        new.use(K3)  # must be installed first


@pytest.mark.parametrize("size", [16, 24, 32])
def test_key_sizes_and_base64(size: int) -> None:
    text = generate_key(size)
    key = decode_key(text)
    assert len(key) == size and encode_key(key) == text
    kr = Keyring.from_base64(text, [base64.b64encode(K3).decode()])
    assert kr.decrypt(kr.encrypt(b"x")) == b"x"


@pytest.mark.parametrize("bad", ["", "not base64!", base64.b64encode(b"short").decode(),
                                 base64.b64encode(bytes(33)).decode()])
def test_bad_keys_are_refused(bad: str) -> None:
    with pytest.raises(KeyringError):
        decode_key(bad)


def test_core_drops_and_counts_packets_with_a_wrong_key() -> None:
    rng = Rng(1)
    a = SwimCore(name="a", node_id="ida", addr="10.0.0.1", port=1, rng=rng, now=0.0, keyring=Keyring(K1))
    b_wrong = Keyring(K2)
    a.receive_packet(codec.seal(codec.encode(Alive(5, "b", "idb", "10.0.0.2", 1)), b_wrong), ("10.0.0.2", 1), 0.0)
    a.receive_packet(codec.seal(codec.encode(Alive(5, "b", "idb", "10.0.0.2", 1)), None), ("10.0.0.2", 1), 0.0)
    assert a.counters["auth_failures"] == 2
    assert a.member("b") is None
    # The right key is accepted.
    a.receive_packet(codec.seal(codec.encode(Alive(5, "b", "idb", "10.0.0.2", 1)), Keyring(K1)), ("10.0.0.2", 1), 0.0)
    assert a.member("b") is not None
    # A push/pull stream with a wrong key gets no reply and is counted too.
    req = codec.seal(codec.encode(PushPull(True, [])), b_wrong)
    assert a.receive_stream(req, ("10.0.0.3", 5), 0.0) is None
    assert a.counters["auth_failures"] == 3
