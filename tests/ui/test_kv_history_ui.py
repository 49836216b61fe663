"""The KV page's History tab in Chromium (docs/kv-history.md): the versions of a key, a diff
against the current value, a rollback through the confirmation dialog, and a rollback refused
because the key changed while the operator was deciding.  Fails on any console error (``ui``
fixture); screenshots land in test-artifacts/ui/."""

from __future__ import annotations

import uuid

import pytest
from ui_harness import UI, Agent

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = pytest.mark.browser


def _history(agent: Agent, key: str) -> list[dict[str, object]]:
    resp = agent.get("muster/kv-history/" + agent.kv_path(key)[3:])
    assert resp.status_code == 200, resp.text
    data: list[dict[str, object]] = resp.json()
    return data


def test_history_tab_diff_and_rollback(ui: UI, agent: Agent) -> None:
    page = ui.page
    key = f"hist-{uuid.uuid4().hex[:6]}/app.conf"
    assert agent.kv_put(key, "alpha\nbeta\n")
    assert agent.kv_put(key, "alpha\ngamma\n")
    first, second = (int(str(v["ModifyIndex"])) for v in reversed(_history(agent, key)))

    ui.goto(f"/kv/{key}")
    expect(page.get_by_label("Value")).to_have_value("alpha\ngamma\n")
    page.locator("#kv-tab-history").click()
    expect(page.locator("#kv-tab-history")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#kv-panel-value")).to_be_hidden()
    rows = page.locator("#kv-history-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-index", str(second))
    expect(rows.nth(0)).to_contain_text("current")
    expect(rows.nth(0).locator('[data-action="rollback"]')).to_have_count(0)

    old = page.locator(f'#kv-history-table tr[data-index="{first}"]')
    old.locator('[data-action="diff"]').click()
    diff = page.locator("#kv-diff-text")
    expect(diff.locator(".diff-del")).to_have_text(["-gamma\n"])
    expect(diff.locator(".diff-add")).to_have_text(["+beta\n"])
    expect(page.locator("#kv-diff-title")).to_contain_text(f"Current ({second}) → version {first}")
    ui.shot("kv-history-diff")

    old.locator('[data-action="rollback"]').click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Roll back").click()
    expect(page.locator("#kv-history-message")).to_contain_text(f"Rolled back “{key}” to version {first}")
    assert agent.kv_value(key) == "alpha\nbeta\n"
    expect(rows).to_have_count(3)  # the list is live: the rollback is the new current version
    expect(rows.nth(0)).to_contain_text(f"rollback to {first}")
    expect(rows.nth(0)).to_contain_text("current")
    page.locator("#kv-tab-value").click()
    expect(page.get_by_label("Value")).to_have_value("alpha\nbeta\n")
    ui.shot("kv-history-rolled-back")
    ui.goto("/kv/")  # leave the page before the key goes away (its watch would log a 404)
    agent.delete(agent.kv_path(key))


def test_rollback_refused_when_the_key_changed_meanwhile(ui: UI, agent: Agent) -> None:
    page = ui.page
    key = f"hist-{uuid.uuid4().hex[:6]}/flag"
    assert agent.kv_put(key, "on")
    assert agent.kv_put(key, "off")
    first = int(str(_history(agent, key)[-1]["ModifyIndex"]))

    ui.goto(f"/kv/{key}?tab=history")
    rows = page.locator("#kv-history-table tbody tr")
    expect(rows).to_have_count(2)
    page.locator(f'#kv-history-table tr[data-index="{first}"] [data-action="rollback"]').click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    assert agent.kv_put(key, "someone else")  # while the operator reads the dialog
    expect(rows).to_have_count(3)
    dialog.get_by_role("button", name="Roll back").click()
    expect(page.locator("#kv-history-message")).to_contain_text("Not rolled back")
    assert agent.kv_value(key) == "someone else"
    assert len(_history(agent, key)) == 3
    ui.shot("kv-history-refused")
    ui.goto("/kv/")
    agent.delete(agent.kv_path(key))


def test_history_of_a_deleted_key_restores_it(ui: UI, agent: Agent) -> None:
    page = ui.page
    key = f"hist-{uuid.uuid4().hex[:6]}/gone"
    assert agent.kv_put(key, "keep me")
    agent.delete(agent.kv_path(key))
    kept = int(str(_history(agent, key)[-1]["ModifyIndex"]))
    ui.allow_console(r"status of 404 .*/v1/kv/hist-")  # the editor's read of the missing key

    ui.goto(f"/kv/{key}?tab=history")
    rows = page.locator("#kv-history-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("deleted")
    page.locator(f'#kv-history-table tr[data-index="{kept}"] [data-action="rollback"]').click()
    page.locator("#confirm-dialog").get_by_role("button", name="Roll back").click()
    expect(page.locator("#kv-history-message")).to_contain_text("Rolled back")
    assert agent.kv_value(key) == "keep me"
    page.locator("#kv-tab-value").click()
    expect(page.get_by_label("Value")).to_have_value("keep me")  # the editor picks the key up live
    ui.goto("/kv/")
    agent.delete(agent.kv_path(key))
