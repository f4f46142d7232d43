-- wrk script: a tools/call on an established MCP session (env BENCH_KEY, BENCH_TOOL, BENCH_SESSION).
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"' .. (os.getenv("BENCH_TOOL") or "echo")
  .. '","arguments":{"text":"hi"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "none")
if os.getenv("BENCH_SESSION") and os.getenv("BENCH_SESSION") ~= "" then
  wrk.headers["Mcp-Session-Id"] = os.getenv("BENCH_SESSION")
end
