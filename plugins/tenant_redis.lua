-- tenant_redis: which tenant owns an origin, and that tenant's policy, read
-- from Redis (the config's top-level redis = { ... }). scripts/tenants-load
-- writes the keys from a JSON file and publishes what changed on the
-- invalidation channel, so every replica drops the decisions it cached.
--
-- Key layout (prefix "corsgate:" by default):
--   {prefix}origin:{origin}          hash: the decision for one origin
--       tenant          the tenant's name (a label in logs, metrics, purges)
--       allow           "1", or "0" for a tenant that is switched off
--       credentials     "1" / "0"  (absent: the route's default)
--       expose_headers  "X-Request-Id, X-Trace" (absent: the route's)
--       methods, headers  the same, comma-separated
--       max_age, ttl    seconds
--   {prefix}tenant:{tenant}          hash: the tenant as loaded (for people)
--   {prefix}tenant:{tenant}:origins  set: its origins, so a new load can
--                                    remove the ones it no longer lists
-- The origin is the normalized one browsers send: "https://app.acme.com".
--
-- An origin without a key is denied. Redis down or slow is an error: the
-- origin is denied (fails closed), while a decision already cached keeps
-- serving stale up to cache.stale_limit.
local _M = {}

local tonumber, gmatch = tonumber, string.gmatch

_M.requires = { redis = true }

_M.schema = {
  prefix = { type = "string", default = "corsgate:",
             check = function(v) return not v:find("[%s]"), "no spaces in a key prefix" end },
}

local function list(s)
  if s == nil then return nil end
  local out = {}
  for item in gmatch(s, "[^,%s]+") do out[#out + 1] = item end
  return out
end

local function flag(s)
  if s == "1" then return true elseif s == "0" then return false end
  return nil
end

function _M.origin(ctx)
  local reply, err = gw.redis.call("HGETALL", ctx.config.prefix .. "origin:" .. ctx.origin)
  if not reply then error("redis: " .. err, 0) end
  if #reply == 0 then return false end
  local h = {}
  for i = 1, #reply, 2 do h[reply[i]] = reply[i + 1] end
  local ttl = tonumber(h.ttl)
  if h.allow == "0" then return { allow = false, tenant = h.tenant, ttl = ttl } end
  return {
    allow = true,
    tenant = h.tenant,
    credentials = flag(h.credentials),
    expose_headers = list(h.expose_headers),
    methods = list(h.methods),
    headers = list(h.headers),
    max_age = tonumber(h.max_age),
    ttl = ttl,
  }
end

return _M
