-- Policy compile: each refusal with its exact message (what to write instead),
-- each warning, and what gets accepted.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local cors = require("cors_ffi")

local A = { "https://a.com" }
local ORIGIN_SHAPE = "; an origin is scheme://host[:port], write "

local refused = {
  { "an origin with a trailing slash", { origins = { "https://a.com/" } },
    'origins[1]: "https://a.com/" has a trailing slash' .. ORIGIN_SHAPE .. '"https://a.com"' },
  { "an origin with a path", { origins = { "https://a.com/x/y" } },
    'origins[1]: "https://a.com/x/y" has a path' .. ORIGIN_SHAPE .. '"https://a.com"' },
  { "an origin with a query", { origins = { "https://a.com?q=1" } },
    'origins[1]: "https://a.com?q=1" has a query' .. ORIGIN_SHAPE .. '"https://a.com"' },
  { "an origin with a fragment", { origins = { "https://a.com#f" } },
    'origins[1]: "https://a.com#f" has a fragment' .. ORIGIN_SHAPE .. '"https://a.com"' },
  { "an origin with userinfo", { origins = { "https://user:pw@a.com" } },
    'origins[1]: "https://user:pw@a.com" has userinfo' .. ORIGIN_SHAPE .. '"https://a.com"' },
  { "a scheme-less origin", { origins = { "bar.com" } },
    'origins[1]: "bar.com" has no scheme; write "https://bar.com"' },
  { "a scheme-less origin with a path", { origins = { "https://ok.com", "Bar.com/x" } },
    'origins[2]: "Bar.com/x" has no scheme; write "https://bar.com"' },
  { "an origin with a CR/LF", { origins = { "https://a.com\r\n" } },
    'origins[1]: "https://a.com\\x0d\\x0a" contains a space, control or non-ASCII byte (use punycode for names); '
      .. 'write scheme://host[:port], e.g. "https://example.com"' },
  { 'origins = "*" with credentials', { origins = "*", credentials = true },
    'origins: "*" cannot be combined with credentials = true (browsers reject the answer); list the origins, '
      .. "or use origin_patterns" },
  { '"*" inside a longer origins list', { origins = { "*", "https://a.com" } },
    'origins[1]: "*" must stand alone: write origins = "*", or list the origins' },
  { 'expose_headers = "*" with credentials', { origins = A, expose_headers = "*", credentials = true },
    'expose_headers: "*" with credentials = true is read by browsers as a header literally named "*"; '
      .. "list the header names to expose" },
  { '"null" without allow_null_origin', { origins = { "https://a.com", "null" } },
    'origins[2]: "null" requires allow_null_origin = true (null comes from sandboxed iframes, file: pages '
      .. "and redirects, and any page can forge it)" },
  { "a wildcard inside a label", { origin_patterns = { "https://a*.x.com" } },
    'origin_patterns[1]: "https://a*.x.com": the wildcard must be one or more whole leftmost labels, as in '
      .. '"https://*.example.com", or the whole port (":*")' },
  { "a wildcard that is not leftmost", { origin_patterns = { "https://x.*.com" } },
    'origin_patterns[1]: "https://x.*.com": the wildcard must be one or more whole leftmost labels, as in '
      .. '"https://*.example.com", or the whole port (":*")' },
  { "a partial port wildcard", { origin_patterns = { "https://*.x.com:8*" } },
    'origin_patterns[1]: "https://*.x.com:8*": the wildcard must be one or more whole leftmost labels, as in '
      .. '"https://*.example.com", or the whole port (":*")' },
  { "a pattern on github.io", { origin_patterns = { "https://*.github.io" } },
    'origin_patterns[1]: "https://*.github.io" puts the wildcard directly on the public suffix "github.io", '
      .. 'which would allow every site under it; name your own domain, e.g. "https://*.yourname.github.io"' },
  { "a pattern on co.uk", { origin_patterns = { "https://*.co.uk" } },
    'origin_patterns[1]: "https://*.co.uk" puts the wildcard directly on the public suffix "co.uk", '
      .. 'which would allow every site under it; name your own domain, e.g. "https://*.yourname.co.uk"' },
  { "a pattern on com", { origin_patterns = { "https://*.com" } },
    'origin_patterns[1]: "https://*.com" puts the wildcard directly on the public suffix "com", '
      .. 'which would allow every site under it; name your own domain, e.g. "https://*.yourname.com"' },
  { "a pattern on a PSL wildcard rule (*.ck)", { origin_patterns = { "https://*.foo.ck" } },
    'origin_patterns[1]: "https://*.foo.ck" puts the wildcard directly on the public suffix "foo.ck", '
      .. 'which would allow every site under it; name your own domain, e.g. "https://*.yourname.foo.ck"' },
  { "a pattern on a punycode public suffix (公司.cn)", { origin_patterns = { "https://*.xn--55qx5d.cn" } },
    'origin_patterns[1]: "https://*.xn--55qx5d.cn" puts the wildcard directly on the public suffix '
      .. '"xn--55qx5d.cn", which would allow every site under it; name your own domain, e.g. '
      .. '"https://*.yourname.xn--55qx5d.cn"' },
  { "a pattern on an unlisted TLD (implicit * rule)", { origin_patterns = { "https://*.internal" } },
    'origin_patterns[1]: "https://*.internal" puts the wildcard directly on the public suffix "internal", '
      .. 'which would allow every site under it; name your own domain, e.g. "https://*.yourname.internal"' },
  { "a pattern with nothing after the wildcard", { origin_patterns = { "https://*" } },
    'origin_patterns[1]: "https://*" has no domain after the wildcard; write e.g. "https://*.example.com"' },
  { "a pattern without a wildcard", { origin_patterns = { "https://x.com" } },
    'origin_patterns[1]: "https://x.com" has no wildcard; put exact origins in origins' },
  { "a port wildcard on a plain-http host with credentials", { origin_patterns = { "http://example.com:*" },
    credentials = true },
    'origin_patterns[1]: "http://example.com:*" is plain http, and credentials = true would trust it with cookies; '
      .. 'write "https://example.com:*", or set allow_insecure_origins = true' },
  { "a pattern on an IP address", { origin_patterns = { "https://*.1.2.3.4" } },
    'origin_patterns[1]: "https://*.1.2.3.4": wildcards work on domain names, not IP addresses; list the '
      .. "addresses in origins" },
  { "a pattern with a trailing slash", { origin_patterns = { "https://*.x.com/" } },
    'origin_patterns[1]: "https://*.x.com/" has a trailing slash' .. ORIGIN_SHAPE .. '"https://*.x.com"' },
  { "a scheme-less pattern", { origin_patterns = { "*.x.com" } },
    'origin_patterns[1]: "*.x.com" has no scheme; write "https://*.x.com"' },
  { "an http origin with credentials", { origins = { "http://a.com" }, credentials = true },
    'origins[1]: "http://a.com" is plain http, and credentials = true would trust it with cookies; write '
      .. '"https://a.com", or set allow_insecure_origins = true' },
  { "an http pattern with credentials", { origin_patterns = { "http://*.a.com" }, credentials = true },
    'origin_patterns[1]: "http://*.a.com" is plain http, and credentials = true would trust it with cookies; '
      .. 'write "https://*.a.com", or set allow_insecure_origins = true' },
  { "CONNECT", { origins = A, methods = { "GET", "CONNECT" } },
    'methods[2]: "CONNECT" is a forbidden method that browsers never send; remove it' },
  { "trace in any case", { origins = A, methods = { "trace" } },
    'methods[1]: "trace" is a forbidden method that browsers never send; remove it' },
  { "TRACK", { origins = A, methods = { "Track" } },
    'methods[1]: "Track" is a forbidden method that browsers never send; remove it' },
  { "a method that is not a token", { origins = A, methods = { "GE T" } },
    'methods[1]: "GE T" is not a valid method (an RFC 9110 token: letters, digits and !#$%&\'*+-.^_`|~)' },
  { "an empty method", { origins = A, methods = { "" } },
    'methods[1]: "" is not a valid method (an RFC 9110 token: letters, digits and !#$%&\'*+-.^_`|~)' },
  { "preflight_status 201", { origins = A, preflight_status = 201 },
    "preflight_status: expected 200 or 204 (the status of an allowed preflight), got 201" },
  { "a header name that is not a token", { origins = A, headers = { "X-Ok", "x foo" } },
    'headers[2]: "x foo" is not a valid header name (an RFC 9110 token, e.g. "X-Request-Id")' },
  { "a header name with a colon", { origins = A, headers = { "x-a:" } },
    'headers[1]: "x-a:" is not a valid header name (an RFC 9110 token, e.g. "X-Request-Id")' },
  { "an expose header that is not a token", { origins = A, expose_headers = { "x\ny" } },
    'expose_headers[1]: "x\\x0ay" is not a valid header name (an RFC 9110 token, e.g. "X-Request-Id")' },
  { "a negative max_age", { origins = A, max_age = -5 },
    "max_age: must be 0 or more seconds, got -5; leave it out to send no Access-Control-Max-Age" },
}

