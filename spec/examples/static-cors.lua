-- An API behind corsgate with a static CORS policy: the origins are known
-- when the config is written. Copy to /etc/corsgate/corsgate.lua, adjust, and
-- `corsgate check -c /etc/corsgate/corsgate.lua` before `systemctl reload corsgate`.
return {
  listen = "127.0.0.1:8080",          -- behind a TLS-terminating load balancer
  workers = 2,
  access_log = "json",
  admin = { listen = "127.0.0.1:9901" },  -- /healthz, /metrics, /explain, POST /reload
  upstreams = {
    api = { targets = { "127.0.0.1:9000", "127.0.0.1:9001" }, keepalive = 32, fail_timeout = 10 },
  },
  routes = {
    { name = "api", host = "api.example.com", prefix = "/v1", upstream = "api",
      cors = {
        origins = { "https://app.example.com", "https://admin.example.com" },
        origin_patterns = { "https://*.preview.example.com" },  -- preview deployments
        methods = { "GET", "POST", "PUT", "PATCH", "DELETE" },
        headers = { "Content-Type", "Authorization" },
        expose_headers = { "X-Request-Id" },
        credentials = true,
        max_age = 600,
      } },
    { name = "public", host = "api.example.com", prefix = "/public", upstream = "api",
      cors = { origins = "*", expose_headers = { "ETag" } } },  -- no credentials: "*" is fine
  },
}
