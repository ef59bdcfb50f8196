-- A fleet on Redis Sentinel: one primary, one replica, three sentinels (short
-- down-after and failover timeouts) and two corsgate instances (two workers
-- each) that find the primary through the sentinels. The primary is killed
-- (SIGKILL) under traffic: cached origins keep being served, new origins are
-- decided through the new primary soon after the sentinels name it, tenant
-- changes published after the failover reach every worker, and /healthz and
-- the metrics show it. Everything on 127.0.0.1.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local redis = require("spec.support.redis")
local fleet = require("spec.support.fleet")
local socket = require("socket")
local cjson = require("cjson")
require("spec.support.assert")

local format = string.format

local allowed, all_allow = fleet.allowed, fleet.all_allow

describe("fleet on Redis Sentinel", function()
  local primary, replica, sentinels, a, b = nil, nil, {}, nil, nil
  local sentinel_args = {}

  local function tenants_load(doc)
    local path = os.tmpname()
    proc.write_file(path, cjson.encode(doc))
    local code, out = proc.sh(format("%s/scripts/tenants-load %s --master-name corsgate %s", gateway.root,
      table.concat(sentinel_args, " "), path))
    os.remove(path)
    return code, out
  end

  local function named_primary()
    return tonumber(sentinels[1]:cli("SENTINEL", "get-master-addr-by-name", "corsgate"):match("\n(%d+)$"))
  end

  local function start()
    local admin_port = proc.free_port()
    local addrs = {}
    for i, s in ipairs(sentinels) do addrs[i] = s:address() end
    local gw = gateway.start({
      workers = 2,
      admin = { listen = "127.0.0.1:" .. admin_port },
      redis = { sentinels = addrs, master_name = "corsgate", timeout_ms = 300, connect_timeout_ms = 300 },
      routes = { { name = "api", prefix = "/api", upstream = "echo",
        cors = { plugin = "tenant_redis", methods = { "GET", "PUT" }, ttl = 3600, deny_ttl = 0.2 } } },
    })
    gw.admin_port = admin_port
    assert(proc.wait_for(function() return gw:log():find("listening on channel", 1, true) end, 5), gw:log_tail(10))
    return gw
  end

  local function health(gw)
    local res = assert(http.request(gw.admin_port, "GET", "/healthz", {}))
    return cjson.decode(res.body)
  end

  lazy_setup(function()
    primary = redis.start()
    replica = redis.start({ replicaof = primary })
    assert.truthy(proc.wait_for(function()
      return replica:cli("INFO", "replication"):find("master_link_status:up", 1, true)
    end, 10), "the replica did not sync")
    for i = 1, 3 do
      sentinels[i] = redis.start({ sentinel = primary, name = "corsgate", down_after_ms = 1000,
        failover_timeout_ms = 3000 })
      sentinel_args[#sentinel_args + 1] = "--sentinel " .. sentinels[i]:address()
    end
    -- the sentinels know the replica and each other before anything fails
    assert.truthy(proc.wait_for(function()
      for _, s in ipairs(sentinels) do
        if not s:cli("SENTINEL", "replicas", "corsgate"):find(tostring(replica:port()), 1, true) then return false end
        local others = select(2, s:cli("SENTINEL", "sentinels", "corsgate"):gsub("\nip\n", ""))
        if others < 1 then return false end
      end
      return true
    end, 20, 0.2), "the sentinels did not discover the replica and each other")
    a, b = start(), start()
  end)

  lazy_teardown(function()
    if a then a:stop_clean() end
    if b then b:stop_clean() end
    for _, s in ipairs(sentinels) do s:stop() end
    if replica then replica:stop() end
    if primary then primary:stop() end
  end)

  it("finds the primary through the sentinels", function()
    local code, out = tenants_load({ tenants = { acme = { origins = { "https://app.acme.test" } } } })
    assert.equal(0, code, out)
    assert.truthy(proc.wait_for(function() return all_allow({ a, b }, "https://app.acme.test", true) end, 3))
    assert.equal(primary:address(), health(a).redis.primary)
    assert.equal(0, health(a).redis.failovers)
  end)

  it("follows a failover: cached origins served throughout, new ones through the new primary", function()
    -- cached everywhere before the primary dies
    assert.truthy(all_allow({ a, b }, "https://app.acme.test", true))
    local t_kill = socket.gettime()
    primary:kill()
    local refused_cached, t_switch = 0, nil
    local deadline = t_kill + 20
    while socket.gettime() < deadline do
      for _, gw in ipairs({ a, b }) do
        if not allowed(gw:port(), "https://app.acme.test") then refused_cached = refused_cached + 1 end
      end
      if named_primary() == replica:port() then
        t_switch = socket.gettime()
        break
      end
      proc.sleep(0.05)
    end
    assert.truthy(t_switch, "the sentinels did not fail over within 20 s")
    assert.equal(0, refused_cached, "cached origins were refused during the failover")
    -- a tenant written to the new primary (tenants-load asks the sentinels too)
    local code, out = tenants_load({ tenants = { globex = { origins = { "https://globex.test" } } } })
    assert.equal(0, code, out)
    assert.truthy(proc.wait_for(function() return all_allow({ a, b }, "https://globex.test", true) end, 5, 0.02),
      "a new origin was not decided through the new primary")
    local t_new = socket.gettime()
    print(format("\n[sentinel] failover: sentinels named the new primary %.0f ms after the kill; new origins "
      .. "decided %.0f ms after that (refused from the kill to then: %.0f ms); cached origins refused: %d",
      (t_switch - t_kill) * 1000, (t_new - t_switch) * 1000, (t_new - t_kill) * 1000, refused_cached))
    assert.truthy(t_new - t_switch <= 1.5, format("new origins waited %.2f s after the failover", t_new - t_switch))
    for _, gw in ipairs({ a, b }) do
      local h = health(gw)
      assert.equal(replica:address(), h.redis.primary)
      assert.equal(1, h.redis.failovers, "one failover, counted once")
      local m = assert(http.request(gw.admin_port, "GET", "/metrics", {})).body
      assert.matches('corsgate_redis_primary{address="' .. replica:address() .. '"} 1', m, 1, true)
      assert.truthy(tonumber(m:match("corsgate_redis_failovers_total (%d+)")) >= 1)
    end
  end)

  it("carries a tenant change published after the failover to every worker within 1 s", function()
    local function moved(gw)
      local log = gw:log()
      local at = log:find("the sentinels name a new primary", 1, true)
      return at and log:find("listening on channel", at, true)
    end
    assert.truthy(proc.wait_for(function() return moved(a) and moved(b) end, 5),
      "the subscribers did not move to the new primary")
    assert.truthy(all_allow({ a, b }, "https://app.acme.test", true))
    local t0 = socket.gettime()
    local code, out = tenants_load({ tenants = { acme = { origins = { "https://app.acme.test" }, allowed = false } } })
    assert.equal(0, code, out)
    assert.truthy(proc.wait_for(function() return all_allow({ a, b }, "https://app.acme.test", false) end, 1, 0.02),
      "the change did not reach every worker within 1 s")
    print(format("\n[sentinel] tenant change after the failover visible on both instances in %.0f ms",
      (socket.gettime() - t0) * 1000))
  end)

  it("writes tenants over the admin API to the new primary after the failover", function()
    local function put(gw, name, body)
      local res = assert(http.request(gw.admin_port, "PUT", "/tenants/" .. name, {}, body))
      return res.status, res.body
    end
    -- the admin's own connection moves like the others: at most a failed first try
    local status, body
    assert.truthy(proc.wait_for(function()
      status, body = put(a, "initech", '{"origins": ["https://app.initech.test"]}')
      return status == 201 or status == 200
    end, 5, 0.1), tostring(status) .. " " .. tostring(body))
    assert.equal("initech", replica:cli("HGET", "corsgate:origin:https://app.initech.test", "tenant"))
    assert.truthy(proc.wait_for(function() return all_allow({ a, b }, "https://app.initech.test", true) end, 1, 0.02),
      "the API's write did not reach every worker within 1 s")
    -- and the ownership rule holds there too (b's admin connection may take its own failed first try)
    assert.truthy(proc.wait_for(function()
      status, body = put(b, "globex", '{"origins": ["https://app.initech.test"]}')
      return status ~= 503
    end, 5, 0.1), tostring(status) .. " " .. tostring(body))
    assert.equal(409, status, body)
  end)

  it("follows a primary that stops answering without closing (only the sentinels' +switch-master tells)", function()
    -- the old primary comes back, and the sentinels make it a replica of the new one
    primary:restart()
    assert.truthy(proc.wait_for(function()
      local info = primary:cli("INFO", "replication")
      return info:find("role:slave", 1, true) and info:find("master_link_status:up", 1, true)
    end, 30, 0.2), "the old primary did not become a replica")
    -- an origin cached for an hour on every worker: only an invalidation can change it
    local code, out = tenants_load({ tenants = { stall = { origins = { "https://stall.test" }, ttl = 3600 } } })
    assert.equal(0, code, out)
    assert.truthy(proc.wait_for(function() return all_allow({ a, b }, "https://stall.test", true) end, 3))
    -- the new primary stalls: its connections stay open, nothing is closed
    replica:pause()
    local t0 = socket.gettime()
    assert.truthy(proc.wait_for(function() return named_primary() == primary:port() end, 20, 0.1),
      "the sentinels did not fail over to the old primary")
    print(format("\n[sentinel] a stalled primary: the sentinels named the next one after %.0f ms",
      (socket.gettime() - t0) * 1000))
    -- the subscribers' connections to the stalled one look alive: only the watch moves them
    local t1 = socket.gettime()
    code, out = tenants_load({ tenants = { stall = { origins = { "https://stall.test" }, allowed = false, ttl = 3600 } } })
    assert.equal(0, code, out)
    assert.truthy(proc.wait_for(function() return all_allow({ a, b }, "https://stall.test", false) end, 1.5, 0.02),
      "the change did not reach every worker after the primary stalled")
    print(format("[sentinel] a tenant change after that failover visible everywhere in %.0f ms",
      (socket.gettime() - t1) * 1000))
    for _, gw in ipairs({ a, b }) do
      local h = health(gw)
      assert.equal(primary:address(), h.redis.primary)
      assert.equal(2, h.redis.failovers)
    end
    replica:resume()
  end)

  it("refuses a config with both address and sentinels, or sentinels without master_name", function()
    local code, out = gateway.check({ redis = { address = "127.0.0.1:6379", sentinels = { "127.0.0.1:26379" },
      master_name = "x" }, routes = { { prefix = "/", upstream = "echo" } } })
    assert.is_not.equal(0, code)
    assert.matches("redis.address: address or sentinels, not both", out, 1, true)
    code, out = gateway.check({ redis = { sentinels = { "127.0.0.1:26379" } },
      routes = { { prefix = "/", upstream = "echo" } } })
    assert.is_not.equal(0, code)
    assert.matches("redis.master_name: required", out, 1, true)
    code, out = gateway.check({ redis = { sentinels = { "sentinel-1:26379" }, master_name = "x" },
      routes = { { prefix = "/", upstream = "echo" } } })
    assert.is_not.equal(0, code)
    assert.matches('redis.sentinels[1]: expected "IP:port"', out, 1, true)
    code, out = gateway.check({ redis = { address = "127.0.0.1:6379", master_name = "x" },
      routes = { { prefix = "/", upstream = "echo" } } })
    assert.is_not.equal(0, code)
    assert.matches("redis.master_name: only meaningful with sentinels", out, 1, true)
    code, out = proc.sh(format("%s/scripts/tenants-load --sentinel 127.0.0.1:1 /dev/null", gateway.root))
    assert.is_not.equal(0, code)
    assert.matches("--sentinel and --master-name go together", out, 1, true)
  end)
end)
