-- Evaluate: what a browser reads on preflights and actual requests -- every
-- header that must be there, and nothing else.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local cors = require("cors_ffi")
local ffi = require("ffi")

local VPO = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network"
local VP = "Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network"

local policies = {
  list = { origins = { "https://a.com", "http://localhost:3000" }, methods = { "GET", "POST", "PUT" },
    headers = { "X-Req", "Content-Type" }, expose_headers = { "X-Total", "X-Id" }, max_age = 600 },
  put_only = { origins = { "https://a.com" }, methods = { "PUT" } },
  cred = { origins = { "https://a.com" }, origin_patterns = { "https://*.a.com" }, credentials = true,
    headers = "*", methods = { "GET", "PATCH" }, expose_headers = { "X-Total" } },
  any = { origins = "*", expose_headers = { "X-Total" }, timing_allow_origin = true },
  any_star = { origins = "*", expose_headers = "*", headers = "*", max_age = 0 },
  null = { origins = { "https://a.com" }, allow_null_origin = true, credentials = true },
  pn = { origins = { "https://a.com" }, private_network = true, preflight_continue = true },
  tao = { origins = { "https://a.com" }, timing_allow_origin = true, credentials = true },
  anymethod = { origins = { "https://a.com" }, methods = "*", credentials = true, headers = { "X-Req" } },
  anymethod_list = { origins = { "https://a.com" }, methods = { "*" }, headers = { "Authorization", "*" },
    credentials = true },
  ok200 = { origins = { "https://a.com" }, methods = { "PUT" }, preflight_status = 200 },
}
local compiled = {}
for name, t in pairs(policies) do compiled[name] = cors.must_compile(t) end

local function pf(origin, method, acrh, extra)
  local r = { method = "OPTIONS", origin = origin, acrm = method, acrh = acrh }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

local function names(n, prefix)
  local t = {}
  for i = 1, n do t[i] = (prefix or "x-h") .. i end
  return table.concat(t, ", ")
end

local ACAO, ACAC = "access-control-allow-origin", "access-control-allow-credentials"
local ACAM, ACAH = "access-control-allow-methods", "access-control-allow-headers"
local ACMA, ACEH = "access-control-max-age", "access-control-expose-headers"
local ACAPN, TAO = "access-control-allow-private-network", "timing-allow-origin"

