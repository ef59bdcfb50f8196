-- Limits and timeouts: head size and header count (431), body size (413), head
-- timeout (408), idle keep-alive timeout, connections per worker. Small limits
-- and sub-second timeouts keep this quick; nothing asserts how long anything took.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
require("spec.support.assert")
local cjson = require("cjson")
local socket = require("socket")

local rep = string.rep

local function json_error(res, status)
  local ok, j = pcall(cjson.decode, res.body or "")
  assert.truthy(ok, "error body is not JSON: " .. tostring(res.body))
  assert.equal(status, j.status)
  assert.equal("string", type(j.error))
end

describe("limits", function()
  local gw

  lazy_setup(function()
    gw = gateway.start({
      limits = { max_head_bytes = 1024, max_headers = 10, max_body_bytes = 1000 },
      routes = {
        { name = "s", prefix = "/", static = { status = 200, body = "ok" } },
        { name = "echo", prefix = "/echo", upstream = "echo" },
      },
    })
  end)

  lazy_teardown(function() gw:stop_clean() end)

  -- A head of exactly n bytes: request line, Host, one filler header, CRLF.
  local function head_of(n)
    local base = "GET / HTTP/1.1\r\nHost: x\r\nX-Fill: \r\n\r\n"
    return "GET / HTTP/1.1\r\nHost: x\r\nX-Fill: " .. rep("a", n - #base) .. "\r\n\r\n"
  end

  it("serves a head a little under max_head_bytes", function()
    local res, err = http.raw(gw:port(), head_of(900))
    assert.res_status(200, res, err or gw)
  end)

  it("answers 431 and closes when the head is larger than max_head_bytes", function()
    local res, err, c = http.raw(gw:port(), head_of(1100))
    assert.res_status(431, res, err or gw)
    json_error(res, 431)
    assert.is_true((c:peer_closed(5)))
  end)

  it("answers 431 for a huge head that never ends, without reading it all", function()
    local c = assert(http.connect(gw:port()))
    c:send("GET / HTTP/1.1\r\nHost: x\r\nX-Fill: ")
    local sent = 0
    for _ = 1, 64 do -- at most 1 MiB
      local ok = c:send(rep("a", 16384))
      if not ok then break end
      sent = sent + 16384
    end
    local res, err = c:read_response()
    assert.res_status(431, res, err or gw)
  end)

  -- A head that crosses max_head_bytes with the first string of a read. In the
  -- last split that string (the value, after three spaces) starts past where
  -- the previous read's string (the empty rest of "X-B") ended; the store
  -- once copied from that old end, a negative length, and the worker crashed.
  -- Each part is one read (the pauses); the gateway must answer 431 and go on.
  it("answers 431 when the limit is crossed by the first string of a later read", function()
    local long = "X-" .. rep("n", 40) .. ": v\r\n"
    local splits = {
      { "GET /" .. rep("a", 1000), "b", " HTTP/1.1\r\n" .. long .. "\r\n" },
      { "GET /" .. rep("a", 960), "b HTTP/1.1\r\nHost: x\r\n", long .. "\r\n" },
      { "GET / HTTP/1.1\r\nX-Fill: " .. rep("a", 980) .. "\r\nX-B", ":", "   " .. rep("v", 40) .. "\r\n\r\n" },
    }
    for i, parts in ipairs(splits) do
      local c = assert(http.connect(gw:port()))
      for _, part in ipairs(parts) do
        if not c:send(part) then break end
        socket.sleep(0.05)
      end
      local res, err = c:read_response()
      assert.res_status(431, res, err and (err .. " (split " .. i .. ")") or gw)
      c:close()
      local ok, oerr = http.request(gw:port(), "GET", "/", {})
      assert.res_status(200, ok, oerr or gw)
    end
  end)

  it("serves max_headers header lines", function()
    local h = {}
    for i = 1, 9 do h[#h + 1] = { "X-H" .. i, "v" } end -- + Host = 10
    local res, err = http.request(gw:port(), "GET", "/", h)
    assert.res_status(200, res, err or gw)
  end)

  it("answers 431 and closes for more than max_headers header lines", function()
    local h = {}
    for i = 1, 10 do h[#h + 1] = "X-H" .. i .. ": v" end -- + Host = 11
    local res, err, c = http.raw(gw:port(), http.build_request("GET", "/", h))
    assert.res_status(431, res, err or gw)
    json_error(res, 431)
    assert.is_true((c:peer_closed(5)))
  end)

  it("serves a body of max_body_bytes", function()
    local res, err = http.request(gw:port(), "POST", "/echo", {}, rep("b", 1000))
    local body = assert.res_status(200, res, err or gw)
    assert.equal(1000, cjson.decode(body).body_bytes)
  end)

  it("answers 413 and closes for a Content-Length above max_body_bytes", function()
    local res, err, c = http.raw(gw:port(), "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n")
    assert.res_status(413, res, err or gw)
    json_error(res, 413)
    assert.is_true((c:peer_closed(5)))
  end)

  it("serves a chunked body of max_body_bytes", function()
    local res, err = http.request(gw:port(), "POST", "/echo", { { "Transfer-Encoding", "chunked" } },
      http.chunked({ rep("c", 600), rep("c", 400) }))
    local body = assert.res_status(200, res, err or gw)
    assert.equal(1000, cjson.decode(body).body_bytes)
  end)

  it("answers 413 and closes when a chunked body grows past max_body_bytes", function()
    local c = assert(http.connect(gw:port()))
    c:send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    c:send(http.chunked({ rep("c", 600), rep("c", 401) }))
    local res, err = c:read_response()
    assert.res_status(413, res, err or gw)
    assert.is_true((c:peer_closed(5)))
  end)

  it("answers 413 to a chunked body that never ends", function()
    local c = assert(http.connect(gw:port()))
    c:send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ = 1, 100 do -- 100 KiB at most, far above the limit
      if not c:send("400\r\n" .. rep("d", 1024) .. "\r\n") then break end
    end
    local res, err = c:read_response()
    assert.res_status(413, res, err or gw)
  end)
end)

describe("timeouts", function()
  local gw

  lazy_setup(function()
    gw = gateway.start({
      timeouts = { head = 0.5, idle = 0.5, body = 0.5 },
      routes = {
        { name = "s", prefix = "/", static = { status = 200, body = "ok" } },
        { name = "echo", prefix = "/echo", upstream = "echo" },
      },
    })
  end)

  lazy_teardown(function() gw:stop_clean() end)

  it("answers 408 and closes when the head does not complete in time", function()
    local c = assert(http.connect(gw:port()))
    c:send("GET / HTTP/1.1\r\nHost: x\r\n")
    local res, err = c:read_response({ timeout = 5 })
    assert.res_status(408, res, err or gw)
    assert.is_true((c:peer_closed(5)))
  end)

  it("closes an idle keep-alive connection without sending anything", function()
    local c = assert(http.connect(gw:port()))
    assert.res_status(200, c:request("GET", "/", {}), gw)
    local closed, extra = c:peer_closed(5)
    assert.is_true(closed)
    assert.is_nil(extra and #extra > 0 and extra or nil, "sent bytes before closing: " .. tostring(extra))
  end)

  it("still serves a connection that keeps sending requests", function()
    local c = assert(http.connect(gw:port()))
    for _ = 1, 5 do
      assert.res_status(200, c:request("GET", "/", {}), gw)
      require("socket").sleep(0.1)
    end
    c:close()
  end)

  it("gives up on a body that stops arriving", function()
    local c = assert(http.connect(gw:port()))
    c:send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" .. rep("e", 10))
    local res = c:read_response({ timeout = 5 })
    -- 408 if the gateway answers; either way the connection must end.
    if res then assert.res_status(408, res, gw) end
    assert.is_true((c:peer_closed(5)))
  end)
end)

describe("max_connections", function()
  local gw

  lazy_setup(function()
    gw = gateway.start({
      workers = 1,
      limits = { max_connections = 2 },
      routes = { { name = "s", prefix = "/", static = { status = 200, body = "ok" } } },
    })
  end)

  lazy_teardown(function() gw:stop_clean() end)

  it("makes a third connection wait until one of two closes, then serves it", function()
    local a = assert(http.connect(gw:port()))
    local b = assert(http.connect(gw:port()))
    assert.res_status(200, a:request("GET", "/", {}), gw)
    assert.res_status(200, b:request("GET", "/", {}), gw)
    local c = assert(http.connect(gw:port())) -- the kernel completes the handshake
    assert(c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    local early = c:read_response({ timeout = 0.5 })
    assert.is_nil(early, "a third connection was served while two were open")
    a:close()
    local res, err = c:read_response({ timeout = 5 })
    assert.res_status(200, res, err or gw)
    b:close()
    c:close()
  end)

  it("survives a burst of connections far above the limit", function()
    local conns = {}
    for i = 1, 50 do conns[i] = assert(http.connect(gw:port())) end
    for _, c in ipairs(conns) do c:send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") end
    local served = 0
    for _, c in ipairs(conns) do
      local res = c:read_response({ timeout = 10 })
      if res and res.status == 200 then served = served + 1 end
      c:close()
    end
    assert.equal(50, served)
    assert.is_true(gw:alive())
  end)
end)
