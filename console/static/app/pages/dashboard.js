// The dashboard: live requests a minute, errors and latency from the audit feed; tokens and cost today and this
// month by team and model; top users and tools; health of the dependencies and of every upstream.
import { api } from "../api.js";
import { formatTime, h } from "../dom.js";
import { barList, lastHourPeriods, stackedBars } from "../charts.js";
import { t } from "../i18n.js";
import { can, teamScope } from "../session.js";
import { followStream } from "../streams.js";
import { subjectNames } from "../subjects.js";
import { badge, table } from "../table.js";

export async function render() {
  const now = new Date();
  const today = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate())).toISOString();
  const month = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)).toISOString();
  const team = teamScope("audit:read"); // a team's own auditor sees that team's figures
  const scope = team ? `&team_id=${encodeURIComponent(team)}` : "";
  const usage = (group, since) => api("GET", `/api/audit/usage?group_by=${group}&since=${encodeURIComponent(since)}${scope}`).then((r) => r.items);
  const [byTeamToday, byModelToday, byTeamMonth, byModelMonth, users, tools, health, servers, people] = await Promise.all([
    usage("team", today), usage("model", today), usage("team", month), usage("model", month), usage("user", today), usage("tool", today),
    api("GET", "/api/console/health"),
    can("mcp_servers:read") ? api("GET", "/api/mcp/servers").then((r) => r.items) : Promise.resolve([]),
    subjectNames(["user"]),
  ]);
  const email = (id) => people.user[id] || id || t("dashboard.nobody");
  const sum = (rows, key) => rows.reduce((total, row) => total + row[key], 0);
  const live = {
    requests: h("strong", { id: "kpi-requests" }, "…"), errors: h("strong", { id: "kpi-errors" }, "…"),
    p50: h("strong", { id: "kpi-p50" }, "…"), p95: h("strong", { id: "kpi-p95" }, "…"),
  };
  const chart = h("div", { id: "requests-chart" }, h("p", { class: "muted" }, t("dashboard.waiting")));
  const recent = h("ol", { class: "recent", id: "recent-events" });
  const section = h("section", { class: "page" },
    h("h1", {}, t("nav.dashboard")),
    h("div", { class: "kpis" },
      kpi(t("dashboard.requests_minute"), live.requests), kpi(t("dashboard.error_rate"), live.errors),
      kpi(t("dashboard.p50"), live.p50), kpi(t("dashboard.p95"), live.p95),
      kpi(t("dashboard.cost_today"), h("strong", {}, money(sum(byTeamToday, "usd")))),
      kpi(t("dashboard.cost_month"), h("strong", {}, money(sum(byTeamMonth, "usd")))),
      kpi(t("dashboard.tokens_today"), h("strong", {}, (sum(byTeamToday, "input_tokens") + sum(byTeamToday, "output_tokens")).toLocaleString()))),
    h("div", { class: "panel" }, h("h2", {}, t("dashboard.requests_hour")), chart),
    h("div", { class: "cards" },
      costPanel(t("dashboard.by_team_today"), byTeamToday, "team"), costPanel(t("dashboard.by_model_today"), byModelToday, "model"),
      costPanel(t("dashboard.by_team_month"), byTeamMonth, "team"), costPanel(t("dashboard.by_model_month"), byModelMonth, "model"),
      h("div", { class: "panel" }, h("h2", {}, t("dashboard.top_users")), users.length
        ? barList(users.slice(0, 8).map((r) => ({ label: email(r.user), value: r.requests, text: String(r.requests) })), t("dashboard.top_users"))
        : h("p", { class: "muted" }, t("dashboard.nothing_yet"))),
      h("div", { class: "panel" }, h("h2", {}, t("dashboard.top_tools")), tools.filter((r) => r.tool).length
        ? barList(tools.filter((r) => r.tool).sort((a, b) => b.requests - a.requests).slice(0, 8)
          .map((r) => ({ label: r.tool, value: r.requests, text: String(r.requests) })), t("dashboard.top_tools"))
        : h("p", { class: "muted" }, t("dashboard.nothing_yet")))),
    h("div", { class: "cards" },
      h("div", { class: "panel", id: "health" }, h("h2", {}, t("dashboard.health")), healthList(health.checks, servers)),
      h("div", { class: "panel" }, h("h2", {}, t("dashboard.live")), recent)));
  openFeed({ live, chart, recent, email, scope: team ? `?team_id=${encodeURIComponent(team)}` : "" });
  return section;
}

