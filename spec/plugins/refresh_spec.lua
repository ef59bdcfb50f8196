-- A decision past its TTL is refreshed while it keeps serving (stale while
-- revalidate). A hook that never waits finishes during the request that
-- started the refresh: that request gets the new decision, and the old one
-- is freed only once nothing uses it (ASan found a use after free here with
-- scripts/fuzz fuzz_request).
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local socket = require("socket")
require("spec.support.assert")

describe("a stale decision refreshed by a hook that never waits", function()
  local dir, gw

  lazy_setup(function()
    dir = proc.tmpdir("refresh")
    proc.write_file(dir .. "/generations.lua", [[
local _M = {}
local n = 0
function _M.origin(ctx)
  n = n + 1
  return { allow = true, expose_headers = { "X-Gen-" .. n } } -- names go out lower case
end
return _M
]])
    gw = gateway.start({
      workers = 1,
      plugin_paths = { dir },
      routes = { { name = "app", prefix = "/", upstream = "echo", cors = { plugin = "generations", ttl = 1 } } },
    })
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    proc.rmdir_all(dir)
  end)

  local function get(origin)
    local res, err = http.request(gw:port(), "GET", "/x", { { "Origin", origin } })
    assert.truthy(res, err)
    assert.res_status(200, res)
    assert.header(res, "access-control-allow-origin", origin)
    return res.headers:get("access-control-expose-headers")
  end

  it("answers with the decision the refresh just made, then keeps it while fresh", function()
    local origin = "https://gen.example"
    assert.equal("x-gen-1", get(origin))
    assert.equal("x-gen-1", get(origin), "fresh: no hook run")
    socket.sleep(1.3)
    assert.equal("x-gen-2", get(origin), "stale: refreshed in place, the new decision served")
    assert.equal("x-gen-2", get(origin))
    -- and the worker is still whole: another origin, another decision
    assert.equal("x-gen-3", get("https://other.example"))
  end)
end)
