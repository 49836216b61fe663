"""A stand-in for the docker SDK that runs ``muster agent`` instead of ``hashicorp/consul``.

py-consul's test suite (its sdist, unmodified) starts every Consul server with
``docker.from_env().containers.run("hashicorp/consul:<v>", command="agent -dev ...",
ports={8500: None}, environment={"CONSUL_LOCAL_CONFIG": <json>})`` and reads the published
host port from ``container.attrs``.  This module implements exactly that subset of the SDK
with a local process, the way the image's entrypoint would run Consul:

* ``CONSUL_LOCAL_CONFIG`` is written to ``<tmp>/config/local.json`` and the agent gets
  ``-config-dir=<tmp>/config`` (the image writes it to ``/consul/config``);
* the container's network is 127.0.0.1: ``-client=0.0.0.0`` becomes ``-client=127.0.0.1``
  and every port (HTTP, server RPC, serf LAN/WAN) is a free one, the HTTP one being what
  docker would publish for ``8500/tcp``;
* ``logs()`` returns the agent's output, ``stop()`` is SIGTERM then SIGKILL for that PID;
* inside a container, ``127.0.0.1:8500`` is that container's own HTTP API, and two of the
  suite's tests register HTTP checks against it.  ``LocalAPIPort`` gives the agents the same
  view: it listens on ``127.0.0.1:8500`` and relays each connection to the HTTP port of the
  container the suite is using (it runs one test, and so one container, at a time).  When
  8500 is taken on this machine the relay stays off and the ``muster_clientsuite`` plugin
  deselects exactly those tests, saying why.

The suite starts a fresh server for every test, and most of a test's time would be that
start.  So each ``run`` also starts the *next* agent with the same command and configuration
(one spare, never shared: a test always gets an agent no other test has used); a ``run``
with a different configuration discards the spare.

Nothing here answers an API call: every request the suite makes goes to the real agent.
"""

from __future__ import annotations

import atexit
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from muster_testkit.ports import free_port

from . import errors

__all__ = ["DockerClient", "from_env", "errors"]

_REPO = Path(__file__).resolve().parents[4]
_ARTIFACTS = Path(os.environ.get("MUSTER_CLIENTSUITE_ARTIFACTS", str(_REPO / "test-artifacts")))
_STOP_GRACE = 10.0


def _free_port() -> int:
    try:
        return free_port()
    except RuntimeError as err:
        raise errors.APIError("no free port on 127.0.0.1") from err


class Container:
    """One ``muster agent`` process standing in for a Consul container."""

    _seq = 0

    def __init__(self, name: str, image: str, command: str, environment: dict[str, str]) -> None:
        Container._seq += 1
        self.name = name
        self.image = image
        self.key = (command, tuple(sorted(environment.items())))
        self._dir = Path(tempfile.mkdtemp(prefix=f"clientsuite-{Container._seq}-"))
        config_dir = self._dir / "config"
        config_dir.mkdir()
        local = environment.get("CONSUL_LOCAL_CONFIG")
        if local:
            (config_dir / "local.json").write_text(local, encoding="utf-8")
        self.http_port = _free_port()
        args = ["-client=127.0.0.1" if a.startswith("-client=") else a for a in shlex.split(command)]
        if not args or args[0] != "agent":
            raise errors.APIError(f"only the agent command is supported, got {command!r}")
        argv = [
            sys.executable, "-m", "muster", *args,
            f"-config-dir={config_dir}",
            f"-http-port={self.http_port}",
            f"-server-port={_free_port()}",
            f"-serf-lan-port={_free_port()}",
            f"-serf-wan-port={_free_port()}",
        ]  # fmt: skip
        _ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.log_path = _ARTIFACTS / f"clientsuite-agent-{os.getpid()}-{Container._seq}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed by stop()
        self._log.write(("$ " + " ".join(argv) + "\n").encode())
        self._log.flush()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_")}
        env["PYTHONPATH"] = str(_REPO / "src")
        self._proc = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=str(self._dir),
            start_new_session=True,
        )
        self.attrs: dict[str, Any] = {}
        self.reload()

    def running(self) -> bool:
        return self._proc.poll() is None

    def wait_listening(self, timeout: float = 60.0) -> None:
        """Return once the agent's HTTP port accepts connections (bounded): ``run`` returns
        when the container is up, and the suite's own readiness budget (10 s for a leader and a
        first registration) starts only then, as it does after docker started the image."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running():
            try:
                with socket.create_connection(("127.0.0.1", self.http_port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)

    def reload(self) -> None:
        """Refresh ``attrs`` (state and the published port, as ``docker inspect`` shows them)."""
        running = self._proc.poll() is None
        self.attrs = {
            "Name": "/" + self.name,
            "State": {"Running": running, "ExitCode": self._proc.returncode or 0},
            "NetworkSettings": {"Ports": {"8500/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(self.http_port)}]}},
        }

    def logs(self) -> bytes:
        """The agent's output so far."""
        self._log.flush()
        return self.log_path.read_bytes()

    def stop(self, timeout: float = _STOP_GRACE) -> None:
        """SIGTERM the agent, SIGKILL it after ``timeout`` seconds."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=timeout)
        if not self._log.closed:
            self._log.close()

    def remove(self, force: bool = False) -> None:
        """Stop (if still running) and delete the container's files."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
        _CONTAINERS.pop(self.name, None)
        if _LOCAL_API_PORT.target == self.http_port:
            _LOCAL_API_PORT.target = None


