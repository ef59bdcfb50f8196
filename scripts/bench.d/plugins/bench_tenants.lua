-- The bench's policy plugin: an origin is allowed when its first label is a
-- tenant id ("t" and digits) under bench.test, decided in memory. nginx+lua
-- (conf/nginxlua.conf) makes the same decision in the same way.
local _M = {}

function _M.origin(ctx)
  if ctx.scheme == "https" and ctx.host:match("^t%d+%.bench%.test$") then
    return true
  end
  return false
end

return _M
