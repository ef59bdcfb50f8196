-- Certificates from a TLS listener's Lua hook (tls.plugin): the hook is
-- asked for names no certificate file covers, may wait (gw.sleep here, as it
-- would on gw.redis), and its answers are cached per name (single flight,
-- TTL); a hook that fails, loops or answers a certificate that does not
-- check out fails the handshake and the worker serves on. Clients are the
-- openssl command and lua-sec, on 127.0.0.1 only.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local certs_mod = require("spec.support.certs")
local redis = require("spec.support.redis")
local socket = require("socket")
require("spec.support.assert")

local format = string.format

local PLUGIN = [[
return {
  schema = { dir = { type = "string", required = true } },
  certificate = function(ctx)
    local name = ctx.server_name
    gw.log("info", "certificate hook for", name)
    local label = name:match("^([^.]+)")
    if label == "error" then error("tenant store down") end
    if label == "loop" then while true do end end
    if label:match("^hang") then gw.sleep(30) end
    if label == "strict" then
      return setmetatable({}, { __index = function(_, k) error("no field " .. k) end })
    end
    if label == "none" then return nil end
    if label == "garbage" then return { cert = "not PEM", key = "not PEM either" } end
    if label == "nokey" then return { cert = "x" } end
    if label:match("^slow") then gw.sleep(0.3) end
    local file = ctx.config.dir .. "/" .. (label == "wrongname" and "acme.tenants.test" or name)
    local cert = gw.read_file(file .. ".pem")
    if not cert then return false end
    return { cert = cert, key = gw.read_file(file .. ".key"),
             ttl = label == "short" and 1 or label == "huge" and math.huge or nil }
  end,
}
]]

local ORIGIN_ONLY = [[
return { origin = function(ctx) return true end }
]]

