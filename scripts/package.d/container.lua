-- The config the container image starts with: listens on every address of
-- the container (publish the port to choose who reaches it), the admin API on
-- loopback only (the image's HEALTHCHECK and a Kubernetes exec probe use it).
-- Mount your own at /etc/corsgate/corsgate.lua.
return {
  listen = "0.0.0.0:8080",
  admin = { listen = "127.0.0.1:9901" },
  access_log = "json",
  routes = {
    { name = "health", prefix = "/healthz",
      static = { status = 200, body = "ok\n", headers = { ["content-type"] = "text/plain" } } },
  },
}
