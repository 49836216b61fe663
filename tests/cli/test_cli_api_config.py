"""Connection settings of muster.api: CONSUL_* environment and address forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from muster.api import APIError, Client, ClientConfig, ConfigError, Response, TransportError, parse_address


@pytest.mark.parametrize(
    ("addr", "ssl", "expected"),
    [
        ("127.0.0.1:8500", False, ("http", "127.0.0.1", 8500, "")),
        ("localhost", False, ("http", "localhost", 8500, "")),
        ("localhost", True, ("https", "localhost", 8501, "")),
        ("10.0.0.1:9000", True, ("https", "10.0.0.1", 9000, "")),
        ("http://h:1/", True, ("http", "h", 1, "")),
        ("https://h:2/consul/", False, ("https", "h", 2, "/consul")),
        ("HTTP://h:3", False, ("http", "h", 3, "")),
        ("[::1]:8500", False, ("http", "::1", 8500, "")),
    ],
)
def test_parse_address(addr: str, ssl: bool, expected: tuple[str, str, int, str]) -> None:
    a = parse_address(addr, ssl_default=ssl)
    assert (a.scheme, a.host, a.port, a.path_prefix) == expected


def test_parse_unix_address() -> None:
    a = parse_address("unix:///run/consul.sock")
    assert a.scheme == "unix" and a.socket_path == "/run/consul.sock"


@pytest.mark.parametrize("addr", ["", "ftp://h:1", "h:notaport", "unix://", "http://:80"])
def test_parse_address_errors(addr: str) -> None:
    with pytest.raises(ConfigError):
        parse_address(addr)


def test_from_env() -> None:
    cfg = ClientConfig.from_env(
        {
            "CONSUL_HTTP_ADDR": "h:1",
            "CONSUL_HTTP_TOKEN": "t",
            "CONSUL_HTTP_SSL": "true",
            "CONSUL_HTTP_SSL_VERIFY": "false",
            "CONSUL_CACERT": "/ca.pem",
            "CONSUL_HTTP_AUTH": "u:p",
        }
    )
    assert (cfg.address, cfg.token, cfg.ssl, cfg.ssl_verify, cfg.ca_file, cfg.http_auth) == (
        "h:1",
        "t",
        True,
        False,
        "/ca.pem",
        "u:p",
    )
    assert cfg.resolved_address().scheme == "https"


def test_from_env_bad_bool_is_a_warning() -> None:
    cfg = ClientConfig.from_env({"CONSUL_HTTP_SSL": "yes"})
    assert cfg.ssl is False
    assert cfg.warnings and "CONSUL_HTTP_SSL" in cfg.warnings[0]


def test_defaults() -> None:
    cfg = ClientConfig.from_env({})
    assert cfg.address == "127.0.0.1:8500" and cfg.token == ""


def test_token_file(tmp_path: Path) -> None:
    f = tmp_path / "tok"
    f.write_text("  abc \n")
    assert ClientConfig(token_file=str(f)).resolved_token() == "abc"
    assert ClientConfig(token="direct", token_file=str(f)).resolved_token() == "direct"
    with pytest.raises(ConfigError, match="Error loading token file"):
        ClientConfig(token_file=str(tmp_path / "missing")).resolved_token()


def test_response_meta_and_errors() -> None:
    r = Response(
        200, {"x-consul-index": "42", "x-consul-knownleader": "true", "x-consul-lastcontact": "7"}, b"[]"
    )
    assert (r.meta.index, r.meta.known_leader, r.meta.last_contact_ms) == (42, True, 7)
    assert Response(200, {"x-consul-index": "junk"}, b"").meta.index == 0
    assert str(APIError(500, "No cluster leader")) == "Unexpected response code: 500 (No cluster leader)"
    err = TransportError("GET", "http://h:1/v1/kv/x", "dial tcp h:1: connect: connection refused")
    assert str(err) == 'Get "http://h:1/v1/kv/x": dial tcp h:1: connect: connection refused'


def test_client_url_encoding() -> None:
    c = Client(ClientConfig(address="http://127.0.0.1:8500/prefix"))
    assert (
        c.url("/v1/kv/a b/ç?#", [("recurse", "")])
        == "http://127.0.0.1:8500/prefix/v1/kv/a%20b/%C3%A7%3F%23?recurse="
    )


def test_connection_refused_is_transport_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = Client(ClientConfig(address=f"127.0.0.1:{port}", timeout=5))
    with pytest.raises(TransportError) as err:
        c.status_leader()
    assert "connection refused" in str(err.value)


def test_unix_socket_transport(tmp_path: Path) -> None:
    """A minimal HTTP answer over a Unix socket (no agent needed)."""
    import socket
    import threading

    path = str(tmp_path / "agent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            assert data.startswith(b"GET /v1/status/leader ")
            body = b'"127.0.0.1:8300"'
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    t = threading.Thread(target=serve)
    t.start()
    try:
        assert Client(ClientConfig(address=f"unix://{path}", timeout=5)).status_leader() == "127.0.0.1:8300"
    finally:
        t.join(timeout=5)
        srv.close()


def test_watch_plan_semantics() -> None:
    """Client.watch yields like Consul's watch plan: changed index *and* changed data."""
    from muster.api import ConsulError, QueryMeta

    script: list[object] = [
        ("a", 5),  # first result: always yielded
        ("a", 5),  # same index: skipped
        ("a", 6),  # new index, same data: skipped
        ("b", 7),  # changed: yielded
        ("c", 3),  # index went backwards: yielded, and the next fetch restarts from 0
        ConsulError("boom"),  # error: on_error, retry from index 0
        ("d", 9),
    ]
    seen_indexes: list[int] = []
    errors: list[int] = []

    def fetch(index: int) -> tuple[str, QueryMeta]:
        seen_indexes.append(index)
        step = script.pop(0)
        if isinstance(step, Exception):
            raise step
        assert isinstance(step, tuple)
        return step[0], QueryMeta(index=step[1])

    def on_error(err: ConsulError, failures: int) -> float:
        errors.append(failures)
        return 0.0

    c = Client(ClientConfig(address="127.0.0.1:1"))
    got = []
    for item in c.watch(fetch, on_error=on_error):
        got.append(item)
        if len(got) == 4:
            break
    assert got == [(5, "a"), (7, "b"), (3, "c"), (9, "d")]
    assert errors == [1]
    assert seen_indexes == [0, 5, 5, 6, 7, 0, 0]
    assert not script


def test_watch_errors_propagate_without_handler() -> None:
    from muster.api import ConsulError, QueryMeta

    def fetch(index: int) -> tuple[str, QueryMeta]:
        raise ConsulError("down")

    with pytest.raises(ConsulError):
        next(Client(ClientConfig(address="127.0.0.1:1")).watch(fetch))


def test_blocking_read_timeout_outlives_wait() -> None:
    c = Client(ClientConfig(address="127.0.0.1:1", timeout=10))
    assert c._timeout_for(0, "5s") == 10
    assert c._timeout_for(7, "16s") == 16 + 1 + 10
    assert c._timeout_for(7, None) == 300 + 300 / 16 + 10  # Consul's default wait
    assert c._timeout_for(7, "1h") == 600 + 600 / 16 + 10  # capped like max_query_time
