-- The tenant store (plugins/tenant_redis.lua's keys), written and read by
-- one script that runs inside Redis (EVAL), so every write is atomic: it is
-- validated whole, checked against who owns each origin, written, and its
-- invalidations published, with nothing of another writer in between. The
-- admin API (/tenants, core/server/tenants_api.c, which embeds this file) and
-- scripts/tenants-load both send it; tenants-load also loads it as a Lua
-- module to refuse a bad file before it reaches Redis.
--
--   EVAL <this> 0 OP PREFIX CHANNEL ARG...
--     load   DOC TAKEOVER [HINT]       DOC {"tenants": {NAME: {...} | null}} (a file)
--     put    NAME BODY TAKEOVER [HINT] BODY one tenant's object (the API's PUT)
--            HINT: M.route_hint's text, what the reading routes do by default
--     delete NAME
--     get    NAME
--     owner  ORIGIN
--     list   AFTER LIMIT MATCH  names after AFTER (paging), starting with MATCH
--   -> { status, JSON }: 200/201, 400 {"problems": [...]}, 404,
--      409 {"conflicts": [{"origin", "owner", "path"}]} (an origin another
--      tenant owns: taken over only when TAKEOVER is "1"), 500.
--
-- Keys (PREFIX "corsgate:"): origin:{origin} (hash: the decision),
-- tenant:{name} (hash: policy, the tenant as loaded), tenant:{name}:origins
-- (set), tenants (sorted set of names, for paging), tenants:version.
-- Lua 5.1 as Redis runs it: locals only (Redis refuses new globals).
local in_redis = redis ~= nil
local json = in_redis and cjson or require("cjson")
local M = {}

local default_ports = { http = "80", https = "443" }

