"""End-to-end tests of the web UI in Chromium against a real agent.

Every test fails on a browser console error or an uncaught page error (see the
``ui`` fixture); tests that provoke an expected failed request (403, network
loss) allow exactly that message. Screenshots land in test-artifacts/ui/.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import pytest
from ui_harness import UI, Agent

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = pytest.mark.browser

LIVE_MS = 2_000  # "every list updates within 2 s of a change"
LIVE_SLACK_MS = 1_000  # scheduling slack for a loaded CI machine


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def register_ttl_service(agent: Agent, name: str, *, status: str = "passing", port: int = 8080) -> str:
    check_id = f"{name}-ttl"
    agent.put(
        "agent/service/register",
        json={
            "Name": name,
            "ID": f"{name}-1",
            "Port": port,
            "Address": "127.0.0.1",
            "Tags": ["v1", "primary"],
            "Meta": {"version": "1.2.3", "team": "ui"},
            "Check": {"CheckID": check_id, "Name": f"{name} heartbeat", "TTL": "10m", "Status": status},
        },
    )
    return check_id


# ---------------------------------------------------------------------------
# Services


def test_service_turns_critical_live_and_detail_page(ui: UI, agent: Agent) -> None:
    page = ui.page
    name = uniq("web")
    ui.goto("/services")
    expect(page.locator('tr[data-service="consul"]')).to_be_visible()

    check_id = register_ttl_service(agent, name)
    row = page.locator(f'tr[data-service="{name}"]')
    expect(row).to_have_attribute("data-status", "passing", timeout=LIVE_MS + LIVE_SLACK_MS)
    expect(row).to_contain_text("1 passing")
    expect(row.locator("td").nth(1)).to_have_text("1")  # instance count
    expect(row).to_contain_text("primary")

    started = time.monotonic()
    agent.put(f"agent/check/fail/{check_id}", note="disk full")
    expect(row).to_have_attribute("data-status", "critical", timeout=LIVE_MS + LIVE_SLACK_MS)
    latency = time.monotonic() - started
    expect(row).to_contain_text("1 critical")
    assert latency < (LIVE_MS + LIVE_SLACK_MS) / 1000

    # A second service registered through the catalog with a critical check.
    ext = uniq("ext-db")
    agent.put(
        "catalog/register",
        json={
            "Node": f"{ext}-node",
            "Address": "10.0.0.9",
            "NodeMeta": {"rack": "r1"},
            "Service": {"Service": ext, "Port": 5432, "Tags": ["sql"]},
            "Check": {
                "CheckID": f"{ext}-alive",
                "Name": "db alive",
                "Status": "critical",
                "ServiceID": ext,
                "Output": "connection refused",
            },
        },
    )
    ext_row = page.locator(f'tr[data-service="{ext}"]')
    expect(ext_row).to_have_attribute("data-status", "critical", timeout=LIVE_MS + LIVE_SLACK_MS)
    ui.shot("services")

    # Search and health filter (kept in the URL for deep links).
    page.get_by_label("Search").fill(name)
    expect(row).to_be_visible()
    expect(page.locator('tr[data-service="consul"]')).to_have_count(0)
    assert f"q={name}" in page.url
    page.get_by_label("Search").fill("")
    page.get_by_label("Health").select_option("critical")
    expect(page.locator('tr[data-service="consul"]')).to_have_count(0)
    expect(row).to_be_visible()
    expect(ext_row).to_be_visible()
    page.get_by_label("Health").select_option("passing")
    expect(row).to_have_count(0)
    expect(page.locator('tr[data-service="consul"]')).to_be_visible()
    page.get_by_label("Health").select_option("")

    # Service detail: node, address:port, tags, meta, check status + output.
    row.get_by_role("link", name=name).click()
    expect(page.locator("h1")).to_have_text(name)
    card = page.locator(f'article[data-instance="{name}-1"]')
    expect(card).to_have_attribute("data-status", "critical")
    expect(card.locator("code.address")).to_have_text("127.0.0.1:8080")
    expect(card).to_contain_text(agent.node_name)
    expect(card).to_contain_text("primary")
    expect(card.locator("dl.meta-list")).to_contain_text("version")
    expect(card.locator("dl.meta-list")).to_contain_text("1.2.3")
    check_row = card.locator(f'tr[data-check="{check_id}"]')
    expect(check_row).to_have_attribute("data-status", "critical")
    expect(check_row).to_contain_text("disk full")
    ui.shot("service")

    # Back to passing, still without reloading.
    agent.put(f"agent/check/pass/{check_id}", note="all good")
    expect(card).to_have_attribute("data-status", "passing", timeout=LIVE_MS + LIVE_SLACK_MS)
    expect(check_row).to_contain_text("all good")

    # Deregistration empties the page live.
    agent.put(f"agent/service/deregister/{name}-1")
    expect(page.locator("#instances")).to_contain_text("No instances", timeout=LIVE_MS + LIVE_SLACK_MS)
    agent.put("catalog/deregister", json={"Node": f"{ext}-node"})


def test_deep_link_reload_keeps_page(ui: UI, agent: Agent) -> None:
    page = ui.page
    page.goto(f"{agent.url}/ui/#/services?q=consul&status=passing")
    expect(page.get_by_label("Search")).to_have_value("consul")
    expect(page.get_by_label("Health")).to_have_value("passing")
    expect(page.locator('tr[data-service="consul"]')).to_be_visible()
    page.goto(f"{agent.url}/ui/#/nodes/{agent.node_name}")
    expect(page.locator("h1")).to_have_text(agent.node_name)
    page.reload()
    expect(page.locator("h1")).to_have_text(agent.node_name)
    # A path under /ui/ (not a hash route) still loads the app.
    page.goto(f"{agent.url}/ui/some/deep/path")
    expect(page.locator("h1")).to_have_text("Services")


# ---------------------------------------------------------------------------
# Nodes and sessions


def test_nodes_page_badges_and_node_detail_sessions(ui: UI, agent: Agent) -> None:
    page = ui.page
    node = agent.node_name
    ui.goto("/nodes")
    row = page.locator(f'tr[data-node="{node}"]')
    expect(row).to_have_attribute("data-status", "passing")
    expect(row.locator(".badge-leader")).to_have_text("Leader")
    expect(row.locator(".badge-voter")).to_have_text("Voter")
    expect(row).to_contain_text("consul")

    # A node registered through the catalog shows up live, with its health and service.
    ext = uniq("ext-node")
    agent.put(
        "catalog/register",
        json={
            "Node": ext,
            "Address": "10.1.2.3",
            "Service": {"Service": f"{ext}-svc", "Port": 9000},
            "Check": {"CheckID": f"{ext}-chk", "Name": "reachable", "Status": "warning"},
        },
    )
    ext_row = page.locator(f'tr[data-node="{ext}"]')
    expect(ext_row).to_have_attribute("data-status", "warning", timeout=LIVE_MS + LIVE_SLACK_MS)
    expect(ext_row).to_contain_text("10.1.2.3")
    expect(ext_row).to_contain_text(f"{ext}-svc")
    expect(ext_row).to_contain_text("client")
    ui.shot("nodes")
    agent.put("catalog/deregister", json={"Node": ext})
    expect(ext_row).to_have_count(0, timeout=LIVE_MS + LIVE_SLACK_MS)

    row.get_by_role("link", name=node).click()
    expect(page.locator("h1")).to_have_text(node)
    expect(page.locator('#node-checks tr[data-check="serfHealth"]')).to_have_attribute(
        "data-status", "passing"
    )
    expect(page.locator('#node-services tr[data-service-id="consul"]')).to_be_visible()
    expect(page.locator(".page-header .badge-leader")).to_be_visible()

    # A lock session created now shows up without reloading, and the lock on a key too.
    session_name = uniq("ui-lock")
    sid = agent.put("session/create", json={"Name": session_name, "TTL": "60s"}).json()["ID"]
    try:
        srow = page.locator(f'#node-sessions tr[data-session="{sid}"]')
        expect(srow).to_contain_text(session_name, timeout=LIVE_MS + LIVE_SLACK_MS)
        expect(srow).to_contain_text("60s")
        ui.shot("node")

        key = f"{uniq('locks')}/leader"
        assert agent.kv_put(key, "me", acquire=sid)
        ui.goto(f"/kv/{key}")
        expect(page.locator("#kv-lock")).to_contain_text("Held by session")
        expect(page.locator("#kv-lock")).to_contain_text(session_name)
        # Leave the editor before the key goes away (a watched key that is
        # deleted answers 404, which Chromium logs as a console error).
        ui.goto("/nodes")
        agent.delete(agent.kv_path(key))
    finally:
        agent.put(f"session/destroy/{sid}")


def test_sessions_page_live_and_invalidate(ui: UI, agent: Agent) -> None:
    page = ui.page
    ui.goto("/sessions")
    name = uniq("worker")
    sid = agent.put("session/create", json={"Name": name, "Behavior": "delete", "LockDelay": "5s"}).json()[
        "ID"
    ]
    row = page.locator(f'tr[data-session="{sid}"]')
    expect(row).to_contain_text(name, timeout=LIVE_MS + LIVE_SLACK_MS)
    expect(row).to_contain_text("delete")
    expect(row).to_contain_text("5s")
    expect(row).to_contain_text("serfHealth")
    ui.shot("sessions")

    row.get_by_role("button", name=re.compile("Invalidate")).click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Invalidate").click()
    expect(row).to_have_count(0, timeout=LIVE_MS + LIVE_SLACK_MS)
    assert agent.get(f"session/info/{sid}").json() == []


# ---------------------------------------------------------------------------
# Key/Value


def _kv_flags(agent: Agent, key: str) -> int:
    entry = agent.kv_get(key)
    assert entry is not None
    return int(entry["Flags"])


def test_kv_create_edit_delete_through_ui(ui: UI, agent: Agent) -> None:
    page = ui.page
    folder = uniq("ui-test")
    key = f"{folder}/app/config.json"
    sibling = f"{folder}/app/keep.txt"
    agent.kv_put(sibling, "stays")

    ui.goto(f"/kv/{folder}/app/")
    expect(page.locator(f'li[data-key="{sibling}"]')).to_be_visible()
    page.locator("#kv-create").click()
    expect(page.locator("h1")).to_have_text("Create key")
    expect(page.get_by_label("Key", exact=True)).to_have_value(f"{folder}/app/")
    page.get_by_label("Key", exact=True).fill(key)
    page.get_by_label("Key", exact=True).press("Tab")
    expect(page.get_by_label("Format")).to_have_value("json")

    # Invalid JSON is reported and not saved.
    page.get_by_label("Value").fill('{"name": "muster",')
    expect(page.locator("#kv-validation")).to_contain_text("Invalid JSON")
    expect(page.get_by_label("Value")).to_have_attribute("aria-invalid", "true")
    page.locator("#kv-save").click()
    expect(page.locator("#kv-message")).to_contain_text("not valid JSON")
    assert agent.kv_get(key) is None
    ui.shot("kv-create-invalid")

    # Valid JSON, formatted by the UI, with flags.
    page.get_by_label("Value").fill('{"name":"muster","replicas":3,"tags":["a","b"]}')
    expect(page.locator("#kv-validation")).to_contain_text("Valid JSON")
    page.locator("#kv-format-btn").click()
    formatted = json.dumps({"name": "muster", "replicas": 3, "tags": ["a", "b"]}, indent=2)
    expect(page.get_by_label("Value")).to_have_value(formatted)
    page.get_by_label("Flags").fill("42")
    page.locator("#kv-save").click()
    expect(page.locator("h1")).to_have_text(key)
    expect(page.locator("#kv-message")).to_contain_text("Created")
    assert agent.kv_value(key) == formatted
    assert _kv_flags(agent, key) == 42
    ui.shot("kv-edit")

    # Edit through the UI.
    page.get_by_label("Value").fill('{"name": "muster", "replicas": 5}')
    page.get_by_label("Flags").fill("18446744073709551615")
    page.locator("#kv-save").click()
    expect(page.locator("#kv-message")).to_contain_text("Saved")
    assert agent.kv_value(key) == '{"name": "muster", "replicas": 5}'
    assert _kv_flags(agent, key) == 18446744073709551615  # full u64 round trip

    # Folder navigation.
    ui.goto("/kv/")
    folder_link = page.locator(f'li[data-key="{folder}/"] a')
    expect(folder_link).to_be_visible()
    folder_link.click()
    page.locator(f'li[data-key="{folder}/app/"] a').click()
    expect(page.locator(f'li[data-key="{key}"]')).to_be_visible()
    expect(page.locator(f'li[data-key="{sibling}"]')).to_be_visible()
    live_key = f"{folder}/app/live/flag"
    agent.kv_put(live_key, "on")
    expect(page.locator(f'li[data-key="{folder}/app/live/"]')).to_be_visible(timeout=LIVE_MS + LIVE_SLACK_MS)
    ui.shot("kv-list")
    page.locator(f'li[data-key="{key}"] a').click()
    expect(page.get_by_label("Value")).to_have_value('{"name": "muster", "replicas": 5}')

    # Delete through the UI (with confirmation).
    page.locator("#kv-delete").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("h1")).to_have_text(f"{folder}/app/")
    expect(page.locator(".flash")).to_contain_text("Deleted")
    expect(page.locator(f'li[data-key="{key}"]')).to_have_count(0)
    assert agent.kv_get(key) is None
    assert agent.kv_value(sibling) == "stays"
    agent.delete(agent.kv_path(folder), recurse="")


def test_kv_yaml_validation_and_formatting(ui: UI, agent: Agent) -> None:
    page = ui.page
    key = f"{uniq('ui-yaml')}/settings.yaml"
    ui.goto("/kv/")
    page.locator("#kv-create").click()
    page.get_by_label("Key", exact=True).fill(key)
    page.get_by_label("Key", exact=True).press("Tab")
    expect(page.get_by_label("Format")).to_have_value("yaml")
    page.get_by_label("Value").fill("server:\n  port: 8080\n   bad: indent\n")
    expect(page.locator("#kv-validation")).to_contain_text("Invalid YAML")
    page.get_by_label("Value").fill("server: {port: 8080, hosts: [a, b]}\n")
    expect(page.locator("#kv-validation")).to_contain_text("Valid YAML")
    page.locator("#kv-format-btn").click()
    expect(page.get_by_label("Value")).to_have_value("server:\n  port: 8080\n  hosts:\n    - a\n    - b\n")
    page.get_by_label("Format").select_option("plain")
    expect(page.locator("#kv-format-btn")).to_be_disabled()
    page.locator("#kv-save").click()
    expect(page.locator("h1")).to_have_text(key)
    assert agent.kv_value(key) == "server:\n  port: 8080\n  hosts:\n    - a\n    - b\n"
    # Creating a key that exists is refused (create uses cas=0).
    ui.goto(f"/kv/{key.rsplit('/', 1)[0]}/")
    page.locator("#kv-create").click()
    page.get_by_label("Key", exact=True).fill(key)
    page.get_by_label("Value").fill("other")
    page.locator("#kv-save").click()
    expect(page.locator("#kv-message")).to_contain_text("already exists")
    assert agent.kv_value(key) == "server:\n  port: 8080\n  hosts:\n    - a\n    - b\n"
    agent.delete(agent.kv_path(key))


def test_kv_unicode_key_and_binary_value(ui: UI, agent: Agent) -> None:
    page = ui.page
    folder = uniq("ui-unicode")
    key = f"{folder}/naïve key ç?#%"
    assert agent.kv_put(key, "olá")
    binary_key = f"{folder}/blob"
    assert agent.put(agent.kv_path(binary_key), content=b"\xff\xfe\x00\x01").json() is True
    ui.goto(f"/kv/{folder}/")
    page.locator(f'li[data-key="{key}"] a').click()
    expect(page.locator("h1")).to_have_text(key)
    expect(page.get_by_label("Value")).to_have_value("olá")
    page.get_by_label("Value").fill("tchau ✓")
    page.locator("#kv-save").click()
    expect(page.locator("#kv-message")).to_contain_text("Saved")
    assert agent.kv_value(key) == "tchau ✓"
    # Binary values are shown (base64) but not editable.
    ui.goto(f"/kv/{binary_key}")
    expect(page.get_by_label("Value")).to_have_value("//4AAQ==")
    expect(page.get_by_label("Value")).to_have_attribute("readonly", "")
    expect(page.locator("#kv-save")).to_be_disabled()
    expect(page.locator("#kv-validation")).to_contain_text("Binary value (4 bytes)")
    # Delete the whole folder from the UI.
    ui.goto(f"/kv/{folder}/")
    page.locator("#kv-delete-folder").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Delete folder").click()
    expect(page.locator("h1")).to_have_text("Key/Value")
    expect(page.locator(".flash")).to_contain_text(f"Deleted folder “{folder}/”")
    expect(page.locator(f'li[data-key="{folder}/"]')).to_have_count(0)
    assert agent.get(agent.kv_path(folder + "/"), recurse="").status_code == 404


def test_kv_editor_guards_unsaved_changes(ui: UI, agent: Agent) -> None:
    page = ui.page
    key = f"{uniq('ui-guard')}/draft"
    agent.kv_put(key, "v1")
    ui.goto(f"/kv/{key}")
    value = page.get_by_label("Value")
    expect(value).to_have_value("v1")
    value.fill("unsaved edit")
    nav = page.get_by_role("navigation", name="Main").get_by_role("link", name="Key/Value")
    nav.click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("have not been saved")
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.locator("h1")).to_have_text(key)
    expect(value).to_have_value("unsaved edit")
    assert page.url.endswith(f"#/kv/{key}")
    nav.click()
    dialog.get_by_role("button", name="Discard changes").click()
    expect(page.locator("h1")).to_have_text("Key/Value")
    assert agent.kv_value(key) == "v1"
    agent.delete(agent.kv_path(key))


def test_kv_save_refuses_concurrent_change(ui: UI, agent: Agent) -> None:
    page = ui.page
    key = f"{uniq('ui-cas')}/settings"
    agent.kv_put(key, "original")
    loaded = agent.kv_get(key)
    assert loaded is not None
    ui.goto(f"/kv/{key}")
    value = page.get_by_label("Value")
    expect(value).to_have_value("original")
    value.fill("edited in the UI")

    agent.kv_put(key, "changed through the API")
    # The editor notices the concurrent change live but keeps the user's text.
    expect(page.locator("#kv-remote-change")).to_contain_text(
        "changed by someone else", timeout=LIVE_MS + LIVE_SLACK_MS
    )
    expect(value).to_have_value("edited in the UI")

    with page.expect_request(lambda r: r.method == "PUT" and "/v1/kv/" in r.url) as put_info:
        page.locator("#kv-save").click()
    assert f"cas={loaded['ModifyIndex']}" in put_info.value.url
    message = page.locator("#kv-message")
    expect(message).to_contain_text("Not saved")
    expect(message).to_contain_text("changed by someone else")
    assert agent.kv_value(key) == "changed through the API"
    ui.shot("kv-conflict")

    # Loading the latest value (after confirming the discard) allows a clean save.
    message.get_by_role("button", name="Load latest value").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Load latest").click()
    expect(value).to_have_value("changed through the API")
    expect(page.locator("#kv-remote-change")).to_be_empty()
    value.fill("merged in the UI")
    page.locator("#kv-save").click()
    expect(message).to_contain_text("Saved")
    assert agent.kv_value(key) == "merged in the UI"

    # Deleting is CAS-protected too.
    agent.kv_put(key, "changed again")
    expect(page.locator("#kv-remote-change")).to_contain_text(
        "changed by someone else", timeout=LIVE_MS + LIVE_SLACK_MS
    )
    page.locator("#kv-delete").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Delete").click()
    expect(message).to_contain_text("Not deleted")
    assert agent.kv_value(key) == "changed again"
    agent.delete(agent.kv_path(key))


# ---------------------------------------------------------------------------
# Cluster, datacenters, ACL token, connection loss


def test_cluster_overview(ui: UI, agent: Agent) -> None:
    page = ui.page
    ui.goto("/cluster")
    node = agent.node_name
    server = page.locator(f'#servers-table tr[data-server="{node}"]')
    expect(server).to_have_attribute("data-role", "leader")
    expect(server).to_contain_text("Leader")
    expect(page.locator("#stat-leader")).to_have_text(node)
    expect(page.locator("#stat-term")).to_have_text(re.compile(r"^\d+$"))
    expect(page.locator("#stat-tolerance")).to_have_text("0 servers")
    expect(page.locator("#stat-voters")).to_have_text("1 of 1 servers")
    member = page.locator(f'#members-table tr[data-member="{node}"]')
    expect(member).to_have_attribute("data-status", "alive")
    expect(member).to_contain_text("server")
    expect(page.locator("#leader-history li")).to_have_count(1)
    expect(page.locator("#leader-history")).to_contain_text(node)
    raft_state = agent.get("agent/self").json()["Stats"]["raft"]
    expect(page.locator("#cluster-raft")).to_contain_text(raft_state["state"])
    ui.shot("cluster")


def test_datacenter_switcher_adds_dc_param(ui: UI, agent: Agent) -> None:
    page = ui.page
    dcs = agent.get("catalog/datacenters").json()
    ui.goto("/services")
    select = page.get_by_label("Datacenter")
    expect(select.locator("option")).to_have_count(len(dcs))
    with page.expect_request(lambda r: "/v1/catalog/services" in r.url and f"dc={dcs[0]}" in r.url):
        select.select_option(dcs[0])
    assert f"dc={dcs[0]}" in page.url
    # Links keep the datacenter.
    expect(page.get_by_role("link", name="Nodes", exact=True)).to_have_attribute(
        "href", re.compile(rf"dc={dcs[0]}")
    )
    with page.expect_request(lambda r: "/v1/catalog/nodes" in r.url and f"dc={dcs[0]}" in r.url):
        page.locator(f'a[href="#/nodes?dc={dcs[0]}"]').first.click()
    expect(page.locator(f'tr[data-node="{agent.node_name}"]')).to_be_visible()


def test_acl_token_is_sent_and_403_is_explained(ui: UI, agent: Agent) -> None:
    page = ui.page
    ui.goto("/settings")
    page.get_by_role("textbox", name="ACL token").fill("s3cr3t-token")
    ui.shot("settings")
    with page.expect_request(lambda r: r.headers.get("x-consul-token") == "s3cr3t-token"):
        page.get_by_role("button", name="Save token").click()
        ui.goto("/services")
    assert page.evaluate("localStorage.getItem('muster.ui.token')") == "s3cr3t-token"
    expect(page.locator("#token-link")).to_have_attribute("aria-label", "ACL token (set)")

    # The agent has ACLs disabled; simulate a denial to check how it is presented.
    ui.allow_console(r"status of 403 .*/v1/catalog/services")

    def deny(route: Any) -> None:
        route.fulfill(
            status=403, body="Permission denied: token lacks service:read", content_type="text/plain"
        )

    page.route(re.compile(r".*/v1/catalog/services.*"), deny)
    page.reload()
    alert = page.locator(".notice-error")
    expect(alert).to_contain_text("Permission denied (403)")
    expect(alert).to_contain_text("token lacks service:read")
    expect(alert.get_by_role("link", name="Change the ACL token")).to_be_visible()
    ui.shot("acl-denied")
    page.unroute(re.compile(r".*/v1/catalog/services.*"))

    ui.goto("/settings")
    page.get_by_role("button", name="Clear token").click()
    assert page.evaluate("localStorage.getItem('muster.ui.token')") is None


def test_connection_loss_indicator_and_reconnect(ui: UI, agent: Agent) -> None:
    page = ui.page
    ui.allow_console(r"net::ERR_FAILED")
    ui.goto("/services")
    expect(page.locator('tr[data-service="consul"]')).to_be_visible()
    banner = page.locator("#conn-banner")
    expect(banner).to_be_hidden()

    pattern = re.compile(r".*/v1/.*")
    page.route(pattern, lambda route: route.abort())
    expect(banner).to_be_visible(timeout=8_000)
    expect(banner).to_contain_text("Connection to the agent lost")
    ui.shot("connection-lost")

    page.unroute(pattern)
    banner.get_by_role("button", name="Retry now").click()
    expect(banner).to_be_hidden(timeout=8_000)
    # Live again: a new service appears without reloading.
    name = uniq("after-reconnect")
    register_ttl_service(agent, name)
    expect(page.locator(f'tr[data-service="{name}"]')).to_be_visible(timeout=8_000)
    agent.put(f"agent/service/deregister/{name}-1")


# ---------------------------------------------------------------------------
# Behaviour of the live updates


def test_blocking_queries_do_not_hammer(ui: UI, agent: Agent) -> None:
    page = ui.page
    ui.goto("/services")
    expect(page.locator('tr[data-service="consul"]')).to_be_visible()
    page.wait_for_timeout(1000)
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if "/v1/" in r.url else None)
    page.wait_for_timeout(5000)
    # Idle page: only the leader poll (every 2 s), the datacenter list (every
    # 30 s) and blocking re-issues are allowed.
    assert len(seen) <= 5, seen
    blocking = [u for u in seen if "/v1/catalog/services" in u or "/v1/health/state/any" in u]
    for u in blocking:
        assert "index=" in u and "wait=" in u, u


# ---------------------------------------------------------------------------
# Accessibility and narrow windows


PAGES = ["/services", "/services/consul", "/nodes", "/kv/", "/sessions", "/cluster", "/settings"]

UNLABELLED_CONTROLS_JS = """
() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => el.offsetParent !== null)
  .filter((el) => {
    if (el.tagName === 'BUTTON') return !(el.textContent.trim() || el.getAttribute('aria-label'));
    return !((el.labels && el.labels.length) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby'));
  })
  .map((el) => el.outerHTML.slice(0, 120))
"""


def test_keyboard_navigation_and_labels(ui: UI, agent: Agent) -> None:
    page = ui.page
    ui.goto("/services")
    page.locator("body").focus()
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    page.keyboard.press("Enter")
    expect(page.locator(":focus")).to_have_attribute("id", "page-title")

    # Reach the "Nodes" link with the keyboard only and follow it.
    ui.goto("/services")
    page.locator("body").focus()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Nodes":
            break
    else:
        pytest.fail("could not reach the Nodes link with Tab")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Nodes")
    expect(page.locator(":focus")).to_have_attribute("id", "page-title")
    expect(page.get_by_role("link", name="Nodes", exact=True)).to_have_attribute("aria-current", "page")
    page.keyboard.press("/")  # shortcut to the page's search box
    expect(page.get_by_label("Search")).to_be_focused()

    for route in PAGES:
        ui.goto(route)
        page.wait_for_timeout(300)
        assert page.evaluate(UNLABELLED_CONTROLS_JS) == [], route
        assert page.locator("main h1").count() == 1, route
        assert page.locator("nav[aria-label=Main]").count() == 1


def test_narrow_window_has_no_horizontal_scroll(ui: UI, agent: Agent) -> None:
    page = ui.page
    page.set_viewport_size({"width": 380, "height": 800})
    for route in [*PAGES, f"/nodes/{agent.node_name}"]:
        ui.goto(route)
        page.wait_for_timeout(400)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{route} overflows by {overflow}px at 380px width"
    ui.goto("/services")
    page.wait_for_timeout(300)
    ui.shot("narrow-services")
    ui.goto("/cluster")
    page.wait_for_timeout(300)
    ui.shot("narrow-cluster")


# ---------------------------------------------------------------------------
# Pure helpers of the app, exercised in the browser (no Node.js needed).

CODEC_JS = """
async () => {
  const m = await import('/ui/js/codec.js');
  const big = '{"Flags":18446744073709551615,"Output":"a,1234567890123456789,b","LockIndex":3}';
  const parsed = m.parseJSONSafe(big);
  const bin = m.decodeValue(btoa(String.fromCharCode(0xff, 0xfe, 0x00)));
  const utf = m.decodeValue(btoa(unescape(encodeURIComponent('héllo ✓'))));
  return {
    flags: parsed.Flags,
    output: parsed.Output,
    lockIndex: parsed.LockIndex,
    binary: bin.binary,
    binaryLen: bin.bytes.length,
    utf: utf.text,
    nullValue: m.decodeValue(null).text,
    u64ok: m.parseU64(' 18446744073709551615 '),
    u64big: m.parseU64('18446744073709551616'),
    u64neg: m.parseU64('-1'),
    ns: [m.formatNs(15000000000), m.formatNs(0), m.formatNs(1500000), m.formatNs(90e9)],
    jsonBad: m.validateValue('json', '{"a": }'),
    jsonBad3: m.validateValue('json', '{\\n  "a": 1,\\n}'),
    jsonOk: m.validateValue('json', '{"a": 1}').ok,
    yamlBad: m.validateValue('yaml', 'a: [1, 2').ok,
    fmtJson: m.formatValue('json', '{"big":18446744073709551615,"s":"x"}'),
    detect: [m.detectFormat('x/a.json', ''), m.detectFormat('a.yml', ''), m.detectFormat('k', '[1,2]'), m.detectFormat('k', 'hello')],
    cmp: [m.cmpIndex('18446744073709551615', '18446744073709551614'), m.cmpIndex(5, '5'), m.cmpIndex(1, 2)],
  };
}
"""


def test_codec_helpers(ui: UI) -> None:
    ui.goto("/settings")
    r = ui.page.evaluate(CODEC_JS)
    assert r["flags"] == "18446744073709551615"
    assert r["output"] == "a,1234567890123456789,b"
    assert r["lockIndex"] == 3
    assert r["binary"] is True and r["binaryLen"] == 3
    assert r["utf"] == "héllo ✓"
    assert r["nullValue"] == ""
    assert (r["u64ok"], r["u64big"], r["u64neg"]) == ("18446744073709551615", None, None)
    assert r["ns"] == ["15s", "0s", "1.5ms", "1m30s"]
    assert r["jsonBad"] == {"ok": False, "message": 'Unexpected "}" (line 1, column 7)'}
    assert (
        r["jsonBad3"]["message"] == 'Expected a property name in double quotes, found "}" (line 3, column 1)'
    )
    assert r["jsonOk"] is True
    assert r["yamlBad"] is False
    assert r["fmtJson"] == '{\n  "big": 18446744073709551615,\n  "s": "x"\n}'
    assert r["detect"] == ["json", "yaml", "json", "plain"]
    assert r["cmp"] == [1, 0, -1]
