// The MCP Store: ready-made upstream servers, shipped and added by admins; installing one asks for a name, a
// display label and the template's inputs, and registers the server the template makes. Each card says which
// servers were installed from it.
import { api, ApiError } from "../api.js";
import { h, toast } from "../dom.js";
import { form, openDialog } from "../forms.js";
import { currentLanguage, t } from "../i18n.js";
import { can, navigate } from "../session.js";
import { badge } from "../table.js";
import { openWizard } from "../wizard.js";

export async function render({ redraw }) {
  const [templates, servers] = await Promise.all([api("GET", "/api/store/templates").then((r) => r.items),
    api("GET", "/api/mcp/servers").then((r) => r.items)]);
  const installs = (template) => servers.filter((s) => s.template === template.id);
  const text = (value) => value[currentLanguage()] || value.en;
  const grid = h("div", { class: "store-grid" });
  const search = h("input", { type: "search", id: "store-search", placeholder: t("store.search"), "aria-label": t("store.search") });
  const categories = [...new Set(templates.map((tpl) => tpl.category))].sort();
  const category = h("select", { id: "store-category", "aria-label": t("store.category") },
    h("option", { value: "" }, t("store.all_categories")), categories.map((c) => h("option", { value: c }, t(`category.${c}`))));
  function show() {
    const wanted = search.value.trim().toLowerCase();
    grid.replaceChildren(...templates.filter((tpl) => (!category.value || tpl.category === category.value)
      && (!wanted || `${text(tpl.name)} ${text(tpl.description)} ${tpl.id}`.toLowerCase().includes(wanted)))
      .map((tpl) => card(tpl, text, installs(tpl), redraw)));
  }
  search.addEventListener("input", show);
  category.addEventListener("change", show);
  show();
  return h("section", { class: "page" },
    h("div", { class: "page-head" }, h("h1", {}, t("nav.store")), search, category,
      can("mcp_servers:manage") ? h("button", { type: "button", class: "ghost", id: "add-template", on: { click: () => addTemplate(redraw) } }, t("store.add_private")) : null),
    h("p", { class: "muted" }, t("store.intro")), grid);
}

function card(template, text, installed, redraw) {
  const icon = h("span", { class: "store-icon", "aria-hidden": "true" }, template.icon.glyph);
  icon.style.backgroundColor = template.icon.color; // CSSOM, allowed by the content security policy
  return h("article", { class: "store-card", dataset: { template: template.id } },
    h("div", { class: "store-card-head" }, icon, h("div", {}, h("h2", {}, text(template.name)),
      h("span", { class: "muted" }, `${t(`category.${template.category}`)} · ${t(`transport.${template.transport}`)} · ${t(`auth_mode.${template.auth.mode}`)}`))),
    h("p", {}, template.private ? [badge(t("store.private"), "accent"), " "] : null, text(template.description)),
    h("p", { class: "hint" }, text(template.notes)),
    installed.length ? h("p", { class: "installed" }, t("store.installed_as"), " ",
      installed.map((s, i) => [i ? ", " : "", h("a", { href: `/servers/${encodeURIComponent(s.name)}`, "data-link": true }, s.label)])) : null,
    h("div", { class: "actions" },
      can("mcp_servers:manage") ? h("button", { type: "button", class: "primary", on: { click: () => install(template, text, installed) } }, t("store.install")) : null,
      template.docs_url ? h("a", { href: template.docs_url, target: "_blank", rel: "noopener noreferrer" }, t("store.docs")) : null,
      template.private && can("mcp_servers:manage") ? h("button", { type: "button", class: "ghost danger", on: { click: () => removeTemplate(template, text, redraw) } }, t("common.delete")) : null));
}

// The template's inputs, then the registration wizard pre-filled with the server they make.
function install(template, text, installed) {
  // A second install of one template needs a name of its own, and a label telling the two apart.
  const again = installed.length > 0;
  const fields = [
    { name: "name", label: t("store.server_name"), required: true, value: again ? `${template.id}-${installed.length + 1}` : template.id, hint: t("store.server_name_hint") },
    { name: "label", label: t("store.label"), value: text(template.name), hint: t("store.label_hint", { example: `${text(template.name)} (work)` }) },
    ...(template.inputs || []).map((input) => ({
      name: `input_${input.name}`, label: text(input.label), required: true, type: input.secret ? "password" : "text",
      placeholder: input.example || "",
    })),
  ];
  const close = openDialog(t("store.install_title", { name: text(template.name) }), h("p", { class: "hint" }, text(template.notes)), form({
    fields, submitLabel: t("store.install"), onCancel: () => close(),
    onSubmit: async (values) => {
      const inputs = Object.fromEntries((template.inputs || []).map((input) => [input.name, values[`input_${input.name}`]]));
      const definition = await api("POST", `/api/store/templates/${template.id}/definition`, { name: values.name, inputs, label: values.label })
        .catch((error) => {
          // The API names an input as inputs.<name>; this form's field for it is input_<name>.
          for (const problem of error.fields || []) problem.field = String(problem.field).replace(/^inputs\./, "input_");
          throw error;
        });
      close();
      openWizard(definition, () => navigate("/servers"));
    },
  }));
}

// A private template: the document as store_templates/schema.json describes it, refused with where it is wrong.
function addTemplate(redraw) {
  const close = openDialog(t("store.add_private"), h("p", { class: "hint" }, t("store.add_private_hint")), form({
    fields: [{ name: "template", label: t("store.template_json"), type: "textarea", rows: 16, required: true }],
    submitLabel: t("store.add_template"), onCancel: () => close(),
    onSubmit: async (values) => {
      let document;
      try {
        document = JSON.parse(values.template);
      } catch (error) {
        throw new ApiError(422, error.message, [{ field: "template", message: t("store.not_json", { problem: error.message }) }]);
      }
      try {
        await api("POST", "/api/store/templates", { template: document });
      } catch (error) {
        // Every problem at the one field, each with its place in the document.
        if (!(error instanceof ApiError) || !error.fields.length) throw error;
        throw new ApiError(error.status, error.message, [{ field: "template", message: error.fields
          .map((f) => `${String(f.field).replace(/^template\.?/, "") || "(document)"}: ${f.message}`).join("; ") }]);
      }
      close();
      toast(t("store.template_added", { id: document.id }));
      redraw();
    },
  }));
}

async function removeTemplate(template, text, redraw) {
  if (!window.confirm(t("store.confirm_remove", { name: text(template.name) }))) return;
  await api("DELETE", `/api/store/templates/${encodeURIComponent(template.id)}`).then(redraw, (e) => toast(e.message, "error"));
}
