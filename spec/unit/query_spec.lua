-- Query strings as the admin API reads them (core/util/query.c): what
-- `curl '...?origin=https%3A%2F%2Fapp.example&header=X-A&header=X-B'` means.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local cors = require("cors_ffi")
local ffi = require("ffi")
local C = cors.C

if not pcall(ffi.typeof, "cg_query_t") then ffi.cdef(cors.header("core/util/query.h")) end

-- { {key, value}, ... } of text
local function parse(text)
  local buf = ffi.new("char[?]", #text + 1, text)
  local q = ffi.new("cg_query_t")
  C.cg_query_parse(buf, q)
  local out = {}
  for i = 0, q.n - 1 do out[#out + 1] = { ffi.string(q.keys[i]), ffi.string(q.vals[i]) } end
  return out, q, buf
end

describe("query strings", function()
  it("splits on & and =, and percent-decodes keys and values ('+' a space)", function()
    assert.same({ { "origin", "https://app.example" }, { "method", "PUT" }, { "q", "a b c" } },
      (parse("origin=https%3A%2F%2Fapp.example&method=PUT&q=a+b%20c")))
  end)

  it("keeps repeated keys in order, and gives the first to cg_query_get", function()
    local pairs_, q = parse("header=X-A&header=X-B")
    assert.same({ { "header", "X-A" }, { "header", "X-B" } }, pairs_)
    assert.equal("X-A", ffi.string(C.cg_query_get(q, "header")))
    assert.is_true(C.cg_query_get(q, "nope") == nil)
  end)

  it("takes a key without '=' as an empty value, and an empty query as no pair", function()
    assert.same({ { "takeover", "" }, { "a", "" } }, (parse("takeover&a=")))
    assert.same({}, (parse("")))
  end)

  it("keeps malformed escapes and %00 as written, never a NUL inside a value", function()
    assert.same({ { "a", "%zz" }, { "b", "%00" }, { "c", "%4" }, { "d", "%" } }, (parse("a=%zz&b=%00&c=%4&d=%")))
  end)

  it("keeps the first 32 pairs", function()
    local parts = {}
    for i = 1, 40 do parts[i] = "k" .. i .. "=" .. i end
    local pairs_ = parse(table.concat(parts, "&"))
    assert.equal(32, #pairs_)
    assert.same({ "k32", "32" }, pairs_[32])
  end)
end)
