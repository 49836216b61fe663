"""Gossip wire format: msgpack messages (via msgspec) inside an authenticated envelope.

Messages follow memberlist's ``messageType`` enum (``net.go``): ping, indirect-ping, ack, nack,
suspect, alive, dead, push/pull, compound and user.  Each is a tagged, array-like msgspec Struct,
so a message is a small msgpack array whose first element is the type number, and decoding
validates every field (a malformed packet raises :class:`MalformedMessage` instead of producing
half-built state).

Envelope (:func:`seal` / :func:`open_frame`), applied to every UDP packet and every push/pull
stream frame:

* with a keyring: ``version=1 | nonce(12) | AES-GCM(ciphertext + tag)`` (see :mod:`.keyring`);
  the pool label is the GCM additional data;
* without one: ``0x4D ('M') | CRC32(label + body) big-endian | body``.  The CRC catches
  corruption and, through the label, cross-pool traffic; it is not security.

A receiver with a keyring refuses plaintext frames, and one without refuses encrypted frames
(memberlist's ``GossipVerifyIncoming``); both cases raise :class:`AuthError`, which callers count
as ``auth_failures`` and drop.  Compound messages carry already-encoded inner messages (not
envelopes) and may not nest, so one packet is authenticated exactly once.
"""

from __future__ import annotations

import enum
import zlib

import msgspec

from .keyring import ENCRYPTION_VERSION, DecryptError, Keyring, encrypted_overhead

__all__ = [
    "Ack",
    "Alive",
    "AuthError",
    "Compound",
    "Dead",
    "IndirectPing",
    "MalformedMessage",
    "Message",
    "Nack",
    "NodeStateKind",
    "Ping",
    "PushNodeState",
    "PushPull",
    "Suspect",
    "User",
    "compound_overhead",
    "decode",
    "decode_compound_parts",
    "encode",
    "envelope_overhead",
    "open_frame",
    "seal",
]

PLAIN_MAGIC = 0x4D
_CRC_HEADER = 5
#: Per-part bytes a compound message adds (msgpack bin header, worst case for < 64 KiB parts).
_COMPOUND_PART_OVERHEAD = 3
#: Fixed bytes of a compound message (array + tag + list headers).
_COMPOUND_FIXED = 8


class MalformedMessage(ValueError):
    """The bytes are not a valid gossip message (bad CRC, bad msgpack, unknown type)."""


class AuthError(ValueError):
    """The frame failed authentication (wrong key, encryption mismatch); drop and count it."""


class NodeStateKind(enum.IntEnum):
    """memberlist's ``NodeStateType``: the SWIM view of one member."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


class Ping(msgspec.Struct, tag=1, array_like=True, frozen=True):
    """Direct probe.  ``node`` names the intended target so that a different process now
    listening on a reused address does not answer for it (memberlist checks ``ping.Node``)."""

    seq: int
    node: str
    source_node: str = ""


class IndirectPing(msgspec.Struct, tag=2, array_like=True, frozen=True):
    """Ask the receiver to ping ``target`` at ``addr:port`` on our behalf; with ``nack`` set it
    must answer with a :class:`Nack` if the target stays silent (Lifeguard's nack feedback)."""

    seq: int
    target: str
    addr: str
    port: int
    nack: bool = True
    source_node: str = ""


class Ack(msgspec.Struct, tag=3, array_like=True, frozen=True):
    seq: int
    payload: bytes = b""


class Nack(msgspec.Struct, tag=4, array_like=True, frozen=True):
    seq: int


class Suspect(msgspec.Struct, tag=5, array_like=True, frozen=True):
    """``source`` (memberlist ``From``) lets suspicion count independent confirmations."""

    incarnation: int
    node: str
    source: str


class Alive(msgspec.Struct, tag=6, array_like=True, frozen=True):
    """A member's self-description.  ``node_id`` is its persistent identity: an address may
    change under the same id (a pod with a new IP); a different id under a known name is a
    different node (see the identity rule in :mod:`.core`)."""

    incarnation: int
    node: str
    node_id: str
    addr: str
    port: int
    meta: dict[str, str] = {}


class Dead(msgspec.Struct, tag=7, array_like=True, frozen=True):
    """``source == node`` means the node announced its own graceful leave (state ``left``)."""

    incarnation: int
    node: str
    source: str


class User(msgspec.Struct, tag=8, array_like=True, frozen=True):
    """An opaque message of the layer above (Serf intents and user events)."""

    payload: bytes


class Compound(msgspec.Struct, tag=9, array_like=True, frozen=True):
    """Several encoded messages in one packet (piggybacking); parts may not be compounds."""

    parts: list[bytes]


class PushNodeState(msgspec.Struct, array_like=True, frozen=True):
    name: str
    node_id: str
    addr: str
    port: int
    meta: dict[str, str]
    incarnation: int
    state: NodeStateKind


class PushPull(msgspec.Struct, tag=10, array_like=True, frozen=True):
    """Full state exchanged over a stream: every known node plus the upper layer's state."""

    join: bool
    nodes: list[PushNodeState]
    user_state: bytes = b""


Message = Ping | IndirectPing | Ack | Nack | Suspect | Alive | Dead | User | Compound | PushPull

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)  # type: ignore[arg-type]


def encode(msg: Message) -> bytes:
    return _encoder.encode(msg)


def decode(data: bytes) -> Message:
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as e:  # ValidationError is a subclass
        raise MalformedMessage(str(e)) from e


def decode_compound_parts(msg: Compound) -> list[Message]:
    """Decode the parts of a compound; nested compounds and push/pull are refused."""
    out: list[Message] = []
    for part in msg.parts:
        inner = decode(part)
        if isinstance(inner, (Compound, PushPull)):
            raise MalformedMessage("compound messages may not nest or carry push/pull state")
        out.append(inner)
    return out


def compound_overhead(n_parts: int) -> int:
    return _COMPOUND_FIXED + _COMPOUND_PART_OVERHEAD * n_parts


def envelope_overhead(keyring: Keyring | None) -> int:
    return encrypted_overhead() if keyring is not None else _CRC_HEADER


def seal(body: bytes, keyring: Keyring | None, label: bytes = b"") -> bytes:
    """Wrap an encoded message for the wire (encrypt with the primary key, or add a CRC)."""
    if keyring is not None:
        return keyring.encrypt(body, label)
    crc = zlib.crc32(body, zlib.crc32(label))
    return bytes([PLAIN_MAGIC]) + crc.to_bytes(4, "big") + body


def open_frame(frame: bytes, keyring: Keyring | None, label: bytes = b"") -> bytes:
    """Unwrap a frame.  Raises :class:`AuthError` (count and drop) or :class:`MalformedMessage`."""
    if not frame:
        raise MalformedMessage("empty frame")
    if keyring is not None:
        if frame[0] != ENCRYPTION_VERSION:
            raise AuthError("unencrypted gossip refused: this pool requires encryption")
        try:
            return keyring.decrypt(frame, label)
        except DecryptError as e:
            raise AuthError(str(e)) from e
    if frame[0] == ENCRYPTION_VERSION:
        raise AuthError("encrypted gossip received but no keyring is configured")
    if frame[0] != PLAIN_MAGIC or len(frame) < _CRC_HEADER:
        raise MalformedMessage("unknown frame type")
    body = frame[_CRC_HEADER:]
    if zlib.crc32(body, zlib.crc32(label)) != int.from_bytes(frame[1:_CRC_HEADER], "big"):
        raise MalformedMessage("CRC mismatch (corrupt packet or a different pool label)")
    return body
