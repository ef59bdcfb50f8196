-- Proxying to upstreams: pass-through, hop-by-hop headers both ways,
-- X-Forwarded-*, round robin, dead targets, timeouts, broken upstreams, and
-- keep-alive reuse (counted at the upstream).
local gateway = require("spec.support.gateway")
local upstream = require("spec.support.upstream")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local blob = require("spec.support.blob")
require("spec.support.assert")
local cjson = require("cjson")

local lower = string.lower

-- The request as the test upstream saw it.
local function seen(res)
  local j = cjson.decode(res.body)
  local h = http.headers()
  for _, kv in ipairs(j.headers) do h[#h + 1] = { name = kv[1], value = kv[2] } end
  j.h = h
  return j
end

local function json_error(res, status)
  local ok, j = pcall(cjson.decode, res.body or "")
  assert.truthy(ok, "error body is not JSON: " .. tostring(res.body))
  assert.equal(status, j.status)
  assert.equal("string", type(j.error))
  assert.truthy((res.headers:get("content-type") or ""):find("application/json", 1, true))
end

describe("proxy", function()
  local up, gw

  lazy_setup(function()
    up = upstream.start()
    gw = gateway.start({
      upstreams = { main = { targets = { up:target() }, keepalive = 4 } },
      routes = { { name = "main", prefix = "/", upstream = "main" } },
    })
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    if up then up:stop() end
  end)

  it("passes method, target, body and Host through", function()
    local res, err = http.request(gw:port(), "PATCH", "/echo/x?a=1&b=%20c",
      { { "Host", "api.example.com:8080" }, { "Content-Type", "text/plain" }, { "X-End-To-End", "yes" } }, "hello body")
    assert.res_status(200, res, err or gw)
    local j = seen(res)
    assert.equal("PATCH", j.method)
    assert.equal("/echo/x?a=1&b=%20c", j.target)
    assert.equal(10, j.body_bytes)
    assert.equal(blob.sum("hello body"), j.body_checksum)
    assert.same({ "api.example.com:8080" }, j.h:all("host"))
    assert.same({ "yes" }, j.h:all("x-end-to-end"))
    assert.same({ "text/plain" }, j.h:all("content-type"))
  end)

  for _, status in ipairs({ 201, 301, 404, 418, 500, 503 }) do
    it("passes upstream status " .. status .. " with its headers and body", function()
      local res, err = http.request(gw:port(), "GET", "/status/" .. status, {})
      local body = assert.res_status(status, res, err or gw)
      assert.equal("status " .. status .. "\n", body)
      assert.header(res, "content-type", "text/plain", gw)
      assert.header(res, "x-upstream-port", tostring(up:port()), gw)
    end)
  end

  for _, status in ipairs({ 204, 304 }) do
    it("passes a bodiless " .. status .. " and keeps the connection usable", function()
      local c = assert(http.connect(gw:port()))
      local res = c:request("GET", "/status/" .. status, {})
      assert.res_status(status, res, gw)
      assert.equal("", res.body)
      local res2 = c:request("GET", "/echo/after", {})
      assert.res_status(200, res2, gw)
      assert.equal("/echo/after", seen(res2).path)
      c:close()
    end)
  end

  it("answers HEAD with the upstream's length and no body", function()
    local c = assert(http.connect(gw:port()))
    local res = c:request("HEAD", "/bytes/1000", {})
    assert.res_status(200, res, gw)
    assert.header(res, "content-length", "1000", gw)
    assert.equal("", res.body)
    local res2 = c:request("GET", "/echo/after-head", {})
    assert.res_status(200, res2, gw)
    assert.equal("/echo/after-head", seen(res2).path)
    c:close()
  end)

  it("removes hop-by-hop request headers, and the ones Connection names", function()
    local res, err = http.request(gw:port(), "GET", "/echo", {
      { "Connection", "keep-alive, X-Hop-Req" },
      { "X-Hop-Req", "must not reach the upstream" },
      { "Keep-Alive", "timeout=5" },
      { "Proxy-Connection", "keep-alive" },
      { "TE", "trailers" },
      { "Trailer", "X-Trailing" },
      { "Upgrade", "foo/2" },
      { "X-End-To-End", "kept" },
    })
    assert.res_status(200, res, err or gw)
    local h = seen(res).h
    for _, name in ipairs({ "x-hop-req", "keep-alive", "proxy-connection", "te", "trailer", "upgrade" }) do
      assert.same({}, h:all(name), name .. " reached the upstream")
    end
    -- the gateway may speak for its own hop, never forward the client's tokens
    for _, v in ipairs(h:all("connection")) do
      assert.falsy(lower(v):find("x-hop-req", 1, true), "Connection: " .. v)
    end
    assert.same({ "kept" }, h:all("x-end-to-end"))
  end)

  it("removes hop-by-hop response headers, and the ones Connection names", function()
    local res, err = http.request(gw:port(), "GET", "/headers", {})
    assert.res_status(200, res, err or gw)
    for _, name in ipairs({ "x-hop-resp", "keep-alive", "proxy-connection", "te", "trailer", "upgrade" }) do
      assert.no_header(res, name, gw)
    end
    for _, v in ipairs(res.headers:all("connection")) do
      assert.falsy(lower(v):find("x-hop-resp", 1, true), "Connection: " .. v)
    end
    assert.header(res, "x-end-to-end", "kept", gw)
    assert.header(res, "content-type", "application/json", gw)
  end)

  -- client-sent X-Forwarded-* headers, and what the upstream must see
  local xf_cases = {
    { "none", {}, { xff = "127.0.0.1", proto = "http", host = "api.example.com" } },
    { "an X-Forwarded-For", { { "X-Forwarded-For", "203.0.113.7" } },
      { xff = "203.0.113.7, 127.0.0.1", proto = "http", host = "api.example.com" } },
    { "a spoofed X-Forwarded-Proto and -Host",
      { { "X-Forwarded-Proto", "https" }, { "X-Forwarded-Host", "evil.example" } },
      { xff = "127.0.0.1", proto = "http", host = "api.example.com" } },
  }
  for _, case in ipairs(xf_cases) do
    local name, sent, want = case[1], case[2], case[3]
    it("sets X-Forwarded-For/-Proto/-Host on the request (client sent " .. name .. ")", function()
      local headers = { { "Host", "api.example.com" } }
      for _, h in ipairs(sent) do headers[#headers + 1] = h end
      local res, err = http.request(gw:port(), "GET", "/echo", headers)
      assert.res_status(200, res, err or gw)
      local h = seen(res).h
      assert.same({ want.xff }, h:all("x-forwarded-for"))
      assert.same({ want.proto }, h:all("x-forwarded-proto"))
      assert.same({ want.host }, h:all("x-forwarded-host"))
      assert.same({ "api.example.com" }, h:all("host"))
    end)
  end

  it("appends to X-Forwarded-For sent on two lines, keeping the chain in order", function()
    local res, err = http.request(gw:port(), "GET", "/echo",
      { { "X-Forwarded-For", "198.51.100.1" }, { "X-Forwarded-For", "198.51.100.2" } })
    assert.res_status(200, res, err or gw)
    local h = seen(res).h
    -- lines of one field combine in order (RFC 9110 5.3): the chain as the upstream reads it
    assert.equal("198.51.100.1, 198.51.100.2, 127.0.0.1", h:joined("x-forwarded-for"),
      "upstream got X-Forwarded-For lines " .. cjson.encode(h:all("x-forwarded-for")))
  end)

  it("adds itself to Via after the hops the request came through, and answers 508 when it is already there", function()
    local res, err = http.request(gw:port(), "GET", "/echo",
      { { "Via", "1.0 fred, 1.1 p.example (Proxy)" }, { "Via", "2 edge" } })
    assert.res_status(200, res, err or gw)
    local via = seen(res).h:all("via")
    assert.equal(1, #via, "upstream got Via lines " .. cjson.encode(via))
    local name = via[1]:match("^1%.0 fred, 1%.1 p%.example %(Proxy%), 2 edge, 1%.1 (corsgate%-%x+)$")
    assert.truthy(name, "Via: " .. via[1])
    -- an HTTP/1.0 request is named as such
    local c = assert(http.connect(gw:port()))
    c:send("GET /echo HTTP/1.0\r\n\r\n")
    local res10 = c:read_response()
    c:close()
    assert.res_status(200, res10, gw)
    assert.same({ "1.0 " .. name }, seen(res10).h:all("via"))
    -- a longer name that only starts or ends like this gateway's is another hop
    for _, v in ipairs({ "1.1 " .. name .. "0", "1.1 x-" .. name, "1.1 x" .. name .. " (c)" }) do
      res, err = http.request(gw:port(), "GET", "/echo", { { "Via", v } })
      assert.res_status(200, res, err or gw)
      assert.same({ v .. ", 1.1 " .. name }, seen(res).h:all("via"))
    end
    -- a Via the client named in Connection is for the hop it came from only (RFC 9110 7.6.1)
    res, err = http.request(gw:port(), "GET", "/echo", { { "Connection", "Via" }, { "Via", "1.0 fred" } })
    assert.res_status(200, res, err or gw)
    assert.same({ "1.1 " .. name }, seen(res).h:all("via"))
    local before = up:count().requests
    for _, v in ipairs({ "1.1 " .. name, "1.0 a, 1.1 " .. name .. " (corsgate)", "1.1 " .. name .. ",2 b" }) do
      res, err = http.request(gw:port(), "GET", "/echo", { { "Via", v } })
      assert.res_status(508, res, err or gw)
      json_error(res, 508)
      assert.matches("request loop", cjson.decode(res.body).error)
    end
    assert.equal(before, up:count().requests, "a looped request reached the upstream")
    -- said once, not once per looped request
    local said = 0
    for _ in gw:log():gmatch("request loop: GET /echo came back through Via") do said = said + 1 end
    assert.equal(1, said, gw:log_tail(10))
  end)

  it("sets X-Forwarded-Host from an HTTP/1.0 request without Host to nothing misleading", function()
    local c = assert(http.connect(gw:port()))
    c:send("GET /echo HTTP/1.0\r\n\r\n")
    local res = c:read_response()
    assert.res_status(200, res, gw)
    local h = seen(res).h
    assert.same({ "127.0.0.1" }, h:all("x-forwarded-for"))
    assert.truthy(#h:all("x-forwarded-host") <= 1)
    c:close()
  end)

  it("reuses upstream connections across client requests and connections", function()
    local before = up:count()
    for _ = 1, 10 do
      local c = assert(http.connect(gw:port()))
      for _ = 1, 3 do
        assert.res_status(200, c:request("GET", "/echo/reuse", {}), gw)
      end
      c:close()
    end
    local after = up:count()
    assert.equal(30, after.requests - before.requests)
    -- one worker, sequential requests: one pooled connection is enough
    assert.equal(0, after.connections - before.connections,
      ("opened %d new upstream connections for 30 sequential requests"):format(after.connections - before.connections))
  end)

  it("does not reuse a connection the upstream closed", function()
    for _ = 1, 5 do
      local res, err = http.request(gw:port(), "GET", "/close", {})
      assert.res_status(200, res, err or gw)
      assert.no_header(res, "connection", gw)
    end
    assert.res_status(200, http.request(gw:port(), "GET", "/echo/after-close", {}), gw)
  end)

  it("answers pipelined proxied requests in order, the slow one first", function()
    local c = assert(http.connect(gw:port()))
    c:send(http.build_request("GET", "/slow/300", {}) .. http.build_request("GET", "/echo/second", {})
      .. http.build_request("GET", "/status/404", {}))
    local res = c:read_responses(3)
    assert.equal(3, #res)
    assert.equal("/slow/300", seen(res[1]).path)
    assert.equal("/echo/second", seen(res[2]).path)
    assert.equal(404, res[3].status)
    c:close()
  end)

  it("streams an upstream chunked response to the client intact", function()
    local st = blob.new()
    local res, err = http.request(gw:port(), "GET", "/chunked/300000", {}, nil, { sink = function(s) blob.update(st, s) end })
    assert.res_status(200, res, err or gw)
    assert.equal(300000, st.n)
    assert.equal(res.headers:get("x-checksum"), blob.digest(st))
  end)

  it("forwards a body sent after 100 Continue", function()
    local c = assert(http.connect(gw:port()))
    c:send("PUT /echo/expect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    local interim = c:read_response()
    assert.res_status(100, interim, gw)
    c:send("12345")
    local res = c:read_response()
    assert.res_status(200, res, gw)
    assert.equal(5, seen(res).body_bytes)
    c:close()
  end)

  it("forwards a chunked request body", function()
    local res, err = http.request(gw:port(), "POST", "/echo/chunked", { { "Transfer-Encoding", "chunked" } },
      http.chunked({ "abc", "defgh", "i" }))
    assert.res_status(200, res, err or gw)
    local j = seen(res)
    assert.equal(9, j.body_bytes)
    assert.equal(blob.sum("abcdefghi"), j.body_checksum)
  end)
end)

describe("proxy targets", function()
  local ups = {}
  local dead = upstream.dead_target()

  lazy_setup(function()
    for i = 1, 3 do ups[i] = upstream.start() end
  end)

  lazy_teardown(function()
    for _, u in ipairs(ups) do u:stop() end
  end)

  it("round-robins over the targets", function()
    local gw = gateway.start({
      upstreams = { rr = { targets = { ups[1]:target(), ups[2]:target(), ups[3]:target() } } },
      routes = { { name = "rr", prefix = "/", upstream = "rr" } },
    })
    local before = {}
    for i, u in ipairs(ups) do before[i] = u:count().requests end
    local ports = {}
    for _ = 1, 9 do
      local res, err = http.request(gw:port(), "GET", "/echo/rr", {})
      assert.res_status(200, res, err or gw)
      local p = res.headers:get("x-upstream-port")
      ports[p] = (ports[p] or 0) + 1
    end
    gw:stop_clean()
    for i, u in ipairs(ups) do
      assert.equal(3, u:count().requests - before[i], "target " .. u:target() .. " " .. cjson.encode(ports))
    end
  end)

  it("skips a dead target for fail_timeout once it failed: only one 502", function()
    local gw = gateway.start({
      upstreams = { half = { targets = { dead, ups[1]:target() }, fail_timeout = 30 } },
      routes = { { name = "half", prefix = "/", upstream = "half" } },
    })
    local statuses, first_fail = {}, nil
    for i = 1, 10 do
      local res, err = http.request(gw:port(), "GET", "/echo/half", {})
      assert.truthy(res, err)
      statuses[i] = res.status
      if res.status ~= 200 and not first_fail then
        first_fail = i
        assert.res_status(502, res, gw)
        json_error(res, 502)
      end
    end
    local log = gw:log_tail()
    gw:stop_clean()
    for i = (first_fail or 0) + 1, 10 do
      assert.equal(200, statuses[i], "request " .. i .. " after the failure: " .. table.concat(statuses, " ") .. "\n" .. log)
    end
  end)

  it("answers 502 with a JSON error when every target is dead", function()
    local gw = gateway.start({
      upstreams = { none = { targets = { dead, upstream.dead_target() } } },
      routes = { { name = "none", prefix = "/", upstream = "none" } },
    })
    for _ = 1, 3 do
      local res, err = http.request(gw:port(), "GET", "/echo", {})
      assert.res_status(502, res, err or gw)
      json_error(res, 502)
    end
    gw:stop_clean()
  end)

  it("tries a dead single target once per request, not again", function()
    local gw = gateway.start({
      upstreams = { one = { targets = { dead } } },
      routes = { { name = "one", prefix = "/", upstream = "one" } },
    })
    for _ = 1, 3 do
      local res, err = http.request(gw:port(), "GET", "/echo", {})
      assert.res_status(502, res, err or gw)
    end
    local log = gw:log()
    gw:stop_clean()
    local _, attempts = log:gsub("target [^ ]+ failed", "")
    assert.equal(3, attempts, "connect attempts in the log:\n" .. log)
  end)

  it("retries a refused connect on another target that is up", function()
    local gw = gateway.start({
      upstreams = { half = { targets = { dead, ups[2]:target() }, fail_timeout = 30 } },
      routes = { { name = "half", prefix = "/", upstream = "half" } },
    })
    for _ = 1, 4 do
      local res, err = http.request(gw:port(), "GET", "/echo/retry", {})
      assert.res_status(200, res, err or gw)
    end
    gw:stop_clean()
  end)

  it("keeps at most `keepalive` idle connections per target", function()
    local gw = gateway.start({
      upstreams = { pool = { targets = { ups[3]:target() }, keepalive = 2 } },
      routes = { { name = "pool", prefix = "/", upstream = "pool" } },
    })
    local before = ups[3]:count().connections
    local conns = {}
    for i = 1, 8 do
      conns[i] = assert(http.connect(gw:port()))
      conns[i]:send(http.build_request("GET", "/slow/200", {}))
    end
    for i = 1, 8 do
      assert.res_status(200, conns[i]:read_response(), gw)
      conns[i]:close()
    end
    local opened = ups[3]:count().connections - before
    assert.truthy(opened > 2, "only " .. opened .. " upstream connections for 8 concurrent requests: nothing to trim")
    -- /count's own connection is one of the open ones
    local open
    local ok = proc.wait_for(function()
      open = ups[3]:count().open - 1
      return open <= 2
    end, 5)
    assert.truthy(ok, open .. " upstream connections still open with keepalive = 2")
    -- and the pool still serves
    assert.res_status(200, http.request(gw:port(), "GET", "/echo/pool", {}), gw)
    gw:stop_clean()
  end)

  it("serves with several workers", function()
    local gw = gateway.start({
      workers = 3,
      upstreams = { w = { targets = { ups[1]:target(), ups[2]:target() } } },
      routes = { { name = "w", prefix = "/", upstream = "w" } },
    })
    local conns = {}
    for i = 1, 12 do conns[i] = assert(http.connect(gw:port())) end
    for round = 1, 3 do
      for i = 1, 12 do conns[i]:send(http.build_request("GET", "/echo/" .. round .. "/" .. i, {})) end
      for i = 1, 12 do
        local res = conns[i]:read_response()
        assert.res_status(200, res, gw)
        assert.equal("/echo/" .. round .. "/" .. i, cjson.decode(res.body).path)
      end
    end
    for i = 1, 12 do conns[i]:close() end
    gw:stop_clean()
  end)

  describe("misbehaving upstream", function()
    local gw

    lazy_setup(function()
      gw = gateway.start({
        timeouts = { upstream_read = 0.5, upstream_connect = 1 },
        upstreams = { bad = { targets = { ups[2]:target() } } },
        routes = { { name = "bad", prefix = "/", upstream = "bad" } },
      })
    end)

    lazy_teardown(function() gw:stop_clean() end)

    it("answers 504 when the upstream never answers", function()
      local res, err = http.request(gw:port(), "GET", "/hang", {})
      assert.res_status(504, res, err or gw)
      json_error(res, 504)
    end)

    it("answers 504 when the upstream answers after upstream_read", function()
      local res, err = http.request(gw:port(), "GET", "/slow/3000", {})
      assert.res_status(504, res, err or gw)
      json_error(res, 504)
    end)

    it("answers 502 when the upstream answers with garbage", function()
      local res, err = http.request(gw:port(), "GET", "/garbage", {})
      assert.res_status(502, res, err or gw)
      json_error(res, 502)
    end)

    it("cuts the client off when the upstream resets mid-body, never completing the response", function()
      local c = assert(http.connect(gw:port()))
      c:send(http.build_request("GET", "/reset", {}))
      local res, err, partial = c:read_response({ timeout = 5 })
      if res then
        -- a 502 is fine when the head had not gone out yet
        assert.res_status(502, res, gw)
      else
        assert.truthy(partial and partial.status == 200, "no response at all: " .. tostring(err))
        assert.truthy(#(partial.body or "") < 1048576)
        assert.is_true((c:peer_closed(5)), "connection left open after a truncated body")
      end
    end)

    it("keeps serving after all of that", function()
      local res, err = http.request(gw:port(), "GET", "/echo/fine", {})
      assert.res_status(200, res, err or gw)
    end)
  end)
end)

describe("proxy to itself", function()
  local gw

  lazy_teardown(function() if gw then gw:stop_clean() end end)

  it("stops at the first hop with 508 instead of looping until the head is too large", function()
    local port = proc.free_port()
    local self = "127.0.0.1:" .. port
    gw = gateway.start({
      listen = self,
      upstreams = { self = { targets = { self } } },
      routes = { { name = "self", prefix = "/", upstream = "self" } },
    })
    local res, err = http.request(gw:port(), "GET", "/x", {})
    assert.res_status(508, res, err or gw)
    -- the client's request and its one looped copy, nothing more
    local function lines()
      local n = 0
      for _ in gw:log():gmatch('"GET /x HTTP/1%.1" 508') do n = n + 1 end
      return n
    end
    proc.wait_for(function() return lines() >= 2 end, 2)
    proc.sleep(0.2)
    assert.equal(2, lines(), gw:log_tail(10))
  end)
end)
