// Forms whose refused input is shown next to the field it concerns, with the API's words.
import { ApiError } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";

let counter = 0;

// fields: [{name, label, type, required, hint, value, options: [{value, label}], min, max, step}]
// type: text | email | password | number | textarea | select | checkbox | checkboxes
export function form({ fields, submitLabel, onSubmit, onCancel }) {
  const prefix = `f${++counter}`;
  const controls = new Map();
  const errors = new Map();
  const general = h("p", { class: "error", role: "alert", hidden: true });
  const node = h("form", { novalidate: true, class: "form" });
  for (const field of fields) {
    const id = `${prefix}-${field.name}`;
    const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
    errors.set(field.name, error);
    const control = makeControl(field, id);
    controls.set(field.name, control);
    const hint = field.hint ? h("p", { class: "hint", id: `${id}-hint` }, field.hint) : null;
    if (field.type === "checkbox") {
      node.appendChild(h("div", { class: "field check", dataset: { field: field.name } },
        h("label", { for: id }, control, " ", field.label), hint, error));
    } else if (field.type === "checkboxes") {
      node.appendChild(h("fieldset", { class: "field", dataset: { field: field.name } },
        h("legend", {}, field.label), hint, control, error));
    } else {
      node.appendChild(h("div", { class: "field", dataset: { field: field.name } },
        h("label", { for: id }, field.label, field.required ? h("span", { class: "required", "aria-hidden": "true" }, " *") : null),
        control, hint, error));
    }
  }
  const submit = h("button", { type: "submit", class: "primary" }, submitLabel || t("common.save"));
  node.append(general, h("div", { class: "actions" }, submit,
    onCancel ? h("button", { type: "button", class: "ghost", on: { click: onCancel } }, t("common.cancel")) : null));

  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    general.hidden = true;
    for (const [name, error] of errors) {
      error.hidden = true;
      const control = controls.get(name);
      if (control.setAttribute) control.removeAttribute("aria-invalid");
    }
    const values = {};
    const missing = [];
    for (const field of fields) {
      values[field.name] = readControl(field, controls.get(field.name));
      if (field.required && (values[field.name] === "" || values[field.name] === null
          || (Array.isArray(values[field.name]) && !values[field.name].length))) missing.push(field.name);
    }
    if (missing.length) {
      for (const name of missing) showFieldError(name, t("form.required"));
      return;
    }
    submit.disabled = true;
    try {
      await onSubmit(values);
    } catch (error) {
      if (error instanceof ApiError && error.fields.length) {
        for (const problem of error.fields) {
          const name = String(problem.field).split(/[.[]/)[0];
          if (!showFieldError(name, problem.message)) showGeneral(`${problem.field}: ${problem.message}`);
        }
      } else {
        showGeneral(error.message);
      }
    } finally {
      submit.disabled = false;
    }
  });

  function showFieldError(name, message) {
    const error = errors.get(name);
    if (!error) return false;
    error.textContent = message;
    error.hidden = false;
    const control = controls.get(name);
    if (control.setAttribute) {
      control.setAttribute("aria-invalid", "true");
      control.setAttribute("aria-describedby", error.id);
    }
    return true;
  }

  function showGeneral(message) {
    general.textContent = general.hidden ? message : `${general.textContent}; ${message}`;
    general.hidden = false;
  }

  return node;
}

function makeControl(field, id) {
  const common = { id, name: field.name, required: field.required || false };
  switch (field.type) {
    case "textarea":
      return h("textarea", { ...common, rows: field.rows || 4, value: field.value ?? "" });
    case "select":
      return h("select", { ...common },
        field.options.map((o) => h("option", { value: o.value, selected: o.value === field.value }, o.label)));
    case "checkbox":
      return h("input", { ...common, type: "checkbox", checked: Boolean(field.value) });
    case "checkboxes": {
      const chosen = new Set(field.value || []);
      return h("div", { class: "choices", id, role: "group" }, field.options.map((o) => h("label", { class: "choice" },
        h("input", { type: "checkbox", name: field.name, value: o.value, checked: chosen.has(o.value) }),
        " ", h("span", {}, o.label), o.hint ? h("small", { class: "muted" }, ` ${o.hint}`) : null)));
    }
    default:
      return h("input", {
        ...common, type: field.type || "text", value: field.value ?? "", min: field.min, max: field.max,
        step: field.step, autocomplete: field.autocomplete || "off", placeholder: field.placeholder,
      });
  }
}

function readControl(field, control) {
  switch (field.type) {
    case "checkbox":
      return control.checked;
    case "checkboxes":
      return [...control.querySelectorAll("input:checked")].map((input) => input.value);
    case "number":
      return control.value.trim() === "" ? null : Number(control.value);
    default:
      return control.value.trim();
  }
}

// A modal dialog (the browser's own: focus is kept inside, Escape closes it).
export function openDialog(title, ...content) {
  const close = () => { dialog.close(); dialog.remove(); };
  const dialog = h("dialog", { class: "dialog", "aria-labelledby": "dialog-title" },
    h("div", { class: "dialog-head" }, h("h2", { id: "dialog-title" }, title),
      h("button", { type: "button", class: "ghost icon", "aria-label": t("common.close"), on: { click: close } }, "×")),
    ...content);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.appendChild(dialog);
  dialog.showModal();
  return close;
}
