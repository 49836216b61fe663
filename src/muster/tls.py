"""Certificate authority and certificates, as ``consul tls ca create`` / ``tls cert create``.

Files and defaults follow Consul's CLI so existing scripts keep working: the CA is
``<domain>-agent-ca.pem`` + ``<domain>-agent-ca-key.pem`` (ECDSA P-256, 5 years); a server
certificate is ``<dc>-server-<domain>-<n>.pem`` + ``-key.pem`` (1 year) with the SANs
``server.<dc>.<domain>``, ``localhost`` and ``127.0.0.1`` plus any ``-additional-dnsname`` /
``-additional-ipaddress``; ``verify_server_hostname`` checks ``server.<dc>.<domain>``.
Client certificates are ``<dc>-client-<domain>-<n>.pem`` with ``client.<dc>.<domain>``.
Built on ``cryptography`` (the maintained binding of OpenSSL for Python).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 5 * 365
CERT_DAYS = 365


def _write(path: str, data: bytes, mode: int) -> None:
    if os.path.exists(path):
        raise FileExistsError(f"{path} already exists")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def create_ca(directory: str, domain: str = "consul", days: int = CA_DAYS, common_name: str = "") -> tuple[str, str]:
    """Create a CA; returns (cert path, key path)."""
    domain = domain.rstrip(".")
    key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()
    cn = common_name or f"Consul Agent CA {serial}"
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Muster"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.NameConstraints(permitted_subtrees=[x509.DNSName(domain), x509.DNSName("localhost")], excluded_subtrees=None), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, f"{domain}-agent-ca.pem")
    key_path = os.path.join(directory, f"{domain}-agent-ca-key.pem")
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(key_path, _key_pem(key), 0o600)
    return cert_path, key_path


@dataclass
class CertRequest:
    kind: str  # "server" or "client"
    datacenter: str = "dc1"
    domain: str = "consul"
    days: int = CERT_DAYS
    dns_names: list[str] = field(default_factory=list)
    ip_addresses: list[str] = field(default_factory=list)


def create_cert(directory: str, ca_cert_path: str, ca_key_path: str, req: CertRequest) -> tuple[str, str]:
    """Create a server or client certificate signed by the CA; returns (cert path, key path)."""
    if req.kind not in ("server", "client"):
        raise ValueError("kind must be server or client")
    with open(ca_cert_path, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(ca_key_path, "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key must be an ECDSA key")
    domain = req.domain.rstrip(".")
    cn = f"{req.kind}.{req.datacenter}.{domain}"
    dns = [cn, "localhost"] + [d for d in req.dns_names if d]
    ips = ["127.0.0.1"] + [i for i in req.ip_addresses if i]
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dict.fromkeys(dns)]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in dict.fromkeys(ips)]
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if req.kind == "server" else [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=req.days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    prefix = f"{req.datacenter}-{req.kind}-{domain}"
    n = 0
    while os.path.exists(os.path.join(directory, f"{prefix}-{n}.pem")):
        n += 1
    cert_path = os.path.join(directory, f"{prefix}-{n}.pem")
    key_path = os.path.join(directory, f"{prefix}-{n}-key.pem")
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(key_path, _key_pem(key), 0o600)
    return cert_path, key_path


def keygen() -> str:
    """A gossip encryption key: 32 random bytes, standard base64."""
    import base64

    return base64.b64encode(secrets.token_bytes(32)).decode()
