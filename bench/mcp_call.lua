-- wrk script: tools/call on an established MCP session (env BENCH_KEY, BENCH_TOOL, BENCH_SESSION).
-- Unlike the kit's stateless script, every request has its own JSON-RPC id: ids must be unique within a
-- session, and a reused one is refused (409) while the first is in flight.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "none")
if os.getenv("BENCH_SESSION") and os.getenv("BENCH_SESSION") ~= "" then
  wrk.headers["Mcp-Session-Id"] = os.getenv("BENCH_SESSION")
end
local tool = os.getenv("BENCH_TOOL") or "echo"
local counter = 0

request = function()
  counter = counter + 1
  local body = '{"jsonrpc":"2.0","id":' .. counter .. ',"method":"tools/call","params":{"name":"' .. tool
    .. '","arguments":{"text":"hi"}}}'
  return wrk.format(nil, nil, nil, body)
end
