-- One replica of a fleet: tenants in Redis (loaded with scripts/tenants-load),
-- read by the shipped tenant_redis plugin, changes published on a channel that
-- every worker of every replica listens to. Run as many replicas as needed
-- behind a load balancer that checks GET /healthz on the admin port.
return {
  listen = "0.0.0.0:8080",
  admin = { listen = "127.0.0.1:9901" },    -- a token is required if it listens beyond loopback
  redis = { address = "127.0.0.1:6379",     -- the primary (see the README's Fleet section for HA)
            timeout_ms = 200, pool_size = 2,
            channel = "corsgate:invalidate" },
  cache = { stale_limit = 300 },            -- how long decisions outlive a Redis outage
  upstreams = { api = { targets = { "127.0.0.1:9000" } } },
  routes = {
    { name = "api", prefix = "/", upstream = "api",
      cors = { plugin = "tenant_redis", ttl = 300, deny_ttl = 30,
               methods = { "GET", "PUT", "DELETE" }, headers = { "Content-Type" } } },
  },
}
