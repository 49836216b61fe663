"""The listener on real 127.0.0.1 sockets (in-process server, dnspython as the client): cache
behaviour, malformed packets, EDNS, TCP, and forwarding to fake upstream resolvers."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import AsyncIterator, Callable

import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from dnshelpers import make_config, records
from hypothesis import given, settings
from hypothesis import strategies as st

from muster.dns.server import DNSServer
from muster.runtime import Rng
from muster.server.server import Server, ServerIdentity
from muster.structs import DeregisterCommand, RegisterCommand

D = "cluster.local."
TIMEOUT = 2.0


async def register(srv: Server, node: str, address: str, service: str, port: int, status: str = "passing") -> None:
    checks = [{"Node": node, "CheckID": "c-" + service, "Name": "c", "Status": status, "ServiceID": service}]
    await srv.apply(RegisterCommand(
        node={"Node": node, "Address": address, "Datacenter": "dc1", "Meta": {}},
        service={"ID": service, "Service": service, "Tags": [], "Address": "", "Port": port,
                 "Weights": {"Passing": 1, "Warning": 1}},
        checks=checks,
    ))


class Env:
    def __init__(self, server: Server, dns_server: DNSServer) -> None:
        self.server = server
        self.dns = dns_server
        self.addr, self.port = dns_server.addresses[0]

    async def udp(self, name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype, **kw)
        return await dns.asyncquery.udp(q, self.addr, timeout=TIMEOUT, port=self.port)

    async def tcp(self, name: str, rdtype: str = "A") -> dns.message.Message:
        q = dns.message.make_query(name, rdtype)
        return await dns.asyncquery.tcp(q, self.addr, timeout=TIMEOUT, port=self.port)

    async def raw(self, data: bytes, wait: float = 0.3) -> bytes | None:
        """Send one datagram, return the reply or None if none came within ``wait``."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes] = loop.create_future()

        class P(asyncio.DatagramProtocol):
            def datagram_received(self, d: bytes, a: object) -> None:
                if not fut.done():
                    fut.set_result(d)

        transport, _ = await loop.create_datagram_endpoint(P, remote_addr=(self.addr, self.port))
        try:
            transport.sendto(data)
            return await asyncio.wait_for(fut, wait)
        except TimeoutError:
            return None
        finally:
            transport.close()


async def start_env(*flags: str, cache: bool = True) -> tuple[Server, DNSServer]:
    cfg = make_config(*flags)
    srv = Server(ServerIdentity("srv1", "11111111-2222-3333-4444-555555555555", "dc1", "127.0.0.1"), rng=Rng(7))
    await srv.start()
    d = DNSServer(srv, cfg, rng=Rng(8), cache=cache)
    await d.start(["127.0.0.1"], 0)
    return srv, d


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    srv, d = await start_env()
    try:
        yield Env(srv, d)
    finally:
        await d.stop()
        await srv.stop()


async def test_udp_and_tcp_serve_the_store(env: Env) -> None:
    for i in range(6):
        await register(env.server, f"n{i}", f"10.0.0.{i + 1}", "web", 80 + i)
    r = await env.udp("web.service." + D)
    assert r.flags & dns.flags.AA and len(records(r)) == 3
    r = await env.tcp("web.service." + D, "SRV")
    assert len(records(r)) == 6
    r = await env.udp("srv1.node." + D)
    assert records(r) == ["127.0.0.1"]
    srv = await env.udp("consul.service." + D, "SRV")
    assert records(srv) == ["1 1 8300 srv1.node.dc1.cluster.local."]


async def test_cache_hits_still_shuffle_and_invalidate_on_catalog_change(env: Env) -> None:
    for i in range(5):
        await register(env.server, f"n{i}", f"10.0.0.{i + 1}", "web", 80)
    orders = set()
    for _ in range(30):
        orders.add(tuple(records(await env.udp("web.service." + D, use_edns=0, payload=4096))))
    assert len(orders) > 3, "cached answers must still come back in random order"
    assert env.dns.hits >= 29 and env.dns.misses >= 1
    await register(env.server, "n9", "10.0.0.99", "web", 80)
    r = await env.udp("web.service." + D, use_edns=0, payload=4096)
    assert "10.0.0.99" in records(r), "a catalog change must invalidate the cache"
    await register(env.server, "n9", "10.0.0.99", "web", 80, status="critical")
    r = await env.udp("web.service." + D, use_edns=0, payload=4096)
    assert "10.0.0.99" not in records(r), "a check going critical must invalidate the cache"
    await env.server.apply(DeregisterCommand(node="n0"))
    r = await env.udp("web.service." + D, use_edns=0, payload=4096)
    assert "10.0.0.1" not in records(r) and len(records(r)) == 4