local accepted = {
  -- name, spec, warnings (exact, without prefix)
  { 'origins = "*"', { origins = "*" }, {} },
  { 'origins = { "*" }', { origins = { "*" } }, {} },
  { 'methods = "*"', { origins = A, methods = "*" }, {} },
  { 'methods = { "*" } with credentials', { origins = A, methods = { "*" }, credentials = true }, {} },
  { 'methods = { "GET", "*" }', { origins = A, methods = { "GET", "*" } }, {} },
  { 'headers = { "*" }', { origins = A, headers = { "*" } }, {} },
  { 'headers = { "Authorization", "*" } with credentials', { origins = A, headers = { "Authorization", "*" },
    credentials = true }, {} },
  { 'expose_headers = { "*" }', { origins = A, expose_headers = { "*" } }, {} },
  { "preflight_status 200", { origins = A, preflight_status = 200 }, {} },
  { "preflight_status 204", { origins = A, preflight_status = 204 }, {} },
  { '"null" with allow_null_origin', { origins = { "null" }, allow_null_origin = true }, {} },
  { "an http origin without credentials", { origins = { "http://a.com" } }, {} },
  { "an http origin with credentials and allow_insecure_origins",
    { origins = { "http://a.com" }, credentials = true, allow_insecure_origins = true }, {} },
  { "an http pattern with credentials and allow_insecure_origins",
    { origin_patterns = { "http://*.a.com" }, credentials = true, allow_insecure_origins = true }, {} },
  { "loopback http origins with credentials",
    { origins = { "http://localhost:3000", "http://127.0.0.1:8080", "http://[::1]:9000", "http://127.9.9.9" },
      credentials = true }, {} },
  { "an http pattern on localhost with credentials",
    { origin_patterns = { "http://*.localhost:*" }, credentials = true }, {} },
  { "a pattern below a public suffix", { origin_patterns = { "https://*.foo.github.io" } }, {} },
  { "a pattern on a PSL exception rule (www.ck)", { origin_patterns = { "https://*.www.ck" } }, {} },
  { "two wildcard labels", { origin_patterns = { "https://*.*.example.com" } }, {} },
  { "a port wildcard on one host, with credentials on loopback", { origin_patterns = { "http://localhost:*",
    "http://127.0.0.1:*" }, credentials = true }, {} },
  { "a port wildcard on a public suffix's own host (one host, not a wildcard over it)",
    { origin_patterns = { "https://github.io:*" } }, {} },
  { "headers and expose_headers lists", { origins = A, headers = { "X-A", "x-a", "Authorization" },
    expose_headers = { "X-Total" } }, {} },
  { 'headers = "*" with credentials', { origins = A, headers = "*", credentials = true }, {} },
  { 'expose_headers = "*" without credentials', { origins = A, expose_headers = "*" }, {} },
  { "duplicate origins", { origins = { "https://a.com", "https://a.com", "https://A.com" } },
    { 'origins[3]: "https://A.com" normalized to "https://a.com"' } },
  { "max_age of 7200", { origins = A, max_age = 7200 }, {} },
  { "max_age of 0", { origins = A, max_age = 0 }, {} },
  { "max_age above Chromium's cap", { origins = A, max_age = 86400 },
    { "max_age: 86400 exceeds Chromium's cap of 7200 seconds (Firefox caps at 86400); browsers use the smaller value" } },
  { "an upper-case origin with a default port", { origins = { "HTTPS://A.COM:443" } },
    { 'origins[1]: "HTTPS://A.COM:443" normalized to "https://a.com"' } },
  { "an explicit :80 on http", { origins = { "http://a.com:80" } },
    { 'origins[1]: "http://a.com:80" normalized to "http://a.com"' } },
  { "an upper-case pattern with a default port", { origin_patterns = { "HTTPS://*.A.COM:443" } },
    { 'origin_patterns[1]: "HTTPS://*.A.COM:443" normalized to "https://*.a.com"' } },
  { "a lower-case standard method", { origins = A, methods = { "delete", "PATCH" } },
    { 'methods[1]: "delete" normalized to "DELETE" (browsers upper-case it before asking)' } },
  { "a policy that allows nobody", {},
    { "no origins, origin_patterns or allow_null_origin: every cross-origin request is refused" } },
}

