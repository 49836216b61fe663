"""The UI against an agent with ACLs on and default deny, in Chromium: it asks for a token
(the agent's ``X-Consul-Default-ACL-Policy: deny`` with no token set), shows nothing it may not,
and works once a token is entered on the settings page."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from ui_harness import (
    AGENT_START_TIMEOUT,
    ARTIFACTS,
    ROOT,
    UI,
    Agent,
    free_port,
    stop_process,
    wait_for_leader,
)

pytestmark = pytest.mark.browser

SECRET = "9f0c4c4c-1a6e-4f0e-9a43-3a7f0b7fa11e"
HCL = f'acl {{\n  enabled = true\n  default_policy = "deny"\n  tokens {{\n    initial_management = "{SECRET}"\n  }}\n}}\n'


@pytest.fixture(scope="module")
def acl_agent() -> Iterator[Agent]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "muster", "agent", "-dev", "-ui", "-client=127.0.0.1", f"-http-port={port}",
        "-dns-port=-1", f"-server-port={free_port()}", f"-serf-lan-port={free_port()}",
        f"-serf-wan-port={free_port()}", "-grpc-port=-1", f"-hcl={HCL}",
    ]  # fmt: skip
    log_path = ARTIFACTS / "acl-agent.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
    try:
        wait_for_leader(url, proc, time.monotonic() + AGENT_START_TIMEOUT)
    except RuntimeError as exc:
        stop_process(proc)
        pytest.fail(f"could not start the agent: {exc}\n{log_path.read_text(errors='replace')[-3000:]}", pytrace=False)
    client = httpx.Client(base_url=url, timeout=10.0, headers={"X-Consul-Token": SECRET})
    try:
        yield Agent(url=url, proc=proc, log_path=log_path, client=client)
    finally:
        client.close()
        stop_process(proc)


@pytest.fixture
def acl_ui(ui_browser: object, acl_agent: Agent) -> Iterator[UI]:
    from playwright.sync_api import Browser

    assert isinstance(ui_browser, Browser)
    context = ui_browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    page = context.new_page()
    helper = UI(page, acl_agent)
    # Without a token some of the UI's reads are refused (403): expected here.
    helper.allow_console(r"status of 403")
    try:
        yield helper
        problems = helper.unexpected_problems()
        assert not problems, "\n".join(map(str, problems))
    finally:
        context.close()


def test_ui_asks_for_a_token_and_works_with_one(acl_ui: UI, acl_agent: Agent) -> None:
    from playwright.sync_api import expect

    acl_agent.put("agent/service/register", json={"Name": "web-acl", "Port": 80})
    r = acl_agent.put("acl/policy", json={"Name": "ui-read", "Rules": 'service_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }'})
    token = acl_agent.put("acl/token", json={"Policies": [{"ID": r.json()["ID"]}]}).json()["SecretID"]

    page = acl_ui.page
    acl_ui.goto("/services")
    banner = page.locator("#acl-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("This agent requires an ACL token")
    expect(page.locator('tr[data-service="web-acl"]')).to_have_count(0)  # anonymous sees nothing
    acl_ui.shot("acl-asks-for-token")

    banner.get_by_role("link", name="Set an ACL token").click()
    page.locator("main h1").first.wait_for()
    page.get_by_role("textbox", name="ACL token").fill(token)
    page.get_by_role("button", name="Save token").click()
    expect(banner).to_be_hidden()
    acl_ui.goto("/services")
    expect(page.locator('tr[data-service="web-acl"]')).to_be_visible()
    expect(banner).to_be_hidden()
    acl_ui.shot("acl-with-token")

    # Clearing the token brings the prompt back.
    acl_ui.goto("/settings")
    page.get_by_role("button", name="Clear token").click()
    expect(banner).to_be_visible()
