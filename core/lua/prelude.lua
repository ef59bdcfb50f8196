-- The plugin host's Lua half, run once in every worker's Lua state (and in
-- the state `corsgate check` uses to validate plugins). The C half (host.c)
-- passes in `native` (its primitives) and keeps the returned table: the
-- functions it calls per hook run.
--
-- Plugins see only the allow-listed globals below: no io, no os.execute, no
-- require, no debug. pcall and xpcall are wrapped so a hook the host killed
-- (budget overrun) cannot catch its own death.
local native = ...

local pairs, ipairs, type, tostring, select, error, setfenv, setmetatable =
  pairs, ipairs, type, tostring, select, error, setfenv, setmetatable
local raw_pcall, raw_xpcall, unpack = pcall, xpcall, unpack
local string_rep = string.rep

local _M = {}

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local function pack(...) return { n = select("#", ...), ... } end

local function rethrow_if_killed(r)
  if native.killed() then error(native.kill_reason(), 0) end
  return unpack(r, 1, r.n)
end

local safe_string = copy(string)
safe_string.dump = nil -- bytecode is for loaders, and plugins have none
-- One instruction can ask for gigabytes. The state's allocator (host.c) refuses
-- such a growth anyway; checking the size here first also covers a size past
-- what LuaJIT allocates at all, which it would refuse with its own message.
safe_string.rep = function(s, n, sep)
  local size = #s * (n or 0) + (sep and #sep * (n or 0) or 0)
  native.check_alloc(size)
  return string_rep(s, n, sep)
end
-- Method calls on strings (("x"):rep(n)) look up the strings' metatable, not
-- the global a plugin sees: point it at the same checked table, and hide it
-- (getmetatable("") gives false) so that the raw one stays out of reach.
do
  local string_mt = getmetatable("")
  string_mt.__index = safe_string
  string_mt.__metatable = false
end

local gw = {
  log = native.log,
  now = native.now,
  sleep = native.sleep,
  http = { request = native.http_request },
  redis = { call = native.redis_call },
  shared = {},
  json = { encode = native.json_encode, decode = native.json_decode },
  read_file = native.read_file,
  file_mtime = native.file_mtime,
}

local base = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
  select = select, tonumber = tonumber, tostring = tostring, type = type,
  unpack = unpack, rawget = rawget, rawset = rawset, rawequal = rawequal,
  setmetatable = setmetatable, getmetatable = getmetatable,
  string = safe_string, table = copy(table), math = copy(math),
  os = { time = os.time, clock = os.clock, date = os.date },
  pcall = function(...) return rethrow_if_killed(pack(raw_pcall(...))) end,
  xpcall = function(...) return rethrow_if_killed(pack(raw_xpcall(...))) end,
  gw = gw,
}
base._G = base

local plugins = {}   -- name -> module table
local configs = {}   -- route index -> validated plugin_config

-- Loads a plugin file in an environment of its own (globals it sets stay its
-- own) whose reads fall back to the allow-listed base.
function _M.load(name, file)
  if plugins[name] then return plugins[name] end
  local chunk, err = loadfile(file)
  if not chunk then error(err, 0) end
  local env = setmetatable({}, { __index = base })
  setfenv(chunk, env)
  local ok, mod = raw_pcall(chunk)
  if not ok then error(tostring(mod), 0) end
  if type(mod) ~= "table" then
    error(file .. ": a plugin must return a table of hooks, got " .. type(mod), 0)
  end
  for _, hook in ipairs({ "origin", "expose_headers", "certificate" }) do
    if mod[hook] ~= nil and type(mod[hook]) ~= "function" then
      error(file .. ": " .. hook .. " must be a function", 0)
    end
  end
  if type(mod.origin) ~= "function" and type(mod.certificate) ~= "function" then
    error(file .. ": a plugin needs an origin(ctx) hook (a route's policy) or a certificate(ctx) hook "
      .. "(a TLS listener's)", 0)
  end
  plugins[name] = mod
  return mod
end

local type_names = { string = "a string", number = "a number", boolean = "a boolean", table = "a table" }

