-- CORS through the running gateway: what a browser reads on preflights,
-- proxied answers and gateway-made errors, headers that must be absent as
-- carefully as those that must be there, and what reaches the upstream.
local gateway = require("spec.support.gateway")
local upstream = require("spec.support.upstream")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
require("spec.support.assert")
local cjson = require("cjson")

local VPO = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network"
local VP = "Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network"
local CORS_NAMES = { "access-control-allow-origin", "access-control-allow-credentials", "access-control-allow-methods",
  "access-control-allow-headers", "access-control-max-age", "access-control-expose-headers",
  "access-control-allow-private-network", "timing-allow-origin" }

local function no_cors(res, gw)
  for _, n in ipairs(CORS_NAMES) do assert.no_header(res, n, gw) end
end

describe("CORS through the gateway", function()
  local up, gw

  lazy_setup(function()
    up = upstream.start()
    gw = gateway.start({
      limits = { max_body_bytes = 1000, max_head_bytes = 4096 },
      timeouts = { upstream_read = 1 },
      upstreams = { up = { targets = { up:target() } }, dead = { targets = { upstream.dead_target() } } },
      routes = {
        { name = "api", prefix = "/mnt/api", upstream = "up", cors = {
          origins = { "https://app.example.com", "http://localhost:3000" },
          origin_patterns = { "https://*.example.org" },
          methods = { "GET", "PUT", "DELETE" }, headers = { "X-Req", "Content-Type" },
          expose_headers = { "X-Total" }, credentials = true, max_age = 600, timing_allow_origin = true } },
        { name = "dead", prefix = "/dead", upstream = "dead",
          cors = { origins = { "https://app.example.com" } } },
        { name = "public", prefix = "/public", upstream = "up",
          cors = { origins = "*", expose_headers = { "X-Total" }, headers = "*" } },
        { name = "pna", prefix = "/pna", upstream = "up",
          cors = { origins = { "https://app.example.com" }, private_network = true, preflight_continue = true,
            allow_null_origin = true, methods = { "PATCH" } } },
        { name = "teapot", prefix = "/static", static = { status = 418, body = "short and stout\n" },
          cors = { origins = { "https://app.example.com" } } },
        { name = "plain", prefix = "/mnt/plain", upstream = "up" },
      },
    })
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    if up then up:stop() end
  end)

  local function req(method, path, headers, body)
    local res, err = http.request(gw:port(), method, path, headers or {}, body)
    assert.truthy(res, err)
    return res
  end

  local function preflight(path, origin, method, acrh, extra)
    local h = { { "Origin", origin }, { "Access-Control-Request-Method", method } }
    if acrh then h[#h + 1] = { "Access-Control-Request-Headers", acrh } end
    for _, x in ipairs(extra or {}) do h[#h + 1] = x end
    return req("OPTIONS", path, h)
  end

  local function upstream_saw(path)
    return (up:count().requests_by_path or {})[path] or 0
  end

  describe("preflights", function()
    it("answers an allowed one itself: 204 with every Allow header, never forwarded", function()
      local before = upstream_saw("/mnt/api/pf1")
      local res = preflight("/mnt/api/pf1", "https://app.example.com", "PUT", "X-Req, content-type")
      assert.res_status(204, res, gw)
      assert.header(res, "access-control-allow-origin", "https://app.example.com")
      assert.header(res, "access-control-allow-credentials", "true")
      assert.header(res, "access-control-allow-methods", "GET, PUT, DELETE")
      assert.header(res, "access-control-allow-headers", "x-req, content-type")
      assert.header(res, "access-control-max-age", "600")
      assert.header(res, "vary", VPO)
      assert.no_header(res, "access-control-expose-headers")
      assert.no_header(res, "content-length")
      assert.equal("", res.body)
      assert.equal(before, upstream_saw("/mnt/api/pf1"))
    end)

    it("reads a preflight whose head comes in one read per byte", function()
      -- every name and value straddles reads: the gateway must still recognize
      -- Origin and the Access-Control-Request-* names and see their values whole
      local function split_preflight(acrh)
        local c = assert(http.connect(gw:port()))
        local bytes = http.build_request("OPTIONS", "/mnt/api/split", { { "Origin", "https://app.example.com" },
          { "Access-Control-Request-Method", "PUT" }, { "Access-Control-Request-Headers", acrh } })
        assert(c:send_bytewise(bytes))
        local res = c:read_response()
        c:close()
        return res
      end
      local res = split_preflight("X-Req")
      assert.res_status(204, res, gw)
      assert.header(res, "access-control-allow-origin", "https://app.example.com")
      assert.header(res, "access-control-allow-headers", "x-req, content-type")
      assert.header(res, "vary", VPO)
      res = split_preflight("X-Req, X-Not-Listed")
      assert.res_status(403, res, gw)
      no_cors(res, gw)
    end)

    it("echoes the origin normalized, and allows pattern matches at a label boundary only", function()
      local res = preflight("/mnt/api/x", "https://APP.Example.com:443", "GET")
      assert.header(res, "access-control-allow-origin", "https://app.example.com")
      res = preflight("/mnt/api/x", "https://a.b.example.org", "GET")
      assert.header(res, "access-control-allow-origin", "https://a.b.example.org")
      for _, o in ipairs({ "https://example.org", "https://evil-example.org", "https://example.org.evil.net",
        "http://a.example.org", "https://a.example.org:8443" }) do
        res = preflight("/mnt/api/x", o, "GET")
        assert.res_status(403, res, gw)
        no_cors(res, gw)
      end
    end)

    it("refuses a method or a header not allowed: 403, no Allow headers, not forwarded", function()
      local before = upstream_saw("/mnt/api/pf2")
      local cases = {
        { "PATCH", nil, "the method is not in methods" },
        { "put", nil, "the method is not in methods" }, -- methods compare case-sensitively, as Fetch does
        { "PUT", "X-Req, X-Other", "the header is not in headers" },
        { "PUT", "Authorization", "the header is not in headers" },
      }
      for _, c in ipairs(cases) do
        local res = preflight("/mnt/api/pf2", "https://app.example.com", c[1], c[2])
        assert.res_status(403, res, gw)
        no_cors(res, gw)
        assert.header(res, "vary", VPO)
        assert.matches(c[3], cjson.decode(res.body).error, 1, true)
      end
      assert.equal(before, upstream_saw("/mnt/api/pf2"))
    end)

    it("reads Access-Control-Request-Headers over several lines, names in any case", function()
      local res = preflight("/mnt/api/x", "https://app.example.com", "PUT", "X-REQ",
        { { "Access-Control-Request-Headers", "Content-Type" } })
      assert.res_status(204, res, gw)
      assert.header(res, "access-control-allow-headers", "x-req, content-type")
    end)

    it("refuses more requested header names than any browser sends", function()
      local names = {}
      for i = 1, 65 do names[i] = "x-h" .. i end
      local res = preflight("/public/x", "https://app.example.com", "PUT", table.concat(names, ", "))
      assert.res_status(403, res, gw)
      no_cors(res, gw)
    end)

    it("echoes the requested names for headers = '*', Authorization included", function()
      local res = preflight("/public/x", "https://any.test", "POST", "Authorization, X-Custom")
      assert.res_status(204, res, gw)
      assert.header(res, "access-control-allow-origin", "*")
      assert.header(res, "access-control-allow-headers", "authorization, x-custom")
      assert.header(res, "vary", VP)
    end)

    it("proxies an OPTIONS that is not a preflight like any request", function()
      local before = upstream_saw("/mnt/api/opt")
      local res = req("OPTIONS", "/mnt/api/opt", { { "Origin", "https://app.example.com" } })
      assert.res_status(200, res, gw)
      assert.equal("OPTIONS", cjson.decode(res.body).method)
      assert.header(res, "access-control-allow-origin", "https://app.example.com")
      assert.no_header(res, "access-control-allow-methods")
      res = req("OPTIONS", "/mnt/api/opt", { { "Access-Control-Request-Method", "PUT" } })
      assert.res_status(200, res, gw)
      no_cors(res, gw)
      assert.equal(before + 2, upstream_saw("/mnt/api/opt"))
    end)

    it("answers Access-Control-Request-Private-Network where enabled, refuses it elsewhere", function()
      local pna = { { "Access-Control-Request-Private-Network", "true" } }
      local res = preflight("/mnt/api/x", "https://app.example.com", "GET", nil, pna)
      assert.res_status(403, res, gw)
      no_cors(res, gw)
      local before = upstream_saw("/pna/x")
      res = preflight("/pna/x", "https://app.example.com", "PATCH", nil, pna)
      -- preflight_continue: the upstream answers, the gateway decorates
      assert.res_status(200, res, gw)
      assert.equal("OPTIONS", cjson.decode(res.body).method)
      assert.header(res, "access-control-allow-private-network", "true")
      assert.header(res, "access-control-allow-origin", "https://app.example.com")
      assert.header(res, "access-control-allow-methods", "PATCH")
      assert.equal(before + 1, upstream_saw("/pna/x"))
    end)
  end)

  describe("actual requests", function()
    it("decorate an allowed origin's response: one Allow-Origin, credentials, expose, timing, Vary", function()
      local res = req("GET", "/mnt/api/items", { { "Origin", "https://app.example.com" } })
      assert.res_status(200, res, gw)
      assert.header(res, "access-control-allow-origin", "https://app.example.com")
      assert.header(res, "access-control-allow-credentials", "true")
      assert.header(res, "access-control-expose-headers", "x-total")
      assert.header(res, "timing-allow-origin", "https://app.example.com")
      assert.header(res, "vary", "Origin")
      assert.no_header(res, "access-control-allow-methods")
      assert.no_header(res, "access-control-max-age")
    end)

    it("replace the upstream's own CORS headers and merge its Vary into one line", function()
      local res = req("GET", "/mnt/api/cors-headers", { { "Origin", "https://app.example.com" } })
      assert.res_status(200, res, gw)
      assert.header(res, "access-control-allow-origin", "https://app.example.com")
      assert.header(res, "access-control-expose-headers", "x-total")
      assert.header(res, "timing-allow-origin", "https://app.example.com")
      assert.header(res, "access-control-allow-credentials", "true")
      assert.no_header(res, "access-control-max-age")
      assert.header(res, "vary", "Accept-Encoding, Accept-Language, Origin")
      -- refused: the upstream's "*" must not leak either
      res = req("GET", "/mnt/api/cors-headers", { { "Origin", "https://evil.test" } })
      no_cors(res, gw)
      assert.header(res, "vary", "Accept-Encoding, Accept-Language, Origin")
    end)

    it("reach the upstream for a refused origin, answered without CORS headers but with Vary", function()
      local before = upstream_saw("/mnt/api/refused")
      local res = req("DELETE", "/mnt/api/refused", { { "Origin", "https://evil.test" } })
      assert.res_status(200, res, gw)
      no_cors(res, gw)
      assert.header(res, "vary", "Origin")
      assert.equal(before + 1, upstream_saw("/mnt/api/refused"))
    end)

    it("without Origin get no CORS headers, and Vary: Origin for the caches", function()
      local res = req("GET", "/mnt/api/items")
      no_cors(res, gw)
      assert.header(res, "vary", "Origin")
    end)

    it("never allow or echo a malformed Origin", function()
      local long = "https://" .. ("a"):rep(250) .. ".com"
      local bad = { "https://app.example.com/", "https://app.example.com/path", "https://user@app.example.com",
        "https://app.example.com ", "https://app.exa mple.com", long, "https://\xc3\xa9.example.com", "null",
        "app.example.com", "HTTPS://" }
      for _, o in ipairs(bad) do
        local res = req("GET", "/mnt/api/items", { { "Origin", o } })
        assert.res_status(200, res, gw)
        no_cors(res, gw)
        for _, line in ipairs(res.lines or {}) do assert.falsy(line:find(o, 1, true), line) end
      end
      local res = req("GET", "/mnt/api/items", { { "Origin", "https://app.example.com" }, { "Origin", "https://app.example.com" } })
      no_cors(res, gw)
      assert.header(res, "vary", "Origin")
    end)

    it("decorate HEAD and 304 answers", function()
      local res, err = http.request(gw:port(), "HEAD", "/mnt/api/items", { { "Origin", "http://localhost:3000" } })
      assert.res_status(200, res, err or gw)
      assert.header(res, "access-control-allow-origin", "http://localhost:3000")
      res = req("GET", "/mnt/api/304-with-length", { { "Origin", "https://app.example.com" } })
      assert.res_status(304, res, gw)
      assert.header(res, "access-control-allow-origin", "https://app.example.com")
      assert.header(res, "vary", "Origin")
    end)

    it("with origins = '*' send '*' to everyone, null and no Origin included, without Vary: Origin", function()
      for _, o in ipairs({ "https://anyone.test", "null", false }) do
        local res = req("GET", "/public/items", o and { { "Origin", o } } or {})
        assert.res_status(200, res, gw)
        assert.header(res, "access-control-allow-origin", "*")
        assert.header(res, "access-control-expose-headers", "x-total")
        assert.no_header(res, "access-control-allow-credentials")
        assert.no_header(res, "vary")
      end
    end)

    it("allow null only with allow_null_origin", function()
      local res = req("GET", "/pna/x", { { "Origin", "null" } })
      assert.header(res, "access-control-allow-origin", "null")
      res = req("GET", "/mnt/api/x", { { "Origin", "null" } })
      no_cors(res, gw)
    end)
  end)

  describe("gateway-made responses", function()
    local function allowed(res, status)
      assert.res_status(status, res, gw)
      assert.header(res, "access-control-allow-origin", "https://app.example.com")
      assert.header(res, "vary", "Origin")
    end

    it("carry the route's headers for an allowed origin: 502, 504, 413, 431, static", function()
      allowed(req("GET", "/dead/x", { { "Origin", "https://app.example.com" } }), 502)
      allowed(req("GET", "/mnt/api/hang", { { "Origin", "https://app.example.com" } }), 504)
      allowed(req("POST", "/mnt/api/big", { { "Origin", "https://app.example.com" } }, ("x"):rep(2000)), 413)
      allowed(req("GET", "/mnt/api/x", { { "Origin", "https://app.example.com" }, { "X-Big", ("b"):rep(5000) } }), 431)
      allowed(req("GET", "/static", { { "Origin", "https://app.example.com" } }), 418)
    end)

    it("carry none for a refused origin, and never echo a head llhttp could not parse", function()
      local res = req("GET", "/dead/x", { { "Origin", "https://evil.test" } })
      assert.res_status(502, res, gw)
      no_cors(res, gw)
      res = http.raw(gw:port(), "GET /mnt/api/x HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example.com\r\nX: a\1b\r\n\r\n")
      assert.res_status(400, res, gw)
      no_cors(res, gw)
    end)

    it("carry them on a 400 for a whole head whose Origin is allowed", function()
      local res = http.raw(gw:port(), "GET /mnt/api/x HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example.com\r\nBad Header: y\r\n\r\n")
      allowed(res, 400)
    end)
  end)

  describe("a route without cors", function()
    it("passes the upstream's answer untouched, its own CORS headers included", function()
      local res = req("GET", "/mnt/plain/cors-headers", { { "Origin", "https://app.example.com" } })
      assert.res_status(200, res, gw)
      assert.header(res, "access-control-allow-origin", "*")
      assert.header(res, "access-control-expose-headers", "X-Secret")
      assert.header(res, "access-control-max-age", "86400")
      assert.same({ "Accept-Encoding", "Accept-Language" }, res.headers:all("vary"))
      res = preflight("/mnt/plain/x", "https://app.example.com", "PUT")
      assert.res_status(200, res, gw) -- not a CORS route: the upstream answers the OPTIONS
      assert.equal("OPTIONS", cjson.decode(res.body).method)
    end)
  end)
end)

describe("CORS config errors", function()
  it("are refused at load with the path of the field and what to write instead", function()
    local code, out = gateway.check({ routes = { { name = "r", prefix = "/", upstream = "echo", cors = {
      origins = { "https://a.example.com/", "bar.com" }, credentials = true,
      origin_patterns = { "https://*.github.io", "https://a.*.example.com" }, methods = { "TRACE" } } } } })
    assert.equal(2, code, out)
    assert.matches("routes%[1%]%.cors%.origins%[1%]", out)
    assert.matches("routes%[1%]%.cors%.origins%[2%]", out)
    assert.matches("routes%[1%]%.cors%.origin_patterns%[1%]", out)
    assert.matches("routes%[1%]%.cors%.origin_patterns%[2%]", out)
    assert.matches("routes%[1%]%.cors%.methods%[1%]", out)
    code, out = gateway.check({ routes = { { name = "r", prefix = "/", upstream = "echo",
      cors = { origins = "*", credentials = true } } } })
    assert.equal(2, code, out)
    assert.matches("routes%[1%]%.cors", out)
  end)

  it("warn but accept a max_age above Chromium's cap", function()
    local code, out = gateway.check({ routes = { { name = "r", prefix = "/", upstream = "echo",
      cors = { origins = { "https://a.example.com" }, max_age = 86400 } } } })
    assert.equal(0, code, out)
    assert.matches("warning: routes%[1%]%.cors%.max_age", out)
  end)
end)

local _ = proc
