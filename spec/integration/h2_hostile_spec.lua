-- Hostile HTTP/2 clients, each driven in raw frames (spec/support/h2client.py)
-- while a well-behaved client keeps asking: the abusive connection gets a
-- GOAWAY with the code that says why and is closed, memory and CPU stay
-- bounded, and everyone else is served throughout. Then the malformed
-- requests of RFC 9113 section 8: refused (a stream reset or a 400), never
-- forwarded, and never split differently on the HTTP/1.1 side.
local gateway = require("spec.support.gateway")
local upstream = require("spec.support.upstream")
local proc = require("spec.support.proc")
local http = require("spec.support.http")
local h2 = require("spec.support.h2")
local cjson = require("cjson")
local metric = require("spec.support.metrics").value
require("spec.support.assert")

local format = string.format
local SANITIZED = os.getenv("CORSGATE_SANITIZE") == "1" or os.getenv("CORSGATE_VALGRIND") == "1"
local RSS_LIMIT_KB = 64 * 1024
local CPU_LIMIT_S = 5 * gateway.slowdown

-- the gateway's CPU seconds so far (all threads)
local function cpu_s(pid)
  local stat = proc.read_file("/proc/" .. pid .. "/stat") or ""
  local fields = {}
  for f in stat:gsub("^.-%) ", ""):gmatch("%S+") do fields[#fields + 1] = f end
  return ((tonumber(fields[12]) or 0) + (tonumber(fields[13]) or 0)) / 100
end

describe("HTTP/2 under attack", function()
  local up, gw, port, admin_port
  local missing = h2.missing()

  lazy_setup(function()
    assert(not missing, missing)
    up = upstream.start()
    port, admin_port = proc.free_port(), proc.free_port()
    gw = gateway.start({
      admin = { listen = "127.0.0.1:" .. admin_port },
      workers = 2,
      listen = { { address = "127.0.0.1:" .. port, http2 = true } },
      timeouts = { send = 1, body = 2 },
      upstreams = { api = { targets = { up:target() } } },
      routes = { { name = "api", prefix = "/", upstream = "api", cors = { origins = { "https://app.example.test" } } } },
    }, { port = port })
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    if up then up:stop() end
  end)

  -- Runs the attack in the background while another client (HTTP/1.1 and
  -- HTTP/2, each on its own connection) asks every 20 ms.
  local function attack(spec)
    spec.port = port
    spec.bodies = false
    local cpu0 = cpu_s(gw:pid())
    local bg = h2.spawn(spec)
    local served, failed, why = 0, 0, nil
    repeat
      local res, err = http.request(port, "GET", "/echo", { { "Host", "localhost" } })
      if res and res.status == 200 then served = served + 1 else failed, why = failed + 1, err end
      local s = h2.run({ port = port, requests = { h2.get("/echo") }, wait = 5 }).streams["1"]
      if s.status == 200 then served = served + 1 else failed, why = failed + 1, "h2: " .. cjson.encode(s) end
      proc.sleep(0.02)
    until bg:done()
    local r = bg:result()
    assert.equal(0, failed, "another client was refused during the attack: " .. tostring(why))
    assert.truthy(served >= 2)
    local cpu = cpu_s(gw:pid()) - cpu0
    assert.truthy(cpu < CPU_LIMIT_S, format("the attack cost the gateway %.1f CPU seconds", cpu))
    if not SANITIZED then
      local mem = gw:rss_kb()
      assert.truthy(mem.hwm < RSS_LIMIT_KB, format("peak RSS %d KiB", mem.hwm))
    end
    assert.is_true(gw:alive())
    return r, served, cpu
  end

  local function abusive()
    return metric(assert(http.request(admin_port, "GET", "/metrics", {})).body, "corsgate_http2_abusive_closed_total")
  end

  local function assert_calmed(r, what, before)
    assert.is_table(r.goaway, what .. ": no GOAWAY")
    assert.equal(before + 1, abusive(), what .. ": corsgate_http2_abusive_closed_total did not count it")
    assert.equal(h2.ENHANCE_YOUR_CALM, r.goaway.code, what)
    assert.is_true(r.closed, what .. ": the connection stayed open")
  end

  it("Rapid Reset (CVE-2023-44487): streams reset as fast as opened end the connection", function()
    local before = up:count().requests
    local calm = abusive()
    local r, served, cpu = attack({ mode = "rapid_reset", count = 20000, path = "/slow/100" })
    assert_calmed(r, "rapid reset", calm)
    -- the bucket (200 resets) bounds what the attack made the gateway do
    assert.truthy(r.goaway.last_stream_id < 1000, "streams processed: " .. r.goaway.last_stream_id)
    assert.truthy(up:count().requests - before < 400 + served)
    print(format("\n[h2 hostile] Rapid Reset: GOAWAY after stream %d of %d sent, %.2f CPU s, %d requests served meanwhile",
      r.goaway.last_stream_id, 2 * r.opened - 1, cpu, served))
  end)

  it("Rapid Reset whatever code the resets say (NO_ERROR too)", function()
    local calm = abusive()
    local r = attack({ mode = "rapid_reset", count = 5000, path = "/slow/100", code = h2.NO_ERROR })
    assert_calmed(r, "rapid reset with NO_ERROR", calm)
    assert.truthy(r.goaway.last_stream_id < 1000, "streams processed: " .. r.goaway.last_stream_id)
  end)

  it("CONTINUATION flood (CVE-2024-27316): an endless header block ends the connection", function()
    local calm = abusive()
    local r = attack({ mode = "continuation", count = 5000 })
    assert_calmed(r, "continuation flood", calm)
  end)

  it("HPACK bomb: a header list decoded past its bound ends the connection", function()
    local calm = abusive()
    local r = attack({ mode = "hpack_bomb", blocks = 50, refs = 16000 })
    assert_calmed(r, "hpack bomb", calm)
    assert.equal(200, r.streams["1"] and r.streams["1"].status or 200)
  end)

  it("HPACK bomb in the trailers: bounded like one in the head", function()
    local calm = abusive()
    local r = attack({ mode = "hpack_bomb", blocks = 10, refs = 16000 * 8, trailers = true })
    assert_calmed(r, "trailers bomb", calm)
  end)

  it("a large field in the HPACK table survives the connection idling (its buffers given back)", function()
    -- 4,000 backslashes: Huffman-coded they take 9.5 KB, which nghttp2 decodes
    -- into a block of more than 16 KB that its table keeps
    local r = h2.run({ port = port, requests = { h2.get("/echo", { { "x-big", string.rep("\\", 4000) } }),
      (function() local g = h2.get("/echo", { { "x-big", string.rep("\\", 4000) } }); g.after = 2.5; return g end)() },
      wait = 10 })
    assert.equal(200, r.streams["1"].status)
    assert.equal(200, r.streams["3"].status, cjson.encode(r.streams["3"]))
    assert.equal(string.rep("\\", 4000), (function()
      for _, kv in ipairs(cjson.decode(r.streams["3"].body).headers) do
        if kv[1] == "x-big" then return kv[2] end
      end
    end)())
    proc.sleep(2.5) -- idle again, then the connection closed: the table entry is freed
    assert.is_true(gw:alive())
    assert.equal(200, h2.run({ port = port, requests = { h2.get("/echo") } }).streams["1"].status)
  end)

  it("times each stream's body on its own clock: a new stream after an old one's quiet gets its full timeout", function()
    local later = h2.request("POST", "/echo")
    later.after = 2.5 -- longer than timeouts.body (2 s) since the first stream's DATA
    later.body_after = 0.5
    later.frames = { "later" }
    local first = h2.request("POST", "/echo")
    first.frames_now = { "first" }
    local r = h2.run({ port = port, requests = { first, later }, wait = 10 })
    assert.equal(200, r.streams["1"].status)
    assert.equal(200, r.streams["3"].status, cjson.encode(r.streams["3"]))
  end)

  it("a header list over max_head_bytes gets 431 on its stream, and the connection goes on", function()
    local r = h2.run({ port = port, requests = {
      h2.get("/echo", { { "x-big", string.rep("b", 20000) } }), h2.get("/echo") } })
    assert.equal(431, r.streams["1"].status)
    assert.equal(200, r.streams["3"].status)
    r = h2.run({ port = port, requests = { h2.get("/echo", (function()
      local many = {}
      for i = 1, 150 do many[i] = { "x-h" .. i, "v" } end
      return many
    end)()) } })
    assert.equal(431, r.streams["1"].status)
  end)

  for _, kind in ipairs({ "settings", "ping" }) do
    it(kind:upper() .. " flood (CVE-2019-9512, 9515): answers owed past a bound end the connection", function()
      local calm = abusive()
      local r = attack({ mode = "flood", frame = kind, count = 50000 })
      assert_calmed(r, kind .. " flood", calm)
    end)
  end

  it("empty DATA flood (CVE-2019-9518): frames that carry nothing end the connection", function()
    local calm = abusive()
    local r = attack({ mode = "flood", frame = "empty_data", count = 1000, path = "/echo" })
    assert_calmed(r, "empty DATA flood", calm)
  end)

  it("zero-window slow read (CVE-2019-9517): a client that never opens its window is closed after timeouts.send", function()
    local r = attack({ mode = "zero_window", path = "/bytes/10000000", wait = 10 * gateway.slowdown })
    assert.is_true(r.closed, "the connection stayed open")
    -- its PINGs every 0.2 s do not keep it: 1 s of send timeout, then the close
    assert.truthy(r.elapsed < 5 * gateway.slowdown, "closed after " .. r.elapsed .. " s")
    assert.equal(0, r.streams["1"].body_len)
  end)

  it("refuses a body over limits.max_body_bytes with 413: declared at once, streamed when it passes", function()
    local before = up:count().requests
    local r = h2.run({ port = port, requests = {
      { headers = h2.request("POST", "/echo", { { "content-length", tostring(20 * 1024 * 1024) } }).headers,
        body_len = 100000 },
      { headers = h2.request("POST", "/echo").headers, body_len = 11 * 1024 * 1024 } }, wait = 20 })
    assert.equal(413, r.streams["1"].status, cjson.encode(r.streams["1"]))
    local s = r.streams["3"]
    assert.truthy(s.status == 413 or s.reset == h2.CANCEL, cjson.encode(s))
    assert.is_nil(r.goaway)
    -- the declared one never went upstream; the streamed one went and was cut off
    proc.sleep(0.2)
    assert.equal(before, up:count().requests)
  end)

  it("more streams than SETTINGS_MAX_CONCURRENT_STREAMS (100): the extra ones are refused", function()
    local r = h2.run({ port = port, mode = "streams", count = 150, path = "/slow/300", wait = 10, bodies = false })
    assert.equal(100, r.peer_settings["3"])
    local ok, refused = 0, 0
    for _, s in pairs(r.streams) do
      if s.status == 200 then ok = ok + 1 end
      if s.reset == h2.REFUSED_STREAM or s.reset == h2.PROTOCOL_ERROR then refused = refused + 1 end
    end
    assert.equal(100, ok)
    assert.equal(50, refused)
  end)

  describe("malformed requests (RFC 9113 section 8)", function()
    local base = { { ":method", "GET" }, { ":scheme", "http" }, { ":authority", "localhost" }, { ":path", "/echo" } }
    local function with(extra, drop)
      local h = {}
      for _, kv in ipairs(base) do
        if kv[1] ~= drop then h[#h + 1] = kv end
      end
      for _, kv in ipairs(extra or {}) do h[#h + 1] = kv end
      return h
    end
    local cases = {
      { "an upper-case field name", with({ { "X-Upper", "1" } }) },
      { "connection", with({ { "connection", "keep-alive" } }) },
      { "keep-alive", with({ { "keep-alive", "timeout=5" } }) },
      { "proxy-connection", with({ { "proxy-connection", "keep-alive" } }) },
      { "transfer-encoding", with({ { "transfer-encoding", "chunked" } }) },
      { "upgrade", with({ { "upgrade", "h2c" } }) },
      { "te other than trailers", with({ { "te", "gzip" } }) },
      { "no :path", with(nil, ":path") },
      { "no :method", with(nil, ":method") },
      { "no :scheme", with(nil, ":scheme") },
      { "a duplicated :path", with({ { ":path", "/other" } }) },
      { "a pseudo-header after a regular field", { { ":method", "GET" }, { ":scheme", "http" },
        { "x-a", "1" }, { ":authority", "localhost" }, { ":path", "/echo" } } },
      { "an unknown pseudo-header", with({ { ":foo", "bar" } }) },
      { "CR in a value", with({ { "x-a", "a\rb" } }) },
      { "LF in a value", with({ { "x-a", "a\nGET /smuggled HTTP/1.1" } }) },
      { "NUL in a value", with({ { "x-a", "a\0b" } }) },
      { "a space in :path", { { ":method", "GET" }, { ":scheme", "http" }, { ":authority", "localhost" },
        { ":path", "/echo HTTP/1.1\r\nHost: x" } } },
      { "a :path that is not origin-form", { { ":method", "GET" }, { ":scheme", "http" },
        { ":authority", "localhost" }, { ":path", "echo" } } },
      { "Host differing from :authority", with({ { "host", "other.example" } }) },
    }
    for _, case in ipairs(cases) do
      it("refuses " .. case[1] .. " without forwarding it, and the connection goes on", function()
        local before = up:count().requests
        local r = h2.run({ port = port, requests = { { headers = case[2] }, h2.get("/echo") } })
        local bad = r.streams["1"]
        assert.truthy(bad.reset == h2.PROTOCOL_ERROR or bad.status == 400,
          case[1] .. " was not refused: " .. cjson.encode(bad))
        assert.equal(200, r.streams["3"].status, cjson.encode(r))
        assert.equal(before + 1, up:count().requests, "a malformed request reached the upstream")
      end)
    end

    it("refuses a body longer than its content-length; the upstream never gets a complete request", function()
      local before = up:count().requests
      local r = h2.run({ port = port, requests = {
        { headers = with({ { "content-length", "5" } }, nil), frames = { "hello", "world" } } } })
      assert.equal(h2.PROTOCOL_ERROR, r.streams["1"].reset, cjson.encode(r))
      proc.sleep(0.2)
      assert.equal(before, up:count().requests)
    end)

    it("holds a content-length: 0 request until its end: DATA after it is refused, never forwarded", function()
      local before = up:count().requests
      local bad = { headers = with({ { "content-length", "0" } }, nil), frames = { "extra" }, body_after = 0.3 }
      local r = h2.run({ port = port, requests = { bad } })
      assert.equal(h2.PROTOCOL_ERROR, r.streams["1"].reset, cjson.encode(r))
      proc.sleep(0.2)
      assert.equal(before, up:count().requests)
    end)

    it("refuses a body shorter than its content-length; the upstream never gets a complete request", function()
      local before = up:count().requests
      local r = h2.run({ port = port, requests = {
        { headers = with({ { "content-length", "10" } }, nil), frames = { "hello" } } } })
      assert.equal(h2.PROTOCOL_ERROR, r.streams["1"].reset, cjson.encode(r))
      proc.sleep(0.2)
      assert.equal(before, up:count().requests)
    end)

    it("never splits a request differently upstream: HTTP/1.1 in a body and empty DATA frames stay body", function()
      local before = up:count()
      local evil = "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
      local r = h2.run({ port = port, requests = {
        { headers = h2.request("POST", "/echo").headers, frames = { "abc", "", evil, "", "xyz" } } } })
      local s = r.streams["1"]
      assert.equal(200, s.status, cjson.encode(r))
      local j = cjson.decode(s.body)
      assert.equal(6 + #evil, j.body_bytes)
      assert.is_true(j.chunked)
      proc.sleep(0.2)
      local after = up:count()
      assert.equal(before.requests + 1, after.requests)
      assert.is_nil(after.requests_by_path["/smuggled"])
    end)
  end)
end)