async def test_one_cache_entry_serves_every_transport_and_case(env: Env) -> None:
    for i in range(10):
        await register(env.server, f"n{i}", f"10.0.0.{i + 1}", "web", 80)
    plain = await env.udp("web.service." + D)
    edns = await env.udp("WEB.service." + D, use_edns=0, payload=1232)
    tcp = await env.tcp("web.SERVICE." + D)
    assert (len(records(plain)), len(records(edns)), len(records(tcp))) == (3, 10, 10)
    assert env.dns.misses == 1
    assert edns.edns == 0 and plain.edns == -1
    assert str(edns.question[0].name) == "WEB.service." + D


async def test_case_of_question_is_echoed_byte_for_byte(env: Env) -> None:
    await register(env.server, "n1", "10.0.0.1", "web", 80)
    await env.udp("web.service." + D)  # fill the cache in lowercase
    q = dns.message.make_query("wEb.SeRvIcE.ClUsTeR.lOcAl.", "A")
    reply = await env.raw(q.to_wire())
    assert reply is not None
    qname = q.question[0].name.to_wire()
    assert reply[12 : 12 + len(qname)] == qname
    msg = dns.message.from_wire(reply)
    assert str(msg.answer[0].name) == "wEb.SeRvIcE.ClUsTeR.lOcAl."


async def test_refused_out_of_zone_without_recursors(env: Env) -> None:
    r = await env.udp("example.com.")
    assert r.rcode() == dns.rcode.REFUSED and not r.flags & dns.flags.RA and r.answer == []


async def test_malformed_packets_never_stop_the_listener(env: Env) -> None:
    rnd = random.Random(42)
    for n in (0, 1, 5, 11):
        assert await env.raw(bytes(rnd.getrandbits(8) for _ in range(n)), wait=0.05) is None
    # header says one question but there is none: FORMERR with the same ID
    reply = await env.raw(struct.pack("!6H", 0xBEEF, 0x0100, 1, 0, 0, 0))
    assert reply is not None
    assert struct.unpack_from("!H", reply)[0] == 0xBEEF
    assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR
    # a response (QR set) is dropped, never answered
    assert await env.raw(dns.message.make_response(dns.message.make_query("x.", "A")).to_wire(), wait=0.1) is None
    # a label running past the end of the packet
    bad = struct.pack("!6H", 7, 0, 1, 0, 0, 0) + b"\x3fabc"
    reply = await env.raw(bad)
    assert reply is not None and dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR
    for _ in range(200):
        junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(12, 80)))
        await env.raw(junk, wait=0.0)
    r = await env.udp("srv1.node." + D)
    assert records(r) == ["127.0.0.1"], "the listener must keep answering after garbage"


async def test_opcodes_edns_versions_and_options(env: Env) -> None:
    q = dns.message.make_query("srv1.node." + D, "A")
    q.set_opcode(dns.opcode.NOTIFY)
    reply = await env.raw(q.to_wire())
    assert reply is not None and dns.message.from_wire(reply).rcode() == dns.rcode.NOTIMP
    q = dns.message.make_query("srv1.node." + D, "A", use_edns=1)
    reply = await env.raw(q.to_wire())
    assert reply is not None and dns.message.from_wire(reply).rcode() == dns.rcode.BADVERS
    ecs = dns.edns.ECSOption("192.0.2.0", 24)
    cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"12345678")
    r = await env.udp("srv1.node." + D, use_edns=0, payload=1400, options=[ecs, cookie])
    assert records(r) == ["127.0.0.1"]
    opts = {o.otype: o for o in r.options}
    assert dns.edns.OptionType.COOKIE not in opts
    echoed = opts[dns.edns.OptionType.ECS]
    assert isinstance(echoed, dns.edns.ECSOption) and echoed.address == "192.0.2.0" and echoed.scopelen == 0
    assert r.payload == 1400
    r = await env.tcp(D, "AXFR")
    assert r.rcode() == dns.rcode.NOTIMP


