// The MCP server registration wizard: where the server is, what Warden finds there (probe), then its name and
// the auth mode (only that mode's fields), registered with POST /api/mcp/servers. A Store install opens it
// pre-filled from the template.
import { api } from "./api.js";
import { authFields, authFromValues } from "./auth_fields.js";
import { h, toast } from "./dom.js";
import { form, openDialog } from "./forms.js";
import { t } from "./i18n.js";
import { badge } from "./table.js";

// prefill: a server definition ({name, transport, url | command, args, env, auth}) or nothing.
export function openWizard(prefill, onDone) {
  const state = { definition: prefill || { transport: "streamable_http" }, report: null };
  const body = h("div", { class: "wizard" });
  const close = openDialog(t("wizard.title"), body);
  showWhere();
  if (prefill) probe(prefill).catch((error) => toast(error.message, "error"));

  function showWhere() {
    const d = state.definition;
    const lines = (list) => (list || []).join("\n");
    const pairs = (map) => Object.entries(map || {}).map(([k, v]) => `${k}=${v}`).join("\n");
    body.replaceChildren(h("h3", {}, t("wizard.step_where")), form({
      fields: [
        { name: "transport", label: t("wizard.transport"), type: "select", value: d.transport,
          options: ["streamable_http", "sse", "stdio"].map((v) => ({ value: v, label: t(`transport.${v}`) })) },
        { name: "url", label: t("wizard.url"), value: d.url || "", placeholder: "https://example.com/mcp", hint: t("wizard.url_hint") },
        { name: "command", label: t("wizard.command"), value: d.command || "", placeholder: "npx", hint: t("wizard.command_hint") },
        { name: "args", label: t("wizard.args"), type: "textarea", rows: 2, value: lines(d.args), hint: t("wizard.args_hint") },
        { name: "env", label: t("wizard.env"), type: "textarea", rows: 2, value: pairs(d.env), hint: t("wizard.env_hint") },
        { name: "token", label: t("wizard.token"), type: "password", hint: t("wizard.token_hint") },
      ],
      submitLabel: t("wizard.probe"), onCancel: close,
      onSubmit: async (values) => {
        const definition = { ...state.definition, transport: values.transport };
        if (values.transport === "stdio") {
          Object.assign(definition, { command: values.command, args: splitLines(values.args), env: parsePairs(values.env) });
          delete definition.url;
        } else {
          Object.assign(definition, { url: values.url });
          delete definition.command; delete definition.args; delete definition.env;
        }
        await probe(definition, values.token);
      },
    }));
    const transport = body.querySelector("select[name=transport]");
    const sync = () => {
      const stdio = transport.value === "stdio";
      for (const name of ["url"]) body.querySelector(`[data-field=${name}]`).hidden = stdio;
      for (const name of ["command", "args", "env"]) body.querySelector(`[data-field=${name}]`).hidden = !stdio;
    };
    transport.addEventListener("change", sync);
    sync();
  }

  // Errors reach the form that asked (a refused URL is shown at its field); the where-step stays on screen.
  async function probe(definition, token) {
    const status = h("p", { class: "muted", role: "status", id: "probing" }, t("wizard.probing"));
    body.appendChild(status);
    // A stdio server may first be fetched by its package runner (npx, uvx): it gets longer to answer.
    const request = { transport: definition.transport, timeout_seconds: definition.transport === "stdio" ? 60 : 15 };
    if (definition.transport === "stdio") Object.assign(request, { command: definition.command, args: definition.args || [], env: definition.env || {} });
    else request.url = definition.url;
    if (token) request.token = token;
    try {
      state.report = await api("POST", "/api/mcp/wizard/probe", request);
    } finally {
      status.remove();
    }
    state.definition = definition;
    state.token = token;
    showRegister();
  }

  function showRegister() {
    const { report, definition } = state;
    const advice = report.auth || {};
    const auth = { ...(definition.auth || {}), ...(definition.auth && definition.auth.mode ? {} : advice) };
    const verdictKind = { tool_call_ok: "ok", auth_ok: "ok", auth_required: "accent", unreachable: "warn" }[report.verdict];
    const summary = h("div", { class: "panel", id: "probe-report" },
      h("p", {}, badge(t(`verdict.${report.verdict}`), verdictKind), " ", report.detail),
      advice.reason ? h("p", { class: "hint" }, advice.reason) : null,
      report.tools.length ? h("details", {}, h("summary", {}, t("wizard.tools_found", { count: report.tools.length })),
        h("ul", { class: "tools" }, report.tools.map((tool) => h("li", {}, h("code", {}, tool))))) : null,
      h("button", { type: "button", class: "ghost", on: { click: showWhere } }, t("wizard.back")));
    const holder = h("div");
    body.replaceChildren(h("h3", {}, t("wizard.step_register")), summary, holder);
    drawForm(auth.mode || "none");

    function drawForm(mode) {
      const entered = Object.fromEntries([...holder.querySelectorAll("[name]")].map((n) => [n.name, n.type === "checkbox" ? n.checked : n.value]));
      const value = (name, fallback) => (name in entered ? entered[name] : fallback);
      const fields = [
        { name: "name", label: t("store.server_name"), required: true, value: value("name", definition.name || ""), hint: t("store.server_name_hint") },
        ...authFields(mode, auth, value, {
          secretRequired: !state.token, secretHint: state.token ? t("wizard.secret_from_probe") : t("wizard.secret_hint"),
          showClient: advice.dcr === false || Boolean(auth.client_id), clientRequired: advice.dcr === false,
          scopesHint: advice.scopes_supported && advice.scopes_supported.length ? t("wizard.scopes_supported", { scopes: advice.scopes_supported.join(" ") }) : null,
        }),
      ];
      holder.replaceChildren(form({
        fields, submitLabel: t("wizard.register"), onCancel: close,
        onSubmit: async (values) => register(values),
      }));
      holder.querySelector("select[name=mode]").addEventListener("change", (event) => drawForm(event.target.value));
    }
  }

  async function register(values) {
    const { definition } = state;
    const auth = authFromValues(values, state.token);
    const server = { name: values.name, transport: definition.transport, auth, label: definition.label || "" };
    if (definition.template) server.template = definition.template;
    if (definition.transport === "stdio") Object.assign(server, { command: definition.command, args: definition.args || [], env: definition.env || {} });
    else server.url = definition.url;
    await api("POST", "/api/mcp/servers", server);
    close();
    toast(t("wizard.registered", { name: values.name }));
    if (onDone) onDone(values.name);
  }
}

function splitLines(text) {
  return text.split("\n").map((line) => line.trim()).filter(Boolean);
}

function parsePairs(text) {
  const result = {};
  for (const line of splitLines(text)) {
    const at = line.indexOf("=");
    if (at < 1) throw new Error(t("wizard.bad_env", { line }));
    result[line.slice(0, at).trim()] = line.slice(at + 1);
  }
  return result;
}
