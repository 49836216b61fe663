// ACL token entry. The token lives in localStorage and is sent as X-Consul-Token.
import {settings} from "../api.js";
import {field, h, notice, pageHeader} from "../dom.js";

export function render({root}) {
  const input = h("input", {
    type: "password",
    id: "acl-token",
    name: "token",
    value: settings.token,
    autocomplete: "off",
    spellcheck: "false",
    class: "mono",
    placeholder: "SecretID of an ACL token",
  });
  const show = h("input", {type: "checkbox", id: "acl-token-show"});
  show.addEventListener("change", () => {
    input.type = show.checked ? "text" : "password";
  });
  const status = h("div", {class: "flash", "aria-live": "polite", id: "token-status"});
  const current = () =>
    settings.token
      ? notice("info", "A token is set. Every API request carries it in the X-Consul-Token header.")
      : notice("info", "No token is set: requests are anonymous (the agent's default token applies).");
  const currentEl = h("div", {id: "token-current"}, current());

  const form = h(
    "form",
    {
      class: "form-card",
      "aria-labelledby": "page-title",
      onsubmit: (ev) => {
        ev.preventDefault();
        settings.token = input.value.trim();
        currentEl.replaceChildren(current());
        status.replaceChildren(notice("success", settings.token ? "Token saved in this browser." : "Token cleared."));
      },
    },
    field("ACL token", input, "Stored only in this browser (localStorage). Leave empty to use anonymous access."),
    h("div", {class: "field field-inline"}, show, h("label", {for: "acl-token-show"}, "Show token")),
    h(
      "div",
      {class: "form-actions"},
      h("button", {type: "submit", class: "btn btn-primary", id: "token-save"}, "Save token"),
      h(
        "button",
        {
          type: "button",
          class: "btn",
          id: "token-clear",
          onclick: () => {
            input.value = "";
            settings.token = "";
            currentEl.replaceChildren(current());
            status.replaceChildren(notice("success", "Token cleared."));
          },
        },
        "Clear token",
      ),
    ),
  );
  root.append(
    pageHeader("ACL token", {subtitle: "The token the UI uses for the HTTP API. Requests refused by ACLs show a “Permission denied (403)” message."}),
    currentEl,
    status,
    form,
  );
}
