-- Runs the real corsgate binary for the integration specs.
--
--   local gw = gateway.start({ routes = { ... } })   -- listen/workers filled in
--   gw:url("/x"), gw:port(), gw:log(), gw:pid(), gw:rss_kb()
--   local code = gw:stop()                           -- SIGTERM, bounded, then SIGKILL
--   local code, out = gateway.check({ ... })         -- `corsgate check -c FILE`
--   local gw = gateway.start_loopback_admin()        -- one echo route, an admin API
--                                                    -- without a token at gw.admin_port
--
-- The binary is $CORSGATE_BIN, or build/corsgate from the repository root. Each
-- gateway gets its own temp dir holding the config file and the log (stdout and
-- stderr together).
local proc = require("spec.support.proc")

local format, concat, sort = string.format, table.concat, table.sort
local type, tostring, pairs, ipairs = type, tostring, pairs, ipairs

local _M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec/support"
_M.root = os.getenv("CORSGATE_ROOT") or (here .. "/../..")

_M.valgrind = os.getenv("CORSGATE_VALGRIND") == "1"
-- how much slower the gateway runs here (valgrind: about 10x): start and stop bounds scale
_M.slowdown = _M.valgrind and 10 or 1

function _M.bin()
  return os.getenv("CORSGATE_BIN") or (_M.root .. "/build/corsgate")
end

-- Config tables to Lua source --------------------------------------------------

