-- Reading Prometheus text from the admin API in specs.
local _M = {}

-- The value of name{labels} in text (labels as written: '{route="api"}', or
-- nil for none); 0 when the series is absent (a counter not yet counted).
function _M.value(text, name, labels)
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, #name) == name then
      local l, v = line:match("^[%w_]+(%b{}) (%S+)$")
      if not l then l, v = "", line:match("^[%w_]+ (%S+)$") end
      if l == (labels or "") then return tonumber(v) end
    end
  end
  return 0
end

return _M
