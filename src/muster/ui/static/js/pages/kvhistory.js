// Key/Value history tab: the versions of a key (a Muster extension, /v1/muster/kv-history/),
// a diff of any version against the current one, and rollback as a CAS write.
import {encodePath, request, watch} from "../api.js";
import {decodeValue} from "../codec.js";
import {errorNotice, errorSlot, loading} from "../common.js";
import {badge, confirmAction, h, notice, table, update} from "../dom.js";

const PREVIEW = 60;

function preview(v) {
  if (v.Deleted) return h("span", {class: "muted"}, "deleted");
  const d = decodeValue(v.Value);
  if (d.binary) return h("span", {class: "muted"}, `binary, ${d.bytes.length} bytes`);
  if (d.text === "") return h("span", {class: "muted"}, "empty");
  const one = d.text.replace(/\n/g, "⏎");
  return h("code", {class: "mono"}, one.length > PREVIEW ? `${one.slice(0, PREVIEW - 1)}…` : one);
}

function who(v) {
  const parts = [];
  if (v.AccessorID) parts.push(h("code", {class: "mono", title: "Token AccessorID"}, v.AccessorID.slice(0, 8)));
  if (v.ClientAddr) parts.push(h("span", null, parts.length ? ` from ${v.ClientAddr}` : v.ClientAddr));
  return parts.length ? h("span", null, parts) : h("span", {class: "muted"}, "servers");
}

function operation(v) {
  return v.RollbackOf ? `rollback to ${v.RollbackOf}` : v.Operation;
}

/** A unified diff, one line per element, added/removed lines marked for styling. */
function diffView(d) {
  if (!d.Diff) {
    return h("p", {class: "muted", id: "kv-diff-empty"}, d.FlagsChanged ? "Same value; only the flags differ." : "No difference in value.");
  }
  const lines = d.Diff.replace(/\n$/, "").split("\n");
  return h(
    "pre",
    {class: "diff mono", id: "kv-diff-text"},
    lines.map((line) => {
      const cls = line.startsWith("+++") || line.startsWith("---") ? "diff-file" : line.startsWith("+") ? "diff-add" : line.startsWith("-") ? "diff-del" : line.startsWith("@@") ? "diff-hunk" : null;
      return h("span", {class: cls}, `${line}\n`);
    }),
  );
}

/**
 * Render the history of `key` into `panel`, live (a blocking query on the key's history).
 * `onRolledBack()` runs after a rollback applied (the editor reloads the value).
 */
export function renderHistory(panel, scope, key, {onRolledBack} = {}) {
  const errors = errorSlot();
  const message = h("div", {class: "flash", id: "kv-history-message", "aria-live": "polite"});
  const listEl = h("div", {id: "kv-history-list"}, loading());
  const diffEl = h("div", {id: "kv-diff"});
  panel.replaceChildren(message, errors.el, listEl, diffEl);
  const path = `muster/kv-history/${encodePath(key)}`;
  let versions = [];

  const current = () => versions.find((v) => v.Current) || null;
  // The CAS index a rollback sends: the ModifyIndex the key has as shown (0: it does not exist).
  const casIndex = () => {
    const c = current();
    if (!c) return undefined;
    return c.Deleted ? "0" : String(c.ModifyIndex);
  };

  const showDiff = async (v) => {
    const c = current();
    const query = {diff: true, to: String(v.ModifyIndex)};
    if (c && c.ModifyIndex !== v.ModifyIndex) query.from = String(c.ModifyIndex);
    try {
      const res = await request(path, {query, signal: scope.signal});
      const d = res.data;
      update(
        diffEl,
        h(
          "section",
          {class: "panel", "aria-labelledby": "kv-diff-title"},
          h("h2", {id: "kv-diff-title"}, c && c.ModifyIndex !== v.ModifyIndex ? `Current (${d.From}) → version ${d.To}` : `Version ${d.To} against the one before it`),
          diffView(d),
        ),
      );
    } catch (err) {
      if (scope.active) diffEl.replaceChildren(errorNotice(err, "compare the versions"));
    }
  };

  const rollback = async (v) => {
    // The state the operator decided on: a change while the dialog is open refuses the write.
    const cas = casIndex();
    const ok = await confirmAction({
      title: `Roll back to version ${v.ModifyIndex}?`,
      body: v.Deleted
        ? `“${key}” will be deleted, as it was at index ${v.ModifyIndex}. The write is refused if the key changes before it applies.`
        : `The value and flags of index ${v.ModifyIndex} will be written back to “${key}” as a new version. The write is refused if the key changes before it applies.`,
      confirmLabel: "Roll back",
    });
    if (!ok) return;
    try {
      const res = await request(path, {method: "PUT", query: {rollback: String(v.ModifyIndex), cas}});
      if (res.data === true) {
        message.replaceChildren(notice("success", `Rolled back “${key}” to version ${v.ModifyIndex}.`));
        diffEl.replaceChildren();
        if (onRolledBack) onRolledBack();
      } else {
        message.replaceChildren(
          notice("error", h("strong", null, "Not rolled back: "), "the key changed after this history was loaded. Nothing was written. Review the latest versions and try again."),
        );
      }
    } catch (err) {
      message.replaceChildren(errorNotice(err, "roll back the key"));
    }
  };

  watch(scope, path, {
    accept: [404],
    onData: (data, res) => {
      errors.clear();
      versions = res.status === 404 ? [] : data || [];
      update(
        listEl,
        table({
          caption: `Versions of ${key}, newest first`,
          captionHidden: true,
          id: "kv-history-table",
          empty: "No history is recorded for this key.",
          columns: [{label: "Index"}, {label: "Time"}, {label: "Operation"}, {label: "Flags"}, {label: "Who"}, {label: "Value"}, {label: "Actions"}],
          rows: versions.map((v) => ({
            attrs: {"data-index": String(v.ModifyIndex), class: v.Current ? "current" : null},
            cells: [
              h("span", null, String(v.ModifyIndex), v.Current ? h("span", null, " ", badge("current", "voter")) : null),
              v.Time ? h("time", {datetime: v.Time}, v.Time.replace("T", " ").replace(/\.\d+Z$/, "Z")) : "–",
              operation(v),
              String(v.Flags ?? 0),
              who(v),
              preview(v),
              h(
                "div",
                {class: "row-actions"},
                h("button", {type: "button", class: "btn btn-small", "data-action": "diff", onclick: () => showDiff(v)}, "Diff"),
                v.Current ? null : h("button", {type: "button", class: "btn btn-small btn-danger-outline", "data-action": "rollback", onclick: () => rollback(v)}, "Roll back"),
              ),
            ],
          })),
        }),
      );
    },
    onError: (err) => errors.show(err, "read the history"),
  });
}
