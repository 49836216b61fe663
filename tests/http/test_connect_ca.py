"""The built-in CA, leaf certificates, intentions and authorize (issue 15 item 2)."""

from __future__ import annotations

import asyncio

import httpx
from cryptography import x509


async def _roots(client: httpx.AsyncClient) -> dict:  # type: ignore[type-arg]
    r = await client.get("/v1/connect/ca/roots")
    assert r.status_code == 200
    return dict(r.json())


async def test_ca_roots_configuration_and_rotation(client: httpx.AsyncClient) -> None:
    roots = await _roots(client)
    assert len(roots["Roots"]) == 1 and roots["Roots"][0]["Active"] is True
    root = roots["Roots"][0]
    assert roots["ActiveRootID"] == root["ID"] and roots["TrustDomain"].endswith(".consul")
    assert "PrivateKey" not in root
    cert = x509.load_pem_x509_certificate(root["RootCert"].encode())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [f"spiffe://{roots['TrustDomain']}"]
    assert (await client.get("/v1/agent/connect/ca/roots")).json()["ActiveRootID"] == root["ID"]
    pem = await client.get("/v1/connect/ca/roots", params={"pem": "true"})
    assert pem.text.startswith("-----BEGIN CERTIFICATE-----")

    cfg = (await client.get("/v1/connect/ca/configuration")).json()
    assert cfg["Provider"] == "consul" and cfg["Config"]["LeafCertTTL"] == "72h" and "ClusterID" not in cfg
    # A TTL change keeps the root; a new key type rotates and keeps the old root, inactive.
    r = await client.put("/v1/connect/ca/configuration", json={"Provider": "consul", "Config": {"LeafCertTTL": "24h"}})
    assert (r.status_code, r.json()) == (200, True)
    assert (await client.get("/v1/connect/ca/configuration")).json()["Config"]["LeafCertTTL"] == "24h"
    assert [x["ID"] for x in (await _roots(client))["Roots"]] == [root["ID"]]
    r = await client.put("/v1/connect/ca/configuration",
                         json={"Provider": "consul", "Config": {"PrivateKeyType": "rsa", "PrivateKeyBits": 2048}})  # fmt: skip
    assert r.json() is True
    after = await _roots(client)
    assert [(x["ID"] == root["ID"], x["Active"]) for x in after["Roots"]] == [(True, False), (False, True)]
    assert after["Roots"][1]["PrivateKeyType"] == "rsa" and after["TrustDomain"] == roots["TrustDomain"]
    r = await client.put("/v1/connect/ca/configuration", json={"Provider": "vault", "Config": {}})
    assert (r.status_code, r.text) == (500, 'unknown CA provider "vault"')
    r = await client.put("/v1/connect/ca/configuration", json={"Provider": "consul", "Config": {"LeafCertTTL": "10m"}})
    assert (r.status_code, r.text) == (500, "leaf cert TTL must be greater or equal than 1h0m0s")


