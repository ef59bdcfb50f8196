-- `debug = true` on a route: a refused preflight carries X-Corsgate-Reason,
-- which the browser's network panel shows (a preflight's body it never shows),
-- and one refused for its method or a header from an allowed origin is
-- answered so that the browser's console names that method or header: the
-- allowed status with Allow-Origin and the Allow lists, which pass the CORS
-- check and fail the method or header check. Off by default: production
-- answers do not explain themselves to every origin.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local metric = require("spec.support.metrics").value
require("spec.support.assert")

describe("debug reason header", function()
  local gw, admin_port

  lazy_setup(function()
    admin_port = proc.free_port()
    gw = gateway.start({ admin = { listen = "127.0.0.1:" .. admin_port }, routes = {
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
    assert.res_status(204, res)
    assert.matches('method.*"DELETE"', res.headers:get("x-corsgate-reason"))
    res = preflight("/dev/x", "https://app.example", "PUT", "x-req, x-other")
    assert.res_status(204, res)
    assert.matches('"x%-other"', res.headers:get("x-corsgate-reason"))
  end)

  it("answers a refused method or header with what the browser needs to name it", function()
    for _, case in ipairs({ { "DELETE" }, { "PUT", "x-req, x-other" } }) do
      local res = preflight("/dev/x", "https://app.example", case[1], case[2])
      assert.res_status(204, res)
      assert.header(res, "access-control-allow-origin", "https://app.example")
      assert.header(res, "access-control-allow-methods", "GET, PUT")
      assert.header(res, "access-control-allow-headers", "x-req")
      assert.no_header(res, "access-control-max-age") -- nothing for the browser to keep
      assert.matches("Access%-Control%-Request%-Method", res.headers:get("vary"))
      assert.equal("", res.body)
    end
  end)

  it("gives a refused origin no Access-Control-Allow-* header, debug or not", function()
    for _, path in ipairs({ "/dev/x", "/prod/x" }) do
      local res = preflight(path, "https://evil.example", "DELETE", "x-other")
      assert.res_status(403, res)
      for _, name in ipairs(res.headers:names()) do
        assert.falsy(name:match("^access%-control%-allow"), path .. ": " .. name)
      end
    end
  end)

  it("counts a named refusal as refused, under the status it was answered with", function()
    local function metrics() return assert(http.request(admin_port, "GET", "/metrics", {})).body end
    local before = metrics()
    assert.res_status(204, preflight("/dev/x", "https://app.example", "PATCH"))
    local after = metrics()
    local function delta(name, labels) return metric(after, name, labels) - metric(before, name, labels) end
    assert.equal(1, delta("corsgate_cors_decisions_total", '{route="dev",result="refused-method",tenant=""}'))
    assert.equal(1, delta("corsgate_preflights_total", '{route="dev",status="204",result="refused"}'))
    assert.equal(0, delta("corsgate_preflights_total", '{route="dev",status="204",result="allowed"}'))
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
