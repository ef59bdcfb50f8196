-- LuaJIT FFI binding of libcorsgate for the unit specs: loads the library, declares
-- core/cors/cors.h (read from the tree so the specs never drift from the header),
-- and wraps the C calls into Lua-friendly helpers.
local ffi = require("ffi")

local _M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local root = os.getenv("CORSGATE_ROOT") or (here .. "/../..")
_M.root = root

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- A header of the tree, its preprocessor lines dropped, ready for ffi.cdef.
function _M.header(relpath)
  return (read(root .. "/" .. relpath):gsub("\n#[^\n]*", "\n"):gsub("^#[^\n]*", ""))
end

-- busted reloads modules for every spec file, but C declarations live once per VM.
if not pcall(ffi.typeof, "cg_cors_result_t") then
  ffi.cdef([[
typedef enum { CG_DIAG_ERROR = 0, CG_DIAG_WARNING = 1 } cg_diag_level_t;
typedef struct cg_diag_item { cg_diag_level_t level; char *text; } cg_diag_item_t;
typedef struct cg_diag { cg_diag_item_t *items; int count, cap; int errors, warnings; } cg_diag_t;
void cg_diag_init(cg_diag_t *d);
void cg_diag_free(cg_diag_t *d);
]])
  ffi.cdef(_M.header("core/cors/cors.h"))
end

local C = ffi.load(os.getenv("CORSGATE_LIB") or (root .. "/build/libcorsgate.so"))
_M.C = C

_M.KIND = { [0] = "NO_CORS", "PREFLIGHT_ALLOWED", "PREFLIGHT_REFUSED", "ACTUAL_ALLOWED", "ACTUAL_REFUSED" }
_M.REASON = { [0] = "OK", "NO_ORIGIN", "REFUSED_ORIGIN", "REFUSED_METHOD", "REFUSED_HEADER",
  "REFUSED_PRIVATE_NETWORK", "MALFORMED_ORIGIN", "TOO_MANY_HEADERS" }
_M.ORIGIN_ERR = { [0] = "OK", [-1] = "EMPTY", [-2] = "TOO_LONG", [-3] = "BAD_CHAR", [-4] = "NO_SCHEME",
  [-5] = "BAD_SCHEME", [-6] = "USERINFO", [-7] = "BAD_HOST", [-8] = "BAD_PORT", [-9] = "TRAILING_SLASH",
  [-10] = "PATH", [-11] = "QUERY", [-12] = "FRAGMENT", [-13] = "BUFFER" }

