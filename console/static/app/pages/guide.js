// The set-up guide: copy-paste configuration for MCP clients, coding agents and SDKs, with this gateway's
// address and a placeholder for the user's key.
import { api } from "../api.js";
import { h } from "../dom.js";
import { t } from "../i18n.js";

const KEY = "<YOUR_WARDEN_KEY>";

export async function render() {
  const gateway = await api("GET", "/api/console/gateway");
  // Unless an address is configured, the gateway is on this host, at the listener's port.
  const base = gateway.public ? gateway.url : `${window.location.protocol}//${window.location.hostname}:${new URL(gateway.url).port}`;
  const mcp = `${base}/mcp`;
  const json = (value) => JSON.stringify(value, null, 2);
  const sections = [
    [t("guide.claude_code"), t("guide.claude_code_note"), "sh",
      `claude mcp add --transport http warden ${mcp} \\\n  --header "Authorization: Bearer ${KEY}"\n\n# Claude Code's own model calls through Warden's /v1/messages:\nexport ANTHROPIC_BASE_URL=${base}\nexport ANTHROPIC_AUTH_TOKEN=${KEY}`],
    [t("guide.claude_desktop"), t("guide.claude_desktop_note"), "json", json({ mcpServers: { warden: {
      command: "npx", args: ["-y", "mcp-remote", mcp, "--header", "Authorization: Bearer ${WARDEN_KEY}"], env: { WARDEN_KEY: KEY } } } })],
    [t("guide.cursor"), t("guide.cursor_note"), "json", json({ mcpServers: { warden: { url: mcp, headers: { Authorization: `Bearer ${KEY}` } } } })],
    [t("guide.continue"), t("guide.continue_note"), "yaml",
      `models:\n  - name: Warden\n    provider: openai\n    model: gpt-4o\n    apiBase: ${base}/v1\n    apiKey: ${KEY}\nmcpServers:\n  - name: warden\n    type: streamable-http\n    url: ${mcp}\n    requestOptions:\n      headers:\n        Authorization: Bearer ${KEY}`],
    [t("guide.cline"), t("guide.cline_note"), "json", json({ mcpServers: { warden: { type: "streamableHttp", url: mcp, headers: { Authorization: `Bearer ${KEY}` } } } })],
    [t("guide.openai"), t("guide.openai_note"), "python",
      `from openai import OpenAI\n\nclient = OpenAI(base_url="${base}/v1", api_key="${KEY}")\nanswer = client.chat.completions.create(\n    model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}])\nprint(answer.choices[0].message.content)`],
    [t("guide.anthropic"), t("guide.anthropic_note"), "python",
      `from anthropic import Anthropic\n\nclient = Anthropic(base_url="${base}", api_key="${KEY}")\nanswer = client.messages.create(\n    model="claude-sonnet-4-5", max_tokens=256, messages=[{"role": "user", "content": "Hello"}])\nprint(answer.content[0].text)`],
    [t("guide.curl"), t("guide.curl_note"), "sh",
      `curl ${base}/v1/chat/completions \\\n  -H "Authorization: Bearer ${KEY}" -H "Content-Type: application/json" \\\n  -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}'\n\ncurl ${mcp} \\\n  -H "Authorization: Bearer ${KEY}" -H "Content-Type: application/json" \\\n  -H "Accept: application/json, text/event-stream" \\\n  -H "MCP-Protocol-Version: 2026-07-28" -H "Mcp-Method: tools/list" \\\n  -d '{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {\n        "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}}'`],
  ];
  return h("section", { class: "page" },
    h("h1", {}, t("nav.guide")),
    h("p", {}, t("guide.intro", { gateway: base }), " ", h("a", { href: "/keys", "data-link": true }, t("guide.get_key"))),
    h("div", { class: "guide" }, sections.map(([title, note, language, code]) => snippet(title, note, language, code))));
}

function snippet(title, note, language, code) {
  const pre = h("pre", { dataset: { language } }, h("code", {}, code));
  const copied = h("span", { class: "muted", role: "status" });
  return h("article", { class: "panel snippet" },
    h("div", { class: "page-head" }, h("h2", {}, title),
      h("button", { type: "button", class: "ghost", on: { click: async () => {
        try {
          await navigator.clipboard.writeText(code);
          copied.textContent = t("keys.copied");
        } catch {
          copied.textContent = t("guide.copy_failed");
        }
      } } }, t("keys.copy")), copied),
    h("p", { class: "muted" }, note), pre);
}
