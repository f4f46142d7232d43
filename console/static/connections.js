// The connections page: a row per per-user upstream, with the user's accounts and the actions on them.
import { api, describe } from "./app/api.js";

const STATES = {
  connected: "connected", needs_authorization: "needs authorization", expired: "expired", error: "error",
  connecting: "connecting", disabled: "disabled",
};

function element(tag, text, attributes) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  return node;
}

function button(text, action) {
  const node = element("button", text, { type: "button" });
  node.addEventListener("click", () => action().catch(showProblem));
  return node;
}

function showProblem(error) {
  const box = document.querySelector("main .error");
  box.textContent = describe(error);
  box.hidden = false;
}

async function authorize(server, label) {
  const answer = await api("POST", `/api/connections/${server}/authorize`, { label });
  window.location.assign(answer.authorize_url);
}

function accountCell(item) {
  const cell = element("td");
  for (const account of item.accounts) {
    const line = element("div", `${account.label}${account.default ? " (default)" : ""}: `
      + `${STATES[account.state] || account.state} ${account.upstream_subject}`);
    if (account.detail) line.appendChild(element("span", ` — ${account.detail}`, { class: "muted" }));
    if (item.mode === "oauth") line.appendChild(button("Re-authorize", () => authorize(item.server, account.label)));
    if (!account.default) {
      line.appendChild(button("Make default", async () => {
        await api("POST", `/api/connections/${item.server}/${account.label}/default`);
        await load();
      }));
    }
    line.appendChild(button("Disconnect", async () => {
      await api("DELETE", `/api/connections/${item.server}/${account.label}`);
      await load();
    }));
    cell.appendChild(line);
  }
  return cell;
}

function linkCell(item) {
  const cell = element("td");
  if (item.ownership === "shared") {
    cell.appendChild(element("span", "shared: Warden's own credential", { class: "muted" }));
    return cell;
  }
  const label = element("input", undefined, { "aria-label": `Account label for ${item.server}`, value: "default" });
  cell.appendChild(label);
  if (item.mode === "oauth") {
    cell.appendChild(button("Connect", () => authorize(item.server, label.value)));
  } else {
    const token = element("input", undefined, { type: "password", "aria-label": `Personal token for ${item.server}` });
    cell.appendChild(token);
    cell.appendChild(button("Add token", async () => {
      await api("POST", `/api/connections/${item.server}/tokens`, { label: label.value, token: token.value });
      await load();
    }));
  }
  return cell;
}

function testCell(item) {
  const cell = element("td");
  const verdict = element("output", "", { class: "verdict", "aria-live": "polite" });
  cell.appendChild(button("Test connection", async () => {
    verdict.textContent = "testing…";
    const report = await api("POST", `/api/connections/${item.server}/test`, {});
    verdict.textContent = `${report.verdict}: ${report.detail}`;
  }));
  cell.appendChild(verdict);
  return cell;
}

async function load() {
  const body = document.getElementById("connections");
  const data = await api("GET", "/api/connections");
  body.replaceChildren();
  for (const item of data.items) {
    const row = element("tr", undefined, { "data-server": item.server });
    row.appendChild(element("th", item.server, { scope: "row" }));
    row.appendChild(element("td", STATES[item.state] || item.state, { class: "state" }));
    row.appendChild(accountCell(item));
    row.appendChild(linkCell(item));
    row.appendChild(testCell(item));
    body.appendChild(row);
  }
}

document.addEventListener("DOMContentLoaded", () => load().catch(showProblem));
