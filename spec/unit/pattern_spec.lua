-- Subdomain patterns: whole leftmost labels only, apex excluded, label
-- boundaries respected, ports exact unless ":*".
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local cors = require("cors_ffi")

local cases = {
  -- pattern, origin, allowed
  { "https://*.example.com", "https://a.example.com", true },
  { "https://*.example.com", "https://a.b.example.com", true },
  { "https://*.example.com", "https://A.EXAMPLE.COM", true },
  { "https://*.example.com", "https://a.example.com:443", true },
  { "https://*.example.com", "https://example.com", false },
  { "https://*.example.com", "https://evil-example.com", false },
  { "https://*.example.com", "https://a.evil-example.com", false },
  { "https://*.example.com", "https://aexample.com", false },
  { "https://*.example.com", "https://example.com.evil.net", false },
  { "https://*.example.com", "https://a.example.com.evil.net", false },
  { "https://*.example.com", "https://a.example.co", false },
  { "https://*.example.com", "http://a.example.com", false },
  { "https://*.example.com", "https://a.example.com:8443", false },
  { "https://*.example.com", "https://.example.com", false },
  { "https://*.example.com", "https://a.example.com.", false },
  { "https://*.example.com", "null", false },
  { "https://*.example.com:*", "https://a.example.com:8443", true },
  { "https://*.example.com:*", "https://a.example.com", true },
  { "https://*.example.com:*", "https://example.com:8443", false },
  { "https://*.example.com:8443", "https://a.example.com:8443", true },
  { "https://*.example.com:8443", "https://a.example.com", false },
  { "https://*.example.com:8443", "https://a.example.com:9443", false },
  { "https://*.*.example.com", "https://a.example.com", false },
  { "https://*.*.example.com", "https://a.b.example.com", true },
  { "https://*.*.example.com", "https://a.b.c.example.com", true },
  { "https://*.foo.github.io", "https://a.foo.github.io", true },
  { "https://*.foo.github.io", "https://foo.github.io", false },
  { "https://*.foo.github.io", "https://bar.github.io", false },
  { "HTTPS://*.Example.COM", "https://a.example.com", true },
  { "https://*.example.com:443", "https://a.example.com", true },
  { "https://*.xn--bcher-kva.example", "https://shop.xn--bcher-kva.example", true },
  -- only the port a wildcard (Spring's "http://localhost:[*]")
  { "http://localhost:*", "http://localhost:3000", true },
  { "http://localhost:*", "http://localhost", true },
  { "http://localhost:*", "http://LOCALHOST:5173", true },
  { "http://localhost:*", "http://app.localhost:3000", false },
  { "http://localhost:*", "https://localhost:3000", false },
  { "http://localhost:*", "http://localhost.evil.net:3000", false },
  { "http://127.0.0.1:*", "http://127.0.0.1:8080", true },
  { "http://127.0.0.1:*", "http://127.0.0.10:8080", false },
  { "http://[::1]:*", "http://[::1]:8080", true },
  { "https://example.com:*", "https://example.com:8443", true },
  { "https://example.com:*", "https://a.example.com:8443", false },
}

describe("origin_patterns matching", function()
  for _, c in ipairs(cases) do
    it(("%s %s %s"):format(c[1], c[3] and "allows" or "refuses", c[2]), function()
      local p = cors.must_compile({ origin_patterns = { c[1] } })
      local r = cors.evaluate(p, { method = "GET", origin = c[2] })
      if c[3] then
        assert.are.equal("ACTUAL_ALLOWED", r.kind)
        assert.are.equal(cors.parse_origin(c[2]).norm, r.headers["access-control-allow-origin"])
      else
        assert.are.equal("ACTUAL_REFUSED", r.kind)
        assert.is_nil(r.headers["access-control-allow-origin"])
        assert.are.equal("", r.raw)
      end
    end)
  end

  it("checks every pattern of the list", function()
    local p = cors.must_compile({ origin_patterns = { "https://*.a.com", "https://*.b.com", "http://*.localhost:*" } })
    assert.are.equal("ACTUAL_ALLOWED", cors.evaluate(p, { origin = "https://x.b.com" }).kind)
    assert.are.equal("ACTUAL_ALLOWED", cors.evaluate(p, { origin = "http://app.localhost:5173" }).kind)
    assert.are.equal("ACTUAL_REFUSED", cors.evaluate(p, { origin = "https://x.c.com" }).kind)
  end)

  it("combines exact origins and patterns", function()
    local p = cors.must_compile({ origins = { "https://example.com" }, origin_patterns = { "https://*.example.com" } })
    assert.are.equal("ACTUAL_ALLOWED", cors.evaluate(p, { origin = "https://example.com" }).kind)
    assert.are.equal("ACTUAL_ALLOWED", cors.evaluate(p, { origin = "https://a.example.com" }).kind)
    assert.are.equal("ACTUAL_REFUSED", cors.evaluate(p, { origin = "https://evil-example.com" }).kind)
  end)
end)
