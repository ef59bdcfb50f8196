-- gw.redis.call from a plugin, against a real redis-server: what a hook gets
-- back for each kind of reply, what it may not do on the shared connection,
-- timeouts when Redis stops answering, AUTH, and the config around it.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local redis = require("spec.support.redis")
local socket = require("socket")
local cjson = require("cjson")
require("spec.support.assert")

local PROBE = [[
local _M = {}
_M.requires = { redis = true }

function _M.origin(ctx)
  local host = ctx.host
  if host == "convert.test" then
    local seen = {}
    local function rec(name, ...) seen[name] = { n = select("#", ...), ... } end
    rec("set", gw.redis.call("SET", "probe:s", "hello"))
    rec("get", gw.redis.call("GET", "probe:s"))
    rec("incr", gw.redis.call("INCR", "probe:n"))
    rec("missing", gw.redis.call("GET", "probe:none"))
    rec("array", gw.redis.call("LRANGE", "probe:list", 0, -1))
    rec("err", gw.redis.call("INCR", "probe:s"))
    rec("number_arg", gw.redis.call("SET", "probe:num", 42))
    gw.redis.call("SET", "probe:seen", gw.json.encode(seen))
    return true
  elseif host == "subscribe.test" then
    gw.redis.call("SUBSCRIBE", "x")
    return true
  elseif host == "pmonitor.test" then
    gw.redis.call("pmonitor") -- hiredis would read it as MONITOR
    return true
  elseif host == "badarg.test" then
    gw.redis.call("GET", {})
    return true
  end
  -- anything else: allowed when probe:allow:<host> is "1"
  local v, err = gw.redis.call("GET", "probe:allow:" .. host)
  if v == nil then error("redis: " .. err, 0) end
  return { allow = v == "1", ttl = 0 }
end

return _M
]]

local function preflight(gw, origin)
  return http.request(gw:port(), "OPTIONS", "/api/x", { { "Origin", origin },
    { "Access-Control-Request-Method", "GET" } })
end

local function start(r, extra)
  local dir = proc.tmpdir("plugins")
  proc.write_file(dir .. "/redis_probe.lua", PROBE)
  local cfg = {
    workers = 1,
    plugin_paths = { dir },
    redis = { address = r:address(), timeout_ms = 300 },
    routes = { { name = "api", prefix = "/api", upstream = "echo",
      cors = { plugin = "redis_probe", methods = { "GET" }, deny_ttl = 0 } } },
  }
  for k, v in pairs(extra or {}) do if k ~= "gateway_opts" then cfg[k] = v end end
  return gateway.start(cfg, extra and extra.gateway_opts), dir
end

