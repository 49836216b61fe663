"""JSON Web Tokens for the ``jwt`` auth method: signature check, claim validation, claim mapping.

Pure functions over bytes and the injected time (``now``), built on ``cryptography`` (already the
agent's crypto library), so no JOSE dependency is needed.  Behaviour follows Consul's
``internal/go-sso/oidcauth`` (``jwt.go``, ``config.go``, ``util.go``), which wraps go-jose:

* keys: PEM public keys (PKIX or a certificate; RSA, ECDSA, Ed25519) or a JWK set;
* a token is accepted when *any* configured key verifies its signature with the token's ``alg``
  (RS*/PS*/ES*/EdDSA; ``none`` and HMAC are never accepted: the keys are public);
* a token with none of ``iat``, ``nbf``, ``exp`` is refused; a missing ``exp`` becomes the latest
  of ``iat``/``nbf`` plus ``ExpirationLeeway`` (150 s by default), a missing ``nbf`` becomes
  ``iat`` (or ``exp`` minus ``NotBeforeLeeway``); then ``iss`` must equal ``BoundIssuer`` when
  one is set, and the times are checked with ``ClockSkewLeeway`` (60 s by default; -1 disables
  every leeway it governs);
* audiences: with ``BoundAudiences`` at least one ``aud`` must be among them; without, a token
  that carries an ``aud`` is refused (go-sso's strict mode for plain JWTs; tokens checked through
  OIDC discovery are not strict);
* ``ClaimMappings`` / ``ListClaimMappings`` copy claims (a top-level name, or a JSON pointer
  starting with ``/``) into the identity's ``value.<name>`` / ``list.<name>`` fields; numbers
  and booleans are stringified as Go does; a value that cannot be stringified is skipped.

Every refusal is a ``JWTError`` whose text is the message Consul's login answers with.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

__all__ = [
    "JWTError",
    "PublicKey",
    "extract_claims",
    "jwk_keys",
    "parse_jwt",
    "parse_public_key_pem",
    "validate_claims",
    "verify_signature",
]

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

CLAIM_DEFAULT_LEEWAY = 150.0
CLOCK_SKEW_DEFAULT = 60.0

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_EC_CURVES: dict[str, tuple[type[ec.EllipticCurve], int]] = {
    "ES256": (ec.SECP256R1, 32),
    "ES384": (ec.SECP384R1, 48),
    "ES512": (ec.SECP521R1, 66),
}


class JWTError(ValueError):
    """A token, key or claim the auth method refuses; ``str()`` is the answer's text."""


def _b64(part: str) -> bytes:
    pad = "=" * (-len(part) % 4)
    try:
        return base64.urlsafe_b64decode(part + pad)
    except (binascii.Error, ValueError) as err:
        raise JWTError(f"illegal base64 data: {err}") from None


class ParsedJWT:
    """A compact-serialised JWS, split and decoded but not yet trusted."""

    __slots__ = ("claims", "header", "signature", "signing_input")

    def __init__(self, header: dict[str, Any], claims: dict[str, Any], signing_input: bytes, signature: bytes) -> None:
        self.header = header
        self.claims = claims
        self.signing_input = signing_input
        self.signature = signature

    @property
    def alg(self) -> str:
        return str(self.header.get("alg", ""))