async def test_tcp_pipelined_queries_on_one_connection(env: Env) -> None:
    reader, writer = await asyncio.open_connection(env.addr, env.port)
    try:
        ids = [101, 102, 103]
        for i in ids:
            q = dns.message.make_query("srv1.node." + D, "A", id=i)
            w = q.to_wire()
            writer.write(struct.pack("!H", len(w)) + w)
        await writer.drain()
        got = []
        for _ in ids:
            n = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), TIMEOUT))[0]
            got.append(dns.message.from_wire(await asyncio.wait_for(reader.readexactly(n), TIMEOUT)).id)
        assert got == ids
    finally:
        writer.close()


async def test_cache_off_gives_same_answers() -> None:
    srv, d = await start_env(cache=False)
    try:
        e = Env(srv, d)
        await register(srv, "n1", "10.0.0.1", "web", 80)
        assert records(await e.udp("web.service." + D)) == ["10.0.0.1"]
        assert records(await e.udp("web.service." + D)) == ["10.0.0.1"]
        assert d.hits == 0 and d.misses == 2
    finally:
        await d.stop()
        await srv.stop()


# ---------------------------------------------------------------- recursors


class FakeUpstream(asyncio.DatagramProtocol):
    """A tiny upstream resolver on 127.0.0.1: answers with ``respond(query) -> reply | None``."""

    def __init__(self, respond: Callable[[dns.message.Message], dns.message.Message | None]) -> None:
        self.respond = respond
        self.transport: asyncio.DatagramTransport | None = None
        self.seen = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.seen += 1
        reply = self.respond(dns.message.from_wire(data))
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply.to_wire(), addr)


def answer_a(ip: str) -> Callable[[dns.message.Message], dns.message.Message]:
    def respond(q: dns.message.Message) -> dns.message.Message:
        r = dns.message.make_response(q)
        r.flags |= dns.flags.RA
        r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", ip))
        return r
    return respond


def rcode_only(rcode: int) -> Callable[[dns.message.Message], dns.message.Message]:
    def respond(q: dns.message.Message) -> dns.message.Message:
        r = dns.message.make_response(q)
        r.set_rcode(rcode)
        return r
    return respond


async def upstream(respond: Callable[[dns.message.Message], dns.message.Message | None]) -> tuple[asyncio.DatagramTransport, FakeUpstream, int]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(lambda: FakeUpstream(respond), local_addr=("127.0.0.1", 0))
    return transport, proto, transport.get_extra_info("sockname")[1]


