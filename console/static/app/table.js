// Tables of API items: columns say how each cell reads from an item.
import { h } from "./dom.js";

// columns: [{label, cell: (item) => Node | string}]
export function table(columns, items, empty) {
  if (!items.length) return h("p", { class: "muted empty" }, empty);
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
    h("tbody", {}, items.map((item) => h("tr", {}, columns.map((c) => h("td", { dataset: { label: c.label } }, c.cell(item))))))));
}

export function badge(text, kind = "") {
  return h("span", { class: ["badge", kind] }, text);
}
