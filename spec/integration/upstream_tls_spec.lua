-- HTTPS upstreams: `upstreams.NAME.tls`. The upstream is a second corsgate
-- with TLS listeners (one certificate for a DNS name, one for an IP address)
-- in front of the test upstream; the gateway under test listens in plain HTTP
-- and proxies to it. What a user depends on: requests and bodies arrive
-- through TLS, the certificate is verified (CA and name, or the address when
-- no name is set) and a failure is a 502 that says why, in the log and the
-- metrics; connections are pooled and sessions resumed; a bad `tls` table is
-- refused at load with its path.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local upstream = require("spec.support.upstream")
local certs_mod = require("spec.support.certs")
local metric = require("spec.support.metrics").value
local blob = require("spec.support.blob")
local cjson = require("cjson")
require("spec.support.assert")

local function seen(res)
  local j = cjson.decode(res.body)
  local h = http.headers()
  for _, kv in ipairs(j.headers) do h[#h + 1] = { name = kv[1], value = kv[2] } end
  return h, j
end

describe("HTTPS upstream", function()
  local dir, ca, other_ca, up, back, front, s12, py
  local pb, pb_ip, p12, ppy, pclose, back_admin, front_admin

  local function metrics(port)
    local res = assert(http.request(port, "GET", "/metrics", {}))
    return res.body
  end

  local function front_config()
    local billing = { server_name = "billing.test", ca = ca.ca }
    return {
      workers = 1,
      admin = { listen = "127.0.0.1:" .. front_admin },
      limits = { max_body_bytes = 4 * 1024 * 1024 },
      upstreams = {
        good = { targets = { "127.0.0.1:" .. pb }, tls = billing },
        once = { targets = { "127.0.0.1:" .. pb }, keepalive = 0, tls = billing },
        wrong_ca = { targets = { "127.0.0.1:" .. pb }, tls = { server_name = "billing.test", ca = other_ca.ca } },
        wrong_name = { targets = { "127.0.0.1:" .. pb }, tls = { server_name = "ledger.test", ca = ca.ca } },
        by_ip = { targets = { "127.0.0.1:" .. pb_ip }, tls = { ca = ca.ca } },
        by_ip_dns_cert = { targets = { "127.0.0.1:" .. pb }, tls = { ca = ca.ca } },
        unverified = { targets = { "127.0.0.1:" .. pb }, tls = { verify = false } },
        plain_to_tls = { targets = { "127.0.0.1:" .. pb } },
        tls12 = { targets = { "127.0.0.1:" .. p12 }, keepalive = 0, tls = billing },
        py = { targets = { "127.0.0.1:" .. ppy }, tls = billing },
        -- the first target closes every connection it accepts, saying nothing
        flaky = { targets = { "127.0.0.1:" .. pclose, "127.0.0.1:" .. pb }, tls = billing },
      },
      routes = {
        { name = "good", prefix = "/mnt/good/", upstream = "good",
          cors = { origins = { "https://app.example.test" } } },
        { name = "once", prefix = "/mnt/once/", upstream = "once" },
        { name = "wrong_ca", prefix = "/mnt/wrong-ca/", upstream = "wrong_ca" },
        { name = "wrong_name", prefix = "/mnt/wrong-name/", upstream = "wrong_name" },
        { name = "by_ip", prefix = "/mnt/by-ip/", upstream = "by_ip" },
        { name = "by_ip_dns_cert", prefix = "/mnt/by-ip-dns-cert/", upstream = "by_ip_dns_cert" },
        { name = "unverified", prefix = "/mnt/unverified/", upstream = "unverified" },
        { name = "plain_to_tls", prefix = "/mnt/plain/", upstream = "plain_to_tls" },
        { name = "tls12", prefix = "/s12/", upstream = "tls12" },
        { name = "py", prefix = "/py/", upstream = "py" },
        { name = "flaky", prefix = "/mnt/flaky/", upstream = "flaky" },
      },
    }
  end

  lazy_setup(function()
    dir = proc.tmpdir("uptls")
    ca = certs_mod.new(dir)
    local billing = ca:issue("billing", { "billing.test" })
    local by_ip = ca:issue("by-ip", { "IP:127.0.0.1" })
    local odir = dir .. "/other"
    proc.sh("mkdir -p " .. proc.quote(odir))
    other_ca = certs_mod.new(odir)
    up = upstream.start()
    pb, pb_ip, back_admin, front_admin = proc.free_port(), proc.free_port(), proc.free_port(), proc.free_port()
    -- a TLS 1.2-only upstream: openssl s_server, whose -www page says
    -- whether the connection resumed a session ("Reused, TLSv1.2, ...")
    p12 = proc.free_port()
    -- its default certificate names another host: only a client that sends
    -- SNI billing.test gets the certificate for it (-cert2)
    s12 = proc.spawn({ "openssl", "s_server", "-quiet", "-tls1_2", "-accept", "127.0.0.1:" .. p12, "-naccept", "20",
      "-cert", by_ip.cert, "-key", by_ip.key, "-servername", "billing.test", "-cert2", billing.cert,
      "-key2", billing.key, "-www" }, dir .. "/s_server.log")
    assert.truthy(proc.wait_for(function() return proc.port_open(p12) end, 5), proc.read_file(dir .. "/s_server.log"))
    local pf = dir .. "/py.port"
    py = proc.spawn({ "python3", gateway.root .. "/spec/support/tls_upstream.py", pf, billing.cert,
      billing.key }, dir .. "/py.log")
    assert.truthy(proc.wait_for(function() return proc.read_file(pf) end, 5), proc.read_file(dir .. "/py.log"))
    local ports = proc.read_file(pf)
    ppy, pclose = tonumber(ports:match("^(%d+)")), tonumber(ports:match(" (%d+)"))
    back = gateway.start({
      workers = 1,
      listen = {
        { address = "127.0.0.1:" .. pb, tls = { certificates = { { cert = billing.cert, key = billing.key } } } },
        { address = "127.0.0.1:" .. pb_ip, tls = { certificates = { { cert = by_ip.cert, key = by_ip.key } } } },
      },
      limits = { max_body_bytes = 4 * 1024 * 1024 },
      admin = { listen = "127.0.0.1:" .. back_admin },
      upstreams = { api = { targets = { up:target() } } },
      routes = { { name = "api", prefix = "/", upstream = "api" } },
    }, { port = pb })
    assert.truthy(proc.wait_for(function() return proc.port_open(pb_ip) end, 5))
    front = gateway.start(front_config())
  end)

  lazy_teardown(function()
    if front then front:stop_clean() end
    if back then back:stop_clean() end
    if up then up:stop() end
    if s12 then proc.stop(s12) end
    if py then proc.stop(py) end
    proc.rmdir_all(dir)
  end)

  it("proxies through TLS to a verified name, with CORS on the way back", function()
    local res, err = http.request(front:port(), "GET", "/mnt/good/echo", { { "Origin", "https://app.example.test" } })
    assert.res_status(200, res, err or front)
    assert.header(res, "access-control-allow-origin", "https://app.example.test")
    -- the test upstream sits behind the TLS listener, so it was told https
    local h = seen(res)
    assert.same({ "https" }, h:all("x-forwarded-proto"))
    local m = metrics(back_admin)
    assert.truthy(metric(m, "corsgate_tls_handshakes_total", '{version="TLSv1.3"}') >= 1)
  end)

  it("streams 1 MB each way and keeps the connection for the next request", function()
    local c0 = metric(metrics(back_admin), "corsgate_connections_total")
    local c = assert(http.connect(front:port()))
    local res, err = c:request("GET", "/mnt/good/bytes/1000000", {})
    assert.res_status(200, res, err or front)
    assert.equal(1000000, #res.body)
    assert.equal(blob.checksum(1000000), blob.sum(res.body))
    local body = string.rep("0123456789abcdef", 65536) -- 1 MiB
    res, err = c:request("PUT", "/mnt/good/echo", { { "Content-Length", #body } }, body)
    assert.res_status(200, res, err or front)
    local _, j = seen(res)
    assert.equal(#body, j.body_bytes)
    assert.equal(blob.sum(body), j.body_checksum)
    -- chunked upload: each chunk is framed inside the TLS records
    res, err = c:request("POST", "/mnt/good/echo", { { "Transfer-Encoding", "chunked" } },
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert.res_status(200, res, err or front)
    _, j = seen(res)
    assert.equal(11, j.body_bytes)
    for i = 1, 5 do
      res, err = c:request("GET", "/mnt/good/echo?n=" .. i, {})
      assert.res_status(200, res, err or front)
    end
    c:close()
    -- the first test's pooled connection served all of these
    assert.equal(c0, metric(metrics(back_admin), "corsgate_connections_total"))
  end)

  it("resumes the TLS session on a new connection to the same target", function()
    local r0 = metric(metrics(back_admin), "corsgate_tls_resumed_total")
    -- keepalive = 0: every request a new connection, the first pays a full handshake
    for i = 1, 3 do
      local res, err = http.request(front:port(), "GET", "/mnt/once/echo?n=" .. i, {})
      assert.res_status(200, res, err or front)
    end
    assert.truthy(proc.wait_for(function()
      return metric(metrics(back_admin), "corsgate_tls_resumed_total") >= r0 + 2
    end, 3), "expected the second and third connections to resume: "
      .. metric(metrics(back_admin), "corsgate_tls_resumed_total") - r0 .. "\n" .. front:log_tail(20))
  end)

  it("never hands a pipelined request records the upstream sent past a response", function()
    local c = assert(http.connect(front:port()))
    c:send(http.build_request("GET", "/py/extra", {}) .. http.build_request("GET", "/py/next", {}))
    local res = c:read_responses(2)
    c:close()
    assert.equal(2, #res)
    assert.equal("first!", res[1].body)
    assert.equal("ok:/py/next", res[2].body)
  end)

  it("ends a close-delimited body only at a close_notify: a bare TCP close cuts it short", function()
    local res, err = http.request(front:port(), "GET", "/py/whole", {})
    assert.res_status(200, res, err or front)
    assert.equal(1000, #res.body)
    res, err = http.request(front:port(), "GET", "/py/cut", {})
    assert.is_nil(res, "a response cut short was passed on as complete")
    assert.truthy(err)
  end)

  it("tries the next target when one closes the connection during the handshake", function()
    for i = 1, 4 do
      local res, err = http.request(front:port(), "GET", "/mnt/flaky/echo?n=" .. i, {})
      assert.res_status(200, res, err or front)
    end
    assert.truthy(front:log():find("upstream TLS handshake failed", 1, true), front:log_tail(10))
  end)

  it("resumes TLS 1.2 sessions too", function()
    local got = {}
    for i = 1, 3 do
      local res, err = http.request(front:port(), "GET", "/s12/", {})
      assert.res_status(200, res, err or front)
      got[i] = res.body:match("\n(%a+), TLSv1%.2,") or res.body:sub(1, 200)
    end
    assert.same({ "New", "Reused", "Reused" }, got)
  end)

  it("refuses a certificate from a CA it does not trust: 502, said in the log and the metrics", function()
    local e0 = metric(metrics(front_admin), "corsgate_upstream_errors_total", '{kind="tls"}')
    local n0 = up:count().requests
    local res, err = http.request(front:port(), "GET", "/mnt/wrong-ca/echo", {})
    assert.res_status(502, res, err or front)
    -- OpenSSL's reason is for the log, not for the client
    assert.equal("upstream TLS handshake failed", cjson.decode(res.body).error)
    assert.truthy(proc.wait_for(function() return front:log():find("certificate verify failed", 1, true) end, 2),
      front:log_tail(10))
    assert.truthy(metric(metrics(front_admin), "corsgate_upstream_errors_total", '{kind="tls"}') >= e0 + 1)
    assert.equal(n0, up:count().requests, "the request went through an untrusted certificate")
  end)

  it("refuses a certificate for another name", function()
    local n0 = up:count().requests
    local res, err = http.request(front:port(), "GET", "/mnt/wrong-name/echo", {})
    assert.res_status(502, res, err or front)
    assert.truthy(proc.wait_for(function()
      return front:log():find("hostname mismatch", 1, true)
    end, 2), front:log_tail(10))
    assert.equal(n0, up:count().requests, "the request went through a certificate for another name")
  end)

  it("without server_name, verifies the target's address against the certificate", function()
    local res, err = http.request(front:port(), "GET", "/mnt/by-ip/echo", {})
    assert.res_status(200, res, err or front)
    res, err = http.request(front:port(), "GET", "/mnt/by-ip-dns-cert/echo", {})
    assert.res_status(502, res, err or front)
    assert.truthy(proc.wait_for(function()
      return front:log():find("IP address mismatch", 1, true)
    end, 2), front:log_tail(10))
  end)

  it("takes any certificate with verify = false", function()
    local res, err = http.request(front:port(), "GET", "/mnt/unverified/echo", {})
    assert.res_status(200, res, err or front)
  end)

  it("fails plain HTTP to a TLS port with 502, not a hang", function()
    local res, err = http.request(front:port(), "GET", "/mnt/plain/echo", {})
    assert.res_status(502, res, err or front)
  end)

  it("loads a CA file once for every upstream that trusts it: 30 on the system's store cost what one does", function()
    local function with(n)
      local ups = {}
      for i = 1, n do ups["u" .. i] = { targets = { "127.0.0.1:9" }, tls = true } end
      local g = gateway.start({ workers = 1, upstreams = ups, routes = { { prefix = "/", upstream = "u1" } } })
      local kb = g:rss_kb().rss
      g:stop_clean()
      return kb
    end
    local one, thirty = with(1), with(30)
    -- each upstream parsed its own copy of the bundle before: about 830 KB apiece
    -- (a sanitized build's allocations carry its own overhead: not checked there)
    local sanitized = os.getenv("CORSGATE_SANITIZE") == "1" or os.getenv("CORSGATE_VALGRIND") == "1"
    print(("\n[upstream tls] 30 HTTPS upstreams on the system's CAs: %d KB more than one%s"):format(thirty - one,
      sanitized and " (sanitized build: not checked)" or ""))
    assert.truthy(sanitized or thirty - one < 4096, ("30 HTTPS upstreams took %d KB more than one"):format(thirty - one))
  end)

  it("loads a CA file again at a reload once it changed, and only then", function()
    local cas, admin = dir .. "/rotating-cas.pem", proc.free_port()
    proc.sh(("cp %s %s"):format(proc.quote(other_ca.ca), proc.quote(cas)))
    local g = gateway.start({
      workers = 1,
      admin = { listen = "127.0.0.1:" .. admin },
      upstreams = { billing = { targets = { "127.0.0.1:" .. pb }, tls = { server_name = "billing.test", ca = cas } } },
      routes = { { prefix = "/", upstream = "billing" } },
    })
    local function status() return assert(http.request(g:port(), "GET", "/echo", {})).status end
    local function reload() assert.res_status(200, assert(http.request(admin, "POST", "/reload", {}))) end
    assert.equal(502, status()) -- the CA that signed billing.test is not in the file
    reload()
    assert.equal(502, status())
    proc.sh(("cat %s >> %s"):format(proc.quote(ca.ca), proc.quote(cas))) -- renewed: both CAs
    assert.equal(502, status()) -- the running config keeps what it loaded
    reload()
    assert.equal(200, status())
    -- rewritten in place to the same size with its modification time put back
    -- (cp -p, rsync -t): the other CA only again, padded with text PEM skips
    local size = #proc.read_file(cas)
    local other = proc.read_file(other_ca.ca)
    local ref, pad = dir .. "/cas-times", dir .. "/same-size.pem"
    proc.write_file(pad, other .. ("#"):rep(size - #other - 1) .. "\n")
    local _, before = proc.sh(("touch -r %s %s && stat -c %%y %s"):format(proc.quote(cas), proc.quote(ref), proc.quote(cas)))
    local _, after = proc.sh(("cat %s > %s && touch -r %s %s && stat -c %%y %s"):format(proc.quote(pad), proc.quote(cas),
      proc.quote(ref), proc.quote(cas), proc.quote(cas)))
    assert.equal(before, after) -- the modification time, to the nanosecond
    assert.equal(size, #proc.read_file(cas))
    reload()
    assert.equal(502, status(), "a CA file rewritten with its size and time kept was not read again")
    g:stop_clean()
  end)

  describe("config", function()
    local function check(tls)
      return gateway.check({
        upstreams = { billing = { targets = { "127.0.0.1:9" }, tls = tls } },
        routes = { { prefix = "/", upstream = "billing" } },
      })
    end

    it("warns that verify = false takes any certificate", function()
      local code, out = check({ verify = false })
      assert.equal(0, code, out)
      assert.matches("upstreams.billing.tls: verify = false", out, 1, true)
    end)

    it("refuses a CA file that does not load, naming the field", function()
      local code, out = check({ server_name = "billing.test", ca = dir .. "/missing.pem" })
      assert.is_not.equal(0, code)
      assert.matches("upstreams.billing.tls: ca: cannot load the CAs in " .. dir .. "/missing.pem", out, 1, true)
    end)

    it("refuses a server_name that is not a DNS name", function()
      local code, out = check({ server_name = "https://billing.test/" })
      assert.is_not.equal(0, code)
      assert.matches('upstreams.billing.tls: server_name: expected a DNS name', out, 1, true)
    end)

    it("refuses keys it does not know and a tls of the wrong type", function()
      local code, out = check({ server_name = "billing.test", sni = "x" })
      assert.is_not.equal(0, code)
      assert.matches("upstreams.billing.tls", out, 1, true)
      assert.matches("sni", out, 1, true)
      code, out = check("yes")
      assert.is_not.equal(0, code)
      assert.matches("upstreams.billing.tls: expected true or { server_name = ..., ca = ... }, got string", out, 1, true)
    end)

    it("takes tls = true (the system's CAs, the address verified)", function()
      local code, out = check(true)
      assert.equal(0, code, out)
    end)

    it("refuses a CA directory with no certificate in it, and a system store without any", function()
      local empty = dir .. "/empty-cas"
      proc.sh("mkdir -p " .. proc.quote(empty))
      local code, out = check({ ca = empty })
      assert.is_not.equal(0, code)
      assert.matches("upstreams.billing.tls: ca: cannot load the CAs in " .. empty
        .. ": no certificates under hashed names in it", out, 1, true)
      -- the system's store, pointed elsewhere by OpenSSL's own variables
      local cfg = dir .. "/sys.lua"
      proc.write_file(cfg, 'return { upstreams = { b = { targets = { "127.0.0.1:9" }, tls = true } }, '
        .. 'routes = { { prefix = "/", upstream = "b" } } }')
      local _, o2 = proc.sh(string.format("SSL_CERT_FILE=%s SSL_CERT_DIR=%s %s check -c %s 2>&1",
        proc.quote(dir .. "/none.pem"), proc.quote(empty), proc.quote(gateway.bin()), proc.quote(cfg)))
      assert.matches("no certificates in it (install ca-certificates, or set ca)", o2, 1, true)
    end)

    it("refuses an address as server_name", function()
      local code, out = check({ server_name = "10.0.0.7" })
      assert.is_not.equal(0, code)
      assert.matches('server_name: "10.0.0.7" is an address, not a name', out, 1, true)
    end)
  end)
end)
