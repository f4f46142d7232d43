// Settings: body capture per surface, body_max_bytes, body retention and admin-defined redaction patterns.
// Changes apply on every instance without a restart.
import { api } from "../api.js";
import { h, toast } from "../dom.js";
import { form } from "../forms.js";
import { t } from "../i18n.js";

export async function render({ redraw }) {
  const current = await api("GET", "/api/settings/audit");
  return h("section", { class: "page" },
    h("h1", {}, t("nav.settings")),
    h("div", { class: "panel" }, h("h2", {}, t("settings.capture")), h("p", { class: "muted" }, t("settings.capture_hint")), form({
      fields: [
        { name: "ai_request_bodies", label: t("settings.ai_request_bodies"), type: "checkbox", value: current.ai_request_bodies },
        { name: "ai_response_bodies", label: t("settings.ai_response_bodies"), type: "checkbox", value: current.ai_response_bodies },
        { name: "mcp_arguments", label: t("settings.mcp_arguments"), type: "checkbox", value: current.mcp_arguments },
        { name: "mcp_results", label: t("settings.mcp_results"), type: "checkbox", value: current.mcp_results },
        { name: "body_max_bytes", label: t("settings.body_max_bytes"), type: "number", required: true, min: 1024, max: 1048576,
          value: current.body_max_bytes, hint: t("settings.body_max_bytes_hint") },
        { name: "body_retention_days", label: t("settings.body_retention_days"), type: "number", required: true, min: 0, max: 36500,
          value: current.body_retention_days, hint: t("settings.body_retention_hint") },
        { name: "redaction_patterns", label: t("settings.redaction_patterns"), type: "textarea", rows: 4,
          value: current.redaction_patterns.map((p) => `${p.name}=${p.pattern}`).join("\n"), hint: t("settings.redaction_hint") },
      ],
      onSubmit: async (values) => {
        const patterns = values.redaction_patterns.split("\n").map((line) => line.trim()).filter(Boolean).map((line) => {
          const at = line.indexOf("=");
          return at > 0 ? { name: line.slice(0, at).trim(), pattern: line.slice(at + 1) } : { name: line, pattern: "" };
        });
        await api("PUT", "/api/settings/audit", { ...values, redaction_patterns: patterns });
        toast(t("settings.saved"));
        redraw();
      },
    })));
}
