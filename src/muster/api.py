"""A small synchronous client for the Consul HTTP API (the one Muster serves).

Used by the ``muster`` CLI and by tests.  It is built on the standard library only
(``http.client`` for the connection, ``urllib.parse`` for URLs, ``ssl`` for TLS) so the
CLI starts fast and works without the server's dependencies.

Connection settings follow Consul's Go client (``api.DefaultConfig`` and the CLI's
``-http-addr``/``-token`` flags, docs/compat/cli.md#connection-settings):

* ``CONSUL_HTTP_ADDR`` / ``-http-addr``: ``host:port``, ``http://host:port[/prefix]``,
  ``https://host:port``, or ``unix:///path/to/socket``.  Default ``127.0.0.1:8500``.
* ``CONSUL_HTTP_TOKEN`` / ``-token`` and ``CONSUL_HTTP_TOKEN_FILE`` / ``-token-file``:
  sent as ``X-Consul-Token``.
* ``CONSUL_HTTP_AUTH``: ``user[:password]`` HTTP basic auth.
* ``CONSUL_HTTP_SSL=true``: use https when the address has no scheme.
* ``CONSUL_HTTP_SSL_VERIFY=false``: skip certificate verification.
* ``CONSUL_CACERT``/``CONSUL_CAPATH``, ``CONSUL_CLIENT_CERT``/``CONSUL_CLIENT_KEY``,
  ``CONSUL_TLS_SERVER_NAME``: TLS material and SNI name.

Every method raises :class:`APIError` for a non-2xx answer (``str()`` mirrors the Go
client's ``Unexpected response code: <code> (<body>)``) and :class:`TransportError` when
the agent cannot be reached.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from muster.durations import parse_duration
from muster.goparse import parse_bool, parse_uint

__all__ = [
    "DEFAULT_ADDRESS",
    "APIError",
    "Client",
    "ClientConfig",
    "ConfigError",
    "ConsulError",
    "QueryMeta",
    "Response",
    "TransportError",
    "decode_value",
    "parse_address",
]

DEFAULT_ADDRESS = "127.0.0.1:8500"
#: Timeout for a non-blocking request, in seconds.
DEFAULT_TIMEOUT = 60.0
#: Consul's default blocking-query wait when ``index`` is sent without ``wait``.
DEFAULT_WAIT = 300.0

T = TypeVar("T")
Params = Sequence[tuple[str, str]]


class ConsulError(Exception):
    """Base class of every error this module raises."""


class ConfigError(ConsulError):
    """Bad connection settings (an unparsable address, an unreadable token file...)."""


class TransportError(ConsulError):
    """The request never got an HTTP answer (connection refused, timeout, TLS failure)."""

    def __init__(self, method: str, url: str, reason: str) -> None:
        # Go's url.Error: `Get "http://...": dial tcp ...: connect: connection refused`.
        super().__init__(f'{method.capitalize()} "{url}": {reason}')
        self.method = method
        self.url = url
        self.reason = reason


class APIError(ConsulError):
    """The agent answered with a non-2xx status.  ``body`` is the (text) response body."""

    def __init__(self, status: int, body: str, method: str = "", url: str = "") -> None:
        super().__init__(f"Unexpected response code: {status} ({body})")
        self.status = status
        self.body = body
        self.method = method
        self.url = url


@dataclass(frozen=True)
class QueryMeta:
    """Metadata of a read: the ``X-Consul-*`` headers."""

    index: int = 0
    known_leader: bool = False
    last_contact_ms: int = 0


@dataclass
class Response:
    """A raw HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """Return a header value by case-insensitive name."""
        return self.headers.get(name.lower())

    @property
    def meta(self) -> QueryMeta:
        """The query metadata carried by the headers (missing values read as 0/False)."""
        index = _parse_uint(self.header("X-Consul-Index"))
        contact = _parse_uint(self.header("X-Consul-LastContact"))
        return QueryMeta(
            index=index,
            known_leader=(self.header("X-Consul-KnownLeader") or "").lower() == "true",
            last_contact_ms=contact,
        )

    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body decoded as JSON; an undecodable body raises :class:`ConsulError`."""
        try:
            return json.loads(self.body)
        except ValueError as err:
            raise ConsulError(f"Failed to decode response: {err}") from err


def _parse_uint(value: str | None) -> int:
    """A response header as Go's ``strconv.ParseUint(v, 10, 64)``; absent or unparsable is 0."""
    if not value:
        return 0
    try:
        return parse_uint(value, 10)
    except ValueError:
        return 0


