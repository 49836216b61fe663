// Sessions: every session of the datacenter, live; invalidate with confirmation.
import {request, watch} from "../api.js";
import {errorNotice, errorSlot, loading} from "../common.js";
import {confirmAction, h, notice, pageHeader, update} from "../dom.js";
import {sessionsTable} from "./node.js";

export function render({root, scope}) {
  const listEl = h("div", {id: "sessions-list"}, loading());
  const count = h("span", {class: "count", "aria-live": "polite"});
  const errors = errorSlot();
  const flash = h("div", {class: "flash", "aria-live": "polite"});

  async function destroy(s) {
    const ok = await confirmAction({
      title: "Invalidate session?",
      body: `Session ${s.Name ? `“${s.Name}” ` : ""}(${s.ID}) will be destroyed. Locks it holds are released or their keys deleted, depending on its behavior (${s.Behavior || "release"}).`,
      confirmLabel: "Invalidate",
    });
    if (!ok) return;
    try {
      await request(`session/destroy/${encodeURIComponent(s.ID)}`, {method: "PUT"});
      flash.replaceChildren(notice("success", `Session ${s.Name || s.ID} invalidated.`));
    } catch (err) {
      flash.replaceChildren(errorNotice(err, "invalidate the session"));
    }
  }

  root.append(
    pageHeader("Sessions", {subtitle: "Sessions are used for locks and leader election. Invalidating a session releases its locks."}),
    h("div", {class: "toolbar"}, count),
    flash,
    errors.el,
    listEl,
  );
  watch(scope, "session/list", {
    onData: (data) => {
      errors.clear();
      const sessions = data || [];
      count.textContent = `${sessions.length} session${sessions.length === 1 ? "" : "s"}`;
      update(listEl, sessionsTable(sessions, {showNode: true, caption: "Sessions", onDestroy: destroy}));
    },
    onError: (err) => errors.show(err, "list sessions"),
  });
}
