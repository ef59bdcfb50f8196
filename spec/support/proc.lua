-- Background processes for the specs, with nothing but sh and kill.
--
-- A spawned program runs under a small sh that waits for it and writes its exit
-- status to a file: the program itself is not our child (io.popen's shell is), so
-- this is the only way to learn how it exited. The pid we hand out is the
-- program's own (`$!`), so signals and /proc reach it, not the wrapper.
local socket = require("socket")

local format, concat = string.format, table.concat

local _M = {}

function _M.quote(s)
  return "'" .. tostring(s):gsub("'", [['"'"']]) .. "'"
end
local quote = _M.quote

-- Runs a shell command to its end: its exit code and its output (stdout and
-- stderr). LuaJIT's popen:close gives no exit code, so the shell prints it.
function _M.sh(cmd)
  local p = io.popen("(" .. cmd .. ") 2>&1; echo \"rc=$?\"")
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("rc=(%d+)\n?$"))
  return code, (out:gsub("rc=%d+\n?$", ""))
end

-- Why a spec that changes the machine cannot run here, or nil: it needs root
-- and each of tools on PATH (scripts/setup test installs them).
function _M.why_not_as_root(what, tools)
  local _, uid = _M.sh("id -u")
  if not uid:match("^0%s*$") then return "not root (" .. what .. " needs it)" end
  for _, tool in ipairs(tools) do
    if _M.sh("command -v " .. tool) ~= 0 then return tool .. " is missing (scripts/setup test installs it)" end
  end
  return nil
end

function _M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

function _M.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  f:close()
end

-- A fresh private directory; removed by rmdir_all.
function _M.tmpdir(tag)
  local p = io.popen("mktemp -d /tmp/corsgate-spec-" .. (tag or "x") .. ".XXXXXX")
  local dir = p:read("*l")
  p:close()
  assert(dir and dir ~= "", "mktemp failed")
  return dir
end

function _M.rmdir_all(dir)
  if dir and dir:match("^/tmp/corsgate%-spec%-") then
    os.execute("rm -rf " .. quote(dir))
  end
end

function _M.sleep(sec)
  socket.sleep(sec)
end

function _M.alive(pid)
  -- /proc is enough on Linux and costs no fork; a zombie counts as dead.
  local status = _M.read_file("/proc/" .. pid .. "/status")
  if not status then return false end
  local state = status:match("\nState:%s*(%a)")
  return state ~= "Z" and state ~= "X"
end

-- Polls fn() every `step` seconds until it returns a truthy value or `bound`
-- seconds pass. Returns fn's value, or nil.
function _M.wait_for(fn, bound, step)
  local deadline = socket.gettime() + (bound or 5)
  step = step or 0.01
  while true do
    local v = fn()
    if v then return v end
    if socket.gettime() >= deadline then return nil end
    socket.sleep(step)
  end
end

-- Starts argv (a list) in the background with stdout+stderr appended to `log`
-- and stdin from /dev/null. opts.env: a map of extra environment variables
-- (false unsets one). Returns a handle { pid, rcfile, log }.
function _M.spawn(argv, log, opts)
  opts = opts or {}
  local dir = opts.dir or _M.tmpdir("proc")
  -- env takes its options (-u NAME) before any NAME=VALUE
  local unset, set = {}, {}
  for k, v in pairs(opts.env or {}) do
    if v == false then
      unset[#unset + 1] = "-u " .. quote(k)
    else
      set[#set + 1] = quote(k .. "=" .. v)
    end
  end
  local env = unset
  for _, a in ipairs(set) do env[#env + 1] = a end
  local cmd = {}
  for i, a in ipairs(argv) do cmd[i] = quote(a) end
  local id = tostring(math.random(1, 1e9))
  local pidfile = dir .. "/pid." .. id
  local rcfile = dir .. "/rc." .. id
  local script = format('exec </dev/null >>%s 2>&1; env %s %s & echo $! >%s.tmp; mv %s.tmp %s; wait $!; echo $? >%s.tmp; mv %s.tmp %s',
    quote(log), concat(env, " "), concat(cmd, " "), quote(pidfile), quote(pidfile), quote(pidfile),
    quote(rcfile), quote(rcfile), quote(rcfile))
  local ok = os.execute("sh -c " .. quote(script) .. " >/dev/null 2>&1 &")
  assert(ok == 0 or ok == true, "cannot start sh")
  local pid = _M.wait_for(function()
    local s = _M.read_file(pidfile)
    return s and tonumber(s:match("%d+"))
  end, 5)
  assert(pid, "spawn: no pid for " .. concat(argv, " "))
  return { pid = pid, rcfile = rcfile, log = log, dir = dir, own_dir = not opts.dir }
end

-- Exit status once the process has ended (128+N for signal N), else nil.
function _M.exit_code(h)
  local s = _M.read_file(h.rcfile)
  return s and tonumber(s:match("%d+"))
end

function _M.kill(h, sig)
  return os.execute(format("kill -%s %d 2>/dev/null", sig or "TERM", h.pid))
end

-- SIGTERM (or opts.signal), wait up to opts.bound seconds, then SIGKILL.
-- Returns the exit status and whether it had to be killed.
function _M.stop(h, opts)
  opts = opts or {}
  local code = _M.exit_code(h)
  if code then return code, false end
  _M.kill(h, opts.signal or "TERM")
  code = _M.wait_for(function() return _M.exit_code(h) end, opts.bound or 10, 0.01)
  if code then return code, false end
  _M.kill(h, "KILL")
  code = _M.wait_for(function() return _M.exit_code(h) end, 5, 0.01)
  return code or -1, true
end

-- A loopback port nobody listens on right now (bind 0, read, close). Another
-- process may take it before it is used; the specs accept that small race.
function _M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

function _M.port_open(port)
  local c = socket.tcp()
  c:settimeout(0.2)
  local ok = c:connect("127.0.0.1", port)
  c:close()
  return ok ~= nil
end

return _M
