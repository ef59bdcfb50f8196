local origins = {}
for i = 1, 10 do origins[#origins + 1] = "https://t" .. i .. ".example" end
return {
  listen = "nonsense", workers = 0,
  upstreams = { u = { targets = { "127.0.0.1" } } },
  routes = {
    { name = "x", prefix = "v1", upstream = "nowhere", cors = { origins = "*", credentials = true } },
    { name = "x", prefix = "/", upstream = "u", cors = { origins = origins, origin_patterns = { "https://*" },
      methods = { "GET", "GE T" }, headers = { "bad header" }, max_age = -1, bogus = 1 } },
    { name = "y", prefix = "/y", static = { status = 99 } },
  },
  extra = true,
}
