-- A multi-tenant API whose tenants' origins live in the product's own tenant
-- service: the shipped tenant_registry plugin asks it once per origin and
-- cache lifetime (GET {base_url}/origins/{origin}: 200 with the decision, 404
-- for not allowed). The route's static fields are the defaults each decision
-- may refine.
return {
  listen = "127.0.0.1:8080",
  workers = 2,
  plugins = { timeout = 1 },                      -- seconds per hook run, its I/O included
  cache = { max_entries = 100000, stale_limit = 300 },
  upstreams = { api = { targets = { "127.0.0.1:9000" } } },
  routes = {
    { name = "api", prefix = "/", upstream = "api",
      cors = { plugin = "tenant_registry",
               plugin_config = { base_url = "http://127.0.0.1:7000", timeout = 0.5 },
               ttl = 60, deny_ttl = 10,
               methods = { "GET", "POST", "PUT", "DELETE" },
               headers = { "Content-Type", "Authorization" },
               max_age = 600 } },
  },
}
