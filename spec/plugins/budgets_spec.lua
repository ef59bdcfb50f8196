-- A plugin that misbehaves denies its origin (fails closed), is logged once
-- per origin, and never takes its worker down: each budget and each failure
-- shape, then a healthy route on the same worker.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local socket = require("socket")
require("spec.support.assert")

-- name -> body of origin(ctx)
local BAD = {
  loop = "while true do end",
  long_loop = "local x = 0 for i = 1, 1e12 do x = x + i % 7 end return true",
  error = "error('tenant table is corrupt')",
  alloc_table = "local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(64) .. i end return true",
  alloc_rep = "local s = string.rep('x', 2 ^ 31) return #s > 0",
  alloc_rep_method = "local s = ('x'):rep(2 ^ 30) return #s > 0", -- 1 GB in one instruction, memory_mb is 32
  -- gigabytes within a few instructions, between two of the count hook's checks
  alloc_concat = "local s = 'x' for i = 1, 30 do s = s .. s end return #s > 0",
  alloc_gsub = "local s = ('x'):rep(40000) local t = s:gsub('.', s) return #t > 0",
  wrong_type = "return 'yes'",
  wrong_table = "return { allowed = true }",
  bad_decision = "return { allow = true, expose_headers = { 'X Bad' } }",
  star_with_credentials = "return { allow = true, credentials = true, expose_headers = '*' }",
  never_resumes = "gw.sleep(1e9) return true",
  bare_yield = "coroutine.yield() return true",
  caught = "local ok = pcall(function() while true do end end) return true",
}

local GOOD = "return true"

describe("plugin budgets and failures", function()
  local dir, gw

  lazy_setup(function()
    dir = proc.tmpdir("budgets")
    local routes = {}
    for name, body in pairs(BAD) do
      proc.write_file(dir .. "/bad_" .. name .. ".lua",
        "local _M = {}\nfunction _M.origin(ctx)\n" .. body .. "\nend\nreturn _M\n")
      routes[#routes + 1] = { name = name, prefix = "/" .. name, upstream = "echo",
        cors = { plugin = "bad_" .. name, deny_ttl = 0, methods = { "GET", "PUT" } } }
    end
    proc.write_file(dir .. "/good.lua", "local _M = {}\nfunction _M.origin(ctx)\n" .. GOOD .. "\nend\nreturn _M\n")
    routes[#routes + 1] = { name = "good", prefix = "/good", upstream = "echo", cors = { plugin = "good", methods = { "PUT" } } }
    gw = gateway.start({
      plugin_paths = { dir },
      plugins = { timeout = 0.3, max_instructions = 50000000, memory_mb = 32 },
      routes = routes,
    })
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    proc.rmdir_all(dir)
  end)

  local function preflight(path, origin)
    return http.request(gw:port(), "OPTIONS", path, { { "Origin", origin },
      { "Access-Control-Request-Method", "PUT" } }, nil, { timeout = 10 })
  end

  local expected_log = {
    loop = { "timed out", "instruction budget exceeded" }, long_loop = { "timed out", "instruction budget exceeded" }, error = "tenant table is corrupt",
    -- a table grown one string at a time: on a sanitizer build it can run out of
    -- time before it runs out of memory, and either budget stops it
    alloc_table = { "memory limit exceeded", "timed out" }, alloc_rep = "memory limit", alloc_rep_method = "memory limit",
    alloc_concat = "memory limit exceeded", alloc_gsub = "memory limit exceeded", wrong_type = "must return true, false or a decision table",
    wrong_table = "without allow = true|false", bad_decision = "is not a valid header name",
    star_with_credentials = "with credentials", never_resumes = "timed out", bare_yield = { "yielded outside a gw", "global .coroutine." },
    caught = { "timed out", "instruction budget exceeded" },
  }

  for name in pairs(BAD) do
    it("denies the origin when the hook " .. name:gsub("_", " ") .. ", and the worker serves on", function()
      local origin = "https://" .. name:gsub("_", "-") .. ".test"
      local t0 = socket.gettime()
      local res, err = preflight("/" .. name, origin)
      assert.res_status(403, res, err or gw)
      assert.no_header(res, "access-control-allow-origin")
      assert.is_true(socket.gettime() - t0 < 5, "took " .. (socket.gettime() - t0) .. " s")
      -- the actual request is served, without CORS headers
      res, err = http.request(gw:port(), "GET", "/" .. name, { { "Origin", origin } })
      assert.res_status(200, res, err or gw)
      assert.no_header(res, "access-control-allow-origin")
      -- the same worker answers a healthy plugin route
      res, err = preflight("/good", "https://fine.test")
      assert.res_status(204, res, err or gw)
      assert.header(res, "access-control-allow-origin", "https://fine.test")
      assert.is_true(gw:alive())
      local log, found = gw:log(), false
      local want = expected_log[name]
      for _, w in ipairs(type(want) == "table" and want or { want }) do
        found = found or log:find("origin " .. origin:gsub("%p", "%%%0") .. " denied: [^\n]*" .. w) ~= nil
      end
      assert.truthy(found, "no log line for " .. origin .. "\n" .. log)
    end)
  end

  it("logs a failing origin once per minute, however often it is asked", function()
    for _ = 1, 5 do assert.res_status(403, preflight("/error", "https://again.test")) end
    local _, n = gw:log():gsub("origin https://again%.test denied", "")
    assert.equal(1, n)
  end)
end)
