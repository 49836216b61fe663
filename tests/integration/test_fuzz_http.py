"""Fuzzing the HTTP request decoder of a real agent: raw bytes on its HTTP port.

Every generated input is sent on a fresh connection to one ``muster agent -dev`` process
(uvicorn's httptools parser, the connection guards, the router and the handlers), then the
client half-closes and reads until the agent closes.  For each input:

* the answer, if any, is one well-formed HTTP/1.1 response; an input the parser rejects gets
  exactly the bytes Consul's Go server writes (``guard.BAD_REQUEST``), an oversized header
  block ``guard.HEADERS_TOO_LARGE``; no answer is ever ``500 Internal server error``;
* the agent logs no traceback (``App`` logs one for every unexpected exception) and is
  still running.

After the inputs the agent still answers ``/v1/status/leader``.  Inputs are requests built
from a grammar (methods, paths of read and write endpoints, versions, header lines, Content-
Length and chunked bodies, each part possibly corrupted: bare LF or CR, NUL bytes, bytes
>= 0x80, bad chunk sizes, conflicting lengths) and plain random bytes.  Query strings never
carry ``index=``: a blocking query waits by design.  ``make test`` sends
``MUSTER_FUZZ_EXAMPLES`` inputs (default 500); the ``soak`` run sends 100,000 (figures: docs/fuzzing.md).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import IO

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from realagent import AgentProcess, start_agent

from muster.http.guard import BAD_REQUEST, HEADERS_TOO_LARGE, MAX_HEADER_BYTES

N = int(os.environ.get("MUSTER_FUZZ_EXAMPLES", "500"))
FUZZ = settings(max_examples=N, deadline=None, suppress_health_check=list(HealthCheck), database=None)
SOAK = settings(max_examples=100_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
READ_TIMEOUT = 10.0


class Target:
    """The agent under fuzz and the unread tail of its log."""

    def __init__(self, agent: AgentProcess) -> None:
        self.agent = agent
        self.log: IO[str] = open(agent.log_path, encoding="utf-8", errors="replace")  # noqa: SIM115
        self.log.seek(0, os.SEEK_END)

    def new_log(self) -> str:
        return self.log.read()


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    agent = start_agent(name="fuzz-http")
    t = Target(agent)
    try:
        yield t
    finally:
        t.log.close()
        agent.stop()


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a new connection, half-close, and read until the agent closes."""
    out = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # reset / not connected: the agent answered and closed before taking every byte
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, ConnectionAbortedError):
                break
            if not chunk:
                break
            out += chunk
    return bytes(out)