async def test_leaf_certificate_identity_cache_and_rotation(client: httpx.AsyncClient) -> None:
    roots = await _roots(client)
    r = await client.get("/v1/agent/connect/ca/leaf/web")
    assert r.status_code == 200
    leaf = r.json()
    uri = f"spiffe://{roots['TrustDomain']}/ns/default/dc/dc1/svc/web"
    assert leaf["Service"] == "web" and leaf["ServiceURI"] == uri
    cert = x509.load_pem_x509_certificate(leaf["CertPEM"].encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [uri]
    ca = x509.load_pem_x509_certificate(roots["Roots"][0]["RootCert"].encode())
    cert.verify_directly_issued_by(ca)
    assert "PRIVATE KEY" in leaf["PrivateKeyPEM"]
    # Cached until the roots change.
    again = (await client.get("/v1/agent/connect/ca/leaf/web")).json()
    assert again["SerialNumber"] == leaf["SerialNumber"]
    idx = int(r.headers["X-Consul-Index"])
    waiter = asyncio.ensure_future(client.get("/v1/agent/connect/ca/leaf/web", params={"index": str(idx), "wait": "20s"}))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await client.put("/v1/connect/ca/configuration", json={"Provider": "consul", "Config": {"PrivateKeyBits": 384}})
    rotated = await asyncio.wait_for(waiter, 10)
    assert int(rotated.headers["X-Consul-Index"]) > idx
    new_leaf = rotated.json()
    assert new_leaf["SerialNumber"] != leaf["SerialNumber"]
    new_root = next(x for x in (await _roots(client))["Roots"] if x["Active"])
    x509.load_pem_x509_certificate(new_leaf["CertPEM"].encode()).verify_directly_issued_by(
        x509.load_pem_x509_certificate(new_root["RootCert"].encode())
    )


async def test_intentions_exact_match_check_precedence_and_authorize(client: httpx.AsyncClient) -> None:
    td = (await _roots(client))["TrustDomain"]
    q = {"source": "web", "destination": "db"}
    r = await client.put("/v1/connect/intentions/exact", params=q, json={"Action": "allow", "Description": "web to db"})
    assert (r.status_code, r.json()) == (200, True)
    ixn = (await client.get("/v1/connect/intentions/exact", params=q)).json()
    assert (ixn["SourceName"], ixn["DestinationName"], ixn["Action"], ixn["Precedence"]) == ("web", "db", "allow", 9)
    assert ixn["Description"] == "web to db"
    # The intention is a service-intentions config entry.
    entry = (await client.get("/v1/config/service-intentions/db")).json()
    assert entry["Sources"][0]["Name"] == "web" and entry["Sources"][0]["Action"] == "allow"
    await client.put("/v1/connect/intentions/exact", params={"source": "*", "destination": "db"}, json={"Action": "deny"})
    listing = (await client.get("/v1/connect/intentions")).json()
    assert [(i["SourceName"], i["Precedence"]) for i in listing] == [("web", 9), ("*", 8)]
    match = (await client.get("/v1/connect/intentions/match", params={"by": "destination", "name": "db"})).json()
    assert [i["SourceName"] for i in match["db"]] == ["web", "*"]
    assert (await client.get("/v1/connect/intentions/check", params=q)).json() == {"Allowed": True}
    assert (await client.get("/v1/connect/intentions/check", params={"source": "api", "destination": "db"})).json() == {"Allowed": False}
    assert (await client.get("/v1/connect/intentions/check", params={"source": "api", "destination": "cache"})).json() == {"Allowed": True}

    async def authorize(src: str, target: str) -> dict:  # type: ignore[type-arg]
        body = {"Target": target, "ClientCertURI": f"spiffe://{td}/ns/default/dc/dc1/svc/{src}"}
        r = await client.post("/v1/agent/connect/authorize", json=body)
        assert r.status_code == 200
        return dict(r.json())

    ok = await authorize("web", "db")
    assert ok["Authorized"] is True and ok["Reason"].startswith("Matched L4 intention: default/web => default/db")
    assert (await authorize("api", "db"))["Authorized"] is False
    assert await authorize("api", "cache") == {"Authorized": True, "Reason": "Default behavior configured by ACLs"}
    r = await client.post("/v1/agent/connect/authorize",
                          json={"Target": "db", "ClientCertURI": "spiffe://other.consul/ns/default/dc/dc1/svc/web"})  # fmt: skip
    assert r.json() == {"Authorized": False, "Reason": "Identity from an external trust domain"}
    r = await client.post("/v1/agent/connect/authorize", json={"Target": "db"})
    assert r.status_code == 400
    # Delete: gone, and the entry goes with its last source.
    assert (await client.delete("/v1/connect/intentions/exact", params=q)).json() is True
    assert (await client.get("/v1/connect/intentions/exact", params=q)).status_code == 404
    await client.delete("/v1/connect/intentions/exact", params={"source": "*", "destination": "db"})
    assert (await client.get("/v1/config/service-intentions/db")).status_code == 404
    # Legacy ID-based API.
    r = await client.post("/v1/connect/intentions", json={"SourceName": "a", "DestinationName": "b", "Action": "deny"})
    iid = r.json()["ID"]
    got = (await client.get(f"/v1/connect/intentions/{iid}")).json()
    assert (got["ID"], got["SourceName"], got["Action"]) == (iid, "a", "deny")
    assert (await client.put(f"/v1/connect/intentions/{iid}", json={"Action": "allow"})).json() is True
    assert (await client.get(f"/v1/connect/intentions/{iid}")).json()["Action"] == "allow"
    assert (await client.delete(f"/v1/connect/intentions/{iid}")).json() is True
    assert (await client.get(f"/v1/connect/intentions/{iid}")).status_code == 404
