-- The Debian package, as an operator meets it: built by scripts/package from
-- this tree, linted, installed with dpkg, its conffile checked, the installed
-- binary run on a config that names a shipped plugin (as the corsgate user),
-- reinstalled with an edited conffile, then purged, leaving nothing behind.
--
-- It changes the machine (a package, a system user): it runs where that is
-- allowed, as root with dpkg, and says why when it skips.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
require("spec.support.assert")

local root = os.getenv("CORSGATE_ROOT") or "."

local sh = proc.sh


local reason = proc.why_not_as_root("dpkg -i", { "dpkg", "dpkg-deb", "dpkg-shlibdeps", "lintian", "systemd-analyze" })
-- a corsgate the machine runs is not this spec's to replace
if not reason and sh("dpkg-query -W -f='${Status}' corsgate 2>/dev/null | grep -q 'install ok installed'") == 0 then
  reason = "a corsgate package is installed on this machine; the spec would replace and purge it"
end
-- two runs on one machine would purge each other's package: one at a time
local LOCK = "/run/lock/corsgate-package-spec"
if not reason then
  local held = proc.read_file(LOCK .. "/pid")
  if held and proc.alive(tonumber(held)) then
    reason = "another run (pid " .. held:gsub("%s", "") .. ") is testing the package on this machine"
  else
    sh("rm -rf " .. LOCK .. " && mkdir -p " .. LOCK .. " && echo $PPID > " .. LOCK .. "/pid")
  end
end

