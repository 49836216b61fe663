"""Fixtures for the web UI tests.

* ``agent``: a real ``muster agent -dev -ui`` subprocess on a free port of
  127.0.0.1 (one per test session), with a small HTTP client for the API.
* ``ui``: a fresh Chromium page (Debian's /usr/bin/chromium through
  Playwright) that fails the test on any console error or page error, unless
  the test explicitly allows a specific, expected message.

Browser tests are skipped cleanly when Chromium or Playwright is missing.
Screenshots go to ``test-artifacts/ui/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from ui_harness import (
    AGENT_START_TIMEOUT,
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DEFAULT_TIMEOUT_MS,
    ROOT,
    UI,
    Agent,
    free_port,
    stop_process,
    wait_for_leader,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright


@pytest.fixture(scope="session")
def agent() -> Iterator[Agent]:
    """``python -m muster agent -dev -ui`` on a free 127.0.0.1 port.

    Set MUSTER_UI_AGENT_URL (e.g. http://127.0.0.1:8500) to run the tests
    against an agent that is already running instead.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    external = os.environ.get("MUSTER_UI_AGENT_URL", "").rstrip("/")
    if external:
        with httpx.Client(base_url=external, timeout=10.0) as client:
            yield Agent(url=external, proc=None, log_path=ARTIFACTS / "agent.log", client=client)
        return
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "muster",
        "agent",
        "-dev",
        "-ui",
        "-client=127.0.0.1",
        f"-http-port={port}",
        "-dns-port=-1",
        # Free ports for everything else too, so that other -dev agents
        # (other suites, other developers) cannot collide with this one.
        f"-server-port={free_port()}",
        f"-serf-lan-port={free_port()}",
        f"-serf-wan-port={free_port()}",
        "-grpc-port=-1",
    ]
    log_path = ARTIFACTS / "agent.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_")}
    env.setdefault("PYTHONUNBUFFERED", "1")
    with open(log_path, "wb") as log:
        log.write(("$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT, env=env
        )
    try:
        wait_for_leader(url, proc, time.monotonic() + AGENT_START_TIMEOUT)
    except RuntimeError as exc:
        stop_process(proc)
        tail = log_path.read_text(errors="replace")[-4000:]
        pytest.fail(
            f"could not start the agent ({' '.join(cmd)}): {exc}\n--- agent log ---\n{tail}", pytrace=False
        )
    client = httpx.Client(base_url=url, timeout=10.0)
    try:
        yield Agent(url=url, proc=proc, log_path=log_path, client=client)
    finally:
        client.close()
        stop_process(proc)


# ---------------------------------------------------------------------------
# The browser


@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def ui_browser(playwright_instance: Playwright) -> Iterator[Browser]:
    browser = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def ui(ui_browser: Browser, agent: Agent) -> Iterator[UI]:
    from playwright.sync_api import expect

    expect.set_options(timeout=DEFAULT_TIMEOUT_MS)
    context = ui_browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    helper = UI(page, agent)
    try:
        yield helper
        # Let in-flight renders finish before judging the console.
        with contextlib.suppress(Exception):
            page.wait_for_timeout(150)
        problems = helper.unexpected_problems()
        if problems:
            pytest.fail(
                "browser console errors / page errors:\n" + "\n".join(map(str, problems)), pytrace=False
            )
    finally:
        context.close()
