-- Coming from Kong's cors plugin. The original:
--
--   plugins:
--   - name: cors
--     config:
--       origins: ["https://app.example.com", "https://admin.example.com"]
--       methods: ["GET", "POST", "PUT", "DELETE"]
--       headers: ["Authorization", "Content-Type"]
--       exposed_headers: ["X-Auth-Token"]
--       credentials: true
--       max_age: 3600
--       preflight_continue: false
--
-- Kong answers preflights 200: preflight_status = 200 keeps that. Refused on
-- purpose: an empty origins list (Kong allows everyone; corsgate nobody),
-- "*" with credentials (Kong then reflects any origin), regular expressions
-- (use origin_patterns), and TRACE and CONNECT, which Kong's default methods
-- list although browsers never send them.
return {
  listen = "127.0.0.1:8080",
  routes = {
    { name = "api", prefix = "/", upstream = "echo",
      cors = {
        origins = { "https://app.example.com", "https://admin.example.com" },
        methods = { "GET", "POST", "PUT", "DELETE" },
        headers = { "Authorization", "Content-Type" },
        expose_headers = { "X-Auth-Token" },
        credentials = true,
        max_age = 3600,
        preflight_continue = false,
        preflight_status = 200,
      } },
  },
}
