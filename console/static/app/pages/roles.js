// Roles: built-in and custom, the permission editor, clone, history, and JSON export and import.
import { api } from "../api.js";
import { formatTime, h, toast } from "../dom.js";
import { form, openDialog } from "../forms.js";
import { t } from "../i18n.js";
import { can } from "../session.js";
import { badge, table } from "../table.js";

export async function render({ redraw }) {
  const [roles, catalogue] = await Promise.all([
    api("GET", "/api/roles").then((r) => r.items), api("GET", "/api/permissions").then((r) => r.items),
  ]);
  const manage = can("roles:manage");
  return h("section", { class: "page" },
    h("div", { class: "page-head" }, h("h1", {}, t("nav.roles")),
      manage ? h("button", { type: "button", class: "primary", id: "new-role", on: { click: () => editor(null, catalogue, redraw) } }, t("roles.new")) : null,
      h("button", { type: "button", class: "ghost", on: { click: exportRoles } }, t("roles.export")),
      manage ? h("button", { type: "button", class: "ghost", on: { click: () => importRoles(redraw) } }, t("roles.import")) : null,
      h("button", { type: "button", class: "ghost", on: { click: showHistory } }, t("roles.history"))),
    table([
      { label: t("roles.name"), cell: (r) => h("span", {}, r.name, " ", r.builtin ? badge(t("roles.builtin")) : badge(t("roles.custom"), "accent")) },
      { label: t("roles.description"), cell: (r) => r.description || "—" },
      { label: t("roles.permissions"), cell: (r) => (r.permissions.includes("*") ? t("overview.everything") : r.permissions.join(", ")) },
      { label: t("common.actions"), cell: (r) => h("div", { class: "row-actions" },
        manage && !r.builtin ? h("button", { type: "button", class: "ghost", on: { click: () => editor(r, catalogue, redraw) } }, t("common.edit")) : null,
        manage ? h("button", { type: "button", class: "ghost", on: { click: () => clone(r, redraw) } }, t("roles.clone")) : null,
        manage && !r.builtin ? h("button", { type: "button", class: "ghost danger", on: { click: () => remove(r, redraw) } }, t("common.delete")) : null) },
    ], roles, t("roles.none")));
}

function editor(role, catalogue, redraw) {
  const close = openDialog(role ? t("roles.edit", { name: role.name }) : t("roles.new"), form({
    fields: [
      { name: "name", label: t("roles.name"), required: true, value: role ? role.name : "", hint: t("roles.name_hint") },
      { name: "description", label: t("roles.description"), type: "textarea", rows: 2, value: role ? role.description : "" },
      { name: "permissions", label: t("roles.permissions"), type: "checkboxes", required: true, value: role ? role.permissions : [],
        options: catalogue.map((p) => ({ value: p.name, label: p.name, hint: t(`permission.${p.name}`) })) },
    ],
    submitLabel: role ? t("common.save") : t("roles.create"), onCancel: () => close(),
    onSubmit: async (values) => {
      if (role) await api("PATCH", `/api/roles/${role.id}`, values);
      else await api("POST", "/api/roles", values);
      close();
      toast(t("roles.saved", { name: values.name }));
      redraw();
    },
  }));
}

function clone(role, redraw) {
  const close = openDialog(t("roles.clone_title", { name: role.name }), form({
    fields: [{ name: "name", label: t("roles.new_name"), required: true, value: `${role.name}-copy` }],
    submitLabel: t("roles.clone"), onCancel: () => close(),
    onSubmit: async (values) => {
      await api("POST", `/api/roles/${role.id}/clone`, values);
      close();
      redraw();
    },
  }));
}

async function remove(role, redraw) {
  if (!window.confirm(t("roles.confirm_delete", { name: role.name }))) return;
  await api("DELETE", `/api/roles/${role.id}`).then(redraw, (e) => toast(e.message, "error"));
}

async function exportRoles() {
  const document_ = await api("GET", "/api/roles/export");
  const link = h("a", {
    href: URL.createObjectURL(new Blob([JSON.stringify(document_, null, 2)], { type: "application/json" })),
    download: "warden-roles.json",
  });
  document.body.appendChild(link);
  link.click();
  link.remove();
}

function importRoles(redraw) {
  const close = openDialog(t("roles.import"), form({
    fields: [{ name: "document", label: t("roles.import_document"), type: "textarea", rows: 12, required: true, hint: t("roles.import_hint") }],
    submitLabel: t("roles.import"), onCancel: () => close(),
    onSubmit: async (values) => {
      let parsed;
      try {
        parsed = JSON.parse(values.document);
      } catch (error) {
        throw new Error(t("roles.not_json", { problem: error.message }));
      }
      const result = await api("POST", "/api/roles/import", parsed);
      close();
      toast(t("roles.imported", { created: result.roles_created, updated: result.roles_updated, assignments: result.assignments_added }));
      redraw();
    },
  }));
}

async function showHistory() {
  const [history, users] = await Promise.all([
    api("GET", "/api/roles/history").then((r) => r.items),
    can("users:read") ? api("GET", "/api/users?limit=500").then((r) => r.items) : Promise.resolve([]),
  ]);
  const who = (id) => (users.find((u) => u.id === id) || { email: id || "—" }).email;
  const close = openDialog(t("roles.history"), table([
    { label: t("common.when"), cell: (e) => formatTime(e.at) },
    { label: t("roles.actor"), cell: (e) => who(e.actor_id) },
    { label: t("roles.action"), cell: (e) => e.action },
    { label: t("roles.change"), cell: (e) => h("code", {}, describe(e)) },
  ], history, t("roles.no_history")), h("div", { class: "actions" }, h("button", { type: "button", class: "ghost", on: { click: () => close() } }, t("common.close"))));
}

function describe(entry) {
  const name = (state) => (state && (state.name || state.role_id)) || "";
  return [name(entry.before_state), name(entry.after_state)].filter(Boolean).join(" → ");
}