local function diag_lists(d)
  local out = { errors = {}, warnings = {} }
  for i = 0, d.count - 1 do
    local item = d.items[i]
    local list = item.level == C.CG_DIAG_ERROR and out.errors or out.warnings
    list[#list + 1] = ffi.string(item.text)
  end
  return out
end
_M.diag_lists = diag_lists

local psl
function _M.psl()
  if psl == nil then
    local d = ffi.new("cg_diag_t")
    C.cg_diag_init(d)
    local p = C.cg_psl_load(nil, d)
    C.cg_diag_free(d)
    assert(p ~= nil, "cannot load the public suffix list")
    psl = ffi.gc(p, C.cg_psl_free)
  end
  return psl
end

if not pcall(function() return C.cg_cors_origin_parse_general end) then
  -- internal (core/cors/cors_internal.h): the parser without its fast path
  ffi.cdef("int cg_cors_origin_parse_general(const char *s, size_t len, cg_origin_t *out, char *norm_buf, size_t norm_len);")
end

-- general: use the parser without its fast path for canonical origins
function _M.parse_origin(s, bufsize, general)
  local o = ffi.new("cg_origin_t")
  local buf = ffi.new("char[?]", bufsize or 300)
  local parse = general and C.cg_cors_origin_parse_general or C.cg_cors_origin_parse
  local rc = parse(s, #s, o, buf, bufsize or 300)
  if rc ~= 0 then return nil, _M.ORIGIN_ERR[rc] or rc end
  return {
    norm = ffi.string(o.norm, o.norm_len),
    scheme = ffi.string(o.scheme or "", o.scheme ~= nil and o.scheme_len or 0),
    host = ffi.string(o.host or "", o.host ~= nil and o.host_len or 0),
    port = o.port, is_null = o.is_null == 1, noncanonical = o.noncanonical == 1,
    loopback = o.loopback == 1, is_ip = o.is_ip == 1,
  }
end

-- Builds a cg_cors_spec_t from a Lua table shaped like the config file, and
-- returns it with the anchors that keep its strings alive.
local function string_array(list, anchors)
  local arr = ffi.new("const char *[?]", math.max(#list, 1))
  for i, s in ipairs(list) do
    anchors[#anchors + 1] = s
    arr[i - 1] = s
  end
  anchors[#anchors + 1] = arr
  return arr, #list
end

function _M.spec(t)
  local s, anchors = ffi.new("cg_cors_spec_t"), {}
  if t.origins == "*" then
    s.origins_any = 1
  elseif t.origins then
    s.origins, s.origins_count = string_array(t.origins, anchors)
  end
  if t.origin_patterns then s.origin_patterns, s.origin_patterns_count = string_array(t.origin_patterns, anchors) end
  if t.methods == "*" then s.methods_any = 1 elseif t.methods then
    s.methods, s.methods_count = string_array(t.methods, anchors)
  end
  if t.preflight_status then s.preflight_status = t.preflight_status end
  if t.headers == "*" then s.headers_any = 1 elseif t.headers then
    s.headers, s.headers_count = string_array(t.headers, anchors)
  end
  if t.expose_headers == "*" then s.expose_headers_any = 1 elseif t.expose_headers then
    s.expose_headers, s.expose_headers_count = string_array(t.expose_headers, anchors)
  end
  if t.max_age then s.has_max_age, s.max_age = 1, t.max_age end
  for _, k in ipairs({ "allow_null_origin", "credentials", "private_network", "preflight_continue",
    "timing_allow_origin", "allow_insecure_origins", "origins_by_plugin" }) do
    s[k] = t[k] and 1 or 0
  end
  return s, anchors
end

-- Returns the policy (or nil) and { errors = {...}, warnings = {...} }.
function _M.compile(t, prefix, no_psl)
  local s, anchors = _M.spec(t)
  local d = ffi.new("cg_diag_t")
  C.cg_diag_init(d)
  local p = C.cg_cors_compile(s, (not no_psl) and _M.psl() or nil, prefix, d)
  local diags = diag_lists(d)
  C.cg_diag_free(d)
  local _ = anchors
  if p == nil then return nil, diags end
  return ffi.gc(p, C.cg_cors_policy_free), diags
end

-- Compiles or fails the spec with the diagnostics in the message.
function _M.must_compile(t)
  local p, diags = _M.compile(t)
  if not p then error("compile failed: " .. table.concat(diags.errors, "; "), 2) end
  return p
end

-- Compiles a plugin's decision (a Lua table shaped like origin()'s return
-- value) against policy for origin. Returns the override (or nil) and the diags;
-- the override keeps policy alive, since it borrows from it.
local ov_anchor = setmetatable({}, { __mode = "k" })
function _M.decision(policy, t, origin)
  local s, anchors = ffi.new("cg_cors_decision_spec_t"), {}
  s.allow = t.allow and 1 or 0
  if origin then
    anchors[#anchors + 1] = origin
    s.origin, s.origin_len = origin, #origin
  end
  if t.credentials ~= nil then s.has_credentials, s.credentials = 1, t.credentials and 1 or 0 end
  if t.expose_headers == "*" then s.has_expose, s.expose_any = 1, 1 elseif t.expose_headers then
    s.has_expose = 1
    s.expose_headers, s.expose_headers_count = string_array(t.expose_headers, anchors)
  end
  if t.methods == "*" then s.has_methods, s.methods_any = 1, 1 elseif t.methods then
    s.has_methods = 1
    s.methods, s.methods_count = string_array(t.methods, anchors)
  end
  if t.headers == "*" then s.has_headers, s.headers_any = 1, 1 elseif t.headers then
    s.has_headers = 1
    s.headers, s.headers_count = string_array(t.headers, anchors)
  end
  if t.max_age then s.has_max_age, s.max_age = 1, t.max_age end
  local d = ffi.new("cg_diag_t")
  C.cg_diag_init(d)
  local ov = C.cg_cors_override_compile(policy, s, d)
  local diags = diag_lists(d)
  C.cg_diag_free(d)
  local _ = anchors
  if ov == nil then return nil, diags end
  ov = ffi.gc(ov, C.cg_cors_override_free)
  ov_anchor[ov] = policy
  return ov, diags, C.cg_cors_decision_is_plain(s) == 1
end

-- cg_cors_expose_line over a Lua list: the line, or nil and the status.
function _M.expose_line(list, bufsize)
  local arr = ffi.new("const char *[?]", #list + 1)
  local lens = ffi.new("size_t[?]", #list + 1)
  for i, v in ipairs(list) do arr[i - 1], lens[i - 1] = v, #v end
  local size = bufsize or 512
  local buf = ffi.new("char[?]", size)
  local n = C.cg_cors_expose_line(arr, lens, #list, buf, size)
  local _ = list
  if n < 0 then return nil, n end
  return ffi.string(buf, n)
end

local function parse_lines(raw)
  local headers, order = {}, {}
  for name, value in raw:gmatch("([^:\r\n]+): ([^\r\n]*)\r\n") do
    local key = name:lower()
    assert(headers[key] == nil, "header line repeated: " .. name)
    headers[key] = value
    order[#order + 1] = name
  end
  return headers, order
end
_M.parse_lines = parse_lines

-- req: { method=, origin= (string or list of strings), acrm= (string or list),
-- acrh= (string or list of lines), acrpn=, name_refusal= }: a cg_cors_request_t
-- and the Lua values it points into (kept alive by the caller).
local function request(req)
  local r, anchors = ffi.new("cg_cors_request_t"), {}
  local method = req.method or "GET"
  r.method, r.method_len = method, #method
  local function first(v, cfield, lfield, nfield)
    if v == nil then return end
    local list = type(v) == "table" and v or { v }
    r[nfield] = #list
    if #list > 0 then
      anchors[#anchors + 1] = list[1]
      r[cfield], r[lfield] = list[1], #list[1]
    end
  end
  first(req.origin, "origin", "origin_len", "origin_count")
  first(req.acrm, "acrm", "acrm_len", "acrm_count")
  if req.acrh then
    local list = type(req.acrh) == "table" and req.acrh or { req.acrh }
    local arr = ffi.new("const char *[?]", #list + 1)
    local lens = ffi.new("size_t[?]", #list + 1)
    for i, s in ipairs(list) do
      arr[i - 1], lens[i - 1] = s, #s
      anchors[#anchors + 1] = s
    end
    anchors[#anchors + 1], anchors[#anchors + 2] = arr, lens
    r.acrh, r.acrh_len, r.acrh_count = arr, lens, #list
  end
  if req.acrpn then
    anchors[#anchors + 1] = req.acrpn
    r.acrpn, r.acrpn_len = req.acrpn, #req.acrpn
  end
  r.name_refusal = req.name_refusal and 1 or 0
  return r, anchors
end

-- Returns a Lua table of the result.
function _M.evaluate(policy, req, bufsize, override)
  local r, anchors = request(req)
  local out = ffi.new("cg_cors_result_t")
  local size = bufsize or C.CG_CORS_BUF_SIZE
  local buf = ffi.new("char[?]", math.max(size, 1))
  local rc = C.cg_cors_evaluate(policy, override, r, out, buf, size)
  if rc < 0 then return { rc = rc } end
  local raw = ffi.string(buf, out.headers_len)
  local headers, order = parse_lines(raw)
  local _ = anchors
  return {
    rc = rc,
    kind = _M.KIND[out.kind],
    reason = _M.REASON[out.reason],
    detail = out.detail ~= nil and ffi.string(out.detail) or nil,
    detail_arg = out.detail_arg ~= nil and ffi.string(out.detail_arg, out.detail_arg_len) or nil,
    vary = ffi.string(out.vary),
    preflight_continue = out.preflight_continue == 1,
    status = out.status,
    origin = out.origin ~= nil and ffi.string(out.origin, out.origin_len) or nil,
    headers_len = tonumber(out.headers_len),
    raw = raw,
    headers = headers,
    order = order,
  }
end

-- cg_cors_problems: a list of { reason =, detail =, arg = }, or nil and the status.
function _M.problems(policy, req, override, max)
  local r, anchors = request(req)
  max = max or 16
  local out = ffi.new("cg_cors_problem_t[?]", max)
  local n = C.cg_cors_problems(policy, override, r, out, max)
  local _ = anchors
  if n < 0 then return nil, n end
  local list = { count = n }
  for i = 0, math.min(n, max) - 1 do
    list[#list + 1] = { reason = _M.REASON[out[i].reason], detail = ffi.string(out[i].detail),
      arg = out[i].arg ~= nil and ffi.string(out[i].arg, out[i].arg_len) or nil }
  end
  return list
end

function _M.vary_merge(values, ours, bufsize)
  local arr = ffi.new("const char *[?]", #values + 1)
  local lens = ffi.new("size_t[?]", #values + 1)
  for i, v in ipairs(values) do arr[i - 1], lens[i - 1] = v, #v end
  local size = bufsize or 1024
  local buf = ffi.new("char[?]", math.max(size, 1))
  local rc = C.cg_cors_vary_merge(arr, lens, #values, ours, buf, size)
  local _ = values
  if rc < 0 then return nil, rc end
  return ffi.string(buf, rc)
end

-- The config loader needs the Lua C API, so it is tested through a small C module
-- (cors_config_shim.c) rather than the FFI. CORSGATE_CONFIG_SHIM names a prebuilt
-- one; otherwise it is compiled here against build/libcorsgate.so.
local shim
function _M.config_shim()
  if shim then return shim end
  local so = os.getenv("CORSGATE_CONFIG_SHIM")
  local built
  if not so then
    local tmp = os.tmpname()
    os.remove(tmp)
    so = tmp .. "_cors_config_shim.so"
    built = so
    local libdir = (os.getenv("CORSGATE_LIB") or (root .. "/build/libcorsgate.so")):match("^(.*)/[^/]*$")
    local cmd = table.concat({
      os.getenv("CC") or "cc", "-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -shared -fPIC",
      "-I" .. root .. "/core", "$(pkg-config --cflags luajit)",
      root .. "/spec/unit/cors_config_shim.c", root .. "/core/config/cors_config.c",
      "-L" .. libdir, "-lcorsgate", "-Wl,-rpath," .. libdir, "-lm", "-o", so, "2>&1",
    }, " ")
    local p = io.popen(cmd)
    local log = p:read("*a")
    local ok = p:close()
    if not ok then error("building the config shim failed:\n" .. cmd .. "\n" .. log) end
  end
  local open = assert(package.loadlib(so, "luaopen_cors_config_shim"))
  if built then os.remove(built) end -- already mapped; nothing left in /tmp
  shim = open()
  return shim
end

-- Loads a cors table through cg_cors_config_load: policy (or nil), diags, rc.
function _M.config_load(tbl, path)
  local p, errors, warnings, rc = _M.config_shim().load(tbl, path)
  local policy = p and ffi.gc(ffi.cast("cg_cors_policy_t *", p), C.cg_cors_policy_free) or nil
  return policy, { errors = errors, warnings = warnings }, rc
end

return _M