def silent_port() -> tuple[socket.socket, int]:
    """A bound UDP socket that never answers (a dead recursor)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


async def test_recursors_in_order_first_good_answer_wins() -> None:
    t1, bad, p1 = await upstream(rcode_only(dns.rcode.SERVFAIL))
    dead, p2 = silent_port()
    t3, good, p3 = await upstream(answer_a("192.0.2.7"))
    srv, d = await start_env(f"-recursor=127.0.0.1:{p1}", f"-recursor=127.0.0.1:{p2}", f"-recursor=127.0.0.1:{p3}",
                             "-hcl=dns_config { recursor_timeout = \"300ms\" }")
    try:
        e = Env(srv, d)
        r = await e.udp("www.example.org.")
        assert r.rcode() == dns.rcode.NOERROR and records(r) == ["192.0.2.7"]
        assert bad.seen == 1 and good.seen == 1
        r = await e.tcp("www.example.org.")
        assert records(r) == ["192.0.2.7"]
        # in-zone answers advertise recursion when recursors exist
        assert (await e.udp("srv1.node." + D)).flags & dns.flags.RA
    finally:
        await d.stop()
        await srv.stop()
        t1.close()
        t3.close()
        dead.close()


async def test_nxdomain_from_recursor_is_final_and_all_failing_is_servfail() -> None:
    t1, nx, p1 = await upstream(rcode_only(dns.rcode.NXDOMAIN))
    t2, good, p2 = await upstream(answer_a("192.0.2.8"))
    srv, d = await start_env(f"-recursor=127.0.0.1:{p1}", f"-recursor=127.0.0.1:{p2}")
    try:
        r = await Env(srv, d).udp("nothing.example.org.")
        assert r.rcode() == dns.rcode.NXDOMAIN and good.seen == 0
    finally:
        await d.stop()
        await srv.stop()
        t1.close()
        t2.close()
    dead, p3 = silent_port()
    t4, refusing, p4 = await upstream(rcode_only(dns.rcode.REFUSED))
    srv, d = await start_env(f"-recursor=127.0.0.1:{p3}", f"-recursor=127.0.0.1:{p4}",
                             "-hcl=dns_config { recursor_timeout = \"200ms\" }")
    try:
        r = await Env(srv, d).udp("www.example.org.")
        assert r.rcode() == dns.rcode.SERVFAIL and refusing.seen == 1
    finally:
        await d.stop()
        await srv.stop()
        t4.close()
        dead.close()


async def test_unknown_reverse_names_go_to_the_recursor() -> None:
    def ptr(q: dns.message.Message) -> dns.message.Message:
        r = dns.message.make_response(q)
        r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "PTR", "host.example.org."))
        return r

    t, up, port = await upstream(ptr)
    srv, d = await start_env(f"-recursor=127.0.0.1:{port}")
    try:
        e = Env(srv, d)
        assert records(await e.udp("9.2.0.192.in-addr.arpa.", "PTR")) == ["host.example.org."]
        assert records(await e.udp("1.0.0.127.in-addr.arpa.", "PTR")) == ["srv1.node.dc1.cluster.local."]
        assert up.seen == 1
    finally:
        await d.stop()
        await srv.stop()
        t.close()


async def test_truncated_upstream_reply_is_retried_over_tcp_and_resized_for_the_client() -> None:
    many = [f"192.0.2.{i}" for i in range(1, 61)]

    def full(q: dns.message.Message) -> dns.message.Message:
        r = dns.message.make_response(q)
        r.answer.append(dns.rrset.from_text_list(q.question[0].name, 60, "IN", "A", many))
        return r

    def truncated(q: dns.message.Message) -> dns.message.Message:
        r = dns.message.make_response(q)
        r.flags |= dns.flags.TC
        return r

    async def tcp_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
        out = full(dns.message.from_wire(await reader.readexactly(n))).to_wire()
        writer.write(struct.pack("!H", len(out)) + out)
        await writer.drain()
        writer.close()

    loop = asyncio.get_running_loop()
    for _ in range(20):  # the UDP port's TCP twin may be taken: retry (bounded)
        transport, udp = await loop.create_datagram_endpoint(lambda: FakeUpstream(truncated), local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        try:
            tcp_server = await asyncio.start_server(tcp_client, "127.0.0.1", port)
            break
        except OSError:
            transport.close()
    else:
        pytest.fail("no UDP+TCP port pair")
    srv, d = await start_env(f"-recursor=127.0.0.1:{port}")
    try:
        e = Env(srv, d)
        r = await e.tcp("big.example.org.")
        assert len(records(r)) == 60 and udp.seen == 1
        r = await e.udp("big.example.org.")  # ~1000 bytes do not fit a plain 512-byte UDP reply
        assert r.flags & dns.flags.TC and r.answer == []
        r = await e.udp("big.example.org.", use_edns=0, payload=4096)
        assert len(records(r)) == 60
    finally:
        await d.stop()
        await srv.stop()
        transport.close()
        tcp_server.close()


def _unstarted_server() -> DNSServer:
    srv = Server(ServerIdentity("srv1", "11111111-2222-3333-4444-555555555555", "dc1", "127.0.0.1"), rng=Rng(7))
    return DNSServer(srv, make_config(), rng=Rng(9))


_VALID = [
    dns.message.make_query(n, t, use_edns=e).to_wire()
    for n, t, e in [("web.service." + D, "A", False), ("x.node." + D, "SRV", 0), ("example.com.", "TXT", 0), (D, "SOA", False)]
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_VALID), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
       st.integers(0, 60), st.booleans())
def test_mutated_queries_never_raise(base: bytes, flips: list[tuple[int, int]], cut: int, tcp: bool) -> None:
    d = _unstarted_server()
    data = bytearray(base)
    for pos, val in flips:
        if pos < len(data):
            data[pos] = val
    if cut:
        data = data[: max(0, len(data) - cut)]
    out = d.handle(bytes(data), tcp)
    if isinstance(out, bytes):
        assert len(out) >= 12 and out[:2] == bytes(data[:2])
        dns.message.from_wire(out)  # whatever we send must be a well-formed message


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_never_raise(data: bytes) -> None:
    out = _unstarted_server().handle(data, False)
    assert out is None or (isinstance(out, bytes) and len(out) >= 12)


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import muster.dns.server as server_mod

    monkeypatch.setattr(server_mod, "MAX_CACHE", 50)
    d = _unstarted_server()
    for i in range(300):
        d.handle(dns.message.make_query(f"n{i}.service.{D}", "A").to_wire(), False)
    assert 0 < len(d._cache) <= 50
    assert d._cache_bytes == sum(t.size for t in d._cache.values())
    # (an entry's size includes what its rendered-reply memo may hold: see wire.MEMO_KEYS)
    monkeypatch.setattr(server_mod, "MAX_CACHE_BYTES", 40_000)
    d = _unstarted_server()
    for i in range(300):
        d.handle(dns.message.make_query(f"n{i}.service.{D}", "A").to_wire(), False)
    assert 0 < d._cache_bytes <= 40_000 and len(d._cache) < 300


def test_recursor_specs() -> None:
    from muster.dns.recursor import parse_recursor

    assert parse_recursor("8.8.8.8") == ("8.8.8.8", 53)
    assert parse_recursor("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_recursor("[::1]:5300") == ("::1", 5300)
    assert parse_recursor("2001:db8::1") == ("2001:db8::1", 53)
    for bad in ("dns.google", "1.2.3.4:0", "1.2.3.4:x"):
        with pytest.raises(ValueError):
            parse_recursor(bad)
    with pytest.raises(ValueError, match="invalid recursor"):
        DNSServer(_unstarted_server().server, make_config("-recursor=dns.google"))


def test_allow_stale_false_needs_a_known_leader(monkeypatch: pytest.MonkeyPatch) -> None:
    d = _unstarted_server()
    strict = DNSServer(d.server, make_config("-hcl=dns_config { allow_stale = false }"))
    q = dns.message.make_query("srv1.node." + D, "A").to_wire()
    monkeypatch.setattr(Server, "known_leader", lambda self: False)
    stale = d.handle(q, False)
    refused = strict.handle(q, False)
    assert isinstance(stale, bytes) and dns.message.from_wire(stale).rcode() != dns.rcode.SERVFAIL
    assert isinstance(refused, bytes) and dns.message.from_wire(refused).rcode() == dns.rcode.SERVFAIL
    monkeypatch.setattr(Server, "known_leader", lambda self: True)
    ok = strict.handle(q, False)
    assert isinstance(ok, bytes) and dns.message.from_wire(ok).rcode() != dns.rcode.SERVFAIL


async def test_agent_process_starts_dns_only_when_enabled() -> None:
    from realagent import free_port

    from muster.config import parse_agent_flags
    from muster.process import AgentProcess

    base = ["-dev", "-node=proc", "-client=127.0.0.1", "-http-port=-1", "-grpc-port=-1", "-domain=cluster.local"]
    off = AgentProcess(parse_agent_flags([*base, "-dns-port=-1"]), rng=Rng(3))
    await off.start()
    try:
        assert off.dns is None
    finally:
        await off.stop()
    port = free_port()
    on = AgentProcess(parse_agent_flags([*base, f"-dns-port={port}", "-alt-domain=consul"]), rng=Rng(3))
    await on.start()
    try:
        assert on.dns is not None and on.dns.addresses == [("127.0.0.1", port)]
        q = dns.message.make_query("consul.service.consul.", "SRV")
        r = await dns.asyncquery.udp(q, "127.0.0.1", timeout=TIMEOUT, port=port)
        assert records(r) == [f"1 1 {on.config.ports.server} proc.node.dc1.consul."]
    finally:
        await on.stop()


async def test_random_recursor_strategy_spreads_queries() -> None:
    t1, up1, p1 = await upstream(answer_a("192.0.2.1"))
    t2, up2, p2 = await upstream(answer_a("192.0.2.2"))
    srv, d = await start_env(f"-recursor=127.0.0.1:{p1}", f"-recursor=127.0.0.1:{p2}",
                             '-hcl=dns_config { recursor_strategy = "random" }')
    try:
        e = Env(srv, d)
        got = {records(await e.udp(f"h{i}.example.org."))[0] for i in range(30)}
        assert got == {"192.0.2.1", "192.0.2.2"} and up1.seen + up2.seen == 30
    finally:
        await d.stop()
        await srv.stop()
        t1.close()
        t2.close()


# ---------------------------------------------------------------- the UDP receive thread


def _canonical(msg: dns.message.Message) -> tuple[object, ...]:
    """A reply with the shuffle's order and the SOA serial (the time an entry was built) removed."""

    def section(rrsets: list[dns.rrset.RRset]) -> list[str]:
        out = []
        for rrset in rrsets:
            for rd in rrset:
                if rd.rdtype == dns.rdatatype.SOA:
                    rd = rd.replace(serial=0)
                out.append(f"{rrset.name} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} {rd}")
        return sorted(out)

    return (msg.id, msg.flags, msg.rcode(), msg.edns, msg.payload, [str(q) for q in msg.question],
            section(msg.answer), section(msg.authority), section(msg.additional))


