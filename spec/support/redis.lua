-- A real redis-server on a loopback port, for the specs of gw.redis and the
-- fleet (Debian's redis-server, installed by scripts/setup).
--
--   local r = redis.start({ password = "..." })   -- a free port, no persistence
--   redis.start({ replicaof = primary })           -- a replica of another
--   redis.start({ sentinel = primary, name = "corsgate", down_after_ms = 1000 })
--                                                   -- a sentinel watching primary
--   r:port(), r:address(), r:cli("HGETALL", "k") -> redis-cli's output
--   r:kill()   SIGKILL, as a crash          r:restart()  on the same port
--   r:pause()  SIGSTOP (stops answering)    r:resume()   SIGCONT
--   r:stop()
local proc = require("spec.support.proc")

local format, concat = string.format, table.concat

local _M = {}
local mt = {}
mt.__index = mt

local function spawn(self)
  -- --dir: a replica's sync writes an RDB file, into the spec's directory
  local argv = { "redis-server", "--port", tostring(self._port), "--bind", "127.0.0.1", "--save", "",
    "--appendonly", "no", "--protected-mode", "no", "--dir", self.dir }
  if self.sentinel then
    -- a sentinel rewrites its config file: one of its own
    local conf = self.dir .. "/sentinel.conf"
    if not proc.read_file(conf) then
      local o = self.sentinel
      proc.write_file(conf, concat({
        "port " .. self._port, "bind 127.0.0.1", "protected-mode no", "dir " .. self.dir,
        format("sentinel monitor %s 127.0.0.1 %d %d", o.name, o.primary:port(), o.quorum or 2),
        format("sentinel down-after-milliseconds %s %d", o.name, o.down_after_ms or 1000),
        format("sentinel failover-timeout %s %d", o.name, o.failover_timeout_ms or 3000),
        format("sentinel parallel-syncs %s 1", o.name), "" }, "\n"))
    end
    argv = { "redis-server", conf, "--sentinel" }
  elseif self.replicaof then
    argv[#argv + 1] = "--replicaof"
    argv[#argv + 1] = "127.0.0.1"
    argv[#argv + 1] = tostring(self.replicaof:port())
  end
  if self.password then
    argv[#argv + 1] = "--requirepass"
    argv[#argv + 1] = self.password
  end
  self.h = proc.spawn(argv, self.dir .. "/redis.log", { dir = self.dir })
  local up = proc.wait_for(function()
    if proc.exit_code(self.h) then return "exited" end
    return proc.port_open(self._port) and "up"
  end, 5, 0.02)
  assert(up == "up", "redis-server did not start:\n" .. (proc.read_file(self.dir .. "/redis.log") or ""))
end

function _M.start(opts)
  opts = opts or {}
  local self = setmetatable({ _port = proc.free_port(), dir = proc.tmpdir("redis"), password = opts.password,
    replicaof = opts.replicaof }, mt)
  if opts.sentinel then
    self.sentinel = { primary = opts.sentinel, name = opts.name or "corsgate", quorum = opts.quorum,
      down_after_ms = opts.down_after_ms, failover_timeout_ms = opts.failover_timeout_ms }
  end
  spawn(self)
  return self
end

function mt:port() return self._port end
function mt:address() return "127.0.0.1:" .. self._port end

-- Runs one command through redis-cli; returns its output without the last newline.
function mt:cli(...)
  local args = {}
  for i, a in ipairs({ ... }) do args[i] = proc.quote(tostring(a)) end
  local auth = self.password and ("REDISCLI_AUTH=" .. proc.quote(self.password) .. " ") or ""
  local p = io.popen(format("%sredis-cli -p %d %s 2>&1", auth, self._port, concat(args, " ")))
  local out = p:read("*a")
  p:close()
  return (out:gsub("\n$", ""))
end

function mt:kill()
  proc.kill(self.h, "KILL")
  proc.wait_for(function() return proc.exit_code(self.h) end, 5)
end

function mt:restart()
  if not proc.exit_code(self.h) then self:kill() end
  spawn(self)
end

function mt:pause() proc.kill(self.h, "STOP") end
function mt:resume() proc.kill(self.h, "CONT") end

function mt:stop()
  self:resume()
  proc.stop(self.h, { bound = 5 })
  proc.rmdir_all(self.dir)
end

return _M
