// How Warden authenticates to an upstream MCP server, as form fields: only the chosen mode's, shared by the
// registration wizard and a registered server's edit form.
import { t } from "./i18n.js";

export const MODES = ["none", "static", "personal_token", "oauth"];

// mode: the chosen mode; auth: the values to start from; value(name, fallback): what the user already typed;
// options: {secretRequired, secretHint, showClient, scopesHint}
export function authFields(mode, auth, value, options = {}) {
  const fields = [{ name: "mode", label: t("wizard.auth_mode"), type: "select", value: mode,
    options: MODES.map((m) => ({ value: m, label: t(`auth_mode.${m}`) })) }];
  if (mode === "static" || mode === "personal_token") {
    fields.push({ name: "header", label: t("wizard.header"), value: value("header", auth.header || "Authorization") },
      { name: "template", label: t("wizard.template"), value: value("template", auth.template || "Bearer {token}"), hint: t("wizard.template_hint") });
  }
  if (mode === "static") {
    fields.push({ name: "secret", label: t("wizard.secret"), type: "password", required: Boolean(options.secretRequired),
      hint: options.secretHint || t("wizard.secret_hint") });
  }
  if (mode === "oauth") {
    fields.push({ name: "ownership", label: t("wizard.ownership"), type: "select", value: value("ownership", auth.ownership || "per_user"),
      options: ["per_user", "shared"].map((o) => ({ value: o, label: t(`ownership.${o}`) })) },
    { name: "scopes", label: t("wizard.scopes"), value: value("scopes", (auth.scopes || []).join(" ")), hint: options.scopesHint || t("wizard.scopes_hint") });
    if (options.showClient) {
      fields.push({ name: "client_id", label: t("wizard.client_id"), required: Boolean(options.clientRequired), value: value("client_id", auth.client_id || "") },
        { name: "client_secret", label: t("wizard.client_secret"), type: "password", hint: options.clientSecretHint });
    }
  }
  return fields;
}

// The auth block the API takes from those fields; secrets left empty are left out (the API keeps stored ones).
export function authFromValues(values, secret) {
  const auth = { mode: values.mode };
  if (values.mode === "static" || values.mode === "personal_token") Object.assign(auth, { header: values.header, template: values.template });
  if (values.mode === "static" && (values.secret || secret)) auth.secret = values.secret || secret;
  if (values.mode === "personal_token") auth.ownership = "per_user";
  if (values.mode === "oauth") {
    Object.assign(auth, { ownership: values.ownership, scopes: values.scopes.split(/\s+/).filter(Boolean) });
    if (values.client_id) auth.client_id = values.client_id;
    if (values.client_secret) auth.client_secret = values.client_secret;
  }
  return auth;
}