def _udp_threads_alive() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("muster-dns-udp") and t.is_alive()]


async def test_thread_path_answers_equal_the_loop_path() -> None:
    srv, threaded = await start_env()
    looped = DNSServer(srv, make_config(), rng=Rng(8), udp_thread=False)
    await looped.start(["127.0.0.1"], 0)
    try:
        assert threaded._udp_threads and not looped._udp_threads
        for i in range(3):
            await register(srv, f"n{i}", f"10.0.0.{i + 1}", "web", 80 + i)
        await register(srv, "n3", "10.0.0.4", "web", 83, status="critical")
        for i in range(6):
            await register(srv, f"b{i}", f"10.1.0.{i + 1}", "big", 90)
        asks: list[tuple[str, str, dict[str, object]]] = [
            ("web.service." + D, "A", {}),
            ("WEB.Service." + D, "SRV", {}),
            ("big.service." + D, "A", {"use_edns": 0, "payload": 4096}),
            ("big.service." + D, "SRV", {"use_edns": 0, "payload": 4096}),
            ("n1.node." + D, "A", {}),
            ("nothere.service." + D, "A", {}),
            ("n1.node." + D, "AAAA", {}),
            (D, "SOA", {}),
            ("1.0.0.10.in-addr.arpa.", "PTR", {}),
            ("srv1.node." + D, "A", {"use_edns": 0, "payload": 1400}),
        ]
        for name, rdtype, kw in asks:
            for _ in range(3):  # the first is built on the loop, the next come from the thread's cache reads
                a = await Env(srv, threaded).udp(name, rdtype, id=4242, **kw)
                b = await Env(srv, looped).udp(name, rdtype, id=4242, **kw)
                assert _canonical(a) == _canonical(b), (name, rdtype, kw)
        assert threaded._udp_threads[0].hits >= 2 * len(asks), "repeated questions must be answered by the thread"
    finally:
        await looped.stop()
        await threaded.stop()
        await srv.stop()


