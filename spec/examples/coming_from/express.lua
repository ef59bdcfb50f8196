-- Coming from Express's `cors` middleware. The original:
--
--   app.use("/api", cors({
--     origin: ["https://app.example.com", "http://localhost:3000"],
--     methods: ["GET", "PUT", "PATCH", "DELETE"],
--     allowedHeaders: ["Content-Type", "Authorization"],
--     exposedHeaders: ["X-Request-Id"],
--     credentials: true,
--     maxAge: 600,
--     optionsSuccessStatus: 200,   // for clients that mishandle 204
--   }));
--
-- Left out on purpose: `origin: true` (reflect any origin) with credentials,
-- and RegExp origins; corsgate refuses the first and has origin_patterns for
-- the second. Express lists PUT, PATCH and DELETE by default, corsgate only
-- the safelisted GET, HEAD and POST: list what the API takes.
return {
  listen = "127.0.0.1:8080",
  routes = {
    { name = "api", prefix = "/api", upstream = "echo",
      cors = {
        origins = { "https://app.example.com", "http://localhost:3000" },
        methods = { "GET", "PUT", "PATCH", "DELETE" },
        headers = { "Content-Type", "Authorization" },
        expose_headers = { "X-Request-Id" },
        credentials = true,
        max_age = 600,
        preflight_status = 200,
      } },
  },
}
