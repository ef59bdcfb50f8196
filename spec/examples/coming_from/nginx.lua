-- Coming from the usual nginx add_header recipe. The original:
--
--   location /api/ {
--     if ($request_method = 'OPTIONS') {
--       add_header 'Access-Control-Allow-Origin' '*';
--       add_header 'Access-Control-Allow-Methods' 'GET, POST, OPTIONS';
--       add_header 'Access-Control-Allow-Headers' 'Authorization, *';
--       add_header 'Access-Control-Max-Age' 1728000;
--       return 204;
--     }
--     add_header 'Access-Control-Allow-Origin' '*' always;
--     add_header 'Access-Control-Expose-Headers' 'Content-Length, Content-Range' always;
--     proxy_pass http://api;
--   }
--
-- "Authorization, *" is how Fetch-literate configs cover Authorization, which
-- a bare "*" does not; corsgate's headers echo the requested names, which
-- covers it either way. Max-Age 1728000 is capped by browsers (Chromium
-- 7200 s), so 7200 says what happens. OPTIONS needs no listing: browsers
-- never preflight a preflight. What the recipe gets wrong and corsgate does
-- not: add_header inside `if` drops the location's other headers, a 4xx or
-- 5xx without `always` has no CORS headers, and an upstream that sends its
-- own Access-Control-Allow-Origin makes a duplicate.
return {
  listen = "127.0.0.1:8080",
  routes = {
    { name = "api", prefix = "/api/", upstream = "echo",
      cors = {
        origins = "*",
        methods = { "GET", "POST" },
        headers = { "Authorization", "*" },
        expose_headers = { "Content-Length", "Content-Range" },
        max_age = 7200,
      } },
  },
}