def decode_value(entry: Mapping[str, Any] | None) -> bytes:
    """Decode the base64 ``Value`` of a KV entry (``null`` means empty)."""
    if not entry:
        return b""
    raw = entry.get("Value")
    if raw is None:
        return b""
    return base64.b64decode(raw)


@dataclass(frozen=True)
class Address:
    """A parsed agent address."""

    scheme: str  # "http", "https" or "unix"
    host: str = ""
    port: int = 0
    path_prefix: str = ""
    socket_path: str = ""

    def base_url(self) -> str:
        """The URL prefix used in error messages."""
        if self.scheme == "unix":
            return f"http://unix{self.path_prefix}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path_prefix}"


def parse_address(addr: str, *, ssl_default: bool = False) -> Address:
    """Parse an address the way Consul's Go client does.

    ``host:port`` (scheme from ``ssl_default``), ``http://host:port[/prefix]``,
    ``https://host:port``, ``unix:///path``.  A missing port defaults to 8500 for http and
    8501 for https.
    """
    addr = addr.strip()
    if not addr:
        raise ConfigError("empty address")
    if addr.startswith("unix://"):
        path = addr[len("unix://") :]
        if not path:
            raise ConfigError(f"invalid unix socket address {addr!r}")
        return Address(scheme="unix", socket_path=path)
    scheme = "https" if ssl_default else "http"
    rest = addr
    if "://" in addr:
        scheme, rest = addr.split("://", 1)
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise ConfigError(f"Unknown protocol scheme: {scheme}")
    prefix = ""
    if "/" in rest:
        rest, tail = rest.split("/", 1)
        prefix = "/" + tail.rstrip("/") if tail.strip("/") else ""
    parsed = urllib.parse.urlsplit("//" + rest)
    try:
        port = parsed.port
    except ValueError as err:
        raise ConfigError(f"invalid address {addr!r}: {err}") from err
    host = parsed.hostname or ""
    if not host:
        raise ConfigError(f"invalid address {addr!r}: missing host")
    if port is None:
        port = 8501 if scheme == "https" else 8500
    return Address(scheme=scheme, host=host, port=port, path_prefix=prefix)


@dataclass
class ClientConfig:
    """Everything needed to reach an agent.  Build one with :meth:`from_env`."""

    address: str = DEFAULT_ADDRESS
    token: str = ""
    token_file: str = ""
    http_auth: str = ""
    ssl: bool = False
    ssl_verify: bool = True
    ca_file: str = ""
    ca_path: str = ""
    client_cert: str = ""
    client_key: str = ""
    tls_server_name: str = ""
    datacenter: str = ""
    stale: bool = False
    timeout: float = DEFAULT_TIMEOUT
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientConfig:
        """Read the ``CONSUL_*`` environment variables (docs/compat/cli.md#connection-settings).

        Unparsable booleans are ignored with a warning (appended to ``warnings``), as the
        Go client does.
        """
        env = os.environ if environ is None else environ
        cfg = cls()
        if env.get("CONSUL_HTTP_ADDR"):
            cfg.address = env["CONSUL_HTTP_ADDR"]
        cfg.token = env.get("CONSUL_HTTP_TOKEN", "")
        cfg.token_file = env.get("CONSUL_HTTP_TOKEN_FILE", "")
        cfg.http_auth = env.get("CONSUL_HTTP_AUTH", "")
        for name, attr in (("CONSUL_HTTP_SSL", "ssl"), ("CONSUL_HTTP_SSL_VERIFY", "ssl_verify")):
            raw = env.get(name, "")
            if raw:
                try:
                    setattr(cfg, attr, parse_bool(raw))
                except ValueError as err:
                    cfg.warnings.append(f"could not parse {name}: {err}")
        cfg.ca_file = env.get("CONSUL_CACERT", "")
        cfg.ca_path = env.get("CONSUL_CAPATH", "")
        cfg.client_cert = env.get("CONSUL_CLIENT_CERT", "")
        cfg.client_key = env.get("CONSUL_CLIENT_KEY", "")
        cfg.tls_server_name = env.get("CONSUL_TLS_SERVER_NAME", "")
        return cfg

    def resolved_address(self) -> Address:
        """Parse :attr:`address` (raises :class:`ConfigError`)."""
        return parse_address(self.address, ssl_default=self.ssl)

    def resolved_token(self) -> str:
        """The token to send: ``token`` wins, else the trimmed contents of ``token_file``."""
        if self.token:
            return self.token
        if self.token_file:
            try:
                with open(self.token_file, encoding="utf-8") as fh:
                    return fh.read().strip()
            except OSError as err:
                raise ConfigError(f"Error loading token file {self.token_file}: {err.strerror}") from err
        return ""


