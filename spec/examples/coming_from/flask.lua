-- Coming from Flask-CORS. The original:
--
--   CORS(app, resources={r"/api/*": {
--       "origins": ["https://app.example.com", r"https://.*\.example\.org"],
--       "methods": ["GET", "POST", "PATCH"],
--       "expose_headers": ["X-Total"],
--       "supports_credentials": True,
--       "max_age": 3600}})
--
-- allow_headers defaults to "*" in Flask-CORS, which echoes the requested
-- names: corsgate's headers = "*" does the same. The regular expression
-- becomes a subdomain pattern (one or more whole labels; it does not match
-- example.org itself, and neither did the regex).
return {
  listen = "127.0.0.1:8080",
  routes = {
    { name = "api", prefix = "/api", upstream = "echo",
      cors = {
        origins = { "https://app.example.com" },
        origin_patterns = { "https://*.example.org" },
        methods = { "GET", "POST", "PATCH" },
        headers = "*",
        expose_headers = { "X-Total" },
        credentials = true,
        max_age = 3600,
      } },
  },
}
