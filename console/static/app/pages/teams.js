// Teams: the list and, at /teams/<id>, one team's details, members and the roles members hold within it.
import { api } from "../api.js";
import { formatTime, h, toast } from "../dom.js";
import { form, openDialog } from "../forms.js";
import { t } from "../i18n.js";
import { can, navigate } from "../session.js";
import { table } from "../table.js";

export async function render({ path, redraw }) {
  const teamId = path.split("/")[2];
  return teamId ? renderTeam(decodeURIComponent(teamId), redraw) : renderList(redraw);
}

async function renderList(redraw) {
  const teams = (await api("GET", "/api/teams")).items;
  return h("section", { class: "page" },
    h("div", { class: "page-head" }, h("h1", {}, t("nav.teams")),
      can("teams:manage") ? h("button", { type: "button", class: "primary", id: "new-team", on: { click: () => create(redraw) } }, t("teams.new")) : null),
    table([
      { label: t("teams.name"), cell: (team) => h("a", { href: `/teams/${encodeURIComponent(team.id)}`, "data-link": true }, team.name) },
      { label: t("teams.description"), cell: (team) => team.description || "—" },
      { label: t("common.created"), cell: (team) => formatTime(team.created_at) },
    ], teams, t("teams.none")));
}

function create(redraw) {
  const close = openDialog(t("teams.new"), form({
    fields: [
      { name: "name", label: t("teams.name"), required: true },
      { name: "description", label: t("teams.description"), type: "textarea" },
    ],
    submitLabel: t("teams.create"), onCancel: () => close(),
    onSubmit: async (values) => {
      const team = await api("POST", "/api/teams", values);
      close();
      toast(t("teams.created", { name: team.name }));
      redraw();
    },
  }));
}

async function renderTeam(teamId, redraw) {
  const [team, members] = await Promise.all([
    api("GET", `/api/teams/${teamId}`), api("GET", `/api/teams/${teamId}/members`).then((r) => r.items),
  ]);
  const manage = can("teams:manage", teamId);
  const section = h("section", { class: "page" },
    h("p", {}, h("a", { href: "/teams", "data-link": true }, `← ${t("nav.teams")}`)),
    h("div", { class: "page-head" }, h("h1", {}, team.name),
      manage ? h("button", { type: "button", class: "ghost", on: { click: () => edit(team, redraw) } }, t("common.edit")) : null,
      can("teams:manage") ? h("button", { type: "button", class: "ghost danger", on: { click: () => remove(team) } }, t("common.delete")) : null),
    team.description ? h("p", {}, team.description) : null,
    h("h2", {}, t("teams.members")),
    table([
      { label: t("users.email"), cell: (u) => u.email },
      { label: t("users.name"), cell: (u) => u.name || "—" },
      { label: t("common.actions"), cell: (u) => (manage ? h("button", { type: "button", class: "ghost danger", on: { click: async () => {
        await api("DELETE", `/api/teams/${teamId}/members/${u.id}`).then(redraw, (e) => toast(e.message, "error"));
      } } }, t("common.remove")) : "") },
    ], members, t("teams.no_members")));
  if (manage && can("users:read")) section.appendChild(await addMemberForm(teamId, members, redraw));
  if (can("roles:manage") && can("roles:read") && members.length) section.appendChild(await scopedRoleForm(teamId, members));
  return section;
}

async function addMemberForm(teamId, members, redraw) {
  const users = (await api("GET", "/api/users?limit=500")).items.filter((u) => !members.some((m) => m.id === u.id));
  return h("div", { class: "panel" }, h("h2", {}, t("teams.add_member")), users.length ? form({
    fields: [{ name: "user_id", label: t("teams.user"), type: "select", required: true,
      options: [{ value: "", label: t("common.choose") }, ...users.map((u) => ({ value: u.id, label: u.email }))] }],
    submitLabel: t("teams.add"),
    onSubmit: async (values) => {
      await api("PUT", `/api/teams/${teamId}/members/${values.user_id}`);
      redraw();
    },
  }) : h("p", { class: "muted" }, t("teams.everyone_is_member")));
}

// Scoped roles: a role held only within this team (e.g. team_manager for this team alone).
async function scopedRoleForm(teamId, members) {
  const roles = (await api("GET", "/api/roles")).items.filter((r) => !r.permissions.includes("*"));
  return h("div", { class: "panel" }, h("h2", {}, t("teams.scoped_role")), h("p", { class: "muted" }, t("teams.scoped_role_hint")), form({
    fields: [
      { name: "user_id", label: t("teams.user"), type: "select", required: true,
        options: [{ value: "", label: t("common.choose") }, ...members.map((u) => ({ value: u.id, label: u.email }))] },
      { name: "role_id", label: t("users.role"), type: "select", required: true,
        options: [{ value: "", label: t("common.choose") }, ...roles.map((r) => ({ value: r.id, label: r.name }))] },
    ],
    submitLabel: t("users.assign"),
    onSubmit: async (values) => {
      await api("POST", `/api/users/${values.user_id}/roles`, { role_id: values.role_id, team_id: teamId });
      toast(t("users.assigned"));
    },
  }));
}

function edit(team, redraw) {
  const close = openDialog(t("teams.edit"), form({
    fields: [
      { name: "name", label: t("teams.name"), required: true, value: team.name },
      { name: "description", label: t("teams.description"), type: "textarea", value: team.description },
    ],
    onCancel: () => close(),
    onSubmit: async (values) => {
      await api("PATCH", `/api/teams/${team.id}`, values);
      close();
      redraw();
    },
  }));
}

async function remove(team) {
  if (!window.confirm(t("teams.confirm_delete", { name: team.name }))) return;
  try {
    await api("DELETE", `/api/teams/${team.id}`);
    toast(t("teams.deleted", { name: team.name }));
    navigate("/teams");
  } catch (error) {
    toast(error.message, "error");
  }
}
