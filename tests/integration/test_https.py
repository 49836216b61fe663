"""HTTPS: the same API on the TLS port, certificates made by ``muster tls``, mutual TLS."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from realagent import AgentProcess, free_port


def make_certs(d: Path) -> None:
    for args in (["tls", "ca", "create"], ["tls", "cert", "create", "-server"], ["tls", "cert", "create", "-client"]):
        out = subprocess.run([sys.executable, "-m", "muster", *args], cwd=d, capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr


def ctx(d: Path, client_cert: bool) -> ssl.SSLContext:
    c = ssl.create_default_context(cafile=str(d / "consul-agent-ca.pem"))
    c.check_hostname = False  # the server cert names server.dc1.consul / localhost / 127.0.0.1
    if client_cert:
        c.load_cert_chain(str(d / "dc1-client-consul-0.pem"), str(d / "dc1-client-consul-0-key.pem"))
    return c


def test_https_serves_the_api_with_generated_certs(tmp_path: Path, agent_factory: Callable[..., AgentProcess]) -> None:
    make_certs(tmp_path)
    port = free_port()
    cfg = {
        "tls": {
            "defaults": {
                "ca_file": str(tmp_path / "consul-agent-ca.pem"),
                "cert_file": str(tmp_path / "dc1-server-consul-0.pem"),
                "key_file": str(tmp_path / "dc1-server-consul-0-key.pem"),
            }
        }
    }
    (tmp_path / "tls.json").write_text(json.dumps(cfg))
    agent_factory(f"-https-port={port}", f"-config-file={tmp_path / 'tls.json'}", name="https")
    url = f"https://127.0.0.1:{port}"
    req = urllib.request.Request(url + "/v1/kv/tls-key", data=b"secret", method="PUT")
    with urllib.request.urlopen(req, context=ctx(tmp_path, False), timeout=10) as r:
        assert r.read() == b"true"
    with urllib.request.urlopen(url + "/v1/kv/tls-key?raw", context=ctx(tmp_path, False), timeout=10) as r:
        assert r.read() == b"secret"
    # a client that does not trust our CA is refused by its own verification
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/v1/status/leader", context=ssl.create_default_context(), timeout=10)


def test_https_verify_incoming_requires_a_client_certificate(tmp_path: Path, agent_factory: Callable[..., AgentProcess]) -> None:
    make_certs(tmp_path)
    port = free_port()
    cfg = {
        "tls": {
            "https": {"verify_incoming": True},
            "defaults": {
                "ca_file": str(tmp_path / "consul-agent-ca.pem"),
                "cert_file": str(tmp_path / "dc1-server-consul-0.pem"),
                "key_file": str(tmp_path / "dc1-server-consul-0-key.pem"),
            },
        }
    }
    (tmp_path / "tls.json").write_text(json.dumps(cfg))
    agent_factory(f"-https-port={port}", f"-config-file={tmp_path / 'tls.json'}", name="mtls")
    url = f"https://127.0.0.1:{port}/v1/status/leader"
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        urllib.request.urlopen(url, context=ctx(tmp_path, False), timeout=10).read()
    with urllib.request.urlopen(url, context=ctx(tmp_path, True), timeout=10) as r:
        assert r.status == 200
        assert json.loads(r.read()).startswith("127.0.0.1:")
