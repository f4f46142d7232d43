// Providers and models: the AI providers Warden forwards to, and each registered model's routing — its peers
// with manual weights beside the traffic they really got in the last hour, the auto modes, what the last day's
// tokens would have cost routed by weight or automatically, the kill switch, and a latency sparkline.
import { api } from "../api.js";
import { lastHourPeriods, shareBar, sparkline } from "../charts.js";
import { h, toast } from "../dom.js";
import { form, openDialog } from "../forms.js";
import { t } from "../i18n.js";
import { can } from "../session.js";
import { badge, table } from "../table.js";

const TYPES = ["openai", "anthropic", "gemini", "azure_openai", "bedrock", "openai_compatible"];
const ROUTING = ["weighted", "latency", "cost", "balanced"];
// Which provider fields apply to which type (the rest stay hidden in the form).
const TYPE_FIELDS = { base_url: TYPES, api_key: TYPES, api_version: ["azure_openai"], region: ["bedrock"], aws_access_key_id: ["bedrock"] };
const HOUR = 3600;
const PEER_CLASSES = ["peer-0", "peer-1", "peer-2", "peer-3", "peer-4", "peer-5"];

export async function render({ redraw }) {
  const [providers, models] = await Promise.all([
    api("GET", "/api/ai/providers").then((r) => r.items), api("GET", "/api/ai/models").then((r) => r.items),
  ]);
  const manage = can("providers:manage");
  const traffic = can("audit:read") ? await recentTraffic(models) : null;
  return h("section", { class: "page" },
    h("div", { class: "page-head" }, h("h1", {}, t("nav.providers")),
      manage ? h("button", { type: "button", class: "primary", id: "new-provider", on: { click: () => editProvider(null, redraw) } }, t("providers.add")) : null,
      manage && providers.length ? h("button", { type: "button", class: "ghost", id: "new-model", on: { click: () => createModel(providers, redraw) } }, t("models.add")) : null),
    h("h2", {}, t("providers.title")),
    table([
      { label: t("providers.name"), cell: (p) => h("strong", {}, p.name) },
      { label: t("providers.type"), cell: (p) => p.type },
      { label: t("providers.base_url"), cell: (p) => h("code", {}, p.base_url || t("providers.default_url")) },
      { label: t("providers.api_key"), cell: (p) => badge(p.api_key_set ? t("providers.key_set") : t("providers.no_key"), p.api_key_set ? "ok" : "") },
      { label: t("providers.source"), cell: (p) => t(`source.${p.source}`) },
      { label: t("common.actions"), cell: (p) => (manage && p.source === "api" ? h("div", { class: "row-actions" },
        h("button", { type: "button", class: "ghost", on: { click: () => editProvider(p, redraw) } }, t("common.edit")),
        h("button", { type: "button", class: "ghost danger", on: { click: () => removeProvider(p, redraw) } }, t("common.delete"))) : "") },
    ], providers, t("providers.none")),
    h("h2", {}, t("models.title")),
    traffic === null ? h("p", { class: "muted" }, t("models.no_traffic_permission")) : null,
    models.length ? h("div", { class: "model-list" }, models.map((m) => modelCard(m, providers, traffic && traffic.get(m.name), manage, redraw)))
      : h("p", { class: "muted empty" }, t("models.none")));
}

// Per model: requests and mean latency by peer over the last hour, per-minute latency, and the last day's
// tokens (for the cost projection), from the audit log's usage aggregates: one query a model for its peers, one
// for every model's minutes and one for every model's day.
async function recentTraffic(models) {
  const now = Math.floor(Date.now() / 1000);
  const usage = (query) => api("GET", `/api/audit/usage?${new URLSearchParams({ surface: "ai", ...query })}`).then((r) => r.items);
  const [byPeer, minutes, days] = await Promise.all([
    Promise.all(models.map((m) => usage({ group_by: "provider", model: m.name, since: now - HOUR }))),
    usage({ group_by: "model", period: "minute", since: now - HOUR }),
    usage({ group_by: "model", since: now - 24 * HOUR }),
  ]);
  return new Map(models.map((m, i) => [m.name, {
    byPeer: byPeer[i], perMinute: minutes.filter((row) => row.model === m.name),
    lastDay: days.find((row) => row.model === m.name) || null, now,
  }]));
}

