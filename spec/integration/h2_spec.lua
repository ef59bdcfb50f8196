-- HTTP/2: what a browser (or any h2 client) gets from corsgate is what an
-- HTTP/1.1 client gets: preflights, CORS headers and Vary on proxied and
-- gateway-made answers, bodies streamed both ways under flow control, many
-- streams on one connection. Over TLS (ALPN h2, on by default) and over plain
-- HTTP with prior knowledge (h2c, only where a listener asks for it).
-- The client is spec/support/h2client.py: raw frames, so what is asserted is
-- what went over the wire.
local gateway = require("spec.support.gateway")
local upstream = require("spec.support.upstream")
local proc = require("spec.support.proc")
local http = require("spec.support.http")
local blob = require("spec.support.blob")
local h2 = require("spec.support.h2")
local certs_mod = require("spec.support.certs")
local cjson = require("cjson")
local metric = require("spec.support.metrics").value
require("spec.support.assert")

local format = string.format
local APP = "https://app.example.test"
-- Under a sanitizer or valgrind freed memory is held back: RSS says nothing there.
local SANITIZED = os.getenv("CORSGATE_SANITIZE") == "1" or os.getenv("CORSGATE_VALGRIND") == "1"

local function seen(stream)
  local j = cjson.decode(stream.body)
  local h = {}
  for _, kv in ipairs(j.headers) do
    local n = kv[1]:lower()
    h[n] = h[n] or {}
    table.insert(h[n], kv[2])
  end
  return j, h
end