def check(target: Target, data: bytes) -> None:
    answer = exchange(target.agent.http_port, data)
    if answer:
        assert answer.startswith(b"HTTP/1.1 "), answer[:200]
        status = answer[9:12]
        assert status.isdigit() and b"100" <= status <= b"599", answer[:200]
        if answer.startswith(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection"):
            assert answer == BAD_REQUEST
        if status == b"431":
            assert answer == HEADERS_TOO_LARGE
        assert b"Internal server error" not in answer, answer[:400]
    log = target.new_log()
    assert "Traceback" not in log and "internal error" not in log, log[-4000:]
    assert target.agent.alive(), target.agent.log_tail()


_METHODS = st.sampled_from([b"GET", b"PUT", b"POST", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"CONNECT",
                            b"get", b"G\x00T", b"", b"\xff\xfe", b"GET GET"])
_PATHS = st.sampled_from([
    b"/v1/kv/fuzz", b"/v1/kv/fuzz/a?recurse", b"/v1/kv/fuzz?keys&separator=/", b"/v1/kv/fuzz?cas=x",
    b"/v1/status/leader", b"/v1/agent/self", b"/v1/agent/services", b"/v1/catalog/services",
    b"/v1/catalog/nodes?near=_agent", b"/v1/health/service/web?passing", b"/v1/txn", b"/v1/agent/service/register",
    b"/v1/catalog/register", b"/v1/session/create", b"/v1/event/fire/fuzz", b"/v1/query", b"/v1/acl/policy",
    b"/v1/config/service-defaults", b"/v1/agent/check/register", b"/", b"*", b"", b"http://h/v1/kv/fuzz",
    b"/v1/kv/%zz", b"/v1/kv/fuzz?dc=nope", b"/v1/kv/fuzz?wait=1x", b"/v1/catalog/services?filter=Service%20==",
    b"/v1/../../etc/passwd", b"/ui/", b"/v1/kv/" + b"a" * 5000,
])
_VERSIONS = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.1x", b"HTTP/11", b"", b"http/1.1"])
_EOL = st.sampled_from([b"\r\n"] * 6 + [b"\n", b"\r", b"\r\r\n", b""])
_HEADER_NAMES = st.sampled_from([b"Host", b"Content-Length", b"Transfer-Encoding", b"X-Consul-Token", b"Authorization",
                                 b"Connection", b"Expect", b"Content-Type", b"Upgrade", b"X-A", b"", b"Bad Name",
                                 b"X\x00Y", b"\xc3\xa9"])
_HEADER_VALUES = st.one_of(
    st.sampled_from([b"x", b"chunked", b"gzip, chunked", b"identity", b"-1", b"0", b"10", b"99999999999999999999",
                     b"keep-alive", b"close", b"100-continue", b"Bearer ", b"websocket", b"application/json"]),
    st.binary(max_size=80),
    st.integers(0, 70_000).map(lambda n: b"v" * n),
)
_header = st.tuples(_HEADER_NAMES, st.sampled_from([b": ", b":", b" : ", b""]), _HEADER_VALUES)
_JSON_BODIES = st.sampled_from([b"", b"{}", b"[]", b'{"Name":"web"}', b'{"Node":"n","Address":"a"}', b"null",
                                b'[{"KV":{"Verb":"set","Key":"fuzz","Value":"eA=="}}]', b"{", b'{"ID": 1e999}'])
_BODIES = st.one_of(_JSON_BODIES, st.binary(max_size=300))


@st.composite
def _chunked(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` in chunked framing, possibly corrupted (sizes, extensions, terminator)."""
    out = bytearray()
    pos = 0
    while pos < len(body):
        n = draw(st.integers(1, max(1, len(body) - pos)))
        size = draw(st.one_of(st.just(b"%x" % n), st.sampled_from([b"zz", b"-1", b"ffffffffffffffff", b"", b"1;ext=1"])))
        out += size + b"\r\n" + body[pos:pos + n] + draw(_EOL)
        pos += n
    out += draw(st.sampled_from([b"0\r\n\r\n", b"0\r\n", b"", b"0\r\nTrailer: x\r\n\r\n"]))
    return bytes(out)


@st.composite
def http_requests(draw: st.DrawFn) -> bytes:
    eol = draw(_EOL)
    line = draw(_METHODS) + b" " + draw(_PATHS) + draw(st.binary(max_size=20)) + b" " + draw(_VERSIONS)
    headers = [name + sep + value for name, sep, value in draw(st.lists(_header, max_size=6))]
    body = draw(_BODIES)
    framing = draw(st.sampled_from(["length", "chunked", "none", "wrong-length"]))
    if framing == "length":
        headers.append(b"Content-Length: %d" % len(body))
    elif framing == "wrong-length":
        headers.append(b"Content-Length: %d" % draw(st.integers(0, 1000)))
    elif framing == "chunked":
        headers.append(b"Transfer-Encoding: chunked")
        body = draw(_chunked(body))
    head = line + eol + b"".join(h + eol for h in headers) + eol
    return head + body


_inputs = st.one_of(http_requests(), st.binary(max_size=600))


def _run(target: Target, data: bytes) -> None:
    assume(b"index" not in data.lower())  # a blocking query waits by design
    check(target, data)


@FUZZ
@given(_inputs)
def test_fuzz_http_requests(target: Target, data: bytes) -> None:
    _run(target, data)


def test_fuzz_http_agent_keeps_serving(target: Target) -> None:
    """Runs after the fuzz test (file order): the agent answers a plain request."""
    answer = exchange(target.agent.http_port, b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:200]


def test_oversized_header_block_answers_431(target: Target) -> None:
    """One header line past the cap, and many small ones past it: 431, and the agent serves on."""
    for head in (b"X-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\n", b"X-A: b\r\n" * (MAX_HEADER_BYTES // 8 + 1)):
        answer = exchange(target.agent.http_port, b"GET /v1/kv/fuzz HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n")
        assert answer == HEADERS_TOO_LARGE
    under = b"X-Big: " + b"a" * (MAX_HEADER_BYTES - 4096) + b"\r\n"
    answer = exchange(target.agent.http_port, b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n" + under + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:200]


def test_malformed_request_answers_consuls_400(target: Target) -> None:
    for data in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /v1/kv/a HTTP/1.1\r\nBad Header\r\n\r\n",
                 b"PUT /v1/kv/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
                 b"PUT /v1/kv/a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"):
        assert exchange(target.agent.http_port, data) == BAD_REQUEST, data


@pytest.mark.soak
@pytest.mark.timeout(7200)  # 100,000 inputs outlast the suite-wide 300 s per test
@SOAK
@given(_inputs)
def test_soak_http_requests(target: Target, data: bytes) -> None:
    _run(target, data)
