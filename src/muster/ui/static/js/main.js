// Application shell: routing, datacenter switcher, token link, connection banner.
import {acl, connection, emit, on, poll, request, retryNow, Scope, settings} from "./api.js";
import {confirmAction, h} from "./dom.js";
import {decodeTail, href, parseHash} from "./router.js";
import {startLeaderTracker} from "./store.js";

import * as clusterPage from "./pages/cluster.js";
import * as kvPage from "./pages/kv.js";
import * as nodePage from "./pages/node.js";
import * as nodesPage from "./pages/nodes.js";
import * as servicePage from "./pages/service.js";
import * as servicesPage from "./pages/services.js";
import * as sessionsPage from "./pages/sessions.js";
import * as settingsPage from "./pages/settings.js";

const app = {
  leaveGuard: null, // set by a page with unsaved edits: () => message | null
  bypassGuard: false,
  agentDc: "",
  datacenters: [],
  pageScope: null,
  rootScope: new Scope(),
  lastRouteKey: null,
};

function resolve(route) {
  switch (route.section) {
    case "":
    case "services":
      return route.tail ? {page: servicePage, title: "Service"} : {page: servicesPage, title: "Services", section: "services"};
    case "nodes":
      return route.tail ? {page: nodePage, title: "Node"} : {page: nodesPage, title: "Nodes"};
    case "kv":
      return {page: kvPage, title: "Key/Value"};
    case "sessions":
      return {page: sessionsPage, title: "Sessions"};
    case "cluster":
      return {page: clusterPage, title: "Cluster"};
    case "settings":
      return {page: settingsPage, title: "ACL token"};
    default:
      return null;
  }
}

function notFound(root, route) {
  root.append(
    h("div", {class: "page-header"}, h("h1", {tabindex: "-1", id: "page-title"}, "Page not found")),
    h("p", null, `There is no page at “${route.path}”. `, h("a", {href: href("/services")}, "Go to Services"), "."),
  );
}

const SECTION_PATHS = {services: "/services", nodes: "/nodes", kv: "/kv/", sessions: "/sessions", cluster: "/cluster", settings: "/settings"};

