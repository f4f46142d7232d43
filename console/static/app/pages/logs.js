// The log explorer: AI and MCP audit events with filters and full-text body search; an event's detail with its
// routing decision or tool timeline, its whole trace across both surfaces, and its captured bodies (only with
// audit:read_bodies).
import { api } from "../api.js";
import { formatTime, h, localInput } from "../dom.js";
import { form, openDialog } from "../forms.js";
import { t } from "../i18n.js";
import { can, teamScope } from "../session.js";
import { subjectNames } from "../subjects.js";
import { badge, table } from "../table.js";

const FILTERS = ["surface", "user_id", "team_id", "api_key_id", "model", "server", "tool", "outcome", "trace_id"];

export async function render({ path }) {
  const query = new URLSearchParams(window.location.search);
  const params = new URLSearchParams([...query].filter(([, value]) => value));
  if (!params.has("limit")) params.set("limit", "50");
  const team = teamScope("audit:read"); // a team's own auditor reads that team's events
  if (team) params.set("team_id", team);
  const [page, names] = await Promise.all([api("GET", `/api/audit/events?${params}`), subjectNames(["user"])]);
  const who = (id) => (id ? names.user[id] || id : "—");
  const readBodies = can("audit:read_bodies", team || undefined);
  const fields = [
    { name: "since", label: t("logs.since"), type: "datetime-local", value: localInput(query.get("since")) },
    { name: "until", label: t("logs.until"), type: "datetime-local", value: localInput(query.get("until")) },
    { name: "surface", label: t("logs.surface"), type: "select", value: query.get("surface") || "",
      options: [{ value: "", label: t("logs.any") }, ...["ai", "mcp", "admin"].map((s) => ({ value: s, label: t(`logs.surface.${s}`) }))] },
    { name: "outcome", label: t("logs.outcome"), type: "select", value: query.get("outcome") || "",
      options: [{ value: "", label: t("logs.any") }, ...["ok", "error", "refused", "tool_error"].map((o) => ({ value: o, label: t(`outcome.${o}`) }))] },
    ...[["user_id", t("logs.user_id")], ["team_id", t("logs.team_id")], ["api_key_id", t("logs.api_key_id")],
      ["model", t("logs.model")], ["server", t("logs.server")], ["tool", t("logs.tool")], ["trace_id", t("logs.trace_id")]]
      .map(([name, label]) => ({ name, label, value: query.get(name) || "" })),
  ];
  if (readBodies) fields.push({ name: "q", label: t("logs.q"), value: query.get("q") || "", hint: t("logs.q_hint") });
  const filters = form({
    fields, submitLabel: t("logs.search"),
    onSubmit: async (values) => {
      const next = new URLSearchParams();
      for (const [name, value] of Object.entries(values)) {
        // The browser's date-times are local; the API takes ISO 8601 with the offset (UTC here).
        if (value) next.set(name, name === "since" || name === "until" ? new Date(value).toISOString() : value);
      }
      window.history.pushState({}, "", `${path}?${next}`);
      window.dispatchEvent(new PopStateEvent("popstate"));
    },
  });
  filters.classList.add("filters");
  const more = page.next_cursor ? h("a", { href: `${path}?${withCursor(query, page.next_cursor)}`, "data-link": true }, t("logs.older")) : null;
  return h("section", { class: "page" },
    h("h1", {}, t("nav.logs")),
    h("details", { class: "panel", open: [...query.keys()].some((k) => FILTERS.includes(k) || k === "q") }, h("summary", {}, t("logs.filters")), filters),
    table([
      { label: t("common.when"), cell: (e) => h("a", { href: "#", class: "event-link", on: { click: (event) => { event.preventDefault(); showEvent(e.id, who); } } }, formatTime(e.at)) },
      { label: t("logs.surface"), cell: (e) => badge(t(`logs.surface.${e.surface}`)) },
      { label: t("logs.what"), cell: (e) => h("span", {}, h("code", {}, e.action), h("br"), h("small", { class: "muted" }, e.target)) },
      { label: t("logs.who"), cell: (e) => who(e.user_id) },
      { label: t("logs.outcome"), cell: (e) => badge(t(`outcome.${e.outcome}`), e.outcome === "ok" ? "ok" : "warn") },
      { label: t("logs.duration"), cell: (e) => `${Math.round(e.duration_ms)} ms` },
      { label: t("logs.cost"), cell: (e) => (e.usd ? `$${e.usd.toFixed(6)}` : "—") },
    ], page.items, t("logs.none")), more ? h("p", {}, more) : null);
}

