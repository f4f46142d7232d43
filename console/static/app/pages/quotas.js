// Quotas and budgets: rate limits and budgets by subject (create, change, switch off, delete), and one
// subject's live usage of each rule that applies to it as bars marked at the budget alert thresholds,
// refreshed every few seconds while the page is open.
import { api } from "../api.js";
import { h, toast } from "../dom.js";
import { form, openDialog } from "../forms.js";
import { t } from "../i18n.js";
import { subjectNames } from "../subjects.js";
import { badge, table } from "../table.js";

const KINDS = ["user", "team", "api_key", "provider", "model", "mcp_server", "tool"];
const WINDOWS = ["1m", "5m", "1h", "5h", "1d", "1w"];
const PERIODS = ["daily", "weekly", "monthly"];
const SURFACES = ["both", "ai", "mcp"];
const REFRESH_MS = 5000;

export async function render({ redraw }) {
  const rules = (await api("GET", "/api/quotas/rules")).items;
  const subjects = await subjectNames(["user", "team", "api_key"]);
  const bySubject = new Map();
  for (const rule of rules) {
    const key = `${rule.subject_kind}:${rule.subject_id}`;
    if (!bySubject.has(key)) bySubject.set(key, []);
    bySubject.get(key).push(rule);
  }
  return h("section", { class: "page" },
    h("div", { class: "page-head" }, h("h1", {}, t("nav.quotas")),
      h("button", { type: "button", class: "primary", id: "new-rule", on: { click: () => createRule(subjects, redraw) } }, t("quotas.new_rule"))),
    h("p", { class: "muted" }, t("quotas.intro")),
    rules.length ? [...bySubject.entries()].map(([subject, list]) => h("div", { class: "panel rule-group", dataset: { subject } },
      h("h2", {}, subjectLabel(subject, subjects)),
      table([
        { label: t("quotas.what"), cell: (r) => h("span", {}, t(`quotas.metric.${r.metric}`), " ", h("small", { class: "muted" }, r.window ? t("quotas.per_window", { window: r.window }) : t(`quotas.period.${r.period}`))) },
        { label: t("quotas.kind"), cell: (r) => badge(r.window ? t("quotas.rate_limit") : t("quotas.budget"), r.window ? "" : "accent") },
        { label: t("quotas.limit"), cell: (r) => limitText(r.metric, r.limit) },
        { label: t("quotas.surface"), cell: (r) => t(`quotas.surface.${r.surface}`) },
        { label: t("quotas.state"), cell: (r) => badge(r.enabled ? t("quotas.on") : t("quotas.off"), r.enabled ? "ok" : "warn") },
        { label: t("providers.source"), cell: (r) => t(`source.${r.source}`) },
        { label: t("common.actions"), cell: (r) => (r.source === "api" ? h("div", { class: "row-actions" },
          h("button", { type: "button", class: "ghost", on: { click: () => editRule(r, redraw) } }, t("common.edit")),
          h("button", { type: "button", class: "ghost danger", on: { click: () => removeRule(r, redraw) } }, t("common.delete"))) : "") },
      ], list, ""))) : h("p", { class: "muted empty" }, t("quotas.none")),
    usagePanel(subjects));
}

function subjectLabel(subject, subjects) {
  const [kind, id] = [subject.slice(0, subject.indexOf(":")), subject.slice(subject.indexOf(":") + 1)];
  if (id === "*") return t("quotas.every", { kind: t(`quotas.kind.${kind}`) });
  return `${t(`quotas.kind.${kind}`)}: ${(subjects[kind] || {})[id] || id}`;
}

function limitText(metric, value) {
  if (metric === "usd") return `$${value.toFixed(2)}`;
  return Math.round(value).toLocaleString();
}

function subjectFields() {
  return [
    { name: "subject_kind", label: t("quotas.subject_kind"), type: "select", value: "user", options: KINDS.map((k) => ({ value: k, label: t(`quotas.kind.${k}`) })) },
    { name: "subject_id", label: t("quotas.subject_id"), required: true, value: "*", hint: t("quotas.subject_id_hint") },
  ];
}

function createRule(subjects, redraw) {
  const node = form({
    fields: [
      ...subjectFields(),
      { name: "type", label: t("quotas.kind"), type: "select", value: "rate", options: [{ value: "rate", label: t("quotas.rate_limit") }, { value: "budget", label: t("quotas.budget") }] },
      { name: "metric", label: t("quotas.metric"), type: "select", value: "requests", options: ["requests", "tokens", "usd"].map((m) => ({ value: m, label: t(`quotas.metric.${m}`) })) },
      { name: "window", label: t("quotas.window"), type: "select", value: "1m", options: WINDOWS.map((w) => ({ value: w, label: w })) },
      { name: "period", label: t("quotas.period"), type: "select", value: "monthly", options: PERIODS.map((p) => ({ value: p, label: t(`quotas.period.${p}`) })) },
      { name: "limit", label: t("quotas.limit"), type: "number", required: true, min: 0, step: "any" },
      { name: "surface", label: t("quotas.surface"), type: "select", value: "both", options: SURFACES.map((s) => ({ value: s, label: t(`quotas.surface.${s}`) })) },
      { name: "precheck", label: t("quotas.precheck"), type: "checkbox", hint: t("quotas.precheck_hint") },
    ],
    submitLabel: t("quotas.create"), onCancel: () => close(),
    onSubmit: async (values) => {
      const budget = values.type === "budget";
      const rule = await api("POST", "/api/quotas/rules", {
        subject_kind: values.subject_kind, subject_id: values.subject_id, metric: values.metric, limit: values.limit,
        surface: values.surface, precheck: values.precheck, ...(budget ? { period: values.period } : { window: values.window }),
      });
      close();
      toast(t("quotas.created", { label: rule.label }));
      redraw();
    },
  });
  // A rate limit has a window, a budget a calendar period (and counts tokens or dollars, not requests).
  const type = node.querySelector("select[name=type]");
  const metric = node.querySelector("select[name=metric]");
  const sync = () => {
    const budget = type.value === "budget";
    node.querySelector("[data-field=window]").hidden = budget;
    node.querySelector("[data-field=period]").hidden = !budget;
    metric.querySelector("option[value=requests]").disabled = budget;
    if (budget && metric.value === "requests") metric.value = "tokens";
  };
  type.addEventListener("change", sync);
  sync();
  const close = openDialog(t("quotas.new_rule"), node);
}

