-- The command line: version, help, unknown commands, and config diagnostics from
-- `corsgate check` and `corsgate run` (each problem as `FILE: PATH: message`, exit 2).
local gateway = require("spec.support.gateway")
local proc = require("spec.support.proc")

local find = string.find

local function ok_config(extra)
  local c = {
    listen = "127.0.0.1:1", workers = 1,
    upstreams = { api = { targets = { "127.0.0.1:9" } } },
    routes = {
      { name = "api", prefix = "/", upstream = "api" },
      { name = "hi", prefix = "/hello", static = { status = 200, body = "hi" } },
    },
  }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

describe("corsgate CLI", function()
  it("version prints the version, the commit, the libraries and the plugins it uses, and exits 0", function()
    local code, out = gateway.cli({ "version" })
    assert.equal(0, code)
    local built = out:match("^corsgate %d+%.%d+%.%d+ %(commit ([%w-]+)%)\n")
    assert.truthy(built, out)
    -- a commit of this repository (perhaps not HEAD: a build before the last commit), or
    -- "unknown" for a tree that is no git checkout
    local hash = built:match("^(%x+)")
    local in_git = proc.sh("git -C " .. proc.quote(os.getenv("CORSGATE_ROOT") or ".") .. " rev-parse --git-dir") == 0
    if in_git then
      assert.truthy(hash, out)
      assert.equal(0, (proc.sh("git -C " .. proc.quote(os.getenv("CORSGATE_ROOT") or ".") .. " cat-file -e " .. hash)))
    else
      assert.equal("unknown", built)
    end
    assert.matches("\nlibuv 1%.[%d.]+, LuaJIT 2%.[^,]+, llhttp %d+%.%d+%.%d+, hiredis %d+%.%d+%.%d+\n", out)
    assert.matches("\nshipped plugins: /.*plugins\n$", out)
  end)

  it("--help prints usage with the commands and exits 0", function()
    local code, out = gateway.cli({ "--help" })
    assert.equal(0, code)
    assert.truthy(find(out, "usage", 1, true), out)
    for _, cmd in ipairs({ "run", "check", "version" }) do
      assert.truthy(find(out, cmd, 1, true), "usage lacks " .. cmd .. ":\n" .. out)
    end
  end)

  for _, args in ipairs({ { "frobnicate" }, { "run", "--no-such-flag" }, { "check" } }) do
    it("exits 2 for `corsgate " .. table.concat(args, " ") .. "`", function()
      local code, out = gateway.cli(args)
      assert.equal(2, code, out)
      assert.truthy(#out > 0, "says nothing about what is wrong")
    end)
  end

  it("check on a good config prints `FILE: ok` and exits 0", function()
    local code, out, path = gateway.check(ok_config())
    assert.equal(0, code, out)
    assert.truthy(find(out, path .. ": ok", 1, true), out)
  end)

  it("check on a missing file exits 2", function()
    local code, out = gateway.cli({ "check", "-c", "/nonexistent/corsgate.lua" })
    assert.equal(2, code, out)
  end)

  it("check on a file that is not Lua exits 2 and names the file", function()
    local code, out, path = gateway.check("return { listen = ")
    assert.equal(2, code, out)
    assert.truthy(find(out, path, 1, true), out)
  end)

  it("check on a file that returns no table exits 2", function()
    local code, out = gateway.check("return 42\n")
    assert.equal(2, code, out)
  end)

  it("check stops a config that loops forever, with a clear error and exit 2", function()
    local code, out = gateway.check("local n = 0\nwhile true do n = n + 1 end\n")
    assert.equal(2, code, out)
    assert.truthy(find(out, "did not finish within 100 million Lua instructions", 1, true), out)
  end)

  it("check stops a config that takes all memory, with a clear error and exit 2", function()
    local code, out = gateway.check("local s = 'x'\nfor i = 1, 40 do s = s .. s end\nreturn {}\n")
    assert.equal(2, code, out)
    assert.truthy(find(out, "evaluating the config took more than 256 MiB of memory", 1, true), out)
  end)

  -- Each case: a change to a good config, and the exact `PATH: message` expected.
  local cases = {
    { "an unknown upstream", function(c) c.routes[1].upstream = "nowhere" end,
      'routes[1].upstream: unknown upstream "nowhere"' },
    { "a listen address without a port", function(c) c.listen = "nonsense" end,
      'listen: expected "host:port", got "nonsense"' },
    { "workers = 0", function(c) c.workers = 0 end, "workers: expected an integer between 1 and 256" },
    { "workers = 257", function(c) c.workers = 257 end, "workers: expected an integer between 1 and 256" },
    { "workers = 1.5", function(c) c.workers = 1.5 end, "workers: expected an integer between 1 and 256" },
    { "a misspelled route key", function(c) c.routes[1].upstrem, c.routes[1].upstream = "api", nil end,
      "routes[1].upstrem: unknown key" },
    { "a timeout given as a string", function(c) c.timeouts = { head = "10s" } end,
      "timeouts.head: expected a number, got string" },
    { "a route without a prefix", function(c) c.routes[2].prefix = nil end, "routes[2].prefix: required" },
    { "an unknown top-level key", function(c) c.listne = "127.0.0.1:1" end, "listne: unknown key" },
  }

  for _, case in ipairs(cases) do
    local name, mutate, expected = case[1], case[2], case[3]
    it("check refuses " .. name .. " with `FILE: " .. expected .. "` and exit 2", function()
      local c = ok_config()
      mutate(c)
      local code, out, path = gateway.check(c)
      assert.equal(2, code, out)
      assert.truthy(find(out, path .. ": " .. expected, 1, true),
        "expected the line\n  " .. path .. ": " .. expected .. "\ngot\n" .. out)
    end)
  end

  it("check reports every problem, not only the first", function()
    local c = ok_config({ listen = "nonsense", workers = 0 })
    c.routes[1].upstream = "nowhere"
    local code, out = gateway.check(c)
    assert.equal(2, code, out)
    for _, needle in ipairs({ "listen:", "workers:", "routes[1].upstream:" }) do
      assert.truthy(find(out, needle, 1, true), "missing " .. needle .. " in\n" .. out)
    end
  end)

  it("run with a bad config prints the problem, exits 2 and serves nothing", function()
    local c = ok_config()
    c.listen = nil
    c.routes[1].upstream = "nowhere"
    local gw = gateway.start(c, { wait = false })
    local code = gw:wait_exit(10)
    local log = gw:log()
    local port = gw:port()
    gw:cleanup()
    assert.equal(2, code, log)
    assert.truthy(find(log, 'routes[1].upstream: unknown upstream "nowhere"', 1, true), log)
    assert.is_false(proc.port_open(port))
  end)
end)