function modelCard(model, providers, traffic, manage, redraw) {
  const editable = manage && model.source === "api";
  const state = { routing: model.routing, routes: model.routes.map((r) => ({ ...r })) };
  const card = h("article", { class: ["panel", "model", model.enabled ? "" : "off"], dataset: { model: model.name } });
  const errorLine = h("p", { class: "error", role: "alert", hidden: true });

  function draw() {
    card.replaceChildren(
      h("div", { class: "page-head" },
        h("h3", {}, model.name, model.aliases.length ? h("small", { class: "muted" }, ` (${model.aliases.join(", ")})`) : null),
        badge(model.enabled ? t("models.on") : t("models.off"), model.enabled ? "ok" : "warn"),
        badge(t(`source.${model.source}`)),
        manage ? h("button", { type: "button", class: model.enabled ? "ghost danger kill-switch" : "primary kill-switch",
          on: { click: () => killSwitch(model, redraw) } }, model.enabled ? t("models.switch_off") : t("models.switch_on")) : null,
        editable ? h("button", { type: "button", class: "ghost danger", on: { click: () => removeModel(model, redraw) } }, t("common.delete")) : null),
      h("div", { class: "model-routing" },
        h("label", { for: `routing-${model.name}` }, t("models.routing")), " ",
        h("select", { id: `routing-${model.name}`, name: "routing", disabled: !editable, on: { change: (e) => { state.routing = e.target.value; draw(); } } },
          ROUTING.map((mode) => h("option", { value: mode, selected: mode === state.routing }, t(`routing.${mode}`)))),
        h("small", { class: "muted" }, ` ${t(`routing.${state.routing}.hint`)}`)),
      peersTable(model, state, providers, traffic, editable, draw),
      traffic ? trafficBars(state, traffic) : null,
      traffic ? projection(model, state, traffic) : null,
      traffic ? latency(traffic) : null,
      errorLine,
      editable ? h("div", { class: "actions" },
        h("button", { type: "button", class: "primary save-routing", on: { click: () => save(model, state, card, errorLine, redraw) } }, t("models.save_routing"))) : null);
  }
  draw();
  return card;
}

function peersTable(model, state, providers, traffic, editable, draw) {
  // A peer without prices of its own is charged the model's.
  const fallback = (key) => (key === "weight" ? null : String(model[key]));
  const requests = new Map((traffic ? traffic.byPeer : []).map((row) => [row.provider, row]));
  const number = (route, index, key, step, label) => (editable
    ? h("input", { type: "number", min: 0, step, value: route[key] ?? "", "aria-label": `${label} · ${route.provider}`, placeholder: fallback(key),
      dataset: { path: `routes.${index}.${key}` }, class: "narrow",
      on: { input: (e) => { route[key] = e.target.value === "" ? null : Number(e.target.value); } } })
    : String(route[key] ?? fallback(key) ?? "—"));
  const rows = state.routes.map((route, index) => {
    const seen = requests.get(route.provider);
    return h("tr", { dataset: { peer: route.provider } },
      h("th", { scope: "row" }, route.provider, route.model ? h("small", { class: "muted" }, ` → ${route.model}`) : null),
      h("td", {}, number(route, index, "weight", 1, t("models.weight"))),
      h("td", {}, number(route, index, "input_price_per_million", "any", t("models.input_price"))),
      h("td", {}, number(route, index, "output_price_per_million", "any", t("models.output_price"))),
      h("td", { class: "peer-requests" }, seen ? String(seen.requests) : "0"),
      h("td", {}, seen ? milliseconds(seen.avg_duration_ms) : "—"),
      h("td", {}, editable && state.routes.length > 1 ? h("button", { type: "button", class: "ghost danger", on: { click: () => { state.routes.splice(index, 1); draw(); } } }, t("common.remove")) : ""));
  });
  const unused = providers.filter((p) => !state.routes.some((r) => r.provider === p.name));
  const adder = editable && unused.length ? h("div", { class: "inline-form" },
    h("select", { "aria-label": t("models.add_peer"), class: "new-peer" }, unused.map((p) => h("option", { value: p.name }, p.name))),
    h("button", { type: "button", class: "ghost", on: { click: (e) => {
      const provider = e.target.previousElementSibling.value;
      state.routes.push({ provider, weight: 1, model: null, input_price_per_million: null, output_price_per_million: null });
      draw();
    } } }, t("models.add_peer"))) : null;
  return h("div", {}, h("div", { class: "table-wrap" }, h("table", { class: "peers" },
    h("thead", {}, h("tr", {}, [t("models.peer"), t("models.weight"), t("models.input_price"), t("models.output_price"),
      t("models.requests_hour"), t("models.latency_hour"), ""].map((label) => h("th", { scope: "col" }, label)))),
    h("tbody", {}, rows))), adder);
}

