// API keys: create (the secret is shown once, with a copy button), rotate, revoke.
import { api } from "../api.js";
import { formatTime, h, toast } from "../dom.js";
import { form, openDialog } from "../forms.js";
import { t } from "../i18n.js";
import { can, canSomewhere } from "../session.js";
import { badge, table } from "../table.js";

const SURFACES = ["ai", "mcp", "management"];

export async function render({ me, redraw }) {
  const [keys, teams] = await Promise.all([
    api("GET", "/api/keys").then((r) => r.items), api("GET", "/api/teams").then((r) => r.items),
  ]);
  const mayCreate = can("keys:create") || canSomewhere("keys:manage");
  const teamName = (id) => (teams.find((team) => team.id === id) || { name: id }).name;
  const manages = (key) => key.owner_user_id === me.user.id || can("keys:manage", key.owner_team_id);
  return h("section", { class: "page" },
    h("div", { class: "page-head" }, h("h1", {}, t("nav.keys")),
      mayCreate ? h("button", { type: "button", class: "primary", id: "new-key", on: { click: () => create(me, teams, redraw) } }, t("keys.new")) : null),
    h("p", { class: "muted" }, t("keys.intro")),
    table([
      { label: t("keys.name"), cell: (k) => k.name },
      { label: t("keys.prefix"), cell: (k) => h("code", {}, `${k.prefix}…`) },
      { label: t("keys.owner"), cell: (k) => (k.owner_team_id ? t("keys.team_owned", { team: teamName(k.owner_team_id) })
        : k.owner_user_id === me.user.id ? t("keys.you") : k.owner_user_id) },
      { label: t("keys.surfaces"), cell: (k) => k.surfaces.map((s) => badge(t(`surface.${s}`))) },
      { label: t("keys.state"), cell: (k) => badge(t(`key_state.${k.state}`), k.state === "active" ? "ok" : "warn") },
      { label: t("keys.expires"), cell: (k) => (k.expires_at ? formatTime(k.expires_at) : t("keys.never")) },
      { label: t("keys.last_used"), cell: (k) => formatTime(k.last_used_at) },
      { label: t("common.actions"), cell: (k) => (manages(k) && k.state !== "revoked" ? h("div", { class: "row-actions" },
        h("button", { type: "button", class: "ghost", on: { click: () => rotate(k, redraw) } }, t("keys.rotate")),
        h("button", { type: "button", class: "ghost danger", on: { click: () => revoke(k, redraw) } }, t("keys.revoke"))) : "") },
    ], keys, t("keys.none")));
}

function create(me, teams, redraw) {
  const owners = [{ value: "", label: t("keys.you") },
    ...teams.filter((team) => can("keys:manage", team.id)).map((team) => ({ value: team.id, label: t("keys.team_owned", { team: team.name }) }))];
  const fields = [
    { name: "name", label: t("keys.name"), required: true, hint: t("keys.name_hint") },
    { name: "surfaces", label: t("keys.surfaces"), type: "checkboxes", required: true, value: ["ai", "mcp"],
      options: SURFACES.map((s) => ({ value: s, label: t(`surface.${s}`), hint: t(`surface.${s}.hint`) })) },
    { name: "allowed_models", label: t("keys.allowed_models"), hint: t("keys.allowed_models_hint") },
    { name: "expires_in_days", label: t("keys.expires_in_days"), type: "number", min: 1, max: 3650, hint: t("keys.expires_hint") },
    { name: "pinned_accounts", label: t("keys.pinned_accounts"), type: "textarea", rows: 2, hint: t("keys.pinned_hint") },
  ];
  if (owners.length > 1) fields.splice(1, 0, { name: "owner_team_id", label: t("keys.owner"), type: "select", options: owners });
  const close = openDialog(t("keys.new"), form({
    fields, submitLabel: t("keys.create"), onCancel: () => close(),
    onSubmit: async (values) => {
      const body = { name: values.name, surfaces: values.surfaces };
      if (values.owner_team_id) body.owner_team_id = values.owner_team_id;
      if (values.allowed_models) body.allowed_models = values.allowed_models.split(",").map((m) => m.trim()).filter(Boolean);
      if (values.expires_in_days !== null && values.expires_in_days !== undefined) body.expires_in_days = values.expires_in_days;
      if (values.pinned_accounts) body.pinned_accounts = pins(values.pinned_accounts);
      const issued = await api("POST", "/api/keys", body);
      close();
      showSecretOnce(issued, redraw);
    },
  }));
}

// "server=label" lines -> {server: label}; a malformed line is refused by naming it.
function pins(text) {
  const result = {};
  for (const line of text.split(/\n|,/).map((l) => l.trim()).filter(Boolean)) {
    const [server, label] = line.split("=").map((part) => (part || "").trim());
    if (!server || !label) {
      const error = new Error(t("keys.bad_pin", { line }));
      throw error;
    }
    result[server] = label;
  }
  return result;
}

// The secret exists in the page only while this dialog is open; closing it drops it for good.
function showSecretOnce(issued, redraw) {
  const secret = h("input", { id: "key-secret", readonly: true, value: issued.secret, class: "secret", "aria-label": t("keys.secret") });
  const copied = h("span", { class: "muted", role: "status" });
  const close = openDialog(t("keys.created_title", { name: issued.name }),
    h("p", { class: "warning" }, t("keys.secret_once")),
    h("div", { class: "copy-row" }, secret,
      h("button", { type: "button", class: "primary", id: "copy-secret", on: { click: async () => {
        secret.select();
        try {
          await navigator.clipboard.writeText(secret.value);
        } catch {
          document.execCommand("copy");
        }
        copied.textContent = t("keys.copied");
      } } }, t("keys.copy"))),
    copied,
    h("div", { class: "actions" }, h("button", { type: "button", class: "primary", id: "secret-done", on: { click: () => close() } }, t("keys.done"))));
  document.querySelector("dialog.dialog").addEventListener("close", () => {
    secret.value = "";
    redraw();
  });
}

function rotate(key, redraw) {
  const close = openDialog(t("keys.rotate_title", { name: key.name }), h("p", {}, t("keys.rotate_text")), form({
    fields: [{ name: "grace_hours", label: t("keys.grace_hours"), type: "number", min: 0, max: 2160, hint: t("keys.grace_hint") }],
    submitLabel: t("keys.rotate"), onCancel: () => close(),
    onSubmit: async (values) => {
      const issued = await api("POST", `/api/keys/${key.id}/rotate`, values.grace_hours === null ? {} : { grace_hours: values.grace_hours });
      close();
      showSecretOnce(issued, redraw);
    },
  }));
}

async function revoke(key, redraw) {
  if (!window.confirm(t("keys.confirm_revoke", { name: key.name }))) return;
  await api("POST", `/api/keys/${key.id}/revoke`).then(() => { toast(t("keys.revoked", { name: key.name })); redraw(); },
    (e) => toast(e.message, "error"));
}
