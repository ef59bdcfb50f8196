-- TLS listeners: HTTPS and plain HTTP from one config, the certificate chosen
-- by SNI and by what the client can verify (ECDSA or RSA), the protocol
-- policy (TLS 1.2+ with AEAD ciphers only), session resumption across
-- workers, slow and broken handshakes, and certificates renewed by a reload.
-- The client side is lua-sec and the openssl command, both speaking to
-- 127.0.0.1 only.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local upstream = require("spec.support.upstream")
local certs_mod = require("spec.support.certs")
local metric = require("spec.support.metrics").value
local blob = require("spec.support.blob")
local cjson = require("cjson")
local socket = require("socket")
require("spec.support.assert")

local format = string.format

-- `openssl s_client` against 127.0.0.1:port with extra arguments; returns its
-- whole output (the handshake's summary and any alert it read).
local function s_client(port, args, input)
  local _, out = proc.sh(format("%s | timeout 10 openssl s_client -connect 127.0.0.1:%d %s 2>&1",
    input or "true", port, args))
  return out
end

local function seen(res)
  local j = cjson.decode(res.body)
  local h = http.headers()
  for _, kv in ipairs(j.headers) do h[#h + 1] = { name = kv[1], value = kv[2] } end
  return h
end

describe("TLS listener", function()
  local dir, ca, gw, up, plain, tls, tls13, admin_port
  local api, api_rsa, other

  local function tls_opts(name, extra)
    local t = { servername = name, cafile = ca.ca }
    for k, v in pairs(extra or {}) do t[k] = v end
    return { tls = t }
  end

  local function config()
    return {
      workers = 2,
      access_log = "json",
      listen = {
        "127.0.0.1:" .. plain,
        { address = "127.0.0.1:" .. tls, tls = { certificates = {
          { cert = api.cert, key = api.key }, { cert = api_rsa.cert, key = api_rsa.key },
          { cert = other.cert, key = other.key } }, hsts = { max_age = 31536000, include_subdomains = true } } },
        { address = "127.0.0.1:" .. tls13, tls = { min_version = "1.3",
          certificates = { { cert = api.cert, key = api.key } } } },
      },
      timeouts = { head = 1 },
      limits = { max_body_bytes = 4 * 1024 * 1024 },
      admin = { listen = "127.0.0.1:" .. admin_port },
      upstreams = { api = { targets = { up:target() } } },
      routes = {
        { name = "api", prefix = "/", upstream = "api",
          cors = { origins = { "https://app.example.test" }, methods = { "GET", "PUT" } } },
      },
    }
  end

  local function metrics()
    local res = assert(http.request(admin_port, "GET", "/metrics", {}))
    return res.body
  end

  lazy_setup(function()
    dir = proc.tmpdir("tls")
    ca = certs_mod.new(dir)
    api = ca:issue("api", { "api.example.test", "*.tenants.example.test" })
    api_rsa = ca:issue("api-rsa", { "api.example.test", "*.tenants.example.test" }, { key = "rsa" })
    -- from an intermediate CA, as a public CA issues: the client trusts the
    -- root only, and the file carries the intermediate
    other = ca:intermediate("sub"):issue("other", { "other.example.test" })
    up = upstream.start()
    plain, tls, tls13, admin_port = proc.free_port(), proc.free_port(), proc.free_port(), proc.free_port()
    gw = gateway.start(config(), { port = tls })
    assert.truthy(proc.wait_for(function() return proc.port_open(plain) and proc.port_open(tls13) end, 5))
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    if up then up:stop() end
    proc.rmdir_all(dir)
  end)

  it("serves HTTPS and plain HTTP from one config, telling the upstream which", function()
    local res, err = http.request(tls, "GET", "/echo", { { "Host", "api.example.test" } }, nil,
      tls_opts("api.example.test"))
    assert.res_status(200, res, err or gw)
    assert.same({ "https" }, seen(res):all("x-forwarded-proto"))
    res, err = http.request(plain, "GET", "/echo", { { "Host", "api.example.test" } })
    assert.res_status(200, res, err or gw)
    assert.same({ "http" }, seen(res):all("x-forwarded-proto"))
  end)

  it("refuses a client that speaks plain HTTP to the TLS port, and serves on", function()
    local res, err = http.raw(tls, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.is_nil(res and res.status == 200 or nil, "plain HTTP was answered on the TLS port")
    assert.truthy(err, "expected the connection to fail")
    res, err = http.request(tls, "GET", "/echo", {}, nil, tls_opts("api.example.test"))
    assert.res_status(200, res, err or gw)
  end)

  it("sends Strict-Transport-Security over HTTPS when asked to, never over plain HTTP", function()
    local want = "max-age=31536000; includeSubDomains"
    local res, err = http.request(tls, "GET", "/echo", {}, nil, tls_opts("api.example.test"))
    assert.res_status(200, res, err or gw)
    assert.same({ want }, res.headers:all("strict-transport-security"))
    -- answers of the gateway's own too: a preflight
    res, err = http.request(tls, "OPTIONS", "/things", {
      { "Origin", "https://app.example.test" }, { "Access-Control-Request-Method", "PUT" },
    }, nil, tls_opts("api.example.test"))
    assert.res_status(204, res, err or gw)
    assert.same({ want }, res.headers:all("strict-transport-security"))
    -- an upstream's own policy is passed on instead
    res, err = http.request(tls, "GET", "/sts", {}, nil, tls_opts("api.example.test"))
    assert.res_status(200, res, err or gw)
    assert.same({ "max-age=60" }, res.headers:all("strict-transport-security"))
    -- a listener without hsts, and plain HTTP (where browsers ignore it anyway)
    res, err = http.request(tls13, "GET", "/echo", {}, nil, tls_opts("api.example.test"))
    assert.res_status(200, res, err or gw)
    assert.is_nil(res.headers:get("strict-transport-security"))
    res, err = http.request(plain, "GET", "/echo", {})
    assert.res_status(200, res, err or gw)
    assert.is_nil(res.headers:get("strict-transport-security"))
  end)

  it("answers a preflight over HTTPS", function()
    local res, err = http.request(tls, "OPTIONS", "/things", {
      { "Origin", "https://app.example.test" }, { "Access-Control-Request-Method", "PUT" },
    }, nil, tls_opts("api.example.test"))
    assert.res_status(204, res, err or gw)
    assert.header(res, "access-control-allow-origin", "https://app.example.test")
    assert.header(res, "access-control-allow-methods", "GET, PUT")
  end)

  it("keeps the connection alive across requests and streams large bodies both ways", function()
    local c = assert(http.connect(tls, tls_opts("api.example.test")))
    for i = 1, 3 do
      local res, err = c:request("GET", "/echo?n=" .. i, { { "Host", "api.example.test" } })
      assert.res_status(200, res, err or gw)
    end
    local res, err = c:request("GET", "/bytes/1000000", {})
    assert.res_status(200, res, err or gw)
    assert.equal(1000000, #res.body)
    assert.equal(blob.checksum(1000000), blob.sum(res.body))
    local body = string.rep("0123456789abcdef", 65536) -- 1 MiB
    res, err = c:request("PUT", "/echo", { { "Content-Length", #body } }, body)
    assert.res_status(200, res, err or gw)
    local j = cjson.decode(res.body)
    assert.equal(#body, j.body_bytes)
    assert.equal(blob.sum(body), j.body_checksum)
    c:close()
  end)

  describe("chooses the certificate", function()
    local cases = {
      { "by its exact name", "api.example.test", "api" },
      { "by a wildcard name", "acme.tenants.example.test", "api" },
      { "of another name", "other.example.test", "other" },
      { "first listed for a client without SNI", nil, "api" },
      { "first listed for a name no certificate covers", "unknown.example.test", "api" },
      { "by a name in another case, with a trailing dot", "Other.Example.TEST.", "other" },
      { "not by a wildcard for two labels", "other.example.test.tenants.example.test", "api" },
      { "not by a wildcard for the bare domain", "tenants.example.test", "api" },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        local want = ({ api = api, other = other })[case[3]]
        local c, err = http.connect(tls, { tls = { servername = case[2] } })
        assert.truthy(c, err)
        assert.equal(certs_mod.fingerprint(want.cert), c.tls.peer:digest("sha256"))
        local res
        res, err = c:request("GET", "/echo", {})
        assert.res_status(200, res, err or gw)
        c:close()
      end)
    end

    it("with its intermediate, so a client trusting the root only verifies it", function()
      local c, err = http.connect(tls, tls_opts("other.example.test"))
      assert.truthy(c, err)
      c:close()
      local out = s_client(tls, "-servername other.example.test -showcerts -verify_return_error -CAfile " .. ca.ca)
      assert.matches("Verify return code: 0 (ok)", out, nil, true)
      assert.matches("1 s:CN = corsgate spec sub", out, nil, true)
    end)

    it("ECDSA by default, RSA for a client that verifies only RSA", function()
      local out = s_client(tls, "-servername api.example.test")
      assert.matches("Server public key is 256 bit", out)
      out = s_client(tls, "-servername api.example.test -sigalgs rsa_pss_rsae_sha256:rsa_pkcs1_sha256")
      assert.matches("Server public key is 2048 bit", out)
      out = s_client(tls, "-servername api.example.test -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256")
      assert.matches("Server public key is 2048 bit", out)
    end)
  end)

  describe("policy", function()
    it("agrees on h2 by ALPN when the client offers it, else on http/1.1", function()
      local c = assert(http.connect(tls, tls_opts("api.example.test", { alpn = { "h2", "http/1.1" } })))
      assert.equal("h2", c.tls.alpn)
      c:close()
      c = assert(http.connect(tls, tls_opts("api.example.test", { alpn = { "http/1.1" } })))
      assert.equal("http/1.1", c.tls.alpn)
      local res, err = c:request("GET", "/echo", {})
      assert.res_status(200, res, err or gw)
      c:close()
    end)

    it("speaks TLS 1.3 and 1.2, and refuses 1.1 with a protocol_version alert", function()
      local c = assert(http.connect(tls, tls_opts("api.example.test")))
      assert.equal("TLSv1.3", c.tls.version)
      c:close()
      c = assert(http.connect(tls, tls_opts("api.example.test", { protocol = "tlsv1_2" })))
      assert.equal("TLSv1.2", c.tls.version)
      c:close()
      local out = s_client(tls, "-tls1_1 -cipher DEFAULT@SECLEVEL=0")
      assert.matches("alert protocol version", out)
    end)

    -- after a TLS 1.3 handshake the records are corsgate's own (core/tls/record.c):
    -- each suite, and key updates either side asks for
    for _, suite in ipairs({ "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256" }) do
      it("serves kept-alive requests over " .. suite .. ", across key updates", function()
        local req = "GET /echo HTTP/1.1\nHost: api.example.test\n\n"
        -- K: a KeyUpdate asking for ours in return; k: one that does not
        local input = ("(sleep 0.3; printf '%s'; sleep 0.3; echo K; sleep 0.3; printf '%s'; sleep 0.3; echo k; "
          .. "sleep 0.3; printf '%s'; sleep 0.5)"):format(req, req, req)
        local out = s_client(tls, "-msg -crlf -servername api.example.test -ciphersuites " .. suite, input)
        assert.matches("Cipher is " .. suite, out, nil, true)
        local _, ok = out:gsub("HTTP/1.1 200 OK", "")
        assert.equal(3, ok, out)
        -- two sent; one answered (the one that asked), under the old key, before the next response
        local _, sent = out:gsub(">>> TLS 1.3, Handshake %[length 0005%], KeyUpdate", "")
        local _, got = out:gsub("<<< TLS 1.3, Handshake %[length 0005%], KeyUpdate", "")
        assert.same({ 2, 1 }, { sent, got }, out)
      end)
    end

    it("serves kept-alive requests over TLS 1.2 (OpenSSL's records to the end)", function()
      local c = assert(http.connect(tls, tls_opts("api.example.test", { protocol = "tlsv1_2" })))
      for _ = 1, 3 do
        local res, err = c:request("GET", "/echo", {})
        assert.res_status(200, res, err or gw)
      end
      c:close()
    end)

    it("closes a connection whose record fails to decrypt, and serves on", function()
      local script = debug.getinfo(1, "S").source:match("^@(.*)/integration/[^/]*$") .. "/support/tls_pipeline.py"
      local code, out = proc.sh(("timeout 10 python3 %s %d api.example.test 1 --forge"):format(proc.quote(script), tls))
      assert.equal(0, code, out)
      assert.matches("alert: SSLV3_ALERT_BAD_RECORD_MAC", out, nil, true) -- sealed by our record layer
      assert.matches("closed after the forged record", out, nil, true)
      assert.no_match("HTTP/1.1 200", out)
      local res, err = http.request(tls, "GET", "/echo", {}, nil, tls_opts("api.example.test"))
      assert.res_status(200, res, err or gw)
    end)

    it("offers AEAD ciphers with forward secrecy only", function()
      local out = s_client(tls, "-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256")
      assert.matches("Cipher is ECDHE%-ECDSA%-AES128%-GCM%-SHA256", out)
      out = s_client(tls, "-tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305")
      assert.matches("Cipher is ECDHE%-ECDSA%-CHACHA20%-POLY1305", out)
      for _, weak in ipairs({ "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384", "AES128-GCM-SHA256",
        "DHE-RSA-AES128-GCM-SHA256" }) do
        out = s_client(tls, "-tls1_2 -cipher " .. weak)
        assert.matches("alert handshake failure", out, nil, true)
      end
    end)

    it("refuses TLS 1.2 on a listener with min_version 1.3", function()
      local c, err = http.connect(tls13, tls_opts("api.example.test", { protocol = "tlsv1_2" }))
      assert.is_nil(c)
      assert.matches("handshake", err)
      c = assert(http.connect(tls13, tls_opts("api.example.test")))
      assert.equal("TLSv1.3", c.tls.version)
      c:close()
    end)

    it("resumes sessions by ticket, whichever worker answers", function()
      local sess = dir .. "/session.pem"
      -- the ticket arrives after the handshake: wait for it before quitting
      local out = s_client(tls, "-servername api.example.test -sess_out " .. sess, "(sleep 0.3; echo Q)")
      assert.matches("New, TLSv1.3", out)
      local reused = 0
      for _ = 1, 6 do
        out = s_client(tls, "-servername api.example.test -sess_in " .. sess, "(sleep 0.3; echo Q)")
        if out:find("Reused, TLSv1.3", 1, true) then reused = reused + 1 end
      end
      assert.equal(6, reused)
      out = s_client(tls, "-tls1_2 -servername api.example.test -sess_out " .. sess)
      out = s_client(tls, "-tls1_2 -servername api.example.test -sess_in " .. sess)
      assert.matches("Reused, TLSv1.2", out)
    end)
  end)

  describe("handshakes", function()
    it("answers requests that arrive with the handshake's last message, in order", function()
      local script = debug.getinfo(1, "S").source:match("^@(.*)/integration/[^/]*$") .. "/support/tls_pipeline.py"
      local code, out = proc.sh(("timeout 10 python3 %s %d api.example.test 3"):format(proc.quote(script), tls))
      assert.equal(0, code, out)
      local seen = {}
      for n in out:gmatch([["target":"\/echo%?n=(%d)"]]) do seen[#seen + 1] = tonumber(n) end
      assert.same({ 0, 1, 2 }, seen, out)
      local _, statuses = out:gsub("HTTP/1.1 200 OK", "")
      assert.equal(3, statuses, out)
    end)

    it("closes a handshake that stalls after the head timeout, serving others meanwhile", function()
      local c = assert(http.connect(tls))
      -- a TLS record header promising a ClientHello, and then nothing
      assert.truthy(c:send("\22\3\1\2\0\1\0\1\252\3\3"))
      local t0 = socket.gettime()
      local res, err = http.request(tls, "GET", "/echo", {}, nil, tls_opts("api.example.test"))
      assert.res_status(200, res, err or gw)
      assert.is_false(c:peer_closed(math.max(0.05, 0.5 - (socket.gettime() - t0))), "closed before the head timeout (1 s)")
      assert.truthy(c:peer_closed(5), "the stalled handshake was not closed")
      local took = socket.gettime() - t0
      assert.truthy(took >= 0.9 and took < 4, ("closed after %.2f s, not after the 1 s head timeout"):format(took))
      c:close()
    end)

    it("counts handshakes by version and the ones that failed", function()
      local before = metrics()
      local failed0 = metric(before, "corsgate_tls_handshake_errors_total")
      local v13 = metric(before, "corsgate_tls_handshakes_total", '{version="TLSv1.3"}')
      local c = assert(http.connect(tls, tls_opts("api.example.test")))
      c:close()
      local raw = assert(http.connect(tls))
      raw:send(string.rep("\0garbage", 40))
      assert.truthy(raw:peer_closed(5))
      raw:close()
      assert.truthy(proc.wait_for(function()
        local m = metrics()
        return metric(m, "corsgate_tls_handshake_errors_total") >= failed0 + 1
          and metric(m, "corsgate_tls_handshakes_total", '{version="TLSv1.3"}') >= v13 + 1
      end, 5), metrics())
    end)

    it("logs the TLS version of each request", function()
      local res, err = http.request(tls, "GET", "/logged-tls", {}, nil, tls_opts("api.example.test"))
      assert.res_status(200, res, err or gw)
      res, err = http.request(plain, "GET", "/logged-plain", {})
      assert.res_status(200, res, err or gw)
      local function entry(path)
        for line in gw:log():gmatch("[^\n]+") do
          if line:sub(1, 1) == "{" then
            local e = cjson.decode(line)
            if e.path == path then return e end
          end
        end
      end
      local e = assert(proc.wait_for(function() return entry("/logged-tls") end, 5), gw:log_tail(5))
      assert.equal("TLSv1.3", e.tls)
      e = assert(proc.wait_for(function() return entry("/logged-plain") end, 5), gw:log_tail(5))
      assert.equal(cjson.null, e.tls)
    end)
  end)

  describe("reload", function()
    local function count(text)
      local n = 0
      for _ in gw:log():gmatch(text) do n = n + 1 end
      return n
    end

    it("moves a connection whose handshake ends after a reload began, and lets the old workers go", function()
      local sock = socket.tcp()
      sock:settimeout(5)
      assert(sock:connect("127.0.0.1", tls))
      local serving, done = count("config #%d+ serving"), count("the previous config's workers are done")
      gw:signal("HUP")
      assert.truthy(proc.wait_for(function() return count("config #%d+ serving") > serving end, 10), gw:log_tail(10))
      -- the handshake starts only now, on the old worker that accepted the connection
      local ssl = require("ssl")
      local w = assert(ssl.wrap(sock, { mode = "client", protocol = "any", verify = "none", options = { "all" } }))
      w:sni("api.example.test")
      w:settimeout(5)
      assert(w:dohandshake())
      -- idle after its handshake, it moves: the old workers end long before the idle timeout
      assert.truthy(proc.wait_for(function() return count("the previous config's workers are done") > done end, 5),
        gw:log_tail(10))
      local c = setmetatable({ sock = w, port = tls, timeout = 5, closed = false, sent = {} }, http.conn_mt)
      local res, err = c:request("GET", "/echo", {})
      assert.res_status(200, res, err or gw)
      c:close()
    end)

    it("serves a renewed certificate to new connections, old ones serve on", function()
      local old = assert(http.connect(tls, tls_opts("other.example.test")))
      local old_print = old.tls.peer:digest("sha256")
      local sess = dir .. "/before-reload.pem"
      local out = s_client(tls, "-servername api.example.test -sess_out " .. sess, "(sleep 0.3; echo Q)")
      assert.matches("New, TLSv1.3", out)
      -- renewed in place, as certbot or an ACME client does
      local renewed = ca:issue("other-renewed", { "other.example.test" })
      proc.write_file(other.cert, proc.read_file(renewed.cert))
      proc.write_file(other.key, proc.read_file(renewed.key))
      local serving = count("config #%d+ serving")
      gw:signal("HUP")
      assert.truthy(proc.wait_for(function() return count("config #%d+ serving") > serving end, 10), gw:log_tail(10))
      local c = assert(http.connect(tls, tls_opts("other.example.test")))
      assert.equal(certs_mod.fingerprint(renewed.cert), c.tls.peer:digest("sha256"))
      assert.are_not.equal(old_print, c.tls.peer:digest("sha256"))
      c:close()
      local res, err = old:request("GET", "/echo", {})
      assert.res_status(200, res, err or gw)
      old:close()
      -- a session from before the reload resumes after it (same listener, same names)
      out = s_client(tls, "-servername api.example.test -sess_in " .. sess, "(sleep 0.3; echo Q)")
      assert.matches("Reused, TLSv1.3", out)
    end)

    it("refuses a reload that turns TLS off on a listener (a restart does that)", function()
      local cfg = config()
      cfg.listen[2] = cfg.listen[2].address
      proc.write_file(gw.config_path, gateway.serialize(cfg))
      gw:signal("HUP")
      assert.truthy(proc.wait_for(function()
        return gw:log():find("reload refused: [^\n]*listen: changing it needs a restart")
      end, 10), gw:log_tail(10))
      proc.write_file(gw.config_path, gateway.serialize(config()))
      local res, err = http.request(tls, "GET", "/echo", {}, nil, tls_opts("api.example.test"))
      assert.res_status(200, res, err or gw)
    end)

    it("refuses a broken certificate, naming it, and serves the last good one on", function()
      local good = proc.read_file(other.cert)
      local want = certs_mod.fingerprint(other.cert)
      proc.write_file(other.cert, "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
      gw:signal("HUP")
      assert.truthy(proc.wait_for(function()
        return gw:log():find("reload refused: [^\n]*listen%[2%]%.tls%.certificates%[3%]: [^\n]*holds no PEM certificate")
      end, 10), gw:log_tail(10))
      -- the file is still broken: what serves is the certificate loaded before
      local c = assert(http.connect(tls, tls_opts("other.example.test")))
      assert.equal(want, c.tls.peer:digest("sha256"))
      local res, err = c:request("GET", "/echo", {})
      assert.res_status(200, res, err or gw)
      c:close()
      proc.write_file(other.cert, good)
    end)
  end)
end)

describe("TLS config check", function()
  local dir, ca

  lazy_setup(function()
    dir = proc.tmpdir("tlscheck")
    ca = certs_mod.new(dir)
  end)

  lazy_teardown(function() proc.rmdir_all(dir) end)

  local function check(tls)
    return gateway.check({ listen = { { address = "127.0.0.1:8443", tls = tls } },
      routes = { { name = "a", prefix = "/", upstream = "echo" } } })
  end

  local function refused(tls, path, message)
    local code, out = check(tls)
    assert.are_not.equal(0, code, out)
    assert.matches(path, out, nil, true)
    assert.matches(message, out, nil, true)
  end

  it("accepts a valid certificate", function()
    local c = ca:issue("ok", { "ok.example.test" })
    local code, out = check({ certificates = { { cert = c.cert, key = c.key } } })
    assert.equal(0, code, out)
  end)

  it("refuses a key that belongs to another certificate", function()
    local a, b = ca:issue("a", { "a.example.test" }), ca:issue("b", { "b.example.test" })
    refused({ certificates = { { cert = a.cert, key = b.key } } }, "listen[1].tls.certificates[1]",
      "does not belong to the certificate")
  end)

  it("refuses a chain out of order", function()
    local c = ca:issue("rev", { "rev.example.test" }, { reversed = true })
    refused({ certificates = { { cert = c.cert, key = c.key } } }, "listen[1].tls.certificates[1]", "out of order")
  end)

  it("refuses a certificate without subjectAltName", function()
    local c = ca:issue("nosan", {})
    refused({ certificates = { { cert = c.cert, key = c.key } } }, "listen[1].tls.certificates[1]",
      "names no host in subjectAltName")
  end)

  it("refuses an expired certificate", function()
    local c = ca:issue("old", { "old.example.test" }, { expired = true })
    refused({ certificates = { { cert = c.cert, key = c.key } } }, "listen[1].tls.certificates[1]", "has expired")
  end)

  it("warns of a certificate about to expire, and loads it", function()
    local c = ca:issue("soon", { "soon.example.test" }, { days = 3 })
    local code, out = check({ certificates = { { cert = c.cert, key = c.key } } })
    assert.equal(0, code, out)
    assert.matches("expires within 14 days", out, nil, true)
  end)

  it("refuses a missing file, naming it", function()
    refused({ certificates = { { cert = dir .. "/nope.pem", key = dir .. "/nope.key" } } },
      "listen[1].tls.certificates[1]", dir .. "/nope.pem")
  end)

  it("refuses TLS below 1.2", function()
    local c = ca:issue("v", { "v.example.test" })
    refused({ min_version = "1.1", certificates = { { cert = c.cert, key = c.key } } }, "listen[1].tls",
      "TLS 1.0 and 1.1 are refused")
  end)

  it("refuses an http2 that is not a boolean, with its path", function()
    local code, out = gateway.check({ listen = { { address = "127.0.0.1:8443", http2 = "yes" } },
      routes = { { name = "a", prefix = "/", upstream = "echo" } } })
    assert.are_not.equal(0, code, out)
    assert.matches("listen[1]: http2: expected a boolean, got string", out, nil, true)
  end)

  it("refuses an encrypted key rather than asking for its passphrase", function()
    local c = ca:issue("enc", { "enc.example.test" })
    local enc = dir .. "/enc-encrypted.key"
    assert.equal(0, (proc.sh(("openssl pkey -in %s -aes256 -passout pass:secret -out %s"):format(c.key, enc))))
    refused({ certificates = { { cert = c.cert, key = enc } } }, "listen[1].tls.certificates[1]",
      "is encrypted: corsgate reads keys without a passphrase")
  end)

  it("refuses a damaged block in the chain rather than serving it short", function()
    local c = ca:issue("damaged", { "damaged.example.test" }, { damaged = true })
    refused({ certificates = { { cert = c.cert, key = c.key } } }, "listen[1].tls.certificates[1]",
      "certificate 2 in " .. c.cert .. " cannot be read")
  end)

  it("warns of an intermediate about to expire", function()
    local c = ca:intermediate("soon-sub", { days = 3 }):issue("leaf-soon-sub", { "l.example.test" })
    local code, out = check({ certificates = { { cert = c.cert, key = c.key } } })
    assert.equal(0, code, out)
    assert.matches("certificate 2 (an intermediate) in " .. c.cert .. " expires within 14 days", out, nil, true)
  end)

  it("takes certificates for different IP addresses side by side", function()
    local a, b = ca:issue("ip1", { "IP:127.0.0.1" }), ca:issue("ip2", { "IP:127.0.0.2" })
    local code, out = check({ certificates = { { cert = a.cert, key = a.key }, { cert = b.cert, key = b.key } } })
    assert.equal(0, code, out)
    local c = ca:issue("dup", { "a.example.test" })
    local d = ca:issue("dup2", { "a.example.test" })
    refused({ certificates = { { cert = c.cert, key = c.key }, { cert = d.cert, key = d.key } } },
      "listen[1].tls.certificates[2]", "another certificate of the same key type already covers the same names")
  end)

  it("refuses a listen list with stray keys, or a listener not in a list", function()
    local c = ca:issue("l", { "l.example.test" })
    local tls = { certificates = { { cert = c.cert, key = c.key } } }
    local routes = { { name = "a", prefix = "/", upstream = "echo" } }
    -- the TLS settings beside the addresses would be ignored and the port served in plain HTTP
    local code, out = gateway.check({ listen = { "127.0.0.1:8443", tls = tls }, routes = routes })
    assert.are_not.equal(0, code, out)
    assert.matches('listen: unknown key "tls"', out, nil, true)
    code, out = gateway.check({ listen = { address = "127.0.0.1:8443", tls = tls }, routes = routes })
    assert.are_not.equal(0, code, out)
    assert.matches("listen: expected a list of listeners: write listen = { { address", out, nil, true)
  end)

  it("refuses two listeners where one address covers the other on the same port", function()
    local routes = { { name = "a", prefix = "/", upstream = "echo" } }
    local code, out = gateway.check({ listen = { "0.0.0.0:8443", "127.0.0.1:8443" }, routes = routes })
    assert.are_not.equal(0, code, out)
    assert.matches('listen[2]: "127.0.0.1:8443" shares its port with "0.0.0.0:8443"', out, nil, true)
    code, out = gateway.check({ listen = { "127.0.0.1:8443", "[::]:8443" }, routes = routes })
    assert.are_not.equal(0, code, out)
    code, out = gateway.check({ listen = { "127.0.0.1:8443", "127.0.0.2:8443", "0.0.0.0:8444" }, routes = routes })
    assert.equal(0, code, out)
  end)

  it("refuses more than 16 listeners", function()
    local listen = {}
    for i = 1, 17 do listen[i] = "127.0.0.1:" .. (9000 + i) end
    local code, out = gateway.check({ listen = listen, routes = { { name = "a", prefix = "/", upstream = "echo" } } })
    assert.are_not.equal(0, code, out)
    assert.matches("listen: at most 16 listeners", out, nil, true)
  end)

  it("refuses an HSTS policy browsers would not preload, or of the wrong shape", function()
    local c = ca:issue("h", { "h.example.test" })
    local certs = { { cert = c.cert, key = c.key } }
    refused({ certificates = certs, hsts = { max_age = 600, preload = true, include_subdomains = true } },
      "listen[1].tls.hsts", "preload: needs include_subdomains = true and max_age of a year")
    refused({ certificates = certs, hsts = { max_age = -1 } }, "listen[1].tls.hsts", "max_age: expected a whole number")
    refused({ certificates = certs, hsts = "yes" }, "listen[1].tls.hsts", "expected true or {")
    refused({ certificates = certs, hsts = { maxage = 5 } }, "listen[1].tls.hsts", 'unknown key "maxage"')
  end)

  it("refuses no certificates and unknown keys", function()
    refused({ certificates = {} }, "listen[1].tls", "certificates: expected a list like")
    local c = ca:issue("k", { "k.example.test" })
    refused({ certs = {}, certificates = { { cert = c.cert, key = c.key } } }, "listen[1].tls", "unknown key \"certs\"")
  end)
end)