// The weights as configured beside the traffic each peer really got in the last hour.
function trafficBars(state, traffic) {
  const served = new Map(traffic.byPeer.map((row) => [row.provider, row.requests]));
  const parts = (value) => state.routes.map((r, i) => ({ label: r.provider, value: value(r), className: PEER_CLASSES[i % PEER_CLASSES.length] }));
  return h("div", { class: "traffic" },
    h("div", { class: "traffic-row" }, h("span", { class: "muted" }, t("models.configured")),
      shareBar(parts((r) => (state.routing === "weighted" ? r.weight || 0 : 0)), t("models.configured"))),
    h("div", { class: "traffic-row" }, h("span", { class: "muted" }, t("models.served_hour")),
      shareBar(parts((r) => served.get(r.provider) || 0), t("models.served_hour"))));
}

// What the last 24 hours' tokens of this model would cost routed by the weights, or to the cheapest peer (the
// cost mode), beside what they did cost.
function projection(model, state, traffic) {
  const day = traffic.lastDay;
  if (!day || !(day.input_tokens || day.output_tokens)) return h("p", { class: "muted projection" }, t("models.no_tokens_day"));
  const price = (route, key) => route[`${key}_price_per_million`] ?? model[`${key}_price_per_million`];
  const cost = (route) => (day.input_tokens * price(route, "input") + day.output_tokens * price(route, "output")) / 1e6;
  const weighted = state.routes.filter((r) => r.weight > 0);
  const total = weighted.reduce((sum, r) => sum + r.weight, 0);
  const manual = total ? weighted.reduce((sum, r) => sum + (r.weight / total) * cost(r), 0) : 0;
  const cheapest = Math.min(...state.routes.map(cost));
  const usd = (value) => `$${value.toFixed(value < 1 ? 4 : 2)}`;
  return h("p", { class: "projection" }, t("models.projection", {
    tokens: (day.input_tokens + day.output_tokens).toLocaleString(), manual: usd(manual), auto: usd(cheapest), actual: usd(day.usd),
  }));
}

function latency(traffic) {
  const byPeriod = new Map(traffic.perMinute.map((row) => [row.period, row.avg_duration_ms]));
  const points = lastHourPeriods(traffic.now).map((period) => byPeriod.get(period) ?? null);
  const last = [...points].reverse().find((p) => p !== null);
  const text = last === undefined ? t("models.no_latency") : t("models.latency_now", { ms: milliseconds(last) });
  return h("div", { class: "latency" }, h("span", { class: "muted" }, t("models.latency_60")), sparkline(points, `${t("models.latency_60")}: ${text}`),
    h("small", {}, text));
}

function milliseconds(value) {
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
}

