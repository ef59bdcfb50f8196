-- The HTTP/1.x server: keep-alive, pipelining, HTTP/1.0, Connection: close,
-- Expect: 100-continue, Host.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
require("spec.support.assert")
local cjson = require("cjson")

local function static(body) return { status = 200, body = body, headers = { ["content-type"] = "text/plain" } } end

describe("server", function()
  local gw

  lazy_setup(function()
    gw = gateway.start({
      limits = { max_body_bytes = 1000 },
      routes = {
        { name = "a", prefix = "/a", static = static("A") },
        { name = "b", prefix = "/b", static = static("BB") },
        { name = "echo", prefix = "/echo", upstream = "echo" },
      },
    })
  end)

  lazy_teardown(function() gw:stop_clean() end)

  it("keeps an HTTP/1.1 connection alive across requests", function()
    local c = assert(http.connect(gw:port()))
    for i = 1, 5 do
      local res = c:request("GET", i % 2 == 1 and "/a" or "/b", {})
      assert.res_status(200, res, gw)
      assert.equal(i % 2 == 1 and "A" or "BB", res.body)
      assert.equal("HTTP/1.1", res.version)
      assert.no_header(res, "connection", gw)
    end
    assert.is_false(c:peer_closed(0.05))
    c:close()
  end)

  it("answers pipelined requests in order, from one write", function()
    local c = assert(http.connect(gw:port()))
    local reqs = {
      http.build_request("GET", "/b", {}),
      http.build_request("POST", "/echo/1", {}, "hello"),
      http.build_request("GET", "/a", {}),
      http.build_request("GET", "/echo/2", {}),
      http.build_request("HEAD", "/b", {}),
      http.build_request("GET", "/a", {}),
    }
    assert(c:send(table.concat(reqs)))
    local res = c:read_responses(6, { {}, {}, {}, {}, { method = "HEAD" }, {} })
    assert.equal(6, #res, "got " .. #res .. " responses")
    assert.equal("BB", res[1].body)
    assert.equal("/echo/1", cjson.decode(res[2].body).path)
    assert.equal(5, cjson.decode(res[2].body).body_bytes)
    assert.equal("A", res[3].body)
    assert.equal("/echo/2", cjson.decode(res[4].body).path)
    assert.equal("", res[5].body)
    assert.header(res[5], "content-length", "2", gw)
    assert.equal("A", res[6].body)
    assert.is_false(c:peer_closed(0.05))
    c:close()
  end)

  it("answers pipelined requests sent one byte at a time", function()
    local c = assert(http.connect(gw:port()))
    local bytes = http.build_request("POST", "/echo/x", {}, "abc") .. http.build_request("GET", "/a", {})
    for i = 1, #bytes do assert(c:send(bytes:sub(i, i))) end
    local res = c:read_responses(2)
    assert.equal(2, #res)
    assert.equal(3, cjson.decode(res[1].body).body_bytes)
    assert.equal("A", res[2].body)
    c:close()
  end)

  it("forwards every header intact when the head comes in one read per byte", function()
    local sent = { { "X-One", "1" }, { "X-Empty", "" }, { "X-Long-Name-Of-A-Header", "a value, with commas; and = signs" },
      { "X-Last", "z" } }
    local c = assert(http.connect(gw:port()))
    local bytes = http.build_request("GET", "/echo/split?q=1", sent)
    assert(c:send_bytewise(bytes))
    local res = c:read_response()
    c:close()
    local j = cjson.decode(assert.res_status(200, res, gw))
    assert.equal("GET", j.method)
    assert.equal("/echo/split", j.path)
    assert.equal("q=1", j.query)
    for _, h in ipairs(sent) do assert.equal(h[2], j.headers[h[1]:lower()], h[1]) end
  end)

  it("closes after answering Connection: close, and says so", function()
    local c = assert(http.connect(gw:port()))
    assert(c:send(http.build_request("GET", "/a", { { "Connection", "close" } })
      .. http.build_request("GET", "/b", {})))
    local res = c:read_response()
    assert.res_status(200, res, gw)
    assert.header(res, "connection", "close", gw)
    local closed, extra = c:peer_closed(5)
    assert.is_true(closed, "still open; got " .. tostring(extra))
  end)

  it("closes an HTTP/1.0 connection after the response", function()
    local c = assert(http.connect(gw:port()))
    assert(c:send("GET /a HTTP/1.0\r\n\r\n"))
    local res = c:read_response()
    assert.res_status(200, res, gw)
    assert.equal("A", res.body)
    assert.is_true((c:peer_closed(5)))
  end)

  it("keeps an HTTP/1.0 connection with Connection: keep-alive, and says so", function()
    local c = assert(http.connect(gw:port()))
    for _ = 1, 3 do
      assert(c:send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
      local res = c:read_response()
      assert.res_status(200, res, gw)
      assert.equal("A", res.body)
      assert.header(res, "connection", "keep-alive", gw)
    end
    assert.is_false(c:peer_closed(0.05))
    c:close()
  end)

  it("sends 100 Continue for Expect: 100-continue, then the final response", function()
    local c = assert(http.connect(gw:port()))
    assert(c:send("POST /echo/up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"))
    local interim = c:read_response()
    assert.res_status(100, interim, gw)
    assert(c:send("0123456789"))
    local res = c:read_response()
    local body = assert.res_status(200, res, gw)
    assert.equal(10, cjson.decode(body).body_bytes)
    -- and the connection goes on
    local res2 = c:request("GET", "/a", {})
    assert.res_status(200, res2, gw)
    c:close()
  end)

  it("answers 413 without 100 Continue when the announced body is too large", function()
    local c = assert(http.connect(gw:port()))
    assert(c:send("POST /echo/up HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\nExpect: 100-continue\r\n\r\n"))
    local res = c:read_response()
    assert.res_status(413, res, gw)
    assert.is_true((c:peer_closed(5)))
  end)

  it("does not send 100 Continue to an HTTP/1.0 client", function()
    local c = assert(http.connect(gw:port()))
    assert(c:send("POST /echo/up HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc"))
    local res = c:read_response()
    local body = assert.res_status(200, res, gw)
    assert.equal(3, cjson.decode(body).body_bytes)
  end)

  -- A request body is that request's body, whatever it looks like, also after an
  -- Expect the server may answer early: read and dropped, or the connection
  -- closed, never parsed as the next request.
  local smuggled = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
  for _, path in ipairs({ "/b", "/nowhere", "/echo/x" }) do
    for _, expect in ipairs({ true, false }) do
      it(("never reads the body of POST %s%s as a request"):format(path, expect and " with Expect" or ""), function()
        local c = assert(http.connect(gw:port()))
        c:send(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n")
          :format(path, #smuggled, expect and "Expect: 100-continue\r\n" or ""))
        if expect then c:read_response({ timeout = 0.5 }) end -- 100 Continue, or an early final answer
        c:send(smuggled .. http.build_request("GET", "/b", { { "Connection", "close" } }))
        local rest = c:read_all(5) or ""
        assert.truthy(c.closed, "connection not closed after Connection: close")
        assert.falsy(rest:find("Content-Length: 1\r\n\r\nA", 1, true), "the body was answered as a request:\n" .. rest)
        local finals = 0
        for status in rest:gmatch("HTTP/1%.1 (%d%d%d)") do
          if status ~= "100" then finals = finals + 1 end
        end
        assert.truthy(finals <= 2, finals .. " responses for two requests:\n" .. rest)
      end)
    end
  end

  it("answers 417 to an Expect other than 100-continue", function()
    local res, err = http.raw(gw:port(), "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: coffee\r\n\r\nabc")
    assert.res_status(417, res, err or gw)
  end)

  it("answers 400 to an HTTP/1.1 request without Host", function()
    local res, err, c = http.raw(gw:port(), "GET /a HTTP/1.1\r\n\r\n")
    assert.res_status(400, res, gw or err)
    assert.is_true((c:peer_closed(5)))
  end)

  it("serves an HTTP/1.0 request without Host", function()
    local res, err = http.raw(gw:port(), "GET /a HTTP/1.0\r\n\r\n")
    assert.res_status(200, res, gw or err)
    assert.equal("HTTP/1.1", res.version)
  end)

  it("gives every response a length or chunked framing", function()
    for _, path in ipairs({ "/a", "/echo/x", "/nowhere" }) do
      local res = http.request(gw:port(), "GET", path, {})
      assert.truthy(res.headers:has("content-length") or res.headers:has("transfer-encoding"),
        "no framing on " .. path)
      assert.is_nil(res.until_close, "body delimited by close on " .. path)
    end
  end)

  it("serves many sequential connections (no descriptor leak)", function()
    local function fd_count() return io.popen("ls /proc/" .. gw:pid() .. "/fd | wc -l"):read("*n") end
    -- earlier specs may leave idle keep-alive connections the gateway rightly holds: count growth
    collectgarbage()
    local before = fd_count()
    for i = 1, 200 do
      local res, err = http.request(gw:port(), "GET", "/a", {})
      assert.res_status(200, res, err or gw)
      if i == 200 then assert.equal("A", res.body) end
    end
    -- the last connections close as the gateway reads their FIN: wait for that, bounded
    local fds
    require("spec.support.proc").wait_for(function()
      fds = fd_count()
      return fds <= before + 2
    end, 5, 0.05)
    assert.truthy(fds <= before + 2, ("corsgate went from %d to %d descriptors:\n%s"):format(before, fds,
      io.popen("ls -l /proc/" .. gw:pid() .. "/fd 2>&1"):read("*a")))
  end)

end)
