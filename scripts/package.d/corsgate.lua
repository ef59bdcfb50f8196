-- /etc/corsgate/corsgate.lua: the config the corsgate service runs.
--
-- This starting point serves only on loopback and proxies nothing: edit it,
-- check it, then reload:
--
--   corsgate check -c /etc/corsgate/corsgate.lua
--   systemctl reload corsgate
--
-- The full reference is in /usr/share/doc/corsgate/README.md, examples in
-- /usr/share/doc/corsgate/examples/, and `man corsgate`. The package keeps
-- your edits to this file on upgrade.
return {
  listen = "127.0.0.1:8080",
  -- workers = 2,                      -- threads (default: one per core)
  -- access_log = "json",
  -- admin = { listen = "127.0.0.1:9901" },  -- /healthz, /metrics, /explain, POST /reload
  -- upstreams = {
  --   api = { targets = { "127.0.0.1:9000" }, keepalive = 32 },
  -- },
  routes = {
    { name = "health", prefix = "/healthz",
      static = { status = 200, body = "ok\n", headers = { ["content-type"] = "text/plain" } } },
    -- { name = "api", prefix = "/", upstream = "api",
    --   cors = { origins = { "https://app.example.com" },
    --            methods = { "GET", "POST", "PUT", "DELETE" },
    --            headers = { "Content-Type", "Authorization" },
    --            credentials = true, max_age = 600 } },
  },
}