async function save(model, state, card, errorLine, redraw) {
  errorLine.hidden = true;
  for (const input of card.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  try {
    await api("PATCH", `/api/ai/models/${encodeURIComponent(model.name)}`, { routing: state.routing, routes: state.routes });
    toast(t("models.saved", { name: model.name }));
    redraw();
  } catch (error) {
    // A refused weight or price is marked at its input; the message names it.
    for (const problem of error.fields || []) {
      const input = card.querySelector(`[data-path="${problem.field}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
    }
    errorLine.textContent = (error.fields || []).length
      ? error.fields.map((f) => `${f.field}: ${f.message}`).join("; ") : error.message;
    errorLine.hidden = false;
  }
}

async function killSwitch(model, redraw) {
  const question = model.enabled ? t("models.confirm_off", { name: model.name }) : t("models.confirm_on", { name: model.name });
  if (!window.confirm(question)) return;
  await api("PATCH", `/api/ai/models/${encodeURIComponent(model.name)}`, { enabled: !model.enabled })
    .then(() => { toast(model.enabled ? t("models.switched_off", { name: model.name }) : t("models.switched_on", { name: model.name })); redraw(); },
      (e) => toast(e.message, "error"));
}

async function removeModel(model, redraw) {
  if (!window.confirm(t("models.confirm_delete", { name: model.name }))) return;
  await api("DELETE", `/api/ai/models/${encodeURIComponent(model.name)}`).then(redraw, (e) => toast(e.message, "error"));
}

async function removeProvider(provider, redraw) {
  if (!window.confirm(t("providers.confirm_delete", { name: provider.name }))) return;
  await api("DELETE", `/api/ai/providers/${encodeURIComponent(provider.name)}`).then(redraw, (e) => toast(e.message, "error"));
}

// Add (provider null) or change a provider; only the fields its type uses are shown. The key is never shown:
// left empty on a change, the stored one is kept.
function editProvider(provider, redraw) {
  const p = provider || { type: "openai" };
  const node = form({
    fields: [
      ...(provider ? [] : [{ name: "name", label: t("providers.name"), required: true, placeholder: "openai-main" }]),
      { name: "type", label: t("providers.type"), type: "select", value: p.type, options: TYPES.map((v) => ({ value: v, label: v })) },
      { name: "base_url", label: t("providers.base_url"), value: p.base_url || "", placeholder: "https://api.openai.com", hint: t("providers.base_url_hint") },
      { name: "api_key", label: t("providers.api_key"), type: "password", hint: provider ? t("providers.api_key_keep") : t("providers.api_key_hint") },
      { name: "api_version", label: t("providers.api_version"), value: p.api_version || "2024-10-21" },
      { name: "region", label: t("providers.region"), value: p.region || "" },
      { name: "aws_access_key_id", label: t("providers.aws_access_key_id"), value: p.aws_access_key_id || "" },
      { name: "timeout_seconds", label: t("providers.timeout"), type: "number", min: 1, value: p.timeout_seconds || 600 },
    ],
    submitLabel: provider ? t("common.save") : t("providers.add"), onCancel: () => close(),
    onSubmit: async (values) => {
      const body = { type: values.type, timeout_seconds: values.timeout_seconds };
      for (const [name, types] of Object.entries(TYPE_FIELDS)) {
        if (types.includes(values.type) && values[name] !== "") body[name] = values[name];
      }
      if (provider) {
        await api("PATCH", `/api/ai/providers/${encodeURIComponent(provider.name)}`, body);
      } else {
        await api("POST", "/api/ai/providers", { name: values.name, ...body });
      }
      close();
      toast(t("providers.saved", { name: provider ? provider.name : values.name }));
      redraw();
    },
  });
  const type = node.querySelector("select[name=type]");
  const sync = () => {
    for (const [name, types] of Object.entries(TYPE_FIELDS)) node.querySelector(`[data-field=${name}]`).hidden = !types.includes(type.value);
  };
  type.addEventListener("change", sync);
  sync();
  const close = openDialog(provider ? t("providers.edit", { name: provider.name }) : t("providers.add"), node);
}

function createModel(providers, redraw) {
  const close = openDialog(t("models.add"), form({
    fields: [
      { name: "name", label: t("models.name"), required: true, placeholder: "gpt-4o" },
      { name: "aliases", label: t("models.aliases"), hint: t("models.aliases_hint") },
      { name: "provider", label: t("models.first_peer"), type: "select", value: providers[0].name, options: providers.map((p) => ({ value: p.name, label: p.name })) },
      { name: "routing", label: t("models.routing"), type: "select", value: "weighted", options: ROUTING.map((v) => ({ value: v, label: t(`routing.${v}`) })) },
      { name: "input_price_per_million", label: t("models.input_price"), type: "number", min: 0, step: "any", value: 0 },
      { name: "output_price_per_million", label: t("models.output_price"), type: "number", min: 0, step: "any", value: 0 },
    ],
    submitLabel: t("models.add"), onCancel: () => close(),
    onSubmit: async (values) => {
      await api("POST", "/api/ai/models", {
        name: values.name, aliases: values.aliases.split(/[\s,]+/).filter(Boolean), routing: values.routing,
        routes: [{ provider: values.provider, weight: 1 }],
        input_price_per_million: values.input_price_per_million ?? 0, output_price_per_million: values.output_price_per_million ?? 0,
      });
      close();
      toast(t("models.created", { name: values.name }));
      redraw();
    },
  }));
}
