// Key/Value: folder navigation, create/edit/delete with CAS, value formats.
import {ApiError, encodePath, request, watch} from "../api.js";
import {bytesToBase64, cmpIndex, decodeValue, detectFormat, FORMATS, formatValue, parseU64, utf8Length, validateValue} from "../codec.js";
import {errorNotice, errorSlot, idCode, loading, setFlash, takeFlash} from "../common.js";
import {confirmAction, field, h, icon, notice, pageHeader, replace, update} from "../dom.js";
import {decodeTail, link, navigate} from "../router.js";
import {renderHistory} from "./kvhistory.js";

const MAX_VALUE_BYTES = 512 * 1024;

function parentFolder(key) {
  const trimmed = key.endsWith("/") ? key.slice(0, -1) : key;
  const i = trimmed.lastIndexOf("/");
  return i >= 0 ? trimmed.slice(0, i + 1) : "";
}

function crumbs(path, {current = true} = {}) {
  const items = [h("a", {href: link.kv("")}, "Key/Value")];
  const parts = path.split("/");
  const isFolder = path.endsWith("/");
  let acc = "";
  const folderParts = isFolder ? parts.slice(0, -1) : parts.slice(0, -1);
  folderParts.forEach((p, i) => {
    acc += `${p}/`;
    const last = isFolder && i === folderParts.length - 1;
    items.push(last && current ? h("span", {"aria-current": "page"}, `${p}/`) : h("a", {href: link.kv(acc)}, `${p}/`));
  });
  if (!isFolder && path) items.push(h("span", {"aria-current": current ? "page" : null}, parts[parts.length - 1]));
  return items;
}

export function render(ctx) {
  const path = decodeTail(ctx.tail);
  if (ctx.query.get("create")) return renderEditor(ctx, {create: true, folder: path.endsWith("/") || path === "" ? path : parentFolder(path)});
  if (path === "" || path.endsWith("/")) return renderFolder(ctx, path);
  return renderEditor(ctx, {create: false, key: path, tab: ctx.query.get("tab")});
}

// ---------------------------------------------------------------------------
// Folder view

function renderFolder({root, scope}, prefix) {
  const listEl = h("div", {id: "kv-list"}, loading());
  const count = h("span", {class: "count", "aria-live": "polite"});
  const errors = errorSlot();
  const flash = h("div", {class: "flash", "aria-live": "polite"}, takeFlash());
  const title = prefix ? prefix : "Key/Value";

  async function deleteFolder() {
    const ok = await confirmAction({
      title: "Delete folder?",
      body: `Every key under “${prefix}” will be deleted. This cannot be undone.`,
      confirmLabel: "Delete folder",
    });
    if (!ok) return;
    // Stop watching first: the folder is about to disappear (a 404 otherwise).
    listWatch.dispose();
    try {
      await request(`kv/${encodePath(prefix)}`, {method: "DELETE", query: {recurse: true}});
      setFlash("success", `Deleted folder “${prefix}”.`);
      navigate(`/kv/${encodePath(parentFolder(prefix))}`);
    } catch (err) {
      flash.replaceChildren(errorNotice(err, "delete the folder"));
      startListWatch();
    }
  }

  root.append(
    pageHeader(title, {
      crumbs: prefix ? crumbs(prefix) : null,
      subtitle: prefix ? null : "Browse, create and edit keys. Folders are key prefixes ending in “/”.",
      actions: [
        h("a", {class: "btn btn-primary", href: link.kvCreate(prefix), id: "kv-create"}, "Create key"),
        prefix ? h("button", {type: "button", class: "btn btn-danger-outline", id: "kv-delete-folder", onclick: deleteFolder}, "Delete folder") : null,
      ],
    }),
    flash,
    h("div", {class: "toolbar"}, count),
    errors.el,
    listEl,
  );

  let listWatch = scope.child();
  const startListWatch = () => {
    listWatch = scope.child();
    watchList(listWatch);
  };
  const watchList = (watchScope) => watch(watchScope, `kv/${encodePath(prefix)}`, {
    query: {keys: true, separator: "/"},
    accept: [404],
    onData: (data) => {
      errors.clear();
      const keys = (data || []).filter((k) => k !== prefix).sort();
      count.textContent = `${keys.length} item${keys.length === 1 ? "" : "s"}`;
      if (keys.length === 0) {
        update(listEl, h("p", {class: "empty"}, prefix ? "This folder is empty." : "There are no keys yet. ", prefix ? null : h("a", {href: link.kvCreate("")}, "Create the first key"), prefix ? null : "."));
        return;
      }
      update(
        listEl,
        h(
          "ul",
          {class: "kv-list", "aria-label": `Contents of ${prefix || "the root folder"}`},
          keys.map((k) => {
            const name = k.slice(prefix.length);
            const folder = k.endsWith("/");
            return h(
              "li",
              {class: folder ? "kv-folder" : "kv-key", "data-key": k},
              h(
                "a",
                {href: link.kv(k)},
                icon(folder ? "folder" : "file", "kv-icon"),
                h("span", {class: "kv-name"}, name),
                folder ? h("span", {class: "visually-hidden"}, " (folder)") : null,
              ),
            );
          }),
        ),
      );
    },
    onError: (err) => errors.show(err, "list keys"),
  });
  watchList(listWatch);
}

