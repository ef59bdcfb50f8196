-- Assertions whose failures explain themselves: the response as received and the
-- gateway's log tail come with the message.
--
--   local body = assert.res_status(200, res, gw)   -- res may be nil, err
--   assert.header(res, "content-type", "application/json", gw)
--   assert.no_header(res, "keep-alive", gw)
--
-- Registered into luassert (so they count as failures, not errors) and also
-- returned as plain functions.
local luassert = require("luassert")
local say = require("say")

local format, concat = string.format, table.concat

local _M = {}

local function show_response(res, err)
  if not res then return "no response: " .. tostring(err) end
  local body = res.body or ""
  if #body > 2048 then body = body:sub(1, 2048) .. format("... (%d bytes)", #res.body) end
  return (res.raw_head or (res.status_line or "?") .. "\r\n") .. body
end
_M.show_response = show_response

local function context(res, gw, err)
  local out = { "--- response ---", show_response(res, err) }
  if gw and gw.log_tail then
    out[#out + 1] = "--- gateway log (tail) ---"
    out[#out + 1] = gw:log_tail(30)
  end
  return concat(out, "\n")
end
_M.context = context

-- Each assertion takes (args..., res, gw?) and builds its own message.
local function register(name, check)
  local key = "assertion.corsgate_" .. name
  say:set(key .. ".positive", "%s")
  say:set(key .. ".negative", "%s")
  luassert:register("assertion", name, function(state, arguments)
    local ok, msg, ret = check(arguments)
    arguments[1] = msg or "(no message)"
    arguments.n = 1
    arguments.nofmt = { true }
    if ret ~= nil then return ok, { ret } end
    return ok
  end, key .. ".negative", key .. ".positive")
end

-- res_status(expected, res, gw_or_err) -> body
register("res_status", function(a)
  local expected, res, gw = a[1], a[2], a[3]
  local err = type(gw) == "string" and gw or nil
  if type(gw) ~= "table" then gw = nil end
  if res and res.status == expected then return true, nil, res.body end
  return false, format("expected status %d, got %s\n%s", expected,
    res and tostring(res.status) or "no response", context(res, gw, err))
end)

-- header(res, name, value_or_nil, gw): present exactly once, and equal to value when given.
register("header", function(a)
  local res, name, value, gw = a[1], a[2], a[3], a[4]
  if not res then return false, "no response\n" .. context(res, gw) end
  local all = res.headers:all(name)
  if #all == 1 and (value == nil or all[1] == value) then return true, nil, all[1] end
  local got = #all == 0 and "absent" or format("%q", concat(all, '" | "'))
  return false, format("header %s: expected %s, got %s\n%s", name,
    value and format("%q (once)", value) or "present once", got, context(res, gw))
end)

-- no_header(res, name, gw)
register("no_header", function(a)
  local res, name, gw = a[1], a[2], a[3]
  if not res then return false, "no response\n" .. context(res, gw) end
  local all = res.headers:all(name)
  if #all == 0 then return true end
  return false, format("header %s must be absent, got %q\n%s", name, concat(all, " | "), context(res, gw))
end)

-- log_has(gw, plain_string): the gateway log contains it.
register("log_has", function(a)
  local gw, needle = a[1], a[2]
  if gw:log():find(needle, 1, true) then return true end
  return false, format("gateway log lacks %q\n--- gateway log (tail) ---\n%s", needle, gw:log_tail(40))
end)

_M.res_status = function(...) return luassert.res_status(...) end
_M.header = function(...) return luassert.header(...) end
_M.no_header = function(...) return luassert.no_header(...) end

return _M
