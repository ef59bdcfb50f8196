-- HTTP/2 for the specs: runs spec/support/h2client.py (raw frames, Debian's
-- python3-h2 for HPACK and framing) and decodes what it reports.
--
--   local h2 = require("spec.support.h2")
--   local r = h2.run({ port = p, tls = true, requests = { h2.get("/x", { { "origin", O } }) } })
--   local s = r.streams["1"]      -- status, headers ({ {name, value}, ... }), body,
--                                 -- body_len, checksum, ended, reset (an error code)
--   h2.header(s, "vary")          -- the first value, or nil; h2.headers(s, name): all
--   r.goaway                      -- { code, last_stream_id } or nil; r.closed, r.alpn
--   local bg = h2.spawn(spec)     -- the same in the background; bg:result() waits
local proc = require("spec.support.proc")
local cjson = require("cjson")

local format = string.format

local _M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec/support"
local CLIENT = here .. "/h2client.py"
-- Debian's python3-h2 imports under the system's interpreter only (a python3
-- earlier on PATH, pyenv's say, does not see Debian's packages).
_M.python = "/usr/bin/python3"

-- HTTP/2's error codes (RFC 9113 7), as the specs name them.
_M.NO_ERROR, _M.PROTOCOL_ERROR, _M.INTERNAL_ERROR, _M.FLOW_CONTROL_ERROR = 0, 1, 2, 3
_M.REFUSED_STREAM, _M.CANCEL, _M.COMPRESSION_ERROR, _M.ENHANCE_YOUR_CALM = 7, 8, 9, 11

-- Why the client cannot run here, or nil.
function _M.missing()
  local code = proc.sh(format("%s -c 'import h2, hpack, hyperframe' 2>/dev/null", _M.python))
  if code ~= 0 then return "python3-h2 is not installed (./scripts/setup test installs it)" end
  return nil
end

local function command(spec, out, err)
  return format("%s %s %s >%s 2>%s", _M.python, proc.quote(CLIENT), proc.quote(cjson.encode(spec)), out, err)
end

-- JSON's null as nil, so `r.goaway == nil` says what it reads
local function unnull(t)
  for k, v in pairs(t) do
    if v == cjson.null then t[k] = nil
    elseif type(v) == "table" then unnull(v) end
  end
  return t
end

local function decode(out, err)
  local text = proc.read_file(out) or ""
  local ok, res = pcall(cjson.decode, text)
  if not ok then error("h2client.py failed:\n" .. text .. (proc.read_file(err) or ""), 3) end
  return unnull(res)
end

function _M.run(spec)
  local dir = proc.tmpdir("h2")
  local out, err = dir .. "/out.json", dir .. "/err.txt"
  proc.sh(command(spec, out, err))
  local res = decode(out, err)
  proc.rmdir_all(dir)
  return res
end

local bg_mt = {}
bg_mt.__index = bg_mt

function _M.spawn(spec)
  local dir = proc.tmpdir("h2")
  local out, err = dir .. "/out.json", dir .. "/err.txt"
  local h = proc.spawn({ "sh", "-c", command(spec, out, err) }, dir .. "/log", { env = { LD_PRELOAD = false } })
  return setmetatable({ h = h, out = out, err = err, dir = dir }, bg_mt)
end

function bg_mt:done() return proc.exit_code(self.h) ~= nil end

function bg_mt:result(bound)
  assert(proc.wait_for(function() return self:done() end, bound or 30, 0.05), "h2client.py did not finish")
  local res = decode(self.out, self.err)
  proc.rmdir_all(self.dir)
  return res
end

-- A request's headers: the four pseudo-headers, then extra ({ {name, value}, ... }).
function _M.request(method, path, extra, opts)
  opts = opts or {}
  local h = { { ":method", method }, { ":scheme", opts.scheme or "http" },
    { ":authority", opts.authority or "localhost" }, { ":path", path } }
  for _, kv in ipairs(extra or {}) do h[#h + 1] = kv end
  return { headers = h }
end

function _M.get(path, extra, opts) return _M.request("GET", path, extra, opts) end

function _M.headers(stream, name)
  local all = {}
  for _, kv in ipairs(stream.headers or {}) do
    if kv[1] == name then all[#all + 1] = kv[2] end
  end
  return all
end

function _M.header(stream, name) return _M.headers(stream, name)[1] end

return _M
