// Translations: every label the console shows comes from /static/i18n/<language>.json by key.

export const LANGUAGES = ["en", "zh"];
const STORED = "warden.language";
let messages = {};
let language = "en";

export function chosenLanguage() {
  const stored = localStorage.getItem(STORED);
  if (LANGUAGES.includes(stored)) return stored;
  return (navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en";
}

export async function loadLanguage(wanted) {
  language = LANGUAGES.includes(wanted) ? wanted : "en";
  const response = await fetch(`/static/i18n/${language}.json`);
  messages = await response.json();
  document.documentElement.lang = language === "zh" ? "zh-CN" : "en";
  return language;
}

export function setLanguage(wanted) {
  localStorage.setItem(STORED, wanted);
}

export function currentLanguage() {
  return language;
}

// t("users.created", {email}) -> the message with {email} filled in; an unknown key shows as itself.
export function t(key, values) {
  const text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
  return values ? text.replace(/\{(\w+)\}/g, (all, name) => (name in values ? String(values[name]) : all)) : text;
}

// Static markup names its texts with data-i18n (text) and data-i18n-<attribute> (e.g. placeholder).
export function translateMarkup(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("*")) {
    for (const name of Object.keys(node.dataset)) {
      if (name.startsWith("i18n") && name.length > 4) {
        const attribute = name.slice(4).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).replace(/^-/, "");
        node.setAttribute(attribute, t(node.dataset[name]));
      }
    }
  }
}
