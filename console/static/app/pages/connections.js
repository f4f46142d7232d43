// Connections: every per-user upstream the user may use, their linked accounts there and the actions on them
// (link by OAuth or a personal token, make default, re-authorize, disconnect, test).
import { api } from "../api.js";
import { h, toast } from "../dom.js";
import { t } from "../i18n.js";

const STATE_KIND = { connected: "ok", needs_authorization: "warn", expired: "warn", error: "warn" };

export async function render({ redraw }) {
  const query = new URLSearchParams(window.location.search);
  const linked = query.get("linked");
  if (linked) {
    toast(t("connections.linked", { server: linked }));
    window.history.replaceState(null, "", "/connections");
  }
  // A refused tool call sends the user here with ?server=: that server's row stands out.
  const wanted = query.get("server");
  const items = (await api("GET", "/api/connections")).items;
  const refresh = () => redraw();
  return h("section", { class: "page" },
    h("div", { class: "page-head" }, h("h1", {}, t("nav.connections"))),
    h("p", { class: "muted" }, t("connections.intro")),
    items.length ? h("div", { class: "table-wrap" }, h("table", { id: "connections" },
      h("thead", {}, h("tr", {}, [t("connections.server"), t("connections.state"), t("connections.accounts"),
        t("connections.link"), t("connections.test")].map((label) => h("th", { scope: "col" }, label)))),
      h("tbody", {}, items.map((item) => row(item, refresh, item.server === wanted)))))
      : h("p", { class: "muted empty" }, t("connections.none")));
}

function row(item, refresh, focus) {
  return h("tr", { dataset: { server: item.server }, class: focus ? "focus" : null },
    h("th", { scope: "row" }, item.server),
    h("td", { dataset: { label: t("connections.state") } },
      h("span", { class: ["badge", "state", STATE_KIND[item.state] || ""] }, t(`link_state.${item.state}`))),
    h("td", { dataset: { label: t("connections.accounts") } }, item.accounts.map((account) => accountLine(item, account, refresh))),
    h("td", { dataset: { label: t("connections.link") } }, linkCell(item, refresh)),
    h("td", { dataset: { label: t("connections.test") } }, testCell(item)));
}

// An action that reports a refusal as a toast and redraws the page when it succeeded.
function action(label, run, refresh, kind = "ghost") {
  return h("button", { type: "button", class: kind, on: { click: () => run().then(refresh, (e) => toast(e.message, "error")) } }, label);
}

function accountLine(item, account, refresh) {
  const path = `/api/connections/${encodeURIComponent(item.server)}/${encodeURIComponent(account.label)}`;
  return h("div", { class: "account" },
    h("span", {}, account.default ? t("connections.account_default", { label: account.label }) : account.label, ": ",
      t(`link_state.${account.state}`), " ", h("small", { class: "muted" }, account.upstream_subject)),
    account.detail ? h("small", { class: "muted" }, ` — ${account.detail}`) : null,
    h("span", { class: "row-actions" },
      item.mode === "oauth" ? h("button", { type: "button", class: "ghost", on: { click: () => authorize(item.server, account.label) } }, t("connections.reauthorize")) : null,
      account.default ? null : action(t("connections.make_default"), () => api("POST", `${path}/default`), refresh),
      action(t("connections.disconnect"), () => api("DELETE", path), refresh, "ghost danger")));
}

async function authorize(server, label) {
  try {
    const answer = await api("POST", `/api/connections/${encodeURIComponent(server)}/authorize`, { label });
    window.location.assign(answer.authorize_url);
  } catch (error) {
    toast(error.message, "error");
  }
}

function linkCell(item, refresh) {
  if (item.ownership === "shared") return h("span", { class: "muted" }, t("connections.shared"));
  const label = h("input", { "aria-label": t("connections.label_for", { server: item.server }), value: "default", size: 10 });
  if (item.mode === "oauth") {
    return h("div", { class: "inline-form" }, label,
      h("button", { type: "button", class: "primary", on: { click: () => authorize(item.server, label.value) } }, t("connections.connect")));
  }
  const token = h("input", { type: "password", autocomplete: "off", "aria-label": t("connections.token_for", { server: item.server }) });
  return h("div", { class: "inline-form" }, label, token,
    action(t("connections.add_token"), () => api("POST", `/api/connections/${encodeURIComponent(item.server)}/tokens`,
      { label: label.value, token: token.value }), refresh, "primary"));
}

function testCell(item) {
  const verdict = h("output", { class: "verdict", "aria-live": "polite" });
  const run = async () => {
    verdict.textContent = t("connections.testing");
    try {
      const report = await api("POST", `/api/connections/${encodeURIComponent(item.server)}/test`, {});
      verdict.textContent = `${report.verdict}: ${report.detail}`;
      verdict.dataset.verdict = report.verdict;
    } catch (error) {
      verdict.textContent = error.message;
    }
  };
  return h("div", {}, h("button", { type: "button", class: "ghost", on: { click: run } }, t("connections.test_connection")), " ", verdict);
}
