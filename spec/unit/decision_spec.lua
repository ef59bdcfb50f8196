-- Plugin decisions: a route whose plugin decides origins, and the override a
-- decision compiles to -- checked like config, answered like a policy, echoed
-- never "*".
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local cors = require("cors_ffi")
local ffi = require("ffi")

local VPO = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network"

local base_t = { origins_by_plugin = true, methods = { "GET", "PUT" }, headers = { "X-Req" },
  expose_headers = { "X-Total" }, max_age = 600 }
local base = cors.must_compile(base_t)
local cred = cors.must_compile({ origins_by_plugin = true, credentials = true, methods = { "DELETE" } })

local function pf(origin, method, acrh)
  return { method = "OPTIONS", origin = origin, acrm = method, acrh = acrh }
end

local function must(policy, t, origin)
  local ov, diags = cors.decision(policy, t, origin)
  if not ov then error("decision refused: " .. table.concat(diags.errors, "; "), 2) end
  return ov
end

describe("a route whose plugin decides origins", function()
  it("compiles without origins and without the 'every request is refused' warning", function()
    local p, diags = cors.compile(base_t)
    assert.truthy(p)
    assert.are.same({}, diags.warnings)
  end)

  it("refuses static origins next to the plugin, naming the field", function()
    local p, diags = cors.compile({ origins_by_plugin = true, origins = { "https://a.com" } }, "routes[2].cors")
    assert.is_nil(p)
    assert.matches("^routes%[2%]%.cors%.origins: the route's plugin decides every origin", diags.errors[1])
    p, diags = cors.compile({ origins_by_plugin = true, origin_patterns = { "https://*.a.com" } }, "cors")
    assert.is_nil(p)
    assert.matches("^cors%.origin_patterns:", diags.errors[1])
  end)

  it("refuses every origin while no decision is passed", function()
    local r = cors.evaluate(base, pf("https://a.com", "PUT"))
    assert.are.same({ "PREFLIGHT_REFUSED", "REFUSED_ORIGIN" }, { r.kind, r.reason })
    assert.are.equal("", r.raw)
    assert.are.equal(VPO, r.vary)
  end)
end)

describe("cg_cors_evaluate with a decision", function()
  it("allows with the route's answer on a plain allow, echoing the origin", function()
    local ov = must(base, { allow = true }, "https://t1.example.net")
    local r = cors.evaluate(base, pf("https://t1.example.net", "PUT", "x-req"), nil, ov)
    assert.are.equal("PREFLIGHT_ALLOWED", r.kind)
    assert.are.same({ "Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
      "Access-Control-Max-Age" }, r.order)
    assert.are.equal("https://t1.example.net", r.headers["access-control-allow-origin"])
    assert.are.equal("GET, PUT", r.headers["access-control-allow-methods"])
    assert.are.equal("x-req", r.headers["access-control-allow-headers"])
    assert.are.equal("600", r.headers["access-control-max-age"])
    assert.are.equal(VPO, r.vary)
    local a = cors.evaluate(base, { method = "GET", origin = "https://t1.example.net" }, nil, ov)
    assert.are.equal("ACTUAL_ALLOWED", a.kind)
    assert.are.equal("x-total", a.headers["access-control-expose-headers"])
    assert.are.equal("Origin", a.vary)
  end)

  it("says a plain allow needs no override of its own", function()
    local _, _, plain = cors.decision(base, { allow = true })
    assert.is_true(plain)
    _, _, plain = cors.decision(base, { allow = true, max_age = 5 })
    assert.is_false(plain)
  end)

  it("refuses on a denial and sends nothing", function()
    local ov = must(base, { allow = false })
    local r = cors.evaluate(base, pf("https://t1.example.net", "PUT"), nil, ov)
    assert.are.same({ "PREFLIGHT_REFUSED", "REFUSED_ORIGIN", "" }, { r.kind, r.reason, r.raw })
    assert.matches("plugin refused", r.detail)
    local a = cors.evaluate(base, { method = "GET", origin = "https://t1.example.net" }, nil, ov)
    assert.are.same({ "ACTUAL_REFUSED", "", "Origin" }, { a.kind, a.raw, a.vary })
  end)

  it("still refuses a malformed origin, whatever the decision", function()
    local ov = must(base, { allow = true })
    local r = cors.evaluate(base, pf("https://a.com/path", "PUT"), nil, ov)
    assert.are.same({ "PREFLIGHT_REFUSED", "MALFORMED_ORIGIN", "" }, { r.kind, r.reason, r.raw })
  end)

  it("replaces methods, headers, expose headers, max age and credentials with the decision's", function()
    local ov = must(base, { allow = true, methods = { "PATCH" }, headers = { "X-Tenant", "x-tenant" },
      expose_headers = { "X-Request-Id", "X-Rate" }, max_age = 30, credentials = true }, "https://t2.example.net")
    local r = cors.evaluate(base, pf("https://t2.example.net", "PATCH", "X-Tenant"), nil, ov)
    assert.are.equal("PREFLIGHT_ALLOWED", r.kind)
    assert.are.equal("PATCH", r.headers["access-control-allow-methods"])
    assert.are.equal("x-tenant", r.headers["access-control-allow-headers"])
    assert.are.equal("30", r.headers["access-control-max-age"])
    assert.are.equal("true", r.headers["access-control-allow-credentials"])
    -- the route's own method is no longer allowed for this origin
    local put = cors.evaluate(base, pf("https://t2.example.net", "PUT"), nil, ov)
    assert.are.same({ "PREFLIGHT_REFUSED", "REFUSED_METHOD" }, { put.kind, put.reason })
    local a = cors.evaluate(base, { method = "GET", origin = "https://t2.example.net" }, nil, ov)
    assert.are.equal("x-request-id, x-rate", a.headers["access-control-expose-headers"])
    assert.are.equal("true", a.headers["access-control-allow-credentials"])
  end)

  it("turns the route's credentials off for one origin", function()
    local ov = must(cred, { allow = true, credentials = false }, "https://t3.example.net")
    local a = cors.evaluate(cred, { method = "GET", origin = "https://t3.example.net" }, nil, ov)
    assert.are.equal("ACTUAL_ALLOWED", a.kind)
    assert.is_nil(a.headers["access-control-allow-credentials"])
    local plain = must(cred, { allow = true }, "https://t3.example.net")
    a = cors.evaluate(cred, { method = "GET", origin = "https://t3.example.net" }, nil, plain)
    assert.are.equal("true", a.headers["access-control-allow-credentials"])
  end)

  it("echoes requested headers for headers = '*'", function()
    local ov = must(base, { allow = true, headers = "*" })
    local r = cors.evaluate(base, pf("https://t1.example.net", "GET", "X-A, Authorization"), nil, ov)
    assert.are.equal("x-a, authorization", r.headers["access-control-allow-headers"])
  end)

  it("leaves the null origin to the static policy", function()
    local p = cors.must_compile({ origins_by_plugin = true, allow_null_origin = true })
    local ov = must(p, { allow = false })
    local r = cors.evaluate(p, { method = "GET", origin = "null" }, nil, ov)
    assert.are.equal("ACTUAL_ALLOWED", r.kind)
    assert.are.equal("null", r.headers["access-control-allow-origin"])
  end)
end)

