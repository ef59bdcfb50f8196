-- HTTP/1.1 edges found by sending raw bytes: an absolute-form request target
-- (which a server MUST accept, RFC 9112 3.2.2), a Host whose port is not a
-- number (400, RFC 9112 3.2), and a chunk-size line that alone declares more
-- than max_body_bytes (413 at once, not after waiting for the bytes).
local gateway = require("spec.support.gateway")
local upstream = require("spec.support.upstream")
local http = require("spec.support.http")
require("spec.support.assert")
local cjson = require("cjson")

local function header(j, name)
  for _, h in ipairs(j.headers) do
    if h[1]:lower() == name then return h[2] end
  end
end

describe("request targets and Host, as raw bytes", function()
  local up, gw

  lazy_setup(function()
    up = upstream.start()
    gw = gateway.start({
      limits = { max_body_bytes = 1000 },
      upstreams = { u = { targets = { up:target() } } },
      routes = {
        { name = "api", host = "api.example.test", prefix = "/v1", upstream = "u" },
        { name = "api-echo", host = "api.example.test", prefix = "/where", upstream = "echo" },
        { name = "other-echo", prefix = "/where", upstream = "echo" },
        { name = "local", prefix = "/local", static = { status = 200, body = "ok" } },
        { name = "any", prefix = "/", upstream = "u" },
      },
    })
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    if up then up:stop() end
  end)

  local function upstream_requests() return up:count().requests end

  local function raw(bytes)
    local res, err, c = http.raw(gw:port(), bytes, { timeout = 5 })
    if c then c:close() end
    return res, err
  end

  describe("absolute-form", function()
    it("is accepted, routed by its authority, and forwarded in origin-form", function()
      local res, err = raw("GET http://api.example.test/v1/items?x=1 HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
      local j = cjson.decode(assert.res_status(200, res, err or gw))
      assert.equal("/v1/items?x=1", j.target)
      assert.equal("api.example.test", header(j, "host"))
    end)

    it("routes by the target's authority when Host names another (the target wins)", function()
      local res, err = raw("GET http://api.example.test/where HTTP/1.1\r\nHost: elsewhere.test\r\n\r\n")
      local j = cjson.decode(assert.res_status(200, res, err or gw))
      assert.equal("api-echo", j.route)
      assert.equal("/where", j.path)
      assert.equal("api.example.test", j.headers.host)
    end)

    it("is routed by its authority on HTTP/1.0 without a Host", function()
      local res, err = raw("GET http://api.example.test/where?q HTTP/1.0\r\n\r\n")
      local j = cjson.decode(assert.res_status(200, res, err or gw))
      assert.same({ "api-echo", "/where", "q", "api.example.test" }, { j.route, j.path, j.query, j.headers.host })
    end)

    for _, case in ipairs({
      { "http://api.example.test?x=1", "/?x=1", "api.example.test" },
      { "HTTPS://API.EXAMPLE.TEST:8443", "/", "API.EXAMPLE.TEST:8443" },
      { "http://[::1]:8080/v2/a", "/v2/a", "[::1]:8080" },
    }) do
      it("forwards " .. case[1] .. " as " .. case[2], function()
        local res, err = raw("GET " .. case[1] .. " HTTP/1.1\r\nHost: x\r\n\r\n")
        local j = cjson.decode(assert.res_status(200, res, err or gw))
        assert.equal(case[2], j.target)
        assert.equal(case[3], header(j, "host"))
      end)
    end

    for _, target in ipairs({ "ftp://api.example.test/x", "http:///x", "http://user@api.example.test/x",
      "http://api.example.test:abc/x", "http://api.example.test:99999/x", "http://[::1/x",
      "api.example.test/x" }) do
      it("refuses " .. target .. " with 400 and never forwards it", function()
        local before = upstream_requests()
        local res, err = raw("GET " .. target .. " HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
        assert.res_status(400, res, err or gw)
        assert.header(res, "connection", "close")
        assert.equal(before, upstream_requests())
      end)
    end
  end)

  describe("Host", function()
    for _, host in ipairs({ "api.example.test:abc", "api.example.test:80abc", "api.example.test:123456",
      "api.example.test:65536", "user@api.example.test", "[::1", "[::1]x", "a%zzb", "a b", "a:1:2",
      "[v]", "[:]", "[.]", "[vv:..]", "[1.2.3.4.5]", "[fe80::1%25eth0]", "[::1::2]", "[]", "[v1.]" }) do
      it(("answers 400 to Host: %s without reaching the upstream"):format(host), function()
        local before = upstream_requests()
        local res, err = raw("GET /v1/x HTTP/1.1\r\nHost: " .. host .. "\r\n\r\n")
        assert.res_status(400, res, err or gw)
        assert.equal("invalid Host header", cjson.decode(res.body).error)
        assert.equal(before, upstream_requests())
      end)
    end

    for _, host in ipairs({ "api.example.test:8080", "api.example.test:", "[::1]:80", "127.0.0.1", "a%41b", "",
      "[::ffff:192.0.2.1]", "[2001:db8::1]:443", "[v1.fe80::a+en1]" }) do
      it(("forwards Host: %s as it came"):format(host), function()
        local res, err = raw("GET /v1/x HTTP/1.1\r\nHost: " .. host .. "\r\n\r\n")
        local j = cjson.decode(assert.res_status(200, res, err or gw))
        assert.equal(host, header(j, "host"))
      end)
    end
  end)

  describe("methods a gateway does not pass on", function()
    for _, method in ipairs({ "CONNECT", "TRACE" }) do
      for _, target in ipairs({ "/v1/x", "http://api.example.test/v1/x" }) do
        it(("answers 405 to %s %s without reaching the upstream"):format(method, target), function()
          local before = upstream_requests()
          local res, err = raw(method .. " " .. target .. " HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
          assert.res_status(405, res, err or gw)
          assert.equal(before, upstream_requests())
        end)
      end
    end
  end)

  describe("a chunk size over max_body_bytes", function()
    for _, path in ipairs({ "/v1/upload", "/local" }) do
      it("is answered 413 at once and the connection closed (" .. path .. ")", function()
        local c = assert(http.connect(gw:port(), { timeout = 5 }))
        c:send("POST " .. path .. " HTTP/1.1\r\nHost: api.example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
          .. "ffffffffffffffff\r\n")
        -- nothing more is sent: a gateway waiting for the chunk's bytes times out here
        local res, err = c:read_response({ timeout = 5 })
        assert.res_status(413, res, err or gw)
        assert.header(res, "connection", "close")
        assert.truthy(c:peer_closed(5), "the connection stayed open")
        c:close()
      end)
    end

    it("is told apart from a body that fits: 1000 bytes in one chunk pass, 1001 are refused", function()
      local res, err = http.raw(gw:port(), "POST /local HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "3e8\r\n" .. string.rep("a", 1000) .. "\r\n0\r\n\r\n")
      assert.res_status(200, res, err or gw)
      res, err = http.raw(gw:port(), "POST /local HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "3e9\r\n")
      assert.res_status(413, res, err or gw)
    end)
  end)
end)