describe("gw.redis", function()
  local r

  lazy_setup(function() r = redis.start() end)
  lazy_teardown(function() if r then r:stop() end end)

  it("converts replies the way Redis's own Lua does: strings, numbers, tables, false for nil, nil + err for errors", function()
    r:cli("DEL", "probe:n")
    r:cli("RPUSH", "probe:list", "a", "b")
    local gw = start(r)
    local res = preflight(gw, "https://convert.test")
    assert.res_status(204, res, gw)
    -- each entry is { n = count, values... }, through JSON: the values sit under "1", "2"
    local seen = cjson.decode(r:cli("GET", "probe:seen"))
    assert.same({ n = 1, ["1"] = "OK" }, seen.set)
    assert.same({ n = 1, ["1"] = "hello" }, seen.get)
    assert.same({ n = 1, ["1"] = 1 }, seen.incr)
    assert.same({ n = 1, ["1"] = false }, seen.missing)
    assert.same({ n = 1, ["1"] = { "a", "b" } }, seen.array)
    assert.equal(2, seen.err.n)
    assert.is_nil(seen.err["1"])
    assert.matches("^ERR value is not an integer", seen.err["2"])
    assert.equal("42", r:cli("GET", "probe:num"))
    gw:stop_clean()
  end)

  it("raises on a command that would take over the shared connection, and on bad arguments: the origin is denied", function()
    local gw = start(r)
    local res = preflight(gw, "https://subscribe.test")
    assert.res_status(403, res, gw)
    assert.no_header(res, "access-control-allow-origin")
    assert.log_has(gw, "SUBSCRIBE is not allowed in a hook")
    assert.res_status(403, preflight(gw, "https://pmonitor.test"), gw)
    assert.log_has(gw, "pmonitor is not allowed in a hook")
    res = preflight(gw, "https://badarg.test")
    assert.res_status(403, res, gw)
    assert.log_has(gw, "argument 2 must be a string or a number, got table")
    -- the worker and its connection are fine
    r:cli("SET", "probe:allow:ok.test", "1")
    assert.res_status(204, preflight(gw, "https://ok.test"), gw)
    gw:stop_clean()
  end)

  it("times out when Redis stops answering (nil, \"timeout\"), denies, and works again once Redis answers", function()
    r:cli("SET", "probe:allow:a.test", "1")
    r:cli("SET", "probe:allow:b.test", "1")
    local gw = start(r)
    assert.res_status(204, preflight(gw, "https://a.test"), gw)
    r:pause()
    local t0 = socket.gettime()
    local res = preflight(gw, "https://b.test")
    local took = socket.gettime() - t0
    r:resume()
    assert.res_status(403, res, gw)
    assert.no_header(res, "access-control-allow-origin")
    assert.log_has(gw, "redis: timeout")
    assert.truthy(took >= 0.25 and took < 1.0 * gateway.slowdown, "answered in " .. took .. " s")
    -- the timed-out connection is rebuilt; answers come back
    local back = proc.wait_for(function()
      local x = preflight(gw, "https://b.test")
      return x and x.status == 204
    end, 5)
    assert.truthy(back, gw:log_tail(10))
    local m = http.request(gw:port(), "GET", "/api/x", {}) -- the gateway still serves plain requests
    assert.res_status(200, m)
    gw:stop_clean()
  end)

  it("fails fast with \"redis unavailable\" while Redis is down, and reconnects by itself", function()
    r:cli("SET", "probe:allow:c.test", "1")
    local admin_port = proc.free_port()
    local gw = start(r, { admin = { listen = "127.0.0.1:" .. admin_port } })
    assert.res_status(204, preflight(gw, "https://c.test"), gw)
    r:kill()
    proc.wait_for(function() return gw:log():find("connection lost", 1, true) end, 3)
    -- an origin never decided (c.test's decision would serve stale: registry_spec)
    local t0 = socket.gettime()
    assert.res_status(403, preflight(gw, "https://d.test"), gw)
    assert.truthy(socket.gettime() - t0 < 0.2 * gateway.slowdown, "a known-down Redis is not waited on")
    assert.log_has(gw, "redis unavailable")
    local metrics = http.request(admin_port, "GET", "/metrics", {}).body
    assert.matches("corsgate_redis_up 0", metrics, 1, true)
    r:restart()
    r:cli("SET", "probe:allow:d.test", "1")
    local back = proc.wait_for(function()
      local x = preflight(gw, "https://d.test")
      return x and x.status == 204
    end, 8)
    assert.truthy(back, gw:log_tail(10))
    metrics = http.request(admin_port, "GET", "/metrics", {}).body
    assert.matches("corsgate_redis_up 1", metrics, 1, true)
    assert.truthy(tonumber(metrics:match("corsgate_redis_reconnects_total (%d+)")) >= 1, metrics)
    gw:stop_clean()
  end)

  it("authenticates with the password from the config or CORSGATE_REDIS_PASSWORD", function()
    local secret = "s3cret-for-specs"
    local rp = redis.start({ password = secret })
    rp:cli("SET", "probe:allow:p.test", "1")
    -- none: refused by Redis, logged, and the origin denied
    local gw = start(rp)
    assert.res_status(403, preflight(gw, "https://p.test"), gw)
    assert.truthy(proc.wait_for(function() return gw:log():find("AUTH refused", 1, true) or
      gw:log():find("NOAUTH", 1, true) end, 3), gw:log_tail(10))
    gw:stop_clean()
    -- from the environment
    gw = start(rp, { gateway_opts = { env = { CORSGATE_REDIS_PASSWORD = secret } } })
    assert.res_status(204, preflight(gw, "https://p.test"), gw)
    gw:stop_clean()
    -- from the file
    gw = start(rp, { redis = { address = rp:address(), password = secret } })
    assert.res_status(204, preflight(gw, "https://p.test"), gw)
    gw:stop_clean()
    rp:stop()
  end)

  it("refuses at load a plugin that needs Redis without a redis section, and a bad redis section", function()
    local code, out = gateway.check({
      routes = { { name = "api", prefix = "/", upstream = "echo", cors = { plugin = "tenant_redis" } } } })
    assert.not_equal(0, code)
    assert.matches("routes%[1%]%.cors%.plugin: tenant_redis reads from Redis: add a top%-level redis", out)
    code, out = gateway.check({ redis = { address = "redis.internal:6379", pool_size = 0, db = -1, extra = 1 },
      routes = { { name = "api", prefix = "/", upstream = "echo" } } })
    assert.not_equal(0, code)
    assert.matches('redis.address: expected "IP:port" or "localhost:port", got "redis.internal:6379"', out, 1, true)
    assert.matches("redis.pool_size: expected an integer between 1 and 64", out, 1, true)
    assert.matches("redis.db: expected an integer between 0 and 65535", out, 1, true)
    assert.matches("redis.extra: unknown key", out, 1, true)
  end)
end)
