-- A fleet's pieces for the specs: instances deciding origins from Redis
-- through plugins/tenant_redis.lua, and scripts/tenants-load.
--
--   local gw = fleet.start(r [, extra config] [, admin token])
--       two workers, ttl and deny_ttl an hour (only an invalidation changes a
--       decision), stale_limit 3 s, its admin API at gw.admin_port; returns
--       once it listens on the invalidation channel
--   local rc, out = fleet.load(r, { tenants = {...} } | "raw text" [, "--takeover"])
--       out: what tenants-load printed (stdout and stderr), rc its exit code
--   fleet.allowed(port, origin)       a preflight to /api/x allowed (Allow-Origin echoed)
--   fleet.all_allow(gws, origin, want) every worker of each instance says want
--       (8 preflights each: a connection lands on any worker)
-- r: a spec.support.redis server.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local cjson = require("cjson")

local _M = {}

function _M.start(r, extra, token)
  local admin_port = proc.free_port()
  local cfg = {
    workers = 2,
    admin = { listen = "127.0.0.1:" .. admin_port, token = token },
    redis = { address = r:address(), timeout_ms = 300 },
    cache = { stale_limit = 3 },
    routes = { { name = "api", prefix = "/api", upstream = "echo",
      cors = { plugin = "tenant_redis", methods = { "GET", "PUT" }, ttl = 3600, deny_ttl = 3600 } } },
  }
  for k, v in pairs(extra or {}) do cfg[k] = v end
  local gw = gateway.start(cfg)
  gw.admin_port = admin_port
  -- listening on the channel before a spec publishes anything
  assert(proc.wait_for(function() return gw:log():find("listening on channel", 1, true) end, 5 * gateway.slowdown),
    gw:log_tail(10))
  return gw
end

function _M.allowed(port, origin)
  local res = http.request(port, "OPTIONS", "/api/x", { { "Origin", origin },
    { "Access-Control-Request-Method", "PUT" } }, nil, { timeout = 2 })
  return res ~= nil and res.headers:get("access-control-allow-origin") == origin
end

function _M.all_allow(gws, origin, want)
  for _, gw in ipairs(gws) do
    for _ = 1, 8 do
      if _M.allowed(gw:port(), origin) ~= want then return false end
    end
  end
  return true
end

function _M.load(r, doc, flags)
  local path = os.tmpname()
  proc.write_file(path, type(doc) == "string" and doc or cjson.encode(doc))
  local p = io.popen(("%s/scripts/tenants-load --redis %s %s %s 2>&1; echo \"rc=$?\""):format(
    gateway.root, r:address(), flags or "", path))
  local out = p:read("*a")
  p:close()
  os.remove(path)
  return tonumber(out:match("rc=(%d+)")), out
end

return _M
