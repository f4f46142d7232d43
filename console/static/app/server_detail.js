// One registered MCP server: its state, the edit form (only the chosen auth mode's fields; stored secrets are
// never shown and kept unless replaced), the tool-level access rules that name its tools, why a tool is or is
// not in a key's catalog, and its tool calls as they run (progress events as they arrive), then as audited.
import { api } from "./api.js";
import { authFields, authFromValues } from "./auth_fields.js";
import { formatTime, h, toast } from "./dom.js";
import { form } from "./forms.js";
import { t } from "./i18n.js";
import { can } from "./session.js";
import { followStream } from "./streams.js";
import { subjectNames } from "./subjects.js";
import { badge, table } from "./table.js";

const SUBJECT_KINDS = ["role", "team", "user", "api_key"];
const ENDS = ["ok", "error", "tool_error", "refused", "input_required", "unaudited"];

export async function renderServer(name, redraw) {
  const server = await api("GET", `/api/mcp/servers/${encodeURIComponent(name)}`);
  const manage = can("mcp_servers:manage");
  const section = h("section", { class: "page", dataset: { server: name } },
    h("p", {}, h("a", { href: "/servers", "data-link": true }, `← ${t("nav.servers")}`)),
    h("div", { class: "page-head" }, h("h1", {}, server.label, server.label !== server.name ? h("small", { class: "muted" }, ` ${server.name}`) : null),
      badge(t(`health.${server.health}`), server.health === "healthy" ? "ok" : "warn"),
      badge(t(`breaker.${server.breaker}`), server.breaker === "closed" ? "ok" : "warn"),
      badge(t(`source.${server.source}`))),
    server.last_error ? h("p", { class: "error" }, server.last_error) : null,
    h("details", { class: "panel" }, h("summary", {}, t("servers.tools_count", { count: server.tools.length })),
      h("ul", { class: "tools" }, server.tools.map((tool) => h("li", {}, h("code", {}, `${server.name}__${tool}`))))));
  if (manage && server.source === "api") section.appendChild(editPanel(server, redraw));
  section.appendChild(await accessPanel(server, manage, redraw));
  if (can("audit:read")) section.appendChild(await callsPanel(server));
  return section;
}

function editPanel(server, redraw) {
  const holder = h("div");
  const panel = h("div", { class: "panel", id: "edit-server" }, h("h2", {}, t("servers.edit")), holder);
  draw(server.auth.mode || "none");
  return panel;

  // Redrawn when the mode changes, keeping what was typed: only the chosen mode's fields are on the form.
  function draw(mode) {
    const typed = Object.fromEntries([...holder.querySelectorAll("[name]")].map((n) => [n.name, n.value]));
    const value = (name, fallback) => (name in typed ? typed[name] : fallback);
    const stored = new Set(server.auth.secrets_set || []);
    const where = server.transport === "stdio"
      ? [{ name: "command", label: t("wizard.command"), required: true, value: value("command", server.command || "") },
        { name: "args", label: t("wizard.args"), type: "textarea", rows: 2, value: value("args", server.args.join("\n")), hint: t("wizard.args_hint") }]
      : [{ name: "url", label: t("wizard.url"), required: true, value: value("url", server.url || "") }];
    holder.replaceChildren(form({
      fields: [{ name: "label", label: t("store.label"), value: value("label", server.label), hint: t("servers.label_hint") }, ...where,
        { name: "timeout_seconds", label: t("servers.timeout"), type: "number", min: 1, max: 3600, required: true, value: value("timeout_seconds", server.timeout_seconds) },
        ...authFields(mode, server.auth, value, {
          secretRequired: !stored.has("secret"), secretHint: stored.has("secret") ? t("servers.secret_kept") : t("wizard.secret_hint"),
          showClient: true, clientSecretHint: stored.has("client_secret") ? t("servers.secret_kept") : null,
        })],
      onSubmit: async (values) => {
        const change = { label: values.label, timeout_seconds: values.timeout_seconds, auth: authFromValues(values) };
        if (server.transport === "stdio") Object.assign(change, { command: values.command, args: values.args.split("\n").map((a) => a.trim()).filter(Boolean) });
        else change.url = values.url;
        await api("PATCH", `/api/mcp/servers/${encodeURIComponent(server.name)}`, change);
        toast(t("servers.saved", { name: server.name }));
        redraw();
      },
    }));
    holder.querySelector("select[name=mode]").addEventListener("change", (event) => draw(event.target.value));
  }
}

