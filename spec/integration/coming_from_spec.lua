-- "Coming from ...": each config under spec/examples/coming_from/ maps another
-- system's CORS options onto corsgate (README, "Coming from other systems").
-- Each is checked as it is written, started, and sent the preflight its
-- original would answer: what the browser reads must be what the original
-- promised.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
require("spec.support.assert")

local root = os.getenv("CORSGATE_ROOT") or "."
local DIR = root .. "/spec/examples/coming_from/"

local ACAO, ACAC = "access-control-allow-origin", "access-control-allow-credentials"
local ACAM, ACAH, ACMA = "access-control-allow-methods", "access-control-allow-headers", "access-control-max-age"

local cases = {
  { "express", "/api/items", "https://app.example.com", "PATCH", "content-type, authorization", 200,
    { [ACAO] = "https://app.example.com", [ACAC] = "true", [ACAM] = "GET, PUT, PATCH, DELETE",
      [ACAH] = "content-type, authorization", [ACMA] = "600" } },
  { "flask", "/api/reports", "https://eu.example.org", "PATCH", "X-Custom", 204,
    { [ACAO] = "https://eu.example.org", [ACAC] = "true", [ACAM] = "GET, POST, PATCH", [ACAH] = "x-custom",
      [ACMA] = "3600" } },
  { "aspnet", "/orders", "https://shop.example.com", "PATCH", "X-Anything, Authorization", 204,
    { [ACAO] = "https://shop.example.com", [ACAC] = "true", [ACAM] = "PATCH", [ACAH] = "x-anything, authorization",
      [ACMA] = "600" } },
  { "spring", "/users/7", "http://localhost:5173", "DELETE", "Authorization", 204,
    { [ACAO] = "http://localhost:5173", [ACAC] = "true", [ACAM] = "DELETE", [ACAH] = "authorization",
      [ACMA] = "1800" } },
  { "kong", "/things", "https://admin.example.com", "PUT", "Authorization", 200,
    { [ACAO] = "https://admin.example.com", [ACAC] = "true", [ACAM] = "GET, POST, PUT, DELETE",
      [ACAH] = "authorization, content-type", [ACMA] = "3600" } },
  { "nginx", "/api/search", "https://anyone.example", "POST", "Authorization, X-Trace", 204,
    { [ACAO] = "*", [ACAM] = "GET, POST", [ACAH] = "authorization, x-trace", [ACMA] = "7200" } },
}

-- what each example refuses, which its original would have allowed or answered differently
local refusals = {
  { "express", "/api/items", "https://evil.example", "PUT" },
  { "flask", "/api/reports", "https://example.org", "GET" }, -- the regex never matched the apex either
  { "kong", "/things", "https://admin.example.com", "TRACE" },
  { "spring", "/users/7", "https://localhost:5173", "GET" },
}

local function start(name)
  local port = proc.free_port()
  return gateway.start_file(DIR .. name .. ".lua", { ['listen = "127.0.0.1:8080"'] = 'listen = "127.0.0.1:' .. port .. '"',
    port = port })
end

describe("coming from another system", function()
  local gws = {}
  lazy_teardown(function()
    for _, gw in pairs(gws) do gw:stop_clean() end
  end)

  local function gw_for(name)
    gws[name] = gws[name] or start(name)
    return gws[name]
  end

  for _, c in ipairs(cases) do
    local name, path, origin, method, acrh, status, want = c[1], c[2], c[3], c[4], c[5], c[6], c[7]
    it(name .. ".lua passes corsgate check without a warning", function()
      local code, out = gateway.cli({ "check", "-c", DIR .. name .. ".lua" })
      assert.equal(0, code, out)
      assert.matches(": ok\n$", out)
    end)

    it(name .. ".lua answers its preflight as the original did", function()
      local gw = gw_for(name)
      local res, err = http.request(gw:port(), "OPTIONS", path, { { "Origin", origin },
        { "Access-Control-Request-Method", method }, { "Access-Control-Request-Headers", acrh } })
      assert.res_status(status, res, err or gw)
      local got = {}
      for _, h in ipairs(res.headers) do
        local n = h.name:lower()
        if n:match("^access%-control%-") then
          assert.is_nil(got[n], "repeated " .. n)
          got[n] = h.value
        end
      end
      assert.same(want, got)
      assert.matches("Access%-Control%-Request%-Method", res.headers:get("vary") or "")
      if status == 200 then assert.header(res, "content-length", "0") end
    end)
  end

  for _, c in ipairs(refusals) do
    it(c[1] .. ".lua refuses " .. c[4] .. " from " .. c[3], function()
      local gw = gw_for(c[1])
      local res, err = http.request(gw:port(), "OPTIONS", c[2], { { "Origin", c[3] },
        { "Access-Control-Request-Method", c[4] } })
      assert.res_status(403, res, err or gw)
      assert.no_header(res, ACAO)
    end)
  end
end)
