// Pieces shared by several pages.
import {ApiError, settings} from "./api.js";
import {h, notice} from "./dom.js";
import {link} from "./router.js";

/** A clear, user-facing explanation of an API failure. */
export function errorNotice(err, what = "load this data") {
  if (err instanceof ApiError) {
    if (err.status === 403) {
      return notice(
        "error",
        h("strong", null, "Permission denied (403). "),
        `The ACL token ${settings.token ? "you set" : "in use (anonymous)"} is not allowed to ${what}. `,
        err.body ? h("span", {class: "err-detail"}, `Server said: “${err.body}”. `) : null,
        h("a", {href: link.settings()}, settings.token ? "Change the ACL token" : "Set an ACL token"),
        ".",
      );
    }
    if (err.status === 401) {
      return notice("error", h("strong", null, "Not authorised (401). "), err.body || "", " ", h("a", {href: link.settings()}, "ACL token settings"), ".");
    }
    if (err.status === 0) {
      return notice("error", h("strong", null, "Cannot reach the agent. "), "Retrying automatically…");
    }
    if (err.status === 500 && /No path to datacenter/i.test(err.body)) {
      return notice("error", h("strong", null, "Datacenter unreachable. "), `No path to datacenter “${settings.dc}”.`);
    }
    if (err.status === 500 && /No cluster leader/i.test(err.body)) {
      return notice("error", h("strong", null, "No cluster leader. "), "The servers have not elected a leader; retrying…");
    }
    return notice("error", h("strong", null, `Could not ${what} (HTTP ${err.status}). `), err.body || "");
  }
  return notice("error", h("strong", null, `Could not ${what}. `), String((err && err.message) || err));
}

/** A region showing the latest error of a page (or nothing). */
export function errorSlot() {
  const el = h("div", {class: "error-slot"});
  return {
    el,
    show(err, what) {
      // Lost connections are reported once, by the banner at the top.
      if (err instanceof ApiError && err.status === 0) return;
      el.replaceChildren(errorNotice(err, what));
    },
    clear() {
      if (el.firstChild) el.replaceChildren();
    },
  };
}

export function loading(text = "Loading…") {
  return h("p", {class: "loading", role: "status"}, text);
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "";
}

/** An ID shown short with the full value available (title + copy-friendly code). */
export function idCode(id) {
  return h("code", {class: "id", title: id}, shortId(id));
}

export function serviceAddress(instance) {
  const addr = instance.ServiceAddress || instance.Address || "";
  const port = instance.ServicePort;
  if (!port) return addr || "—";
  return addr.includes(":") && !addr.startsWith("[") ? `[${addr}]:${port}` : `${addr}:${port}`;
}

// One-shot message carried across a navigation (e.g. "Key deleted").
let pendingFlash = null;

export function setFlash(kind, text) {
  pendingFlash = {kind, text};
}

/** The pending flash as a notice element (or null); consumed once. */
export function takeFlash() {
  const f = pendingFlash;
  pendingFlash = null;
  return f ? notice(f.kind, f.text) : null;
}
