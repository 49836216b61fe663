"""The datacenter switcher against two real datacenters (one server each, joined over the WAN
pool): every page shows the chosen datacenter's data, through the agent the browser opened,
and deep links carrying ``?dc=`` open straight into the other datacenter."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from ui_harness import ROOT, UI, Agent, stop_process

if TYPE_CHECKING:
    from playwright.sync_api import Playwright

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = pytest.mark.browser


def _free(ip: str, taken: set[int]) -> int:
    while True:
        with socket.socket() as s:
            s.bind((ip, 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            taken.add(port)
            return port


@dataclass
class TwoDCs:
    urls: dict[str, str]
    procs: list[subprocess.Popen[bytes]]


@pytest.fixture
def two_dcs(tmp_path: Path, playwright_instance: Playwright) -> Iterator[TwoDCs]:
    """dc1 on 127.0.0.41, dc2 on 127.0.0.42; depends on the browser so a missing Chromium skips
    before anything starts."""
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[str, str] = {}
    wan1 = 0
    try:
        for dc, ip in (("dc1", "127.0.0.41"), ("dc2", "127.0.0.42")):
            taken: set[int] = set()
            http, server, lan, wan = (_free(ip, taken) for _ in range(4))
            argv = [sys.executable, "-m", "muster", "agent", "-server", "-bootstrap-expect=1", "-ui",
                    f"-datacenter={dc}", f"-node={dc}-server", f"-data-dir={tmp_path / dc}", f"-bind={ip}",
                    f"-advertise={ip}", f"-client={ip}", f"-http-port={http}", f"-server-port={server}",
                    f"-serf-lan-port={lan}", f"-serf-wan-port={wan}", "-dns-port=-1", "-grpc-port=-1"]
            if dc == "dc1":
                wan1 = wan
            else:
                argv += [f"-retry-join-wan=127.0.0.41:{wan1}", "-retry-interval-wan=1s"]
            log = open(tmp_path / f"{dc}.log", "wb")  # noqa: SIM115 - handed to the child
            procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          cwd=ROOT))
            log.close()
            urls[dc] = f"http://{ip}:{http}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if all(httpx.get(f"{u}/v1/catalog/datacenters", timeout=2).json() == [dc, *(d for d in urls if d != dc)]
                       and httpx.put(f"{u}/v1/kv/ready", content=b"1", timeout=2).status_code == 200
                       for dc, u in urls.items()):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        else:
            logs = {dc: (tmp_path / f"{dc}.log").read_text(errors="replace")[-2000:] for dc in urls}
            pytest.fail(f"the two datacenters did not federate: {json.dumps(logs)[:4000]}")
        yield TwoDCs(urls, procs)
    finally:
        for p in procs:
            stop_process(p)


def test_switcher_and_deep_links_show_the_other_datacenter(two_dcs: TwoDCs, ui: UI) -> None:
    page = ui.page
    dc1, dc2 = two_dcs.urls["dc1"], two_dcs.urls["dc2"]
    reg = {"Node": "dc2-node", "Address": "10.2.0.8", "Service": {"Service": "only-in-dc2", "Port": 80}}
    assert httpx.put(f"{dc2}/v1/catalog/register", json=reg).status_code == 200
    assert httpx.put(f"{dc2}/v1/kv/app/where", content=b"dc2 value").status_code == 200
    assert httpx.put(f"{dc1}/v1/kv/app/where", content=b"dc1 value").status_code == 200

    page.goto(f"{dc1}/ui/#/services")
    select = page.get_by_label("Datacenter")
    expect(select.locator("option")).to_have_count(2)
    expect(page.locator('tr[data-service="only-in-dc2"]')).to_have_count(0)
    with page.expect_request(lambda r: "/v1/catalog/services" in r.url and "dc=dc2" in r.url):
        select.select_option("dc2")
    assert "dc=dc2" in page.url
    expect(page.locator('tr[data-service="only-in-dc2"]')).to_be_visible()
    ui.shot("multi-dc-services-dc2")
    page.locator('a[href="#/nodes?dc=dc2"]').first.click()
    expect(page.locator('tr[data-node="dc2-node"]')).to_be_visible()
    expect(page.locator('tr[data-node="dc2-server"]')).to_be_visible()
    expect(page.locator('tr[data-node="dc1-server"]')).to_have_count(0)

    # Deep links: the same key, each datacenter's value, opened through dc1's agent.
    page.goto(f"{dc1}/ui/#/kv/app/where?dc=dc2")
    expect(page.locator("#kv-value")).to_have_value("dc2 value")
    expect(page.get_by_label("Datacenter")).to_have_value("dc2")
    page.goto(f"{dc1}/ui/#/kv/app/where")
    expect(page.locator("#kv-value")).to_have_value("dc1 value")
    # An edit made in the dc2 view lands in dc2 only.
    page.goto(f"{dc1}/ui/#/kv/app/where?dc=dc2")
    expect(page.locator("#kv-value")).to_have_value("dc2 value")
    page.locator("#kv-value").fill("edited in dc2")
    page.locator("#kv-save").click()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = httpx.get(f"{dc2}/v1/kv/app/where").json()[0]["Value"]
        if base64.b64decode(got) == b"edited in dc2":
            break
        time.sleep(0.2)
    assert base64.b64decode(httpx.get(f"{dc2}/v1/kv/app/where").json()[0]["Value"]) == b"edited in dc2"
    assert base64.b64decode(httpx.get(f"{dc1}/v1/kv/app/where").json()[0]["Value"]) == b"dc1 value"


__all__ = ["Agent"]
