"""End to end with Debian's ``dig`` against a real ``python -m muster agent -dev`` process
(``-domain=cluster.local``), services registered through the HTTP API.  Skipped without dig."""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import dns.message
import dns.rrset
import pytest
from dnshelpers import DIG, needs_dig

pytestmark = needs_dig

D = "cluster.local"


@dataclass
class Dig:
    status: str
    flags: set[str]
    answer: list[str]
    additional: list[str]
    authority: list[str]
    raw: str

    def rdata(self, rtype: str | None = None) -> list[str]:
        """The rdata column of answer lines (optionally of one type)."""
        out = []
        for line in self.answer:
            parts = line.split(None, 4)
            if rtype is None or parts[3] == rtype:
                out.append(parts[4])
        return out


def rtypes(lines: list[str]) -> list[str]:
    """The type column of dig record lines."""
    return [line.split()[3] for line in lines]


def _section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    try:
        start = lines.index(f";; {title} SECTION:") + 1
    except ValueError:
        return []
    out = []
    for line in lines[start:]:
        if not line.strip():
            break
        out.append(line)
    return out


def dig(port: int, *args: str) -> Dig:
    assert DIG is not None
    proc = subprocess.run(
        [DIG, "@127.0.0.1", "-p", str(port), "+time=2", "+tries=1", *args],
        capture_output=True, text=True, timeout=20, check=False,
    )
    text = proc.stdout
    status = re.search(r"status: (\w+)", text)
    flags = re.search(r";; flags: ([a-z ]*);", text)
    return Dig(
        status.group(1) if status else "NONE",
        set(flags.group(1).split()) if flags else set(),
        _section(text, "ANSWER"), _section(text, "ADDITIONAL"), _section(text, "AUTHORITY"), text,
    )


def put(agent: object, path: str, body: object) -> object:
    req = urllib.request.Request(agent.url + path, data=json.dumps(body).encode(), method="PUT")  # type: ignore[attr-defined]
    with urllib.request.urlopen(req, timeout=10) as resp:
        data = resp.read()
    return json.loads(data) if data else None


def register_catalog(agent: object) -> None:
    for i in range(12):
        put(agent, "/v1/catalog/register", {
            "Node": f"web-{i:02d}", "Address": f"10.1.0.{i + 1}", "NodeMeta": {"rack": f"r{i % 3}"},
            "Service": {"Service": "web", "Port": 8000 + i, "Tags": ["v1"] if i % 2 else ["v2"]},
        })
    put(agent, "/v1/catalog/register", {
        "Node": "db-1", "Address": "10.2.0.1", "Service": {"Service": "db", "Port": 5432},
        "Check": {"CheckID": "db-check", "Name": "db", "Status": "critical", "ServiceID": "db"},
    })
    put(agent, "/v1/catalog/register", {"Node": "v6host", "Address": "2001:db8::7",
                                         "Service": {"Service": "six", "Port": 80}})
    put(agent, "/v1/catalog/register", {"Node": "ext-1", "Address": "10.3.0.1",
                                         "Service": {"Service": "api", "Port": 443, "Address": "10.3.0.99"}})
    put(agent, "/v1/agent/service/register", {"Name": "local", "Port": 9000, "Address": "10.4.0.1"})


def _free_udp_tcp_port() -> int:
    from realagent import free_port

    return int(free_port())


@pytest.fixture(scope="module")
def agent() -> Iterator[tuple[object, int]]:
    from realagent import start_agent

    port = _free_udp_tcp_port()
    a = start_agent([f"-dns-port={port}", f"-domain={D}", "-node=dnsagent"], name="dns-dig")
    try:
        register_catalog(a)
        yield a, port
    finally:
        a.stop()