local cases = {
  -- preflights against a listed policy
  { "list: allowed preflight", "list", pf("https://a.com", "PUT", "X-Req"),
    { kind = "PREFLIGHT_ALLOWED", reason = "OK", vary = VPO,
      headers = { [ACAO] = "https://a.com", [ACAM] = "GET, POST, PUT", [ACAH] = "x-req, content-type", [ACMA] = "600" } } },
  { "list: safelisted method without a header list", "list", pf("https://a.com", "POST"),
    { kind = "PREFLIGHT_ALLOWED",
      headers = { [ACAO] = "https://a.com", [ACAM] = "GET, POST, PUT", [ACAH] = "x-req, content-type", [ACMA] = "600" } } },
  { "put_only: safelisted GET passes though not listed", "put_only", pf("https://a.com", "GET"),
    { kind = "PREFLIGHT_ALLOWED", headers = { [ACAO] = "https://a.com", [ACAM] = "PUT" } } },
  { "put_only: safelisted HEAD passes", "put_only", pf("https://a.com", "HEAD"), { kind = "PREFLIGHT_ALLOWED" } },
  { "list: unlisted method refused", "list", pf("https://a.com", "DELETE"),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_METHOD", detail_arg = "DELETE", vary = VPO, headers = {} } },
  { "list: methods compare case-sensitively", "list", pf("https://a.com", "put"),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_METHOD", detail_arg = "put", headers = {} } },
  { "list: a lower-case safelisted name is not safelisted", "put_only", pf("https://a.com", "get"),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_METHOD", headers = {} } },
  { "list: a method that is not a token", "list", pf("https://a.com", "PU T"),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_METHOD", headers = {} } },
  { "list: several Access-Control-Request-Method lines", "list", pf("https://a.com", { "PUT", "PUT" }),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_METHOD", headers = {} } },
  { "list: unlisted header refused", "list", pf("https://a.com", "PUT", "X-Req, X-Other"),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_HEADER", detail_arg = "X-Other", vary = VPO, headers = {} } },
  { "list: header names compare case-insensitively", "list", pf("https://a.com", "PUT", "x-REQ,CONTENT-TYPE"),
    { kind = "PREFLIGHT_ALLOWED", headers = { [ACAO] = "https://a.com", [ACAM] = "GET, POST, PUT",
      [ACAH] = "x-req, content-type", [ACMA] = "600" } } },
  { "list: Access-Control-Request-Headers over several lines", "list",
    pf("https://a.com", "PUT", { "X-Req", "content-type" }), { kind = "PREFLIGHT_ALLOWED" } },
  { "list: refusal found on a second header line", "list", pf("https://a.com", "PUT", { "X-Req", "X-Bad" }),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_HEADER", detail_arg = "X-Bad", headers = {} } },
  { "list: empty list elements and whitespace tolerated", "list", pf("https://a.com", "PUT", " X-Req,, \t,content-type, "),
    { kind = "PREFLIGHT_ALLOWED" } },
  { "list: a header name that is not a token", "list", pf("https://a.com", "PUT", "x req"),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_HEADER", detail_arg = "x req", headers = {} } },
  { "list: unlisted origin refused", "list", pf("https://evil.com", "PUT"),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_ORIGIN", vary = VPO, headers = {}, origin = "https://evil.com" } },
  { "list: malformed origin refused, never echoed", "list", pf("https://a.com/x", "PUT"),
    { kind = "PREFLIGHT_REFUSED", reason = "MALFORMED_ORIGIN", vary = VPO, headers = {}, origin = false } },
  { "list: origin with CR/LF refused", "list", pf("https://a.com\r\nX: y", "PUT"),
    { kind = "PREFLIGHT_REFUSED", reason = "MALFORMED_ORIGIN", headers = {} } },
  { "list: several Origin headers refused", "list", pf({ "https://a.com", "https://a.com" }, "PUT"),
    { kind = "PREFLIGHT_REFUSED", reason = "MALFORMED_ORIGIN", headers = {} } },
  { "list: the origin is normalized before the lookup", "list", pf("HTTPS://A.COM:443", "PUT"),
    { kind = "PREFLIGHT_ALLOWED", origin = "https://a.com" } },
  { "list: loopback origin with a port", "list", pf("http://localhost:3000", "PUT"),
    { kind = "PREFLIGHT_ALLOWED" } },
  { "list: the same host on another port is another origin", "list", pf("http://localhost:3001", "PUT"),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_ORIGIN" } },
  { "list: null refused without allow_null_origin", "list", pf("null", "PUT"),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_ORIGIN", detail = "the null origin needs allow_null_origin" } },
  -- what is not a preflight
  { "list: OPTIONS without Access-Control-Request-Method is an actual request", "list",
    { method = "OPTIONS", origin = "https://a.com" },
    { kind = "ACTUAL_ALLOWED", vary = "Origin", headers = { [ACAO] = "https://a.com", [ACEH] = "x-total, x-id" } } },
  { "list: OPTIONS with ACRM but no Origin is not CORS", "list", { method = "OPTIONS", acrm = "PUT" },
    { kind = "NO_CORS", reason = "NO_ORIGIN", vary = "Origin", headers = {} } },
  { "list: GET with ACRM is an actual request", "list", { method = "GET", origin = "https://a.com", acrm = "DELETE" },
    { kind = "ACTUAL_ALLOWED" } },
  -- actual requests
  { "list: allowed actual request", "list", { method = "POST", origin = "https://a.com" },
    { kind = "ACTUAL_ALLOWED", reason = "OK", vary = "Origin",
      headers = { [ACAO] = "https://a.com", [ACEH] = "x-total, x-id" } } },
  { "list: refused actual request gets nothing", "list", { method = "GET", origin = "https://b.com" },
    { kind = "ACTUAL_REFUSED", reason = "REFUSED_ORIGIN", vary = "Origin", headers = {} } },
  { "list: malformed origin on an actual request", "list", { method = "GET", origin = "bar.com" },
    { kind = "ACTUAL_REFUSED", reason = "MALFORMED_ORIGIN", vary = "Origin", headers = {} } },
  { "list: no Origin still varies on Origin", "list", { method = "GET" },
    { kind = "NO_CORS", reason = "NO_ORIGIN", vary = "Origin", headers = {} } },
  -- credentials and echoed headers
  { "cred: echoes requested headers lower-cased, once each", "cred",
    pf("https://a.com", "PATCH", "X-A, Authorization, x-a"),
    { kind = "PREFLIGHT_ALLOWED", vary = VPO, headers = { [ACAO] = "https://a.com", [ACAC] = "true",
      [ACAM] = "GET, PATCH", [ACAH] = "x-a, authorization" } } },
  { "cred: echoes across several header lines", "cred", pf("https://a.com", "GET", { "X-A", "X-B, X-A" }),
    { kind = "PREFLIGHT_ALLOWED", headers = { [ACAO] = "https://a.com", [ACAC] = "true", [ACAM] = "GET, PATCH",
      [ACAH] = "x-a, x-b" } } },
  { "cred: no Allow-Headers for an empty request list", "cred", pf("https://a.com", "GET", ""),
    { kind = "PREFLIGHT_ALLOWED", headers = { [ACAO] = "https://a.com", [ACAC] = "true", [ACAM] = "GET, PATCH" } } },
  { "cred: no Allow-Headers without a request list", "cred", pf("https://a.com", "GET"),
    { kind = "PREFLIGHT_ALLOWED", headers = { [ACAO] = "https://a.com", [ACAC] = "true", [ACAM] = "GET, PATCH" } } },
  { "cred: exactly the name limit is allowed", "cred", pf("https://a.com", "GET", names(64)),
    { kind = "PREFLIGHT_ALLOWED" } },
  { "cred: one name over the limit is refused", "cred", pf("https://a.com", "GET", names(65)),
    { kind = "PREFLIGHT_REFUSED", reason = "TOO_MANY_HEADERS", detail_arg = "x-h65", headers = {} } },
  { "cred: the limit counts names over all lines", "cred", pf("https://a.com", "GET", { names(40, "a"), names(25, "b") }),
    { kind = "PREFLIGHT_REFUSED", reason = "TOO_MANY_HEADERS", headers = {} } },
  { "cred: an echoed name must still be a token", "cred", pf("https://a.com", "GET", "x-a, x\"b"),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_HEADER", detail_arg = "x\"b", headers = {} } },
  { "cred: allowed actual request with credentials", "cred", { method = "GET", origin = "https://a.com" },
    { kind = "ACTUAL_ALLOWED", vary = "Origin",
      headers = { [ACAO] = "https://a.com", [ACAC] = "true", [ACEH] = "x-total" } } },
  { "cred: a pattern match echoes the origin, never *", "cred", { method = "GET", origin = "https://x.a.com" },
    { kind = "ACTUAL_ALLOWED", headers = { [ACAO] = "https://x.a.com", [ACAC] = "true", [ACEH] = "x-total" } } },
  { "cred: refused actual request", "cred", { method = "GET", origin = "https://evil.com" },
    { kind = "ACTUAL_REFUSED", vary = "Origin", headers = {} } },
  -- "*"
  { "any: actual request gets * without Vary", "any", { method = "GET", origin = "https://x.com" },
    { kind = "ACTUAL_ALLOWED", vary = "", headers = { [ACAO] = "*", [ACEH] = "x-total", [TAO] = "*" } } },
  { "any: an Origin-less request gets * too", "any", { method = "GET" },
    { kind = "NO_CORS", reason = "NO_ORIGIN", vary = "", headers = { [ACAO] = "*", [ACEH] = "x-total", [TAO] = "*" } } },
  { "any: null gets *", "any", { method = "GET", origin = "null" },
    { kind = "ACTUAL_ALLOWED", vary = "", headers = { [ACAO] = "*", [ACEH] = "x-total", [TAO] = "*" } } },
  { "any: a malformed origin is refused and varies on Origin", "any", { method = "GET", origin = "https://x.com/" },
    { kind = "ACTUAL_REFUSED", reason = "MALFORMED_ORIGIN", vary = "Origin", headers = {} } },
  { "any: preflight gets * and default methods, no Origin in Vary", "any", pf("https://x.com", "POST"),
    { kind = "PREFLIGHT_ALLOWED", vary = VP, headers = { [ACAO] = "*", [ACAM] = "GET, HEAD, POST" } } },
  { "any: headers default to none", "any", pf("https://x.com", "POST", "X-Foo"),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_HEADER", headers = {} } },
  { "any: default methods refuse PUT", "any", pf("https://x.com", "PUT"),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_METHOD", headers = {} } },
  { "any_star: expose * and echoed headers, max-age 0", "any_star", pf("https://x.com", "GET", "Authorization"),
    { kind = "PREFLIGHT_ALLOWED", headers = { [ACAO] = "*", [ACAM] = "GET, HEAD, POST", [ACAH] = "authorization",
      [ACMA] = "0" } } },
  { "any_star: actual request exposes *", "any_star", { origin = "https://x.com" },
    { kind = "ACTUAL_ALLOWED", headers = { [ACAO] = "*", [ACEH] = "*" } } },
  -- null
  { "null: allowed with allow_null_origin, echoed as null", "null", { method = "GET", origin = "null" },
    { kind = "ACTUAL_ALLOWED", vary = "Origin", headers = { [ACAO] = "null", [ACAC] = "true" } } },
  { "null: preflight from null", "null", pf("null", "POST"),
    { kind = "PREFLIGHT_ALLOWED", headers = { [ACAO] = "null", [ACAC] = "true", [ACAM] = "GET, HEAD, POST" } } },
  -- private network
  { "list: private network requested but not enabled", "list",
    pf("https://a.com", "PUT", nil, { acrpn = "true" }),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_PRIVATE_NETWORK", headers = {} } },
  { "list: private network header other than true is ignored", "list",
    pf("https://a.com", "PUT", nil, { acrpn = "false" }), { kind = "PREFLIGHT_ALLOWED" } },
  { "pn: private network allowed when enabled", "pn", pf("https://a.com", "POST", nil, { acrpn = " true " }),
    { kind = "PREFLIGHT_ALLOWED", preflight_continue = true,
      headers = { [ACAO] = "https://a.com", [ACAM] = "GET, HEAD, POST", [ACAPN] = "true" } } },
  { "pn: no private network header unless requested", "pn", pf("https://a.com", "POST"),
    { kind = "PREFLIGHT_ALLOWED", preflight_continue = true,
      headers = { [ACAO] = "https://a.com", [ACAM] = "GET, HEAD, POST" } } },
  { "pn: a refused preflight is never passed on", "pn", pf("https://b.com", "POST"),
    { kind = "PREFLIGHT_REFUSED", preflight_continue = false, headers = {} } },
  { "list: preflight_continue off by default", "list", pf("https://a.com", "PUT"),
    { kind = "PREFLIGHT_ALLOWED", preflight_continue = false } },
  { "pn: private network only matters on preflights", "pn", { origin = "https://a.com", acrpn = "true" },
    { kind = "ACTUAL_ALLOWED", headers = { [ACAO] = "https://a.com" } } },
  -- Timing-Allow-Origin
  { "tao: actual request names the origin", "tao", { origin = "https://a.com" },
    { kind = "ACTUAL_ALLOWED", headers = { [ACAO] = "https://a.com", [ACAC] = "true", [TAO] = "https://a.com" } } },
  { "tao: not on preflights", "tao", pf("https://a.com", "GET"),
    { kind = "PREFLIGHT_ALLOWED", headers = { [ACAO] = "https://a.com", [ACAC] = "true", [ACAM] = "GET, HEAD, POST" } } },
  { "tao: not for refused origins", "tao", { origin = "https://b.com" }, { kind = "ACTUAL_REFUSED", headers = {} } },
  -- methods = "*": the requested method echoed, so it works with credentials
  { 'anymethod: PATCH is echoed', "anymethod", pf("https://a.com", "PATCH"),
    { kind = "PREFLIGHT_ALLOWED", status = 204,
      headers = { [ACAO] = "https://a.com", [ACAC] = "true", [ACAM] = "PATCH", [ACAH] = "x-req" } } },
  { 'anymethod: an extension method is echoed byte for byte', "anymethod", pf("https://a.com", "purge"),
    { kind = "PREFLIGHT_ALLOWED", headers = { [ACAO] = "https://a.com", [ACAC] = "true", [ACAM] = "purge",
      [ACAH] = "x-req" } } },
  { 'anymethod: a safelisted method is echoed too', "anymethod", pf("https://a.com", "GET"),
    { kind = "PREFLIGHT_ALLOWED", headers = { [ACAO] = "https://a.com", [ACAC] = "true", [ACAM] = "GET",
      [ACAH] = "x-req" } } },
  { 'anymethod: CONNECT stays refused', "anymethod", pf("https://a.com", "CONNECT"),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_METHOD", detail_arg = "CONNECT", headers = {} } },
  { 'anymethod: trace in any case stays refused', "anymethod", pf("https://a.com", "trace"),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_METHOD", headers = {} } },
  { 'anymethod: TRACK stays refused', "anymethod", pf("https://a.com", "TRACK"),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_METHOD", headers = {} } },
  { 'anymethod: headers still checked', "anymethod", pf("https://a.com", "PATCH", "X-Other"),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_HEADER", headers = {} } },
  { 'anymethod_list: { "*" } and { "Authorization", "*" } echo method and names', "anymethod_list",
    pf("https://a.com", "DELETE", "Authorization, X-Anything"),
    { kind = "PREFLIGHT_ALLOWED", headers = { [ACAO] = "https://a.com", [ACAC] = "true", [ACAM] = "DELETE",
      [ACAH] = "authorization, x-anything" } } },
  -- preflight_status
  { "ok200: an allowed preflight is answered 200", "ok200", pf("https://a.com", "PUT"),
    { kind = "PREFLIGHT_ALLOWED", status = 200 } },
  { "ok200: a refused one 403", "ok200", pf("https://a.com", "DELETE"), { kind = "PREFLIGHT_REFUSED", status = 403 } },
  { "list: 204 by default", "list", pf("https://a.com", "PUT"), { kind = "PREFLIGHT_ALLOWED", status = 204 } },
  { "list: an actual request has no preflight status", "list", { origin = "https://a.com" },
    { kind = "ACTUAL_ALLOWED", status = 0 } },
  -- name_refusal (a debug route): the browser must reach its method or header check
  { "named: a refused method gets the allowed status and the Allow lines, no Max-Age", "list",
    pf("https://a.com", "DELETE", nil, { name_refusal = true }),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_METHOD", detail_arg = "DELETE", status = 204, vary = VPO,
      named = true, headers = { [ACAO] = "https://a.com", [ACAM] = "GET, POST, PUT", [ACAH] = "x-req, content-type" } } },
  { "named: a refused header too", "list", pf("https://a.com", "PUT", "X-Req, X-Other", { name_refusal = true }),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_HEADER", detail_arg = "X-Other", status = 204, named = true,
      headers = { [ACAO] = "https://a.com", [ACAM] = "GET, POST, PUT", [ACAH] = "x-req, content-type" } } },
  { "named: with credentials, and the method echoed for a header refusal under methods = *", "anymethod",
    pf("https://a.com", "PATCH", "X-Other", { name_refusal = true }),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_HEADER", status = 204, named = true,
      headers = { [ACAO] = "https://a.com", [ACAC] = "true", [ACAM] = "PATCH", [ACAH] = "x-req" } } },
  { "named: a forbidden method under methods = * is not echoed", "anymethod",
    pf("https://a.com", "CONNECT", nil, { name_refusal = true }),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_METHOD", status = 204, named = true,
      headers = { [ACAO] = "https://a.com", [ACAC] = "true", [ACAH] = "x-req" } } },
  { "named: the status follows preflight_status", "ok200", pf("https://a.com", "DELETE", nil, { name_refusal = true }),
    { kind = "PREFLIGHT_REFUSED", status = 200, named = true, headers = { [ACAO] = "https://a.com", [ACAM] = "PUT" } } },
  { "named: a refused origin still gets nothing", "list", pf("https://evil.com", "DELETE", nil, { name_refusal = true }),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_ORIGIN", status = 403, headers = {} } },
  { "named: a malformed origin still gets nothing", "list", pf("https://a.com/", "DELETE", nil, { name_refusal = true }),
    { kind = "PREFLIGHT_REFUSED", reason = "MALFORMED_ORIGIN", status = 403, headers = {} } },
  { "named: private network is not named", "list",
    pf("https://a.com", "PUT", nil, { acrpn = "true", name_refusal = true }),
    { kind = "PREFLIGHT_REFUSED", reason = "REFUSED_PRIVATE_NETWORK", status = 403, headers = {} } },
  { "named: an allowed preflight is the same as without", "list", pf("https://a.com", "PUT", nil, { name_refusal = true }),
    { kind = "PREFLIGHT_ALLOWED", status = 204,
      headers = { [ACAO] = "https://a.com", [ACAM] = "GET, POST, PUT", [ACAH] = "x-req, content-type", [ACMA] = "600" } } },
  { "named: an actual request is not touched", "list", { origin = "https://b.com", name_refusal = true },
    { kind = "ACTUAL_REFUSED", headers = {} } },
}

describe("cg_cors_evaluate", function()
  for _, c in ipairs(cases) do
    local name, policy, req, want = c[1], c[2], c[3], c[4]
    it(name, function()
      local r = cors.evaluate(compiled[policy], req)
      assert.are.equal(want.kind, r.kind)
      if want.reason then assert.are.equal(want.reason, r.reason) end
      if want.vary then assert.are.equal(want.vary, r.vary) end
      if want.detail then assert.are.equal(want.detail, r.detail) end
      if want.detail_arg then assert.are.equal(want.detail_arg, r.detail_arg) end
      if want.preflight_continue ~= nil then assert.are.equal(want.preflight_continue, r.preflight_continue) end
      if want.status then assert.are.equal(want.status, r.status) end
      if want.origin == false then assert.is_nil(r.origin) elseif want.origin then assert.are.equal(want.origin, r.origin) end
      -- Present and absent alike: the whole set of lines must match.
      if want.headers then assert.are.same(want.headers, r.headers) end
      assert.are.equal(r.rc, r.headers_len)
      assert.are.equal(#r.raw, r.headers_len)
      if r.kind:match("REFUSED") and not want.named then assert.are.equal("", r.raw) end
    end)
  end

  it("answers NO_CORS without a policy", function()
    local r = cors.evaluate(nil, { method = "OPTIONS", origin = "https://a.com", acrm = "PUT" })
    assert.are.same({ "NO_CORS", "", "" }, { r.kind, r.vary, r.raw })
  end)

  it("reports a buffer that is too small at every size below the answer", function()
    local req = pf("https://a.com", "PUT", "X-Req")
    local full = cors.evaluate(compiled.list, req)
    local need = full.headers_len + #"https://a.com"
    for size = 0, need - 1 do
      assert.are.equal(cors.C.CG_CORS_E_BUFFER, cors.evaluate(compiled.list, req, size).rc, "size " .. size)
    end
    assert.are.equal(full.raw, cors.evaluate(compiled.list, req, need).raw)
  end)

  it("reports a too-small buffer while echoing headers", function()
    local req = pf("https://a.com", "GET", names(64, "x-some-long-header-name-"))
    local r = cors.evaluate(compiled.cred, req, 256)
    assert.are.equal(cors.C.CG_CORS_E_BUFFER, r.rc)
    assert.are.equal("PREFLIGHT_ALLOWED", cors.evaluate(compiled.cred, req, 4096).kind)
  end)

  it("writes well-formed lines, each ending in CRLF", function()
    local r = cors.evaluate(compiled.cred, pf("https://a.com", "GET", "X-A"))
    local rebuilt = {}
    for _, n in ipairs(r.order) do rebuilt[#rebuilt + 1] = n .. ": " .. r.headers[n:lower()] .. "\r\n" end
    assert.are.equal(r.raw, table.concat(rebuilt))
    assert.are.equal(4, #r.order)
  end)

  it("echoes a requested name exactly when every byte is an RFC 9110 tchar", function()
    local tchar = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for b = 0, 255 do
      local ch = string.char(b)
      -- ',' and whitespace are the list's own syntax, not part of a name
      if ch ~= "," and ch ~= " " and ch ~= "\t" then
        local r = cors.evaluate(compiled.cred, pf("https://a.com", "GET", "x" .. ch .. "y"))
        local want = tchar:find(ch, 1, true) and "PREFLIGHT_ALLOWED" or "PREFLIGHT_REFUSED"
        assert.are.equal(want, r.kind, ("byte %d"):format(b))
        if want == "PREFLIGHT_ALLOWED" then assert.are.equal(("x" .. ch .. "y"):lower(), r.headers[ACAH]) end
      end
    end
  end)

  it("allows an origin equal to an entry and nothing that merely starts or ends like one", function()
    assert.are.equal("https://a.com", cors.evaluate(compiled.list, pf("https://a.com", "PUT")).headers[ACAO])
    assert.are.equal("http://localhost:3000",
      cors.evaluate(compiled.list, pf("http://localhost:3000", "PUT")).headers[ACAO])
    for _, o in ipairs({ "https://a.co", "https://a.comm", "https://a.com.", "https://xa.com", "http://a.com",
      "https://a.com:444", "http://localhost:300", "http://localhost:30000", "https://a.com/" }) do
      local r = cors.evaluate(compiled.list, pf(o, "PUT"))
      assert.are.equal("PREFLIGHT_REFUSED", r.kind, o)
      assert.are.equal("", r.raw, o)
    end
  end)
end)

describe("response header ownership", function()
  local cases2 = {
    { "Access-Control-Allow-Origin", true, true }, { "access-control-allow-credentials", true, true },
    { "ACCESS-CONTROL-EXPOSE-HEADERS", true, true }, { "Access-Control-Max-Age", true, true },
    { "Access-Control-", true, true }, { "Access-Control", false, false }, { "Vary", false, false },
    { "X-Access-Control-Allow-Origin", false, false }, { "Timing-Allow-Origin", false, true },
    { "timing-allow-origin", false, true }, { "Timing-Allow-Origins", false, false }, { "", false, false },
  }
  for _, c in ipairs(cases2) do
    it(("%q: is_cors_response_header=%s, owned by a TAO policy=%s"):format(c[1], tostring(c[2]), tostring(c[3])),
      function()
        assert.are.equal(c[2] and 1 or 0, cors.C.cg_cors_is_cors_response_header(c[1], #c[1]))
        assert.are.equal(c[3] and 1 or 0, cors.C.cg_cors_policy_owns_header(compiled.tao, c[1], #c[1]))
      end)
  end

  it("leaves Timing-Allow-Origin to the upstream when the policy does not set it", function()
    assert.are.equal(0, cors.C.cg_cors_policy_owns_header(compiled.list, "Timing-Allow-Origin", 19))
    assert.are.equal(1, cors.C.cg_cors_policy_owns_header(compiled.list, "Access-Control-Allow-Origin", 27))
  end)

  it("strips nothing on a route without a policy", function()
    assert.are.equal(0, cors.C.cg_cors_policy_owns_header(nil, "Access-Control-Allow-Origin", 27))
  end)
end)

describe("cg_cors_problems", function()
  local list = compiled.list
  it("lists the origin, the method and each refused header", function()
    local p = cors.problems(list, pf("https://evil.com", "DELETE", { "X-Req, X-A", "x-b" }))
    assert.are.same({ count = 4,
      { reason = "REFUSED_ORIGIN", detail = "the origin is not in origins or origin_patterns" },
      { reason = "REFUSED_METHOD", detail = "the method is not in methods", arg = "DELETE" },
      { reason = "REFUSED_HEADER", detail = "the header is not in headers", arg = "X-A" },
      { reason = "REFUSED_HEADER", detail = "the header is not in headers", arg = "x-b" },
    }, p)
  end)
  it("names a header asked for twice once", function()
    local p = cors.problems(list, pf("https://a.com", "PUT", "X-A, x-a, X-Req"))
    assert.are.same({ count = 1, { reason = "REFUSED_HEADER", detail = "the header is not in headers", arg = "X-A" } }, p)
  end)
  it("lists nothing for an allowed request", function()
    assert.are.same({ count = 0 }, cors.problems(list, pf("https://a.com", "PUT", "x-req")))
    assert.are.same({ count = 0 }, cors.problems(list, { origin = "https://a.com" }))
    assert.are.same({ count = 0 }, cors.problems(list, { method = "GET" }))
  end)
  it("lists only the origin for an actual request", function()
    local p = cors.problems(list, { method = "DELETE", origin = "https://evil.com", acrm = "DELETE" })
    assert.are.equal(1, p.count)
    assert.are.equal("REFUSED_ORIGIN", p[1].reason)
  end)
  it("names a header asked for twice once, even past the room it was given", function()
    local p = cors.problems(list, pf("https://a.com", "DELETE", "x-1, x-2, X-1, x-3, X-2"), nil, 1)
    assert.are.equal(4, p.count) -- DELETE, x-1, x-2, x-3
  end)

  it("counts past the room it was given", function()
    local p = cors.problems(list, pf("https://a.com", "DELETE", "x-1, x-2, x-3"), nil, 2)
    assert.are.equal(4, p.count)
    assert.are.equal(2, #p)
    assert.are.same({ "DELETE", "x-1" }, { p[1].arg, p[2].arg })
  end)
  it("agrees with evaluate on the first problem", function()
    local req = pf("https://a.com", "DELETE", "x-1")
    assert.are.equal(cors.evaluate(list, req).reason, cors.problems(list, req)[1].reason)
  end)
  it("lists private network access", function()
    local p = cors.problems(list, pf("https://a.com", "PUT", nil, { acrpn = "true" }))
    assert.are.same({ count = 1, { reason = "REFUSED_PRIVATE_NETWORK", detail = "private network access is not enabled" } }, p)
  end)
end)