describe("the Debian package", function()
  if reason then
    pending("skipped: " .. reason)
    return
  end

  local dir, deb

  lazy_setup(function()
    dir = proc.tmpdir("package")
    local code, out = sh(("cd %q && timeout 900 ./scripts/package %q"):format(root, dir))
    assert(code == 0, "scripts/package failed:\n" .. out)
    deb = out:match("([^\n]+%.deb)%s*$")
    assert(deb, "scripts/package printed no .deb:\n" .. out)
  end)

  lazy_teardown(function()
    sh("dpkg --purge corsgate") -- what this spec installed, should a test have stopped short
    sh("rm -rf " .. LOCK)
    proc.rmdir_all(dir)
  end)

  it("is named corsgate_VERSION_ARCH.deb and depends on what the binary links, publicsuffix and adduser", function()
    local _, arch = sh("dpkg --print-architecture")
    assert.matches("/corsgate_%d+%.%d+%.%d+%-1_" .. arch:gsub("%s", "") .. "%.deb$", deb)
    local _, depends = sh("dpkg-deb -f " .. deb .. " Depends")
    for _, want in ipairs({ "libuv1", "libluajit", "libhiredis", "libc6", "publicsuffix", "adduser" }) do
      assert.matches(want, depends, 1, true)
    end
  end)

  it("passes lintian: no error and no warning that is not explained", function()
    local _, out = sh("lintian --tag-display-limit 0 " .. deb)
    local tags = {}
    for line in out:gmatch("[^\n]+") do
      if line:match("^[EW]: ") then tags[#tags + 1] = line end
    end
    assert.same({}, tags, out)
  end)

  it("installs: the binary, the plugins, the examples, the man page, the unit, the user", function()
    local code, out = sh("dpkg -i " .. deb)
    assert.equal(0, code, out)
    for _, f in ipairs({ "/usr/bin/corsgate", "/usr/share/corsgate/plugins/tenant_registry.lua",
      "/usr/share/doc/corsgate/examples/demo.lua", "/usr/share/doc/corsgate/examples/coming_from/kong.lua",
      "/usr/share/man/man1/corsgate.1.gz", "/usr/lib/systemd/system/corsgate.service", "/etc/corsgate/corsgate.lua" }) do
      assert.equal(0, (sh("test -e " .. f)), f .. " is missing")
    end
    assert.equal(0, (sh("getent passwd corsgate")), "no corsgate user")
    local _, conffiles = sh("dpkg-query -W -f='${Conffiles}' corsgate")
    assert.matches("/etc/corsgate/corsgate.lua", conffiles, 1, true)
    local _, mode = sh("stat -c '%a %U:%G' /etc/corsgate/corsgate.lua")
    assert.equal("640 root:corsgate", mode:gsub("%s+$", ""))
  end)

  it("checks the shipped conffile, and says where its plugins are", function()
    local code, out = sh("/usr/bin/corsgate check -c /etc/corsgate/corsgate.lua")
    assert.equal(0, code, out)
    code, out = sh("/usr/bin/corsgate version")
    assert.equal(0, code, out)
    assert.matches("^corsgate %d+%.%d+%.%d+ %(commit ", out)
    assert.matches("libuv [%d.]+, LuaJIT [^,]+, llhttp [%d.]+, hiredis [%d.]+", out)
    assert.matches("shipped plugins: /usr/share/corsgate/plugins\n", out, 1, true)
  end)

  it("has a unit systemd-analyze verifies, with an exposure score of 2.0 or less", function()
    local code, out = sh("systemd-analyze verify /usr/lib/systemd/system/corsgate.service")
    assert.equal(0, code, out)
    assert.equal("", out)
    local _, sec = sh("systemd-analyze security --offline=yes /usr/lib/systemd/system/corsgate.service")
    local score = tonumber(sec:match("Overall exposure level for corsgate%.service: ([%d.]+)"))
    assert.truthy(score and score <= 2.0, sec)
  end)

  it("serves a preflight from the installed binary, as the corsgate user, with a shipped plugin", function()
    local port = proc.free_port()
    local cdir = dir .. "/run"
    assert(sh("mkdir -p " .. cdir .. " && chmod 755 " .. dir .. " " .. cdir) == 0)
    local cfg = gateway.write_config(cdir, {
      listen = "127.0.0.1:" .. port, workers = 1, log_level = "info",
      routes = { { name = "t", prefix = "/", upstream = "echo",
        cors = { plugin = "expose_by_tenant", methods = { "GET", "PUT" },
          plugin_config = { tenants = { acme = { origins = { "https://app.acme.example" }, expose = { "X-Acme" } } } } } } },
    })
    assert(sh("chmod 644 " .. cfg) == 0)
    local log = cdir .. "/corsgate.log"
    local h = proc.spawn({ "setpriv", "--reuid=corsgate", "--regid=corsgate", "--clear-groups", "--",
      "/usr/bin/corsgate", "run", "-c", cfg }, log, { dir = cdir, env = { CORSGATE_PLUGINS_DIR = false } })
    local up = proc.wait_for(function() return proc.port_open(port) or proc.exit_code(h) end, 10)
    local res, err = http.request(port, "OPTIONS", "/x", { { "Origin", "https://app.acme.example" },
      { "Access-Control-Request-Method", "PUT" } })
    local uid = (proc.read_file("/proc/" .. h.pid .. "/status") or ""):match("\nUid:%s*(%d+)")
    local _, corsgate_uid = sh("id -u corsgate")
    proc.stop(h)
    assert.truthy(up == true, "the installed corsgate did not start:\n" .. (proc.read_file(log) or ""))
    assert.res_status(204, res, err)
    assert.header(res, "access-control-allow-origin", "https://app.acme.example")
    assert.equal(corsgate_uid:gsub("%s+$", ""), uid)
  end)

  it("keeps an edited conffile when installed again", function()
    assert(sh("echo '-- edited by the operator' >> /etc/corsgate/corsgate.lua") == 0)
    local code, out = sh("dpkg -i " .. deb)
    assert.equal(0, code, out)
    assert.matches("edited by the operator", proc.read_file("/etc/corsgate/corsgate.lua"))
  end)

  it("installs again after a remove, with the unit not left masked", function()
    local code, out = sh("dpkg --remove corsgate")
    assert.equal(0, code, out)
    assert.equal(0, (sh("test -e /etc/corsgate/corsgate.lua")), "remove took the conffile") -- purge does
    code, out = sh("dpkg -i " .. deb)
    assert.equal(0, code, out)
    local _, link = sh("readlink /etc/systemd/system/corsgate.service")
    assert.is_not.equal("/dev/null", link:gsub("%s+$", ""))
  end)

  it("purges and leaves nothing behind", function()
    local code, out = sh("dpkg --purge corsgate")
    assert.equal(0, code, out)
    for _, f in ipairs({ "/usr/bin/corsgate", "/usr/share/corsgate", "/usr/share/doc/corsgate", "/etc/corsgate",
      "/usr/lib/systemd/system/corsgate.service", "/usr/share/man/man1/corsgate.1.gz",
      "/usr/share/lintian/overrides/corsgate", "/etc/systemd/system/corsgate.service",
      "/etc/systemd/system/multi-user.target.wants/corsgate.service" }) do
      assert.equal(1, (sh("test -e " .. f)), f .. " is still there")
    end
    assert.equal(2, (sh("getent passwd corsgate")), "the corsgate user is still there")
    assert.equal(2, (sh("getent group corsgate")), "the corsgate group is still there")
    assert.is_not.equal(0, (sh("dpkg -s corsgate")), "dpkg still knows the package")
  end)
end)
