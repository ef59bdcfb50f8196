-- cg_cors_config_load: Lua tables in, compiled policy or path-named errors out.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local cors = require("cors_ffi")

local A = { "https://a.com" }
local refused = {
  { "an unknown key, with a suggestion", { origns = A }, 'routes[1].cors.origns: unknown key (did you mean "origins"?)' },
  { "an unknown key, far from any", { zzzzzzzz = 1, origins = A }, "routes[1].cors.zzzzzzzz: unknown key" },
  { "a list entry in the cors table", { "https://a.com" },
    "routes[1].cors: expected named fields (origins = ...), found a number key" },
  { "a string for a boolean", { origins = A, credentials = "yes" },
    "routes[1].cors.credentials: expected a boolean, got string" },
  { "a number for a boolean", { origins = A, allow_null_origin = 1 },
    "routes[1].cors.allow_null_origin: expected a boolean, got number" },
  { "a number for origins", { origins = 5 }, 'routes[1].cors.origins: expected "*" or a list of strings, got number' },
  { "one origin as a bare string", { origins = "https://a.com" },
    'routes[1].cors.origins: expected "*" or a list of strings, got the string "https://a.com"; write origins = { "https://a.com" }' },
  { "a number inside origins", { origins = { "https://a.com", 5 } },
    "routes[1].cors.origins[2]: expected a string, got number" },
  { "a map for origins", { origins = { first = "https://a.com" } },
    'routes[1].cors.origins: expected a list, found the key "first"' },
  { "a list with a hole", { origins = { [1] = "https://a.com", [3] = "https://b.com" } },
    "routes[1].cors.origins: expected a list without holes" },
  { 'a method as a bare string', { origins = A, methods = "PUT" },
    'routes[1].cors.methods: expected "*" or a list of strings, got the string "PUT"; write methods = { "PUT" }' },
  { "a string preflight_status", { origins = A, preflight_status = "200" },
    "routes[1].cors.preflight_status: expected 200 or 204, got string" },
  { "preflight_status 201", { origins = A, preflight_status = 201 },
    "routes[1].cors.preflight_status: expected 200 or 204 (the status of an allowed preflight), got 201" },
  { "a fractional preflight_status", { origins = A, preflight_status = 204.5 },
    "routes[1].cors.preflight_status: expected 200 or 204 (the status of an allowed preflight), got another number" },
  { "a table for origin_patterns entries", { origin_patterns = { {} } },
    "routes[1].cors.origin_patterns[1]: expected a string, got table" },
  { "a string max_age", { origins = A, max_age = "600" }, "routes[1].cors.max_age: expected a number of seconds, got string" },
  { "a fractional max_age", { origins = A, max_age = 1.5 }, "routes[1].cors.max_age: expected whole seconds, got 1.5" },
  { "a NUL byte in a string", { origins = { "https://a.com\0.evil.net" } }, "routes[1].cors.origins[1]: contains a NUL byte" },
  { "a compile error, with the prefix", { origins = { "bar.com" } },
    'routes[1].cors.origins[1]: "bar.com" has no scheme; write "https://bar.com"' },
  { "credentials with *", { origins = "*", credentials = true },
    'routes[1].cors.origins: "*" cannot be combined with credentials = true (browsers reject the answer); list the origins, or use origin_patterns' },
}

describe("cg_cors_config_load refuses", function()
  for _, c in ipairs(refused) do
    it(c[1], function()
      local p, d, rc = cors.config_load(c[2])
      assert.is_nil(p)
      assert.are.equal(cors.C.CG_CORS_E_INVALID, rc)
      assert.are.same({ c[3] }, d.errors)
    end)
  end

  it("a non-table", function()
    local p, d = cors.config_load("https://a.com", "routes[2].cors")
    assert.is_nil(p)
    assert.are.same({ "routes[2].cors: expected a table, got string" }, d.errors)
  end)

  it("reports type errors in a fixed order", function()
    local _, d = cors.config_load({ credentials = 1, origins = 1, max_age = "x", private_network = "y" })
    assert.are.same({
      'routes[1].cors.origins: expected "*" or a list of strings, got number',
      "routes[1].cors.credentials: expected a boolean, got number",
      "routes[1].cors.max_age: expected a number of seconds, got string",
      "routes[1].cors.private_network: expected a boolean, got string",
    }, d.errors)
  end)
end)

