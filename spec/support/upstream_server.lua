-- A test upstream, run as its own process:  luajit upstream_server.lua READYFILE
--
-- Listens on 127.0.0.1, port chosen by the kernel, and writes the port to
-- READYFILE once it accepts. One coroutine per connection over non-blocking
-- luasocket sockets, scheduled with socket.select; a coroutine yields ("read",
-- sock), ("write", sock) or ("sleep", seconds).
--
-- Paths may be mounted under /mnt/NAME/ (for routes with a prefix).
-- Every request body is read first (Content-Length or chunked), counted and
-- checksummed, then the path picks the answer:
--   /echo, anything else  200 JSON describing the request (see describe())
--   /headers              the same, plus hop-by-hop response headers to be removed
--   /bytes/N, /chunked/N  N bytes of spec/support/blob.lua, Content-Length or
--                         chunked, in 64 KiB writes; X-Checksum has their checksum
--   /slow/MS              waits MS milliseconds, then answers like /echo
--   /slowread/MS          waits MS milliseconds before reading the body, then /echo
--   /status/NNN           that status, small text body
--   /garbage              bytes that are not HTTP, then close
--   /reset                a head promising 1 MiB, 1000 bytes, then an abortive close
--   /hang                 never answers; waits for the peer to go away
--   /close                answers like /echo with Connection: close, then closes
--   /cl-and-te, /two-cl, /bad-status   responses with broken framing or status
--   /until-close          a body delimited by closing the connection
--   /short                promises 100 bytes, sends 10, then waits
--   /early-hints          a 103 before the /echo answer
--   /huge-head            a 100 KB response header
--   /304-with-length      a 304 carrying the Content-Length of the representation
--   /idle-close/MS        answers like /echo, then closes the idle connection after MS
--   /sts                  /echo with the upstream's own Strict-Transport-Security
--   /cors-headers         /echo plus the upstream's own CORS headers and Vary (which
--                         a route with a policy must replace, and one without pass on)
--   /count                JSON { requests, connections, open, requests_by_path }:
--                         requests and connections that carried one, not /count
--
-- It is also the tenant service of the plugin specs (plugins/tenant_registry.lua):
--   PUT /_tenants         body {"origins": {ORIGIN: {"allowed": true, "tenant": ...}},
--                         "mode": "ok" | "down" | "slow" | "hang" | "garbage", "delay_ms": N}
--   GET /origins/ORIGIN   (percent-encoded) 200 with the origin's document, 404 when
--                         unknown; mode down: 500, slow: after delay_ms, hang: never,
--                         garbage: 200 with a body that is not JSON. Calls are
--                         counted in /count's requests_by_path.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/../../?.lua;" .. package.path

local socket = require("socket")
local cjson = require("cjson")
local blob = require("spec.support.blob")

local co_create, co_resume, co_status, co_yield = coroutine.create, coroutine.resume, coroutine.status, coroutine.yield
local find, sub, lower, format, concat = string.find, string.sub, string.lower, string.format, table.concat
local gettime = socket.gettime

local ready_file = assert(arg[1], "usage: upstream_server.lua READYFILE")

local server = assert(socket.bind("127.0.0.1", 0))
server:settimeout(0)
local _, port = server:getsockname()

local stats = { requests = 0, connections = 0, open = 0, requests_by_path = {} }

local function log(...)
  io.stderr:write(format("%.3f ", gettime()), format(...), "\n")
  io.stderr:flush()
end

-- Buffered non-blocking connection --------------------------------------------

local function fill(c)
  while true do
    if c.eof then return false end
    local data, err, partial = c.sock:receive(65536)
    local got = data or partial
    if err and err ~= "timeout" then c.eof = true end
    if got and #got > 0 then
      c.buf = c.buf .. got
      return true
    end
    if c.eof then return false end
    co_yield("read", c.sock)
  end
end

local function read_line(c)
  while true do
    local i = find(c.buf, "\n", 1, true)
    if i then
      local line = sub(c.buf, 1, i - 1):gsub("\r$", "")
      c.buf = sub(c.buf, i + 1)
      return line
    end
    if #c.buf > 65536 or not fill(c) then return nil end
  end
end

