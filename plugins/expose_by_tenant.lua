-- expose_by_tenant: per-tenant Access-Control-Expose-Headers, decided per
-- response. Each tenant lists its origins and the headers its pages may read;
-- headers in expose_on_error are exposed only on 4xx/5xx answers, and only
-- headers the response really carries are listed.
--
--   plugin_config = { tenants = {
--     acme = { origins = { "https://app.acme.com" },
--              expose_headers = { "X-Request-Id" }, expose_on_error = { "X-Error-Code" } } } }
local _M = {}

local type, pairs, ipairs = type, pairs, ipairs

_M.schema = {
  tenants = { type = "table", required = true },
}

local by_origin

local function index(conf)
  if by_origin then return by_origin end
  by_origin = {}
  for name, t in pairs(conf.tenants) do
    if type(t) == "table" and type(t.origins) == "table" then
      for _, o in ipairs(t.origins) do by_origin[o:lower()] = { name = name, t = t } end
    end
  end
  return by_origin
end

function _M.init(conf)
  by_origin = nil
  index(conf)
end

function _M.origin(ctx)
  local hit = index(ctx.config)[ctx.origin]
  if not hit then return false end
  return { allow = true, tenant = hit.name }
end

function _M.expose_headers(ctx, response)
  local hit = ctx.tenant and ctx.config.tenants[ctx.tenant]
  if type(hit) ~= "table" then return {} end
  local out = {}
  local function add(list)
    if type(list) ~= "table" then return end
    for _, name in ipairs(list) do
      if response.headers[name:lower()] ~= nil then out[#out + 1] = name end
    end
  end
  add(hit.expose_headers)
  if response.status >= 400 then add(hit.expose_on_error) end
  return out
end

return _M
