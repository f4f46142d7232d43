// MCP servers: registered upstreams with their health, circuit breaker and tools; the registration wizard. At
// /servers/<name>: one server's edit form, its tool-level access rules, and its tool calls as they run.
import { api } from "../api.js";
import { h, toast } from "../dom.js";
import { t } from "../i18n.js";
import { can } from "../session.js";
import { badge, table } from "../table.js";
import { openWizard } from "../wizard.js";
import { renderServer } from "../server_detail.js";

const HEALTH = { healthy: "ok", per_user: "accent", connecting: "", degraded: "warn", down: "warn", disabled: "" };

export async function render({ path, redraw }) {
  const name = path.split("/")[2];
  if (name) return renderServer(decodeURIComponent(name), redraw);
  const servers = (await api("GET", "/api/mcp/servers")).items;
  const manage = can("mcp_servers:manage");
  return h("section", { class: "page" },
    h("div", { class: "page-head" }, h("h1", {}, t("nav.servers")),
      manage ? h("button", { type: "button", class: "primary", id: "new-server", on: { click: () => openWizard(null, redraw) } }, t("servers.register")) : null),
    table([
      { label: t("servers.name"), cell: (s) => h("span", {}, h("a", { href: `/servers/${encodeURIComponent(s.name)}`, "data-link": true }, h("strong", {}, s.label)),
        s.label !== s.name ? [" ", h("code", { class: "muted" }, s.name)] : null, s.enabled ? "" : [" ", badge(t("servers.disabled"), "warn")]) },
      { label: t("wizard.transport"), cell: (s) => h("span", {}, t(`transport.${s.transport}`), h("br"), h("code", { class: "muted" }, s.url || [s.command, ...s.args].join(" "))) },
      { label: t("wizard.auth_mode"), cell: (s) => `${t(`auth_mode.${s.auth.mode}`)}${s.auth.mode === "none" ? "" : ` · ${t(`ownership.${s.auth.ownership}`)}`}` },
      { label: t("servers.health"), cell: (s) => h("span", { class: "health", dataset: { health: s.health } }, badge(t(`health.${s.health}`), HEALTH[s.health] || ""),
        s.last_error ? h("small", { class: "muted" }, ` ${s.last_error}`) : null) },
      { label: t("servers.breaker"), cell: (s) => badge(t(`breaker.${s.breaker}`), s.breaker === "closed" ? "ok" : "warn") },
      { label: t("servers.tools"), cell: (s) => String(s.tool_count) },
      { label: t("common.actions"), cell: (s) => (manage ? h("div", { class: "row-actions" },
        h("button", { type: "button", class: "ghost", on: { click: () => setEnabled(s, !s.enabled, redraw) } }, s.enabled ? t("users.disable") : t("users.enable")),
        h("button", { type: "button", class: "ghost danger", on: { click: () => remove(s, redraw) } }, t("common.delete"))) : "") },
    ], servers, t("servers.none")));
}

async function setEnabled(server, enabled, redraw) {
  await api("PATCH", `/api/mcp/servers/${server.name}`, { enabled }).then(redraw, (e) => toast(e.message, "error"));
}

async function remove(server, redraw) {
  if (!window.confirm(t("servers.confirm_delete", { name: server.name }))) return;
  await api("DELETE", `/api/mcp/servers/${server.name}`).then(redraw, (e) => toast(e.message, "error"));
}
