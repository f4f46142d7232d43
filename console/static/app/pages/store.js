// The MCP Store: ready-made upstream servers; installing one asks for a name and the template's inputs, and
// registers the server the template makes.
import { api } from "../api.js";
import { h } from "../dom.js";
import { form, openDialog } from "../forms.js";
import { currentLanguage, t } from "../i18n.js";
import { can, navigate } from "../session.js";
import { openWizard } from "../wizard.js";

export async function render() {
  const templates = (await api("GET", "/api/store/templates")).items;
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
      .map((tpl) => card(tpl, text)));
  }
  search.addEventListener("input", show);
  category.addEventListener("change", show);
  show();
  return h("section", { class: "page" },
    h("div", { class: "page-head" }, h("h1", {}, t("nav.store")), search, category),
    h("p", { class: "muted" }, t("store.intro")), grid);
}

function card(template, text) {
  const icon = h("span", { class: "store-icon", "aria-hidden": "true" }, template.icon.glyph);
  icon.style.backgroundColor = template.icon.color; // CSSOM, allowed by the content security policy
  return h("article", { class: "store-card", dataset: { template: template.id } },
    h("div", { class: "store-card-head" }, icon, h("div", {}, h("h2", {}, text(template.name)),
      h("span", { class: "muted" }, `${t(`category.${template.category}`)} · ${t(`transport.${template.transport}`)} · ${t(`auth_mode.${template.auth.mode}`)}`))),
    h("p", {}, text(template.description)),
    h("p", { class: "hint" }, text(template.notes)),
    h("div", { class: "actions" },
      can("mcp_servers:manage") ? h("button", { type: "button", class: "primary", on: { click: () => install(template, text) } }, t("store.install")) : null,
      template.docs_url ? h("a", { href: template.docs_url, target: "_blank", rel: "noopener noreferrer" }, t("store.docs")) : null));
}

// The template's inputs, then the registration wizard pre-filled with the server they make.
function install(template, text) {
  const fields = [
    { name: "name", label: t("store.server_name"), required: true, value: template.id, hint: t("store.server_name_hint") },
    ...(template.inputs || []).map((input) => ({
      name: `input_${input.name}`, label: text(input.label), required: true, type: input.secret ? "password" : "text",
      placeholder: input.example || "",
    })),
  ];
  const close = openDialog(t("store.install_title", { name: text(template.name) }), h("p", { class: "hint" }, text(template.notes)), form({
    fields, submitLabel: t("store.install"), onCancel: () => close(),
    onSubmit: async (values) => {
      const inputs = Object.fromEntries((template.inputs || []).map((input) => [input.name, values[`input_${input.name}`]]));
      const definition = await api("POST", `/api/store/templates/${template.id}/definition`, { name: values.name, inputs })
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
