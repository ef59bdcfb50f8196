-- Hot reload: SIGHUP or POST /reload loads the config file (and its plugins)
-- anew; new workers take over the listening sockets and the old ones hand
-- their kept-alive connections over between requests. Under load nothing is
-- dropped and no request fails; a bad config is refused and the old one
-- keeps serving.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local cjson = require("cjson")
local socket = require("socket")
require("spec.support.assert")

local function config(port, admin_port, body, origin, extra)
  return gateway.serialize({
    listen = "127.0.0.1:" .. port, workers = 2, log_level = "info", access_log = false,
    admin = { listen = "127.0.0.1:" .. admin_port },
    routes = {
      { name = "v", prefix = "/v", static = { status = 200, body = body }, cors = { origins = { origin } } },
      { name = "echo", prefix = "/", upstream = "echo" },
      extra,
    },
  })
end

describe("hot reload", function()
  local gw, port, admin_port

  local function write(body, origin, extra)
    proc.write_file(gw.config_path, config(port, admin_port, body, origin, extra))
  end

  local function reload()
    local res, err = http.request(admin_port, "POST", "/reload", {})
    assert.truthy(res, err)
    return res
  end

  before_each(function()
    port, admin_port = proc.free_port(), proc.free_port()
    gw = gateway.start(config(port, admin_port, "one", "https://one.example"), { port = port })
  end)

  after_each(function()
    if gw then gw:stop_clean() end
  end)

  it("POST /reload swaps in the new config: routes, bodies and CORS policy", function()
    local res = http.request(port, "GET", "/v", { { "Origin", "https://one.example" } })
    assert.equal("one", res.body)
    assert.header(res, "access-control-allow-origin", "https://one.example")
    write("two", "https://two.example", { name = "new", prefix = "/new", static = { status = 201, body = "new" } })
    res = reload()
    assert.res_status(200, res)
    assert.equal("reloaded", cjson.decode(res.body).status)
    res = http.request(port, "GET", "/v", { { "Origin", "https://one.example" } })
    assert.equal("two", res.body)
    assert.no_header(res, "access-control-allow-origin")
    res = http.request(port, "GET", "/v", { { "Origin", "https://two.example" } })
    assert.header(res, "access-control-allow-origin", "https://two.example")
    assert.res_status(201, http.request(port, "GET", "/new", {}))
    assert.truthy(gw:log():find("reload: .* loaded", 1), gw:log_tail(5))
  end)

  it("SIGHUP reloads too", function()
    write("hup", "https://one.example")
    gw:signal("HUP")
    assert.truthy(proc.wait_for(function()
      local res = http.request(port, "GET", "/v", {})
      return res and res.body == "hup"
    end, 5), gw:log_tail(10))
  end)

  it("refuses a bad config with its problems, and the old one keeps serving", function()
    write("bad", "https://one.example", { name = "x", prefix = "/x", upstream = "nowhere" })
    local res = reload()
    assert.res_status(400, res)
    local j = cjson.decode(res.body)
    assert.matches("refused", j.error)
    assert.equal('routes[3].upstream: unknown upstream "nowhere"', j.problems[1])
    assert.equal("one", http.request(port, "GET", "/v", {}).body)
    assert.truthy(gw:log():find('reload refused: .*routes%[3%]%.upstream: unknown upstream "nowhere"'), gw:log_tail(5))
    -- settings that need a restart are refused the same way
    proc.write_file(gw.config_path, config(port, admin_port, "w", "https://one.example"):gsub("workers = 2", "workers = 3"))
    res = reload()
    assert.res_status(400, res)
    assert.matches("workers: changing it needs a restart", res.body)
    assert.equal("one", http.request(port, "GET", "/v", {}).body)
  end)

  it("drops no connection and fails no request: kept-alive and pipelined requests across 30 reloads", function()
    -- 20 kept-alive connections, each with two requests in flight while the
    -- reload happens; each round also opens a new connection
    local conns = {}
    for i = 1, 20 do conns[i] = assert(http.connect(port)) end
    local bodies = { "one", "two" }
    local served = { one = 0, two = 0 }
    for round = 1, 30 do
      for _, c in ipairs(conns) do
        assert(c:send(http.build_request("GET", "/v", { { "Host", "x" } }) ..
                      http.build_request("GET", "/v", { { "Host", "x" } })))
      end
      write(bodies[round % 2 + 1], "https://one.example")
      assert.res_status(200, reload())
      for i, c in ipairs(conns) do
        for _ = 1, 2 do
          local res, err = c:read_response({ method = "GET" })
          assert.truthy(res, ("round %d, connection %d: %s"):format(round, i, tostring(err)))
          assert.res_status(200, res)
          assert.no_header(res, "connection") -- never told to close
          served[res.body] = served[res.body] + 1
        end
      end
      local fresh = http.request(port, "GET", "/v", {})
      assert.equal(bodies[round % 2 + 1], fresh.body, "a new connection sees the new config")
    end
    assert.equal(30 * 20 * 2, served.one + served.two)
    assert.truthy(served.one > 0 and served.two > 0)
    for _, c in ipairs(conns) do c:close() end
    assert.is_nil(gw:log():find("drain timeout"), gw:log_tail(10))
  end)

  it("under concurrent load (wrk, 50 connections) no request fails across reloads", function()
    local out = os.tmpname()
    local h = proc.spawn({ "wrk", "-t2", "-c50", "-d4s", "http://127.0.0.1:" .. port .. "/v" }, out)
    socket.sleep(0.5)
    for i = 1, 8 do
      write(i % 2 == 0 and "one" or "two", "https://one.example")
      assert.res_status(200, reload())
      socket.sleep(0.3)
    end
    assert.truthy(proc.wait_for(function() return proc.exit_code(h) ~= nil end, 15))
    local report = proc.read_file(out)
    os.remove(out)
    local n = tonumber(report:match("(%d+) requests in"))
    assert.truthy(n and n > 1000, report)
    assert.is_nil(report:find("Socket errors"), report)
    assert.is_nil(report:find("Non%-2xx"), report)
  end)
end)