describe("cg_cors_config_load accepts", function()
  it("every field, and the policy behaves", function()
    local p, d, rc = cors.config_load({
      origins = { "https://a.com" }, origin_patterns = { "https://*.a.com:*" }, allow_null_origin = false,
      methods = { "GET", "PUT" }, headers = "*", expose_headers = { "X-Total" }, credentials = true, max_age = 600,
      private_network = true, preflight_continue = true, timing_allow_origin = true, allow_insecure_origins = false,
    }, "routes[4].cors")
    assert.are.same({ {}, {} }, { d.errors, d.warnings })
    assert.are.equal(0, rc)
    local r = cors.evaluate(p, { method = "OPTIONS", origin = "https://x.a.com:8443", acrm = "PUT",
      acrh = "X-A", acrpn = "true" })
    assert.are.equal("PREFLIGHT_ALLOWED", r.kind)
    assert.is_true(r.preflight_continue)
    assert.are.same({
      ["access-control-allow-origin"] = "https://x.a.com:8443", ["access-control-allow-credentials"] = "true",
      ["access-control-allow-methods"] = "GET, PUT", ["access-control-allow-headers"] = "x-a",
      ["access-control-max-age"] = "600", ["access-control-allow-private-network"] = "true",
    }, r.headers)
  end)

  it('origins = "*" and expose_headers = "*"', function()
    local p = cors.config_load({ origins = "*", expose_headers = "*" })
    local r = cors.evaluate(p, { origin = "https://x.com" })
    assert.are.same({ ["access-control-allow-origin"] = "*", ["access-control-expose-headers"] = "*" }, r.headers)
  end)

  -- the shapes configs ported from other systems bring
  local ported = {
    { 'methods = "*" with credentials', { origins = A, methods = "*", credentials = true },
      { acrm = "PATCH" }, { ["access-control-allow-origin"] = "https://a.com",
        ["access-control-allow-credentials"] = "true", ["access-control-allow-methods"] = "PATCH" } },
    { 'methods = { "*" }', { origins = A, methods = { "*" } },
      { acrm = "PURGE" }, { ["access-control-allow-origin"] = "https://a.com", ["access-control-allow-methods"] = "PURGE" } },
    { 'origins = { "*" }, headers = { "*" }', { origins = { "*" }, headers = { "*" } },
      { acrm = "GET", acrh = "X-A" }, { ["access-control-allow-origin"] = "*",
        ["access-control-allow-methods"] = "GET, HEAD, POST", ["access-control-allow-headers"] = "x-a" } },
    { 'headers = { "Authorization", "*" }', { origins = A, headers = { "Authorization", "*" }, credentials = true },
      { acrm = "GET", acrh = "Authorization, X-B" }, { ["access-control-allow-origin"] = "https://a.com",
        ["access-control-allow-credentials"] = "true", ["access-control-allow-methods"] = "GET, HEAD, POST",
        ["access-control-allow-headers"] = "authorization, x-b" } },
  }
  for _, c in ipairs(ported) do
    it(c[1], function()
      local p, d = cors.config_load(c[2])
      assert.are.same({ {}, {} }, { d.errors, d.warnings })
      local r = cors.evaluate(p, { method = "OPTIONS", origin = "https://a.com", acrm = c[3].acrm, acrh = c[3].acrh })
      assert.are.equal("PREFLIGHT_ALLOWED", r.kind)
      assert.are.same(c[4], r.headers)
    end)
  end

  it('expose_headers = { "*" }', function()
    local p = cors.config_load({ origins = A, expose_headers = { "*" } })
    local r = cors.evaluate(p, { origin = "https://a.com" })
    assert.are.equal("*", r.headers["access-control-expose-headers"])
  end)

  it("preflight_status = 200", function()
    local p = cors.config_load({ origins = A, preflight_status = 200 })
    assert.are.equal(200, cors.evaluate(p, { method = "OPTIONS", origin = "https://a.com", acrm = "GET" }).status)
  end)

  it("passes warnings through with the path", function()
    local p, d = cors.config_load({ origins = { "HTTPS://A.COM" }, max_age = 86400 }, "routes[2].cors")
    assert.is_not_nil(p)
    assert.are.same({
      'routes[2].cors.origins[1]: "HTTPS://A.COM" normalized to "https://a.com"',
      "routes[2].cors.max_age: 86400 exceeds Chromium's cap of 7200 seconds (Firefox caps at 86400); browsers use the smaller value",
    }, d.warnings)
  end)

  it("an empty list of origins (with its warning)", function()
    local p, d = cors.config_load({ origins = {} })
    assert.is_not_nil(p)
    assert.are.equal(1, #d.warnings)
  end)

  it("ignores metatables: raw reads only", function()
    local t = setmetatable({ origins = A }, { __index = function() error("metamethod ran") end })
    local p, d = cors.config_load(t)
    assert.is_not_nil(p)
    assert.are.same({}, d.errors)
  end)
end)