-- Passes the next n bytes to fn in pieces as they arrive; false if cut short.
local function read_n(c, n, fn)
  while n > 0 do
    if #c.buf == 0 and not fill(c) then return false end
    local take = #c.buf < n and #c.buf or n
    fn(sub(c.buf, 1, take))
    c.buf = sub(c.buf, take + 1)
    n = n - take
  end
  return true
end

local function send_all(c, data)
  local i = 1
  while i <= #data do
    local last, err, partial = c.sock:send(data, i)
    if last then
      i = last + 1
    elseif err == "timeout" then
      i = partial + 1
      co_yield("write", c.sock)
    else
      return false
    end
  end
  return true
end

-- Requests ----------------------------------------------------------------------

local function header(req, name)
  name = lower(name)
  for _, h in ipairs(req.headers) do
    if lower(h[1]) == name then return h[2] end
  end
end

local function read_request(c)
  local line = read_line(c)
  while line == "" do line = read_line(c) end -- tolerate CRLF between requests
  if not line then return nil end
  local method, target, version = line:match("^(%S+) (%S+) (HTTP/%d%.%d)$")
  if not method then return nil, "bad request line " .. format("%q", line) end
  local req = { method = method, target = target, version = version, headers = {} }
  req.path, req.query = target:match("^([^?]*)%??(.*)$")
  while true do
    line = read_line(c)
    if not line then return nil end
    if line == "" then break end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if not name then return nil, "bad header " .. format("%q", line) end
    req.headers[#req.headers + 1] = { name, value }
  end

  -- /slowread/MS: let the body pile up (in the kernel and the gateway) first
  local slowread = req.path:match("^/slowread/(%d+)$")
  if slowread then co_yield("sleep", tonumber(slowread) / 1000) end

  local st = blob.new()
  local keep = req.path == "/_tenants" and {} or nil
  local function eat(s)
    blob.update(st, s)
    if keep then keep[#keep + 1] = s end
  end
  local te, cl = header(req, "transfer-encoding"), header(req, "content-length")
  if te and lower(te):find("chunked", 1, true) then
    req.chunked = true
    while true do
      line = read_line(c)
      local size = line and tonumber(line:match("^(%x+)"), 16)
      if not size then return nil, "bad chunk size" end
      if size == 0 then
        repeat line = read_line(c) until line == "" or line == nil
        break
      end
      if not read_n(c, size, eat) then return nil end
      if read_line(c) ~= "" then return nil, "no CRLF after chunk" end
    end
  elseif cl then
    if not read_n(c, tonumber(cl) or 0, eat) then return nil end
  end
  req.body_bytes, req.body_checksum = st.n, blob.digest(st)
  if keep then req.body = concat(keep) end
  return req
end

local function response(status, headers, body)
  local lines = { format("HTTP/1.1 %d %s", status, status == 200 and "OK" or "Status") }
  for _, h in ipairs(headers) do lines[#lines + 1] = h[1] .. ": " .. h[2] end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  return concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

local function describe(c, req)
  return cjson.encode({
    method = req.method, target = req.target, path = req.path, query = req.query,
    version = req.version, headers = req.headers, body_bytes = req.body_bytes,
    body_checksum = req.body_checksum, chunked = req.chunked or false,
    conn_id = c.id, conn_request = c.nreq, port = port,
  })
end

local function wants_close(req)
  local conn = lower(header(req, "connection") or "")
  if req.version == "HTTP/1.0" then return not conn:find("keep-alive", 1, true) end
  return conn:find("close", 1, true) ~= nil
end

local checksums = {}
local function blob_checksum(n)
  if not checksums[n] then checksums[n] = blob.checksum(n) end
  return checksums[n]
end

local function sleep(sec) co_yield("sleep", sec) end

local registry = { origins = {}, mode = "ok", delay_ms = 0 }

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Returns true to keep the connection open.
local function serve(c, req)
  -- specs may mount it under a route prefix: /mnt/NAME/hang is /hang
  local path = req.path:match("^/mnt/[^/]+(/.*)$") or req.path
  local head_only = req.method == "HEAD"
  local common = { { "X-Upstream-Port", tostring(port) }, { "X-Conn-Id", tostring(c.id) } }
  local function echo(extra, close)
    local body = describe(c, req)
    local h = { { "Content-Type", "application/json" } }
    for _, x in ipairs(common) do h[#h + 1] = x end
    for _, x in ipairs(extra or {}) do h[#h + 1] = x end
    local bytes = response(200, h, body)
    if head_only then bytes = bytes:sub(1, #bytes - #body) end
    return send_all(c, bytes) and not close
  end

  if path == "/_tenants" then
    local doc = cjson.decode(req.body or "{}")
    registry = { origins = doc.origins or {}, mode = doc.mode or "ok", delay_ms = doc.delay_ms or 0 }
    return send_all(c, response(200, {}, "ok\n"))
  elseif path:match("^/origins/") then
    local mode = registry.mode
    if mode == "hang" then
      while fill(c) do c.buf = "" end
      return false
    end
    if mode == "slow" then sleep(registry.delay_ms / 1000) end
    if mode == "down" then return send_all(c, response(500, {}, "tenant store unavailable\n")) end
    if mode == "garbage" then return send_all(c, response(200, {}, "<html>not json</html>")) end
    local doc = registry.origins[unescape(path:sub(10))]
    if not doc then return send_all(c, response(404, {}, "unknown origin\n")) end
    return send_all(c, response(200, { { "Content-Type", "application/json" } }, cjson.encode(doc)))
  elseif path == "/count" then
    return send_all(c, response(200, { { "Content-Type", "application/json" } }, cjson.encode(stats)))
  elseif path == "/headers" then
    return echo({
      { "Connection", "keep-alive, X-Hop-Resp" },
      { "Keep-Alive", "timeout=5, max=100" },
      { "X-Hop-Resp", "must not reach the client" },
      { "Proxy-Connection", "keep-alive" },
      { "TE", "trailers" },
      { "Trailer", "X-Trailing" },
      { "Upgrade", "h2c" },
      { "X-End-To-End", "kept" },
    })
  elseif path == "/cors-headers" then
    return echo({
      { "Access-Control-Allow-Origin", "*" },
      { "Access-Control-Allow-Credentials", "true" },
      { "Access-Control-Expose-Headers", "X-Secret" },
      { "Access-Control-Max-Age", "86400" },
      { "Timing-Allow-Origin", "*" },
      { "Vary", "Accept-Encoding" },
      { "Vary", "Accept-Language" },
    })
  elseif path == "/sts" then
    return echo({ { "Strict-Transport-Security", "max-age=60" } })
  elseif path == "/close" then
    return echo({ { "Connection", "close" } }, true)
  elseif path:match("^/slow/%d+$") then
    sleep(tonumber(path:match("%d+")) / 1000)
    return echo()
  elseif path:match("^/status/%d%d%d$") then
    local status = tonumber(path:match("%d+"))
    local h = { { "Content-Type", "text/plain" } }
    for _, x in ipairs(common) do h[#h + 1] = x end
    if status == 204 or status == 304 or status < 200 then
      return send_all(c, response(status, h, nil))
    end
    local body = "status " .. status .. "\n"
    local bytes = response(status, h, body)
    if head_only then bytes = bytes:sub(1, #bytes - #body) end
    return send_all(c, bytes)
  elseif path:match("^/bytes/%d+$") or path:match("^/chunked/%d+$") then
    local n = tonumber(path:match("%d+"))
    local chunked = path:match("^/chunked/") ~= nil
    local h = { { "Content-Type", "application/octet-stream" }, { "X-Checksum", blob_checksum(n) } }
    for _, x in ipairs(common) do h[#h + 1] = x end
    if chunked then h[#h + 1] = { "Transfer-Encoding", "chunked" } else h[#h + 1] = { "Content-Length", tostring(n) } end
    if not send_all(c, response(200, h, nil)) then return false end
    if head_only then return true end
    for i = 0, blob.blocks(n) - 1 do
      local b = blob.block(i, n)
      if chunked then b = format("%x\r\n%s\r\n", #b, b) end
      if not send_all(c, b) then return false end
    end
    if chunked then return send_all(c, "0\r\n\r\n") end
    return true
  elseif path == "/garbage" then
    send_all(c, "this is not HTTP at all\r\n\r\nnope\r\n")
    return false
  elseif path == "/reset" then
    local h = { { "Content-Type", "application/octet-stream" }, { "Content-Length", "1048576" } }
    send_all(c, response(200, h, nil) .. string.rep("x", 1000))
    c.sock:setoption("linger", { on = true, timeout = 0 })
    return false
  elseif path == "/cl-and-te" then
    send_all(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "5\r\nhello\r\n0\r\n\r\n")
    return false
  elseif path == "/two-cl" then
    send_all(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
    return false
  elseif path == "/bad-status" then
    send_all(c, "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok")
    return false
  elseif path == "/until-close" then
    local body = string.rep("u", 999) .. "\n"
    send_all(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Checksum: " .. blob.sum(body) .. "\r\n\r\n" .. body)
    return false
  elseif path == "/short" then
    send_all(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
    while fill(c) do c.buf = "" end
    return false
  elseif path == "/early-hints" then
    send_all(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
    return echo()
  elseif path == "/huge-head" then
    local h = { { "X-Big", string.rep("b", 100000) } }
    return send_all(c, response(200, h, "big head\n"))
  elseif path == "/304-with-length" then
    return send_all(c, "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1234\r\n\r\n")
  elseif path:match("^/idle%-close/%d+$") then
    -- a keep-alive answer, then the connection is closed while idle, as an
    -- upstream's own keep-alive timeout would
    if not echo() then return false end
    sleep(tonumber(path:match("%d+")) / 1000)
    return false
  elseif path == "/hang" then
    while fill(c) do c.buf = "" end
    return false
  end
  return echo()
end

local function handle(c)
  while true do
    local req, err = read_request(c)
    if not req then
      if err then
        log("conn %d: %s", c.id, err)
        send_all(c, response(400, { { "Connection", "close" } }, "bad request\n"))
      end
      break
    end
    c.nreq = c.nreq + 1
    if req.path ~= "/count" then
      stats.requests = stats.requests + 1
      stats.requests_by_path[req.path] = (stats.requests_by_path[req.path] or 0) + 1
      if not c.counted then
        c.counted = true
        stats.connections = stats.connections + 1
      end
    end
    log("conn %d #%d: %s %s %s body=%d", c.id, c.nreq, req.method, req.target, req.version, req.body_bytes)
    if not serve(c, req) or wants_close(req) then break end
  end
end

-- Scheduler -------------------------------------------------------------------

local readers, writers, sleepers = {}, {}, {}
local next_id = 0

local function finish(c)
  readers[c.sock], writers[c.sock] = nil, nil
  c.sock:close()
  stats.open = stats.open - 1
end

local function step(c, ...)
  local ok, what, arg = co_resume(c.co, ...)
  if not ok then
    log("conn %d crashed: %s", c.id, tostring(what))
    finish(c)
    return
  end
  if co_status(c.co) == "dead" then
    finish(c)
  elseif what == "read" then
    readers[arg] = c
  elseif what == "write" then
    writers[arg] = c
  elseif what == "sleep" then
    sleepers[#sleepers + 1] = { at = gettime() + arg, c = c }
  end
end

local function accept_all()
  while true do
    local sock = server:accept()
    if not sock then return end
    sock:settimeout(0)
    sock:setoption("tcp-nodelay", true)
    next_id = next_id + 1
    stats.open = stats.open + 1
    local c = { sock = sock, id = next_id, buf = "", nreq = 0 }
    c.co = co_create(function() handle(c) end)
    step(c)
  end
end

do
  local f = assert(io.open(ready_file .. ".tmp", "w"))
  f:write(port, "\n")
  f:close()
  assert(os.rename(ready_file .. ".tmp", ready_file))
end
log("listening on 127.0.0.1:%d", port)

while true do
  local recvt, sendt = { server }, {}
  for s in pairs(readers) do recvt[#recvt + 1] = s end
  for s in pairs(writers) do sendt[#sendt + 1] = s end
  local timeout = 1
  local now = gettime()
  for _, s in ipairs(sleepers) do
    if s.at - now < timeout then timeout = s.at - now end
  end
  if timeout < 0 then timeout = 0 end
  local r, w = socket.select(recvt, sendt, timeout)
  for _, s in ipairs(r) do
    if s == server then
      accept_all()
    elseif readers[s] then
      local c = readers[s]
      readers[s] = nil
      step(c)
    end
  end
  for _, s in ipairs(w) do
    local c = writers[s]
    if c then
      writers[s] = nil
      step(c)
    end
  end
  now = gettime()
  local due = {}
  for i = #sleepers, 1, -1 do
    if sleepers[i].at <= now then
      due[#due + 1] = sleepers[i].c
      table.remove(sleepers, i)
    end
  end
  for _, c in ipairs(due) do step(c) end
end
