-- scripts/tenants-load on a tenants document, for the fleet's specs:
--
--   local rc, out = tenants_load(r, { tenants = {...} } | "raw text" [, "--takeover"])
--
-- r: a spec.support.redis server; out: what the script printed (stdout and
-- stderr), rc its exit code.
local gateway = require("spec.support.gateway")
local proc = require("spec.support.proc")
local cjson = require("cjson")

return function(r, doc, flags)
  local path = os.tmpname()
  proc.write_file(path, type(doc) == "string" and doc or cjson.encode(doc))
  local p = io.popen(("%s/scripts/tenants-load --redis %s %s %s 2>&1; echo \"rc=$?\""):format(
    gateway.root, r:address(), flags or "", path))
  local out = p:read("*a")
  p:close()
  os.remove(path)
  return tonumber(out:match("rc=(%d+)")), out
end
