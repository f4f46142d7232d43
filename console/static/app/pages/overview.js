// The signed-in home: who you are, what your roles let you do, where to go next.
import { api } from "../api.js";
import { h } from "../dom.js";
import { t } from "../i18n.js";

export async function render({ me }) {
  const pages = (await api("GET", "/api/console/pages")).items.filter((page) => page.path !== "/");
  const permissions = me.permissions.includes("*") ? [t("overview.everything")] : me.permissions;
  return h("section", { class: "page" },
    h("h1", {}, t("nav.overview")),
    h("p", {}, t("overview.signed_in_as", { name: me.user.name || me.user.email, email: me.user.email })),
    h("div", { class: "cards" },
      h("div", { class: "panel" }, h("h2", {}, t("overview.your_permissions")),
        permissions.length ? h("ul", { id: "permissions" }, permissions.map((p) => h("li", {}, p)))
          : h("p", { class: "muted" }, t("overview.no_permissions")),
        Object.keys(me.team_permissions).length ? h("p", { class: "muted" }, t("overview.team_permissions",
          { count: Object.keys(me.team_permissions).length })) : null),
      h("div", { class: "panel" }, h("h2", {}, t("overview.go_to")),
        h("ul", { class: "links" }, pages.map((page) => h("li", {}, h("a", { href: page.path, "data-link": true }, t(page.label))))),
        h("p", { class: "muted" }, t("overview.api_docs"), " ", h("a", { href: "/api/openapi.json" }, "/api/openapi.json")))));
}