function editRule(rule, redraw) {
  const close = openDialog(t("quotas.edit", { label: rule.label }), form({
    fields: [
      { name: "limit", label: t("quotas.limit"), type: "number", required: true, min: 0, step: "any", value: rule.limit },
      { name: "surface", label: t("quotas.surface"), type: "select", value: rule.surface, options: SURFACES.map((s) => ({ value: s, label: t(`quotas.surface.${s}`) })) },
      { name: "enabled", label: t("quotas.enabled"), type: "checkbox", value: rule.enabled },
      { name: "precheck", label: t("quotas.precheck"), type: "checkbox", value: rule.precheck, hint: t("quotas.precheck_hint") },
    ],
    onCancel: () => close(),
    onSubmit: async (values) => {
      await api("PATCH", `/api/quotas/rules/${rule.id}`, values);
      close();
      toast(t("quotas.saved", { label: rule.label }));
      redraw();
    },
  }));
}

async function removeRule(rule, redraw) {
  if (!window.confirm(t("quotas.confirm_delete", { label: rule.label }))) return;
  await api("DELETE", `/api/quotas/rules/${rule.id}`).then(redraw, (e) => toast(e.message, "error"));
}

// One subject's usage, as bars; it follows the counters while the page shows it.
function usagePanel(subjects) {
  const bars = h("div", { id: "usage-bars", "aria-live": "polite" });
  const kind = h("select", { id: "usage-kind", "aria-label": t("quotas.subject_kind") }, KINDS.map((k) => h("option", { value: k }, t(`quotas.kind.${k}`))));
  const idInput = h("input", { id: "usage-subject", "aria-label": t("quotas.subject_id"), placeholder: t("quotas.subject_id"), list: "usage-known" });
  const known = h("datalist", { id: "usage-known" });
  const fillKnown = () => known.replaceChildren(...Object.entries(subjects[kind.value] || {}).map(([id, label]) => h("option", { value: id }, label)));
  kind.addEventListener("change", fillKnown);
  fillKnown();
  let timer = null;
  const show = async () => {
    clearTimeout(timer);
    if (!bars.isConnected && timer !== null) return; // the page was left
    try {
      const answer = await api("GET", `/api/quotas/usage?subject=${encodeURIComponent(`${kind.value}:${idInput.value.trim()}`)}`);
      bars.replaceChildren(...(answer.items.length ? answer.items.map((item) => usageBar(item, answer.alert_thresholds))
        : [h("p", { class: "muted" }, t("quotas.no_usage"))]));
    } catch (error) {
      bars.replaceChildren(h("p", { class: "error", role: "alert" }, error.message));
      return;
    }
    timer = setTimeout(show, REFRESH_MS);
  };
  return h("div", { class: "panel", id: "usage" }, h("h2", {}, t("quotas.usage")), h("p", { class: "muted" }, t("quotas.usage_hint")),
    h("form", { class: "inline-form", on: { submit: (e) => { e.preventDefault(); timer = 0; show(); } } }, kind, idInput, known,
      h("button", { type: "submit", class: "primary" }, t("quotas.show"))), bars);
}

function usageBar(item, thresholds) {
  const share = item.limit ? Math.min(1, item.used / item.limit) : 0;
  const level = share >= 1 ? "full" : share >= (Math.max(0, ...thresholds.filter((x) => x < 100)) / 100 || 1) ? "high" : "";
  const fill = h("span", { class: ["fill", level] });
  fill.style.width = `${(share * 100).toFixed(1)}%`;
  const marks = thresholds.filter((x) => x < 100).map((x) => {
    const mark = h("span", { class: "threshold", title: `${x}%` });
    mark.style.left = `${x}%`;
    return mark;
  });
  const metric = item.rule.split(":")[1].split("/")[0];
  return h("div", { class: "usage-row", dataset: { rule: item.rule } },
    h("div", { class: "usage-head" }, h("strong", {}, item.rule),
      h("span", { class: "usage-numbers" }, t("quotas.used_of", { used: limitText(metric, item.used), limit: limitText(metric, item.limit) }),
        " · ", t("quotas.resets_in", { time: duration(item.resets_in_seconds) }))),
    h("div", { class: "usage-bar", role: "meter", "aria-valuemin": 0, "aria-valuemax": item.limit, "aria-valuenow": item.used, "aria-label": item.rule }, fill, marks));
}

function duration(seconds) {
  if (seconds < 90) return `${Math.ceil(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}
