-- Finding and loading plugins: plugin_paths before the shipped plugins/, and
-- every problem refused at load with the path of the field.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
require("spec.support.assert")

describe("plugin loading", function()
  local dir

  lazy_setup(function()
    dir = proc.tmpdir("plugins")
    -- same name as a shipped plugin: the user's copy must win
    proc.write_file(dir .. "/expose_by_tenant.lua",
      "local _M = {}\nfunction _M.origin(ctx) return { allow = true, tenant = 'mine' } end\nreturn _M\n")
    proc.write_file(dir .. "/syntax.lua", "local _M = {\nreturn _M\n")
    proc.write_file(dir .. "/nohook.lua", "return { expose_headers = function() end }\n")
    proc.write_file(dir .. "/needs.lua", [[
local _M = {}
_M.schema = { base_url = { type = "string", required = true }, retries = { type = "number", default = 2 } }
function _M.origin(ctx) return true end
return _M
]])
  end)

  lazy_teardown(function() proc.rmdir_all(dir) end)

  local function route(cors)
    return { plugin_paths = { dir }, routes = { { name = "r", prefix = "/", upstream = "echo", cors = cors } } }
  end

  it("searches plugin_paths before the shipped plugins", function()
    local gw = gateway.start(route({ plugin = "expose_by_tenant" }))
    -- the shipped expose_by_tenant would need plugin_config.tenants and deny this origin
    local res, err = http.request(gw:port(), "GET", "/x", { { "Origin", "https://anyone.test" } })
    assert.res_status(200, res, err or gw)
    assert.header(res, "access-control-allow-origin", "https://anyone.test")
    gw:stop_clean()
  end)

  it("finds the shipped plugins without plugin_paths", function()
    local code, out = gateway.check({ routes = { { name = "r", prefix = "/", upstream = "echo",
      cors = { plugin = "tenant_registry", plugin_config = { base_url = "http://127.0.0.1:9" } } } } })
    assert.equal(0, code, out)
  end)

  local refusals = {
    { "an unknown plugin", { plugin = "nope" }, 'routes%[1%]%.cors%.plugin: no plugin "nope" in plugin_paths or the shipped plugins' },
    { "a plugin name that is a path", { plugin = "../etc/x" }, "routes%[1%]%.cors%.plugin: no plugin" },
    { "a plugin that does not compile", { plugin = "syntax" }, "routes%[1%]%.cors%.plugin: .*syntax%.lua" },
    { "a plugin without an origin hook", { plugin = "nohook" }, "routes%[1%]%.cors%.plugin: .*needs an origin%(ctx%) hook" },
    { "plugin_config missing a required field", { plugin = "needs" }, "routes%[1%]%.cors%.plugin_config%.base_url: required" },
    { "plugin_config with a wrong type", { plugin = "needs", plugin_config = { base_url = 1 } },
      "routes%[1%]%.cors%.plugin_config%.base_url: expected a string, got number" },
    { "plugin_config with an unknown key", { plugin = "needs", plugin_config = { base_url = "x", retry = 1 } },
      "routes%[1%]%.cors%.plugin_config%.retry: unknown key" },
    { "origins next to a plugin", { plugin = "needs", plugin_config = { base_url = "x" }, origins = { "https://a.test" } },
      "routes%[1%]%.cors%.origins: the route's plugin decides every origin" },
    { "plugin settings without a plugin", { ttl = 5, origins = { "https://a.test" } },
      'routes%[1%]%.cors%.ttl: only meaningful with plugin = "NAME"' },
    { "a shipped plugin's own check", { plugin = "tenant_registry", plugin_config = { base_url = "http://x/path" } },
      "routes%[1%]%.cors%.plugin_config%.base_url: expected http://host:port, no path" },
  }
  for _, case in ipairs(refusals) do
    it("refuses " .. case[1] .. " at load, naming the field", function()
      local code, out = gateway.check(route(case[2]))
      assert.equal(2, code, out)
      assert.matches(case[3], out)
    end)
  end

  it("does not start with a refused plugin", function()
    local gw = gateway.start(route({ plugin = "nope" }), { wait = false })
    assert.equal(2, gw:wait_exit(5))
    assert.matches('no plugin "nope"', gw:log())
    gw:cleanup()
  end)
end)
