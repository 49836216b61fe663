"""``muster tls ca create`` and ``muster tls cert create`` (Consul's ``command/tls``)."""

from __future__ import annotations

import os

from muster.cli.flags import FlagSet
from muster.cli.ui import UI, parse_or_usage

__all__ = ["tls_ca_create", "tls_cert_create"]


def tls_ca_create(ui: UI, args: list[str]) -> int:
    from muster.tls import CA_DAYS, create_ca

    fs = FlagSet("Usage: muster tls ca create [options]\n\n  Create a new Consul CA.")
    fs.add("days", "int", CA_DAYS, "Provide number of days the CA is valid for from now on. Defaults to 5 years.")
    fs.add("domain", "str", "consul", "Domain of consul cluster. Only used as part of the name constraint.")
    fs.add("common-name", "str", "", "Common Name of CA. Defaults to Consul Agent CA.")
    fs.add("name-constraint", "bool", False, "Accepted for compatibility: the CA always carries a name constraint.")
    p = parse_or_usage(ui, fs, args)
    try:
        cert, key = create_ca(os.getcwd(), str(p["domain"]), int(p["days"]), str(p["common-name"] or ""))
    except (OSError, ValueError) as err:
        ui.err(f"==> {err}")
        return 1
    ui.out(f"==> Saved {os.path.basename(cert)}")
    ui.out(f"==> Saved {os.path.basename(key)}")
    return 0


def tls_cert_create(ui: UI, args: list[str]) -> int:
    from muster.tls import CERT_DAYS, CertRequest, create_cert

    fs = FlagSet("Usage: muster tls cert create [options]\n\n  Create a new certificate (-server or -client).")
    fs.add("server", "bool", False, "Generate server certificate.")
    fs.add("client", "bool", False, "Generate client certificate.")
    fs.add("ca", "str", "#DOMAIN#-agent-ca.pem", "Provide path to the ca.")
    fs.add("key", "str", "#DOMAIN#-agent-ca-key.pem", "Provide path to the key.")
    fs.add("dc", "str", "dc1", "Provide the datacenter. Matters only for -server certificates.")
    fs.add("domain", "str", "consul", "Provide the domain. Matters only for -server certificates.")
    fs.add("days", "int", CERT_DAYS, "Provide number of days the certificate is valid for from now on.")
    fs.add("additional-dnsname", "list", None, "Provide an additional dnsname for Subject Alternative Names.")
    fs.add("additional-ipaddress", "list", None, "Provide an additional ipaddress for Subject Alternative Names.")
    p = parse_or_usage(ui, fs, args)
    if bool(p["server"]) == bool(p["client"]):
        ui.err("==> Please provide either -server or -client")
        return 1
    domain = str(p["domain"]).rstrip(".")
    ca = str(p["ca"]).replace("#DOMAIN#", domain)
    key = str(p["key"]).replace("#DOMAIN#", domain)
    for path, what in ((ca, "ca"), (key, "key")):
        if not os.path.exists(path):
            ui.err(f"==> {what} file {path} does not exist")
            return 1
    req = CertRequest(
        kind="server" if p["server"] else "client",
        datacenter=str(p["dc"]),
        domain=domain,
        days=int(p["days"]),
        dns_names=list(p["additional-dnsname"] or []),
        ip_addresses=list(p["additional-ipaddress"] or []),
    )
    try:
        cert_path, key_path = create_cert(os.getcwd(), ca, key, req)
    except (OSError, ValueError) as err:
        ui.err(f"==> {err}")
        return 1
    ui.out(f"==> Using {ca} and {key}")
    ui.out(f"==> Saved {os.path.basename(cert_path)}")
    ui.out(f"==> Saved {os.path.basename(key_path)}")
    return 0
