-- Coming from ASP.NET Core's CORS middleware. The original:
--
--   builder.Services.AddCors(o => o.AddPolicy("api", policy => policy
--       .WithOrigins("https://app.example.com", "https://*.example.com")
--       .SetIsOriginAllowedToAllowWildcardSubdomains()
--       .AllowAnyMethod()
--       .AllowAnyHeader()
--       .AllowCredentials()
--       .WithExposedHeaders("X-Request-Id")
--       .SetPreflightMaxAge(TimeSpan.FromMinutes(10))));
--
-- AllowAnyMethod and AllowAnyHeader echo what the browser asks for, so they
-- work with credentials: methods = "*" and headers = "*" do the same.
-- AllowAnyOrigin with AllowCredentials throws at startup; corsgate refuses it
-- at load too.
return {
  listen = "127.0.0.1:8080",
  routes = {
    { name = "api", prefix = "/", upstream = "echo",
      cors = {
        origins = { "https://app.example.com" },
        origin_patterns = { "https://*.example.com" },
        methods = "*",
        headers = "*",
        credentials = true,
        expose_headers = { "X-Request-Id" },
        max_age = 600,
      } },
  },
}
