// Service detail: every instance with node, address:port, tags, meta and checks.
import {encodePath, watch} from "../api.js";
import {errorSlot, loading, serviceAddress} from "../common.js";
import {badge, h, kvList, pageHeader, statusBadge, table, tagList, update} from "../dom.js";
import {aggregate, countStatuses, worst} from "../health.js";
import {decodeTail, link} from "../router.js";

export function checksTable(checks, {caption, showService = false} = {}) {
  return table({
    caption,
    captionHidden: true,
    columns: [
      {label: "Check"},
      {label: "Status"},
      {label: "Type"},
      ...(showService ? [{label: "Service"}] : []),
      {label: "Output", className: "col-output"},
    ],
    rows: checks.map((c) => ({
      attrs: {"data-check": c.CheckID, "data-status": c.Status},
      cells: [
        h("span", {class: "check-name"}, c.Name || c.CheckID, h("code", {class: "check-id"}, c.CheckID)),
        statusBadge(c.Status),
        c.Type || h("span", {class: "muted"}, "—"),
        ...(showService ? [c.ServiceName ? h("a", {href: link.service(c.ServiceName)}, c.ServiceName) : h("span", {class: "muted"}, "node check")] : []),
        c.Output ? h("pre", {class: "check-output"}, c.Output) : h("span", {class: "muted"}, c.Notes || "No output"),
      ],
    })),
    empty: "No health checks.",
  });
}

function instanceCard(entry) {
  const svc = entry.Service || {};
  const node = entry.Node || {};
  const checks = entry.Checks || [];
  const status = aggregate(checks);
  const address = serviceAddress({
    ServiceAddress: svc.Address,
    Address: node.Address,
    ServicePort: svc.Port,
  });
  const nodeChecks = checks.filter((c) => !c.ServiceID);
  const svcChecks = checks.filter((c) => c.ServiceID);
  return h(
    "article",
    {class: "card instance", "data-instance": svc.ID, "data-node": node.Node, "data-status": status},
    h(
      "header",
      {class: "card-header"},
      h("h3", null, svc.ID),
      statusBadge(status),
    ),
    h(
      "dl",
      {class: "facts"},
      h("dt", null, "Node"),
      h("dd", null, h("a", {href: link.node(node.Node)}, node.Node)),
      h("dt", null, "Address"),
      h("dd", null, h("code", {class: "address"}, address)),
      h("dt", null, "Tags"),
      h("dd", null, tagList(svc.Tags, `Tags of ${svc.ID}`)),
      svc.Weights ? [h("dt", null, "Weights"), h("dd", null, `passing ${svc.Weights.Passing}, warning ${svc.Weights.Warning}`)] : null,
    ),
    h("h4", null, "Metadata"),
    kvList(svc.Meta, "No metadata."),
    h("h4", null, `Service checks (${svcChecks.length})`),
    checksTable(svcChecks, {caption: `Service checks of ${svc.ID}`}),
    h("h4", null, `Node checks (${nodeChecks.length})`),
    checksTable(nodeChecks, {caption: `Node checks of ${node.Node}`}),
  );
}

export function render({root, scope, tail}) {
  const name = decodeTail(tail);
  const summary = h("div", {class: "summary-row", "aria-live": "polite"});
  const list = h("div", {class: "instances", id: "instances"}, loading());
  const errors = errorSlot();
  root.append(
    pageHeader(name, {
      crumbs: [h("a", {href: link.services()}, "Services"), h("span", {"aria-current": "page"}, name)],
    }),
    summary,
    errors.el,
    h("section", {class: "panel", "aria-labelledby": "instances-title"}, h("h2", {id: "instances-title"}, "Instances"), list),
  );
  watch(scope, `health/service/${encodePath(name)}`, {
    onData: (entries) => {
      errors.clear();
      entries = entries || [];
      const statuses = entries.map((e) => aggregate(e.Checks));
      const counts = countStatuses(statuses);
      const tags = [...new Set(entries.flatMap((e) => (e.Service && e.Service.Tags) || []))].sort();
      update(
        summary,
        h("div", {class: "stat"}, h("span", {class: "stat-label"}, "Instances"), h("span", {class: "stat-value", id: "instance-count"}, String(entries.length))),
        h("div", {class: "stat"}, h("span", {class: "stat-label"}, "Health"), h("span", {class: "stat-value"}, entries.length ? statusBadge(worst(statuses)) : badge("no instances"))),
        h(
          "div",
          {class: "stat"},
          h("span", {class: "stat-label"}, "Instance health"),
          h("span", {class: "stat-value health-summary"}, ["passing", "warning", "critical", "maintenance"].filter((s) => counts[s]).map((s) => statusBadge(s, `${counts[s]} ${s}`))),
        ),
        h("div", {class: "stat stat-wide"}, h("span", {class: "stat-label"}, "Tags"), h("span", {class: "stat-value"}, tagList(tags))),
      );
      if (entries.length === 0) {
        update(list, h("p", {class: "empty"}, `No instances of “${name}” are registered in this datacenter.`));
        return;
      }
      update(list, entries.map(instanceCard));
    },
    onError: (err) => errors.show(err, `read service “${name}”`),
  });
}
