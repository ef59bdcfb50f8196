-- systemd's notification protocol (Type=notify): the gateway says READY=1 once
-- it serves, RELOADING=1 then READY=1 around a reload (refused or not: the
-- running config serves on), and STOPPING=1 when it drains. The spec plays
-- systemd: a datagram socket named by NOTIFY_SOCKET.
local gateway = require("spec.support.gateway")
local proc = require("spec.support.proc")
local unix = require("socket.unix")
require("spec.support.assert")

local function listen(path)
  local s = assert(unix.dgram())
  assert(s:bind(path))
  s:settimeout(5)
  return s
end

-- the next datagram as a table of its KEY=value lines, or nil on timeout
local function receive(s)
  local msg = s:receive()
  if not msg then return nil end
  local t = {}
  for k, v in msg:gmatch("([A-Z_]+)=([^\n]*)") do t[k] = v end
  return t
end

describe("systemd notification", function()
  local dir, sock, gw, cfg

  local function config(routes)
    return { listen = "127.0.0.1:" .. (gw and gw:port() or proc.free_port()), workers = 1, routes = routes }
  end

  lazy_setup(function()
    dir = proc.tmpdir("notify")
    sock = listen(dir .. "/notify.sock")
    gw = gateway.start(config({ { name = "a", prefix = "/", upstream = "echo" } }),
      { env = { NOTIFY_SOCKET = dir .. "/notify.sock" } })
    cfg = gw.config_path
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    if sock then sock:close() end
    proc.rmdir_all(dir)
  end)

  it("says READY=1 once it serves, with its pid", function()
    local m = assert(receive(sock), "no datagram")
    assert.equal("1", m.READY)
    assert.equal(tostring(gw:pid()), m.MAINPID)
    assert.matches("serving config #1", m.STATUS)
    assert.truthy(proc.port_open(gw:port()))
  end)

  it("brackets a reload with RELOADING=1 and READY=1", function()
    proc.write_file(cfg, gateway.serialize(config({ { name = "b", prefix = "/", upstream = "echo" } })))
    gw:signal("HUP")
    local m = assert(receive(sock), "no RELOADING")
    assert.equal("1", m.RELOADING)
    assert.matches("^%d+$", m.MONOTONIC_USEC)
    m = assert(receive(sock), "no READY after the reload")
    assert.equal("1", m.READY)
    assert.matches("reloaded: serving config #2", m.STATUS)
  end)

  it("says READY=1 after a refused reload too: the old config serves on", function()
    proc.write_file(cfg, "return { listen = 5 }")
    gw:signal("HUP")
    assert.equal("1", assert(receive(sock)).RELOADING)
    local m = assert(receive(sock), "no READY after the refused reload")
    assert.equal("1", m.READY)
    assert.matches("reload refused: serving config #2", m.STATUS)
  end)

  it("says STOPPING=1 when it drains", function()
    gw:signal("TERM")
    local m = assert(receive(sock), "no STOPPING")
    assert.equal("1", m.STOPPING)
    assert.equal(0, gw:wait_exit(10))
  end)

  it("uses an abstract socket name (@...) too", function()
    -- luasocket cannot bind an abstract name: a python3 listener plays systemd
    local name = "corsgate-spec-" .. tostring(gw:pid())
    local out = dir .. "/abstract.out"
    proc.write_file(dir .. "/listen.py", table.concat({
      "import socket",
      "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)",
      "s.bind('\\0" .. name .. "')",
      "print('bound', flush=True)",
      "s.settimeout(8)",
      "print(s.recv(1000).decode(), flush=True)",
    }, "\n"))
    local py = io.popen(("timeout 10 python3 %q > %q 2>&1"):format(dir .. "/listen.py", out), "r")
    assert(proc.wait_for(function() return (proc.read_file(out) or ""):find("bound") end, 5), "python3 did not bind")
    local g2 = gateway.start({ routes = { { name = "a", prefix = "/", upstream = "echo" } } },
      { env = { NOTIFY_SOCKET = "@" .. name } })
    local got = proc.wait_for(function() return (proc.read_file(out) or ""):find("READY=1") end, 8)
    g2:stop_clean()
    py:close()
    assert.truthy(got, "no datagram on the abstract socket: " .. (proc.read_file(out) or ""))
  end)
end)

-- `corsgate reload --pid PID`: what systemd's ExecReload runs. It returns once
-- the new config serves (0) or was refused (1), read from the status the
-- gateway keeps in $RUNTIME_DIRECTORY.
describe("corsgate reload", function()
  local dir, gw, cfg

  local function config(routes)
    return { listen = "127.0.0.1:" .. (gw and gw:port() or proc.free_port()), workers = 1, routes = routes }
  end

  lazy_setup(function()
    dir = proc.tmpdir("reloadcmd")
    assert(proc.sh("mkdir -p " .. proc.quote(dir .. "/run")) == 0)
    gw = gateway.start(config({ { name = "old", prefix = "/", upstream = "echo" } }),
      { env = { RUNTIME_DIRECTORY = dir .. "/run" } })
    cfg = gw.config_path
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    proc.rmdir_all(dir)
  end)

  local function reload(extra)
    return proc.sh(("env RUNTIME_DIRECTORY=%s %s reload --pid %d %s"):format(proc.quote(dir .. "/run"),
      proc.quote(gateway.bin()), gw:pid(), extra or ""))
  end

  it("returns once the new config serves", function()
    proc.write_file(cfg, gateway.serialize(config({ { name = "new", prefix = "/", upstream = "echo" } })))
    local code, out = reload()
    assert.equal(0, code, out)
    assert.matches("reloaded", out)
    -- no waiting here: the first request after it returns is the new config's
    local res = require("spec.support.http").request(gw:port(), "GET", "/x", {})
    assert.equal("new", require("cjson").decode(res.body).route)
  end)

  it("fails with the config's problem when the reload is refused, and the old config serves on", function()
    proc.write_file(cfg, "return { listen = 5 }")
    local code, out = reload()
    assert.equal(1, code, out)
    assert.matches("reload refused: listen: expected \"host:port\" or a list of listeners, got number", out)
    local res = require("spec.support.http").request(gw:port(), "GET", "/x", {})
    assert.equal("new", require("cjson").decode(res.body).route)
  end)

  it("says what is missing without a status directory, a live process or a pid", function()
    local code, out = proc.sh(("env -u RUNTIME_DIRECTORY %s reload --pid %d"):format(proc.quote(gateway.bin()), gw:pid()))
    assert.equal(1, code)
    assert.matches("no status directory", out)
    code, out = proc.sh(("%s reload --pid 999999 --dir %s"):format(proc.quote(gateway.bin()), proc.quote(dir)))
    assert.equal(1, code)
    assert.matches("cannot signal process 999999", out)
    code, out = proc.sh(proc.quote(gateway.bin()) .. " reload")
    assert.equal(2, code)
    assert.matches("%-%-pid PID is required", out)
  end)
end)
