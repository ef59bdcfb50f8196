-- What a hook's ctx holds of its request, whether the hook waits or not, and
-- that hook runs sharing a worker (coroutines are reused) see only their own.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
require("spec.support.assert")
local cjson = require("cjson")

local SEER = [[
local _M = {}
local kept, held
function _M.origin(ctx)
  local host = ctx.host
  if host == "keep.test" then kept = ctx return true end
  if host == "hold.test" then
    held = ctx
    gw.sleep(0.3)
    gw.log("info", "held own " .. tostring(ctx.headers["x-probe"]))
    return true
  end
  if host == "peek.test" then
    gw.log("info", "peeked " .. gw.json.encode(held.headers) .. " meta " .. tostring(getmetatable(held)))
    return true
  end
  if host == "kept.test" then
    gw.log("info", "kept " .. gw.json.encode(kept.headers) .. " own " .. tostring(ctx.headers["x-probe"]))
    return true
  end
  if host:match("^fail") then error("planned failure") end
  if host:match("^wait") then gw.sleep(0.02) end
  gw.log("info", "saw " .. host .. " " .. gw.json.encode(ctx.headers))
  return true
end
return _M
]]

describe("plugin ctx", function()
  local dir, gw

  lazy_setup(function()
    dir = proc.tmpdir("ctx")
    proc.write_file(dir .. "/seer.lua", SEER)
    gw = gateway.start({
      plugin_paths = { dir },
      routes = { { name = "seer", prefix = "/s", upstream = "echo",
        cors = { plugin = "seer", methods = { "PUT" } } } },
    })
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    proc.rmdir_all(dir)
  end)

  local function preflight(origin, extra)
    local hs = { { "Origin", origin }, { "Access-Control-Request-Method", "PUT" } }
    for _, h in ipairs(extra or {}) do hs[#hs + 1] = h end
    local res, err = http.request(gw:port(), "OPTIONS", "/s/x", hs)
    assert.truthy(res, err)
    return res
  end

  local function seen(host)
    local json = gw:log():match("saw " .. host:gsub("%.", "%%.") .. " ([^\n]*)")
    assert.truthy(json, "no log line for " .. host .. ":\n" .. gw:log_tail(20))
    return cjson.decode(json)
  end

  for _, host in ipairs({ "now.test", "wait.test" }) do
    it("gives ctx.headers with lower-case names and repeats joined (" .. host .. ")", function()
      assert.res_status(204, preflight("https://" .. host, {
        { "X-Probe", "a" }, { "x-PROBE", "b" }, { "X-Other", "Mixed Case" } }), gw)
      local h = seen(host)
      assert.equal("a, b", h["x-probe"])
      assert.equal("Mixed Case", h["x-other"])
      assert.equal("https://" .. host, h.origin)
      assert.equal("PUT", h["access-control-request-method"])
      assert.is_nil(h["X-Probe"])
    end)
  end

  it("reads none of a later request's headers through a ctx kept from an earlier run", function()
    assert.res_status(204, preflight("https://keep.test", { { "X-Probe", "1" } }), gw)
    assert.res_status(204, preflight("https://kept.test", { { "X-Probe", "2" } }), gw)
    assert.matches("kept {} own 2", gw:log(), 1, true)
  end)

  it("leaves a waiting hook its headers when another hook reads its ctx first", function()
    local c = assert(http.connect(gw:port()))
    c:send("OPTIONS /s/x HTTP/1.1\r\nHost: x\r\nOrigin: https://hold.test\r\n" ..
      "Access-Control-Request-Method: PUT\r\nX-Probe: mine\r\n\r\n")
    proc.sleep(0.1) -- the hold hook is asleep in gw.sleep by now
    assert.res_status(204, preflight("https://peek.test", { { "X-Probe", "other" } }), gw)
    local res = c:read_response()
    c:close()
    assert.res_status(204, res, gw)
    -- the other hook reads nothing of it, nor the metatable every ctx shares
    assert.matches("peeked {} meta false", gw:log(), 1, true)
    assert.matches("held own mine", gw:log(), 1, true)
  end)

  it("runs each hook on a clean coroutine after failed, waiting and quick ones", function()
    local plan = { "fail1", "q1", "wait1", "fail2", "wait2", "q2", "fail3", "q3" }
    for i, name in ipairs(plan) do
      local res = preflight("https://" .. name .. ".test", { { "X-Probe", tostring(i) } })
      if name:match("^fail") then
        assert.res_status(403, res, gw)
      else
        assert.res_status(204, res, gw)
        assert.equal(tostring(i), seen(name .. ".test")["x-probe"])
      end
    end
    assert.matches("planned failure", gw:log(), 1, true)
  end)
end)