-- Checks conf against the plugin's schema: { field = { type = "string",
-- required = true, default = ... } }. Returns the config with defaults, or nil
-- and a list of { path, message }.
function _M.validate(name, conf, path)
  local mod = plugins[name]
  local schema = mod.schema or {}
  local problems = {}
  conf = conf or {}
  local out = {}
  for k, v in pairs(conf) do
    local field = schema[k]
    if type(k) ~= "string" or not field then
      problems[#problems + 1] = { path .. "." .. tostring(k), "unknown key" }
    elseif field.type and type(v) ~= field.type then
      problems[#problems + 1] = { path .. "." .. k,
        "expected " .. (type_names[field.type] or field.type) .. ", got " .. type(v) }
    elseif field.check then
      local ok, why = field.check(v)
      if not ok then problems[#problems + 1] = { path .. "." .. k, why or "invalid value" } end
    end
    out[k] = v
  end
  for k, field in pairs(schema) do
    if out[k] == nil then
      if field.required then
        problems[#problems + 1] = { path .. "." .. k, "required" }
      elseif field.default ~= nil then
        out[k] = field.default
      end
    end
  end
  if #problems > 0 then return nil, problems end
  return out
end

function _M.configure(route, name, conf_source)
  local chunk = assert(loadstring("return " .. conf_source))
  setfenv(chunk, {})
  local conf = chunk()
  local out, problems = _M.validate(name, conf, "plugin_config")
  if not out then error(problems[1][1] .. ": " .. problems[1][2], 0) end
  configs[route] = out
  local mod = plugins[name]
  if mod.init then mod.init(out) end
end

-- What a plugin needs from the config (`requires = { redis = true }`),
-- checked at load so a missing piece is a config error, not a denied origin.
function _M.requires(name, what)
  local req = plugins[name] and plugins[name].requires
  return type(req) == "table" and req[what] == true
end

-- Whether the plugin has the hook its use needs (origin for a route,
-- certificate for a listener).
function _M.has_hook(name, hook)
  return plugins[name] ~= nil and type(plugins[name][hook]) == "function"
end

function _M.has_expose(name)
  return plugins[name] and type(plugins[name].expose_headers) == "function"
end

-- ctx.headers is built on its first read: most plugins decide on the origin
-- alone, and interning every header of every request cost more than such a
-- plugin's whole run. The token ties a ctx to its hook run, so a ctx kept from
-- an earlier run reads no headers of the run going on now.
-- Only a read by the ctx's own run keeps the table: another hook reading a
-- ctx it was handed (through gw.shared, say) gets an empty one, and must not
-- leave that behind in place of the headers the owner has yet to read.
-- getmetatable(ctx) gives nothing: ctx_mt is shared by every route's hooks.
local tokens = setmetatable({}, { __mode = "k" })
local ctx_mt = {
  __index = function(ctx, k)
    if k ~= "headers" then return nil end
    local h, own = native.headers(tokens[ctx])
    if own then rawset(ctx, "headers", h) end
    return h
  end,
  __metatable = false,
}

-- The function a route's hook coroutines start with: the route's module and
-- config are found once, here, and C hands over strings, not tables.
function _M.origin_runner(name, route, route_name)
  local mod, config = plugins[name], configs[route]
  return function(token, origin, scheme, host, port, method, path)
    local ctx = setmetatable({
      origin = origin, scheme = scheme, host = host, port = port,
      method = method, path = path, route = route_name, config = config,
    }, ctx_mt)
    tokens[ctx] = token
    return mod.origin(ctx)
  end
end

-- The function a TLS listener's certificate hook coroutines start with
-- (key: the listener's, as configure got it).
function _M.cert_runner(name, key)
  local mod, config = plugins[name], configs[key]
  return function(server_name)
    return mod.certificate({ server_name = server_name, config = config })
  end
end

function _M.run_expose(name, route, route_name, origin, tenant, status, headers, current)
  local ctx = { origin = origin, tenant = tenant, route = route_name, config = configs[route] }
  local response = { status = status, headers = headers }
  return plugins[name].expose_headers(ctx, response, current)
end

return _M