describe("cg_cors_override_compile refuses", function()
  local cases = {
    { "expose '*' with credentials", base, { allow = true, credentials = true, expose_headers = "*" }, nil,
      "^decision%.expose_headers: \"%*\" with credentials" },
    { "expose '*' on a route with credentials", cred, { allow = true, expose_headers = "*" }, nil,
      "^decision%.expose_headers:" },
    { "a bad expose header name", base, { allow = true, expose_headers = { "X Bad" } }, nil,
      "^decision%.expose_headers%[1%]: \"X Bad\" is not a valid header name" },
    { "a bad request header name", base, { allow = true, headers = { "a:b" } }, nil, "^decision%.headers%[1%]:" },
    { "a forbidden method", base, { allow = true, methods = { "TRACE" } }, nil, "^decision%.methods%[1%]:.*forbidden" },
    { "a negative max_age", base, { allow = true, max_age = -1 }, nil, "^decision%.max_age:" },
    { "credentials for a plain-http origin", base, { allow = true, credentials = true }, "http://t.example.net",
      "^decision%.credentials: \"http://t%.example%.net\" is plain http" },
    { "a plain allow for a plain-http origin on a credentialed route", cred, { allow = true }, "http://t.example.net",
      "^decision%.credentials:" },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local ov, diags = cors.decision(c[2], c[3], c[4])
      assert.is_nil(ov)
      assert.matches(c[5], diags.errors[1])
    end)
  end

  it("but accepts credentials for a loopback http origin", function()
    assert.truthy(cors.decision(base, { allow = true, credentials = true }, "http://localhost:3000"))
    assert.truthy(cors.decision(base, { allow = true, credentials = true }, "http://127.0.0.1:8080"))
  end)

  it("but accepts anything on a denial (nothing is sent)", function()
    assert.truthy(cors.decision(cred, { allow = false, expose_headers = "*" }))
  end)
end)

describe("cg_cors_decision_check_plain", function()
  local function check(policy, allow, origin)
    local s = ffi.new("cg_cors_decision_spec_t")
    s.allow = allow and 1 or 0
    s.origin, s.origin_len = origin, #origin
    return cors.C.cg_cors_decision_check_plain(policy, s, nil)
  end
  it("refuses a plain allow of a plain-http origin on a credentialed route, without allocating", function()
    assert.are.equal(cors.C.CG_CORS_E_INVALID, check(cred, true, "http://t.example.net"))
    assert.are.equal(0, check(cred, true, "https://t.example.net"))
    assert.are.equal(0, check(cred, true, "http://localhost:8080"))
    assert.are.equal(0, check(cred, false, "http://t.example.net"))
    assert.are.equal(0, check(base, true, "http://t.example.net"))
  end)
end)

describe("cg_cors_expose_line", function()
  it("renders lower-cased names once each", function()
    assert.are.equal("Access-Control-Expose-Headers: x-a, x-b\r\n", cors.expose_line({ "X-A", "X-B", "x-a" }))
  end)

  it("refuses '*', a non-token and an empty list", function()
    assert.are.equal(cors.C.CG_CORS_E_INVALID, select(2, cors.expose_line({ "*" })))
    assert.are.equal(cors.C.CG_CORS_E_INVALID, select(2, cors.expose_line({ "X-A", "bad name" })))
    assert.are.equal(cors.C.CG_CORS_E_INVALID, select(2, cors.expose_line({})))
  end)

  it("reports a buffer that is too small", function()
    assert.are.equal(cors.C.CG_CORS_E_BUFFER, select(2, cors.expose_line({ "X-Long-Header-Name" }, 40)))
  end)
end)