def parse_jwt(token: str) -> ParsedJWT:
    """Split and decode ``token``; JWTError when it is not a compact JWS with a JSON object body."""
    if not token:
        raise JWTError("missing jwt")
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise JWTError("error parsing token: go-jose/go-jose: compact JWS format must have three parts")
    try:
        header = json.loads(_b64(parts[0]))
        claims = json.loads(_b64(parts[1]))
    except (JWTError, ValueError, UnicodeDecodeError) as err:
        raise JWTError(f"error parsing token: {err}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JWTError("error parsing token: header and claims must be JSON objects")
    return ParsedJWT(header, claims, f"{parts[0]}.{parts[1]}".encode(), _b64(parts[2]))


def parse_public_key_pem(data: str) -> PublicKey:
    """A PEM public key (PKIX) or certificate: RSA, ECDSA or Ed25519, else JWTError."""
    raw = data.encode() if isinstance(data, str) else data
    key: Any = None
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, UnsupportedAlgorithm):
        try:
            key = x509.load_pem_x509_certificate(raw).public_key()
        except (ValueError, UnsupportedAlgorithm):
            key = None
    if isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
        return key
    raise JWTError("data does not contain any valid RSA, ECDSA, or ED25519 public keys")


def _b64int(v: Any) -> int:
    if not isinstance(v, str):
        raise JWTError("invalid JWK: missing key material")
    return int.from_bytes(_b64(v), "big")


