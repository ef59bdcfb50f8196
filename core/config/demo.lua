-- corsgate's built-in demo: what `corsgate run` serves without -c (and
-- ./scripts/run without arguments). No other server is needed: the routes
-- answer themselves or use the built-in echo upstream.
--
--   curl -i http://127.0.0.1:8080/hello
--   curl -i http://127.0.0.1:8080/api/things -H 'Origin: http://localhost:3000'
--   curl -i -X OPTIONS http://127.0.0.1:8080/api/things -H 'Origin: http://localhost:3000' \
--        -H 'Access-Control-Request-Method: PUT' -H 'Access-Control-Request-Headers: content-type'
return {
  listen = "127.0.0.1:8080",
  routes = {
    { name = "hello", prefix = "/hello",
      static = { status = 200, body = "hello from corsgate\n",
                 headers = { ["content-type"] = "text/plain" } } },
    { name = "api", prefix = "/api", upstream = "echo",
      cors = { origins = { "http://localhost:3000", "http://127.0.0.1:3000" },
               origin_patterns = { "https://*.example.com" },
               methods = { "GET", "POST", "PUT", "DELETE" },
               headers = { "Content-Type", "Authorization" },
               expose_headers = { "X-Request-Id" },
               credentials = true, max_age = 600 } },
    { name = "echo", prefix = "/", upstream = "echo" },
  },
}
