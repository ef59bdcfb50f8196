-- Graceful shutdown: on SIGTERM (or SIGINT) the gateway stops accepting, lets
-- in-flight requests finish (up to timeouts.drain), closes idle keep-alive
-- connections, and exits 0. Progress is observed by counting events (requests
-- seen by the upstream, the listener refusing), never by timing.
local gateway = require("spec.support.gateway")
local upstream = require("spec.support.upstream")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
require("spec.support.assert")
local cjson = require("cjson")

describe("graceful shutdown", function()
  local up

  lazy_setup(function() up = upstream.start() end)
  lazy_teardown(function() up:stop() end)

  local function start(extra)
    local c = {
      upstreams = { u = { targets = { up:target() } } },
      routes = { { name = "u", prefix = "/", upstream = "u" } },
    }
    for k, v in pairs(extra or {}) do c[k] = v end
    return gateway.start(c)
  end

  -- Waits until the upstream has received `n` more requests for path than `base`.
  local function upstream_saw(path, base, n)
    return proc.wait_for(function()
      return ((up:count().requests_by_path[path] or 0) - base) >= n
    end, 5)
  end

  for _, sig in ipairs({ "TERM", "INT" }) do
    it("on SIG" .. sig .. " finishes the in-flight request, refuses new connections, exits 0", function()
      local gw = start()
      local path = "/slow/2000"
      local base = up:count().requests_by_path[path] or 0
      local c = assert(http.connect(gw:port(), { timeout = 15 }))
      assert(c:send(http.build_request("GET", path, {})))
      assert.truthy(upstream_saw(path, base, 1), "the slow request never reached the upstream")

      gw:signal(sig)
      local refused = proc.wait_for(function() return not proc.port_open(gw:port()) end, 5)
      assert.truthy(refused, "still accepting connections after SIG" .. sig .. "\n" .. gw:log_tail())
      assert.is_true(gw:alive(), "exited with a request in flight\n" .. gw:log_tail())

      local res, err = c:read_response()
      local body = assert.res_status(200, res, err or gw)
      assert.equal(path, cjson.decode(body).path)
      assert.is_true((c:peer_closed(5)), "connection left open while draining")
      assert.equal(0, gw:wait_exit(10), gw:log_tail())
      gw:stop_clean()
    end)
  end

  it("closes idle keep-alive connections and exits 0", function()
    local gw = start()
    local idle = {}
    for i = 1, 3 do
      idle[i] = assert(http.connect(gw:port()))
      assert.res_status(200, idle[i]:request("GET", "/echo/idle", {}), gw)
    end
    gw:signal("TERM")
    for i = 1, 3 do
      local closed, extra = idle[i]:peer_closed(5)
      assert.is_true(closed, "idle connection " .. i .. " not closed; got " .. tostring(extra))
    end
    assert.equal(0, gw:wait_exit(10), gw:log_tail())
    gw:stop_clean()
  end)

  it("gives up on requests still running after timeouts.drain and exits", function()
    local gw = start({ timeouts = { drain = 0.5 } })
    local base = up:count().requests_by_path["/hang"] or 0
    local c = assert(http.connect(gw:port(), { timeout = 15 }))
    assert(c:send(http.build_request("GET", "/hang", {})))
    assert.truthy(upstream_saw("/hang", base, 1))
    gw:signal("TERM")
    local code = gw:wait_exit(10)
    assert.truthy(code, "still running long after the drain timeout\n" .. gw:log_tail())
    assert.is_true((c:peer_closed(5)))
    gw:stop_clean()
  end)

  it("exits 0 on SIGTERM with nothing going on", function()
    local gw = start()
    assert.res_status(200, http.request(gw:port(), "GET", "/echo", {}), gw)
    assert.equal(0, gw:stop())
    gw:stop_clean()
  end)
end)