def jwk_keys(jwks: Any) -> list[tuple[str, PublicKey]]:
    """``(kid, key)`` of every usable public key of a JWK set (``{"keys": [...]}``).

    Keys of other types or with ``use`` other than ``sig`` are skipped, as go-oidc does."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise JWTError("failed to decode keys: missing \"keys\" list")
    out: list[tuple[str, PublicKey]] = []
    for k in jwks["keys"]:
        if not isinstance(k, dict) or k.get("use", "sig") != "sig":
            continue
        kty = k.get("kty")
        kid = str(k.get("kid", ""))
        try:
            if kty == "RSA":
                out.append((kid, rsa.RSAPublicNumbers(_b64int(k.get("e")), _b64int(k.get("n"))).public_key()))
            elif kty == "EC":
                curves: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
                curve = curves.get(str(k.get("crv")))
                if curve is None:
                    continue
                nums = ec.EllipticCurvePublicNumbers(_b64int(k.get("x")), _b64int(k.get("y")), curve)
                out.append((kid, nums.public_key()))
            elif kty == "OKP" and k.get("crv") == "Ed25519":
                out.append((kid, ed25519.Ed25519PublicKey.from_public_bytes(_b64(str(k.get("x", ""))))))
        except (ValueError, UnsupportedAlgorithm):
            continue
    return out


def _verify_one(key: PublicKey, alg: str, data: bytes, sig: bytes) -> bool:
    try:
        if isinstance(key, rsa.RSAPublicKey) and alg[:2] in ("RS", "PS") and alg[2:] in _HASHES:
            h = _HASHES[alg[2:]]()
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15() if alg[:2] == "RS" else padding.PSS(padding.MGF1(h), padding.PSS.DIGEST_LENGTH)
            )
            key.verify(sig, data, pad, h)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey) and alg in _EC_CURVES:
            curve, size = _EC_CURVES[alg]
            if not isinstance(key.curve, curve) or len(sig) != 2 * size:
                return False
            der = encode_dss_signature(int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big"))
            key.verify(der, data, ec.ECDSA(_HASHES[alg[2:]]()))
            return True
        if isinstance(key, ed25519.Ed25519PublicKey) and alg == "EdDSA":
            key.verify(sig, data)
            return True
    except InvalidSignature:
        return False
    return False


def verify_signature(tok: ParsedJWT, keys: Iterable[tuple[str, PublicKey]], supported_algs: Iterable[str] = ()) -> None:
    """JWTError unless one of ``keys`` verifies ``tok`` (a key whose ``kid`` differs from the
    token's is not tried when both are set)."""
    algs = list(supported_algs)
    if algs and tok.alg not in algs:
        raise JWTError(f"error verifying token: unsupported signing algorithm {tok.alg!r}")
    kid = str(tok.header.get("kid", ""))
    for key_id, key in keys:
        if kid and key_id and kid != key_id:
            continue
        if _verify_one(key, tok.alg, tok.signing_input, tok.signature):
            return
    raise JWTError("no known key successfully validated the token signature")


def _numeric(claims: dict[str, Any], name: str) -> float:
    v = claims.get(name)
    if v is None:
        return 0.0
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise JWTError(f"failed to unmarshal claims: {name} is not a number")
    return float(v)


def _leeway(value: float, default: float) -> float:
    """Consul's convention: 0 means the default, a negative value means none."""
    if value < 0:
        return 0.0
    return value or default


def validate_claims(
    claims: dict[str, Any],
    now: float,
    *,
    bound_issuer: str = "",
    bound_audiences: Iterable[str] = (),
    expiration_leeway: float = 0.0,
    not_before_leeway: float = 0.0,
    clock_skew_leeway: float = 0.0,
    strict_audience: bool = True,
) -> None:
    """Check times, issuer and audience of verified ``claims`` at ``now`` (see the module doc)."""
    iat, exp, nbf = _numeric(claims, "iat"), _numeric(claims, "exp"), _numeric(claims, "nbf")
    if iat == 0 and exp == 0 and nbf == 0:
        raise JWTError("no issue time, notbefore, or expiration time encoded in token")
    if exp == 0:
        exp = max(iat, nbf) + _leeway(expiration_leeway, CLAIM_DEFAULT_LEEWAY)
    if nbf == 0:
        nbf = iat if iat != 0 else exp - _leeway(not_before_leeway, CLAIM_DEFAULT_LEEWAY)
    prefix = "error validating claims: go-jose/go-jose/jwt: validation failed"
    if bound_issuer and claims.get("iss") != bound_issuer:
        raise JWTError(f"{prefix}, invalid issuer claim (iss)")
    skew = _leeway(clock_skew_leeway, CLOCK_SKEW_DEFAULT)
    if now + skew < nbf:
        raise JWTError(f"{prefix}, token not valid yet (nbf)")
    if now - skew > exp:
        raise JWTError(f"{prefix}, token is expired (exp)")
    if iat and now + skew < iat:
        raise JWTError(f"{prefix}, token issued in the future (iat)")
    aud_raw = claims.get("aud")
    aud = [aud_raw] if isinstance(aud_raw, str) else [a for a in aud_raw if isinstance(a, str)] if isinstance(aud_raw, list) else []
    bound = list(bound_audiences)
    if bound:
        if not any(a in bound for a in aud):
            raise JWTError("error validating claims: aud claim does not match any bound audience")
    elif aud and strict_audience:
        raise JWTError("error validating claims: audience claim found in JWT but no audiences bound to the role")


def _claim(claims: dict[str, Any], source: str) -> Any:
    """A top-level claim, or a JSON pointer (RFC 6901) when ``source`` starts with ``/``."""
    if not source.startswith("/"):
        return claims.get(source)
    cur: Any = claims
    for raw in source[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(cur, dict):
            if part not in cur:
                return None
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


def _stringify(v: Any) -> str | None:
    """Go's formatting of a JSON scalar (strconv.FormatBool / FormatFloat(v, 'f', -1)); None else."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) and math.isfinite(v):
        return str(int(v)) if v.is_integer() and abs(v) < 1e21 else repr(v)
    return None


def extract_claims(
    claims: dict[str, Any], mappings: dict[str, str], list_mappings: dict[str, str]
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The identity's ``value`` and ``list`` fields from verified ``claims``."""
    values: dict[str, str] = {}
    for source, target in mappings.items():
        v = _claim(claims, source)
        if v is None:
            continue
        s = _stringify(v)
        if s is not None:
            values[target] = s
    lists: dict[str, list[str]] = {}
    for source, target in list_mappings.items():
        v = _claim(claims, source)
        if v is None:
            continue
        items = v if isinstance(v, list) else [v]
        out: list[str] = []
        for item in items:
            s = _stringify(item)
            if s is None:
                raise JWTError(f"error converting claim '{source}' to string from unknown type {type(item).__name__}")
            out.append(s)
        lists[target] = out
    return values, lists
