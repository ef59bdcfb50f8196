-- What a plugin can and cannot reach: the gw API works from hooks, blocking
-- libraries and the host's internals are not there.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local socket = require("socket")
require("spec.support.assert")
local cjson = require("cjson")

local PROBE = [[
local _M = {}
-- Answers allow = true only when every check holds; the tenant label says which failed.
function _M.origin(ctx)
  local failed = {}
  local function check(name, ok) if not ok then failed[#failed + 1] = name end end
  check("io", io == nil)
  check("os.execute", os.execute == nil and os.remove == nil and os.exit == nil and os.getenv == nil)
  check("require", require == nil)
  check("debug", debug == nil)
  check("loadstring", loadstring == nil and load == nil and loadfile == nil and dofile == nil)
  check("package", package == nil)
  check("ffi", not pcall(function() return require("ffi") end))
  check("setfenv", setfenv == nil and getfenv == nil)
  check("string.dump", string.dump == nil or not pcall(string.dump, _M.origin))
  -- methods on strings go through the same checked table; the raw one is out of reach
  check("string methods", getmetatable("") == false and ("x").dump == nil and ("ab"):upper() == "AB"
    and ("ab"):rep(2, ",") == "ab,ab")
  local t0 = gw.now()
  gw.sleep(0.05)
  check("gw.sleep", gw.now() - t0 >= 0.04)
  -- durations that are no number of seconds are refused, not cast (NaN to an integer is undefined)
  check("gw.sleep(NaN)", not pcall(gw.sleep, 0 / 0) and not pcall(gw.sleep, -1))
  check("gw.http timeout NaN", not pcall(gw.http.request, { url = "http://127.0.0.1:1/", timeout = 0 / 0 }))
  check("gw.now", type(gw.now()) == "number" and gw.now() > 1.6e9)
  gw.shared.calls = (gw.shared.calls or 0) + 1
  gw.log("info", "probe ran for", ctx.origin, "call", gw.shared.calls)
  check("ctx", ctx.scheme == "https" and ctx.host == "probe" .. gw.shared.calls .. ".test" and ctx.port == nil
    and ctx.method == "OPTIONS" and ctx.path == "/p/x" and ctx.route == "probe"
    and ctx.headers["access-control-request-method"] == "PUT")
  check("json", gw.json.decode(gw.json.encode({ a = { 1, 2 } })).a[2] == 2)
  if #failed > 0 then
    gw.log("warn", "probe failed: " .. table.concat(failed, ","))
    return false
  end
  return { allow = true, tenant = "calls-" .. gw.shared.calls }
end
return _M
]]

-- Busy for 30 ms, then sleeps 20 ms: the sleep is measured from when it was
-- asked for, not from when the worker's loop last read its clock.
local SLEEPER = [[
local _M = {}
function _M.origin(ctx)
  local t0 = gw.now()
  while gw.now() - t0 < 0.03 do end
  local t1 = gw.now()
  gw.sleep(0.02)
  gw.log("info", string.format("slept %.4f", gw.now() - t1))
  return true
end
return _M
]]

describe("plugin sandbox", function()
  local dir, gw

  lazy_setup(function()
    dir = proc.tmpdir("sandbox")
    proc.write_file(dir .. "/probe.lua", PROBE)
    proc.write_file(dir .. "/sleeper.lua", SLEEPER)
    gw = gateway.start({
      plugin_paths = { dir },
      routes = { { name = "probe", prefix = "/p", upstream = "echo",
        cors = { plugin = "probe", methods = { "PUT" } } },
        { name = "sleeper", prefix = "/z", upstream = "echo",
        cors = { plugin = "sleeper", methods = { "PUT" } } } },
    })
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    proc.rmdir_all(dir)
  end)

  it("gives hooks gw.sleep, gw.now, gw.log, gw.json, gw.shared and ctx, and nothing that blocks", function()
    for i = 1, 3 do
      local origin = "https://probe" .. i .. ".test"
      local res, err = http.request(gw:port(), "OPTIONS", "/p/x", { { "Origin", origin },
        { "Access-Control-Request-Method", "PUT" } })
      assert.truthy(res, err)
      if res.status ~= 204 then
        -- the log names the failed checks
        error("probe refused: " .. gw:log_tail(10))
      end
      assert.header(res, "access-control-allow-origin", origin)
    end
    local log = gw:log()
    assert.matches("probe ran for https://probe3%.test call 3", log)
  end)

  it("keeps the worker responsive while a hook sleeps", function()
    local c = assert(http.connect(gw:port(), { timeout = 5 }))
    c:send(http.build_request("OPTIONS", "/p/x", { { "Origin", "https://probe4.test" },
      { "Access-Control-Request-Method", "PUT" } }))
    -- while that hook sleeps 50 ms, other requests are answered at once
    local t0 = socket.gettime()
    local res = http.request(gw:port(), "GET", "/p/echo", {})
    assert.res_status(200, res, gw)
    assert.equal("/p/echo", cjson.decode(res.body).path)
    assert.is_true(socket.gettime() - t0 < 0.05)
    assert.res_status(204, c:read_response(), gw)
    c:close()
  end)

  it("sleeps as long as asked after the hook kept the worker busy", function()
    local res = http.request(gw:port(), "OPTIONS", "/z/x", { { "Origin", "https://sleeper.test" },
      { "Access-Control-Request-Method", "PUT" } })
    assert.res_status(204, res, gw)
    local slept = tonumber(gw:log():match("slept ([%d.]+)"))
    assert.truthy(slept, gw:log_tail(10))
    assert.is_true(slept >= 0.019, "gw.sleep(0.02) returned after " .. slept .. " s")
  end)
end)
