// Services list: name, instances, health summary, tags; search + health filter.
import {errorSlot, loading} from "../common.js";
import {h, pageHeader, statusBadge, table, tagList, update} from "../dom.js";
import {countStatuses, sortBy, worst} from "../health.js";
import {link, replaceQuery} from "../router.js";
import {indexChecks, instanceStatus, watchCatalog} from "../store.js";

const HEALTH_FILTERS = [
  {value: "", label: "All health states"},
  {value: "passing", label: "Passing"},
  {value: "warning", label: "Warning"},
  {value: "critical", label: "Critical"},
  {value: "maintenance", label: "Maintenance"},
];

export function summarise(model) {
  const idx = indexChecks(model.checks);
  const rows = [];
  for (const [name, tags] of Object.entries(model.services || {})) {
    const instances = model.instances[name];
    let statuses;
    if (instances) {
      statuses = instances.map((i) => instanceStatus(idx, i.Node, i.ServiceID));
    } else {
      // Instances still loading: derive from checks that name the service.
      statuses = [];
    }
    const counts = countStatuses(statuses);
    rows.push({
      name,
      tags: tags || [],
      count: instances ? instances.length : null,
      counts,
      status: statuses.length ? worst(statuses) : instances ? "passing" : "unknown",
    });
  }
  return sortBy(rows, (r) => r.name);
}

function healthSummary(row) {
  if (row.count === null) return h("span", {class: "muted"}, "…");
  if (row.count === 0) return h("span", {class: "muted"}, "no instances");
  const parts = [];
  for (const s of ["passing", "warning", "critical", "maintenance"]) {
    if (row.counts[s]) parts.push(statusBadge(s, `${row.counts[s]} ${s}`));
  }
  return h("span", {class: "health-summary", "data-health": row.status}, parts);
}

export function render({root, scope, query}) {
  const state = {q: query.get("q") || "", status: query.get("status") || ""};
  const search = h("input", {
    type: "search",
    id: "service-search",
    name: "q",
    value: state.q,
    placeholder: "Name or tag",
    title: "Shortcut: /",
    "aria-keyshortcuts": "/",
    autocomplete: "off",
  });
  const healthSel = h(
    "select",
    {id: "service-health", name: "status"},
    HEALTH_FILTERS.map((f) => h("option", {value: f.value, selected: f.value === state.status}, f.label)),
  );
  const count = h("span", {class: "count", "aria-live": "polite"});
  const listEl = h("div", {class: "list-region", id: "services-list"}, loading());
  const errors = errorSlot();
  let latest = null;

  const draw = () => {
    if (!latest || latest.services === null) return;
    const all = summarise(latest);
    const q = state.q.trim().toLowerCase();
    const rows = all.filter(
      (r) =>
        (!q || r.name.toLowerCase().includes(q) || r.tags.some((t) => t.toLowerCase().includes(q))) &&
        (!state.status || r.status === state.status || (state.status && r.counts[state.status] > 0 && state.status !== "passing")),
    );
    const noun = all.length === 1 ? "service" : "services";
    count.textContent = rows.length === all.length ? `${all.length} ${noun}` : `${rows.length} of ${all.length} ${noun}`;
    update(
      listEl,
      table({
        caption: "Services",
        captionHidden: true,
        id: "services-table",
        columns: [
          {label: "Service"},
          {label: "Health"},
          {label: "Instances", className: "num"},
          {label: "Tags"},
        ],
        rows: rows.map((r) => ({
          attrs: {"data-service": r.name, "data-status": r.status},
          cells: [
            h("a", {href: link.service(r.name), class: "strong-link"}, statusDot(r.status), r.name),
            healthSummary(r),
            r.count === null ? "…" : String(r.count),
            tagList(r.tags, `Tags of ${r.name}`),
          ],
        })),
        empty: all.length === 0 ? "No services are registered in this datacenter." : "No services match the filter.",
      }),
    );
  };

  const sync = () => {
    replaceQuery({q: state.q || "", status: state.status || ""});
    draw();
  };
  search.addEventListener("input", () => {
    state.q = search.value;
    sync();
  });
  healthSel.addEventListener("change", () => {
    state.status = healthSel.value;
    sync();
  });

  root.append(
    pageHeader("Services", {subtitle: "Services registered in the catalog, with the health of their instances."}),
    h(
      "form",
      {class: "toolbar", role: "search", "aria-label": "Filter services", onsubmit: (ev) => ev.preventDefault()},
      h("div", {class: "field field-grow"}, h("label", {for: "service-search"}, "Search"), search),
      h("div", {class: "field"}, h("label", {for: "service-health"}, "Health"), healthSel),
      count,
    ),
    errors.el,
    listEl,
  );

  watchCatalog(scope, {
    onChange: (model) => {
      latest = model;
      if (!model.error) errors.clear();
      draw();
    },
    onError: (err) => {
      errors.show(err, "list services");
      if (!latest || latest.services === null) listEl.replaceChildren();
    },
  });
}

function statusDot(status) {
  return h("span", {class: `dot-inline status-${status}`, "aria-hidden": "true"});
}
