// Users: the list, creating one (with global roles), disabling, deleting, and role assignments per user.
import { api } from "../api.js";
import { formatTime, h, toast } from "../dom.js";
import { form, openDialog } from "../forms.js";
import { t } from "../i18n.js";
import { can } from "../session.js";
import { badge, table } from "../table.js";

export async function render({ redraw }) {
  const [users, roles] = await Promise.all([
    api("GET", "/api/users?limit=500"),
    can("roles:read") ? api("GET", "/api/roles").then((r) => r.items) : Promise.resolve([]),
  ]);
  const manage = can("users:manage");
  const columns = [
    { label: t("users.email"), cell: (u) => u.email },
    { label: t("users.name"), cell: (u) => u.name || "—" },
    { label: t("users.status"), cell: (u) => (u.disabled ? badge(t("users.disabled"), "warn") : badge(t("users.active"), "ok")) },
    { label: t("common.created"), cell: (u) => formatTime(u.created_at) },
    { label: t("common.actions"), cell: (u) => h("div", { class: "row-actions" },
      can("roles:read") ? h("button", { type: "button", class: "ghost", on: { click: () => showRoles(u, roles) } }, t("users.roles")) : null,
      manage ? h("button", { type: "button", class: "ghost", on: { click: () => setDisabled(u, !u.disabled, redraw) } },
        u.disabled ? t("users.enable") : t("users.disable")) : null,
      manage ? h("button", { type: "button", class: "ghost danger", on: { click: () => remove(u, redraw) } }, t("common.delete")) : null) },
  ];
  return h("section", { class: "page" },
    h("div", { class: "page-head" }, h("h1", {}, t("nav.users")),
      manage ? h("button", { type: "button", class: "primary", id: "new-user", on: { click: () => create(roles, redraw) } }, t("users.new")) : null),
    h("p", { class: "muted" }, t("users.count", { count: users.total })),
    table(columns, users.items, t("users.none")));
}

function create(roles, redraw) {
  const fields = [
    { name: "email", label: t("users.email"), type: "email", required: true },
    { name: "name", label: t("users.name") },
    { name: "password", label: t("users.password"), type: "password", hint: t("users.password_hint"), autocomplete: "new-password" },
  ];
  if (can("roles:manage")) {
    fields.push({ name: "roles", label: t("users.global_roles"), type: "checkboxes",
      options: roles.map((r) => ({ value: r.id, label: r.name, hint: r.description })) });
  }
  const close = openDialog(t("users.new"), form({
    fields, submitLabel: t("users.create"), onCancel: () => close(),
    onSubmit: async (values) => {
      const body = { email: values.email, name: values.name, roles: values.roles || [] };
      if (values.password) body.password = values.password;
      const user = await api("POST", "/api/users", body);
      close();
      toast(t("users.created", { email: user.email }));
      redraw();
    },
  }));
}

async function setDisabled(user, disabled, redraw) {
  try {
    await api("PATCH", `/api/users/${user.id}`, { disabled });
    redraw();
  } catch (error) {
    toast(error.message, "error");
  }
}

async function remove(user, redraw) {
  if (!window.confirm(t("users.confirm_delete", { email: user.email }))) return;
  try {
    await api("DELETE", `/api/users/${user.id}`);
    toast(t("users.deleted", { email: user.email }));
    redraw();
  } catch (error) {
    toast(error.message, "error");
  }
}

// A user's role assignments: global or within a team; adding and removing them needs roles:manage.
async function showRoles(user, roles) {
  const body = h("div", { class: "assignments" });
  const close = openDialog(t("users.roles_of", { email: user.email }), body);
  const teams = await api("GET", "/api/teams").then((r) => r.items);
  const roleName = (id) => (roles.find((r) => r.id === id) || { name: id }).name;
  const teamName = (id) => (teams.find((team) => team.id === id) || { name: id }).name;
  async function refresh() {
    const assignments = (await api("GET", `/api/users/${user.id}/roles`)).items;
    body.replaceChildren(
      table([
        { label: t("users.role"), cell: (a) => roleName(a.role_id) },
        { label: t("users.scope"), cell: (a) => (a.team_id ? t("users.in_team", { team: teamName(a.team_id) }) : t("users.everywhere")) },
        { label: t("common.actions"), cell: (a) => (can("roles:manage")
          ? h("button", { type: "button", class: "ghost danger", on: { click: async () => {
            await api("DELETE", `/api/users/${user.id}/roles/${a.id}`).catch((e) => toast(e.message, "error"));
            refresh();
          } } }, t("common.remove")) : "") },
      ], assignments, t("users.no_roles")),
      can("roles:manage") ? form({
        fields: [
          { name: "role_id", label: t("users.role"), type: "select", required: true,
            options: [{ value: "", label: t("common.choose") }, ...roles.map((r) => ({ value: r.id, label: r.name }))] },
          { name: "team_id", label: t("users.scope"), type: "select",
            options: [{ value: "", label: t("users.everywhere") }, ...teams.map((team) => ({ value: team.id, label: t("users.in_team", { team: team.name }) }))] },
        ],
        submitLabel: t("users.assign"),
        onSubmit: async (values) => {
          await api("POST", `/api/users/${user.id}/roles`, { role_id: values.role_id, team_id: values.team_id || null });
          toast(t("users.assigned"));
          refresh();
        },
      }) : null,
      h("div", { class: "actions" }, h("button", { type: "button", class: "ghost", on: { click: close } }, t("common.close"))));
  }
  await refresh();
}