// The allow rules whose pattern can match this server's tools, who they name, and a catalog check.
async function accessPanel(server, manage, redraw) {
  const prefix = `${server.name}__`;
  const [rules, names] = await Promise.all([api("GET", "/api/mcp/access-rules").then((r) => r.items), subjectNames(SUBJECT_KINDS)]);
  const mine = rules.filter((r) => r.pattern === "*" || r.pattern.startsWith(prefix));
  const named = (rule) => (names[rule.subject_kind] || {})[rule.subject_id] || rule.subject_id;
  const panel = h("div", { class: "panel", id: "access-rules" }, h("h2", {}, t("access.title")), h("p", { class: "muted" }, t("access.intro")),
    table([
      { label: t("access.subject"), cell: (r) => `${t(`access.kind.${r.subject_kind}`)}: ${named(r)}` },
      { label: t("access.pattern"), cell: (r) => h("code", {}, r.pattern) },
      { label: t("common.actions"), cell: (r) => (manage ? h("button", { type: "button", class: "ghost danger", on: { click: async () => {
        await api("DELETE", `/api/mcp/access-rules/${r.id}`).then(redraw, (e) => toast(e.message, "error"));
      } } }, t("common.remove")) : "") },
    ], mine, t("access.none")));
  if (manage) {
    const patterns = [`${prefix}*`, ...server.tools.map((tool) => `${prefix}${tool}`)];
    const choices = (kind) => Object.entries(names[kind] || {}).map(([value, label]) => ({ value, label }));
    const holder = h("div");
    const draw = (kind) => {
      const options = choices(kind);
      holder.replaceChildren(form({
        fields: [
          { name: "subject_kind", label: t("access.subject_kind"), type: "select", value: kind, options: SUBJECT_KINDS.map((k) => ({ value: k, label: t(`access.kind.${k}`) })) },
          options.length ? { name: "subject_id", label: t("access.subject"), type: "select", required: true, options: [{ value: "", label: t("common.choose") }, ...options] }
            : { name: "subject_id", label: t("access.subject"), required: true },
          { name: "pattern", label: t("access.pattern"), type: "select", value: `${prefix}*`, options: patterns.map((p) => ({ value: p, label: p })) },
        ],
        submitLabel: t("access.allow"),
        onSubmit: async (values) => {
          await api("POST", "/api/mcp/access-rules", values);
          toast(t("access.added", { pattern: values.pattern }));
          redraw();
        },
      }));
      holder.querySelector("select[name=subject_kind]").addEventListener("change", (event) => draw(event.target.value));
    };
    draw("role");
    panel.append(h("h3", {}, t("access.add")), holder);
  }
  panel.append(explainForm(server, names));
  return panel;
}

// Is this tool in that key's catalog, and why (or why not)?
function explainForm(server, names) {
  const answer = h("div", { class: "explain", "aria-live": "polite" });
  const keys = Object.entries(names.api_key || {});
  const node = form({
    fields: [
      { name: "tool", label: t("access.tool"), type: "select", required: true, options: server.tools.map((tool) => ({ value: `${server.name}__${tool}`, label: `${server.name}__${tool}` })) },
      keys.length && can("mcp_servers:manage")
        ? { name: "api_key", label: t("access.as_key"), type: "select", options: [{ value: "", label: t("access.as_me") }, ...keys.map(([value, label]) => ({ value, label }))] }
        : { name: "api_key", label: t("access.as_key"), type: "select", options: [{ value: "", label: t("access.as_me") }] },
    ],
    submitLabel: t("access.explain"),
    onSubmit: async (values) => {
      const query = new URLSearchParams({ tool: values.tool, ...(values.api_key ? { api_key: values.api_key } : {}) });
      const verdict = await api("GET", `/api/mcp/explain?${query}`);
      answer.replaceChildren(
        h("p", {}, badge(verdict.callable ? t("access.callable") : verdict.listed ? t("access.listed_only") : t("access.not_listed"), verdict.callable ? "ok" : "warn"),
          " ", verdict.access),
        verdict.reasons.length ? h("ul", {}, verdict.reasons.map((reason) => h("li", {}, reason))) : null);
    },
  });
  return h("div", {}, h("h3", {}, t("access.explain_title")), node, answer);
}

// The calls running now (from the live stream, every instance's), then the latest audited ones.
async function callsPanel(server) {
  const recent = (await api("GET", `/api/mcp/calls?server=${encodeURIComponent(server.name)}&limit=10`)).items;
  const running = h("ul", { class: "live-calls", id: "live-calls", "aria-live": "polite" }, h("li", { class: "muted empty" }, t("calls.waiting")));
  const panel = h("div", { class: "panel", id: "calls" }, h("h2", {}, t("calls.live")), h("p", { class: "muted" }, t("calls.live_hint")), running,
    h("h3", {}, t("calls.recent")),
    table([
      { label: t("common.when"), cell: (e) => formatTime(e.at) },
      { label: t("logs.tool"), cell: (e) => h("code", {}, e.action.replace(/^tools\/call:/, "")) },
      { label: t("logs.outcome"), cell: (e) => badge(t(`outcome.${e.outcome}`), e.outcome === "ok" ? "ok" : "warn") },
      { label: t("logs.duration"), cell: (e) => `${Math.round(e.duration_ms)} ms` },
      { label: t("calls.progress_events"), cell: (e) => String((e.detail && e.detail.progress_events) || 0) },
    ], recent, t("calls.none")));
  follow(server.name, running);
  return panel;
}

function follow(serverName, list) {
  const calls = new Map();
  followStream("/api/mcp/calls/live/tickets", list, {
    watching: () => { list.dataset.watching = "true"; },
    step: (message) => {
      const step = JSON.parse(message.data);
      if (step.server !== serverName) return;
      let entry = calls.get(step.call);
      if (!entry) {
        entry = { node: h("li", { class: "live-call", dataset: { call: step.call } },
          h("p", {}, h("code", {}, step.tool), " ", h("span", { class: "state" }, badge(t("calls.running"), "accent"))),
          h("ol", { class: "timeline" })) };
        calls.set(step.call, entry);
        if (list.querySelector(".empty")) list.replaceChildren();
        list.prepend(entry.node);
      }
      const { event } = step.step;
      entry.node.querySelector(".timeline").appendChild(h("li", { dataset: { event } }, h("code", {}, `+${Math.round(step.step.t_ms)} ms`), " ",
        event === "progress" ? `${t("calls.progress")} ${step.step.progress}${step.step.total ? `/${step.step.total}` : ""}${step.step.message ? ` — ${step.step.message}` : ""}`
          : ENDS.includes(event) ? t(`outcome.${event}`) : event));
      if (ENDS.includes(event)) {
        entry.node.querySelector(".state").replaceChildren(badge(t(`outcome.${event}`), event === "ok" ? "ok" : "warn"));
      }
    },
  }).catch((error) => list.replaceChildren(h("li", { class: "error" }, error.message)));
}
