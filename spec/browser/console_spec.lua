-- The console (GET / on the admin listener) in headless Chromium, driven by
-- spec/browser/console.js: it asks for the token and says so when one is
-- refused, its numbers move with traffic, the top refused origins show up
-- with their reasons, and its explain form gives corsgate explain's verdict
-- and headers. Screenshots go to $CORSGATE_SHOTS (default: a temporary
-- directory, printed).
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local cjson = require("cjson")
require("spec.support.assert")

local format = string.format
local TOKEN = "console-spec-token-0123456789"

describe("the console", function()
  local gw, admin_port, report, shots, cases

  local function preflight(origin, method, headers)
    local h = { { "Origin", origin }, { "Access-Control-Request-Method", method or "PUT" } }
    if headers then h[#h + 1] = { "Access-Control-Request-Headers", headers } end
    return assert(http.request(gw:port(), "OPTIONS", "/api/x", h))
  end

  lazy_setup(function()
    admin_port = proc.free_port()
    gw = gateway.start({
      workers = 2,
      admin = { listen = "127.0.0.1:" .. admin_port, token = TOKEN },
      routes = { { name = "api", prefix = "/api", upstream = "echo",
        cors = { origins = { "https://app.example.com" }, methods = { "GET", "PUT" }, headers = { "Content-Type" } } } },
    })
    for _ = 1, 5 do preflight("https://evil.test") end
    for _ = 1, 3 do preflight("https://app.example.com", "PATCH") end
    for _ = 1, 2 do preflight("https://app.example.com", "PUT", "X-Secret") end
    shots = os.getenv("CORSGATE_SHOTS") or proc.tmpdir("console-shots")
    proc.sh("mkdir -p " .. proc.quote(shots))
    cases = {
      { origin = "https://evil.test", method = "PUT", path = "/api/x" },
      { origin = "https://app.example.com", method = "PUT", header = "X-Secret", path = "/api/x" },
      { origin = "https://app.example.com", method = "PUT", header = "Content-Type, X-Secret", path = "/api/x" },
      { origin = "https://app.example.com", method = "PUT", header = "Content-Type", path = "/api/x" },
    }
    local out = os.tmpname()
    local code, log = proc.sh(format("cd %s && timeout 120 node spec/browser/console.js %s %s %s %s %s %s",
      proc.quote(gateway.root), proc.quote("http://127.0.0.1:" .. admin_port), proc.quote(TOKEN),
      proc.quote("http://127.0.0.1:" .. gw:port()), proc.quote(out), proc.quote(shots),
      proc.quote(cjson.encode(cases))))
    local text = proc.read_file(out)
    os.remove(out)
    assert(text and text ~= "", format("console.js wrote nothing (exit %s):\n%s", tostring(code), log))
    report = cjson.decode(text)
    print("\n[console] screenshots in " .. shots)
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
  end)

  it("runs in Chromium without a script error", function()
    assert.is_nil(report.failure, report.failure)
    assert.same({}, report.errors)
  end)

  it("serves its page with a strict Content-Security-Policy, without a token", function()
    local res = assert(http.request(admin_port, "GET", "/", {}))
    assert.equal(200, res.status)
    local csp = res.headers:get("content-security-policy")
    assert.matches("default-src 'none'", csp, 1, true)
    assert.matches("script-src 'self'", csp, 1, true)
    assert.is_nil(res.body:find("<script>", 1, true), "no inline script")
    -- the data still needs the token
    assert.equal(401, assert(http.request(admin_port, "GET", "/refused", {})).status)
  end)

  it("asks for the token, and says clearly when it is refused", function()
    assert.truthy(report.asks_token)
    assert.equal("The admin token was refused.", report.wrong_token_message)
  end)

  it("shows the refused origins with their reasons, and numbers that move with traffic", function()
    local rows = {}
    for _, r in ipairs(report.refused_rows or {}) do rows[(r[1] .. " " .. r[3]):lower()] = tonumber((r[5]:gsub(",", ""))) end
    assert.equal(5, rows["https://evil.test refused-origin"])
    assert.equal(3, rows["https://app.example.com refused-method patch"], cjson.encode(report.refused_rows))
    assert.equal(2, rows["https://app.example.com refused-header x-secret"])
    assert.equal("2 / 2 up", report.workers)
    assert.truthy(tonumber((report.rps:gsub(",", ""))) > 0, report.rps)
    assert.truthy(tonumber((report.refusals:gsub(",", ""))) > 0, report.refusals)
    assert.matches("api: ", report.charts[1] or "", 1, true)
    assert.truthy(report.chart_line, "the chart drew no line")
  end)

  it("gives the same verdict and headers as corsgate explain", function()
    for i, c in ipairs(cases) do
      local args = { "explain", "--json", "-c", gw.config_path, "--origin", c.origin, "--method", c.method, "--path", c.path }
      for h in (c.header or ""):gmatch("[^,%s]+") do args[#args + 1] = "--header"; args[#args + 1] = h end
      local _, out = gateway.cli(args)
      local want = cjson.decode(out)
      local got = report.explain[i]
      assert.equal(want.allowed and "allowed: the page can read the response"
        or "blocked: the browser reports a CORS error", got.verdict, "case " .. i)
      assert.matches("route api", got.text, 1, true)
      local blocks = {}
      for _, part in ipairs({ want.preflight or false, want.actual or false }) do
        if part and part.sent ~= false then
          assert.matches(part.result, got.text, 1, true)
          if part.detail_arg then assert.matches("(" .. part.detail_arg .. ")", got.text, 1, true) end
          local lines = {}
          for _, h in ipairs(part.headers) do lines[#lines + 1] = h[1] .. ": " .. h[2] end
          blocks[#blocks + 1] = table.concat(lines, "\n")
        elseif part then
          assert.matches("not sent: the browser stops at the refused preflight", got.text, 1, true)
        end
      end
      assert.same(blocks, got.headers, "case " .. i)
    end
    -- a refused row's link explains that row's request: same route, same reason
    assert.equal("https://app.example.com", report.linked.origin)
    assert.equal("/api/x", report.linked.path)
    assert.matches("route api", report.linked.text, 1, true)
    assert.matches("refused-header: the header is not in headers (X-Secret)", report.linked.text, 1, true)
  end)
end)
