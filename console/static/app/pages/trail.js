// The admin audit trail: every change made through the console or the management API, and every sign-in, with
// who made it, the operation, its outcome, and what changed (the resource before and after, field by field).
import { api } from "../api.js";
import { formatTime, h, localInput } from "../dom.js";
import { form, openDialog } from "../forms.js";
import { t } from "../i18n.js";
import { subjectNames } from "../subjects.js";
import { badge, table } from "../table.js";

export async function render({ path }) {
  const query = new URLSearchParams(window.location.search);
  const params = new URLSearchParams([...query].filter(([, value]) => value));
  params.set("surface", "admin");
  if (!params.has("limit")) params.set("limit", "50");
  const [page, names] = await Promise.all([api("GET", `/api/audit/events?${params}`), subjectNames(["user"])]);
  const users = Object.entries(names.user);
  const who = (id) => (id ? names.user[id] || id : t("trail.nobody"));
  const filters = form({
    fields: [
      { name: "user_id", label: t("trail.actor"), type: users.length ? "select" : "text", value: query.get("user_id") || "",
        options: [{ value: "", label: t("logs.any") }, ...users.map(([value, label]) => ({ value, label }))] },
      { name: "outcome", label: t("logs.outcome"), type: "select", value: query.get("outcome") || "",
        options: [{ value: "", label: t("logs.any") }, ...["ok", "error", "refused"].map((o) => ({ value: o, label: t(`outcome.${o}`) }))] },
      { name: "since", label: t("logs.since"), type: "datetime-local", value: localInput(query.get("since")) },
    ],
    submitLabel: t("logs.search"),
    onSubmit: async (values) => {
      const next = new URLSearchParams();
      for (const [name, value] of Object.entries(values)) {
        if (value) next.set(name, name === "since" ? new Date(value).toISOString() : value);
      }
      window.history.pushState({}, "", `${path}?${next}`);
      window.dispatchEvent(new PopStateEvent("popstate"));
    },
  });
  filters.classList.add("filters");
  const older = page.next_cursor ? h("a", { href: `${path}?${new URLSearchParams({ ...Object.fromEntries(query), cursor: page.next_cursor })}`, "data-link": true }, t("logs.older")) : null;
  return h("section", { class: "page" },
    h("h1", {}, t("nav.trail")), h("p", { class: "muted" }, t("trail.intro")),
    h("div", { class: "panel" }, filters),
    table([
      { label: t("common.when"), cell: (e) => h("a", { href: "#", class: "event-link", on: { click: (event) => { event.preventDefault(); showChange(e, who); } } }, formatTime(e.at)) },
      { label: t("trail.actor"), cell: (e) => who(e.user_id) },
      { label: t("trail.operation"), cell: (e) => h("code", {}, e.action) },
      { label: t("trail.resource"), cell: (e) => resource(e.detail) },
      { label: t("logs.outcome"), cell: (e) => badge(`${t(`outcome.${e.outcome}`)}${e.error_code ? ` ${e.error_code}` : ""}`, e.outcome === "ok" ? "ok" : "warn") },
      { label: t("trail.changed"), cell: (e) => changedSummary(e.detail) },
    ], page.items, t("trail.none")), older ? h("p", {}, older) : null);
}

function resource(detail) {
  const params = Object.entries((detail && detail.params) || {});
  return params.length ? params.map(([name, value]) => `${name}=${value}`).join(" ") : (detail && detail.path) || "—";
}

function changedSummary(detail) {
  if (!detail || detail.before === undefined || detail.after === undefined) return "—"; // created, deleted, or unread
  const changes = diff(detail.before, detail.after);
  if (!changes.length) return "—";
  const names = changes.map((c) => c.path);
  return names.length > 3 ? `${names.slice(0, 3).join(", ")} +${names.length - 3}` : names.join(", ");
}

// The fields that differ between two JSON values, as dotted paths with their value before and after.
export function diff(before, after, prefix = "") {
  if (before === undefined && after === undefined) return [];
  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const within = (key) => (prefix ? `${prefix}.${key}` : String(key));
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((key) => diff(before[key], after[key], within(key)));
  }
  if (Array.isArray(before) && Array.isArray(after) && before.every(isObject) && after.every(isObject)) {
    // Lists of objects (a model's peers, say) item by item; lists of plain values read best whole.
    return Array.from({ length: Math.max(before.length, after.length) }, (_, i) => diff(before[i], after[i], within(i))).flat();
  }
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  return [{ path: prefix || "·", before, after }];
}

function shown(value) {
  return value === undefined ? "—" : JSON.stringify(value);
}

function showChange(event, who) {
  const detail = event.detail || {};
  const changes = diff(detail.before, detail.after);
  const parts = [
    h("dl", { class: "facts" },
      [h("dt", {}, t("common.when")), h("dd", {}, formatTime(event.at))],
      [h("dt", {}, t("trail.actor")), h("dd", {}, who(event.user_id))],
      [h("dt", {}, t("trail.operation")), h("dd", {}, h("code", {}, event.action))],
      [h("dt", {}, t("trail.resource")), h("dd", {}, resource(detail))],
      [h("dt", {}, t("logs.outcome")), h("dd", {}, `${t(`outcome.${event.outcome}`)} (${detail.status ?? "—"})`)],
      [h("dt", {}, t("logs.request_id")), h("dd", {}, event.request_id || "—")]),
  ];
  if (changes.length) {
    parts.push(h("h3", {}, t("trail.changes")), h("table", { class: "diff" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("trail.field")), h("th", { scope: "col" }, t("trail.before")), h("th", { scope: "col" }, t("trail.after")))),
      h("tbody", {}, changes.map((c) => h("tr", { dataset: { field: c.path } }, h("th", { scope: "row" }, h("code", {}, c.path)),
        h("td", { class: "old" }, shown(c.before)), h("td", { class: "new" }, shown(c.after)))))));
  } else if (detail.before !== undefined || detail.after !== undefined) {
    parts.push(h("p", { class: "muted" }, t("trail.no_changes")));
  }
  if (detail.request !== undefined) parts.push(h("h3", {}, t("trail.request")), h("pre", {}, JSON.stringify(detail.request, null, 2)));
  openDialog(t("trail.change"), ...parts);
}
