-- tenant_subdomain: the tenant is the origin's leftmost label under a base
-- domain (https://acme.app.example.com is tenant "acme"). Tenants come from a
-- JSON file, re-read when its modification time changes:
--
--   {"tenants": {"acme": {"expose_headers": ["X-Request-Id"], "credentials": true}}}
--
-- A tenant missing from the file is denied. Decisions are cached per origin,
-- so a change to the file shows once the cached decision expires (cors.ttl).
local _M = {}

local type, pairs = type, pairs

_M.schema = {
  base_domain = { type = "string", required = true },  -- "app.example.com"
  tenants_file = { type = "string", required = true },
  scheme = { type = "string", default = "https" },
}

local state = { mtime = nil, tenants = nil }

local function tenants(conf)
  local mtime, err = gw.file_mtime(conf.tenants_file)
  if not mtime then error(err, 0) end
  if state.tenants and state.mtime == mtime then return state.tenants end
  local text, rerr = gw.read_file(conf.tenants_file)
  if not text then error(rerr, 0) end
  local doc = gw.json.decode(text)
  if type(doc) ~= "table" or type(doc.tenants) ~= "table" then
    error(conf.tenants_file .. ': expected {"tenants": {...}}', 0)
  end
  local list = {}
  for name, t in pairs(doc.tenants) do
    if type(name) == "string" and type(t) == "table" then list[name:lower()] = t end
  end
  state.mtime, state.tenants = mtime, list
  gw.log("info", "tenant_subdomain: loaded", conf.tenants_file)
  return list
end

function _M.origin(ctx)
  local conf = ctx.config
  if ctx.scheme ~= conf.scheme then return false end
  local suffix = "." .. conf.base_domain:lower()
  local host = ctx.host
  if #host <= #suffix or host:sub(-#suffix) ~= suffix then return false end
  local label = host:sub(1, #host - #suffix)
  if label:find(".", 1, true) then return false end  -- exactly one label: no tenant owns a.b.app.example.com
  local t = tenants(conf)[label]
  if not t then return false end
  return {
    allow = true,
    tenant = label,
    expose_headers = type(t.expose_headers) == "table" and t.expose_headers or nil,
    credentials = t.credentials == true or nil,
  }
end

return _M
