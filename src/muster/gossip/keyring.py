"""The gossip encryption keyring (AES-GCM), shaped like memberlist's ``keyring.go``/``security.go``.

Rules (memberlist's, and what ``consul keyring`` / ``/v1/operator/keyring`` rely on):

* Keys are 16, 24 or 32 bytes (AES-128/192/256).  The ``-encrypt`` flag and the keyring API carry
  them base64-encoded (standard alphabet, with padding), as ``consul keygen`` prints them.
* Exactly one key is *primary*: it alone encrypts.  Decryption tries every installed key, primary
  first, so a rotation works as install (everywhere) -> use (everywhere) -> remove the old key.
* The primary key cannot be removed (memberlist ``Keyring.RemoveKey``: "Removing the primary key is
  not allowed"); a key must be installed before it can be made primary.
* Frame: ``version (1 byte) | nonce (12 bytes) | ciphertext + tag (16 bytes)``.  memberlist's
  version 0 PKCS7-pads the plaintext before GCM (a leftover of its CBC past); version 1 does not.
  We write and read version 1 only: GCM needs no padding, and Muster never talks to Go agents
  over gossip.
* The optional *label* (memberlist ``Config.Label``) is GCM additional data: a LAN packet cannot be
  replayed into the WAN pool, or into another cluster sharing the key, because authentication
  fails.

Nonces come from ``os.urandom``: they are a security requirement, not protocol behaviour, so
they stay outside the seeded ``Rng`` seam (a replayed simulation produces different ciphertext but
takes the same decisions).
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "ENCRYPTION_VERSION",
    "KeyringError",
    "Keyring",
    "DecryptError",
    "decode_key",
    "encode_key",
    "generate_key",
    "encrypted_overhead",
]

#: The frame version we emit and accept (memberlist's "no padding" version 1).
ENCRYPTION_VERSION = 1
_VERSION_SIZE = 1
_NONCE_SIZE = 12
_TAG_SIZE = 16
_KEY_SIZES = (16, 24, 32)


class KeyringError(ValueError):
    """A keyring operation was refused (bad key size, unknown key, removing the primary)."""


class DecryptError(ValueError):
    """No installed key authenticates the frame (or it is malformed); the packet must be dropped."""


def encrypted_overhead() -> int:
    """Bytes an encrypted frame adds to its plaintext (used to size UDP packets)."""
    return _VERSION_SIZE + _NONCE_SIZE + _TAG_SIZE


def _check_key(key: bytes) -> bytes:
    if len(key) not in _KEY_SIZES:
        raise KeyringError(f"key size must be 16, 24 or 32 bytes, got {len(key)}")
    return bytes(key)


def decode_key(text: str) -> bytes:
    """Decode a base64 key as given to ``-encrypt`` and check its size."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise KeyringError(f"key is not valid base64: {e}") from e
    return _check_key(raw)


def encode_key(key: bytes) -> str:
    """The base64 text form of a key (what ``keygen`` prints and ``keyring -list`` shows)."""
    return base64.b64encode(_check_key(key)).decode("ascii")


def generate_key(size: int = 32) -> str:
    """A fresh random key, base64-encoded (``muster keygen``; Consul >= 1.12 makes 32-byte keys)."""
    if size not in _KEY_SIZES:
        raise KeyringError(f"key size must be 16, 24 or 32 bytes, got {size}")
    return base64.b64encode(os.urandom(size)).decode("ascii")


class Keyring:
    """Installed keys plus the primary one.

    Invariant: ``keys()[0]`` is the primary key and every key appears once.  The AESGCM objects
    are cached per key so that trying several keys on decrypt costs no key schedule.
    """

    def __init__(self, primary: bytes, others: list[bytes] | None = None) -> None:
        self._keys: list[bytes] = [_check_key(primary)]
        self._ciphers: dict[bytes, AESGCM] = {self._keys[0]: AESGCM(self._keys[0])}
        for k in others or []:
            self.install(k)

    @classmethod
    def from_base64(cls, primary: str, others: list[str] | None = None) -> Keyring:
        return cls(decode_key(primary), [decode_key(o) for o in others or []])

    # --- management -----------------------------------------------------------------------

    def keys(self) -> list[bytes]:
        """All installed keys, primary first."""
        return list(self._keys)

    def primary(self) -> bytes:
        return self._keys[0]

    def install(self, key: bytes) -> None:
        """Add a key for decryption (idempotent); it does not become primary."""
        key = _check_key(key)
        if key not in self._ciphers:
            self._keys.append(key)
            self._ciphers[key] = AESGCM(key)

    def use(self, key: bytes) -> None:
        """Make an installed key the primary one (it must be installed first, as in memberlist)."""
        key = _check_key(key)
        if key not in self._ciphers:
            raise KeyringError("requested key is not in the keyring")
        self._keys.remove(key)
        self._keys.insert(0, key)

    def remove(self, key: bytes) -> None:
        """Remove a non-primary key; removing the primary is refused, an unknown key is a no-op."""
        key = _check_key(key)
        if key == self._keys[0]:
            raise KeyringError("removing the primary key is not allowed")
        if key in self._ciphers:
            self._keys.remove(key)
            del self._ciphers[key]

    # --- framing -------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, label: bytes = b"") -> bytes:
        """``version | nonce | AES-GCM(primary, plaintext, aad=label)``."""
        nonce = os.urandom(_NONCE_SIZE)
        ct = self._ciphers[self._keys[0]].encrypt(nonce, plaintext, label)
        return bytes([ENCRYPTION_VERSION]) + nonce + ct

    def decrypt(self, frame: bytes, label: bytes = b"") -> bytes:
        """Try every key (primary first); raise :class:`DecryptError` if none authenticates."""
        if len(frame) < _VERSION_SIZE + _NONCE_SIZE + _TAG_SIZE:
            raise DecryptError("payload is too small to decrypt")
        if frame[0] != ENCRYPTION_VERSION:
            raise DecryptError(f"unsupported encryption version {frame[0]}")
        nonce = frame[_VERSION_SIZE:_VERSION_SIZE + _NONCE_SIZE]
        body = frame[_VERSION_SIZE + _NONCE_SIZE:]
        for key in self._keys:
            try:
                return self._ciphers[key].decrypt(nonce, body, label)
            except InvalidTag:
                continue
        raise DecryptError("no installed key could decrypt the message")
