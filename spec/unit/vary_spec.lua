-- Merging our Vary tokens with the upstream's.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local cors = require("cors_ffi")

local cases = {
  -- upstream lines, ours, merged
  { {}, "Origin", "Origin" },
  { {}, "", "" },
  { { "Accept-Encoding" }, "Origin", "Accept-Encoding, Origin" },
  { { "Accept-Encoding, Origin" }, "Origin", "Accept-Encoding, Origin" },
  { { "accept-encoding, ORIGIN" }, "Origin", "accept-encoding, ORIGIN" },
  { { "Accept-Encoding", "Accept-Language" }, "Origin", "Accept-Encoding, Accept-Language, Origin" },
  { { "Accept-Encoding", "accept-encoding" }, "", "Accept-Encoding" },
  { { " Accept ,, Cookie , " }, "Origin", "Accept, Cookie, Origin" },
  { { "*" }, "Origin", "*" },
  { { "Accept-Encoding, *" }, "Origin", "*" },
  { { "Accept" }, "*", "*" },
  { { "" }, "Origin", "Origin" },
  { {}, "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers" },
  { { "Origin" }, "Origin, Access-Control-Request-Method", "Origin, Access-Control-Request-Method" },
}

describe("cg_cors_vary_merge", function()
  for _, c in ipairs(cases) do
    it(("merges [%s] with %q into %q"):format(table.concat(c[1], " | "), c[2], c[3]), function()
      assert.are.equal(c[3], (cors.vary_merge(c[1], c[2])))
    end)
  end

  it("reports a buffer that is too small", function()
    local merged, rc = cors.vary_merge({ "Accept-Encoding" }, "Origin", 10)
    assert.is_nil(merged)
    assert.are.equal(cors.C.CG_CORS_E_BUFFER, rc)
    assert.are.equal("Accept-Encoding, Origin", (cors.vary_merge({ "Accept-Encoding" }, "Origin", 23)))
  end)

  it("needs only one byte for *", function()
    assert.are.equal("*", (cors.vary_merge({ "Accept-Encoding, Accept-Language, *" }, "Origin", 1)))
  end)
end)