LOCAL_API = ("127.0.0.1", 8500)


class LocalAPIPort:
    """``127.0.0.1:8500`` relayed to the current container's HTTP port (see the module doc).

    Bytes are copied both ways unchanged, one daemon thread per direction; a connection
    made while no container is current is closed at once, as a stopped container's port
    would refuse it.  Started on the first ``run``; ``error`` says why it could not bind.
    """

    def __init__(self) -> None:
        self.target: int | None = None
        self.error: str | None = None
        self._sock: socket.socket | None = None

    def start(self) -> None:
        if self._sock is not None or self.error is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(LOCAL_API)
        except OSError as err:
            sock.close()
            self.error = f"cannot bind {LOCAL_API[0]}:{LOCAL_API[1]}: {err.strerror}"
            return
        sock.listen(64)
        self._sock = sock
        threading.Thread(target=self._accept, name="local-api-8500", daemon=True).start()

    def _accept(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            port = self.target
            if port is None:
                conn.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                conn.close()
                continue
            upstream.settimeout(None)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy ``src`` to ``dst`` until either side ends; then close both."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


_LOCAL_API_PORT = LocalAPIPort()


_CONTAINERS: dict[str, Container] = {}
_SPARE: list[Container] = []


class _Containers:
    def run(
        self,
        image: str,
        command: str = "",
        *,
        environment: dict[str, str] | None = None,
        name: str | None = None,
        detach: bool = True,
        ports: dict[int, Any] | None = None,
        **_ignored: Any,
    ) -> Container:
        if not detach:
            raise errors.APIError("only detached containers are supported")
        if ports is not None and set(ports) - {8500}:
            raise errors.APIError(f"only port 8500 can be published, got {sorted(ports)}")
        cname = name or f"muster_{time.monotonic_ns()}"
        if cname in _CONTAINERS:
            raise errors.APIError(f"Conflict. The container name {cname!r} is already in use")
        env = dict(environment or {})
        container = None
        while _SPARE:
            spare = _SPARE.pop()
            if container is None and spare.key == (command, tuple(sorted(env.items()))) and spare.running():
                container = spare
            else:
                spare.remove(force=True)
        if container is None:
            container = Container(cname, image, command, env)
        container.wait_listening()
        container.name = cname
        _LOCAL_API_PORT.start()
        _LOCAL_API_PORT.target = container.http_port
        _CONTAINERS[cname] = container
        _SPARE.append(Container(f"spare_{time.monotonic_ns()}", image, command, env))
        return container

    def get(self, name: str) -> Container:
        try:
            return _CONTAINERS[name]
        except KeyError:
            raise errors.NotFound(f"No such container: {name}") from None


class DockerClient:
    """``docker.DockerClient`` with only ``containers.run`` / ``containers.get``."""

    def __init__(self) -> None:
        self.containers = _Containers()


def from_env() -> DockerClient:
    """``docker.from_env()``: the local stand-in needs no environment."""
    return DockerClient()


def _stop_all() -> None:
    for container in list(_CONTAINERS.values()) + _SPARE:
        container.remove(force=True)
    _SPARE.clear()
    _LOCAL_API_PORT.close()


atexit.register(_stop_all)
