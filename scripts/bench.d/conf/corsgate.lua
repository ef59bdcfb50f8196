-- corsgate contender. Words between at-signs are filled in by scripts/bench.
return {
  listen = @LISTEN@,
  workers = @WORKERS@,
  access_log = false,
  log_level = "warn",
  plugin_paths = { "@PLUGINS@" },
  @TOP_EXTRA@
  upstreams = { up = { targets = { "127.0.0.1:@UPPORT@" }, keepalive = @KEEPALIVE@ } },
  routes = {
    { name = "api", prefix = "/", upstream = "up", @ROUTE_EXTRA@ },
  },
}