function kpi(label, value) {
  return h("div", { class: "kpi" }, h("span", { class: "muted" }, label), value);
}

function money(usd) {
  return `$${usd.toFixed(usd >= 1 ? 2 : 4)}`;
}

function costPanel(title, rows, group) {
  const priced = rows.filter((r) => r.requests).sort((a, b) => b.usd - a.usd || b.requests - a.requests).slice(0, 8);
  return h("div", { class: "panel" }, h("h2", {}, title), priced.length
    ? barList(priced.map((r) => ({ label: r[group] || t("dashboard.none_group"), value: r.usd || r.requests,
      text: `${money(r.usd)} · ${(r.input_tokens + r.output_tokens).toLocaleString()} ${t("dashboard.tokens")}` })), title)
    : h("p", { class: "muted" }, t("dashboard.nothing_yet")));
}

function healthList(checks, servers) {
  const rows = [
    ...Object.entries(checks).map(([name, check]) => ({ name: t(`dependency.${name}`), ok: check.status === "ok",
      text: check.status === "ok" ? `${check.latency_ms} ms` : `${check.status}${check.error ? ` (${check.error})` : ""}` })),
    ...servers.map((s) => ({ name: `MCP · ${s.name}`, ok: s.health === "healthy" || s.health === "per_user", text: t(`health.${s.health}`) })),
  ];
  return table([
    { label: t("dashboard.what"), cell: (r) => r.name },
    { label: t("servers.health"), cell: (r) => badge(r.text, r.ok ? "ok" : "warn") },
  ], rows, t("dashboard.nothing_yet"));
}

// The audit live feed, for as long as the dashboard is on the page.
function openFeed(view) {
  followStream(`/api/audit/live/tickets${view.scope}`, view.chart, {
    stats: (message) => showStats(view, JSON.parse(message.data)),
    audit: (message) => showEvent(view, JSON.parse(message.data)),
  }).catch(() => {});
}

function showStats(view, stats) {
  const last = stats.last_minute;
  view.live.requests.textContent = String(last.requests);
  view.live.errors.textContent = last.requests ? `${((100 * last.errors) / last.requests).toFixed(1)} %` : "—";
  view.live.p50.textContent = last.p50_ms === null ? "—" : `${Math.round(last.p50_ms)} ms`;
  view.live.p95.textContent = last.p95_ms === null ? "—" : `${Math.round(last.p95_ms)} ms`;
  const byMinute = new Map(lastHourPeriods(stats.at).map((period) => [period, { label: period.slice(11, 16), values: {} }]));
  for (const row of stats.minutes) {
    const bucket = byMinute.get(row.period);
    if (bucket) bucket.values[row.surface] = (bucket.values[row.surface] || 0) + row.requests;
  }
  view.chart.replaceChildren(stackedBars([...byMinute.values()], [
    { name: "ai", label: t("logs.surface.ai"), className: "series-ai" },
    { name: "mcp", label: t("logs.surface.mcp"), className: "series-mcp" },
  ], t("dashboard.requests_hour")));
}

function showEvent(view, event) {
  view.recent.prepend(h("li", {}, h("code", {}, formatTime(event.at)), " ", badge(t(`logs.surface.${event.surface}`)), " ",
    h("span", {}, event.action), " ", badge(t(`outcome.${event.outcome}`), event.outcome === "ok" ? "ok" : "warn"),
    " ", h("small", { class: "muted" }, view.email(event.user_id))));
  while (view.recent.children.length > 15) view.recent.lastChild.remove();
}
