-- Coming from Spring (CorsConfiguration / @CrossOrigin). The original:
--
--   CorsConfiguration c = new CorsConfiguration();
--   c.setAllowedOriginPatterns(List.of("https://*.example.com", "http://localhost:[*]"));
--   c.setAllowedMethods(List.of("*"));
--   c.setAllowedHeaders(List.of("*"));
--   c.setExposedHeaders(List.of("Location"));
--   c.setAllowCredentials(true);
--   c.setMaxAge(1800L);
--
-- or @CrossOrigin(originPatterns = {"https://*.example.com", "http://localhost:[*]"},
-- allowedHeaders = "*", exposedHeaders = "Location", allowCredentials = "true").
-- Spring's list forms map as they are: { "*" } for methods and headers echo
-- what is asked for. A port list such as ":[8080,8081]" becomes one pattern
-- per port; ":[*]" is ":*". An allowedOriginPatterns of "*" with credentials
-- (any origin, reflected) is refused: list the origins, or use a plugin.
return {
  listen = "127.0.0.1:8080",
  routes = {
    { name = "api", prefix = "/", upstream = "echo",
      cors = {
        origin_patterns = { "https://*.example.com", "http://localhost:*" },
        methods = { "*" },
        headers = { "*" },
        expose_headers = { "Location" },
        credentials = true,
        max_age = 1800,
      } },
  },
}