describe("HTTP/2", function()
  local dir, ca, cert, up, gw, tls, h2c, plain, tls_h1, admin_port
  local missing = h2.missing()

  lazy_setup(function()
    assert(not missing, missing)
    dir = proc.tmpdir("h2")
    ca = certs_mod.new(dir)
    cert = ca:issue("api", { "api.example.test", "localhost" })
    up = upstream.start()
    tls, h2c, plain, tls_h1 = proc.free_port(), proc.free_port(), proc.free_port(), proc.free_port()
    admin_port = proc.free_port()
    gw = gateway.start({
      workers = 2,
      access_log = "text",
      listen = {
        { address = "127.0.0.1:" .. tls, tls = { certificates = { { cert = cert.cert, key = cert.key } } } },
        { address = "127.0.0.1:" .. h2c, http2 = true },
        "127.0.0.1:" .. plain,
        { address = "127.0.0.1:" .. tls_h1, http2 = false,
          tls = { certificates = { { cert = cert.cert, key = cert.key } } } },
      },
      limits = { max_body_bytes = 200 * 1024 * 1024 },
      admin = { listen = "127.0.0.1:" .. admin_port },
      upstreams = { api = { targets = { up:target() } }, dead = { targets = { upstream.dead_target() } } },
      routes = {
        { name = "static", prefix = "/hello", static = { status = 200, body = "hello\n" },
          cors = { origins = { APP } } },
        { name = "dead", prefix = "/dead", upstream = "dead", cors = { origins = { APP } } },
        { name = "shadow", prefix = "/shadow", upstream = "api", cors = { origins = { APP } },
          shadow_cors = { origins = { APP, "https://new.example" } } },
        -- origins decided by a plugin (the test upstream is also the tenant service)
        { name = "tenant", prefix = "/tenant", upstream = "api", cors = { plugin = "tenant_registry",
          plugin_config = { base_url = "http://" .. up:target() }, methods = { "GET", "PUT" }, max_age = 60 } },
        { name = "api", prefix = "/", upstream = "api",
          cors = { origins = { APP }, methods = { "GET", "PUT", "POST" }, headers = { "Content-Type" },
                   expose_headers = { "X-Checksum" }, credentials = true, max_age = 600 } },
      },
    }, { port = tls })
    assert.truthy(proc.wait_for(function() return proc.port_open(h2c) and proc.port_open(tls_h1) end, 5))
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    if up then up:stop() end
    if dir then proc.rmdir_all(dir) end
  end)

  for _, over in ipairs({ "TLS", "h2c" }) do
    local function run(requests, extra)
      local spec = { port = over == "TLS" and tls or h2c, tls = over == "TLS", requests = requests }
      for k, v in pairs(extra or {}) do spec[k] = v end
      local r = h2.run(spec)
      if over == "TLS" then assert.equal("h2", r.alpn) end
      return r
    end
    local scheme = over == "TLS" and "https" or "http"
    local function get(path, extra) return h2.get(path, extra, { scheme = scheme }) end

    describe("over " .. over, function()
      it("answers an allowed preflight itself, with the CORS headers and Vary", function()
        local before = up:count().requests
        local r = run({ h2.request("OPTIONS", "/things", { { "origin", APP },
          { "access-control-request-method", "PUT" }, { "access-control-request-headers", "content-type" } },
          { scheme = scheme }) })
        local s = r.streams["1"]
        assert.equal(204, s.status)
        assert.equal(APP, h2.header(s, "access-control-allow-origin"))
        assert.equal("true", h2.header(s, "access-control-allow-credentials"))
        assert.equal("GET, PUT, POST", h2.header(s, "access-control-allow-methods"))
        assert.equal("600", h2.header(s, "access-control-max-age"))
        assert.matches("Origin", h2.header(s, "vary"), nil, true)
        assert.matches("Access-Control-Request-Method", h2.header(s, "vary"), nil, true)
        assert.is_true(s.ended)
        assert.is_nil(r.goaway)
        assert.equal(before, up:count().requests, "a preflight reached the upstream")
      end)

      it("refuses a preflight from an unlisted origin with 403 and no CORS grant, never forwarding it", function()
        local before = up:count().requests
        local s = run({ h2.request("OPTIONS", "/things", { { "origin", "https://evil.example" },
          { "access-control-request-method", "PUT" } }, { scheme = scheme }) }).streams["1"]
        assert.equal(403, s.status)
        assert.is_nil(h2.header(s, "access-control-allow-origin"))
        assert.matches("Origin", h2.header(s, "vary"), nil, true)
        assert.equal(before, up:count().requests)
      end)

      it("proxies an actual request: the upstream's answer with the CORS headers, names in lower case", function()
        local s = run({ get("/echo", { { "origin", APP }, { "cookie", "a=1" }, { "cookie", "b=2" } }) }).streams["1"]
        assert.equal(200, s.status)
        assert.equal(APP, h2.header(s, "access-control-allow-origin"))
        assert.equal("x-checksum", h2.header(s, "access-control-expose-headers"))
        assert.equal("Origin", h2.header(s, "vary"))
        for _, kv in ipairs(s.headers) do assert.equal(kv[1]:lower(), kv[1]) end
        local j, h = seen(s)
        assert.equal("GET", j.method)
        assert.equal("HTTP/1.1", j.version)
        -- :authority becomes Host; cookie crumbs join into one field (RFC 9113 8.2.3)
        assert.same({ "localhost" }, h.host)
        assert.same({ "a=1; b=2" }, h.cookie)
        assert.same({ scheme }, h["x-forwarded-proto"])
        assert.matches("^2%.0 ", h.via[1])
      end)

      it("merges the upstream's Vary with its own and replaces the upstream's CORS headers", function()
        local s = run({ get("/cors-headers", { { "origin", APP } }) }).streams["1"]
        assert.equal(200, s.status)
        assert.same({ APP }, h2.headers(s, "access-control-allow-origin"))
        local vary = table.concat(h2.headers(s, "vary"), ", ")
        assert.matches("Origin", vary, nil, true)
      end)

      it("puts CORS headers on the gateway's own errors, so the browser shows the real status", function()
        local s = run({ get("/dead/x", { { "origin", APP } }) }).streams["1"]
        assert.equal(502, s.status)
        assert.equal(APP, h2.header(s, "access-control-allow-origin"))
        assert.matches("upstream", s.body)
        s = run({ get("/hello", { { "origin", APP } }) }).streams["1"]
        assert.equal(200, s.status)
        assert.equal("hello\n", s.body)
        assert.equal(APP, h2.header(s, "access-control-allow-origin"))
      end)

      it("forwards request bodies exactly, with content-length and without (chunked upstream)", function()
        local n = 300000
        local r = run({
          { headers = h2.request("POST", "/echo", { { "content-length", tostring(n) } }, { scheme = scheme }).headers,
            body_blob = n },
          { headers = h2.request("POST", "/echo", {}, { scheme = scheme }).headers, body_blob = n },
        })
        for _, id in ipairs({ "1", "3" }) do
          local s = r.streams[id]
          assert.equal(200, s.status, s.body)
          local j = seen(s)
          assert.equal(n, j.body_bytes)
          assert.equal(blob.checksum(n), j.body_checksum)
          assert.equal(id == "3", j.chunked)
        end
      end)

      it("gives the connection's window back for bodies of streams that ended early (25 failed uploads)", function()
        local reqs = {}
        for i = 1, 25 do
          reqs[i] = { headers = h2.request("POST", "/dead/x", { { "content-length", "60000" } },
            { scheme = scheme }).headers, body_len = 60000 }
        end
        local r = run(reqs, { wait = 20, bodies = false })
        for i = 1, 25 do
          local s = r.streams[tostring(2 * i - 1)]
          assert.equal(502, s.status, i .. ": " .. cjson.encode(s))
        end
        local s = run({ { headers = h2.request("POST", "/echo", {}, { scheme = scheme }).headers,
          body_len = 100000 } }).streams["1"]
        assert.equal(200, s.status)
      end)

      it("says 100 Continue to a request that expects it, then answers", function()
        local r = run({ { headers = h2.request("POST", "/echo", { { "expect", "100-continue" },
          { "content-length", "5" } }, { scheme = scheme }).headers, body = "hello" } })
        local s = r.streams["1"]
        assert.same({ 100 }, s.informational)
        assert.equal(200, s.status)
        assert.equal(5, seen(s).body_bytes)
      end)

      it("serves 100 streams at once on one connection, in any order", function()
        local reqs = {}
        for i = 1, 100 do reqs[i] = get("/slow/" .. (i % 5) * 20, { { "origin", APP } }) end
        local r = run(reqs, { wait = 15 })
        local ok = 0
        for _, s in pairs(r.streams) do
          if s.status == 200 and h2.header(s, "access-control-allow-origin") == APP then ok = ok + 1 end
        end
        assert.equal(100, ok)
        assert.is_nil(r.goaway)
      end)

      it("serves a connection again after it sat idle long enough to give its buffers back", function()
        local later = get("/bytes/100000")
        later.after = 2.5 -- past the 2 s after which an idle connection is trimmed
        local r = run({ get("/bytes/70000"), later }, { wait = 10 })
        assert.equal(blob.checksum(70000), r.streams["1"].checksum)
        assert.equal(200, r.streams["3"].status)
        assert.equal(blob.checksum(100000), r.streams["3"].checksum)
        assert.is_nil(r.goaway)
      end)

      it("streams a 20 MB response under the client's flow control", function()
        local n = 20 * 1024 * 1024
        local s = run({ get("/bytes/" .. n) }, { wait = 30 }).streams["1"]
        assert.equal(200, s.status)
        assert.equal(n, s.body_len)
        assert.equal(blob.checksum(n), s.checksum)
        assert.equal(tostring(n), h2.header(s, "content-length"))
      end)
    end)
  end

  it("waits for a plugin's decision on many streams at once, then answers each", function()
    local origins = {}
    for i = 1, 20 do origins["https://t" .. i .. ".example"] = { allowed = i % 2 == 0, tenant = "t" .. i } end
    up:tenants({ origins = origins, mode = "slow", delay_ms = 200 })
    local reqs = {}
    for i = 1, 20 do
      -- a preflight and an actual request per origin, both waiting on the one lookup
      reqs[#reqs + 1] = h2.request("OPTIONS", "/tenant/x", { { "origin", "https://t" .. i .. ".example" },
        { "access-control-request-method", "PUT" } }, { scheme = "https" })
      reqs[#reqs + 1] = h2.get("/tenant/echo", { { "origin", "https://t" .. i .. ".example" } }, { scheme = "https" })
    end
    local r = h2.run({ port = tls, tls = true, requests = reqs, wait = 10 })
    for i = 1, 20 do
      local origin = "https://t" .. i .. ".example"
      local pf, get = r.streams[tostring(4 * i - 3)], r.streams[tostring(4 * i - 1)]
      if i % 2 == 0 then
        assert.equal(204, pf.status, origin)
        assert.equal(origin, h2.header(pf, "access-control-allow-origin"))
        assert.equal(200, get.status)
        assert.equal(origin, h2.header(get, "access-control-allow-origin"))
      else
        assert.equal(403, pf.status, origin)
        assert.is_nil(h2.header(pf, "access-control-allow-origin"))
        assert.is_nil(h2.header(get, "access-control-allow-origin"))
      end
    end
    assert.equal(20, up:count().requests_by_path and (function()
      local n = 0
      for path, c in pairs(up:count().requests_by_path) do
        if path:find("^/origins/") then n = n + c end
      end
      return n
    end)() or 0, "one lookup per origin")
  end)

  it("moves 100 MB up and 100 MB down over one stream each at bounded memory", function()
    local n = 100 * 1024 * 1024
    local r = h2.run({ port = tls, tls = true, wait = 120, requests = {
      { headers = h2.request("POST", "/echo", {}, { scheme = "https" }).headers, body_blob = n } } })
    local s = r.streams["1"]
    assert.equal(200, s.status, s.body)
    local j = seen(s)
    assert.equal(n, j.body_bytes)
    assert.equal(blob.checksum(n), j.body_checksum)
    s = h2.run({ port = tls, tls = true, wait = 120, requests = { h2.get("/bytes/" .. n, {}, { scheme = "https" }) } })
        .streams["1"]
    assert.equal(n, s.body_len)
    assert.equal(blob.checksum(n), s.checksum)
    local mem = gw:rss_kb()
    io.stderr:write(format("\n[h2] corsgate peak RSS after 100 MB up and down over HTTP/2: %.1f MiB%s\n",
      mem.hwm / 1024, SANITIZED and " (sanitized build: not checked)" or ""))
    if not SANITIZED then
      assert.truthy(mem.hwm < 64 * 1024, format("peak RSS %d KiB", mem.hwm))
    end
  end)

  it("logs each stream with its protocol", function()
    h2.run({ port = tls, tls = true, requests = { h2.get("/echo?logged", {}, { scheme = "https" }) } })
    assert.truthy(proc.wait_for(function() return gw:log():find('"GET /echo?logged HTTP/2.0" 200', 1, true) end, 2),
      gw:log_tail())
  end)

  it("counts requests by protocol, and HTTP/2 connections, in the metrics", function()
    local function m() return assert(http.request(admin_port, "GET", "/metrics", {})).body end
    local before = m()
    h2.run({ port = h2c, requests = { h2.get("/echo"), h2.get("/echo"), h2.get("/echo") } })
    assert(http.request(plain, "GET", "/echo", { { "Host", "localhost" } }))
    local after
    assert.truthy(proc.wait_for(function()
      after = m()
      return metric(after, "corsgate_requests_by_protocol_total", '{protocol="HTTP/2"}') >=
        metric(before, "corsgate_requests_by_protocol_total", '{protocol="HTTP/2"}') + 3
    end, 2), after)
    assert.equal(metric(before, "corsgate_http2_connections_total") + 1, metric(after, "corsgate_http2_connections_total"))
    assert.truthy(metric(after, "corsgate_requests_by_protocol_total", '{protocol="HTTP/1.1"}') >
      metric(before, "corsgate_requests_by_protocol_total", '{protocol="HTTP/1.1"}'))
  end)

  it("evaluates a route's shadow policy on HTTP/2 streams too, enforcing only the real one", function()
    local function m() return assert(http.request(admin_port, "GET", "/metrics", {})).body end
    local series = '{route="shadow",outcome="different"}'
    local before = metric(m(), "corsgate_shadow_decisions_total", series)
    local s = h2.run({ port = h2c, requests = { h2.get("/shadow/echo", { { "origin", "https://new.example" } }) } })
        .streams["1"]
    assert.equal(200, s.status)
    assert.is_nil(h2.header(s, "access-control-allow-origin"))
    assert.truthy(proc.wait_for(function()
      return metric(m(), "corsgate_shadow_decisions_total", series) == before + 1
    end, 2), "the shadow decision was not counted")
  end)

  it("speaks h2c only where a listener asks: a plain listener reads the preface as HTTP/1.1", function()
    local r = h2.run({ port = plain, requests = { h2.get("/echo") }, wait = 2 })
    assert.is_nil(r.streams["1"].status)
    assert.is_true(r.closed)
    local res, err = http.request(plain, "GET", "/echo", { { "Host", "localhost" } })
    assert.res_status(200, res, err or gw)
  end)

  it("offers only http/1.1 by ALPN on a TLS listener with http2 = false", function()
    local r = h2.run({ port = tls_h1, tls = true, requests = { h2.get("/echo", {}, { scheme = "https" }) }, wait = 2 })
    assert.equal("http/1.1", r.alpn)
    assert.is_nil(r.streams["1"].status)
  end)

  it("serves HTTP/1.1 on the same TLS listener to a client that offers only it", function()
    local res, err = http.request(tls, "GET", "/echo", { { "Host", "localhost" } }, nil,
      { tls = { servername = "localhost", cafile = ca.ca, alpn = { "http/1.1" } } })
    assert.res_status(200, res, err or gw)
  end)
end)
