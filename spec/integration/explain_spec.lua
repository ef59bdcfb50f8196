-- `corsgate explain`: the on-call answer to "the browser says CORS error":
-- each step of the decision, the exact headers, and an exit code scripts can
-- use (0: the page can read the response, 1: the browser blocks it).
local gateway = require("spec.support.gateway")
local proc = require("spec.support.proc")
local cjson = require("cjson.safe")

local PLUGIN = [[
local _M = {}
_M.schema = { domain = { type = "string", required = true } }
function _M.origin(ctx)
  if ctx.host == "broken." .. ctx.config.domain then error("tenant lookup exploded") end
  local tenant = ctx.host:match("^([%w-]+)%." .. ctx.config.domain:gsub("%.", "%%.") .. "$")
  if not tenant then return false end
  return { allow = true, tenant = tenant, expose_headers = { "X-Tenant" }, ttl = 42 }
end
return _M
]]

describe("corsgate explain", function()
  local dir, cfg

  lazy_setup(function()
    dir = proc.tmpdir("explain")
    proc.write_file(dir .. "/by_domain.lua", PLUGIN)
    cfg = gateway.write_config(dir, {
      plugin_paths = { dir },
      routes = {
        { name = "api", host = "api.example.com", prefix = "/v1", upstream = "echo",
          cors = { origins = { "https://app.example.com" }, origin_patterns = { "https://*.example.org" },
            methods = { "GET", "PUT" }, headers = { "X-Req" }, credentials = true, max_age = 600 } },
        { name = "tenants", prefix = "/t", upstream = "echo",
          cors = { plugin = "by_domain", plugin_config = { domain = "example.net" }, methods = { "PATCH" } } },
        { name = "plain", prefix = "/plain", upstream = "echo" },
      },
    })
  end)

  lazy_teardown(function() proc.rmdir_all(dir) end)

  local function explain(...)
    return gateway.cli({ "explain", "-c", cfg, ... })
  end

  it("walks an allowed preflight: route, normalized origin, rule, 204 and its headers", function()
    local code, out = explain("--origin", "https://APP.example.com:443", "--method", "PUT", "--header", "X-Req",
      "--host", "api.example.com", "--path", "/v1/things")
    assert.equal(0, code, out)
    assert.matches('route%s+routes%[1%] "api"', out)
    assert.matches("origin%s+https://app%.example%.com %(normalized", out)
    assert.matches('decided by%s+static policy: origins entry "https://app%.example%.com"', out)
    assert.matches("preflight%s+needed %(the method is not safelisted%)", out)
    assert.matches("allowed: 204 from corsgate, not forwarded", out)
    assert.matches("Access%-Control%-Allow%-Methods: GET, PUT\n", out)
    assert.matches("Access%-Control%-Allow%-Headers: x%-req\n", out)
    assert.matches("Access%-Control%-Max%-Age: 600\n", out)
    assert.matches("Access%-Control%-Allow%-Credentials: true\n", out)
    assert.matches("verdict%s+the page can read the response", out)
  end)

  it("names the pattern that allowed an origin", function()
    local code, out = explain("--origin", "https://a.b.example.org", "--host", "api.example.com", "--path", "/v1")
    assert.equal(0, code, out)
    assert.matches('origin_patterns entry "https://%*%.example%.org"', out)
    assert.matches("preflight%s+not needed", out)
  end)

  it("says which method failed, and that the request is never sent", function()
    local code, out = explain("--origin", "https://app.example.com", "--method", "DELETE", "--host",
      "api.example.com", "--path", "/v1/x")
    assert.equal(1, code, out)
    assert.matches('REFUSED, the method is not in methods %("DELETE"%): 403 from corsgate, not forwarded', out)
    assert.matches("request%s+not sent", out)
    assert.matches('verdict%s+the browser blocks it', out)
  end)

  it("says which header failed", function()
    local code, out = explain("--origin", "https://app.example.com", "--header", "X-Other", "--host",
      "api.example.com", "--path", "/v1/x")
    assert.equal(1, code, out)
    assert.matches('the header is not in headers %("X%-Other"%)', out)
  end)

  it("lists every problem: the method and each refused header", function()
    local code, out = explain("--origin", "https://app.example.com", "--method", "DELETE", "--header", "X-Req",
      "--header", "X-One", "--header", "X-Two", "--host", "api.example.com", "--path", "/v1/x")
    assert.equal(1, code, out)
    assert.matches("REFUSED for 3 reasons: 403 from corsgate, not forwarded\n"
      .. '%s+%- the method is not in methods %("DELETE"%)\n'
      .. '%s+%- the header is not in headers %("X%-One"%)\n'
      .. '%s+%- the header is not in headers %("X%-Two"%)\n', out)
    code, out = explain("--origin", "https://app.example.com", "--method", "DELETE", "--header", "X-One",
      "--host", "api.example.com", "--path", "/v1/x", "--json")
    local j = assert(cjson.decode(out), out)
    assert.same({ { result = "refused-method", detail = "the method is not in methods", arg = "DELETE" },
      { result = "refused-header", detail = "the header is not in headers", arg = "X-One" } }, j.preflight.problems)
    -- the first one stays where tools read it before
    assert.same({ "refused-method", "DELETE" }, { j.preflight.result, j.preflight.detail_arg })
  end)

  it("shows what a debug route answers a refused method: the status and headers the browser needs", function()
    local dcfg = gateway.write_config(dir, { listen = "127.0.0.1:1", routes = {
      { name = "dev", prefix = "/", upstream = "echo", debug = true,
        cors = { origins = { "https://app.example.com" }, methods = { "PUT" }, preflight_status = 200 } } } }, "debug.lua")
    local code, out = gateway.cli({ "explain", "-c", dcfg, "--origin", "https://app.example.com", "--method", "PATCH" })
    assert.equal(1, code, out)
    assert.matches('REFUSED, the method is not in methods %("PATCH"%): 200 from corsgate %(debug', out)
    assert.matches("Access%-Control%-Allow%-Origin: https://app%.example%.com\n%s+Access%-Control%-Allow%-Methods: PUT\n", out)
  end)

  it("treats a safelisted Content-Type as needing no preflight, and JSON as needing one", function()
    local _, out = explain("--origin", "https://app.example.com", "--method", "POST", "--header",
      "Content-Type: text/plain", "--host", "api.example.com", "--path", "/v1/x")
    assert.matches("preflight%s+not needed", out)
    _, out = explain("--origin", "https://app.example.com", "--method", "POST", "--header",
      "Content-Type: application/json", "--host", "api.example.com", "--path", "/v1/x")
    assert.matches("preflight%s+needed %(a header is not safelisted%)", out)
  end)

  it("refuses a malformed origin and says why", function()
    local code, out = explain("--origin", "https://app.example.com/", "--host", "api.example.com", "--path", "/v1")
    assert.equal(1, code, out)
    assert.matches("origin%s+malformed %(", out)
    assert.falsy(out:find("Access-Control-Allow-Origin", 1, true), out)
  end)

  it("says when no route matches, or the route does no CORS", function()
    local code, out = explain("--origin", "https://app.example.com", "--path", "/nowhere")
    assert.equal(1, code, out)
    assert.matches("route%s+none matches", out)
    code, out = explain("--origin", "https://app.example.com", "--path", "/plain")
    assert.equal(1, code, out)
    assert.matches("the route has no cors", out)
  end)

  it("runs the route's plugin for real and shows its decision", function()
    local code, out = explain("--origin", "https://acme.example.net", "--path", "/t/x")
    assert.equal(0, code, out)
    assert.matches("decided by%s+plugin by_domain: allowed, tenant acme, refining the route's fields, cached 42s", out)
    assert.matches("Access%-Control%-Expose%-Headers: x%-tenant\n", out)
    code, out = explain("--origin", "https://evil.example.com", "--path", "/t/x")
    assert.equal(1, code, out)
    assert.matches("plugin by_domain: denied", out)
  end)

  it("shows a failing plugin as a denial, with its error", function()
    local code, out = explain("--origin", "https://broken.example.net", "--path", "/t/x")
    assert.equal(1, code, out)
    assert.matches("plugin by_domain: FAILED %(.*tenant lookup exploded.*%): the origin is denied", out)
  end)

  it("prints the same as JSON with --json", function()
    local code, out = explain("--origin", "https://acme.example.net", "--method", "PATCH", "--path", "/t/x", "--json")
    assert.equal(0, code, out)
    local j = assert(cjson.decode(out), out)
    assert.equal("tenants", j.route.name)
    assert.equal("https://acme.example.net", j.origin.normalized)
    assert.same({ kind = "plugin", plugin = "by_domain", allow = true, tenant = "acme", ttl = 42 },
      { kind = j.decided_by.kind, plugin = j.decided_by.plugin, allow = j.decided_by.allow,
        tenant = j.decided_by.tenant, ttl = j.decided_by.ttl })
    assert.equal(204, j.preflight.status)
    assert.is_false(j.preflight.forwarded)
    local h = {}
    for _, pair in ipairs(j.preflight.headers) do h[pair[1]] = pair[2] end
    assert.equal("https://acme.example.net", h["Access-Control-Allow-Origin"])
    assert.equal("PATCH", h["Access-Control-Allow-Methods"])
    assert.is_true(j.allowed)
  end)

  it("requires -c and --origin", function()
    local code, out = gateway.cli({ "explain", "-c", cfg })
    assert.equal(2, code)
    assert.matches("%-%-origin ORIGIN is required", out)
  end)
end)