-- A dotted quad as browsers write IPv4 (four parts, 0-255, no leading zero).
local function ipv4(h)
  local parts = { h:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
  if #parts ~= 4 then return false end
  for _, d in ipairs(parts) do
    if #d > 3 or tonumber(d) > 255 or (#d > 1 and d:sub(1, 1) == "0") then return false end
  end
  return true
end

-- A host name the gateway takes (core/cors/origin.c): labels of letters,
-- digits, '-' and '_', none empty; a numeric last label only in a dotted
-- quad (browsers turn any other into one); IPv6 in brackets.
local function valid_host(h)
  if h:sub(1, 1) == "[" then
    local inner = h:match("^%[([%x:.]+)%]$")
    return inner ~= nil and select(2, inner:gsub(":", "")) >= 2
  end
  if h:find("[^%w._-]") then return false end
  for label in (h .. "."):gmatch("([^.]*)%.") do
    if label == "" then return false end
  end
  if h:match("[^.]+$"):match("^%d+$") then return ipv4(h) end
  return true
end

-- An origin as browsers send it, normalized the way the gateway keys its
-- cache; what the gateway would refuse as malformed is refused here too, so
-- nothing is stored that can never match.
function M.normalize_origin(o)
  if type(o) ~= "string" then return nil, "expected a string" end
  if #o > 255 then return nil, "longer than 255 bytes, which the gateway refuses as malformed" end
  local scheme, rest = o:match("^(%a[%w+.-]*)://(.+)$")
  if not scheme then return nil, "expected scheme://host[:port], got \"" .. o .. "\"" end
  scheme = scheme:lower()
  if rest:find("[/?#@%s]") then return nil, "an origin has no path, query, userinfo or spaces: \"" .. o .. "\"" end
  local h, p
  if rest:sub(1, 1) == "[" then
    h, p = rest:match("^(%[[^%]]*%])(.*)$")
  else
    h, p = rest:match("^([^:]+)(.*)$")
  end
  if not h or (p ~= "" and not p:match("^:%d+$")) then return nil, "invalid host or port in \"" .. o .. "\"" end
  h = h:lower()
  if h:find("[\128-\255]") then return nil, "invalid host in \"" .. o .. "\" (use punycode)" end
  if not valid_host(h) then
    return nil, "invalid host in \"" .. o .. "\" (labels of letters, digits, '-' or '_'; IPv4 as a dotted quad; "
      .. "IPv6 in brackets)"
  end
  p = p:sub(2)
  if p ~= "" and tonumber(p) > 65535 then return nil, "port out of range in \"" .. o .. "\"" end
  if p ~= "" then p = string.format("%d", tonumber(p)) end -- ":0443" is port 443, as browsers send it
  if p == default_ports[scheme] then p = "" end
  return scheme .. "://" .. h .. (p ~= "" and ":" .. p or "")
end

function M.valid_name(name)
  return type(name) == "string" and #name <= 63 and name:match("^[%w._-]+$") ~= nil
end

local function at(path, key)
  if path == "" then return key end
  return path .. "." .. key
end

-- A JSON list (an object decodes to a table too: {"a": 1} is no list).
local function is_list(v)
  if type(v) ~= "table" then return false end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  return n == #v
end

local tenant_keys = { origins = true, allowed = true, credentials = true, expose_headers = true, methods = true,
                      headers = true, max_age = true, ttl = true }

-- A plain-http origin a browser sends from elsewhere than this machine.
local function insecure(norm)
  local h = norm:match("^http://(%[[^%]]+%])") or norm:match("^http://([^:/]+)")
  if not h then return false end
  return not (h == "localhost" or h:match("%.localhost$") or h == "[::1]" or (ipv4(h) and h:match("^127%.")))
end

-- What the routes that read the store (tenant_redis) do with a tenant that
-- does not say, from the admin API as three characters, each "1" or "0":
-- one of them sends credentials by default, all of them set
-- allow_insecure_origins, one of them exposes "*" by default. Without it
-- (tenants-load, which reads no config), only what a tenant says itself is
-- checked. A decision the gateway would refuse is refused here, with its
-- path, rather than stored and failing closed on every request.
function M.route_hint(text)
  local function at(i) return text ~= nil and text:sub(i, i) == "1" end
  return { credentials = at(1), insecure = at(2), expose_any = at(3) }
end

-- One tenant's object checked; problems go through problem(path, message).
-- Returns { name, origins (normalized, in order), fields (the origin hash),
-- policy (the object as given) }. owners: origin -> the tenant of this
-- write that lists it (an origin listed twice is a problem). route:
-- M.route_hint's.
local function check_tenant(name, t, path, problem, owners, route)
  route = route or M.route_hint(nil)
  if type(t) ~= "table" then
    problem(path, "expected an object" .. (path == "" and "" or ", or null to delete the tenant"))
    return nil
  end
  for k in pairs(t) do
    if not tenant_keys[k] then problem(at(path, tostring(k)), "unknown key") end
  end
  local rec = { name = name, origins = {}, fields = { "tenant", name }, policy = t }
  local creds = t.credentials
  if creds == nil then creds = route.credentials end
  creds = creds == true
  if not is_list(t.origins) then problem(at(path, "origins"), "required: a list of origins") end
  for i, o in ipairs(is_list(t.origins) and t.origins or {}) do
    local p = at(path, "origins") .. "[" .. i .. "]"
    local norm, why = M.normalize_origin(o)
    if not norm then
      problem(p, why)
    elseif creds and t.allowed ~= false and not route.insecure and insecure(norm) then
      problem(p, norm .. " is plain http, and credentials = true would trust it with cookies: give this tenant "
        .. "credentials = false, or set allow_insecure_origins = true on the route")
    elseif owners[norm] and owners[norm] ~= name then
      problem(p, norm .. " is also listed by tenant " .. owners[norm])
    elseif not owners[norm] then
      owners[norm] = name
      rec.origins[#rec.origins + 1] = norm
    end
  end
  local f = rec.fields
  for _, k in ipairs({ "allowed", "credentials" }) do
    if t[k] ~= nil and type(t[k]) ~= "boolean" then problem(at(path, k), "expected true or false") end
  end
  f[#f + 1] = "allow"; f[#f + 1] = t.allowed == false and "0" or "1"
  if t.credentials ~= nil then f[#f + 1] = "credentials"; f[#f + 1] = t.credentials and "1" or "0" end
  local function names(key, allow_star)
    local v = t[key]
    if v == nil then return nil end
    if v == "*" and allow_star then return "*" end
    if not is_list(v) then problem(at(path, key), "expected a list of header names") return nil end
    local ok = true
    for i, n in ipairs(v) do
      if type(n) ~= "string" or not n:match("^[!#$%%&'*+.^_`|~%w-]+$") then
        problem(at(path, key) .. "[" .. i .. "]", "not a header name: " .. (type(n) == "string" and n or "a " .. type(n)))
        ok = false
      end
    end
    return ok and table.concat(v, ", ") or nil
  end
  local expose = names("expose_headers", true)
  if expose == "*" and creds then
    problem(at(path, "expose_headers"), "\"*\" with credentials is read literally by browsers: list the names"
      .. (t.credentials == nil and " (the route sends credentials by default)" or ""))
  elseif t.expose_headers == nil and route.expose_any and creds then
    problem(at(path, "credentials"), "the route exposes \"*\" by default, which browsers read literally with "
      .. "credentials: list this tenant's expose_headers")
  end

  if expose then f[#f + 1] = "expose_headers"; f[#f + 1] = expose end
  local hdrs = names("headers", false)
  if hdrs then f[#f + 1] = "headers"; f[#f + 1] = hdrs end
  local methods = names("methods", false)
  if methods then f[#f + 1] = "methods"; f[#f + 1] = methods end
  for _, km in ipairs({ { "max_age", 86400 }, { "ttl", 2592000 } }) do
    local k, most = km[1], km[2]
    local v = t[k]
    if v ~= nil then
      if type(v) ~= "number" or v < 0 or v ~= math.floor(v) or v > most then
        problem(at(path, k), "expected a whole number of seconds (at most " .. (most == 86400 and "a day" or "30 days") .. ")")
      else
        f[#f + 1] = k; f[#f + 1] = string.format("%d", v)
      end
    end
  end
  return rec
end

local function decode(text, what)
  local ok, doc = pcall(json.decode, text)
  if not ok then return nil, what .. " is not JSON: " .. tostring(doc):gsub("^.-:%d+: ", "") end
  return doc
end

-- A tenants file ({"tenants": {...}}): the tenants to write (in name order,
-- deleted ones with delete = true) and the problems, each with its path.
function M.check_file(text, route)
  local doc, err = decode(text, "the file")
  if not doc then return nil, { err } end
  if type(doc) ~= "table" or type(doc.tenants) ~= "table" then return nil, { "expected {\"tenants\": {...}}" } end
  local problems, tenants, owners = {}, {}, {}
  local function problem(path, msg) problems[#problems + 1] = path .. ": " .. msg end
  local names = {}
  for name in pairs(doc.tenants) do names[#names + 1] = tostring(name) end
  table.sort(names)
  for _, name in ipairs(names) do
    local t = doc.tenants[name]
    local path = "tenants." .. name
    if not M.valid_name(name) then
      problem(path, "a tenant name is 1-63 letters, digits, '.', '_' or '-'")
    elseif t == json.null then
      tenants[#tenants + 1] = { name = name, delete = true, origins = {} }
    else
      tenants[#tenants + 1] = check_tenant(name, t, path, problem, owners, route)
    end
  end
  return tenants, problems
end

-- One tenant's object as the API's PUT takes it.
function M.check_one(name, text, route)
  if not M.valid_name(name) then return nil, { "name: a tenant name is 1-63 letters, digits, '.', '_' or '-'" } end
  local t, err = decode(text, "the body")
  if t == nil then return nil, { err } end
  local problems = {}
  local rec = check_tenant(name, t, "", function(path, msg) problems[#problems + 1] = path .. ": " .. msg end, {},
    route)
  return { rec }, problems
end

if not in_redis then return M end

-- --- inside Redis ---------------------------------------------------------------

local op, P, channel = ARGV[1], ARGV[2], ARGV[3]
local call = redis.call

local function origin_key(o) return P .. "origin:" .. o end
local function set_key(t) return P .. "tenant:" .. t .. ":origins" end
local function tenant_key(t) return P .. "tenant:" .. t end
local INDEX = P .. "tenants"

local function str(s) return json.encode(s) end
local function list_json(l)
  local out = {}
  for i, v in ipairs(l) do out[i] = str(v) end
  return "[" .. table.concat(out, ",") .. "]"
end
local function answer(status, body) return { status, body } end
local function problems_answer(problems)
  return answer(400, "{\"error\":\"nothing written: " .. #problems .. " problem(s)\",\"problems\":"
    .. list_json(problems) .. "}")
end

-- The tenant as PUT takes it: known keys in a fixed order, lists as lists
-- (Redis's cjson writes an empty table as {}).
local function tenant_json(t, origins)
  local parts = { "\"origins\":" .. list_json(origins) }
  for _, k in ipairs({ "allowed", "credentials" }) do
    if type(t[k]) == "boolean" then parts[#parts + 1] = str(k) .. ":" .. tostring(t[k]) end
  end
  for _, k in ipairs({ "expose_headers", "methods", "headers" }) do
    local v = t[k]
    if v == "*" then parts[#parts + 1] = str(k) .. ":\"*\""
    elseif type(v) == "table" then parts[#parts + 1] = str(k) .. ":" .. list_json(v) end
  end
  for _, k in ipairs({ "max_age", "ttl" }) do
    if type(t[k]) == "number" then parts[#parts + 1] = str(k) .. ":" .. string.format("%d", t[k]) end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function key_type(k) return call("TYPE", k).ok end

-- Writes tenants (from check_file or check_one), refusing origins other
-- tenants own unless takeover. Returns the answer.
local function write(tenants, takeover, paths)
  local in_write = {}
  for _, t in ipairs(tenants) do in_write[t.name] = t end
  local listed = {} -- origin -> tenant of this write
  for _, t in ipairs(tenants) do for _, o in ipairs(t.origins) do listed[o] = t.name end end
  -- keys of someone else's make the write fail half-way: check them first
  local foreign = {}
  local function want(k, kind)
    local ty = key_type(k)
    if ty == "none" or ty == kind then return true end
    foreign[#foreign + 1] = k .. " is a " .. ty .. ", not a " .. kind
    return false
  end
  local old, conflicts, current = {}, {}, {}
  for _, t in ipairs(tenants) do
    want(tenant_key(t.name), "hash")
    old[t.name] = want(set_key(t.name), "set") and call("SMEMBERS", set_key(t.name)) or {}
    for _, o in ipairs(old[t.name]) do want(origin_key(o), "hash") end
    for i, o in ipairs(t.origins) do
      local owner = want(origin_key(o), "hash") and call("HGET", origin_key(o), "tenant")
      if owner then
        current[o] = owner
        -- another tenant's origin: moved only on purpose (takeover), or when
        -- this same write gives that tenant a list without it
        if owner ~= t.name and not takeover and not in_write[owner] then
          conflicts[#conflicts + 1] = "{\"origin\":" .. str(o) .. ",\"owner\":" .. str(owner) .. ",\"path\":"
            .. str(paths(t.name, i)) .. "}"
        end
      end
    end
  end
  if #foreign > 0 then
    return answer(500, "{\"error\":\"nothing written: keys under the prefix hold other data\",\"problems\":"
      .. list_json(foreign) .. "}")
  end
  if #conflicts > 0 then
    return answer(409, "{\"error\":\"nothing written: origins owned by another tenant (take them over on purpose "
      .. "with takeover)\",\"conflicts\":[" .. table.concat(conflicts, ",") .. "]}")
  end
  local changed, changed_list, written, removed, created, moved = {}, {}, 0, 0, {}, {}
  local function touch(o)
    if not changed[o] then changed[o] = true; changed_list[#changed_list + 1] = o end
  end
  for _, t in ipairs(tenants) do
    local keep = {}
    for _, o in ipairs(t.origins) do keep[o] = true end
    for _, o in ipairs(old[t.name]) do
      -- gone from this tenant; its key goes unless another tenant holds it
      if not keep[o] and not listed[o] then
        local owner = call("HGET", origin_key(o), "tenant")
        if not owner or owner == t.name then
          call("DEL", origin_key(o))
          touch(o)
          removed = removed + 1
        end
      end
    end
    for _, o in ipairs(t.origins) do
      local prev = current[o]
      if prev and prev ~= t.name then
        call("SREM", set_key(prev), o)
        moved[#moved + 1] = "{\"origin\":" .. str(o) .. ",\"from\":" .. str(prev) .. ",\"to\":" .. str(t.name) .. "}"
      end
      call("DEL", origin_key(o))
      call("HSET", origin_key(o), unpack(t.fields))
      touch(o)
      written = written + 1
    end
    if not t.delete and call("EXISTS", tenant_key(t.name)) == 0 then created[#created + 1] = t.name end
    call("DEL", set_key(t.name), tenant_key(t.name))
    if t.delete then
      call("ZREM", INDEX, t.name)
    else
      for i = 1, #t.origins, 1000 do
        call("SADD", set_key(t.name), unpack(t.origins, i, math.min(i + 999, #t.origins)))
      end
      call("HSET", tenant_key(t.name), "policy", tenant_json(t.policy, t.origins))
      call("ZADD", INDEX, 0, t.name)
    end
  end
  call("INCR", P .. "tenants:version")
  -- every instance drops what it cached for these tenants and origins
  local lines = {}
  for _, t in ipairs(tenants) do lines[#lines + 1] = "tenant " .. t.name end
  table.sort(changed_list)
  for _, o in ipairs(changed_list) do lines[#lines + 1] = "origin " .. o end
  local listeners = 0
  for i = 1, channel ~= "" and #lines or 0, 500 do
    listeners = call("PUBLISH", channel, table.concat(lines, "\n", i, math.min(i + 499, #lines)))
  end
  return answer(#created > 0 and #tenants == 1 and 201 or 200, string.format(
    "{\"tenants\":%d,\"written\":%d,\"removed\":%d,\"created\":%s,\"moved\":[%s],\"invalidations\":%d,"
    .. "\"listeners\":%d}", #tenants, written, removed, list_json(created), table.concat(moved, ","), #lines, listeners))
end

-- Tenants loaded before the index existed get into it once.
local function ensure_index()
  if call("EXISTS", INDEX .. ":complete") == 1 then return end
  local pattern = (P .. "tenant:"):gsub("[%*%?%[%]\\]", "\\%0") .. "*"
  local cursor = "0"
  repeat
    local r = call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
    cursor = r[1]
    for _, k in ipairs(r[2]) do
      local name = k:sub(#P + 8)
      if not name:find(":", 1, true) and key_type(k) == "hash" then call("ZADD", INDEX, 0, name) end
    end
  until cursor == "0"
  call("SET", INDEX .. ":complete", "1")
end

local function tenant_summary(name)
  local policy = call("HGET", tenant_key(name), "policy")
  local ok, t = pcall(json.decode, policy or "{}")
  local allowed = not (ok and type(t) == "table" and t.allowed == false)
  return "{\"name\":" .. str(name) .. ",\"origins\":" .. call("SCARD", set_key(name)) .. ",\"allowed\":"
    .. tostring(allowed) .. "}"
end

if op == "load" then
  local tenants, problems = M.check_file(ARGV[4], M.route_hint(ARGV[6]))
  if #problems > 0 then return problems_answer(problems) end
  return write(tenants, ARGV[5] == "1", function(name, i) return "tenants." .. name .. ".origins[" .. i .. "]" end)
elseif op == "put" then
  local tenants, problems = M.check_one(ARGV[4], ARGV[5], M.route_hint(ARGV[7]))
  if #problems > 0 then return problems_answer(problems) end
  return write(tenants, ARGV[6] == "1", function(_, i) return "origins[" .. i .. "]" end)
elseif op == "delete" then
  local name = ARGV[4]
  if not M.valid_name(name) or call("EXISTS", tenant_key(name), set_key(name)) == 0 then
    return answer(404, "{\"error\":\"no tenant " .. str(name):sub(2, -2) .. "\"}")
  end
  return write({ { name = name, delete = true, origins = {} } }, false, nil)
elseif op == "get" then
  local name = ARGV[4]
  local policy = M.valid_name(name) and call("HGET", tenant_key(name), "policy")
  if not policy then return answer(404, "{\"error\":\"no tenant " .. str(name):sub(2, -2) .. "\"}") end
  local origins = call("SMEMBERS", set_key(name))
  table.sort(origins)
  local ok, t = pcall(json.decode, policy)
  if not ok or type(t) ~= "table" then t = {} end
  return answer(200, "{\"name\":" .. str(name) .. ",\"tenant\":" .. tenant_json(t, origins) .. "}")
elseif op == "owner" then
  local norm, why = M.normalize_origin(ARGV[4])
  if not norm then return answer(400, "{\"error\":" .. str("origin: " .. why) .. "}") end
  local h = call("HGETALL", origin_key(norm))
  local f = {}
  for i = 1, #h, 2 do f[h[i]] = h[i + 1] end
  if not f.tenant then return answer(404, "{\"error\":" .. str("no tenant owns " .. norm) .. ",\"origin\":"
    .. str(norm) .. "}") end
  return answer(200, "{\"origin\":" .. str(norm) .. ",\"tenant\":" .. str(f.tenant) .. ",\"allowed\":"
    .. tostring(f.allow ~= "0") .. "}")
elseif op == "list" then
  ensure_index()
  local after, limit, match = ARGV[4], tonumber(ARGV[5]) or 100, ARGV[6] or ""
  -- after the page's last name, but never before the names that match (bytes
  -- compared as ZRANGEBYLEX does: Lua's < follows the server's locale)
  local function bytes_ge(x, y)
    for k = 1, math.min(#x, #y) do
      local p, q = x:byte(k), y:byte(k)
      if p ~= q then return p > q end
    end
    return #x >= #y
  end
  local from = (after ~= "" and bytes_ge(after, match)) and "(" .. after or (match ~= "" and "[" .. match or "-")
  local names = call("ZRANGEBYLEX", INDEX, from, match ~= "" and "[" .. match .. "\255" or "+", "LIMIT", 0,
    limit + 1)
  local items = {}
  for i = 1, math.min(limit, #names) do items[i] = tenant_summary(names[i]) end
  local nxt = #names > limit and str(names[limit]) or "null"
  return answer(200, "{\"tenants\":[" .. table.concat(items, ",") .. "],\"next\":" .. nxt .. ",\"total\":"
    .. call("ZCARD", INDEX) .. "}")
end
return answer(400, "{\"error\":\"unknown operation\"}")
