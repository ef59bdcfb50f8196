-- tenant_certs_redis: tenants' own API domains served with their own
-- certificates, kept in Redis (the config's top-level redis = { ... }) so
-- every replica serves the same one. A TLS listener's plugin:
--
--   listen = { { address = "0.0.0.0:443", tls = {
--     certificates = { { cert = "/etc/corsgate/tls/api.pem", key = "/etc/corsgate/tls/api.key" } },
--     plugin = "tenant_certs_redis" } } }
--
-- scripts/tenants-load --cert api.acme.com acme.pem acme.key writes one
-- (checked first) and publishes "cert api.acme.com" on the invalidation
-- channel, so every instance serves the new one at its next handshake.
--
-- Key layout (prefix "corsgate:" by default):
--   {prefix}cert:{name}   hash: cert (PEM: the certificate, then its
--                         intermediates), key (PEM), loaded_at, ttl (optional)
-- name is the server name, lower case ("api.acme.com"), or a wildcard
-- ("*.acme.com") asked for when the exact name has no key.
--
-- The private keys live in Redis: whoever reads that Redis can impersonate
-- the tenants' domains. Give it a password (requirepass, and
-- CORSGATE_REDIS_PASSWORD / redis.password here), keep it on a private
-- network reachable by the gateways and the loader only, and do not share it
-- with data other services read.
--
-- No key for a name: no certificate from here (the listener's first one is
-- served). Redis down or slow is an error: the handshake fails (fails
-- closed), while a certificate already cached keeps serving stale up to
-- cache.stale_limit.
local _M = {}

local tonumber = tonumber

_M.requires = { redis = true }

_M.schema = {
  prefix = { type = "string", default = "corsgate:",
             check = function(v) return not v:find("[%s]"), "no spaces in a key prefix" end },
}

local function lookup(prefix, name)
  local reply, err = gw.redis.call("HGETALL", prefix .. "cert:" .. name)
  if not reply then error("redis: " .. err, 0) end
  if #reply == 0 then return nil end
  local h = {}
  for i = 1, #reply, 2 do h[reply[i]] = reply[i + 1] end
  return h
end

function _M.certificate(ctx)
  local name, prefix = ctx.server_name, ctx.config.prefix
  local h = lookup(prefix, name)
  if not h then
    -- a wildcard covers one label: a.acme.com, not acme.com or b.a.acme.com
    local parent = name:match("^[^.]+%.(.+%..+)$")
    if parent then h = lookup(prefix, "*." .. parent) end
  end
  if not h then return nil end
  if not h.cert or not h.key then error("redis: " .. prefix .. "cert:" .. name .. " lacks cert or key", 0) end
  return { cert = h.cert, key = h.key, ttl = tonumber(h.ttl) }
end

return _M
