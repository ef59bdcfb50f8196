-- Hostile clients: a slowloris crowd must not starve a normal client, and
-- thousands of idle keep-alive connections are held with bounded memory.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local socket = require("socket")
require("spec.support.assert")

local format = string.format
local SANITIZED = os.getenv("CORSGATE_SANITIZE") == "1" or os.getenv("CORSGATE_VALGRIND") == "1"

-- How many descriptors this process may open (the gateway inherits the limit).
local function fd_limit()
  local p = io.popen("sh -c 'ulimit -n'")
  local n = tonumber(p:read("*a"))
  p:close()
  return n or 1024
end

local function open_many(port, n)
  local conns = {}
  for i = 1, n do
    local c = socket.tcp()
    c:settimeout(5)
    local ok, err = c:connect("127.0.0.1", port)
    if not ok then
      for _, x in ipairs(conns) do x:close() end
      error(format("connection %d of %d failed: %s", i, n, tostring(err)))
    end
    conns[i] = c
  end
  return conns
end

describe("hostile clients", function()
  it("serves a normal client while 1,000 connections send one header byte a second", function()
    local n = math.min(1000, fd_limit() - 100)
    local gw = gateway.start({
      timeouts = { head = 30 },
      routes = { { name = "h", prefix = "/", static = { status = 200, body = "ok" } } },
    })
    local crowd = open_many(gw:port(), n)
    local head = "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " .. ("a"):rep(64)
    local served, worst = 0, 0
    for second = 1, 4 do
      for _, c in ipairs(crowd) do c:send(head:sub(second, second)) end
      local t0 = socket.gettime()
      local res, err = http.request(gw:port(), "GET", "/", {}, nil, { timeout = 5 })
      assert.res_status(200, res, err or gw)
      worst = math.max(worst, socket.gettime() - t0)
      served = served + 1
      socket.sleep(1)
    end
    for _, c in ipairs(crowd) do c:close() end
    io.stderr:write(format("\n[hostile] %d slow connections: normal requests served %d/4, slowest %.0f ms\n",
      n, served, worst * 1000))
    assert.is_true(gw:alive())
    gw:stop_clean()
  end)

  it("closes slow heads at the head timeout with 408", function()
    local gw = gateway.start({
      timeouts = { head = 1 },
      routes = { { name = "h", prefix = "/", static = { status = 200, body = "ok" } } },
    })
    local c = assert(http.connect(gw:port(), { timeout = 5 }))
    c:send("GET / HTTP/1.1\r\nHo")
    local res, err = c:read_response({ timeout = 5 })
    assert.res_status(408, res, err or gw)
    assert.is_true(c:peer_closed(5))
    gw:stop_clean()
  end)

  it("idles in 6 MB with one worker, and holds 10,000 idle keep-alive connections in 4 KB each", function()
    local n = 10000
    if fd_limit() < n + 200 then
      pending(format("needs %d descriptors, this process may open %d", n + 200, fd_limit()))
      return
    end
    local gw = gateway.start({
      workers = 1,
      access_log = false,
      limits = { max_connections = n + 100 },
      routes = { { name = "h", prefix = "/", static = { status = 200, body = "ok" } } },
    })
    -- warm up: the first request allocates what every worker keeps anyway
    assert.res_status(200, http.request(gw:port(), "GET", "/", {}))
    local before = gw:rss_kb().rss
    local conns = open_many(gw:port(), n)
    local req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    for _, c in ipairs(conns) do assert(c:send(req)) end
    for i, c in ipairs(conns) do
      local line = c:receive("*l")
      assert.equal("HTTP/1.1 200 OK", line, "connection " .. i)
      repeat local l = c:receive("*l") until l == "" or l == nil
      assert.equal("ok", c:receive(2))
    end
    local after = gw:rss_kb().rss
    local per = (after - before) * 1024 / n
    io.stderr:write(format("\n[hostile] idle RSS %.1f MiB; %d idle keep-alive connections: +%.1f MiB, %.0f bytes each%s\n",
      before / 1024, n, (after - before) / 1024, per, SANITIZED and " (sanitizer build: not asserted)" or ""))
    -- all of them are still usable
    for i = 1, n, 997 do
      assert(conns[i]:send(req))
      assert.equal("HTTP/1.1 200 OK", conns[i]:receive("*l"))
    end
    for _, c in ipairs(conns) do c:close() end
    if not SANITIZED then
      assert.is_true(before <= 6 * 1024, format("idle RSS %.1f MiB with one worker", before / 1024))
      assert.is_true(per <= 4096, format("%.0f bytes per idle connection", per))
    end
    gw:stop_clean()
  end)
end)
