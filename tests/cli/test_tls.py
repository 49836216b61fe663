"""``muster tls``: the CA and certificates have Consul's names, SANs and usages."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from muster.tls import CertRequest, create_ca, create_cert


def test_ca_and_server_cert(tmp_path: Path) -> None:
    ca, key = create_ca(str(tmp_path), "cluster.local")
    assert Path(ca).name == "cluster.local-agent-ca.pem"
    assert oct(Path(key).stat().st_mode & 0o777) == "0o600"
    cert_path, _ = create_cert(str(tmp_path), ca, key, CertRequest("server", "dc2", "cluster.local", dns_names=["consul-0.consul"], ip_addresses=["10.1.2.3"]))
    assert Path(cert_path).name == "dc2-server-cluster.local-0.pem"
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"server.dc2.cluster.local", "localhost", "consul-0.consul"}
    assert {str(i) for i in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "10.1.2.3"}
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku and ExtendedKeyUsageOID.CLIENT_AUTH in eku
    again, _ = create_cert(str(tmp_path), ca, key, CertRequest("server", "dc2", "cluster.local"))
    assert Path(again).name == "dc2-server-cluster.local-1.pem"  # never overwrites


def test_refuses_to_overwrite_a_ca(tmp_path: Path) -> None:
    create_ca(str(tmp_path))
    with pytest.raises(FileExistsError):
        create_ca(str(tmp_path))