// ---------------------------------------------------------------------------
// Editor (create or edit)

function renderEditor({root, scope, setLeaveGuard}, {create, key = "", folder = "", tab = null}) {
  const state = {
    done: false, // saved/deleted and navigating away
    base: null, // DirEntry as loaded (edit mode)
    baseText: "",
    binary: false,
    remote: null, // newer DirEntry seen by the watcher, or "deleted"
    saving: false,
  };
  const errors = errorSlot();
  const message = h("div", {class: "flash", id: "kv-message", "aria-live": "polite"}, takeFlash());
  const remoteEl = h("div", {id: "kv-remote-change"});

  const keyInput = h("input", {type: "text", id: "kv-key", name: "key", value: folder, autocomplete: "off", spellcheck: "false", class: "mono", required: true});
  const valueInput = h("textarea", {id: "kv-value", name: "value", rows: "14", spellcheck: "false", autocapitalize: "off", class: "mono code-area", wrap: "off"});
  const formatSel = h("select", {id: "kv-format", name: "format"}, FORMATS.map((f) => h("option", {value: f.id}, f.label)));
  const formatBtn = h("button", {type: "button", class: "btn btn-small", id: "kv-format-btn"}, "Format");
  const validation = h("p", {class: "validation", id: "kv-validation", "aria-live": "polite"});
  const flagsInput = h("input", {type: "text", id: "kv-flags", name: "flags", value: "0", inputmode: "numeric", autocomplete: "off", class: "mono"});
  const saveBtn = h("button", {type: "submit", class: "btn btn-primary", id: "kv-save"}, create ? "Create" : "Save");
  const deleteBtn = create ? null : h("button", {type: "button", class: "btn btn-danger-outline", id: "kv-delete"}, "Delete");
  const cancelLink = h("a", {class: "btn", href: link.kv(create ? folder : parentFolder(key))}, "Cancel");
  const infoEl = h("div", {id: "kv-info"});
  valueInput.setAttribute("aria-describedby", "kv-validation");

  const form = h(
    "form",
    {class: "editor", id: "kv-form", novalidate: true, "aria-labelledby": "page-title"},
    create ? field("Key", keyInput, "Use “/” to create folders, e.g. app/config.json. A name ending in “/” creates a folder.") : null,
    h(
      "div",
      {class: "field"},
      h("div", {class: "field-head"}, h("label", {for: "kv-value"}, "Value"), h("div", {class: "field-tools"}, h("label", {for: "kv-format", class: "inline-label"}, "Format"), formatSel, formatBtn)),
      valueInput,
      validation,
    ),
    h("div", {class: "field-row"}, field("Flags", flagsInput, "Unsigned 64-bit integer stored with the key; 0 if unused.")),
    h("div", {class: "form-actions"}, saveBtn, cancelLink, h("span", {class: "spacer"}), deleteBtn),
  );

  root.append(
    pageHeader(create ? "Create key" : key, {crumbs: create ? [...crumbs(folder, {current: false}), h("span", {"aria-current": "page"}, "New key")] : crumbs(key)}),
    message,
    remoteEl,
    errors.el,
    ...(create ? [form] : editTabs()),
  );

  // --- validation -----------------------------------------------------------
  const check = () => {
    if (state.binary) return {ok: true};
    const fmt = formatSel.value;
    const result = validateValue(fmt, valueInput.value);
    const size = utf8Length(valueInput.value);
    if (size > MAX_VALUE_BYTES) {
      validation.className = "validation invalid";
      validation.textContent = `✗ Value is ${size} bytes; the limit is ${MAX_VALUE_BYTES} bytes.`;
      valueInput.setAttribute("aria-invalid", "true");
      return {ok: false, tooLarge: true, message: `the value is ${size} bytes; the limit is ${MAX_VALUE_BYTES} bytes.`};
    }
    if (fmt === "plain") {
      validation.className = "validation";
      validation.textContent = `Plain text · ${size} byte${size === 1 ? "" : "s"}`;
      valueInput.removeAttribute("aria-invalid");
    } else if (result.ok) {
      validation.className = "validation valid";
      validation.textContent = `✓ Valid ${fmt.toUpperCase()} · ${size} byte${size === 1 ? "" : "s"}`;
      valueInput.removeAttribute("aria-invalid");
    } else {
      validation.className = "validation invalid";
      validation.textContent = `✗ Invalid ${fmt.toUpperCase()}: ${result.message}`;
      valueInput.setAttribute("aria-invalid", "true");
    }
    formatBtn.disabled = fmt === "plain";
    return result;
  };
  let checkTimer = null;
  valueInput.addEventListener("input", () => {
    clearTimeout(checkTimer);
    checkTimer = setTimeout(check, 120);
  });
  scope.add(() => clearTimeout(checkTimer));
  formatSel.addEventListener("change", check);
  formatBtn.addEventListener("click", () => {
    try {
      valueInput.value = formatValue(formatSel.value, valueInput.value);
      check();
    } catch {
      check();
      valueInput.focus();
    }
  });
  form.addEventListener("keydown", (ev) => {
    if ((ev.ctrlKey || ev.metaKey) && ev.key === "s") {
      ev.preventDefault();
      form.requestSubmit();
    }
  });

  const say = (kind, ...children) => message.replaceChildren(notice(kind, ...children));

  // --- value / history tabs (edit mode) --------------------------------------
  function editTabs() {
    const valuePanel = h("div", {class: "editor-layout", id: "kv-panel-value", role: "tabpanel", "aria-labelledby": "kv-tab-value"}, h("div", {id: "kv-editor-slot"}, loading()), infoEl);
    const historyPanel = h("div", {id: "kv-panel-history", role: "tabpanel", "aria-labelledby": "kv-tab-history", hidden: true});
    const tabValue = h("button", {type: "button", role: "tab", id: "kv-tab-value", "aria-controls": "kv-panel-value"}, "Editor");
    const tabHistory = h("button", {type: "button", role: "tab", id: "kv-tab-history", "aria-controls": "kv-panel-history"}, "History");
    let historyScope = null;
    const select = (which) => {
      const history = which === "history";
      tabValue.setAttribute("aria-selected", String(!history));
      tabHistory.setAttribute("aria-selected", String(history));
      valuePanel.hidden = history;
      historyPanel.hidden = !history;
      if (history && !historyScope) {
        historyScope = scope.child();
        renderHistory(historyPanel, historyScope, key, {onRolledBack: () => reloadAfterRollback()});
      } else if (!history && historyScope) {
        historyScope.dispose();
        historyScope = null;
      }
    };
    tabValue.addEventListener("click", () => select("value"));
    tabHistory.addEventListener("click", () => select("history"));
    select(tab === "history" ? "history" : "value");
    return [h("div", {class: "tabs", role: "tablist", "aria-label": "Key views"}, tabValue, tabHistory), valuePanel, historyPanel];
  }

  // After a rollback from the history tab: show the restored value unless the editor holds edits.
  const reloadAfterRollback = async () => {
    if (dirty()) return;
    try {
      const res = await request(`kv/${encodePath(key)}`, {accept: [404], signal: scope.signal});
      const entry = res.status === 404 ? null : (res.data || [])[0];
      if (entry && state.base) fill(entry);
    } catch {
      // the key watch shows the change anyway
    }
  };

  // --- load existing --------------------------------------------------------
  const fill = (entry) => {
    state.base = entry;
    const decoded = decodeValue(entry.Value);
    state.binary = decoded.binary;
    state.baseText = decoded.binary ? bytesToBase64(decoded.bytes) : decoded.text;
    valueInput.value = state.baseText;
    valueInput.readOnly = decoded.binary;
    flagsInput.value = String(entry.Flags ?? 0);
    if (decoded.binary) {
      formatSel.value = "plain";
      formatSel.disabled = true;
      saveBtn.disabled = true;
      validation.className = "validation";
      validation.textContent = `Binary value (${decoded.bytes.length} bytes), shown as base64. Binary values cannot be edited here.`;
    } else {
      formatSel.disabled = false;
      saveBtn.disabled = false;
      formatSel.value = detectFormat(key, decoded.text);
      check();
    }
    state.remote = null;
    remoteEl.replaceChildren();
    drawInfo();
  };

  // Details show the server's current state (lock holder etc.), even while the
  // editor keeps the value that was loaded.
  const drawInfo = () => {
    const loaded = state.base;
    if (!loaded) return;
    const e = state.remote && state.remote !== "deleted" ? state.remote : loaded;
    const modify =
      e === loaded
        ? String(loaded.ModifyIndex)
        : h("span", null, String(loaded.ModifyIndex), h("span", {class: "muted"}, ` (loaded) → ${e.ModifyIndex} now`));
    replace(
      infoEl,
      h(
        "aside",
        {class: "panel info-panel", "aria-labelledby": "kv-info-title"},
        h("h2", {id: "kv-info-title"}, "Details"),
        h(
          "dl",
          {class: "facts"},
          h("dt", null, "Lock"),
          h("dd", {id: "kv-lock"}, e.Session ? h("span", null, "Held by session ", h("a", {href: link.sessions()}, idCode(e.Session)), h("span", {id: "kv-lock-session"})) : h("span", {class: "muted"}, "Not locked")),
          h("dt", null, "Lock index"),
          h("dd", null, String(e.LockIndex ?? 0)),
          h("dt", null, "Create index"),
          h("dd", null, String(e.CreateIndex)),
          h("dt", null, "Modify index"),
          h("dd", {id: "kv-modify-index"}, modify),
        ),
      ),
    );
    if (e.Session) {
      request(`session/info/${encodeURIComponent(e.Session)}`, {signal: scope.signal})
        .then((res) => {
          const s = (res.data || [])[0];
          const slot = document.getElementById("kv-lock-session");
          if (s && slot) slot.textContent = ` (${s.Name ? `“${s.Name}” on ` : "on "}${s.Node})`;
        })
        .catch(() => {});
    }
  };

  const dirty = () => state.base && (valueInput.value !== state.baseText || flagsInput.value.trim() !== String(state.base.Flags ?? 0));

  const loadLatest = async () => {
    if (dirty()) {
      const ok = await confirmAction({
        title: "Discard your edits?",
        body: "Loading the latest value replaces what is in the editor.",
        confirmLabel: "Load latest",
      });
      if (!ok) return;
    }
    try {
      const res = await request(`kv/${encodePath(key)}`, {accept: [404], signal: scope.signal});
      if (res.status === 404 || !res.data || !res.data[0]) {
        say("warning", `“${key}” no longer exists. Use “Create” to add it again.`);
        return;
      }
      fill(res.data[0]);
      say("info", `Loaded the latest value (modify index ${res.data[0].ModifyIndex}).`);
    } catch (err) {
      if (scope.active) message.replaceChildren(errorNotice(err, "load the key"));
    }
  };

  const showRemote = () => {
    if (!state.remote) return remoteEl.replaceChildren();
    const deleted = state.remote === "deleted";
    remoteEl.replaceChildren(
      notice(
        "warning",
        h("strong", null, deleted ? "This key was deleted by someone else. " : "This key was changed by someone else. "),
        deleted
          ? "Saving will not recreate it over the deletion."
          : `It is now at modify index ${state.remote.ModifyIndex}; you are editing index ${state.base.ModifyIndex}. Saving will be refused until you load the latest value.`,
        " ",
        deleted ? null : h("button", {type: "button", class: "btn btn-small", onclick: loadLatest}, "Load latest value"),
      ),
    );
  };

  // Watch the key so a concurrent change is visible while editing. The editor
  // content and the CAS index are NOT updated automatically.
  let keyWatch = null;
  const startWatch = () => {
    keyWatch = scope.child();
    watch(keyWatch, `kv/${encodePath(key)}`, {
      accept: [404],
      onData: (data, res) => {
        errors.clear();
        const entry = res.status === 404 ? null : (data || [])[0] || null;
        if (!state.base) {
          if (!entry) {
            replace(
              document.getElementById("kv-editor-slot"),
              notice("warning", `There is no key “${key}”. `, h("a", {href: link.kvCreate(parentFolder(key))}, "Create a key"), "."),
            );
            return;
          }
          replace(document.getElementById("kv-editor-slot"), form);
          fill(entry);
          return;
        }
        if (state.saving) return; // our own write; fill() re-syncs after it
        if (!entry) {
          state.remote = "deleted";
        } else if (cmpIndex(entry.ModifyIndex, state.base.ModifyIndex) !== 0) {
          state.remote = entry;
        } else {
          state.remote = null;
        }
        showRemote();
        drawInfo();
      },
      onError: (err) => errors.show(err, `read “${key}”`),
    });
  };

  // --- save -----------------------------------------------------------------
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (state.saving || state.binary) return;
    const targetKey = create ? keyInput.value : key;
    if (create) {
      if (!targetKey.trim()) return say("error", "Enter a key name.");
      if (targetKey.startsWith("/")) return say("error", "Key names cannot start with “/”.");
    }
    const flags = parseU64(flagsInput.value);
    if (flags === null) {
      flagsInput.setAttribute("aria-invalid", "true");
      flagsInput.focus();
      return say("error", "Flags must be an unsigned 64-bit integer (0 – 18446744073709551615).");
    }
    flagsInput.removeAttribute("aria-invalid");
    const isFolder = create && targetKey.endsWith("/");
    const body = isFolder ? "" : valueInput.value;
    if (!isFolder) {
      const v = check();
      if (!v.ok) {
        valueInput.focus();
        if (v.tooLarge) return say("error", `Not saved: ${v.message}`);
        return say("error", `Not saved: the value is not valid ${formatSel.value.toUpperCase()}. Fix it or choose “Plain text”.`);
      }
    }
    const cas = create ? "0" : String(state.base.ModifyIndex);
    state.saving = true;
    saveBtn.disabled = true;
    saveBtn.setAttribute("aria-busy", "true");
    try {
      const res = await request(`kv/${encodePath(targetKey)}`, {method: "PUT", query: {cas, flags}, body});
      if (res.data === true) {
        if (create) {
          state.done = true;
          setFlash("success", isFolder ? `Created folder “${targetKey}”.` : `Created “${targetKey}”.`);
          navigate(`/kv/${encodePath(targetKey)}`);
          return;
        }
        const after = await request(`kv/${encodePath(key)}`, {accept: [404], signal: scope.signal});
        const entry = after.status === 404 ? null : (after.data || [])[0];
        if (entry) fill(entry);
        if (entry && decodeValue(entry.Value).text !== body) {
          say("warning", "Saved, but the key changed again right after your save. The editor now shows the latest value.");
        } else {
          say("success", `Saved “${key}” (modify index ${entry ? entry.ModifyIndex : "?"}).`);
        }
        return;
      }
      // CAS refused.
      if (create) {
        say("error", h("strong", null, "Not created: "), `a key named “${targetKey}” already exists. Nothing was overwritten. `, h("a", {href: link.kv(targetKey)}, "Open the existing key"), ".");
        return;
      }
      let current = null;
      try {
        const now = await request(`kv/${encodePath(key)}`, {accept: [404], signal: scope.signal});
        current = now.status === 404 ? "deleted" : (now.data || [])[0] || "deleted";
      } catch {
        current = null;
      }
      if (current) state.remote = current;
      remoteEl.replaceChildren(); // the error below says it all
      say(
        "error",
        h("strong", null, "Not saved: this key was changed by someone else after you opened it. "),
        current === "deleted"
          ? "It has been deleted. "
          : current
            ? `You loaded modify index ${state.base.ModifyIndex}; it is now ${current.ModifyIndex}. `
            : "",
        "Your edits are still in the editor and nothing was overwritten. Load the latest value, re-apply your change and save again.",
        " ",
        current && current !== "deleted" ? h("button", {type: "button", class: "btn btn-small", id: "kv-load-latest", onclick: loadLatest}, "Load latest value") : null,
      );
    } catch (err) {
      if (err instanceof ApiError && err.status === 413) say("error", "Not saved: the value is too large for the server (limit 512 KiB).");
      else message.replaceChildren(errorNotice(err, "save the key"));
    } finally {
      state.saving = false;
      saveBtn.disabled = state.binary;
      saveBtn.removeAttribute("aria-busy");
    }
  });

  // --- delete ---------------------------------------------------------------
  if (deleteBtn) {
    deleteBtn.addEventListener("click", async () => {
      const ok = await confirmAction({
        title: "Delete key?",
        body: `“${key}” will be deleted. This cannot be undone.`,
        confirmLabel: "Delete",
      });
      if (!ok) return;
      // Stop watching first: the key is about to disappear.
      if (keyWatch) keyWatch.dispose();
      try {
        const res = await request(`kv/${encodePath(key)}`, {method: "DELETE", query: {cas: String(state.base.ModifyIndex)}});
        if (res.data === true) {
          state.done = true;
          setFlash("success", `Deleted “${key}”.`);
          navigate(`/kv/${encodePath(parentFolder(key))}`);
          return;
        }
        say("error", h("strong", null, "Not deleted: "), "the key was changed by someone else after you opened it. Load the latest value and try again.");
      } catch (err) {
        message.replaceChildren(errorNotice(err, "delete the key"));
      }
      startWatch();
    });
  }

  if (setLeaveGuard) {
    setLeaveGuard(() => {
      if (state.done) return null;
      const edited = create ? valueInput.value !== "" || keyInput.value !== folder : dirty();
      return edited ? `Your changes to “${create ? keyInput.value || "the new key" : key}” have not been saved.` : null;
    });
  }

  if (create) {
    formatSel.value = detectFormat(folder, "");
    keyInput.addEventListener("change", () => {
      if (!valueInput.value) formatSel.value = detectFormat(keyInput.value, "");
      check();
    });
    check();
  } else {
    startWatch();
  }
}
