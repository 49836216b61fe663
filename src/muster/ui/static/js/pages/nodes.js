// Nodes list: health, address, services, leader/voter badges for servers.
import {on, poll, POLL_MS, request} from "../api.js";
import {errorSlot, loading} from "../common.js";
import {badge, h, pageHeader, statusBadge, table, update} from "../dom.js";
import {aggregate, sortBy} from "../health.js";
import {link, replaceQuery} from "../router.js";
import {indexChecks, leaderState, raftRoles, watchCatalog} from "../store.js";

/** Badges for a server node: Leader / Voter / Non-voter. */
export function serverBadges(roles, nodeName) {
  const info = roles && roles.byNode.get(nodeName);
  if (!info) return [];
  const out = [badge("Server", "neutral")];
  if (info.isLeader) out.push(badge("Leader", "leader", "Current Raft leader"));
  out.push(info.Voter ? badge("Voter", "voter", "Raft voter") : badge("Non-voter", "neutral", "Raft non-voter"));
  return out;
}

export function render({root, scope, query}) {
  const state = {q: query.get("q") || ""};
  const search = h("input", {type: "search", id: "node-search", name: "q", value: state.q, placeholder: "Name or address", title: "Shortcut: /", "aria-keyshortcuts": "/", autocomplete: "off"});
  const count = h("span", {class: "count", "aria-live": "polite"});
  const listEl = h("div", {class: "list-region", id: "nodes-list"}, loading());
  const errors = errorSlot();
  const raftErrors = errorSlot();
  let model = null;
  let raftConfig = null;

  const draw = () => {
    if (!model || model.nodes === null) return;
    const idx = indexChecks(model.checks);
    const roles = raftRoles(raftConfig, leaderState.leader);
    const servicesByNode = new Map();
    for (const [name, instances] of Object.entries(model.instances)) {
      for (const i of instances) {
        if (!servicesByNode.has(i.Node)) servicesByNode.set(i.Node, new Set());
        servicesByNode.get(i.Node).add(name);
      }
    }
    const q = state.q.trim().toLowerCase();
    const all = sortBy(model.nodes, (n) => n.Node);
    const rows = all.filter((n) => !q || n.Node.toLowerCase().includes(q) || (n.Address || "").includes(q));
    const noun = all.length === 1 ? "node" : "nodes";
    count.textContent = rows.length === all.length ? `${all.length} ${noun}` : `${rows.length} of ${all.length} ${noun}`;
    update(
      listEl,
      table({
        caption: "Nodes",
        captionHidden: true,
        id: "nodes-table",
        columns: [{label: "Node"}, {label: "Health"}, {label: "Address"}, {label: "Services"}, {label: "Role"}],
        rows: rows.map((n) => {
          const checks = idx.allOnNode(n.Node);
          const status = aggregate(checks);
          const services = [...(servicesByNode.get(n.Node) || [])].sort();
          const badges = serverBadges(roles, n.Node);
          return {
            attrs: {"data-node": n.Node, "data-status": status},
            cells: [
              h("a", {href: link.node(n.Node), class: "strong-link"}, n.Node),
              h("span", null, statusBadge(status), h("span", {class: "muted small"}, ` ${checks.length} check${checks.length === 1 ? "" : "s"}`)),
              h("code", {class: "address"}, n.Address),
              services.length
                ? h("ul", {class: "chips", "aria-label": `Services on ${n.Node}`}, services.map((s) => h("li", {class: "chip"}, h("a", {href: link.service(s)}, s))))
                : h("span", {class: "muted"}, "—"),
              badges.length ? h("span", {class: "badges"}, badges) : h("span", {class: "muted"}, "client"),
            ],
          };
        }),
        empty: all.length === 0 ? "No nodes are registered." : "No nodes match the search.",
      }),
    );
  };

  search.addEventListener("input", () => {
    state.q = search.value;
    replaceQuery({q: state.q});
    draw();
  });

  root.append(
    pageHeader("Nodes", {subtitle: "Nodes in the catalog. Servers show their Raft role."}),
    h(
      "form",
      {class: "toolbar", role: "search", "aria-label": "Filter nodes", onsubmit: (ev) => ev.preventDefault()},
      h("div", {class: "field field-grow"}, h("label", {for: "node-search"}, "Search"), search),
      count,
    ),
    errors.el,
    raftErrors.el,
    listEl,
  );

  watchCatalog(scope, {
    nodes: true,
    onChange: (m) => {
      model = m;
      if (!m.error) errors.clear();
      draw();
    },
    onError: (err) => errors.show(err, "list nodes"),
  });
  poll(
    scope,
    POLL_MS,
    async (signal) => {
      const res = await request("operator/raft/configuration", {signal});
      raftConfig = res.data;
      raftErrors.clear();
      draw();
    },
    (err) => raftErrors.show(err, "read the Raft configuration (leader/voter badges)"),
  );
  scope.add(on("leader", () => draw()));
}