function setActiveNav(section) {
  // Navigation links keep the selected datacenter.
  document.querySelector(".brand").setAttribute("href", href("/services"));
  for (const a of document.querySelectorAll("[data-section]")) {
    a.setAttribute("href", href(SECTION_PATHS[a.dataset.section]));
    if (a.dataset.section === (section || "services")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function syncDcSelect() {
  const select = document.getElementById("dc-select");
  const names = app.datacenters.length ? [...app.datacenters] : [];
  // Without ?dc= the agent's own datacenter is in use (the first listed when unknown).
  const current = settings.dc || app.agentDc || names[0] || "";
  if (current && !names.includes(current)) names.push(current);
  const same =
    select.options.length === names.length && names.every((n, i) => select.options[i].value === n) && select.value === current;
  if (same) return;
  select.replaceChildren(...names.map((n) => h("option", {value: n, selected: n === current}, n)));
  select.value = current;
  select.disabled = names.length === 0;
}

/** ACLs deny by default and no token is set: say so, and link to the token page. */
function renderAclBanner() {
  const el = document.getElementById("acl-banner");
  const ask = acl.defaultPolicy === "deny" && !settings.token;
  el.hidden = !ask;
  if (!ask) {
    el.replaceChildren();
    return;
  }
  el.replaceChildren(
    h("strong", null, "This agent requires an ACL token. "),
    "ACLs deny by default, so without a token this UI shows little or nothing. ",
    h("a", {href: href("/settings")}, "Set an ACL token"),
    ".",
  );
}

function syncTokenLink() {
  const a = document.getElementById("token-link");
  a.textContent = settings.token ? "ACL token ✓" : "ACL token";
  a.setAttribute("aria-label", settings.token ? "ACL token (set)" : "ACL token (not set)");
}

function render({focus}) {
  const route = parseHash();
  if (!location.hash.startsWith("#/")) {
    history.replaceState(history.state, "", href("/services"));
    return render({focus});
  }
  const dc = route.query.get("dc") || "";
  const dcChanged = dc !== settings.dc;
  settings.dc = dc;
  if (dcChanged) emit("dc", dc);
  syncDcSelect();

  // Query-only changes made by the page itself (filters) use replaceState and
  // never reach here; anything else re-mounts the page.
  if (app.pageScope) app.pageScope.dispose();
  app.pageScope = app.rootScope.child();
  app.leaveGuard = null;
  const root = document.getElementById("main");
  root.replaceChildren();
  const match = resolve(route);
  setActiveNav(match ? route.section || "services" : null);
  if (!match) {
    notFound(root, route);
    document.title = "Not found · Muster";
  } else {
    const detail = route.tail ? decodeTail(route.tail) : "";
    document.title = detail ? `${detail} · ${match.title} · Muster` : `${match.title} · Muster`;
    const setLeaveGuard = (fn) => {
      app.leaveGuard = fn;
    };
    match.page.render({root, scope: app.pageScope, tail: route.tail, query: route.query, route, setLeaveGuard});
  }
  if (focus) {
    const heading = root.querySelector("h1");
    if (heading) heading.focus({preventScroll: false});
  }
}

function renderBanner() {
  const el = document.getElementById("conn-banner");
  if (connection.up) {
    if (!el.hidden) {
      el.hidden = true;
      el.replaceChildren();
      document.body.classList.remove("offline");
    }
    return;
  }
  const secs = Math.max(0, Math.ceil((connection.nextRetryAt - Date.now()) / 1000));
  const countdown = secs > 0 ? `Reconnecting in ${secs}s (attempt ${connection.failures})…` : "Reconnecting…";
  if (el.hidden) {
    // Built once per outage so screen readers announce it once; only the
    // countdown (hidden from assistive technology) changes afterwards.
    document.body.classList.add("offline");
    el.replaceChildren(
      h("span", {class: "conn-icon", "aria-hidden": "true"}, "⚠"),
      h("span", {class: "conn-text"}, h("strong", null, "Connection to the agent lost. "), "Data on this page may be out of date. "),
      h("span", {class: "conn-countdown", "aria-hidden": "true"}, countdown),
      h("button", {type: "button", class: "btn btn-small", onclick: () => retryNow()}, "Retry now"),
    );
    el.hidden = false;
    return;
  }
  const cd = el.querySelector(".conn-countdown");
  if (cd && cd.textContent !== countdown) cd.textContent = countdown;
}

async function loadAgentInfo() {
  try {
    const res = await request("agent/self", {dc: false, signal: app.rootScope.signal});
    const cfg = (res.data && res.data.Config) || {};
    app.agentDc = cfg.Datacenter || "";
    const info = document.getElementById("agent-info");
    info.textContent = `Muster · agent ${cfg.NodeName || "?"} · datacenter ${cfg.Datacenter || "?"} · version ${cfg.Version || "?"}`;
    syncDcSelect();
  } catch {
    // shown by the connection banner / pages
  }
}

function startDatacenters() {
  poll(app.rootScope, 30_000, async (signal) => {
    const res = await request("catalog/datacenters", {dc: false, signal});
    app.datacenters = Array.isArray(res.data) ? res.data : [];
    if (!app.agentDc) await loadAgentInfo();
    syncDcSelect();
  });
}

/** Route change; a page with unsaved edits gets to ask before it is left. */
async function onHashChange(ev) {
  const message = !app.bypassGuard && app.leaveGuard ? app.leaveGuard() : null;
  app.bypassGuard = false;
  if (message) {
    const target = location.hash;
    const back = new URL(ev.oldURL).hash;
    history.replaceState(history.state, "", back || "#/");
    const ok = await confirmAction({title: "Leave this page?", body: message, confirmLabel: "Discard changes"});
    if (!ok) {
      syncDcSelect();
      return;
    }
    app.bypassGuard = true;
    location.hash = target;
    return;
  }
  render({focus: true});
}

function boot() {
  document.getElementById("dc-select").addEventListener("change", (ev) => {
    const dc = ev.target.value;
    const route = parseHash();
    // Detail pages may not exist in another datacenter: go to the section's list.
    const section = route.section || "services";
    const path = section === "kv" ? "/kv/" : `/${section}`;
    location.hash = href(path, {dc});
  });
  document.getElementById("skip-link").addEventListener("click", (ev) => {
    ev.preventDefault();
    const main = document.getElementById("main");
    const heading = main.querySelector("h1");
    (heading || main).focus();
  });
  // "/" focuses the page's search box (when not typing somewhere already).
  document.addEventListener("keydown", (ev) => {
    if (ev.key !== "/" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    if (t instanceof HTMLElement && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    const search = document.querySelector("main input[type=search]");
    if (search) {
      ev.preventDefault();
      search.focus();
    }
  });
  on("connection", renderBanner);
  setInterval(() => {
    if (!connection.up) renderBanner();
  }, 1000);
  on("token", () => {
    syncTokenLink();
    renderAclBanner();
  });
  on("aclpolicy", renderAclBanner);
  syncTokenLink();
  window.addEventListener("hashchange", onHashChange);
  window.addEventListener("storage", (ev) => {
    if (ev.key && ev.key.startsWith("muster.ui.token")) syncTokenLink();
  });
  startLeaderTracker(app.rootScope);
  loadAgentInfo();
  startDatacenters();
  render({focus: false});
}

boot();
