"""The built-in ("consul") Connect CA, with ``cryptography``.

Pure functions: the caller supplies the time and the randomness-bearing inputs that must be
replicated (the leader generates roots and puts them in a ``ConnectCACommand``; every replica
stores the same bytes).  Leaf certificates are never replicated: any server signs them with the
active root's key, which is why that key travels with the root (``PrivateKey``, not rendered).

Identities are SPIFFE IDs: the trust domain is ``<cluster id>.consul``; a service's is
``spiffe://<trust domain>/ns/default/dc/<dc>/svc/<service>`` (a URI SAN of its leaf).
Roots are EC P-256 by default (``PrivateKeyType``/``PrivateKeyBits`` select ``rsa`` too).
Rotation (a new key or provider in the configuration) makes a new active root and keeps the
old ones, inactive, in the trust bundle.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PROVIDER = "consul"
DEFAULT_CONFIG: dict[str, Any] = {
    "LeafCertTTL": "72h",
    "IntermediateCertTTL": "8760h",
    "RootCertTTL": "87600h",
    "RotationPeriod": "2160h",
    "PrivateKeyType": "ec",
    "PrivateKeyBits": 256,
}
#: Configuration keys whose change means a new root (a new key pair).
ROTATING_KEYS = ("PrivateKey", "RootCert", "PrivateKeyType", "PrivateKeyBits")

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class CAError(Exception):
    """An invalid CA configuration or request (the message is Consul's text)."""


def duration_seconds(text: Any) -> float:
    """A Go duration string such as ``72h`` or ``1h30m`` in seconds."""
    s = str(text).strip()
    if not s:
        raise CAError("empty duration")
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        raise CAError(f'time: invalid duration "{s}"')
    return total


def trust_domain(cluster_id: str) -> str:
    return f"{cluster_id}.consul"


def service_uri(td: str, dc: str, service: str) -> str:
    return f"spiffe://{td}/ns/default/dc/{dc}/svc/{service}"


def parse_spiffe(uri: str) -> dict[str, str] | None:
    """``{"trust_domain", "namespace", "datacenter", "service"}`` of a service SPIFFE ID, or None."""
    m = re.fullmatch(r"spiffe://([^/]+)/ns/([^/]+)/dc/([^/]+)/svc/([^/]+)", uri)
    if m is None:
        return None
    return {"trust_domain": m.group(1), "namespace": m.group(2), "datacenter": m.group(3), "service": m.group(4)}


def normalize_config(given: dict[str, Any] | None) -> dict[str, Any]:
    """The provider configuration: defaults, then the given keys; validated as the built-in
    provider validates it."""
    cfg = dict(DEFAULT_CONFIG)
    for k, v in (given or {}).items():
        cfg[str(k)] = v
    for key in ("LeafCertTTL", "IntermediateCertTTL", "RootCertTTL", "RotationPeriod"):
        try:
            duration_seconds(cfg[key])
        except CAError as err:
            raise CAError(f"error parsing {key}: {err}") from None
    leaf = duration_seconds(cfg["LeafCertTTL"])
    if leaf < 3600:
        raise CAError("leaf cert TTL must be greater or equal than 1h0m0s")
    if leaf > 365 * 24 * 3600:
        raise CAError("leaf cert TTL must be less than 8760h0m0s")
    kt, bits = str(cfg["PrivateKeyType"]), int(cfg["PrivateKeyBits"])
    if kt == "ec":
        if bits not in (224, 256, 384, 521):
            raise CAError(f"EC key length must be one of (224, 256, 384, 521) bits, not {bits}")
    elif kt == "rsa":
        if bits not in (2048, 4096):
            raise CAError(f"RSA key length must be at least 2048 bits, not {bits}")
    else:
        raise CAError(f"unknown private key type {kt!r}")
    return cfg


def needs_rotation(old: dict[str, Any], new: dict[str, Any], old_provider: str, new_provider: str) -> bool:
    if old_provider != new_provider:
        return True
    return any(old.get(k) != new.get(k) for k in ROTATING_KEYS)


def _new_key(kind: str, bits: int) -> Any:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    curve = {224: ec.SECP224R1(), 256: ec.SECP256R1(), 384: ec.SECP384R1(), 521: ec.SECP521R1()}[bits]
    return ec.generate_private_key(curve)


def _colon_hex(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key_pem(key: Any) -> str:
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def new_root(cluster_id: str, config: dict[str, Any], now: float, serial: int) -> dict[str, Any]:
    """A self-signed root CA for the cluster (``CARoot`` plus its ``PrivateKey``)."""
    td = trust_domain(cluster_id)
    key = _new_key(str(config["PrivateKeyType"]), int(config["PrivateKeyBits"]))
    start = dt.datetime.fromtimestamp(now, dt.UTC) - dt.timedelta(minutes=1)
    end = start + dt.timedelta(seconds=duration_seconds(config["RootCertTTL"]))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"pri-{serial:x}.consul.ca.{cluster_id[:8]}.consul")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"spiffe://{td}")]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    der = cert.public_bytes(serialization.Encoding.DER)
    sha1 = hashes.Hash(hashes.SHA1())  # noqa: S303 - Consul's root ID is the SHA-1 fingerprint
    sha1.update(der)
    return {
        "ID": _colon_hex(sha1.finalize()),
        "Name": "Consul CA Primary Cert",
        "SerialNumber": serial,
        "SigningKeyID": _colon_hex(ski.digest),
        "ExternalTrustDomain": cluster_id,
        "NotBefore": _rfc3339(start),
        "NotAfter": _rfc3339(end),
        "RootCert": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "IntermediateCerts": None,
        "Active": True,
        "PrivateKeyType": str(config["PrivateKeyType"]),
        "PrivateKeyBits": int(config["PrivateKeyBits"]),
        "PrivateKey": _key_pem(key),
    }


def render_root(root: dict[str, Any]) -> dict[str, Any]:
    """A root as ``/v1/connect/ca/roots`` shows it (never the private key)."""
    return {k: v for k, v in root.items() if k != "PrivateKey"}


def sign_leaf(
    root: dict[str, Any], td: str, dc: str, service: str, ttl: str, now: float, serial: int
) -> dict[str, Any]:
    """A leaf certificate for ``service`` signed by ``root`` (an ``IssuedCert`` without indexes)."""
    ca_key = serialization.load_pem_private_key(root["PrivateKey"].encode(), password=None)
    ca_cert = x509.load_pem_x509_certificate(root["RootCert"].encode())
    key = ec.generate_private_key(ec.SECP256R1())
    uri = service_uri(td, dc, service)
    start = dt.datetime.fromtimestamp(now, dt.UTC) - dt.timedelta(minutes=1)
    end = start + dt.timedelta(seconds=duration_seconds(ttl))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True, data_encipherment=False,
                key_agreement=True, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )  # fmt: skip
    return {
        "SerialNumber": _colon_hex(serial.to_bytes((serial.bit_length() + 7) // 8 or 1, "big")),
        "CertPEM": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "PrivateKeyPEM": _key_pem(key),
        "Service": service,
        "ServiceURI": uri,
        "ValidAfter": _rfc3339(start),
        "ValidBefore": _rfc3339(end),
    }
