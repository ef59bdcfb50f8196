-- corsgate's built-in demo: no other server needed.
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