async def test_thread_path_sees_a_catalog_change_at_once(env: Env) -> None:
    worker = env.dns._udp_threads[0]
    for i in range(3):
        await register(env.server, f"n{i}", f"10.0.0.{i + 1}", "web", 80)
    for _ in range(5):
        assert len(records(await env.udp("web.service." + D, "SRV"))) == 3
    before = worker.hits
    assert before >= 4
    gen = env.dns._store_generation()
    await register(env.server, "n1", "10.0.0.2", "web", 80, status="critical")
    assert env.dns._store_generation()[1] == env.server.store.catalog_index() > gen[1]
    assert len(records(await env.udp("web.service." + D, "SRV"))) == 2, "a critical check must leave DNS at once"
    assert "10.0.0.2" not in records(await env.udp("web.service." + D))
    hits = worker.hits
    assert len(records(await env.udp("web.service." + D, "SRV"))) == 2
    assert worker.hits == hits + 1, "the rebuilt answer is served by the thread again"
    await env.server.apply(DeregisterCommand(node="n0"))
    assert records(await env.udp("web.service." + D)) == ["10.0.0.3"]
    await register(env.server, "n1", "10.0.0.2", "web", 80)
    assert sorted(records(await env.udp("web.service." + D))) == ["10.0.0.2", "10.0.0.3"]


async def test_stop_is_bounded_and_leaves_no_thread() -> None:
    srv, d = await start_env()
    try:
        e = Env(srv, d)
        await register(srv, "n1", "10.0.0.1", "web", 80)
        assert records(await e.udp("web.service." + D)) == ["10.0.0.1"]
        assert _udp_threads_alive()
        worker = d._udp_threads[0]
        # misses queued on the loop when stop begins are dropped, never sent on a closed socket
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for i in range(50):
                sender.sendto(dns.message.make_query(f"m{i}.service.{D}", "A").to_wire(), (e.addr, e.port))
        finally:
            sender.close()
    finally:
        await d.stop()
        await srv.stop()
    assert not worker.is_alive() and worker.sock.fileno() == -1
    assert not _udp_threads_alive()
    await asyncio.sleep(0)  # queued hand-offs run against a stopped listener: no error
    assert d.hits >= 0