def test_service_a_srv_and_tags(agent: tuple[object, int]) -> None:
    _, port = agent
    r = dig(port, f"web.service.{D}")  # dig sends EDNS (1232 bytes): every answer fits
    assert r.status == "NOERROR" and "aa" in r.flags and "ra" not in r.flags
    assert len(r.rdata("A")) == 12
    assert all(a.startswith("10.1.0.") for a in r.rdata())
    srv = dig(port, f"web.service.dc1.{D}", "SRV", "+tcp")
    assert len(srv.rdata("SRV")) == 12
    assert rtypes(srv.additional).count("A") == 12
    assert any(line.split()[3] == "TXT" and "rack=" in line for line in srv.additional)
    v1 = dig(port, f"v1.web.service.{D}", "SRV", "+tcp")
    assert len(v1.rdata()) == 6
    assert len(dig(port, f"_web._v2.service.{D}", "SRV", "+tcp").rdata()) == 6
    assert len(dig(port, f"_web._tcp.service.{D}", "SRV", "+tcp").rdata()) == 12
    assert len(dig(port, f"_web._tcp.{D}", "SRV", "+tcp").rdata()) == 12
    assert dig(port, f"WEB.Service.{D.upper()}").status == "NOERROR"
    api = dig(port, f"api.service.{D}", "SRV")
    assert api.rdata() == [f"1 1 443 0a030063.addr.dc1.{D}."]
    assert dig(port, f"local.service.{D}").rdata() == ["10.4.0.1"]


def test_truncation_edns_and_tcp(agent: tuple[object, int]) -> None:
    _, port = agent
    plain = dig(port, f"web.service.{D}", "+noedns")
    assert len(plain.rdata()) == 3 and "tc" not in plain.flags
    assert len(dig(port, f"web.service.{D}", "+bufsize=4096").rdata()) == 12
    assert len(dig(port, f"web.service.{D}", "+tcp").rdata()) == 12
    edns = dig(port, f"web.service.{D}", "SRV", "+bufsize=600")
    assert 1 <= len(edns.rdata()) < 12
    assert "udp: 600" in edns.raw  # OPT echoed
    size = re.search(r"MSG SIZE\s+rcvd: (\d+)", edns.raw)
    assert size is not None and int(size.group(1)) <= 600


def test_nodes_addr_consul_ptr_soa_ns(agent: tuple[object, int]) -> None:
    a, port = agent
    n = dig(port, f"web-03.node.{D}")
    assert n.rdata() == ["10.1.0.4"] and any('"rack=r0"' in x for x in n.additional)
    assert dig(port, f"web-03.node.{D}", "TXT").rdata() == ['"rack=r0"']
    assert set(dig(port, f"web-03.node.{D}", "ANY").rdata()) == {"10.1.0.4", '"rack=r0"'}
    assert dig(port, f"v6host.node.{D}", "AAAA").rdata() == ["2001:db8::7"]
    assert dig(port, f"six.service.{D}", "AAAA").rdata() == ["2001:db8::7"]
    assert dig(port, f"0a010001.addr.{D}").rdata() == ["10.1.0.1"]
    assert dig(port, f"20010db8000000000000000000000007.addr.{D}", "AAAA").rdata() == ["2001:db8::7"]
    consul = dig(port, f"consul.service.{D}", "SRV")
    server_port = a.ports["server"]  # type: ignore[attr-defined]
    assert consul.rdata() == [f"1 1 {server_port} dnsagent.node.dc1.{D}."]
    assert dig(port, "-x", "10.1.0.4").rdata() == [f"web-03.node.dc1.{D}."]
    soa = dig(port, D, "SOA")
    assert soa.rdata("SOA")[0].startswith(f"ns.{D}. hostmaster.{D}. ")
    assert "NS" in rtypes(soa.authority)
    ns = dig(port, D, "NS")
    assert ns.rdata("NS") and all(x.endswith(f".node.dc1.{D}.") for x in ns.rdata("NS"))
    assert ns.additional, "NS answers carry glue"


def test_nxdomain_nodata_refused_and_notimp(agent: tuple[object, int]) -> None:
    _, port = agent
    for name in (f"nope.service.{D}", f"db.service.{D}", f"nobody.node.{D}", f"web.service.dc9.{D}",
                 f"q.query.{D}", f"web.connect.{D}", D):
        r = dig(port, name)
        assert r.status == "NXDOMAIN", (name, r.raw)
        assert "aa" in r.flags and rtypes(r.authority) == ["SOA"], name
    nodata = dig(port, f"web.service.{D}", "AAAA")
    assert nodata.status == "NOERROR" and nodata.answer == [] and rtypes(nodata.authority) == ["SOA"]
    out = dig(port, "example.com")
    assert out.status == "REFUSED" and out.answer == [] and "aa" not in out.flags
    assert "Transfer failed" in dig(port, D, "AXFR").raw  # NOTIMP (checked exactly in test_dns_server)


