-- The shapes of a decision a plugin returns that refine its route's fields:
-- methods = "*" (and { "*" }) echo the method asked for, as on a route, and
-- still refuse CONNECT, TRACE and TRACK.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
require("spec.support.assert")

local PLUGIN = [[
local _M = {}
function _M.origin(ctx)
  if ctx.host == "any.test" then return { allow = true, methods = "*", credentials = true } end
  if ctx.host == "list.test" then return { allow = true, methods = { "*" }, headers = { "Authorization", "*" } } end
  return { allow = true }
end
return _M
]]

describe("a plugin's decision", function()
  local dir, gw

  lazy_setup(function()
    dir = proc.tmpdir("decision")
    proc.write_file(dir .. "/shapes.lua", PLUGIN)
    gw = gateway.start({
      plugin_paths = { dir },
      routes = { { name = "p", prefix = "/", upstream = "echo", cors = { plugin = "shapes", methods = { "GET" } } } },
    })
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    proc.rmdir_all(dir)
  end)

  local function preflight(origin, method, acrh)
    local hs = { { "Origin", origin }, { "Access-Control-Request-Method", method } }
    if acrh then hs[#hs + 1] = { "Access-Control-Request-Headers", acrh } end
    local res, err = http.request(gw:port(), "OPTIONS", "/x", hs)
    assert.truthy(res, err)
    return res
  end

  it('with methods = "*" echoes the method, with credentials', function()
    local res = preflight("https://any.test", "PATCH")
    assert.res_status(204, res, gw)
    assert.header(res, "access-control-allow-methods", "PATCH")
    assert.header(res, "access-control-allow-credentials", "true")
  end)

  it('with methods = { "*" } and headers = { "Authorization", "*" } echoes both', function()
    local res = preflight("https://list.test", "DELETE", "Authorization, X-Any")
    assert.res_status(204, res, gw)
    assert.header(res, "access-control-allow-methods", "DELETE")
    assert.header(res, "access-control-allow-headers", "authorization, x-any")
  end)

  it('with methods = "*" still refuses TRACE', function()
    assert.res_status(403, preflight("https://any.test", "TRACE"), gw)
  end)

  it("without methods keeps the route's", function()
    assert.res_status(403, preflight("https://plain.test", "PATCH"), gw)
    local res = preflight("https://plain.test", "GET")
    assert.res_status(204, res, gw)
    assert.header(res, "access-control-allow-methods", "GET")
  end)
end)
