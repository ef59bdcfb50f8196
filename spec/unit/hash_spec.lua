-- The keyed hash behind the origin sets and the decision cache (core/util/hash.c):
-- SipHash as its authors define it, and a key no client can know in advance.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local cors = require("cors_ffi")
local ffi = require("ffi")
local C = cors.C
local bit = require("bit")

if not pcall(function() return C.cg_siphash24 end) then
  ffi.cdef(cors.header("core/util/hash.h"))
end

local function bytes(n)
  local t = {}
  for i = 0, n - 1 do t[#t + 1] = string.char(i) end
  return table.concat(t)
end

local function hex(u64) return bit.tohex(u64) end -- 16 digits for 64-bit cdata

describe("hash", function()
  -- key 00 01 .. 0f, message 00 01 .. (n - 1): the SipHash paper's appendix
  -- and the first vector of its reference implementation
  local k0, k1 = 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL

  it("is SipHash-2-4 to the paper's test vectors", function()
    assert.are.equal("726fdb47dd0e0e31", hex(C.cg_siphash24(k0, k1, "", 0)))
    assert.are.equal("a129ca6149be45e5", hex(C.cg_siphash24(k0, k1, bytes(15), 15)))
  end)

  it("reads every byte of the message and its length", function()
    local base = C.cg_siphash24(k0, k1, bytes(15), 15)
    assert.are_not.equal(base, C.cg_siphash24(k0, k1, bytes(14), 14))
    assert.are_not.equal(base, C.cg_siphash24(k0, k1, bytes(15):sub(1, 14) .. "\255", 15))
    assert.are_not.equal(C.cg_siphash24(k0, k1, "\0", 1), C.cg_siphash24(k0, k1, "", 0))
  end)

  it("hashes alike within a process, apart per tweak", function()
    local o = "https://app.example.com"
    assert.are.equal(C.cg_hash(o, #o, 1), C.cg_hash(o, #o, 1))
    assert.are_not.equal(C.cg_hash(o, #o, 1), C.cg_hash(o, #o, 2))
  end)

  it("draws a new key in every process", function()
    local lib = os.getenv("CORSGATE_LIB") or (cors.root .. "/build/libcorsgate.so")
    local script = ([[
      local ffi = require("ffi")
      ffi.cdef("uint64_t cg_hash(const void *p, size_t len, uint64_t tweak);")
      local C = ffi.load(%q)
      io.write(tostring(C.cg_hash("https://app.example.com", 23, 0)))
    ]]):format(lib)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(script)
    f:close()
    local function run()
      local p = assert(io.popen("luajit " .. path))
      local out = p:read("*a")
      p:close()
      return out
    end
    local a, b = run(), run()
    os.remove(path)
    assert.is_truthy(a:match("^%d+ULL$"), a)
    assert.are_not.equal(a, b)
  end)
end)
