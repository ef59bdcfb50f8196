-- Origin parsing: what browsers send parses and normalizes; every other shape is
-- malformed, with a reason.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local cors = require("cors_ffi")

describe("cg_cors_origin_parse", function()
  local valid = {
    -- input, normalized, extra fields to check
    { "https://example.com", "https://example.com", { noncanonical = false, port = -1, host = "example.com" } },
    { "http://example.com:8080", "http://example.com:8080", { port = 8080, scheme = "http" } },
    { "HTTPS://EXAMPLE.COM", "https://example.com", { noncanonical = true } },
    { "https://Example.Com:8443", "https://example.com:8443", { noncanonical = true, port = 8443 } },
    { "https://example.com:443", "https://example.com", { noncanonical = true, port = -1 } },
    { "http://example.com:80", "http://example.com", { noncanonical = true, port = -1 } },
    { "https://example.com:80", "https://example.com:80", { port = 80 } },
    { "http://example.com:443", "http://example.com:443", { port = 443 } },
    { "https://example.com:0443", "https://example.com", { noncanonical = true } },
    { "https://example.com:08080", "https://example.com:8080", { noncanonical = true } },
    { "https://example.com:65535", "https://example.com:65535", { port = 65535 } },
    { "http://[::1]:8080", "http://[::1]:8080", { loopback = true, is_ip = true, host = "[::1]" } },
    { "http://[::1]", "http://[::1]", { loopback = true } },
    { "http://[2001:DB8::1]", "http://[2001:db8::1]", { loopback = false, is_ip = true, noncanonical = true } },
    { "http://[::ffff:127.0.0.1]", "http://[::ffff:127.0.0.1]", { is_ip = true } },
    { "https://xn--bcher-kva.example", "https://xn--bcher-kva.example", { noncanonical = false } },
    { "https://XN--BCHER-KVA.example", "https://xn--bcher-kva.example", { noncanonical = true } },
    { "http://127.0.0.1:3000", "http://127.0.0.1:3000", { loopback = true, is_ip = true } },
    { "http://127.255.0.9", "http://127.255.0.9", { loopback = true } },
    { "http://10.0.0.1", "http://10.0.0.1", { loopback = false, is_ip = true } },
    { "http://localhost:3000", "http://localhost:3000", { loopback = true, is_ip = false } },
    { "http://app.localhost", "http://app.localhost", { loopback = true } },
    { "http://localhost.example.com", "http://localhost.example.com", { loopback = false } },
    { "http://notlocalhost", "http://notlocalhost", { loopback = false } },
    { "null", "null", { is_null = true } },
    { "chrome-extension://abcdefghijklmnop", "chrome-extension://abcdefghijklmnop", { scheme = "chrome-extension" } },
    { "https://a_b.example.com", "https://a_b.example.com", {} },
    { "https://a-b.example.com", "https://a-b.example.com", {} },
    { "https://1.example.com", "https://1.example.com", { is_ip = false } },
  }
  for _, c in ipairs(valid) do
    it(("parses %q as %q"):format(c[1], c[2]), function()
      local o, err = cors.parse_origin(c[1])
      assert.is_nil(err)
      assert.are.equal(c[2], o.norm)
      for k, v in pairs(c[3]) do assert.are.same(v, o[k], k) end
    end)
  end

  local malformed = {
    { "", "EMPTY" },
    { "https://" .. ("a"):rep(248), "TOO_LONG" },
    { "https://exa mple.com", "BAD_CHAR" },
    { "https://example.com\r\nSet-Cookie: x=1", "BAD_CHAR" },
    { "https://example.com\n", "BAD_CHAR" },
    { " https://example.com", "BAD_CHAR" },
    { "https://example.com\t", "BAD_CHAR" },
    { "https://b\195\188cher.example", "BAD_CHAR" },
    { "https://example.com\0.evil.net", "BAD_CHAR" },
    { "https://example.com\127", "BAD_CHAR" },
    { "example.com", "NO_SCHEME" },
    { "localhost:3000", "NO_SCHEME" },
    { "//example.com", "NO_SCHEME" },
    { "NULL", "NO_SCHEME" },
    { "example.com/x://y", "NO_SCHEME" },
    { "://example.com", "BAD_SCHEME" },
    { "1http://example.com", "BAD_SCHEME" },
    { "ht_tp://example.com", "BAD_SCHEME" },
    { "https://user@example.com", "USERINFO" },
    { "https://user:pass@example.com", "USERINFO" },
    { "https://", "BAD_HOST" },
    { "https://:443", "BAD_HOST" },
    { "https://exa..mple.com", "BAD_HOST" },
    { "https://example.com.", "BAD_HOST" },
    { "https://.example.com", "BAD_HOST" },
    { "https://exa%41mple.com", "BAD_HOST" },
    { "https://*.example.com", "BAD_HOST" },
    { "https://a.123", "BAD_HOST" },
    { "http://256.1.1.1", "BAD_HOST" },
    { "http://1.2.3", "BAD_HOST" },
    { "http://01.2.3.4", "BAD_HOST" },
    { "http://[::1", "BAD_HOST" },
    { "http://[]", "BAD_HOST" },
    { "http://[::g]", "BAD_HOST" },
    { "http://[::1]x", "BAD_HOST" },
    { "http://[1]", "BAD_HOST" },
    { "https://example.com:", "BAD_PORT" },
    { "https://example.com:65536", "BAD_PORT" },
    { "https://example.com:99999999999999999999", "BAD_PORT" },
    { "https://example.com:8o", "BAD_PORT" },
    { "https://example.com:-1", "BAD_PORT" },
    { "https://example.com:80:80", "BAD_PORT" },
    { "https://example.com/", "TRAILING_SLASH" },
    { "https://example.com/path", "PATH" },
    { "https://example.com//", "PATH" },
    { "https://example.com?x=1", "QUERY" },
    { "https://example.com/?x", "QUERY" },
    { "https://example.com#frag", "FRAGMENT" },
    { "https://example.com/#frag", "FRAGMENT" },
    { "null ", "BAD_CHAR" },
  }
  for _, c in ipairs(malformed) do
    it(("refuses %q as %s"):format(c[1], c[2]), function()
      local o, err = cors.parse_origin(c[1])
      assert.is_nil(o)
      assert.are.equal(c[2], err)
    end)
  end

  it("accepts exactly 255 bytes and refuses 256", function()
    local host = ("a"):rep(63) .. "." .. ("b"):rep(63) .. "." .. ("c"):rep(63) .. "." .. ("d"):rep(55)
    local s = "https://" .. host
    assert.are.equal(255, #s)
    assert.are.equal(s, cors.parse_origin(s).norm)
    assert.are.equal("TOO_LONG", select(2, cors.parse_origin(s .. "d")))
  end)

  it("reports a norm_buf that is too small instead of overflowing it", function()
    assert.are.equal("BUFFER", select(2, cors.parse_origin("https://example.com", 10)))
    assert.are.equal("https://example.com", cors.parse_origin("https://example.com", 19).norm)
  end)

  it("answers like the general parser on every shape near the usual one", function()
    -- The fast path takes lower-case http(s) names with an optional port; each
    -- one-byte change of these lands on either side of its edges.
    local seeds = { "https://app.example.com", "http://localhost:3000", "https://a-b_c.example:8443",
      "http://x1.y2:65535", "https://a.b.c.d.e", "http://1.example.com", "https://a:1" }
    local bytes = { "", "A", "z", "0", "9", ".", "-", "_", ":", "/", "@", "[", "]", "%", " ", "\0", "\255" }
    local inputs = {}
    for _, c in ipairs(valid) do inputs[#inputs + 1] = c[1] end
    for _, c in ipairs(malformed) do inputs[#inputs + 1] = c[1] end
    for _, seed in ipairs(seeds) do
      inputs[#inputs + 1] = seed
      for i = 1, #seed + 1 do
        for _, b in ipairs(bytes) do
          inputs[#inputs + 1] = seed:sub(1, i - 1) .. b .. seed:sub(i + 1) -- replace (or delete) byte i
          inputs[#inputs + 1] = seed:sub(1, i - 1) .. b .. seed:sub(i) -- insert before byte i
        end
      end
      for _, port in ipairs({ ":0", ":00", ":01", ":80", ":443", ":65536", ":99999", ":123456", ":" }) do
        inputs[#inputs + 1] = seed:gsub(":%d+$", "") .. port
      end
    end
    local fast_hits = 0
    for _, s in ipairs(inputs) do
      local o, err = cors.parse_origin(s)
      local g, gerr = cors.parse_origin(s, nil, true)
      assert.are.same(g, o, s)
      assert.are.equal(gerr, err, s)
      if o and not o.noncanonical and not o.is_ip and o.scheme:match("^https?$") then fast_hits = fast_hits + 1 end
    end
    assert.is_true(#inputs > 1500 and fast_hits > 300, #inputs .. " inputs, " .. fast_hits .. " canonical")
  end)

  it("names every error code in cg_cors_origin_strerror", function()
    local ffi = require("ffi")
    local seen = {}
    for code = -13, 0 do
      local s = ffi.string(cors.C.cg_cors_origin_strerror(code))
      assert.is_nil(seen[s], "duplicate phrase " .. s)
      seen[s] = true
    end
    assert.are.equal("has a path", ffi.string(cors.C.cg_cors_origin_strerror(-10)))
  end)
end)
