// Small DOM helpers. All user/cluster data goes through text nodes or
// attributes, never through innerHTML.

/**
 * Create an element.
 *   h("a", {href: "#/x", class: "link", onclick: fn}, "text", child, [more])
 * Attribute values of null/undefined/false are skipped; true sets an empty attribute.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else if (key === "class") {
        el.className = value;
      } else if (key === "dataset") {
        for (const [k, v] of Object.entries(value)) el.dataset[k] = v;
      } else if (key === "value" && "value" in el) {
        el.value = value;
      } else if (key === "checked" || key === "selected" || key === "disabled") {
        el[key] = Boolean(value);
      } else {
        el.setAttribute(key, value === true ? "" : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** Replace the children of `el` with `children`. */
export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

const STATUS_TEXT = {
  passing: "passing",
  warning: "warning",
  critical: "critical",
  maintenance: "maintenance",
  unknown: "unknown",
};

/** A status badge: colour plus text (never colour alone). */
export function statusBadge(status, label) {
  const s = STATUS_TEXT[status] ? status : "unknown";
  return h(
    "span",
    {class: `badge status status-${s}`, "data-status": s},
    h("span", {class: "dot", "aria-hidden": "true"}),
    label ?? STATUS_TEXT[s],
  );
}

export function badge(text, kind = "neutral", title) {
  return h("span", {class: `badge badge-${kind}`, title}, text);
}

export function tagList(tags, label = "Tags") {
  if (!tags || tags.length === 0) return h("span", {class: "muted"}, "—");
  return h(
    "ul",
    {class: "chips", "aria-label": label},
    tags.map((t) => h("li", {class: "chip"}, t)),
  );
}

/** A definition list for a string map (meta, tagged addresses). */
export function kvList(map, emptyText = "None") {
  const entries = Object.entries(map || {});
  if (entries.length === 0) return h("p", {class: "muted"}, emptyText);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return h(
    "dl",
    {class: "meta-list"},
    entries.map(([k, v]) => [
      h("dt", null, k),
      h("dd", null, typeof v === "object" && v !== null ? JSON.stringify(v) : v === "" ? h("span", {class: "muted"}, "(empty)") : String(v)),
    ]),
  );
}

/**
 * A table that turns into stacked cards in narrow windows.
 * columns: [{label, className?}], rows: [[cell, ...]] where cell is a node or text.
 */
export function table({caption, columns, rows, empty = "Nothing to show.", id, captionHidden = false}) {
  if (rows.length === 0) {
    return h("p", {class: "empty", id}, empty);
  }
  return h(
    "div",
    {class: "table-wrap"},
    h(
      "table",
      {class: "data-table", id},
      caption ? h("caption", {class: captionHidden ? "visually-hidden" : null}, caption) : null,
      h("thead", null, h("tr", null, columns.map((c) => h("th", {scope: "col", class: c.className}, c.label)))),
      h(
        "tbody",
        null,
        rows.map((row) => {
          const attrs = row.attrs || {};
          const cells = row.cells || row;
          return h(
            "tr",
            attrs,
            cells.map((cell, i) =>
              h(i === 0 ? "th" : "td", {
                scope: i === 0 ? "row" : null,
                "data-label": columns[i].label,
                class: columns[i].className,
              }, cell),
            ),
          );
        }),
      ),
    ),
  );
}

export function section(title, ...children) {
  const id = `sec-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return h("section", {class: "panel", "aria-labelledby": id}, h("h2", {id}, title), ...children);
}

export function pageHeader(title, {subtitle, actions, crumbs} = {}) {
  return h(
    "div",
    {class: "page-header"},
    crumbs ? h("nav", {class: "crumbs", "aria-label": "Breadcrumb"}, h("ol", null, crumbs.map((c) => h("li", null, c)))) : null,
    h(
      "div",
      {class: "page-title-row"},
      h("h1", {tabindex: "-1", id: "page-title"}, title),
      actions ? h("div", {class: "page-actions"}, actions) : null,
    ),
    subtitle ? h("p", {class: "page-subtitle"}, subtitle) : null,
  );
}

/** Notice box. kind: info | success | warning | error. */
export function notice(kind, ...children) {
  return h(
    "div",
    {class: `notice notice-${kind}`, role: kind === "error" || kind === "warning" ? "alert" : "status"},
    children,
  );
}

let uid = 0;
export function nextId(prefix = "id") {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A visible label + control wrapper. */
export function field(label, control, hint) {
  if (!control.id) control.id = nextId("f");
  let hintEl = null;
  if (hint) {
    hintEl = h("p", {class: "hint", id: `${control.id}-hint`}, hint);
    control.setAttribute("aria-describedby", hintEl.id);
  }
  return h("div", {class: "field"}, h("label", {for: control.id}, label), control, hintEl);
}

const confirmDialog = () => document.getElementById("confirm-dialog");

/** Ask for confirmation with the page's <dialog>. Resolves to true/false. */
export function confirmAction({title, body, confirmLabel = "Confirm"}) {
  const dialog = confirmDialog();
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-body").textContent = body;
  document.getElementById("confirm-ok").textContent = confirmLabel;
  dialog.returnValue = "";
  const opener = document.activeElement;
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        if (opener && typeof opener.focus === "function" && document.contains(opener)) opener.focus();
        resolve(dialog.returnValue === "confirm");
      },
      {once: true},
    );
    dialog.showModal();
    dialog.querySelector("button[value=cancel]").focus();
  });
}

function focusKey(el) {
  if (el.id) return `#${CSS.escape(el.id)}`;
  const tag = el.tagName.toLowerCase();
  for (const attr of ["href", "data-action", "name", "aria-label"]) {
    const v = el.getAttribute(attr);
    if (v) return `${tag}[${attr}="${CSS.escape(v)}"]`;
  }
  return null;
}

/**
 * Live-update `el` with new children: nothing happens when the markup is
 * unchanged (keeps focus, selection and scroll position); otherwise the
 * children are replaced and keyboard focus is restored to the equivalent
 * element when possible.
 */
export function update(el, ...children) {
  const tmp = document.createElement(el.tagName);
  append(tmp, children);
  if (tmp.innerHTML === el.innerHTML) return false;
  const active = document.activeElement;
  const key = active && el.contains(active) ? focusKey(active) : null;
  el.replaceChildren(...tmp.childNodes);
  if (key) {
    const again = el.querySelector(key);
    if (again) again.focus({preventScroll: true});
  }
  return true;
}

const SVG_NS = "http://www.w3.org/2000/svg";
const ICONS = {
  folder: {fill: true, d: "M1.5 4A1.5 1.5 0 0 1 3 2.5h3.2l1.6 1.6H13A1.5 1.5 0 0 1 14.5 5.6V12A1.5 1.5 0 0 1 13 13.5H3A1.5 1.5 0 0 1 1.5 12z"},
  file: {fill: false, d: "M4 1.75h5.25L12.5 5v9.25H4zM9 1.75V5.25h3.5"},
};

/** A small decorative inline SVG icon (hidden from assistive technology). */
export function icon(name, className = "") {
  const spec = ICONS[name];
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", `icon icon-${name} ${className}`.trim());
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", spec.d);
  if (spec.fill) {
    path.setAttribute("fill", "currentColor");
  } else {
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "1.3");
    path.setAttribute("stroke-linejoin", "round");
  }
  svg.appendChild(path);
  return svg;
}
