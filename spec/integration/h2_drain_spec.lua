-- HTTP/2 across a reload and a graceful shutdown: a connection is told with
-- GOAWAY (NO_ERROR) to go elsewhere, the streams it has open are served to
-- their end, and no request fails.
local gateway = require("spec.support.gateway")
local upstream = require("spec.support.upstream")
local proc = require("spec.support.proc")
local h2 = require("spec.support.h2")
local cjson = require("cjson")
require("spec.support.assert")

describe("HTTP/2 drain", function()
  local up
  local missing = h2.missing()

  lazy_setup(function()
    assert(not missing, missing)
    up = upstream.start()
  end)

  lazy_teardown(function()
    if up then up:stop() end
  end)

  local function start()
    local port = proc.free_port()
    local gw = gateway.start({
      workers = 2,
      listen = { { address = "127.0.0.1:" .. port, http2 = true } },
      upstreams = { api = { targets = { up:target() } } },
      routes = { { name = "api", prefix = "/", upstream = "api" } },
    }, { port = port })
    return gw, port
  end

  local function slow_streams(port, n, ms)
    local reqs = {}
    for i = 1, n do reqs[i] = h2.get("/slow/" .. ms) end
    return h2.spawn({ port = port, requests = reqs, wait = 20, bodies = false })
  end

  it("on reload, serves the open streams to their end and says GOAWAY; new connections go on", function()
    local gw, port = start()
    local bg = slow_streams(port, 10, 1500)
    proc.sleep(0.4) -- the streams are under way
    gw:signal("HUP")
    local r = bg:result()
    for id, s in pairs(r.streams) do assert.equal(200, s.status, id .. ": " .. cjson.encode(s)) end
    assert.is_table(r.goaway, "no GOAWAY")
    assert.equal(h2.NO_ERROR, r.goaway.code)
    assert.truthy(r.goaway.last_stream_id >= 19)
    assert.truthy(proc.wait_for(function() return gw:log():find("config #2 serving", 1, true) end, 5), gw:log_tail())
    local s = h2.run({ port = port, requests = { h2.get("/echo") } }).streams["1"]
    assert.equal(200, s.status)
    gw:stop_clean()
  end)

  it("loses no request across reloads under load", function()
    local gw, port = start()
    local clients = {}
    for i = 1, 6 do
      clients[i] = slow_streams(port, 20, 200 + 100 * i)
      proc.sleep(0.15)
      if i % 2 == 0 then gw:signal("HUP") end
    end
    local answered = 0
    for _, bg in ipairs(clients) do
      local r = bg:result()
      for id, s in pairs(r.streams) do
        assert.equal(200, s.status, id .. ": " .. cjson.encode(s))
        answered = answered + 1
      end
    end
    assert.equal(120, answered)
    gw:stop_clean()
  end)

  it("on SIGTERM, finishes the open streams, says GOAWAY and exits 0", function()
    local gw, port = start()
    local bg = slow_streams(port, 5, 1000)
    proc.sleep(0.3)
    gw:signal("TERM")
    local r = bg:result()
    for id, s in pairs(r.streams) do assert.equal(200, s.status, id .. ": " .. cjson.encode(s)) end
    assert.equal(h2.NO_ERROR, r.goaway and r.goaway.code)
    assert.equal(0, gw:wait_exit(10), gw:log_tail())
    gw:cleanup()
  end)
end)
