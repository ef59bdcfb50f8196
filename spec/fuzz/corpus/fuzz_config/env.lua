local port = os.getenv("PORT") or "8080"
return {
  listen = "127.0.0.1:" .. port,
  routes = { { name = "e", prefix = "/", upstream = "echo",
    cors = { origins = { string.format("https://%s.example", "app") }, headers = { "Content-Type" } } } },
}
