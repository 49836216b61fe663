// Node detail: checks, services, lock sessions, metadata.
import {encodePath, on, poll, POLL_MS, request, watch} from "../api.js";
import {formatNs} from "../codec.js";
import {errorSlot, idCode, loading, serviceAddress} from "../common.js";
import {h, kvList, pageHeader, statusBadge, table, tagList, update} from "../dom.js";
import {aggregate, sortBy} from "../health.js";
import {decodeTail, link} from "../router.js";
import {leaderState, raftRoles} from "../store.js";
import {serverBadges} from "./nodes.js";
import {checksTable} from "./service.js";

export function sessionsTable(sessions, {showNode = false, caption = "Sessions", onDestroy} = {}) {
  return table({
    caption,
    captionHidden: true,
    columns: [
      {label: "Session"},
      {label: "ID"},
      ...(showNode ? [{label: "Node"}] : []),
      {label: "Behavior"},
      {label: "TTL"},
      {label: "Lock delay"},
      {label: "Checks"},
      ...(onDestroy ? [{label: "Actions", className: "col-actions"}] : []),
    ],
    rows: sortBy(sessions, (s) => `${s.Name}\u0000${s.ID}`).map((s) => {
      const checks = [...(s.NodeChecks || []), ...((s.ServiceChecks || []).map((c) => c.ID)), ...(s.Checks || [])];
      const uniq = [...new Set(checks)];
      return {
        attrs: {"data-session": s.ID},
        cells: [
          s.Name ? h("span", null, s.Name) : h("span", {class: "muted"}, "(unnamed)"),
          idCode(s.ID),
          ...(showNode ? [h("a", {href: link.node(s.Node)}, s.Node)] : []),
          s.Behavior || "release",
          s.TTL || h("span", {class: "muted"}, "none"),
          formatNs(s.LockDelay),
          uniq.length ? tagList(uniq, `Checks of session ${s.ID}`) : h("span", {class: "muted"}, "none"),
          ...(onDestroy
            ? [
                h(
                  "button",
                  {
                    type: "button",
                    class: "btn btn-small btn-danger-outline",
                    "data-action": `destroy-${s.ID}`,
                    "aria-label": `Invalidate session ${s.Name || s.ID}`,
                    onclick: () => onDestroy(s),
                  },
                  "Invalidate",
                ),
              ]
            : []),
        ],
      };
    }),
    empty: "No sessions.",
  });
}

export function render({root, scope, tail}) {
  const name = decodeTail(tail);
  const badgesEl = h("span", {class: "badges"});
  const overview = h("div", {id: "node-overview"}, loading());
  const checksEl = h("div", {id: "node-checks"}, loading());
  const servicesEl = h("div", {id: "node-services"}, loading());
  const sessionsEl = h("div", {id: "node-sessions"}, loading());
  const metaEl = h("div", {id: "node-meta"}, loading());
  const errors = errorSlot();
  let checks = [];
  let raftConfig = null;

  root.append(
    pageHeader(name, {
      crumbs: [h("a", {href: link.nodes()}, "Nodes"), h("span", {"aria-current": "page"}, name)],
      actions: badgesEl,
    }),
    errors.el,
    h(
      "div",
      {class: "grid-2"},
      h("section", {class: "panel", "aria-labelledby": "node-overview-title"}, h("h2", {id: "node-overview-title"}, "Overview"), overview),
      h("section", {class: "panel", "aria-labelledby": "node-meta-title"}, h("h2", {id: "node-meta-title"}, "Metadata"), metaEl),
    ),
    h("section", {class: "panel", "aria-labelledby": "node-checks-title"}, h("h2", {id: "node-checks-title"}, "Health checks"), checksEl),
    h("section", {class: "panel", "aria-labelledby": "node-services-title"}, h("h2", {id: "node-services-title"}, "Services"), servicesEl),
    h("section", {class: "panel", "aria-labelledby": "node-sessions-title"}, h("h2", {id: "node-sessions-title"}, "Lock sessions"), sessionsEl),
  );

  let nodeData = null;
  const drawServices = () => {
    if (!nodeData) return;
    const services = Object.values(nodeData.Services || {});
    update(
      servicesEl,
      table({
        caption: `Services on ${name}`,
        captionHidden: true,
        columns: [{label: "Service"}, {label: "ID"}, {label: "Health"}, {label: "Address"}, {label: "Tags"}],
        rows: sortBy(services, (s) => s.ID).map((s) => {
          const status = aggregate(checks.filter((c) => !c.ServiceID || c.ServiceID === s.ID));
          return {
            attrs: {"data-service-id": s.ID},
            cells: [
              h("a", {href: link.service(s.Service)}, s.Service),
              h("code", null, s.ID),
              statusBadge(status),
              h("code", {class: "address"}, serviceAddress({ServiceAddress: s.Address, Address: nodeData.Node.Address, ServicePort: s.Port})),
              tagList(s.Tags, `Tags of ${s.ID}`),
            ],
          };
        }),
        empty: "No services on this node.",
      }),
    );
  };
  const drawBadges = () => update(badgesEl, serverBadges(raftRoles(raftConfig, leaderState.leader), name));

  watch(scope, `catalog/node/${encodePath(name)}`, {
    onData: (data) => {
      errors.clear();
      nodeData = data;
      if (!data || !data.Node) {
        update(overview, h("p", {class: "empty"}, `Node “${name}” is not registered in this datacenter.`));
        update(metaEl, h("span"));
        update(servicesEl, h("span"));
        return;
      }
      const n = data.Node;
      update(
        overview,
        h(
          "dl",
          {class: "facts"},
          h("dt", null, "Address"),
          h("dd", null, h("code", {class: "address"}, n.Address)),
          h("dt", null, "Datacenter"),
          h("dd", null, n.Datacenter || "—"),
          h("dt", null, "Node ID"),
          h("dd", null, n.ID ? h("code", null, n.ID) : h("span", {class: "muted"}, "none")),
          h("dt", null, "Health"),
          h("dd", {id: "node-health"}, statusBadge(aggregate(checks))),
        ),
      );
      update(
        metaEl,
        h("h3", null, "Node metadata"),
        kvList(n.Meta, "No metadata."),
        h("h3", null, "Tagged addresses"),
        kvList(n.TaggedAddresses, "No tagged addresses."),
      );
      drawServices();
    },
    onError: (err) => errors.show(err, `read node “${name}”`),
  });
  watch(scope, `health/node/${encodePath(name)}`, {
    onData: (data) => {
      checks = data || [];
      update(checksEl, checksTable(sortBy(checks, (c) => `${c.ServiceID ? 1 : 0}${c.CheckID}`), {caption: `Checks on ${name}`, showService: true}));
      const healthEl = document.getElementById("node-health");
      if (healthEl) update(healthEl, statusBadge(aggregate(checks)));
      drawServices();
    },
    onError: (err) => errors.show(err, `read the checks of “${name}”`),
  });
  watch(scope, `session/node/${encodePath(name)}`, {
    onData: (data) => {
      update(sessionsEl, sessionsTable(data || [], {caption: `Sessions of ${name}`}));
    },
    onError: (err) => errors.show(err, `read the sessions of “${name}”`),
  });
  poll(scope, POLL_MS, async (signal) => {
    const res = await request("operator/raft/configuration", {signal});
    raftConfig = res.data;
    drawBadges();
  });
  scope.add(on("leader", drawBadges));
}