def test_answer_cached_on_malformed_input_drops_or_hands_off() -> None:
    from muster.dns.server import HANDOFF, Worker

    d = _unstarted_server()
    worker = Worker(Rng(3), ())
    rnd = random.Random(5)
    for n in (0, 1, 11):
        assert d.answer_cached(bytes(rnd.getrandbits(8) for _ in range(n)), worker) is None
    response = dns.message.make_response(dns.message.make_query("x.", "A")).to_wire()
    assert d.answer_cached(response, worker) is None
    no_question = struct.pack("!6H", 0xBEEF, 0x0100, 1, 0, 0, 0)
    assert d.answer_cached(no_question, worker) is HANDOFF
    assert d.answer_cached(dns.message.make_query("srv1.node." + D, "A", use_edns=1).to_wire(), worker) is HANDOFF
    q = dns.message.make_query("srv1.node." + D, "A").to_wire()
    assert d.answer_cached(q, worker) is HANDOFF, "nothing cached yet: the loop builds"
    built = d.handle(q, False)
    cached = d.answer_cached(q, worker)
    assert isinstance(built, bytes) and isinstance(cached, bytes) and worker.hits == 1
    assert _canonical(dns.message.from_wire(built)) == _canonical(dns.message.from_wire(cached))
    # the parse of a packet shape is remembered (ID excluded): each reply still carries its query's ID and case
    for qid, name in ((7, "srv1.node."), (8, "srv1.node."), (9, "SRV1.Node.")):
        again = d.answer_cached(dns.message.make_query(name + D, "A", id=qid).to_wire(), worker)
        if again is HANDOFF:
            again = d.handle(dns.message.make_query(name + D, "A", id=qid).to_wire(), False)
        assert isinstance(again, bytes)
        msg = dns.message.from_wire(again)
        assert msg.id == qid and str(msg.question[0].name) == name + D
        assert msg.rcode() == dns.message.from_wire(built).rcode() and records(msg) == records(dns.message.from_wire(built))
    assert len(worker.parsed) == 3 and worker.hits == 4  # the EDNS-1 shape, srv1 and SRV1


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_VALID), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
       st.integers(0, 60))
def test_mutated_queries_never_raise_on_the_thread_path(base: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    from muster.dns.server import Worker

    d = _unstarted_server()
    for v in _VALID:
        d.handle(v, False)  # fill the cache, so mutations reach the cached-answer path too
    data = bytearray(base)
    for pos, val in flips:
        if pos < len(data):
            data[pos] = val
    if cut:
        data = data[: max(0, len(data) - cut)]
    out = d.answer_cached(bytes(data), Worker(Rng(4), ()))
    if isinstance(out, bytes):
        assert len(out) >= 12 and out[:2] == bytes(data[:2])
        dns.message.from_wire(out)


async def test_handoffs_to_the_loop_are_bounded(env: Env) -> None:
    import muster.dns.server as server_mod

    worker = env.dns._udp_threads[0]
    worker.handed = worker.taken + server_mod.MAX_HANDOFF  # as if the loop had that many queued
    worker._handoff(b"x" * 12, ("127.0.0.1", 9))
    assert worker.dropped == 1 and worker.handed == worker.taken + server_mod.MAX_HANDOFF
    worker.taken = worker.handed  # the loop caught up
    assert records(await env.udp("srv1.node." + D)) == ["127.0.0.1"]


def test_thread_path_under_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        srv, d = await start_env()
        try:
            e = Env(srv, d)
            await register(srv, "n1", "10.0.0.1", "web", 80)
            for _ in range(3):
                assert records(await e.udp("web.service." + D)) == ["10.0.0.1"]
            assert d._udp_threads[0].hits >= 2
            await register(srv, "n1", "10.0.0.1", "web", 80, status="critical")
            assert records(await e.udp("web.service." + D)) == []
        finally:
            await d.stop()
            await srv.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
    assert not _udp_threads_alive()
