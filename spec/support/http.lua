-- A raw HTTP/1.1 client for the specs, over luasocket. It sends exactly the bytes
-- it is given and parses what comes back without normalizing anything, so a spec
-- can see a duplicate header, a missing one, or bytes after the end of a response.
--
--   local c = http.connect(port)             -- 127.0.0.1 only
--   c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
--   local res, err = c:read_response()       -- err: "closed" | "timeout" | "malformed: ..."
--   res.status, res.headers:get("content-type"), res.headers:all("vary"), res.body
--   c:peer_closed()                          -- true once the server has closed
--
-- Bodies are read by Content-Length, chunked, or until close. Big bodies can go to
-- a sink (opts.sink(chunk)) instead of memory.
local socket = require("socket")

local concat, insert = table.concat, table.insert
local lower, format, find, sub = string.lower, string.format, string.find, string.sub
local tonumber, setmetatable, type = tonumber, setmetatable, type

local _M = {}

_M.DEFAULT_TIMEOUT = 5

-- Headers: an ordered list of { name = , value = } (as received), with
-- case-insensitive lookups. Method names shadow header names of the same spelling,
-- so look those up with :get().
local headers_mt = {}
headers_mt.__index = headers_mt

function _M.headers(list)
  return setmetatable(list or {}, headers_mt)
end

function headers_mt:get(name)
  name = lower(name)
  for _, h in ipairs(self) do
    if lower(h.name) == name then return h.value end
  end
  return nil
end

