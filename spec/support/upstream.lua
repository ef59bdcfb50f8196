-- Starts spec/support/upstream_server.lua as its own luajit process and talks to
-- it directly (not through the gateway).
--
--   local up = upstream.start()
--   up:target()        -- "127.0.0.1:PORT", for a gateway config
--   up:count()         -- { requests, connections, open, requests_by_path }
--   up:tenants({ origins = {...}, mode = "ok", delay_ms = 0 })  -- as a tenant service
--   up:calls(origin)   -- GET /origins/ORIGIN calls it answered (or began) so far
--   up:stop()
local proc = require("spec.support.proc")
local http = require("spec.support.http")
local cjson = require("cjson")

local _M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec/support"
local SERVER = here .. "/upstream_server.lua"

local mt = {}
mt.__index = mt

function _M.start(opts)
  opts = opts or {}
  local dir = proc.tmpdir("up")
  local ready = dir .. "/ready"
  local log = dir .. "/upstream.log"
  local h = proc.spawn({ opts.luajit or "luajit", SERVER, ready }, log, { dir = dir, env = { LD_PRELOAD = false } })
  local port = proc.wait_for(function()
    local s = proc.read_file(ready)
    return s and tonumber(s:match("%d+"))
  end, 5)
  if not port then
    proc.stop(h, { signal = "KILL" })
    error("upstream did not start:\n" .. (proc.read_file(log) or ""), 2)
  end
  return setmetatable({ h = h, dir = dir, _port = port, _log = log }, mt)
end

function mt:port() return self._port end
function mt:target() return "127.0.0.1:" .. self._port end
function mt:pid() return self.h.pid end
function mt:log() return proc.read_file(self._log) or "" end

function mt:count()
  local res, err = http.request(self._port, "GET", "/count", { { "Host", "upstream" } })
  assert(res, "upstream /count: " .. tostring(err))
  return cjson.decode(res.body)
end

function mt:tenants(doc)
  local body = cjson.encode(doc)
  local res, err = http.request(self._port, "PUT", "/_tenants", { { "Host", "upstream" } }, body)
  assert(res and res.status == 200, "upstream /_tenants: " .. tostring(err or (res and res.status)))
end

local function encode(s)
  return (s:gsub("[^%w%-%._~]", function(ch) return string.format("%%%02X", ch:byte()) end))
end

function mt:calls(origin)
  local by = self:count().requests_by_path or {}
  return by["/origins/" .. encode(origin)] or 0
end

function mt:stop()
  if self.stopped then return end
  self.stopped = true
  proc.stop(self.h, { bound = 2 })
  proc.rmdir_all(self.dir)
end

-- A loopback address where nothing listens: connecting is refused. Port 1
-- (tcpmux, never served) rather than a free port: a port free now can become a
-- gateway's own listener later in the run, and /dead then proxies to itself
-- until its head is too large (seen once as a 431 instead of a 502).
function _M.dead_target()
  return "127.0.0.1:1"
end

return _M
