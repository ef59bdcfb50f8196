-- corsgate on a sentinel that is wrong, or silent: two plain redis-servers R1
-- and R2 and a fake sentinel (spec/support/fake_sentinel.py) that names
-- whatever its address file says and never publishes +switch-master. What
-- the real sentinels of sentinel_spec never do shows here:
--   - the sentinel names a replica: ROLE says so, corsgate does not take it
--     for the primary, and takes the right one once the sentinel names it;
--   - the primary is demoted behind the sentinel's back (no +switch-master):
--     the first write gets READONLY, and that sends the connection back to
--     the sentinel, which names the new primary.
-- One corsgate of two workers, everything on 127.0.0.1.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local redis = require("spec.support.redis")
local fleet = require("spec.support.fleet")
local socket = require("socket")
local cjson = require("cjson")
require("spec.support.assert")

local format = string.format

-- what every worker says
local function all_say(gw, origin, want) return fleet.all_allow({ gw }, origin, want) end

describe("Redis Sentinel naming a replica, or missing a failover", function()
  local r1, r2, gw, fake, dir, addrfile, fake_port = nil, nil, nil, nil, nil, nil, nil

  -- the fake sentinel's answer from now on
  local function sentinel_names(r)
    proc.write_file(addrfile .. ".tmp", r:address() .. "\n")
    os.rename(addrfile .. ".tmp", addrfile)
  end

  local function health()
    local res = assert(http.request(gw.admin_port, "GET", "/healthz", {}))
    return cjson.decode(res.body)
  end

  local function put(name, body)
    local res = assert(http.request(gw.admin_port, "PUT", "/tenants/" .. name, {}, body, { timeout = 5 }))
    return res.status, res.body
  end

  -- the log without its access lines, for failure messages
  local function events()
    local out = {}
    for l in gw:log():gmatch("[^\n]+") do
      if not l:find('" %d%d%d ') then out[#out + 1] = l end
    end
    return table.concat(out, "\n", math.max(1, #out - 30))
  end

  local function role(r)
    return r:cli("ROLE"):match("^(%a+)")
  end

  lazy_setup(function()
    dir = proc.tmpdir("fake-sentinel")
    addrfile = dir .. "/primary"
    r1 = redis.start()
    r2 = redis.start({ replicaof = r1 })
    assert.truthy(proc.wait_for(function()
      return r2:cli("INFO", "replication"):find("master_link_status:up", 1, true)
    end, 10), "R2 did not sync from R1")
    sentinel_names(r2) -- wrong from the start: R2 is a replica
    local pf = dir .. "/port"
    fake = proc.spawn({ "/usr/bin/python3", gateway.root .. "/spec/support/fake_sentinel.py", pf, addrfile },
      dir .. "/fake.log", { dir = dir })
    assert.truthy(proc.wait_for(function() return proc.read_file(pf) end, 5), proc.read_file(dir .. "/fake.log"))
    fake_port = tonumber(proc.read_file(pf))
    local admin_port = proc.free_port()
    gw = gateway.start({
      workers = 2,
      admin = { listen = "127.0.0.1:" .. admin_port },
      redis = { sentinels = { "127.0.0.1:" .. fake_port }, master_name = "corsgate", timeout_ms = 300,
        connect_timeout_ms = 300 },
      routes = { { name = "api", prefix = "/api", upstream = "echo",
        cors = { plugin = "tenant_redis", methods = { "GET", "PUT" }, ttl = 3600, deny_ttl = 0.2 } } },
    })
    gw.admin_port = admin_port
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    if fake then proc.stop(fake, { bound = 5 }) end
    if r2 then r2:stop() end
    if r1 then r1:stop() end
    proc.rmdir_all(dir)
  end)

  it("checks with ROLE that the address the sentinel names is the primary", function()
    assert.equal("slave", role(r2))
    -- the tenant is on R1 (and replicated to R2): only a lookup that reaches
    -- a Redis could allow it
    local path = dir .. "/tenants.json"
    proc.write_file(path, cjson.encode({ tenants = { acme = { origins = { "https://app.acme.test" } } } }))
    local code, out = proc.sh(format("%s/scripts/tenants-load --redis %s %s", gateway.root, r1:address(), path))
    assert.equal(0, code, out)
    assert.truthy(proc.wait_for(function()
      return r2:cli("HGET", "corsgate:origin:https://app.acme.test", "tenant") == "acme"
    end, 5), "R2 did not replicate the tenant")

    -- the sentinel names R2: corsgate asks it (the fake logs the question),
    -- ROLE answers "slave", and corsgate says so and stays down
    assert.truthy(proc.wait_for(function()
      return gw:log():find("not the primary (its role: slave)", 1, true)
    end, 3), events())
    assert.matches("request: SENTINEL get-master-addr-by-name corsgate", proc.read_file(dir .. "/fake.log"), 1, true)
    local t_end = socket.gettime() + 1
    while socket.gettime() < t_end do -- for a while, not just once
      local h = health()
      assert.equal("down", h.redis.state)
      assert.is_not.equal(r2:address(), h.redis.primary)
      assert.equal(0, h.redis.failovers)
      proc.sleep(0.1)
    end
    assert.is_falsy(gw:log():find("listening on channel", 1, true), events())
    assert.truthy(all_say(gw, "https://app.acme.test", false), "an origin was allowed through a replica")
    local status = put("wrong", '{"origins": ["https://wrong.test"]}')
    assert.equal(503, status)
    assert.equal("", r1:cli("HGET", "corsgate:origin:https://wrong.test", "tenant"))

    -- the sentinel names R1: corsgate connects there (retries come every
    -- 100 to 750 ms), and serves the tenant written to it
    local t0 = socket.gettime()
    sentinel_names(r1)
    local h
    assert.truthy(proc.wait_for(function()
      h = health()
      return h.redis.state == "up" and h.redis.primary == r1:address()
    end, 3, 0.05), cjson.encode(h) .. "\n" .. events())
    local t_up = socket.gettime()
    assert.truthy(proc.wait_for(function() return all_say(gw, "https://app.acme.test", true) end, 3, 0.05),
      "the tenant on R1 was not served")
    assert.equal(0, health().redis.failovers, "the first primary confirmed is no failover")
    assert.truthy(gw:log():find("listening on channel", 1, true))
    print(format("\n[sentinel_role] the sentinel names R1: /healthz up with primary R1 %.0f ms later, the origin "
      .. "allowed on both workers %.0f ms after that", (t_up - t0) * 1000, (socket.gettime() - t_up) * 1000))
  end)

  it("asks the sentinel again when a write gets READONLY (a failover without +switch-master)", function()
    -- everything on R1 (as the test before leaves it; run alone, it gets
    -- there): every connection up, none still retrying that could ask the
    -- sentinel on its own later
    sentinel_names(r1)
    local h
    assert.truthy(proc.wait_for(function()
      h = health()
      return h.redis.state == "up" and h.redis.subscriber == "up" and h.redis.primary == r1:address()
        and h.redis.connections > 0 and h.redis.connections_up == h.redis.connections
    end, 3, 0.05), cjson.encode(h) .. "\n" .. events())
    local status, body
    assert.truthy(proc.wait_for(function() -- the admin API's connection may still be on its way
      status, body = put("initech", '{"origins": ["https://app.initech.test"]}')
      return status ~= 503
    end, 3, 0.1), tostring(status) .. " " .. tostring(body))
    assert.equal(201, status, body)
    assert.equal("initech", r1:cli("HGET", "corsgate:origin:https://app.initech.test", "tenant"))
    assert.truthy(proc.wait_for(function() return all_say(gw, "https://app.initech.test", true) end, 1, 0.02))

    -- R2 becomes the primary and R1 its replica, behind the sentinel's back:
    -- it names R2 from now on, but publishes nothing
    assert.equal("OK", r2:cli("REPLICAOF", "NO", "ONE"))
    assert.equal("OK", r1:cli("REPLICAOF", "127.0.0.1", r2:port()))
    sentinel_names(r2)
    assert.truthy(proc.wait_for(function()
      return r1:cli("INFO", "replication"):find("master_link_status:up", 1, true)
    end, 10), "R1 did not sync from R2")
    assert.equal("master", role(r2))
    assert.equal("slave", role(r1))
    -- nothing told corsgate: it still takes R1 for the primary, and the
    -- workers still read there (a replica answers reads)
    proc.sleep(0.5)
    assert.equal(r1:address(), health().redis.primary, events())
    assert.equal(0, health().redis.failovers)
    assert.truthy(all_say(gw, "https://app.initech.test", true))
    assert.is_falsy(gw:log():find("READONLY", 1, true))

    -- the first write reaches R1, which refuses it: READONLY sends the
    -- connection to the sentinel, which names R2
    local t0 = socket.gettime()
    status, body = put("globex", '{"origins": ["https://app.globex.test"]}')
    assert.equal(502, status, body)
    assert.matches("READONLY", body, 1, true)
    assert.equal("", r2:cli("HGET", "corsgate:origin:https://app.globex.test", "tenant"), "written anyway")
    assert.truthy(proc.wait_for(function()
      return gw:log():find("connection lost (the server is a replica now (READONLY))", 1, true)
    end, 1), events())
    assert.truthy(proc.wait_for(function()
      h = health()
      return h.redis.primary == r2:address()
    end, 3, 0.05), cjson.encode(h) .. "\n" .. events())
    local t_moved = socket.gettime()
    assert.equal(1, h.redis.failovers)
    assert.matches("the sentinels name a new primary: " .. r2:address(), gw:log(), 1, true)

    -- a retried PUT lands in R2 (bounded: a try or two while the connection moves)
    local tries = 0
    assert.truthy(proc.wait_for(function()
      tries = tries + 1
      status, body = put("globex", '{"origins": ["https://app.globex.test"]}')
      return status == 201 or status == 200
    end, 3, 0.1), tostring(status) .. " " .. tostring(body))
    local t_put = socket.gettime()
    assert.equal("globex", r2:cli("HGET", "corsgate:origin:https://app.globex.test", "tenant"))
    -- and every worker allows the new origin within 1 s
    assert.truthy(proc.wait_for(function() return all_say(gw, "https://app.globex.test", true) end, 1, 0.02),
      "the new tenant was not allowed by every worker within 1 s")
    local t_allowed = socket.gettime()
    assert.equal("up", health().redis.state)
    assert.truthy(all_say(gw, "https://app.initech.test", true))
    print(format("\n[sentinel_role] READONLY: /healthz named R2 %.0f ms after the refused write; the PUT landed "
      .. "in R2 after %d more tr%s (%.0f ms), its origin allowed everywhere %.0f ms later", (t_moved - t0) * 1000,
      tries, tries == 1 and "y" or "ies", (t_put - t0) * 1000, (t_allowed - t_put) * 1000))
  end)
end)
