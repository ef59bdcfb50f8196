-- Edges: upstream responses with broken framing, clients that leave mid-transfer,
-- unusual request targets. The gateway must answer something consistent (or cut
-- the connection) and keep serving afterwards.
local gateway = require("spec.support.gateway")
local upstream = require("spec.support.upstream")
local http = require("spec.support.http")
local blob = require("spec.support.blob")
require("spec.support.assert")
local cjson = require("cjson")

local rep = string.rep

describe("edges", function()
  local up, gw

  lazy_setup(function()
    up = upstream.start()
    gw = gateway.start({
      timeouts = { upstream_read = 1 },
      limits = { max_head_bytes = 4096 },
      upstreams = { u = { targets = { up:target() } }, d = { targets = { upstream.dead_target() } } },
      routes = {
        { name = "u", prefix = "/", upstream = "u" },
        { name = "echo", prefix = "/builtin-echo", upstream = "echo" },
        { name = "d", prefix = "/dead", upstream = "d" },
      },
    })
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    if up then up:stop() end
  end)

  local function still_serving()
    local res, err = http.request(gw:port(), "GET", "/echo/still", {})
    assert.res_status(200, res, err or gw)
    assert.equal("/echo/still", cjson.decode(res.body).path)
  end

  describe("upstream framing", function()
    for _, path in ipairs({ "/cl-and-te", "/two-cl", "/bad-status" }) do
      it("answers 502 for an upstream response with " .. path:sub(2), function()
        local c = assert(http.connect(gw:port()))
        c:send(http.build_request("GET", path, {}) .. http.build_request("GET", "/echo/next", {}))
        local res, err = c:read_response()
        assert.res_status(502, res, err or gw)
        assert.truthy(#res.headers:all("content-length") + #res.headers:all("transfer-encoding") == 1,
          "ambiguous framing reached the client")
        -- whatever follows on this connection is the answer to /echo/next, or nothing
        local res2 = c:read_response({ timeout = 3 })
        if res2 then
          assert.res_status(200, res2, gw)
          assert.equal("/echo/next", cjson.decode(res2.body).path)
        end
        c:close()
        still_serving()
      end)
    end

    it("frames a body the upstream delimits by closing", function()
      local c = assert(http.connect(gw:port()))
      local res, err = c:request("GET", "/until-close", {})
      local body = assert.res_status(200, res, err or gw)
      assert.equal(1000, #body)
      assert.equal(res.headers:get("x-checksum"), blob.sum(body))
      if not res.until_close then
        -- framed for the client, so the connection may go on
        local res2 = c:request("GET", "/echo/after-close-delimited", {})
        assert.res_status(200, res2, gw)
      end
      c:close()
    end)

    it("cuts the client off when the upstream stops short of its Content-Length", function()
      local c = assert(http.connect(gw:port(), { timeout = 10 }))
      c:send(http.build_request("GET", "/short", {}))
      local res, err, partial = c:read_response()
      if res then
        assert.res_status(504, res, gw) -- nothing had been sent yet
      else
        assert.truthy(partial and partial.status == 200, tostring(err))
        assert.truthy(#(partial.body or "") < 100)
        assert.is_true((c:peer_closed(5)))
      end
      still_serving()
    end)

    it("delivers the final response after a 103 Early Hints", function()
      local c = assert(http.connect(gw:port()))
      c:send(http.build_request("GET", "/early-hints", {}))
      local res, err = c:read_final()
      assert.res_status(200, res, err or gw)
      assert.equal("/early-hints", cjson.decode(res.body).path)
      for _, interim in ipairs(res.interim) do assert.equal(103, interim.status) end
      local res2 = c:request("GET", "/echo/after-103", {})
      assert.res_status(200, res2, gw)
      assert.equal("/echo/after-103", cjson.decode(res2.body).path)
      c:close()
    end)

    it("answers 502 (or passes it whole) for a 100 KB upstream response header", function()
      local res, err = http.request(gw:port(), "GET", "/huge-head", {})
      assert.truthy(res, err)
      if res.status == 200 then
        assert.equal(100000, #res.headers:get("x-big"))
      else
        assert.res_status(502, res, gw)
      end
      still_serving()
    end)
  end)

  describe("framing toward the client", function()
    it("does not wait for a body after a 304 that carries Content-Length", function()
      local c = assert(http.connect(gw:port()))
      c:send(http.build_request("GET", "/304-with-length", {}) .. http.build_request("GET", "/echo/after-304", {}))
      local res = c:read_responses(2, { timeout = 5 })
      assert.equal(2, #res, "the response after the 304 never came")
      assert.equal(304, res[1].status)
      assert.equal("", res[1].body)
      assert.equal("/echo/after-304", cjson.decode(res[2].body).path)
      c:close()
    end)

    it("answers HEAD for a chunked upstream resource without waiting for a body", function()
      local c = assert(http.connect(gw:port()))
      local res = c:request("HEAD", "/chunked/1000", {})
      assert.res_status(200, res, gw)
      assert.equal("", res.body)
      local res2 = c:request("GET", "/echo/after-head", {}, nil)
      assert.res_status(200, res2, gw)
      assert.equal("/echo/after-head", cjson.decode(res2.body).path)
      c:close()
    end)

    it("never sends chunked framing to an HTTP/1.0 client", function()
      local c = assert(http.connect(gw:port()))
      c:send("GET /chunked/100000 HTTP/1.0\r\nHost: x\r\n\r\n")
      local st = blob.new()
      local res, err = c:read_response({ sink = function(s) blob.update(st, s) end })
      assert.res_status(200, res, err or gw)
      assert.no_header(res, "transfer-encoding", gw)
      assert.equal(100000, st.n)
      assert.equal(res.headers:get("x-checksum"), blob.digest(st))
      c:close()
    end)

    it("reads past a request body on a builtin route before the next pipelined request", function()
      local c = assert(http.connect(gw:port()))
      c:send(http.build_request("POST", "/builtin-echo/1", {}, "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
        .. http.build_request("POST", "/builtin-echo/2", { { "Transfer-Encoding", "chunked" } }, http.chunked({ "abc" }))
        .. http.build_request("GET", "/builtin-echo/3", {}))
      local res = c:read_responses(3)
      assert.equal(3, #res)
      for i, r in ipairs(res) do
        assert.equal("/builtin-echo/" .. i, cjson.decode(r.body).path)
      end
      assert.is_false(c:peer_closed(0.1))
      c:close()
    end)

    it("answers 100 pipelined requests from one write, in order", function()
      local c = assert(http.connect(gw:port(), { timeout = 10 }))
      local reqs = {}
      for i = 1, 100 do
        reqs[i] = http.build_request("GET", (i % 3 == 0 and "/echo/" or "/builtin-echo/") .. i, {})
      end
      c:send(table.concat(reqs))
      local res, err = c:read_responses(100)
      assert.equal(100, #res, tostring(err))
      for i, r in ipairs(res) do
        assert.equal(i, tonumber(cjson.decode(r.body).path:match("%d+$")))
      end
      c:close()
    end)
  end)

  describe("after a gateway-made error", function()
    -- An error the gateway makes on a healthy request leaves the connection usable,
    -- or says Connection: close before closing it: a pipelining client must not
    -- lose the next request without being told.
    local cases = {
      { "502 (dead upstream)", "GET /dead HTTP/1.1", 502 },
      { "502 (garbage upstream)", "GET /garbage HTTP/1.1", 502 },
      { "504 (upstream timeout)", "GET /hang HTTP/1.1", 504 },
    }
    for _, case in ipairs(cases) do
      local name, line, status = case[1], case[2], case[3]
      it("answers the next pipelined request or says Connection: close, after a " .. name, function()
        local c = assert(http.connect(gw:port(), { timeout = 10 }))
        c:send(line .. "\r\nHost: x\r\n\r\n" .. http.build_request("GET", "/echo/next", {}))
        local res, err = c:read_response()
        assert.truthy(res, err)
        if status then assert.res_status(status, res, gw) end
        local closing = (res.headers:joined("connection") or ""):lower():find("close", 1, true)
        local res2 = c:read_response({ timeout = 5 })
        if closing then
          assert.is_true((c:peer_closed(5)))
        else
          assert.truthy(res2, "closed after the " .. name .. " without Connection: close\n"
            .. require("spec.support.assert").context(res, gw))
          assert.res_status(200, res2, gw)
          assert.equal("/echo/next", cjson.decode(res2.body).path)
        end
        c:close()
      end)
    end
  end)

  describe("pooled upstream connections", function()
    it("does not fail a request on a pooled connection the upstream has closed", function()
      local res, err = http.request(gw:port(), "GET", "/idle-close/50", {})
      assert.res_status(200, res, err or gw)
      -- wait until the upstream has closed it (counted at the upstream, no timing)
      local closed = require("spec.support.proc").wait_for(function() return up:count().open <= 1 end, 5)
      assert.truthy(closed, "upstream never closed its idle connection")
      for i = 1, 3 do
        local r, e = http.request(gw:port(), "GET", "/echo/after-idle-close-" .. i, {})
        assert.res_status(200, r, e or gw)
      end
    end)
  end)

  describe("clients that leave", function()
    it("survives a client closing in the middle of a download", function()
      for _ = 1, 3 do
        local c = assert(http.connect(gw:port()))
        c:send(http.build_request("GET", "/bytes/" .. (50 * 1024 * 1024), {}))
        c.sock:receive(1024 * 1024)
        c:close()
      end
      for _ = 1, 5 do still_serving() end
    end)

    it("survives a client closing in the middle of an upload", function()
      for _ = 1, 3 do
        local c = assert(http.connect(gw:port()))
        c:send("POST /echo/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n" .. rep("z", 1024 * 1024))
        c:close()
      end
      for _ = 1, 5 do still_serving() end
    end)

    it("survives a client closing while the upstream is still thinking", function()
      for _ = 1, 3 do
        local c = assert(http.connect(gw:port()))
        c:send(http.build_request("GET", "/slow/300", {}))
        c:close()
      end
      for _ = 1, 5 do still_serving() end
      require("socket").sleep(0.4) -- let the abandoned answers arrive at the gateway
      for _ = 1, 5 do still_serving() end
    end)

    it("survives a client resetting its connection mid-request", function()
      for _ = 1, 3 do
        local c = assert(http.connect(gw:port()))
        c:send("POST /echo/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc")
        c.sock:setoption("linger", { on = true, timeout = 0 })
        c:close()
      end
      for _ = 1, 5 do still_serving() end
    end)
  end)

  describe("request targets", function()
    it("handles an absolute-form target", function()
      local res, err = http.raw(gw:port(), "GET http://api.example.com/echo/abs HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
      local j = cjson.decode(assert.res_status(200, res, err or gw)) -- RFC 9112 3.2.2: MUST accept
      assert.equal("/echo/abs", j.path)
      still_serving()
    end)

    it("handles OPTIONS * without crashing", function()
      local res, err = http.raw(gw:port(), "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.truthy(res, err)
      assert.truthy(res.status < 500, "OPTIONS * answered " .. res.status)
      still_serving()
    end)

    it("refuses a URI longer than max_head_bytes with 431 or 414", function()
      local res, err = http.raw(gw:port(), "GET /" .. rep("a", 8000) .. " HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.truthy(res, err)
      assert.truthy(res.status == 431 or res.status == 414, "got " .. res.status)
      still_serving()
    end)

    it("passes non-ASCII bytes in a header value through unchanged", function()
      local v = "caf\195\169 \128\255"
      local res, err = http.request(gw:port(), "GET", "/builtin-echo", { { "X-Bytes", v } })
      local body = assert.res_status(200, res, err or gw)
      local ok, j = pcall(cjson.decode, body)
      assert.truthy(ok, "echo body is not valid JSON: " .. body)
    end)

    it("passes pipelined POST + GET through the proxy in order", function()
      local c = assert(http.connect(gw:port()))
      c:send(http.build_request("POST", "/echo/p1", {}, "12345") .. http.build_request("GET", "/echo/p2", {}))
      local res = c:read_responses(2)
      assert.equal(2, #res)
      assert.equal("/echo/p1", cjson.decode(res[1].body).path)
      assert.equal(5, cjson.decode(res[1].body).body_bytes)
      assert.equal("/echo/p2", cjson.decode(res[2].body).path)
      assert.equal(0, cjson.decode(res[2].body).body_bytes)
      c:close()
    end)
  end)
end)
