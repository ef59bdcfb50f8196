-- The admin API without a token answers loopback only, so reaching it is the
-- only credential, and the operator's browser reaches it for every page it
-- shows. In headless Chromium (spec/browser/admin_origin.js): a page of
-- another origin posts to /reload by fetch (a simple request: no preflight
-- stops it) and by a form, and the gateway refuses both without reloading;
-- the console's own page, on the listener's origin, still acts, and shows
-- its numbers without asking for a token.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local cjson = require("cjson")
require("spec.support.assert")

local format = string.format

describe("the admin API without a token, against pages of other origins", function()
  local gw, admin_port

  local function reloads()
    local n = 0
    for _ in gw:log():gmatch("config #%d+ serving") do n = n + 1 end
    return n
  end

  lazy_setup(function()
    gw = gateway.start_loopback_admin()
    admin_port = gw.admin_port
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
  end)

  it("refuses a request a page of another origin sends, and acts on its own page's and on a client's", function()
    local self_origin = "http://127.0.0.1:" .. admin_port
    local before = reloads()
    for _, origin in ipairs({ "https://evil.test", "null", "http://127.0.0.2:" .. admin_port,
      "http://localhost:" .. admin_port, "https://127.0.0.1:" .. admin_port }) do
      local res = http.request(admin_port, "POST", "/reload", { { "Host", "127.0.0.1:" .. admin_port }, { "Origin", origin } })
      assert.equal(403, res.status, origin)
      assert.matches("from a page of another origin", res.body, 1, true)
    end
    -- two Origin headers, one of them right, are not one origin
    local res = http.raw(admin_port, format("POST /reload HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: %s\r\n" ..
      "Origin: https://evil.test\r\nContent-Length: 0\r\n\r\n", admin_port, self_origin))
    assert.equal(403, res.status)
    assert.equal(before, reloads(), "a refused request reloaded")
    -- the listener's own origin, under the name the page was loaded by
    assert.equal(200, http.request(admin_port, "POST", "/reload",
      { { "Host", "127.0.0.1:" .. admin_port }, { "Origin", self_origin } }).status)
    res = http.raw(admin_port, format("DELETE /cache HTTP/1.1\r\nHost: localhost:%d\r\nOrigin: http://LOCALHOST:%d\r\n\r\n",
      admin_port, admin_port))
    assert.equal(200, res.status)
    -- a client that is no browser page sends no Origin
    assert.equal(200, http.request(admin_port, "POST", "/reload", {}).status)
    assert.equal(before + 2, reloads())
  end)

  it("in Chromium: another origin's fetch and form reach nothing; the console's own page acts", function()
    local out = os.tmpname()
    local before = reloads()
    local code, log = proc.sh(format("cd %s && timeout 60 node spec/browser/admin_origin.js %s 127.0.0.2 %s",
      proc.quote(gateway.root), proc.quote("http://127.0.0.1:" .. admin_port), proc.quote(out)))
    local text = proc.read_file(out)
    os.remove(out)
    assert(text and text ~= "", format("admin_origin.js wrote nothing (exit %s):\n%s", tostring(code), log))
    local report = cjson.decode(text)
    assert.is_nil(report.failure, report.failure)
    assert.equal("sent", report.fetch) -- the browser did send it: only the gateway stops it
    assert.equal(403, report.form_status)
    assert.equal(200, report.own_delete)
    -- on a loopback listener without a token, the console just works
    assert.equal("1 / 1 up", report.own_workers)
    assert.is_false(report.own_asks_token)
    assert.equal(before, reloads(), "a page of another origin made the gateway reload:\n" .. gw:log_tail(10))
  end)
end)
