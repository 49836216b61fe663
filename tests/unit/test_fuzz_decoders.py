"""Fuzzing every decoder that reads bytes from the network or from users, with hypothesis.

Each decoder must answer garbage, truncated, oversized and replayed input with its own clear
error (or a valid result), never another exception, and must keep working afterwards.  In
``make test`` each decoder gets ``MUSTER_FUZZ_EXAMPLES`` inputs (default 500); the ``soak``
run (``make soak``) throws 100,000 at each.
"""

from __future__ import annotations

import asyncio
import os
import struct

import dns.message
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from muster.acl.rules import RulesError, parse_rules
from muster.config import ConfigError
from muster.config.sources import parse_text
from muster.gossip import codec
from muster.gossip.keyring import Keyring, decode_key, generate_key
from muster.server.rpc import MAX_FRAME, encode_frame, read_frame

N = int(os.environ.get("MUSTER_FUZZ_EXAMPLES", "500"))
FUZZ = settings(max_examples=N, deadline=None, suppress_health_check=list(HealthCheck), database=None)
SOAK = settings(max_examples=100_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)

_RULE_WORDS = st.sampled_from(['key', 'key_prefix', 'service', '"', '{', '}', '=', 'policy', '"read"', '"write"', '"deny"',
                               '"list"', 'acl', '\n', ' ', '#', '/*', '*/', '[', ']', ',', ':', 'intentions', '""'])
rule_text = st.one_of(st.text(max_size=200), st.lists(_RULE_WORDS, max_size=40).map("".join))


def _rules(text: str) -> None:
    try:
        parse_rules(text)
    except RulesError as err:
        assert err.status == 500 and err.message


def _config(text: str) -> None:
    for fmt in ("json", "hcl"):
        try:
            parse_text(text, fmt, "fuzz")
        except ConfigError as err:
            assert str(err).startswith("Error parsing fuzz")


KEYRING = Keyring(decode_key(generate_key()))
WRONG = Keyring(decode_key(generate_key()))
GOOD_FRAME = codec.seal(b"\x01\x02", KEYRING)


def _gossip(data: bytes) -> None:
    for ring in (None, KEYRING, WRONG):
        try:
            body = codec.open_frame(data, ring)
            codec.decode(body)
        except (codec.MalformedMessage, codec.AuthError):
            pass
    try:
        codec.decode(data)
    except codec.MalformedMessage:
        pass


def _rpc(data: bytes) -> None:
    async def run() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        try:
            await read_frame(reader)
        except (asyncio.IncompleteReadError, ValueError, msgspec.DecodeError):
            pass

    _LOOP.run_until_complete(run())


_LOOP = asyncio.new_event_loop()


def _dns(srv: object, data: bytes) -> None:
    out = srv.handle(data, False)  # type: ignore[attr-defined]
    if isinstance(out, bytes):
        dns.message.from_wire(out)  # whatever it answers is a well-formed message


@pytest.fixture(scope="module")
def dns_server() -> object:
    from muster.config import config_from_dict
    from muster.dns.server import DNSServer
    from muster.server.server import Server, ServerIdentity

    cfg = config_from_dict({"node_name": "fuzz"}, dev=True)
    srv = Server(ServerIdentity(node_name="fuzz", node_id="00000000-0000-0000-0000-0000000000aa", datacenter="dc1", advertise_addr="127.0.0.1"))
    return DNSServer(srv, cfg, cache=False)


_dns_bytes = st.one_of(
    st.binary(max_size=600),
    st.builds(lambda name, cut: dns.message.make_query(name, "A").to_wire()[:cut],
              st.sampled_from(["web.service.consul.", "n.node.consul.", "x.query.consul.", "a.b."]), st.integers(0, 80)),
)
_rpc_bytes = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda obj, cut: encode_frame(obj)[:cut], st.lists(st.integers(-(2**63), 2**63 - 1), max_size=6), st.integers(0, 60)),
    st.just(struct.pack(">I", MAX_FRAME + 1) + b"x"),
)
_gossip_bytes = st.one_of(st.binary(max_size=400), st.builds(lambda cut: GOOD_FRAME[:cut], st.integers(0, 64)),
                          st.just(GOOD_FRAME))


@FUZZ
@given(rule_text)
def test_fuzz_acl_rules(text: str) -> None:
    _rules(text)


@FUZZ
@given(st.one_of(st.text(max_size=200), rule_text))
def test_fuzz_config_text(text: str) -> None:
    _config(text)


@FUZZ
@given(_gossip_bytes)
def test_fuzz_gossip_frames(data: bytes) -> None:
    _gossip(data)


@FUZZ
@given(_rpc_bytes)
def test_fuzz_rpc_frames(data: bytes) -> None:
    _rpc(data)


@FUZZ
@given(_dns_bytes)
def test_fuzz_dns_packets(dns_server: object, data: bytes) -> None:
    _dns(dns_server, data)


@pytest.mark.soak
@pytest.mark.timeout(7200)  # 100,000 inputs outlast the suite-wide 300 s per test
@SOAK
@given(_gossip_bytes)
def test_soak_gossip_frames(data: bytes) -> None:
    _gossip(data)


@pytest.mark.soak
@pytest.mark.timeout(7200)  # 100,000 inputs outlast the suite-wide 300 s per test
@SOAK
@given(_rpc_bytes)
def test_soak_rpc_frames(data: bytes) -> None:
    _rpc(data)


@pytest.mark.soak
@pytest.mark.timeout(7200)  # 100,000 inputs outlast the suite-wide 300 s per test
@SOAK
@given(_dns_bytes)
def test_soak_dns_packets(dns_server: object, data: bytes) -> None:
    _dns(dns_server, data)


@pytest.mark.soak
@pytest.mark.timeout(7200)  # 100,000 inputs outlast the suite-wide 300 s per test
@SOAK
@given(rule_text)
def test_soak_acl_rules(text: str) -> None:
    _rules(text)


@pytest.mark.soak
@pytest.mark.timeout(7200)  # 100,000 inputs outlast the suite-wide 300 s per test
@SOAK
@given(st.one_of(st.text(max_size=200), rule_text))
def test_soak_config_text(text: str) -> None:
    _config(text)
