-- The container image (scripts/package.d/Containerfile) built with Podman and
-- run from the host: a preflight through the published port, its
-- HEALTHCHECK, the corsgate user, and a clean drain on stop.
--
-- No registry is reachable here, so when the machine has no debian:12-slim
-- the spec makes a stand-in: mmdebstrap --variant=minbase bookworm from the
-- mirror apt already uses (read from apt's sources, never written into the
-- repo), imported under a name of its own and given to the build with --from
-- (never under the official name, which a later build would take for the real
-- image). On these machines podman needs the runc runtime
-- and ulimits root can grant without CAP_SYS_RESOURCE. Everything it made is
-- removed at the end.
local http = require("spec.support.http")
local proc = require("spec.support.proc")
require("spec.support.assert")

local root = os.getenv("CORSGATE_ROOT") or "."
local sh, quote = proc.sh, proc.quote
local RUN_OPTS = "--runtime runc --ulimit nofile=20000:20000 --ulimit nproc=32768:32768"
local BASE = "docker.io/library/debian:12-slim"
local STAND_IN = "localhost/corsgate-spec-base:bookworm"


-- The Debian mirror apt uses (deb822 .sources, or a sources.list line).
local function mirror()
  local _, out = sh("cat /etc/apt/sources.list.d/*.sources 2>/dev/null; cat /etc/apt/sources.list 2>/dev/null")
  for uri in out:gmatch("URIs:%s*(%S+)") do
    if not uri:match("security") and uri:match("/debian/?$") then return uri end
  end
  for uri in ("\n" .. out):gmatch("\ndeb%s+(%S+)%s+bookworm%s") do return uri end
  return nil
end

local reason = proc.why_not_as_root("podman here", { "podman", "mmdebstrap", "runc", "dpkg-deb" })

describe("the container image", function()
  if reason then
    pending("skipped: " .. reason)
    return
  end

  local dir, tag, name, made_base
  local from = ""
  local port = proc.free_port()

  lazy_setup(function()
    dir = proc.tmpdir("container")
    tag = "localhost/corsgate-spec:" .. tostring(os.time())
    name = "corsgate-spec-" .. tostring(os.time())
    if sh("podman image exists " .. BASE) ~= 0 then
      sh("podman rmi -f " .. STAND_IN) -- one left by an interrupted run
      local m = assert(mirror(), "no Debian mirror in apt's sources")
      local code, out = sh(("timeout 600 mmdebstrap --variant=minbase --quiet bookworm %q %q"):format(dir .. "/base.tar", m))
      assert(code == 0, "mmdebstrap failed:\n" .. out)
      code, out = sh(("podman import %q %s"):format(dir .. "/base.tar", STAND_IN))
      assert(code == 0, "podman import failed:\n" .. out)
      made_base = true
      from = "--from " .. STAND_IN
      os.remove(dir .. "/base.tar")
    end
    local ctx = dir .. "/context"
    local code, out = sh(("mkdir -p %q && cd %q && timeout 900 ./scripts/package %q"):format(ctx, root, ctx))
    assert(code == 0, "scripts/package failed:\n" .. out)
    assert(sh(("cp %q %q"):format(root .. "/scripts/package.d/container.lua", ctx)) == 0)
    code, out = sh(("timeout 600 podman build %s %s --network host --format docker -f %q -t %s %q"):format(
      RUN_OPTS, from, root .. "/scripts/package.d/Containerfile", tag, ctx))
    assert(code == 0, "podman build failed:\n" .. out)
    code, out = sh(("podman run -d --name %s %s -p 127.0.0.1:%d:8080 %s"):format(name, RUN_OPTS, port, tag))
    assert(code == 0, "podman run failed:\n" .. out)
    assert(proc.wait_for(function() return proc.port_open(port) end, 15),
      "the container does not answer on its port:\n" .. select(2, sh("podman logs " .. name)))
  end)

  lazy_teardown(function()
    if name then sh("podman rm -f " .. name) end
    if tag then sh("podman rmi -f " .. tag) end
    if made_base then sh("podman rmi -f " .. STAND_IN) end
    proc.rmdir_all(dir)
  end)

  it("serves through the published port", function()
    local res, err = http.request(port, "GET", "/healthz", {})
    assert.res_status(200, res, err)
    assert.equal("ok\n", res.body)
  end)

  it("serves a preflight on a mounted config", function()
    -- the image's config is a starting point: a mounted one replaces it
    local cfgdir = dir .. "/etc"
    assert(sh("mkdir -p " .. quote(cfgdir)) == 0)
    proc.write_file(cfgdir .. "/corsgate.lua", [[return { listen = "0.0.0.0:8080", admin = { listen = "127.0.0.1:9901" },
      routes = { { name = "api", prefix = "/", upstream = "echo",
        cors = { plugin = "expose_by_tenant", methods = { "PUT" },
          plugin_config = { tenants = { acme = { origins = { "https://app.acme.example" } } } } } } } }]])
    assert(sh("chmod -R a+rX " .. quote(cfgdir)) == 0)
    local p2 = proc.free_port()
    local n2 = name .. "-mounted"
    local code, out = sh(("podman run -d --name %s %s -p 127.0.0.1:%d:8080 -v %s:/etc/corsgate:ro %s"):format(
      n2, RUN_OPTS, p2, quote(cfgdir), tag))
    assert(code == 0, out)
    local up = proc.wait_for(function() return proc.port_open(p2) end, 15)
    local res, err = http.request(p2, "OPTIONS", "/x", { { "Origin", "https://app.acme.example" },
      { "Access-Control-Request-Method", "PUT" } })
    local logs = select(2, sh("podman logs " .. n2))
    sh("podman rm -f " .. n2)
    assert.truthy(up, logs)
    assert.res_status(204, res, err)
    assert.header(res, "access-control-allow-origin", "https://app.acme.example")
  end)

  it("is healthy by its HEALTHCHECK (the admin API's /healthz)", function()
    local code, out = sh("podman healthcheck run " .. name)
    assert.equal(0, code, out)
  end)

  it("runs as the corsgate user", function()
    local _, out = sh("podman exec " .. name .. " id -un")
    assert.equal("corsgate", out:gsub("%s+$", ""))
  end)

  it("drains on stop and exits 0", function()
    assert.equal(0, (sh("podman stop -t 20 " .. name)))
    local _, code = sh("podman inspect -f '{{.State.ExitCode}}' " .. name)
    assert.equal("0", code:gsub("%s+$", ""))
    assert.matches("received SIGTERM: draining", select(2, sh("podman logs " .. name)))
  end)
end)