function withCursor(query, cursor) {
  const next = new URLSearchParams(query);
  next.set("cursor", cursor);
  return next;
}

async function showEvent(id, who) {
  const event = await api("GET", `/api/audit/events/${id}`);
  const detail = event.detail || {};
  const parts = [
    h("dl", { class: "facts" }, fact(t("common.when"), formatTime(event.at)), fact(t("logs.what"), `${event.action} → ${event.target}`),
      fact(t("logs.outcome"), t(`outcome.${event.outcome}`)), fact(t("logs.duration"), `${event.duration_ms.toFixed(1)} ms`),
      fact(t("logs.who"), who(event.user_id)), fact(t("logs.api_key_id"), event.api_key_id || "—"),
      fact(t("logs.trace_id"), event.trace_id), fact(t("logs.request_id"), event.request_id || "—"),
      event.error_code !== null ? fact(t("logs.error_code"), String(event.error_code)) : null),
  ];
  if (detail.routing) {
    parts.push(h("h3", {}, t("logs.routing")), h("p", {}, detail.routing),
      detail.fallbacks && detail.fallbacks.length ? h("p", { class: "muted" }, t("logs.fallbacks", { list: JSON.stringify(detail.fallbacks) })) : null,
      h("p", { class: "muted" }, t("logs.tokens", { input: detail.input_tokens ?? 0, output: detail.output_tokens ?? 0, usd: (detail.usd ?? 0).toFixed(6) })));
  }
  if (detail.timeline) {
    parts.push(h("h3", {}, t("logs.timeline")), h("ol", { class: "timeline" }, detail.timeline.map((step) => h("li", {},
      h("code", {}, `+${step.t_ms} ms`), " ", step.event,
      step.event === "progress" ? ` ${step.progress}${step.total ? `/${step.total}` : ""}${step.message ? ` — ${step.message}` : ""}` : ""))));
  }
  const trace = await api("GET", `/api/audit/traces/${event.trace_id}`).catch(() => null);
  if (trace && trace.count > 1) {
    parts.push(h("h3", {}, t("logs.trace", { count: trace.count, usd: trace.usd.toFixed(6) })),
      h("ol", { class: "trace" }, trace.events.map((e) => h("li", { class: e.id === event.id ? "current" : "" },
        badge(t(`logs.surface.${e.surface}`)), " ", h("code", {}, e.action), ` ${Math.round(e.duration_ms)} ms`))));
  }
  if (detail.bodies && can("audit:read_bodies", event.team_id || undefined)) {
    const bodies = (await api("GET", `/api/audit/events/${id}/bodies`)).bodies;
    parts.push(h("h3", {}, t("logs.bodies")), ...Object.entries(bodies).map(([part, body]) => h("div", { class: "body" },
      h("p", {}, h("strong", {}, t(`body.${part}`)), " ", h("small", { class: "muted" }, t("logs.body_size", { bytes: body.bytes }),
        body.offloaded ? ` · ${t("logs.offloaded")}` : "")),
      h("pre", {}, body.text))));
  } else if (detail.bodies) {
    parts.push(h("p", { class: "muted" }, t("logs.bodies_hidden")));
  }
  parts.push(h("details", {}, h("summary", {}, t("logs.raw")), h("pre", {}, JSON.stringify(event, null, 2))));
  openDialog(t("logs.event"), ...parts);
}

function fact(label, value) {
  return [h("dt", {}, label), h("dd", {}, value)];
}
