"""``muster.acl.jwt``: every signature family, the claim time rules, audiences, claim mappings."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from muster.acl.jwt import (
    JWTError,
    extract_claims,
    jwk_keys,
    parse_jwt,
    parse_public_key_pem,
    validate_claims,
    verify_signature,
)

RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
P384 = ec.generate_private_key(ec.SECP384R1())
ED = ed25519.Ed25519PrivateKey.generate()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(key: Any, alg: str, claims: dict[str, Any], kid: str = "") -> str:
    head = {"alg": alg, **({"kid": kid} if kid else {})}
    si = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(claims).encode())}".encode()
    if alg == "RS512":
        sig = key.sign(si, padding.PKCS1v15(), hashes.SHA512())
    elif alg == "PS256":
        sig = key.sign(si, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH), hashes.SHA256())
    elif alg == "ES384":
        r, s = decode_dss_signature(key.sign(si, ec.ECDSA(hashes.SHA384())))
        sig = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    elif alg == "EdDSA":
        sig = key.sign(si)
    else:
        raise AssertionError(alg)
    return f"{si.decode()}.{b64(sig)}"


def pub(key: Any) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.mark.parametrize(("key", "alg"), [(RSA, "RS512"), (RSA, "PS256"), (P384, "ES384"), (ED, "EdDSA")])
def test_each_family_verifies_and_a_flipped_bit_does_not(key: Any, alg: str) -> None:
    keys = [("", parse_public_key_pem(pub(key)))]
    t = token(key, alg, {"iat": 1})
    verify_signature(parse_jwt(t), keys)
    head, body, sig = t.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[0] ^= 1
    with pytest.raises(JWTError, match="no known key"):
        verify_signature(parse_jwt(f"{head}.{body}.{b64(bytes(raw))}"), keys)
    # The same signature under another algorithm name is refused (no alg confusion).
    other = "RS256" if alg != "RS256" else "PS256"
    with pytest.raises(JWTError):
        verify_signature(parse_jwt(f"{b64(json.dumps({'alg': other}).encode())}.{body}.{sig}"), keys)


def test_jwks_and_kid_selection() -> None:
    n = RSA.public_key().public_numbers()
    jwks = {"keys": [
        {"kty": "RSA", "kid": "a", "n": b64(n.n.to_bytes(256, "big")), "e": b64(n.e.to_bytes(3, "big"))},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
        {"kty": "oct", "k": "c2VjcmV0"},
    ]}  # fmt: skip
    keys = jwk_keys(jwks)
    assert [k for k, _ in keys] == ["a"]
    verify_signature(parse_jwt(token(RSA, "RS512", {"iat": 1}, kid="a")), keys)
    with pytest.raises(JWTError):
        verify_signature(parse_jwt(token(RSA, "RS512", {"iat": 1}, kid="b")), keys)
    with pytest.raises(JWTError, match="keys"):
        jwk_keys({"nokeys": []})


def test_claim_times_and_leeways() -> None:
    now = 1_000_000.0
    validate_claims({"exp": now + 10}, now)
    validate_claims({"exp": now - 30}, now)  # within the 60 s clock skew
    with pytest.raises(JWTError, match=r"token is expired \(exp\)"):
        validate_claims({"exp": now - 61}, now)
    with pytest.raises(JWTError, match=r"token is expired"):
        validate_claims({"exp": now - 2}, now, clock_skew_leeway=-1)
    # Only iat: exp is iat + 150 s (+ 60 s skew).
    validate_claims({"iat": now - 200}, now)
    with pytest.raises(JWTError, match="expired"):
        validate_claims({"iat": now - 211}, now)
    with pytest.raises(JWTError, match=r"not valid yet \(nbf\)"):
        validate_claims({"nbf": now + 61, "exp": now + 1000}, now)
    with pytest.raises(JWTError, match="no issue time"):
        validate_claims({"sub": "x"}, now)
    with pytest.raises(JWTError, match="invalid issuer"):
        validate_claims({"iat": now, "iss": "a"}, now, bound_issuer="b")
    with pytest.raises(JWTError, match="not a number"):
        validate_claims({"exp": "soon"}, now)


def test_audiences() -> None:
    now = 5.0
    validate_claims({"iat": now, "aud": "x"}, now, bound_audiences=["y", "x"])
    validate_claims({"iat": now, "aud": ["p", "x"]}, now, bound_audiences=["x"])
    with pytest.raises(JWTError, match="does not match any bound audience"):
        validate_claims({"iat": now, "aud": ["p"]}, now, bound_audiences=["x"])
    with pytest.raises(JWTError, match="no audiences bound"):
        validate_claims({"iat": now, "aud": "x"}, now)
    validate_claims({"iat": now}, now)


def test_claim_mappings() -> None:
    claims = {"n": 3, "f": 2.5, "b": True, "s": "v", "nested": {"a/b": {"c": "deep"}}, "groups": ["x", 1, False], "one": "solo", "obj": {}}
    values, lists = extract_claims(
        claims,
        {"n": "n", "f": "f", "b": "b", "s": "s", "/nested/a~1b/c": "deep", "missing": "m", "obj": "o"},
        {"groups": "groups", "one": "one"},
    )
    assert values == {"n": "3", "f": "2.5", "b": "true", "s": "v", "deep": "deep"}
    assert lists == {"groups": ["x", "1", "false"], "one": ["solo"]}


def test_bad_input() -> None:
    for bad in ("", "a.b", "!!!.e30.x", "e30.W10.x"):
        with pytest.raises(JWTError):
            parse_jwt(bad)
    with pytest.raises(JWTError, match="RSA, ECDSA, or ED25519"):
        parse_public_key_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
