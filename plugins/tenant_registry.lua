-- tenant_registry: asks a tenant service whether an origin is allowed.
--
--   GET {base_url}/origins/{percent-encoded origin}
--   200 {"allowed": true, "tenant": "acme", "expose_headers": [...], "credentials": false, "ttl": 60}
--   404 not allowed
--
-- Anything else (the service down, slow, answering garbage) is an error: the
-- origin is denied (fails closed), while a decision already cached keeps
-- serving stale up to cache.stale_limit.
local _M = {}

local type, tostring, format = type, tostring, string.format

_M.schema = {
  base_url = { type = "string", required = true,
               check = function(v) return v:match("^http://[^/]+$") ~= nil, "expected http://host:port, no path" end },
  timeout = { type = "number", default = 2 },
}

local function encode(s)
  return (s:gsub("[^%w%-%._~]", function(ch) return format("%%%02X", ch:byte()) end))
end

function _M.origin(ctx)
  local conf = ctx.config
  local res, err = gw.http.request{
    method = "GET",
    url = conf.base_url .. "/origins/" .. encode(ctx.origin),
    headers = { ["Accept"] = "application/json" },
    timeout = conf.timeout,
  }
  if not res then error("tenant service: " .. tostring(err), 0) end
  if res.status == 404 then return false end
  if res.status ~= 200 then error("tenant service answered " .. res.status, 0) end
  local doc = gw.json.decode(res.body)
  if type(doc) ~= "table" then error("tenant service answered something that is not a JSON object", 0) end
  if doc.allowed ~= true then
    return { allow = false, ttl = type(doc.ttl) == "number" and doc.ttl or nil }
  end
  return {
    allow = true,
    tenant = type(doc.tenant) == "string" and doc.tenant or nil,
    expose_headers = type(doc.expose_headers) == "table" and doc.expose_headers or nil,
    credentials = type(doc.credentials) == "boolean" and doc.credentials or nil,
    ttl = type(doc.ttl) == "number" and doc.ttl or nil,
  }
end

return _M