class _UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection over a Unix domain socket."""

    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _SNIHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection whose SNI/verification name can differ from the host."""

    def __init__(
        self, host: str, port: int, timeout: float | None, context: ssl.SSLContext, server_name: str
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._server_name = server_name
        self._ctx = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            self.sock = self._ctx.wrap_socket(sock, server_hostname=self._server_name)
        except (OSError, ssl.SSLError):
            sock.close()
            raise


class Client:
    """A synchronous Consul HTTP API client.

    Each request uses its own connection, so one client may be shared by threads (the
    ``lock`` command renews its session on one thread while another blocks on the key).
    """

    def __init__(self, config: ClientConfig | None = None) -> None:
        self.config = config or ClientConfig.from_env()
        self.address = self.config.resolved_address()
        self.token = self.config.resolved_token()
        self._ssl_context: ssl.SSLContext | None = None
        if self.address.scheme == "https":
            self._ssl_context = self._make_ssl_context()

    # -- transport -------------------------------------------------------------------

    def _make_ssl_context(self) -> ssl.SSLContext:
        cfg = self.config
        try:
            ctx = ssl.create_default_context(cafile=cfg.ca_file or None, capath=cfg.ca_path or None)
            if cfg.client_cert:
                ctx.load_cert_chain(cfg.client_cert, cfg.client_key or None)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(f"Error loading TLS material: {err}") from err
        if not cfg.ssl_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        addr = self.address
        if addr.scheme == "unix":
            return _UnixHTTPConnection(addr.socket_path, timeout)
        if addr.scheme == "https":
            assert self._ssl_context is not None
            server_name = self.config.tls_server_name or addr.host
            return _SNIHTTPSConnection(addr.host, addr.port, timeout, self._ssl_context, server_name)
        return http.client.HTTPConnection(addr.host, addr.port, timeout=timeout)

    def url(self, path: str, params: Params = ()) -> str:
        """The full URL of ``path`` (used in error messages)."""
        query = urllib.parse.urlencode(list(params))
        return self.address.base_url() + _quote_path(path) + (f"?{query}" if query else "")

    def request(
        self,
        method: str,
        path: str,
        params: Params = (),
        body: bytes | None = None,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request and return the raw response, whatever its status.

        ``path`` starts with ``/v1/``; it is percent-encoded here (``/`` kept).
        """
        target = self.address.path_prefix + _quote_path(path)
        query = urllib.parse.urlencode(list(params))
        if query:
            target += "?" + query
        hdrs: dict[str, str] = {"User-Agent": "muster-cli"}
        if self.token:
            hdrs["X-Consul-Token"] = self.token
        if self.config.http_auth:
            hdrs["Authorization"] = "Basic " + base64.b64encode(self.config.http_auth.encode("utf-8")).decode(
                "ascii"
            )
        if headers:
            hdrs.update(headers)
        if body is not None:
            hdrs.setdefault("Content-Type", "application/octet-stream")
        conn = self._connection(self.config.timeout if timeout is None else timeout)
        url = self.url(path, params)
        try:
            conn.request(method, target, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            resp_headers = {k.lower(): v for k, v in resp.getheaders()}
            return Response(status=resp.status, headers=resp_headers, body=data)
        except TimeoutError as err:
            raise TransportError(method, url, "timeout awaiting response headers") from err
        except ConnectionRefusedError as err:
            raise TransportError(method, url, _dial_reason(self.address, "connection refused")) from err
        except FileNotFoundError as err:
            raise TransportError(
                method, url, _dial_reason(self.address, "no such file or directory")
            ) from err
        except ssl.SSLError as err:
            raise TransportError(method, url, f"tls: {err.reason or err}") from err
        except (OSError, http.client.HTTPException) as err:
            raise TransportError(method, url, str(err) or type(err).__name__) from err
        finally:
            conn.close()

    def _call(
        self,
        method: str,
        path: str,
        params: Params = (),
        body: bytes | None = None,
        *,
        timeout: float | None = None,
        ok_404: bool = False,
    ) -> Response:
        resp = self.request(method, path, params, body, timeout=timeout)
        if 200 <= resp.status < 300 or (ok_404 and resp.status == 404):
            return resp
        raise APIError(resp.status, resp.text().rstrip("\n"), method, self.url(path, params))

    def _read_params(
        self,
        params: list[tuple[str, str]],
        index: int = 0,
        wait: str | None = None,
        stale: bool | None = None,
        datacenter: str | None = None,
        consistent: bool = False,
    ) -> list[tuple[str, str]]:
        dc = self.config.datacenter if datacenter is None else datacenter
        if dc:
            params.append(("dc", dc))
        if consistent:
            params.append(("consistent", ""))
        elif self.config.stale if stale is None else stale:
            params.append(("stale", ""))
        if index:
            params.append(("index", str(index)))
            if wait:
                params.append(("wait", wait))
        return params

    def _write_params(self, params: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if self.config.datacenter:
            params.append(("dc", self.config.datacenter))
        return params

    def _timeout_for(self, index: int, wait: str | None) -> float:
        """A read timeout that outlives a blocking query (wait + wait/16 jitter + slack)."""
        if not index:
            return self.config.timeout
        seconds = DEFAULT_WAIT
        if wait:
            try:
                seconds = parse_duration(wait)
            except ValueError:
                seconds = DEFAULT_WAIT
            if seconds <= 0:
                seconds = DEFAULT_WAIT
        seconds = min(seconds, 600.0)
        return seconds + seconds / 16 + self.config.timeout

    def query(
        self,
        path: str,
        params: Params = (),
        *,
        index: int = 0,
        wait: str | None = None,
        stale: bool | None = None,
        consistent: bool = False,
        ok_404: bool = False,
    ) -> tuple[Any, QueryMeta]:
        """A (possibly blocking) GET decoded as JSON; a 404 with ``ok_404`` decodes to None.

        ``consistent`` asks for a consistent read (it overrides ``stale``).
        """
        full = self._read_params(list(params), index, wait, stale, consistent=consistent)
        resp = self._call("GET", path, full, timeout=self._timeout_for(index, wait), ok_404=ok_404)
        if resp.status == 404:
            return None, resp.meta
        return resp.json(), resp.meta

    # -- KV --------------------------------------------------------------------------

    def kv_get(
        self,
        key: str,
        *,
        index: int = 0,
        wait: str | None = None,
        stale: bool | None = None,
        consistent: bool = False,
    ) -> tuple[dict[str, Any] | None, QueryMeta]:
        """One KV entry (raw JSON object, ``Value`` still base64) or None when missing."""
        data, meta = self.query(
            f"/v1/kv/{key}", index=index, wait=wait, stale=stale, consistent=consistent, ok_404=True
        )
        if not data:
            return None, meta
        return data[0], meta

    def kv_list(
        self,
        prefix: str,
        *,
        index: int = 0,
        wait: str | None = None,
        stale: bool | None = None,
        consistent: bool = False,
    ) -> tuple[list[dict[str, Any]], QueryMeta]:
        """Every entry under ``prefix`` (``?recurse``), sorted by key; [] when none."""
        data, meta = self.query(
            f"/v1/kv/{prefix}",
            [("recurse", "")],
            index=index,
            wait=wait,
            stale=stale,
            consistent=consistent,
            ok_404=True,
        )
        return list(data or []), meta

    def kv_keys(
        self,
        prefix: str,
        separator: str = "",
        *,
        index: int = 0,
        wait: str | None = None,
        stale: bool | None = None,
    ) -> tuple[list[str], QueryMeta]:
        """Key names under ``prefix`` (``?keys``), folded at ``separator`` when given."""
        params = [("keys", "")]
        if separator:
            params.append(("separator", separator))
        data, meta = self.query(f"/v1/kv/{prefix}", params, index=index, wait=wait, stale=stale, ok_404=True)
        return list(data or []), meta

    def kv_put(
        self,
        key: str,
        value: bytes = b"",
        *,
        flags: int | None = None,
        cas: int | None = None,
        acquire: str | None = None,
        release: str | None = None,
    ) -> bool:
        """PUT a value; returns the server's ``true``/``false``."""
        params: list[tuple[str, str]] = []
        if flags is not None:
            params.append(("flags", str(flags)))
        if cas is not None:
            params.append(("cas", str(cas)))
        if acquire:
            params.append(("acquire", acquire))
        if release:
            params.append(("release", release))
        resp = self._call("PUT", f"/v1/kv/{key}", self._write_params(params), value)
        return bool(resp.json())

    # -- KV history (a Muster extension, docs/kv-history.md) ------------------------------

    def kv_history(self, key: str, *, recurse: bool = False, stale: bool | None = None) -> tuple[list[dict[str, Any]], QueryMeta]:
        """The versions of ``key`` (of every key under it with ``recurse``), newest first per
        key; [] when there is no history."""
        params = [("recurse", "")] if recurse else []
        data, meta = self.query(f"/v1/muster/kv-history/{key}", params, stale=stale, ok_404=True)
        return list(data or []), meta

    def kv_history_diff(self, key: str, *, frm: int | None = None, to: int | None = None) -> dict[str, Any] | None:
        """The diff of two versions of ``key`` (defaults: the newest and the one before); None
        when the key has no history."""
        params = [("diff", "")]
        if frm is not None:
            params.append(("from", str(frm)))
        if to is not None:
            params.append(("to", str(to)))
        data, _ = self.query(f"/v1/muster/kv-history/{key}", params, ok_404=True)
        return dict(data) if data is not None else None

    def kv_rollback(self, key: str, index: int, *, cas: int | None = None) -> bool:
        """Write version ``index`` of ``key`` back (a CAS write); False when the key changed
        since (``cas``, or its ModifyIndex when the server received the request)."""
        params = [("rollback", str(index))]
        if cas is not None:
            params.append(("cas", str(cas)))
        resp = self._call("PUT", f"/v1/muster/kv-history/{key}", self._write_params(params))
        return bool(resp.json())

    # ------------------------------------------------------------------ config entries

    def config_entry_set(self, entry: dict[str, Any], cas: int | None = None) -> bool:
        """``PUT /v1/config``; with ``cas`` only if the entry's ModifyIndex is that (0: absent)."""
        params = self._write_params([("cas", str(cas))] if cas is not None else [])
        return bool(self._call("PUT", "/v1/config", params, json.dumps(entry).encode()).json())

    def config_entry_get(self, kind: str, name: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/v1/config/{kind}/{name}", self._read_params([])).json())

    def config_entry_list(self, kind: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/v1/config/{kind}", self._read_params([])).json())

    def config_entry_delete(self, kind: str, name: str, cas: int | None = None) -> bool:
        """``DELETE /v1/config/:kind/:name``; with ``cas``, whether it applied."""
        params = self._write_params([("cas", str(cas))] if cas is not None else [])
        resp = self._call("DELETE", f"/v1/config/{kind}/{name}", params)
        return bool(resp.json()) if cas is not None else True

    def kv_delete(self, key: str, *, recurse: bool = False, cas: int | None = None) -> bool:
        """DELETE a key (or a prefix with ``recurse``); returns the server's boolean."""
        params: list[tuple[str, str]] = []
        if recurse:
            params.append(("recurse", ""))
        if cas is not None:
            params.append(("cas", str(cas)))
        resp = self._call("DELETE", f"/v1/kv/{key}", self._write_params(params))
        return bool(resp.json())

    # -- sessions --------------------------------------------------------------------

    def session_create(self, body: Mapping[str, Any] | None = None) -> str:
        """Create a session; returns its ID."""
        payload = json.dumps(dict(body)).encode() if body else None
        resp = self._call("PUT", "/v1/session/create", self._write_params([]), payload)
        return str(resp.json()["ID"])

    def session_destroy(self, session_id: str) -> bool:
        """Destroy a session (idempotent)."""
        resp = self._call("PUT", f"/v1/session/destroy/{session_id}", self._write_params([]))
        return bool(resp.json())

    def session_renew(self, session_id: str) -> dict[str, Any] | None:
        """Renew a session; None when the server no longer knows it (404)."""
        resp = self._call("PUT", f"/v1/session/renew/{session_id}", self._write_params([]), ok_404=True)
        if resp.status == 404:
            return None
        data = resp.json()
        return data[0] if data else None

    def session_info(
        self, session_id: str, *, index: int = 0, wait: str | None = None
    ) -> tuple[dict[str, Any] | None, QueryMeta]:
        """One session or None."""
        data, meta = self.query(f"/v1/session/info/{session_id}", index=index, wait=wait)
        return (data[0] if data else None), meta

    def session_list(
        self, *, index: int = 0, wait: str | None = None
    ) -> tuple[list[dict[str, Any]], QueryMeta]:
        """All sessions."""
        data, meta = self.query("/v1/session/list", index=index, wait=wait)
        return list(data or []), meta

    def session_node(
        self, node: str, *, index: int = 0, wait: str | None = None
    ) -> tuple[list[dict[str, Any]], QueryMeta]:
        """Sessions of one node."""
        data, meta = self.query(f"/v1/session/node/{node}", index=index, wait=wait)
        return list(data or []), meta

    # -- catalog ---------------------------------------------------------------------

    def catalog_datacenters(self) -> list[str]:
        """Known datacenters, nearest first."""
        resp = self._call("GET", "/v1/catalog/datacenters")
        return list(resp.json() or [])

    def catalog_nodes(
        self,
        *,
        node_meta: Mapping[str, str] | None = None,
        near: str = "",
        filter_expr: str = "",
        index: int = 0,
        wait: str | None = None,
    ) -> tuple[list[dict[str, Any]], QueryMeta]:
        """All catalog nodes."""
        params = _filter_params(node_meta, near, filter_expr)
        data, meta = self.query("/v1/catalog/nodes", params, index=index, wait=wait)
        return list(data or []), meta

    def catalog_services(
        self,
        *,
        node_meta: Mapping[str, str] | None = None,
        index: int = 0,
        wait: str | None = None,
    ) -> tuple[dict[str, list[str]], QueryMeta]:
        """Service name -> union of tags."""
        params = _filter_params(node_meta, "", "")
        data, meta = self.query("/v1/catalog/services", params, index=index, wait=wait)
        return dict(data or {}), meta

    def catalog_service(
        self,
        name: str,
        *,
        tags: Sequence[str] = (),
        node_meta: Mapping[str, str] | None = None,
        near: str = "",
        filter_expr: str = "",
        index: int = 0,
        wait: str | None = None,
    ) -> tuple[list[dict[str, Any]], QueryMeta]:
        """Instances of one service (all, regardless of health)."""
        params = [("tag", t) for t in tags] + _filter_params(node_meta, near, filter_expr)
        data, meta = self.query(f"/v1/catalog/service/{name}", params, index=index, wait=wait)
        return list(data or []), meta

    def catalog_node(
        self, node: str, *, node_meta: Mapping[str, str] | None = None
    ) -> tuple[dict[str, Any] | None, QueryMeta]:
        """A node with its services, or None for an unknown node."""
        data, meta = self.query(f"/v1/catalog/node/{node}", _filter_params(node_meta, "", ""))
        return data, meta

    # -- health ----------------------------------------------------------------------

    def health_service(
        self, name: str, *, passing: bool = False, tag: str = "", index: int = 0, wait: str | None = None
    ) -> tuple[list[dict[str, Any]], QueryMeta]:
        """Service entries (node, service, checks) of one service."""
        params: list[tuple[str, str]] = []
        if passing:
            params.append(("passing", "1"))
        if tag:
            params.append(("tag", tag))
        data, meta = self.query(f"/v1/health/service/{name}", params, index=index, wait=wait)
        return list(data or []), meta

    def health_state(
        self, state: str, *, index: int = 0, wait: str | None = None
    ) -> tuple[list[dict[str, Any]], QueryMeta]:
        """Checks in one state (``any`` for all)."""
        data, meta = self.query(f"/v1/health/state/{state}", index=index, wait=wait)
        return list(data or []), meta

    def health_checks(
        self, service: str, *, index: int = 0, wait: str | None = None
    ) -> tuple[list[dict[str, Any]], QueryMeta]:
        """Checks of every instance of one service."""
        data, meta = self.query(f"/v1/health/checks/{service}", index=index, wait=wait)
        return list(data or []), meta

    # -- agent -----------------------------------------------------------------------

    def agent_self(self) -> dict[str, Any]:
        """``/v1/agent/self``."""
        return dict(self._call("GET", "/v1/agent/self").json())

    def agent_node_name(self) -> str:
        """This agent's node name (what the Go CLI checks before watches and locks)."""
        return str(self.agent_self().get("Config", {}).get("NodeName", ""))

    def agent_members(
        self, *, wan: bool = False, segment: str = "", filter_expr: str = ""
    ) -> list[dict[str, Any]]:
        """Gossip members as seen by this agent."""
        params: list[tuple[str, str]] = []
        if wan:
            params.append(("wan", "1"))
        if segment:
            params.append(("segment", segment))
        if filter_expr:
            params.append(("filter", filter_expr))
        return list(self._call("GET", "/v1/agent/members", params).json() or [])

    def agent_services(self) -> dict[str, dict[str, Any]]:
        """Services registered with this agent."""
        return dict(self._call("GET", "/v1/agent/services").json() or {})

    def agent_checks(self) -> dict[str, dict[str, Any]]:
        """Checks registered with this agent."""
        return dict(self._call("GET", "/v1/agent/checks").json() or {})

    def agent_service_register(
        self, definition: Mapping[str, Any], *, replace_existing_checks: bool = False
    ) -> None:
        """Register a service with this agent."""
        params = [("replace-existing-checks", "true")] if replace_existing_checks else []
        self._call("PUT", "/v1/agent/service/register", params, json.dumps(dict(definition)).encode())

    def agent_service_deregister(self, service_id: str) -> None:
        """Deregister a service from this agent."""
        self._call("PUT", f"/v1/agent/service/deregister/{service_id}")

    def agent_check_register(self, definition: Mapping[str, Any]) -> None:
        """Register a check with this agent."""
        self._call("PUT", "/v1/agent/check/register", (), json.dumps(dict(definition)).encode())

    def agent_check_deregister(self, check_id: str) -> None:
        """Deregister a check."""
        self._call("PUT", f"/v1/agent/check/deregister/{check_id}")

    def agent_check_ttl(self, check_id: str, status: str, note: str = "") -> None:
        """Update a TTL check: ``status`` is ``pass``, ``warn`` or ``fail``."""
        if status not in ("pass", "warn", "fail"):
            raise ValueError(f"bad TTL status {status!r}")
        params = [("note", note)] if note else []
        self._call("PUT", f"/v1/agent/check/{status}/{check_id}", params)

    def agent_reload(self) -> None:
        """Ask the agent to reload its configuration."""
        self._call("PUT", "/v1/agent/reload")

    def agent_leave(self) -> None:
        """Ask the agent to leave gracefully and shut down."""
        self._call("PUT", "/v1/agent/leave")

    def agent_maintenance(self, enable: bool, reason: str = "") -> None:
        """Toggle node maintenance mode."""
        params = [("enable", "true" if enable else "false")]
        if reason:
            params.append(("reason", reason))
        self._call("PUT", "/v1/agent/maintenance", params)

    def agent_service_maintenance(self, service_id: str, enable: bool, reason: str = "") -> None:
        """Toggle maintenance mode of one local service."""
        params = [("enable", "true" if enable else "false")]
        if reason:
            params.append(("reason", reason))
        self._call("PUT", f"/v1/agent/service/maintenance/{service_id}", params)

    def agent_monitor(
        self, log_level: str = "", *, log_json: bool = False, on_open: Callable[[Callable[[], None]], None] | None = None
    ) -> Generator[str, None, None]:
        """Stream the agent's log lines (``/v1/agent/monitor``) until the agent ends the stream.

        The status is checked before the first line: a bad level raises :class:`APIError` at
        once.  Closing the generator closes the connection, which ends the subscription.
        ``on_open`` receives, once connected, a function that ends the stream from any thread
        (it shuts the socket down, so a read blocked in another thread returns)."""
        params: list[tuple[str, str]] = []
        if log_level:
            params.append(("loglevel", log_level))
        if log_json:
            params.append(("logjson", ""))
        target = self.address.path_prefix + "/v1/agent/monitor"
        if params:
            target += "?" + urllib.parse.urlencode(params)
        url = self.url("/v1/agent/monitor", params)
        hdrs = {"User-Agent": "muster-cli"}
        if self.token:
            hdrs["X-Consul-Token"] = self.token
        conn = self._connection(None)

        def abort() -> None:
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        try:
            try:
                conn.request("GET", target, headers=hdrs)
                if on_open is not None:
                    on_open(abort)
                resp = conn.getresponse()
            except ConnectionRefusedError as err:
                raise TransportError("GET", url, _dial_reason(self.address, "connection refused")) from err
            except (OSError, http.client.HTTPException) as err:
                raise TransportError("GET", url, str(err) or type(err).__name__) from err
            if not 200 <= resp.status < 300:
                body = resp.read().decode("utf-8", errors="replace").rstrip("\n")
                raise APIError(resp.status, body, "GET", url)
            while True:
                try:
                    line = resp.readline()
                except (OSError, http.client.HTTPException):
                    return
                if not line:
                    return
                yield line.decode("utf-8", errors="replace").rstrip("\n")
        finally:
            conn.close()

    # -- events, status, operator ----------------------------------------------------

    def event_fire(
        self, name: str, payload: bytes = b"", *, node: str = "", service: str = "", tag: str = ""
    ) -> dict[str, Any]:
        """Fire a user event; returns the UserEvent object."""
        params: list[tuple[str, str]] = []
        for key, value in (("node", node), ("service", service), ("tag", tag)):
            if value:
                params.append((key, value))
        resp = self._call("PUT", f"/v1/event/fire/{name}", self._write_params(params), payload)
        return dict(resp.json())

    def event_list(
        self, name: str = "", *, index: int = 0, wait: str | None = None
    ) -> tuple[list[dict[str, Any]], QueryMeta]:
        """Recent user events (oldest first), optionally only those called ``name``."""
        params = [("name", name)] if name else []
        data, meta = self.query("/v1/event/list", params, index=index, wait=wait)
        return list(data or []), meta

    def status_leader(self) -> str:
        """``ip:port`` of the Raft leader, ``""`` when there is none."""
        return str(self._call("GET", "/v1/status/leader").json() or "")

    def status_peers(self) -> list[str]:
        """Raft voters as ``ip:port``."""
        return list(self._call("GET", "/v1/status/peers").json() or [])

    def operator_raft_configuration(self, *, stale: bool = False) -> dict[str, Any]:
        """``/v1/operator/raft/configuration``."""
        params = [("stale", "")] if stale else []
        return dict(self._call("GET", "/v1/operator/raft/configuration", params).json())

    # -- blocking helper ---------------------------------------------------------------

    def watch(
        self,
        fetch: Callable[[int], tuple[T, QueryMeta]],
        *,
        stop: Callable[[], bool] | None = None,
        on_error: Callable[[ConsulError, int], float] | None = None,
    ) -> Iterator[tuple[int, T]]:
        """Yield ``(index, result)`` each time a blocking read returns a *changed* result.

        ``fetch(index)`` performs one (blocking) read.  Semantics follow Consul's watch plan
        (``api/watch/plan.go``): the first result is always yielded; later ones only when the
        index changed *and* the data differs; an index that goes backwards restarts from 0.

        Errors propagate unless ``on_error`` is given: it is called with the error and the
        number of consecutive failures and returns how many seconds to sleep before the
        next attempt (which restarts from index 0).
        """
        last_index = 0
        first = True
        last_result: Any = None
        failures = 0
        while stop is None or not stop():
            try:
                result, meta = fetch(last_index)
            except ConsulError as err:
                if on_error is None:
                    raise
                failures += 1
                last_index = 0
                time.sleep(on_error(err, failures))
                continue
            failures = 0
            if stop is not None and stop():
                return
            new_index = meta.index
            if not first and new_index == last_index:
                continue
            last_index = new_index if new_index >= last_index else 0
            if not first and result == last_result:
                continue
            first = False
            last_result = result
            yield new_index, result


def _filter_params(node_meta: Mapping[str, str] | None, near: str, filter_expr: str) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    for key, value in (node_meta or {}).items():
        params.append(("node-meta", f"{key}:{value}"))
    if near:
        params.append(("near", near))
    if filter_expr:
        params.append(("filter", filter_expr))
    return params


def _quote_path(path: str) -> str:
    return urllib.parse.quote(path, safe="/:@!$&'()*+,;=-._~")


def _dial_reason(addr: Address, what: str) -> str:
    if addr.scheme == "unix":
        return f"dial unix {addr.socket_path}: connect: {what}"
    host = f"[{addr.host}]" if ":" in addr.host else addr.host
    return f"dial tcp {host}:{addr.port}: connect: {what}"


def with_overrides(config: ClientConfig, **changes: Any) -> ClientConfig:
    """A copy of ``config`` with some fields replaced (flags override the environment)."""
    return replace(config, **changes)