def test_registration_changes_are_visible_at_once(agent: tuple[object, int]) -> None:
    a, port = agent
    put(a, "/v1/catalog/register", {"Node": "late", "Address": "10.9.0.1", "Service": {"Service": "late", "Port": 1}})
    assert dig(port, f"late.service.{D}").rdata() == ["10.9.0.1"]
    put(a, "/v1/catalog/register", {"Node": "late", "Address": "10.9.0.1", "Service": {"Service": "late", "Port": 1},
                                   "Check": {"CheckID": "x", "Name": "x", "Status": "critical", "ServiceID": "late"}})
    assert dig(port, f"late.service.{D}").status == "NXDOMAIN"


def test_garbage_then_dig_still_works(agent: tuple[object, int]) -> None:
    _, port = agent
    rnd = random.Random(5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for n in [0, 3, 11, 12, 13, 40] + [rnd.randrange(1, 200) for _ in range(100)]:
            s.sendto(bytes(rnd.getrandbits(8) for _ in range(n)), ("127.0.0.1", port))
    with socket.create_connection(("127.0.0.1", port), timeout=2) as t:
        t.sendall(b"\x00\x05abc")  # truncated frame, then close
    with socket.create_connection(("127.0.0.1", port), timeout=2) as t:
        t.sendall(b"\x00\x0c" + bytes(12))  # a header-only "query": FORMERR, connection stays usable
        head = t.recv(2)
        assert len(head) == 2
    assert dig(port, f"web-00.node.{D}").rdata() == ["10.1.0.1"]


# ---------------------------------------------------------------- truncation flag and recursors


class FakeResolver:
    """A minimal upstream DNS server on 127.0.0.1 (a thread with a bounded lifetime)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.queries: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for _ in range(3000):  # at most ~10 minutes
            if self.stop.is_set():
                return
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            q = dns.message.from_wire(data)
            self.queries.append(str(q.question[0].name))
            r = dns.message.make_response(q)
            r.flags |= dns.flags.RA
            if str(q.question[0].name).startswith("www."):
                r.answer.append(dns.rrset.from_text(q.question[0].name, 30, "IN", "A", "192.0.2.44"))
            else:
                r.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(r.to_wire(), addr)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture(scope="module")
def agent2() -> Iterator[tuple[object, int, FakeResolver]]:
    from realagent import start_agent

    up = FakeResolver()
    port = _free_udp_tcp_port()
    a = start_agent([f"-dns-port={port}", f"-domain={D}", "-alt-domain=consul", f"-recursor=127.0.0.1:{up.port}",
                     "-hcl=dns_config { enable_truncate = true }"], name="dns-dig-recursor")
    try:
        register_catalog(a)
        yield a, port, up
    finally:
        a.stop()
        up.close()


def test_enable_truncate_sets_tc_and_dig_retries_over_tcp(agent2: tuple[object, int, FakeResolver]) -> None:
    _, port, _ = agent2
    r = dig(port, f"web.service.{D}", "+noedns", "+ignore")
    assert "tc" in r.flags and len(r.rdata()) == 3
    full = dig(port, f"web.service.{D}", "+noedns")  # dig retries over TCP on TC
    assert len(full.rdata()) == 12 and "(TCP)" in full.raw
    assert "ra" in r.flags


def test_recursor_and_alt_domain(agent2: tuple[object, int, FakeResolver]) -> None:
    _, port, up = agent2
    r = dig(port, "www.example.org")
    assert r.status == "NOERROR" and r.rdata() == ["192.0.2.44"]
    nx = dig(port, "missing.example.org")
    assert nx.status == "NXDOMAIN"
    assert "www.example.org." in up.queries and "missing.example.org." in up.queries
    alt = dig(port, "api.service.consul", "SRV")
    assert alt.rdata() == ["1 1 443 0a030063.addr.dc1.consul."]
    assert f"web.service.{D}." not in up.queries, "in-zone names are never forwarded"