local function is_array(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  for i = 1, n do
    if t[i] == nil then return false end
  end
  return true
end

local function key_src(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return k end
  return "[" .. format("%q", k) .. "]"
end

local function value_src(v, indent)
  local t = type(v)
  if t == "string" then
    return format("%q", v)
  elseif t == "number" then
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return format("%d", v) end
    return format("%.17g", v)
  elseif t == "boolean" then
    return tostring(v)
  elseif t == "table" then
    local inner = indent .. "  "
    local parts = {}
    if is_array(v) then
      for _, x in ipairs(v) do parts[#parts + 1] = inner .. value_src(x, inner) end
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = k end
      sort(keys, function(a, b) return tostring(a) < tostring(b) end)
      for _, k in ipairs(keys) do
        parts[#parts + 1] = inner .. key_src(k) .. " = " .. value_src(v[k], inner)
      end
    end
    if #parts == 0 then return "{}" end
    return "{\n" .. concat(parts, ",\n") .. ",\n" .. indent .. "}"
  end
  error("cannot write a " .. t .. " into a config file", 3)
end

function _M.serialize(tbl)
  return "return " .. value_src(tbl, "") .. "\n"
end

local function copy(t)
  if type(t) ~= "table" then return t end
  local out = {}
  for k, v in pairs(t) do out[k] = copy(v) end
  return out
end

-- Writes a config (a table, or Lua source as a string) into dir; returns its path.
local function write_config(dir, config, name)
  local path = dir .. "/" .. (name or "corsgate.lua")
  proc.write_file(path, type(config) == "string" and config or _M.serialize(config))
  return path
end
_M.write_config = write_config

-- Running gateways --------------------------------------------------------------

local running = {}

local mt = {}
mt.__index = mt

-- Starts a gateway. config: a table (listen defaults to a free loopback port,
-- workers to 1, log_level to "info") or Lua source (then opts.port must match it).
-- opts.wait = false returns without waiting for the port (for configs that must
-- fail); opts.env adds environment variables; opts.args replaces `-c FILE`.
-- Errors out with the log when the gateway does not come up within opts.bound s.
function _M.start(config, opts)
  opts = opts or {}
  local dir = proc.tmpdir("gw")
  local port = opts.port
  if type(config) == "table" then
    config = copy(config)
    if config.listen == nil then
      port = port or proc.free_port()
      config.listen = "127.0.0.1:" .. port
    else
      port = port or tonumber(tostring(config.listen):match(":(%d+)$"))
    end
    if config.workers == nil then config.workers = 1 end
    if config.log_level == nil then config.log_level = "info" end
  end
  local cfg = write_config(dir, config)
  local log = dir .. "/corsgate.log"
  local args = { _M.bin(), "run", "-c", cfg }
  if opts.args then args = { _M.bin(), unpack(opts.args) } end
  if _M.valgrind then
    -- CORSGATE_VALGRIND=1: every gateway runs under memcheck; what it finds
    -- (errors, definite or indirect leaks at exit) fails stop_clean.
    local vg = { "valgrind", "--quiet", "--leak-check=full", "--show-leak-kinds=definite,indirect",
      "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99", "--fair-sched=yes" }
    for i = #vg, 1, -1 do table.insert(args, 1, vg[i]) end
  end
  local env = { LD_PRELOAD = false }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local h = proc.spawn(args, log, { dir = dir, env = env })
  local gw = setmetatable({ h = h, dir = dir, _port = port, _log = log, config_path = cfg }, mt)
  running[gw] = true
  if opts.wait == false then return gw end
  local up = proc.wait_for(function()
    if proc.exit_code(h) then return "exited" end
    return proc.port_open(port) and "up"
  end, (opts.bound or 5) * _M.slowdown, 0.02)
  if up ~= "up" then
    local code = gw:stop()
    error(format("corsgate did not start (%s, exit %s) with config %s:\n%s\n--- config ---\n%s",
      up or "timeout", tostring(code), cfg, gw:log(), proc.read_file(cfg) or ""), 2)
  end
  return gw
end

-- Starts a config file as it is written (an example the README or the
-- package ships), but for its addresses: subs maps a literal of the file
-- ('listen = "127.0.0.1:8080"') to what the spec needs instead. Each literal
-- must occur exactly once, so a changed example fails here instead of
-- quietly going untested. subs.port: the port the file's listen becomes.
-- A gateway with one plain route to the echo upstream and the admin API on a
-- loopback port without a token (gw.admin_port).
function _M.start_loopback_admin()
  local admin_port = proc.free_port()
  local gw = _M.start({ admin = { listen = "127.0.0.1:" .. admin_port },
    routes = { { name = "api", prefix = "/", upstream = "echo", cors = { origins = { "https://a.test" } } } } })
  gw.admin_port = admin_port
  return gw
end

function _M.start_file(path, subs, opts)
  local src = assert(proc.read_file(path), "no config " .. path)
  for from, to in pairs(subs) do
    if from ~= "port" then
      local i, j = src:find(from, 1, true)
      assert(i and not src:find(from, j + 1, true), path .. ": expected " .. from .. " exactly once")
      src = src:sub(1, i - 1) .. to .. src:sub(j + 1)
    end
  end
  opts = opts or {}
  opts.port = subs.port
  return _M.start(src, opts)
end

function mt:port() return self._port end
function mt:pid() return self.h.pid end
function mt:url(path) return format("http://127.0.0.1:%d%s", self._port, path or "/") end
function mt:log() return proc.read_file(self._log) or "" end

-- The log's last n lines (default 30), for failure messages.
function mt:log_tail(n)
  n = n or 30
  local lines = {}
  for l in self:log():gmatch("[^\n]*\n?") do
    if l ~= "" then lines[#lines + 1] = l end
  end
  return concat(lines, "", math.max(1, #lines - n + 1))
end

function mt:alive() return proc.alive(self.h.pid) and not proc.exit_code(self.h) end

function mt:signal(name) return proc.kill(self.h, name) end

-- Peak and current resident memory in KiB, from /proc/PID/status.
function mt:rss_kb()
  local s = proc.read_file("/proc/" .. self.h.pid .. "/status")
  if not s then return nil end
  return {
    hwm = tonumber(s:match("VmHWM:%s*(%d+)")),
    rss = tonumber(s:match("VmRSS:%s*(%d+)")),
  }
end

function mt:exit_code() return proc.exit_code(self.h) end

-- Waits for the process to end on its own (bounded); returns the exit code or nil.
function mt:wait_exit(bound)
  return proc.wait_for(function() return proc.exit_code(self.h) end, bound or 10, 0.01)
end

-- SIGTERM, wait up to `bound` s (default 10), SIGKILL after. Returns the exit
-- code, and true when it had to be killed. The temp dir is kept until cleanup().
function mt:stop(bound)
  if self.stopped then return self.stopped_code, self.killed end
  local code, killed = proc.stop(self.h, { bound = (bound or 10) * _M.slowdown })
  self.stopped, self.stopped_code, self.killed = true, code, killed
  running[self] = nil
  return code, killed
end

-- Sanitizer reports (ASan, LSan, UBSan) in the log, or nil.
function mt:sanitizer_report()
  local log = self:log()
  local i = log:find("ERROR: AddressSanitizer", 1, true) or log:find("ERROR: LeakSanitizer", 1, true)
    or log:find("runtime error:", 1, true) or log:find("\n==%d+== ") or log:find("^==%d+== ")
  if i then return log:sub(math.max(1, i - 200)) end
  return nil
end

function mt:cleanup()
  self:stop()
  proc.rmdir_all(self.dir)
end

-- Stops the gateway and fails (with the log) unless it exited 0 without any
-- sanitizer report. For teardown.
function mt:stop_clean(bound)
  local code, killed = self:stop(bound)
  local report = self:sanitizer_report()
  if code ~= 0 or killed or report then
    local msg = format("corsgate exited %s%s on SIGTERM%s\n--- log tail ---\n%s",
      tostring(code), killed and " (SIGKILLed after the bound)" or "",
      report and " with a sanitizer report" or "", report or self:log_tail(40))
    proc.rmdir_all(self.dir)
    error(msg, 2)
  end
  proc.rmdir_all(self.dir)
  return code
end

-- The CLI, synchronously ------------------------------------------------------------

-- Runs `corsgate ARGS...` to completion (bounded by `timeout` seconds via
-- coreutils timeout). Returns exit code, combined output.
function _M.cli(args, timeout)
  local q = {}
  for i, a in ipairs(args) do q[i] = proc.quote(a) end
  return proc.sh(format("env -u LD_PRELOAD timeout -s KILL %d %s %s", timeout or 10, proc.quote(_M.bin()),
    concat(q, " ")))
end

-- `corsgate check -c FILE` on a config table or source. Returns code, output, path.
function _M.check(config, name)
  local dir = proc.tmpdir("check")
  local path = write_config(dir, config, name)
  local code, out = _M.cli({ "check", "-c", path })
  proc.rmdir_all(dir)
  return code, out, path
end

-- Stops every gateway still running (a spec that errored before its teardown).
function _M.stop_all()
  for gw in pairs(running) do gw:cleanup() end
end

-- Last resort: when the spec process ends, nothing is left running.
_M._sentinel = newproxy and newproxy(true)
if _M._sentinel then
  getmetatable(_M._sentinel).__gc = function()
    for gw in pairs(running) do
      pcall(proc.kill, gw.h, "KILL")
    end
  end
end

return _M
