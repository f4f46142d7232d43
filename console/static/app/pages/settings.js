// Settings: body capture per surface, body_max_bytes, body retention and admin-defined redaction patterns; how long
// audit events are kept; the quota fail mode and budget alert thresholds. Changes apply on every instance without
// a restart.
import { api, ApiError } from "../api.js";
import { h, toast } from "../dom.js";
import { form } from "../forms.js";
import { t } from "../i18n.js";

export async function render({ redraw }) {
  const [current, retention, quotas] = await Promise.all([api("GET", "/api/settings/audit"),
    api("GET", "/api/settings/retention"), api("GET", "/api/settings/quotas")]);
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
    })),
    h("div", { class: "panel", id: "retention-settings" }, h("h2", {}, t("settings.retention")), form({
      fields: [
        { name: "retention_days", label: t("settings.retention_days"), type: "number", required: true, min: 0, max: 36500,
          value: retention.retention_days, hint: t("settings.retention_days_hint") },
        { name: "retention_days_by_kind", label: t("settings.retention_by_kind"), type: "textarea", rows: 3,
          value: Object.entries(retention.retention_days_by_kind).map(([kind, days]) => `${kind}=${days}`).join("\n"),
          hint: t("settings.retention_by_kind_hint") },
      ],
      onSubmit: async (values) => {
        const byKind = {};
        for (const line of values.retention_days_by_kind.split("\n").map((l) => l.trim()).filter(Boolean)) {
          const [kind, days] = line.split("=").map((part) => part.trim());
          if (!kind || days === undefined || !/^\d+$/.test(days)) {
            throw new ApiError(422, t("settings.kind_days"), [{ field: "retention_days_by_kind", message: t("settings.kind_days") }]);
          }
          byKind[kind] = Number(days);
        }
        await api("PUT", "/api/settings/retention", { retention_days: values.retention_days, retention_days_by_kind: byKind });
        toast(t("settings.saved"));
        redraw();
      },
    })),
    h("div", { class: "panel", id: "quota-settings" }, h("h2", {}, t("settings.quotas")), form({
      fields: [
        { name: "fail_mode", label: t("settings.fail_mode"), type: "select", value: quotas.fail_mode, hint: t("settings.fail_mode_hint"),
          options: [{ value: "open", label: t("settings.fail_open") }, { value: "closed", label: t("settings.fail_closed") }] },
        { name: "alert_thresholds", label: t("settings.alert_thresholds"), value: quotas.alert_thresholds.join(", "), hint: t("settings.alert_thresholds_hint") },
      ],
      onSubmit: async (values) => {
        // Each number as typed (the API names one it refuses); words that are no number are refused here.
        const parts = values.alert_thresholds.split(/[\s,%]+/).filter(Boolean);
        const thresholds = parts.map(Number);
        if (thresholds.some(Number.isNaN)) throw new ApiError(422, t("settings.not_numbers"), [{ field: "alert_thresholds", message: t("settings.not_numbers") }]);
        await api("PUT", "/api/settings/quotas", { fail_mode: values.fail_mode, alert_thresholds: thresholds });
        toast(t("settings.saved"));
        redraw();
      },
    })));
}
