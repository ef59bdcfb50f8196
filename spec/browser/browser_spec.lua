-- What a real browser decides about corsgate's answers. spec/browser/run.js
-- drives Debian's headless Chromium (through playwright-core) against a gateway
-- it starts; each scenario it reports becomes one test here, so a blocked read
-- or a missing preflight shows up by name in scripts/test's output.
local cjson = require("cjson")

local root = os.getenv("CORSGATE_ROOT") or "."
local out = os.tmpname()

-- mode: "" (plain HTTP) or "tls" (the gateway in HTTPS)
local function run(mode)
  -- bounded: 41 scenarios take a few seconds; a stuck browser must not stall CI
  local cmd = string.format("cd %q && timeout 240 node spec/browser/run.js %q %s 2>&1", root, out, mode)
  local p = io.popen(cmd)
  local log = p:read("*a")
  local ok, _, code = p:close()
  local f = io.open(out)
  local text = f and f:read("*a")
  if f then f:close() end
  os.remove(out)
  if not text or text == "" then
    return nil, string.format("run.js wrote no results (exit %s):\n%s", tostring(code or ok), log)
  end
  local decoded, results = pcall(cjson.decode, text)
  if not decoded then return nil, "run.js wrote no JSON: " .. tostring(results) .. "\n" .. log end
  return results, log
end

for _, mode in ipairs({ "", "tls" }) do
  local results, log = run(mode)

  describe(mode == "tls" and "a browser, the gateway in HTTPS with HTTP/2" or "a browser", function()
    if not results then
      it("runs the browser scenarios", function() error(log, 0) end)
      return
    end
    local gateway_log
    for _, r in ipairs(results) do
      if r.name == "gateway log" then gateway_log = r.detail end
    end
    local scenarios = 0
    for _, r in ipairs(results) do
      if r.name ~= "gateway log" then
        scenarios = scenarios + 1
        it(r.name, function()
          if not r.ok then
            error(r.detail .. (gateway_log and ("\n--- gateway log ---\n" .. gateway_log) or ""), 0)
          end
        end)
      end
    end
    it("ran every scenario", function()
      -- a run.js that stopped early would otherwise pass with fewer tests
      assert.is_true(scenarios >= 42, "only " .. scenarios .. " scenarios reported")
    end)
  end)
end