function headers_mt:all(name)
  name = lower(name)
  local out = {}
  for _, h in ipairs(self) do
    if lower(h.name) == name then out[#out + 1] = h.value end
  end
  return out
end

function headers_mt:count(name)
  return #self:all(name)
end

function headers_mt:has(name)
  return self:get(name) ~= nil
end

-- Every value of a header, joined the way a list header would be read.
function headers_mt:joined(name)
  local all = self:all(name)
  if #all == 0 then return nil end
  return concat(all, ", ")
end

function headers_mt:names()
  local out = {}
  for _, h in ipairs(self) do out[#out + 1] = lower(h.name) end
  return out
end

-- Serializes headers given as a list of { name, value } pairs, a list of raw
-- "Name: value" strings, or a map (sorted, for stable bytes).
local function header_lines(headers)
  local out = {}
  if not headers then return out end
  if #headers > 0 or next(headers) == nil then
    for _, h in ipairs(headers) do
      if type(h) == "string" then
        out[#out + 1] = h
      else
        out[#out + 1] = (h.name or h[1]) .. ": " .. (h.value or h[2])
      end
    end
  else
    local names = {}
    for k in pairs(headers) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do
      local v = headers[k]
      if type(v) == "table" then
        for _, one in ipairs(v) do out[#out + 1] = k .. ": " .. one end
      else
        out[#out + 1] = k .. ": " .. tostring(v)
      end
    end
  end
  return out
end

local function has_header(lines, name)
  name = lower(name)
  for _, l in ipairs(lines) do
    if lower(l:match("^([^:]*)") or "") == name then return true end
  end
  return false
end

-- The bytes of a request. Adds Host (unless headers has one, or opts.no_host) and
-- Content-Length for a string body (unless the headers say how the body is framed).
function _M.build_request(method, path, headers, body, opts)
  opts = opts or {}
  local lines = header_lines(headers)
  if not opts.no_host and not has_header(lines, "host") then
    insert(lines, 1, "Host: " .. (opts.host or "localhost"))
  end
  if type(body) == "string" and not has_header(lines, "content-length")
      and not has_header(lines, "transfer-encoding") then
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  local head = format("%s %s %s\r\n", method, path, opts.version or "HTTP/1.1")
    .. concat(lines, "\r\n") .. (#lines > 0 and "\r\n" or "") .. "\r\n"
  return head .. (type(body) == "string" and body or "")
end

-- Chunked encoding of a list of strings (an empty final chunk is added).
function _M.chunked(parts, trailers)
  local out = {}
  for _, p in ipairs(parts) do
    if #p > 0 then out[#out + 1] = format("%x\r\n%s\r\n", #p, p) end
  end
  out[#out + 1] = "0\r\n" .. (trailers or "") .. "\r\n"
  return concat(out)
end

local conn_mt = {}
conn_mt.__index = conn_mt

function _M.connect(port, opts)
  opts = opts or {}
  local sock = socket.tcp()
  sock:settimeout(opts.timeout or _M.DEFAULT_TIMEOUT)
  local ok, err = sock:connect(opts.host or "127.0.0.1", port)
  if not ok then
    sock:close()
    return nil, err
  end
  sock:setoption("tcp-nodelay", true)
  local tls
  if opts.tls then
    -- opts.tls: { servername =, cafile =, alpn = { "http/1.1" }, protocol = "tlsv1_2" }
    -- (lua-sec); the connection then carries what it agreed on in c.tls
    local ssl = require("ssl")
    local params = { mode = "client", protocol = opts.tls.protocol or "any", verify = opts.tls.cafile and "peer" or "none",
      cafile = opts.tls.cafile, options = { "all" }, alpn = opts.tls.alpn }
    local wrapped, werr = ssl.wrap(sock, params)
    if not wrapped then
      sock:close()
      return nil, "tls: " .. tostring(werr)
    end
    if opts.tls.servername then wrapped:sni(opts.tls.servername) end
    wrapped:settimeout(opts.timeout or _M.DEFAULT_TIMEOUT)
    local hs, herr = wrapped:dohandshake()
    if not hs then
      wrapped:close()
      return nil, "tls handshake: " .. tostring(herr)
    end
    local cert = wrapped:getpeercertificate()
    tls = { version = wrapped:info("protocol"), alpn = wrapped:getalpn(), peer = cert,
      subject_alt = cert and cert:extensions() }
    sock = wrapped
  end
  return setmetatable({ sock = sock, port = port, timeout = opts.timeout or _M.DEFAULT_TIMEOUT,
    closed = false, sent = {}, tls = tls }, conn_mt)
end

function conn_mt:settimeout(t)
  self.timeout = t
  self.sock:settimeout(t)
end

-- Sends all bytes; returns true, or nil and the luasocket error ("closed", ...).
function conn_mt:send(bytes)
  local i = 1
  while i <= #bytes do
    local last, err, partial = self.sock:send(bytes, i)
    if not last then
      if err == "closed" then self.closed = true end
      return nil, err, (partial or i - 1)
    end
    i = last + 1
  end
  return true
end

-- Sends bytes one at a time with a pause between them, so that the server gets
-- them in as many reads: every name and value then straddles reads.
function conn_mt:send_bytewise(bytes, pause)
  for i = 1, #bytes do
    local ok, err = self:send(bytes:sub(i, i))
    if not ok then return nil, err end
    socket.sleep(pause or 0.001)
  end
  return true
end

-- Reads a line without its CRLF, byte by byte from luasocket's buffer: its "*l"
-- pattern drops every CR, and a response with bare LF line ends must not pass.
-- `err` is luasocket's ("closed", "timeout") or "malformed: ...".
function conn_mt:_line()
  local buf, n = {}, 0
  while true do
    local c, err = self.sock:receive(1)
    if not c then
      if err == "closed" then self.closed = true end
      return nil, err, concat(buf)
    end
    if c == "\n" then
      if n > 0 and buf[n] == "\r" then
        buf[n] = nil
        return concat(buf)
      end
      return nil, "malformed: bare LF after " .. format("%q", concat(buf))
    end
    n = n + 1
    buf[n] = c
    if n > 65536 then return nil, "malformed: line longer than 64 KiB" end
  end
end

function conn_mt:_exact(n, sink, acc)
  local left = n
  while left > 0 do
    local want = left > 1048576 and 1048576 or left
    local data, err, partial = self.sock:receive(want)
    if not data then
      if err == "closed" then self.closed = true end
      if partial and #partial > 0 then
        if sink then sink(partial) else acc[#acc + 1] = partial end
      end
      return nil, err
    end
    if sink then sink(data) else acc[#acc + 1] = data end
    left = left - want
  end
  return true
end

-- Reads one response. opts.method = "HEAD" (no body), opts.sink = function(chunk),
-- opts.timeout. Interim (1xx) responses are returned as they are; read again for
-- the final one. Returns res or nil, err, partial_res.
function conn_mt:read_response(opts)
  opts = opts or {}
  if opts.timeout then self.sock:settimeout(opts.timeout) end
  local res = { headers = _M.headers(), raw_head = {} }
  local function fail(err)
    if opts.timeout then self.sock:settimeout(self.timeout) end
    return nil, err, res
  end

  local line, err = self:_line()
  if not line then return fail(err) end
  res.raw_head[#res.raw_head + 1] = line
  res.status_line = line
  local version, status, reason = line:match("^(HTTP/%d%.%d) (%d%d%d) ?(.*)$")
  if not version then return fail("malformed: status line " .. format("%q", line)) end
  res.version, res.status, res.reason = version, tonumber(status), reason

  local count = 0
  while true do
    line, err = self:_line()
    if not line then return fail(err) end
    res.raw_head[#res.raw_head + 1] = line
    if line == "" then break end
    count = count + 1
    if count > 1000 then return fail("malformed: too many header lines") end
    local name, value = line:match("^([^:%s]+):[ \t]*(.-)[ \t\r]*$")
    if not name then return fail("malformed: header line " .. format("%q", line)) end
    res.headers[#res.headers + 1] = { name = name, value = value }
  end
  res.raw_head = concat(res.raw_head, "\r\n") .. "\r\n"

  local acc, sink = {}, opts.sink
  local status_n = res.status
  local te = res.headers:joined("transfer-encoding")
  local cl = res.headers:get("content-length")
  if opts.method == "HEAD" or (status_n >= 100 and status_n < 200) or status_n == 204 or status_n == 304 then
    res.body = ""
  elseif te and lower(te):find("chunked", 1, true) then
    res.chunks = 0
    while true do
      line, err = self:_line()
      if not line then return fail(err) end
      local size = tonumber(line:match("^(%x+)"), 16)
      if not size then return fail("malformed: chunk size " .. format("%q", line)) end
      if size == 0 then
        -- trailers until the empty line
        res.trailers = _M.headers()
        while true do
          line, err = self:_line()
          if not line then return fail(err) end
          if line == "" then break end
          local name, value = line:match("^([^:%s]+):[ \t]*(.-)[ \t]*$")
          res.trailers[#res.trailers + 1] = { name = name or line, value = value or "" }
        end
        break
      end
      res.chunks = res.chunks + 1
      local ok
      ok, err = self:_exact(size, sink, acc)
      if not ok then return fail(err) end
      line, err = self:_line()
      if line ~= "" then return fail(err or "malformed: no CRLF after chunk") end
    end
  elseif cl then
    local n = tonumber(cl)
    if not n then return fail("malformed: content-length " .. format("%q", cl)) end
    local ok
    ok, err = self:_exact(n, sink, acc)
    if not ok then
      res.body = concat(acc)
      return fail(err)
    end
  else
    -- until close
    res.until_close = true
    while true do
      local data, rerr, partial = self.sock:receive(65536)
      local got = data or partial
      if got and #got > 0 then
        if sink then sink(got) else acc[#acc + 1] = got end
      end
      if not data then
        if rerr == "closed" then
          self.closed = true
          break
        end
        res.body = concat(acc)
        return fail(rerr)
      end
    end
  end
  if not res.body then res.body = concat(acc) end
  if opts.timeout then self.sock:settimeout(self.timeout) end
  return res
end

-- Reads the final response, skipping (and collecting) interim 1xx ones.
function conn_mt:read_final(opts)
  local interim = {}
  while true do
    local res, err, partial = self:read_response(opts)
    if not res then return nil, err, partial, interim end
    if res.status >= 200 or res.status == 101 then
      res.interim = interim
      return res
    end
    interim[#interim + 1] = res
  end
end

-- Reads n pipelined responses; stops at the first error (returned as 2nd value).
function conn_mt:read_responses(n, opts)
  local out = {}
  for i = 1, n do
    local res, err = self:read_response(opts and (opts[i] or opts))
    if not res then return out, err end
    out[#out + 1] = res
  end
  return out
end

-- True when the peer has closed (or reset) the connection; waits up to `timeout`
-- seconds. Bytes that arrive instead are returned as the 2nd value (false, bytes).
function conn_mt:peer_closed(timeout)
  if self.closed then return true end
  self.sock:settimeout(timeout or self.timeout)
  local data, err, partial = self.sock:receive(1)
  self.sock:settimeout(self.timeout)
  if data then
    local more, _, p2 = self.sock:receive(65536)
    self.sock:settimeout(self.timeout)
    return false, data .. (more or p2 or "")
  end
  if err == "closed" or (err and err:find("reset", 1, true)) then
    self.closed = true
    return true, partial
  end
  return false, partial
end

-- Everything the server sends until it closes (bounded by the timeout).
function conn_mt:read_all(timeout)
  self.sock:settimeout(timeout or self.timeout)
  local data, err, partial = self.sock:receive("*a")
  self.sock:settimeout(self.timeout)
  -- luasocket answers "closed" rather than "" when nothing came before the close
  if data or err == "closed" or (err and err:find("reset", 1, true)) then
    self.closed = true
    return data or partial or ""
  end
  return partial, err
end

function conn_mt:request(method, path, headers, body, opts)
  local ok, err = self:send(_M.build_request(method, path, headers, body, opts))
  if not ok then return nil, "send: " .. tostring(err) end
  return self:read_final({ method = method, sink = opts and opts.sink })
end

function conn_mt:close()
  self.closed = true
  self.sock:close()
end

_M.conn_mt = conn_mt

-- One request on a fresh connection, which is closed afterwards.
function _M.request(port, method, path, headers, body, opts)
  local c, err = _M.connect(port, opts)
  if not c then return nil, "connect: " .. tostring(err) end
  local res
  res, err = c:request(method, path, headers, body, opts)
  c:close()
  return res, err
end

-- Sends raw bytes on a fresh connection and reads one final response; the
-- connection is returned too, for checks on what follows.
function _M.raw(port, bytes, opts)
  local c, err = _M.connect(port, opts)
  if not c then return nil, "connect: " .. tostring(err) end
  local ok, serr = c:send(bytes)
  if not ok and serr ~= "closed" then return nil, "send: " .. tostring(serr), c end
  local res, rerr = c:read_final(opts)
  return res, rerr, c
end

return _M
