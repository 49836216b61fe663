"""Server RPC over TLS: mutual authentication and verify_server_hostname."""

from __future__ import annotations

from pathlib import Path

from muster.server.rpc import RPCNode
from muster.tls import CertRequest, create_ca, create_cert


async def status(_p: object) -> str:
    return "ok"


def certs(d: Path) -> dict[str, str]:
    ca, key = create_ca(str(d))
    scert, skey = create_cert(str(d), ca, key, CertRequest("server"))
    ccert, ckey = create_cert(str(d), ca, key, CertRequest("client"))
    return {"ca": ca, "scert": scert, "skey": skey, "ccert": ccert, "ckey": ckey}


async def test_tls_rpc_with_server_hostname_verification(tmp_path: Path) -> None:
    c = certs(tmp_path)
    a = RPCNode("a", lambda: "", lambda _n: [])
    a.handlers["status"] = status
    a.configure_tls(c["scert"], c["skey"], c["ca"], True, True, "server.dc1.consul")
    port = await a.listen("127.0.0.1", 0)
    ok = RPCNode("b", lambda: "", lambda _n: [])
    ok.configure_tls(c["scert"], c["skey"], c["ca"], True, True, "server.dc1.consul")
    plain = RPCNode("p", lambda: "", lambda _n: [])
    wrong_name = RPCNode("w", lambda: "", lambda _n: [])
    wrong_name.configure_tls(c["ccert"], c["ckey"], c["ca"], True, True, "server.dc2.consul")
    other = tmp_path / "other"
    other.mkdir()
    o = certs(other)
    foreign = RPCNode("f", lambda: "", lambda _n: [])
    foreign.configure_tls(o["scert"], o["skey"], o["ca"], True, True, "server.dc1.consul")
    try:
        assert await ok.probe(f"127.0.0.1:{port}") == ("a", "ok")
        assert await plain.probe(f"127.0.0.1:{port}") is None  # no TLS: refused
        assert await wrong_name.probe(f"127.0.0.1:{port}") is None  # the server is not server.dc2.consul
        assert await foreign.probe(f"127.0.0.1:{port}") is None  # another CA: refused both ways
    finally:
        for n in (a, ok, plain, wrong_name, foreign):
            await n.close()


async def test_client_certificate_cannot_pose_as_a_server(tmp_path: Path) -> None:
    c = certs(tmp_path)
    impostor = RPCNode("i", lambda: "", lambda _n: [])
    impostor.handlers["status"] = status
    impostor.configure_tls(c["ccert"], c["ckey"], c["ca"], True, True, "server.dc1.consul")
    port = await impostor.listen("127.0.0.1", 0)
    dialer = RPCNode("d", lambda: "", lambda _n: [])
    dialer.configure_tls(c["scert"], c["skey"], c["ca"], True, True, "server.dc1.consul")
    try:
        assert await dialer.probe(f"127.0.0.1:{port}") is None
    finally:
        await impostor.close()
        await dialer.close()
