-- Deterministic large bodies and a cheap checksum, shared by the specs and the
-- upstream server process, so either end can check the other's bytes.
--
-- A blob of N bytes is a run of BLOCK-byte blocks, each starting with its index,
-- so a lost, repeated or reordered block changes the checksum (a plain byte sum
-- would not notice a reorder).
local ffi = require("ffi")

local floor, format, rep, sub = math.floor, string.format, string.rep, string.sub

local _M = {}

local BLOCK = 65536
_M.BLOCK = BLOCK

local filler = rep("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_", BLOCK / 64)

-- Block i (0-based) of the blob; the last one is cut to what is left.
function _M.block(i, total)
  local b = format("[%010d]", i) .. sub(filler, 13)
  local left = total - i * BLOCK
  if left < BLOCK then b = sub(b, 1, left) end
  return b
end

function _M.blocks(total)
  return floor((total + BLOCK - 1) / BLOCK)
end

-- Adler-32 style running sum over bytes; position-sensitive through `b`.
-- The modulo runs once per 4096 bytes: a and b stay far below 2^53 between.
local MOD = 65521
local u8p = ffi.typeof("const uint8_t *")

function _M.new()
  return { a = 1, b = 0, n = 0 }
end

function _M.update(st, s)
  local p = ffi.cast(u8p, s)
  local len = #s
  local a, b = st.a, st.b
  local i = 0
  while i < len do
    local stop = i + 4096
    if stop > len then stop = len end
    for j = i, stop - 1 do
      a = a + p[j]
      b = b + a
    end
    a, b = a % MOD, b % MOD
    i = stop
  end
  st.a, st.b, st.n = a, b, st.n + len
  return st
end

function _M.digest(st)
  return format("%04x%04x", st.b, st.a)
end

function _M.sum(s)
  return _M.digest(_M.update(_M.new(), s))
end

-- Checksum of the whole N-byte blob, computed the same way a receiver would.
function _M.checksum(total)
  local st = _M.new()
  for i = 0, _M.blocks(total) - 1 do _M.update(st, _M.block(i, total)) end
  return _M.digest(st)
end

return _M
