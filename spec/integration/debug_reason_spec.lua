-- `debug = true` on a route: a refused preflight carries X-Corsgate-Reason,
-- which the browser's network panel shows (a preflight's body it never shows).
-- Off by default: production answers do not explain themselves to every origin.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
require("spec.support.assert")

describe("debug reason header", function()
  local gw

  lazy_setup(function()
    gw = gateway.start({ routes = {
      { name = "dev", prefix = "/dev", upstream = "echo", debug = true,
        cors = { origins = { "https://app.example" }, methods = { "GET", "PUT" }, headers = { "X-Req" } } },
      { name = "prod", prefix = "/prod", upstream = "echo",
        cors = { origins = { "https://app.example" }, methods = { "GET", "PUT" } } },
    } })
  end)

  lazy_teardown(function() if gw then gw:stop_clean() end end)

  local function preflight(path, origin, method, headers)
    local h = { { "Origin", origin }, { "Access-Control-Request-Method", method } }
    if headers then h[#h + 1] = { "Access-Control-Request-Headers", headers } end
    local res, err = http.request(gw:port(), "OPTIONS", path, h)
    assert.truthy(res, err)
    return res
  end

  it("says which origin, method or header was refused", function()
    local res = preflight("/dev/x", "https://evil.example", "GET")
    assert.res_status(403, res)
    assert.matches("origin", res.headers:get("x-corsgate-reason"))
    res = preflight("/dev/x", "https://app.example", "DELETE")
    assert.res_status(403, res)
    assert.matches('method.*"DELETE"', res.headers:get("x-corsgate-reason"))
    res = preflight("/dev/x", "https://app.example", "PUT", "x-req, x-other")
    assert.res_status(403, res)
    assert.matches('"x%-other"', res.headers:get("x-corsgate-reason"))
  end)

  it("is absent from allowed preflights and from routes without debug", function()
    assert.no_header(preflight("/dev/x", "https://app.example", "PUT"), "x-corsgate-reason")
    local res = preflight("/prod/x", "https://app.example", "DELETE")
    assert.res_status(403, res)
    assert.no_header(res, "x-corsgate-reason")
  end)

  it("sends every refused preflight a JSON body with its own reason, without the offending bytes", function()
    local cjson = require("cjson")
    local cases = {
      { "https://evil.example", "GET", nil, "CORS preflight refused: the origin is not in origins or origin_patterns" },
      { "https://app.example", "DELETE", nil, "CORS preflight refused: the method is not in methods" },
      { "https://app.example", "PUT", "x-other", "CORS preflight refused: the header is not in headers" },
    }
    -- twice round, so a reason's second body comes from the one rendered first
    for round = 1, 2 do
      for _, case in ipairs(cases) do
        local res = preflight("/prod/x", case[1], case[2], case[3])
        assert.res_status(403, res)
        assert.equal("application/json", res.headers:get("content-type"))
        assert.equal(tostring(#res.body), res.headers:get("content-length"))
        local doc = cjson.decode(res.body)
        assert.same({ error = case[4], status = 403 }, doc, "round " .. round)
      end
    end
  end)
end)