describe("certificates from a hook", function()
  local dir, ca, gw, port, only_hook, admin, r, shipped, acme_a, acme_b, wild, wild2

  -- `openssl s_client` with SNI name: the served certificate's subject CN, or
  -- nil and the output (a failed handshake)
  local function served(p, name)
    local _, out = proc.sh(format("true | timeout 10 openssl s_client -connect 127.0.0.1:%d -servername %s 2>&1",
      p, name))
    local cn = out:match("subject=CN ?= ?([%w%.%-]+)")
    return cn, out
  end

  local function hook_calls(name)
    local n = 0
    for _ in gw:log():gmatch("certificate hook for " .. name:gsub("%.", "%%.") .. "\n") do n = n + 1 end
    return n
  end

  lazy_setup(function()
    dir = proc.tmpdir("certhook")
    ca = certs_mod.new(dir)
    local file_cert = ca:issue("api", { "api.example.test" })
    local names = { "acme.tenants.test", "short.tenants.test", "none.tenants.test", "slow.tenants.test",
      "slow2.tenants.test", "after.tenants.test", "rsa.tenants.test", "huge.tenants.test", "cached.tenants.test" }
    for _, n in ipairs(names) do
      local c = ca:issue(n, { n }, { key = n:match("^rsa") and "rsa" or nil })
      proc.sh(format("cp %s %s/%s.pem && cp %s %s/%s.key", proc.quote(c.cert), proc.quote(dir), n,
        proc.quote(c.key), proc.quote(dir), n))
    end
    proc.write_file(dir .. "/certs_dir.lua", PLUGIN)
    proc.write_file(dir .. "/origin_only.lua", ORIGIN_ONLY)
    -- what a hook may get wrong: a key too weak, a key of another certificate
    -- (of the same type, and of another)
    local weak = ca:issue("issued-weak", { "weak.tenants.test" }, { key = "rsa1024" })
    proc.sh(format("cp %s %s/weak.tenants.test.pem && cp %s %s/weak.tenants.test.key", proc.quote(weak.cert),
      proc.quote(dir), proc.quote(weak.key), proc.quote(dir)))
    for n, key_of in pairs({ ["mismatch.tenants.test"] = "acme.tenants.test", ["rsamismatch.tenants.test"] = "rsa.tenants.test" }) do
      local c = ca:issue("issued-" .. n, { n })
      local code, out = proc.sh(format("cp %s %s/%s.pem && cp %s/%s.key %s/%s.key", proc.quote(c.cert), proc.quote(dir),
        n, proc.quote(dir), key_of, proc.quote(dir), n))
      assert(code == 0, out)
    end
    acme_a = ca:issue("acme-a", { "api.acme.test" })
    acme_b = ca:issue("acme-b", { "api.acme.test" })
    wild = ca:issue("wild", { "*.wild.test" })
    wild2 = ca:issue("wild2", { "*.wild.test" })
    port, only_hook, admin, shipped = proc.free_port(), proc.free_port(), proc.free_port(), proc.free_port()
    r = redis.start()
    gw = gateway.start({
      workers = 2,
      redis = { address = r:address() },
      plugin_paths = { dir },
      plugins = { timeout = 1, max_instructions = 1000000 },
      admin = { listen = "127.0.0.1:" .. admin },
      listen = {
        { address = "127.0.0.1:" .. port, tls = { certificates = { { cert = file_cert.cert, key = file_cert.key } },
          plugin = "certs_dir", plugin_config = { dir = dir } } },
        { address = "127.0.0.1:" .. only_hook, tls = { plugin = "certs_dir", plugin_config = { dir = dir } } },
        { address = "127.0.0.1:" .. shipped, tls = { plugin = "tenant_certs_redis" } },
      },
      routes = { { prefix = "/", static = { status = 200, body = "hello\n" } } },
    }, { port = port })
    assert.truthy(proc.wait_for(function() return proc.port_open(only_hook) end, 5))
    assert.truthy(proc.wait_for(function() return gw:log():find("listening on channel", 1, true) end, 5))
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    if r then r:stop() end
    proc.rmdir_all(dir)
  end)

  it("serves the hook's certificate for a name no file covers, verified by a client", function()
    assert.equal("acme.tenants.test", (served(port, "acme.tenants.test")))
    local res, err = http.request(port, "GET", "/", { { "Host", "acme.tenants.test" } }, nil,
      { tls = { servername = "acme.tenants.test", cafile = ca.ca } })
    assert.res_status(200, res, err or gw)
    assert.equal("hello\n", res.body)
  end)

  it("serves the hook's RSA certificate alone, beside an ECDSA first certificate", function()
    -- an ECDSA-capable client would otherwise be given the file's ECDSA one
    assert.equal("rsa.tenants.test", (served(port, "rsa.tenants.test")))
    local res, err = http.request(port, "GET", "/", {}, nil, { tls = { servername = "rsa.tenants.test", cafile = ca.ca } })
    assert.res_status(200, res, err or gw)
  end)

  it("survives an answer whose fields raise errors: the handshake fails, the gateway serves on", function()
    local cn, out = served(port, "strict.tenants.test")
    assert.is_nil(cn, out)
    assert.truthy(gw:alive())
    assert.matches("no certificate for strict.tenants.test, the handshake fails: cert: expected PEM text, got nil",
      gw:log(), 1, true)
    assert.equal("acme.tenants.test", (served(port, "acme.tenants.test")))
  end)

  it("caps a ttl beyond reason: math.huge is cached, not asked again at every handshake", function()
    assert.truthy(proc.wait_for(function()
      assert.equal("huge.tenants.test", (served(port, "huge.tenants.test")))
      return hook_calls("huge.tenants.test") == 2
    end, 5, 0))
    for _ = 1, 4 do served(port, "huge.tenants.test") end
    assert.equal(2, hook_calls("huge.tenants.test"))
  end)

  it("reads nothing more from a client while its handshake waits on the hook", function()
    -- a ClientHello for a name whose hook waits, then as much junk as the
    -- gateway takes in 1.5 s: only the sockets' buffers, not the client's will
    local script = dir .. "/flood.py"
    proc.write_file(script, [[
import socket, ssl, sys, time, select
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
inc, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, outb, server_hostname="hang2.tenants.test")
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(outb.read())
s.setblocking(False)
junk = bytes([0x17, 3, 3, 0x40, 0]) + b"x" * 16384
sent, end = 0, time.time() + 1.5
while time.time() < end:
    _, w, _ = select.select([], [s], [], 0.05)
    if w:
        try:
            sent += s.send(junk)
        except (BlockingIOError, OSError):
            break
print("sent", sent)
]])
    local _, out = proc.sh(format("python3 %s %d", proc.quote(script), port))
    local sent = tonumber(out:match("sent (%d+)"))
    assert.truthy(sent, out)
    assert.truthy(sent < 32 * 1024 * 1024, "the gateway took " .. tostring(sent) .. " bytes while the hook waited")
    assert.truthy(gw:alive())
  end)

  it("resumes a session only for the name and certificate it was made with", function()
    local sess = dir .. "/acme.sess"
    local function s_client(name, extra)
      local _, out = proc.sh(format("sleep 0.5 | timeout 10 openssl s_client -connect 127.0.0.1:%d -servername %s %s 2>&1",
        only_hook, name, extra))
      return out
    end
    local out = s_client("acme.tenants.test", "-sess_out " .. proc.quote(sess))
    assert.matches("subject=CN ?= ?acme%.tenants%.test", out)
    assert.matches("^New,", out:match("\n(New,[^\n]*)") or out:match("\n(Reused,[^\n]*)") or "")
    out = s_client("acme.tenants.test", "-sess_in " .. proc.quote(sess))
    assert.matches("\nReused,", out)
    -- another name, which the hook has no certificate for: no resumption, no handshake
    out = s_client("none.tenants.test", "-sess_in " .. proc.quote(sess))
    assert.is_nil(out:match("\nReused,"), out)
    assert.matches("alert internal error", out, 1, true)
  end)

  it("serves a name a file covers from the file, without asking the hook", function()
    assert.equal("api.example.test", (served(port, "api.example.test")))
    assert.equal(0, hook_calls("api.example.test"))
  end)

  it("asks the hook once per name and worker: later handshakes are served from the cache", function()
    for _ = 1, 7 do assert.equal("cached.tenants.test", (served(port, "cached.tenants.test"))) end
    local n = hook_calls("cached.tenants.test")
    assert.truthy(n >= 1 and n <= 2, n .. " hook runs for 7 handshakes on 2 workers")
  end)

  it("serves the first certificate when the hook has none for the name", function()
    assert.equal("api.example.test", (served(port, "none.tenants.test")))
    assert.equal("api.example.test", (served(port, "unknown.tenants.test")))
  end)

  it("fails the handshake, closed, when the hook errors, loops or takes too long; the worker serves on", function()
    for _, name in ipairs({ "error.tenants.test", "loop.tenants.test", "hang.tenants.test" }) do
      local cn, out = served(port, name)
      assert.is_nil(cn, name .. " got a certificate:\n" .. out)
      assert.matches("alert internal error", out, 1, true)
      assert.equal("acme.tenants.test", (served(port, "acme.tenants.test")))
    end
    local log = gw:log()
    assert.matches("no certificate for error.tenants.test, the handshake fails: .*tenant store down", log)
    assert.matches("no certificate for loop.tenants.test, the handshake fails: .*instruction", log)
    assert.matches("no certificate for hang.tenants.test, the handshake fails: timed out", log)
  end)

  it("refuses what the hook answers when it is not a certificate for the name", function()
    for _, case in ipairs({ { "garbage.tenants.test", "holds no PEM certificate" },
      { "wrongname.tenants.test", "does not name wrongname.tenants.test" },
      { "nokey.tenants.test", "key: expected PEM text, got nil" },
      { "weak.tenants.test", "OpenSSL refuses it at security level 2" },
      { "mismatch.tenants.test", "the key in key does not belong to the certificate in cert" },
      { "rsamismatch.tenants.test", "the key in key does not belong to the certificate in cert" } }) do
      local cn, out = served(port, case[1])
      assert.is_nil(cn, case[1] .. " got a certificate:\n" .. out)
      assert.matches(case[2], gw:log(), 1, true)
    end
  end)

  it("pauses handshakes while the hook waits, and runs it once (per worker) for all of them", function()
    local outs = dir .. "/par"
    proc.sh("mkdir -p " .. proc.quote(outs))
    proc.sh(format("for i in $(seq 1 20); do true | timeout 10 openssl s_client -connect 127.0.0.1:%d "
      .. "-servername slow2.tenants.test > %s/$i 2>&1 & done; wait", port, outs))
    local got = 0
    for i = 1, 20 do
      if (proc.read_file(outs .. "/" .. i) or ""):match("subject=CN ?= ?slow2%.tenants%.test") then got = got + 1 end
    end
    assert.equal(20, got)
    local n = hook_calls("slow2.tenants.test")
    assert.truthy(n >= 1 and n <= 2, n .. " hook runs for 20 handshakes at once on 2 workers")
  end)

  it("asks again once an answer's ttl is over, serving the old one meanwhile", function()
    -- until both workers hold the answer (each asked once)
    assert.truthy(proc.wait_for(function()
      assert.equal("short.tenants.test", (served(port, "short.tenants.test")))
      return hook_calls("short.tenants.test") == 2
    end, 5, 0), "both workers should have asked once")
    proc.sleep(1.2)
    -- expired: served from the old answer while one refresh per worker runs
    assert.truthy(proc.wait_for(function()
      assert.equal("short.tenants.test", (served(port, "short.tenants.test")))
      return hook_calls("short.tenants.test") >= 3
    end, 5, 0))
  end)

  it("serves only the hook's certificates on a listener without files, failing names it has none for", function()
    assert.equal("acme.tenants.test", (served(only_hook, "acme.tenants.test")))
    local cn, out = served(only_hook, "none.tenants.test")
    assert.is_nil(cn, out)
    cn, out = served(only_hook, "unknown.tenants.test")
    assert.is_nil(cn, out)
  end)

  it("asks the hook again after a purge by the admin API, or by a fleet line `cert NAME`", function()
    -- two workers, each with its own cache: handshake until both have asked
    -- (n runs in all), then until each has asked again
    local function served_until(n)
      return proc.wait_for(function()
        assert.equal("after.tenants.test", (served(port, "after.tenants.test")))
        return hook_calls("after.tenants.test") >= n
      end, 5, 0)
    end
    assert.truthy(served_until(2), "both workers should have asked")
    assert.equal(2, hook_calls("after.tenants.test"))
    assert.equal(400, assert(http.request(admin, "DELETE", "/cache?server_name=a%20b", {})).status)
    local res = assert(http.request(admin, "DELETE", "/cache?server_name=AFTER.tenants.test.", {}))
    assert.equal(200, res.status)
    assert.equal(2, require("cjson").decode(res.body).purged)
    assert.truthy(served_until(4), "each worker should have asked again after the purge")
    r:cli("PUBLISH", "corsgate:invalidate", "cert after.tenants.test")
    assert.truthy(proc.wait_for(function() return gw:log():find("fleet: invalidation (1 line(s): cert", 1, true) end, 2))
    assert.truthy(served_until(6), "each worker should have asked again after the fleet line")
    -- and the cache held it in between: no run without a purge
    for _ = 1, 4 do served(port, "after.tenants.test") end
    assert.equal(6, hook_calls("after.tenants.test"))
  end)

  it("counts the hook's runs and failures in the metrics", function()
    local res = assert(http.request(admin, "GET", "/metrics", {}))
    local errors = tonumber(res.body:match("\ncorsgate_hook_errors_total (%d+)"))
    -- error, loop, hang, and three answers that are no certificate for the name
    assert.truthy(errors and errors >= 6, res.body:match("corsgate_hook_errors_total[^\n]*") or "no hook metrics")
  end)

  describe("the shipped tenant_certs_redis", function()
    local function tenants_load(...)
      local args = { ... }
      for i, a in ipairs(args) do args[i] = proc.quote(a) end
      return proc.sh(format("%s/scripts/tenants-load --redis %s %s 2>&1", gateway.root, r:address(),
        table.concat(args, " ")))
    end

    -- the SHA-256 fingerprint of the certificate served for name
    local function fingerprint(name)
      local _, out = proc.sh(format("true | timeout 10 openssl s_client -connect 127.0.0.1:%d -servername %s "
        .. "2>/dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null", shipped, name))
      return (out:match("=([%x:]+)") or ""):gsub(":", ""):lower()
    end

    it("serves a tenant's certificate loaded with tenants-load, and a replacement within 1 s", function()
      assert.equal("", fingerprint("api.acme.test")) -- nothing loaded: the handshake fails
      local code, out = tenants_load("--cert", "api.acme.test", acme_a.cert, acme_a.key)
      assert.equal(0, code, out)
      assert.matches("1 certificate(s) written", out, 1, true)
      assert.truthy(proc.wait_for(function() return fingerprint("api.acme.test") == certs_mod.fingerprint(acme_a.cert) end, 2))
      local res, err = http.request(shipped, "GET", "/", { { "Host", "api.acme.test" } }, nil,
        { tls = { servername = "api.acme.test", cafile = ca.ca } })
      assert.res_status(200, res, err or gw)
      -- renewed: every worker serves the new one within 1 s of the load
      code, out = tenants_load("--cert", "API.acme.test.", acme_b.cert, acme_b.key)
      assert.equal(0, code, out)
      local t0 = socket.gettime()
      assert.truthy(proc.wait_for(function()
        for _ = 1, 4 do
          if fingerprint("api.acme.test") ~= certs_mod.fingerprint(acme_b.cert) then return false end
        end
        return true
      end, 1), "the replaced certificate was still served after 1 s")
      print(format("\n[certs] a replaced certificate served by every worker %.0f ms after tenants-load ended",
        (socket.gettime() - t0) * 1000))
    end)

    it("serves a wildcard for one label below it", function()
      local code, out = tenants_load("--cert", "*.wild.test", wild.cert, wild.key)
      assert.equal(0, code, out)
      assert.truthy(proc.wait_for(function() return fingerprint("a.wild.test") == certs_mod.fingerprint(wild.cert) end, 2))
      assert.equal("", fingerprint("b.a.wild.test"))
    end)

    it("checks what it loads and writes nothing that would fail a handshake", function()
      local code, out = tenants_load("--cert", "api.other.test", acme_a.cert, acme_a.key)
      assert.is_not.equal(0, code)
      assert.matches("the certificate does not name api.other.test", out, 1, true)
      code, out = tenants_load("--cert", "api.acme.test", acme_a.cert, acme_b.key)
      assert.is_not.equal(0, code)
      assert.matches("does not belong to the certificate", out, 1, true)
      -- the leaf, then a certificate that did not issue it
      local bad = dir .. "/bad-chain.pem"
      proc.write_file(bad, proc.read_file(acme_a.cert):match("^(.-END CERTIFICATE%-%-%-%-%-\n)")
        .. proc.read_file(wild.cert))
      code, out = tenants_load("--cert", "api.acme.test", bad, acme_a.key)
      assert.is_not.equal(0, code)
      assert.matches("is not issued by the next one", out, 1, true)
      assert.equal("0", r:cli("EXISTS", "corsgate:cert:api.other.test"))
      -- a certificate naming its host in the Common Name only
      local cn_only = ca:issue("cn-only", {})
      code, out = tenants_load("--cert", "cn-only", cn_only.cert, cn_only.key)
      assert.is_not.equal(0, code)
      assert.matches("names no host in subjectAltName", out, 1, true)
    end)

    it("serves a replaced wildcard certificate everywhere within 1 s", function()
      -- both workers hold the first one (4 handshakes in a row served it)
      assert.truthy(proc.wait_for(function()
        for _ = 1, 4 do
          if fingerprint("c.wild.test") ~= certs_mod.fingerprint(wild.cert) then return false end
        end
        return true
      end, 3))
      local code, out = tenants_load("--cert", "*.wild.test", wild2.cert, wild2.key)
      assert.equal(0, code, out)
      assert.truthy(proc.wait_for(function()
        for _ = 1, 4 do
          if fingerprint("c.wild.test") ~= certs_mod.fingerprint(wild2.cert) then return false end
        end
        return true
      end, 1), "the old wildcard certificate was still served 1 s after the load")
    end)

    it("stops serving a certificate that was dropped", function()
      local code, out = tenants_load("--drop-cert", "*.wild.test")
      assert.equal(0, code, out)
      assert.truthy(proc.wait_for(function()
        for _ = 1, 4 do
          if fingerprint("a.wild.test") ~= "" then return false end
        end
        return true
      end, 2))
    end)
  end)

  describe("config", function()
    local function check(tls)
      return gateway.check({
        plugin_paths = { dir },
        listen = { { address = "127.0.0.1:1", tls = tls } },
        routes = { { prefix = "/", static = { status = 200 } } },
      })
    end

    it("refuses a plugin it cannot find", function()
      local code, out = check({ plugin = "nowhere" })
      assert.is_not.equal(0, code)
      assert.matches('listen[1].tls.plugin: no plugin "nowhere"', out, 1, true)
    end)

    it("refuses a plugin without a certificate hook", function()
      local code, out = check({ plugin = "origin_only" })
      assert.is_not.equal(0, code)
      assert.matches("listen%[1%]%.tls%.plugin: .*origin_only%.lua: the plugin has no certificate%(ctx%) hook", out)
    end)

    it("checks plugin_config against the plugin's schema", function()
      local code, out = check({ plugin = "certs_dir" })
      assert.is_not.equal(0, code)
      assert.matches("listen[1].tls.plugin_config.dir: required", out, 1, true)
      code, out = check({ plugin = "certs_dir", plugin_config = { dir = 5 } })
      assert.is_not.equal(0, code)
      assert.matches("listen[1].tls.plugin_config.dir: expected a string, got number", out, 1, true)
    end)

    it("refuses plugin_config without a plugin, and a listener with neither certificates nor plugin", function()
      local code, out = check({ plugin_config = { dir = "x" } })
      assert.is_not.equal(0, code)
      assert.matches('listen[1].tls: plugin_config: only meaningful with plugin = "NAME"', out, 1, true)
      assert.matches("listen[1].tls: certificates: expected a list", out, 1, true)
    end)

    it("refuses a route naming a certificate-only plugin", function()
      local code, out = gateway.check({
        plugin_paths = { dir },
        routes = { { prefix = "/", upstream = "echo", cors = { plugin = "certs_dir", plugin_config = { dir = "x" } } } },
      })
      assert.is_not.equal(0, code)
      assert.matches("routes%[1%]%.cors%.plugin: .*certs_dir%.lua: the plugin has no origin%(ctx%) hook", out)
    end)
  end)
end)
