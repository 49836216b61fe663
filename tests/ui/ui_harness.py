"""Helpers for the web UI tests: the agent under test and a browser page wrapper."""

from __future__ import annotations

import base64
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
AGENT_START_TIMEOUT = 40.0
DEFAULT_TIMEOUT_MS = 10_000


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ---------------------------------------------------------------------------
# The agent


@dataclass
class Agent:
    """A running agent and a synchronous client for its HTTP API."""

    url: str
    proc: subprocess.Popen[bytes] | None
    log_path: Path
    client: httpx.Client = field(repr=False)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(f"/v1/{path}", params=params)

    def put(
        self, path: str, *, content: bytes | str | None = None, json: Any = None, **params: Any
    ) -> httpx.Response:
        resp = self.client.put(f"/v1/{path}", content=content, json=json, params=params)
        assert resp.status_code == 200, f"PUT {path} -> {resp.status_code} {resp.text}"
        return resp

    def delete(self, path: str, **params: Any) -> httpx.Response:
        resp = self.client.delete(f"/v1/{path}", params=params)
        assert resp.status_code == 200, f"DELETE {path} -> {resp.status_code} {resp.text}"
        return resp

    @staticmethod
    def kv_path(key: str) -> str:
        """The API path of a KV key (percent-encoded, "/" kept)."""
        return "kv/" + quote(key, safe="/")

    def kv_get(self, key: str) -> dict[str, Any] | None:
        """The DirEntry of ``key``, or None when missing."""
        resp = self.get(self.kv_path(key))
        if resp.status_code == 404:
            return None
        assert resp.status_code == 200, resp.text
        entry: dict[str, Any] = resp.json()[0]
        return entry

    def kv_value(self, key: str) -> str | None:
        entry = self.kv_get(key)
        if entry is None:
            return None
        raw = entry.get("Value")
        return "" if raw is None else base64.b64decode(raw).decode()

    def kv_put(self, key: str, value: str, **params: Any) -> bool:
        result: bool = self.put(self.kv_path(key), content=value.encode(), **params).json()
        return result

    @property
    def node_name(self) -> str:
        name: str = self.get("agent/self").json()["Config"]["NodeName"]
        return name

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no agent log)"
        return "\n".join(text.splitlines()[-lines:])


def wait_for_leader(url: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    last = ""
    with httpx.Client(base_url=url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"agent exited early with code {proc.returncode}")
            try:
                resp = client.get("/v1/status/leader")
                last = f"{resp.status_code} {resp.text!r}"
                if resp.status_code == 200 and resp.json():
                    return
            except (httpx.HTTPError, ValueError) as exc:
                last = repr(exc)
            time.sleep(0.2)
    raise RuntimeError(f"agent had no leader after {AGENT_START_TIMEOUT}s (last answer: {last})")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class ConsoleProblem:
    kind: str
    text: str
    url: str

    def __str__(self) -> str:
        where = f" ({self.url})" if self.url else ""
        return f"[{self.kind}] {self.text}{where}"


class UI:
    """A page of the app plus helpers; records console errors and page errors."""

    def __init__(self, page: Page, agent: Agent) -> None:
        self.page = page
        self.agent = agent
        self.problems: list[ConsoleProblem] = []
        self._allowed: list[re.Pattern[str]] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.problems.append(ConsoleProblem("pageerror", str(exc), "")))

    def _on_console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            loc = msg.location or {}
            self.problems.append(ConsoleProblem("console.error", msg.text, str(loc.get("url", ""))))

    def allow_console(self, pattern: str) -> None:
        """Tolerate console errors matching ``pattern`` (text + url) for this test only."""
        self._allowed.append(re.compile(pattern))

    def unexpected_problems(self) -> list[ConsoleProblem]:
        return [p for p in self.problems if not any(a.search(f"{p.text} {p.url}") for a in self._allowed)]

    def url(self, route: str) -> str:
        route = route if route.startswith("/") else f"/{route}"
        return f"{self.agent.url}/ui/#{route}"

    def goto(self, route: str) -> None:
        """Open a route like "/services" and wait for its heading."""
        self.page.goto(self.url(route))
        self.page.locator("main h1").first.wait_for()

    def shot(self, name: str, *, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path