describe("cg_cors_compile refuses", function()
  for _, c in ipairs(refused) do
    it(c[1], function()
      local p, d = cors.compile(c[2], "routes[1].cors")
      assert.is_nil(p)
      assert.are.same({ "routes[1].cors." .. c[3] }, d.errors)
    end)
  end
end)

describe("cg_cors_compile accepts", function()
  for _, c in ipairs(accepted) do
    it(c[1], function()
      local p, d = cors.compile(c[2], "routes[1].cors")
      assert.are.same({}, d.errors)
      assert.is_not_nil(p)
      local want = {}
      for i, w in ipairs(c[3]) do want[i] = "routes[1].cors" .. (w:match("^no origins") and ": " or ".") .. w end
      assert.are.same(want, d.warnings)
    end)
  end
end)

describe("cg_cors_compile", function()
  it("reports every problem of a spec at once", function()
    local p, d = cors.compile({ origins = { "https://a.com/", "bar.com" }, methods = { "TRACE" } }, "r")
    assert.is_nil(p)
    assert.are.equal(3, #d.errors)
  end)

  it("uses bare paths without a prefix", function()
    local _, d = cors.compile({ origins = { "bar.com" } }, nil)
    assert.are.same({ 'origins[1]: "bar.com" has no scheme; write "https://bar.com"' }, d.errors)
  end)

  it("refuses patterns when no public suffix list is loaded (fails closed)", function()
    local p, d = cors.compile({ origin_patterns = { "https://*.example.com" } }, "r", true)
    assert.is_nil(p)
    assert.are.same({ 'r.origin_patterns[1]: "https://*.example.com" cannot be checked: the public suffix list is not loaded' },
      d.errors)
  end)

  it("needs no public suffix list for exact origins", function()
    assert.is_not_nil((cors.compile({ origins = A }, "r", true)))
  end)
end)

describe("cg_psl", function()
  local ffi = require("ffi")
  local cases = {
    { "com", true }, { "example.com", false }, { "co.uk", true }, { "example.co.uk", false },
    { "github.io", true }, { "foo.github.io", false }, { "ck", true }, { "anything.ck", true },
    { "www.ck", false }, { "xn--55qx5d.cn", true }, { "shop.xn--55qx5d.cn", false },
    { "kawasaki.jp", false }, { "x.kawasaki.jp", true }, { "city.kawasaki.jp", false }, { "internal", true },
  }
  for _, c in ipairs(cases) do
    it(("says %s is %sa public suffix"):format(c[1], c[2] and "" or "not "), function()
      assert.are.equal(c[2] and 1 or 0, cors.C.cg_psl_is_public_suffix(cors.psl(), c[1], #c[1]))
    end)
  end

  it("loads thousands of rules from Debian's list", function()
    assert.is_true(cors.C.cg_psl_rule_count(cors.psl()) > 5000)
  end)

  it("reports an unreadable file with its path", function()
    local d = ffi.new("cg_diag_t")
    cors.C.cg_diag_init(d)
    local p = cors.C.cg_psl_load("/nonexistent/psl.dat", d)
    local diags = cors.diag_lists(d)
    cors.C.cg_diag_free(d)
    assert.is_true(p == nil)
    assert.are.same({ "public suffix list /nonexistent/psl.dat: cannot read: No such file or directory "
      .. "(apt-get install publicsuffix)" }, diags.errors)
  end)

  it("reads a small list of its own, with wildcard and exception rules", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("// comment\n\nexample\n*.wild.example\n!ok.wild.example\n公司.example\n")
    f:close()
    local d = ffi.new("cg_diag_t")
    cors.C.cg_diag_init(d)
    local psl = ffi.gc(cors.C.cg_psl_load(path, d), cors.C.cg_psl_free)
    cors.C.cg_diag_free(d)
    os.remove(path)
    assert.are.equal(4, cors.C.cg_psl_rule_count(psl))
    local function ps(h) return cors.C.cg_psl_is_public_suffix(psl, h, #h) == 1 end
    assert.is_true(ps("example"))
    assert.is_true(ps("x.wild.example"))
    assert.is_false(ps("ok.wild.example"))
    assert.is_false(ps("wild.example"))
    assert.is_true(ps("xn--55qx5d.example"))
    assert.is_false(ps("a.example"))
  end)
end)
