return {
  listen = "127.0.0.1:8080",
  plugin_paths = { "plugins" },
  routes = {
    { name = "t", prefix = "/t", upstream = "echo",
      cors = { plugin = "tenant_registry", plugin_config = { base_url = "http://127.0.0.1:9", timeout = 1 },
               ttl = 60, deny_ttl = 5, methods = { "GET", "PUT" }, headers = { "X-Req" } } },
    { name = "s", prefix = "/s", upstream = "echo",
      cors = { plugin = "tenant_subdomain", plugin_config = { base_domain = "saas.example", tenants_file = "/nonexistent/tenants" } } },
  },
}
