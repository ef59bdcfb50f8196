#ifndef CG_FUZZ_ORIGINS_H
#define CG_FUZZ_ORIGINS_H
/* What fuzz_request and fuzz_h2 check an answer's CORS headers against: the
 * origins their shared config allows (a listed one, or a label under a
 * pattern's or the plugin's domain: its hook below), and a token in a header's value. */
#include <stddef.h>
#include <string.h>
#include <strings.h>

/* The plugin route's hook: *.plugin.example over https allowed, boom.example a failure. */
static const char plugin_src[] =
    "local _M = {}\n"
    "function _M.origin(ctx)\n"
    "  if ctx.scheme == 'https' and ctx.host:sub(-15) == '.plugin.example' then\n"
    "    return { allow = true, tenant = ctx.host, expose_headers = { 'X-Total' }, credentials = true }\n"
    "  end\n"
    "  if ctx.host == 'boom.example' then error('tenant store down') end\n"
    "  return false\n"
    "end\n"
    "return _M\n";

static inline int has_token(const char *v, size_t n, const char *tok) {
  size_t tl = strlen(tok);
  for (size_t i = 0; i + tl <= n; i++)
    if (strncasecmp(v + i, tok, tl) == 0) return 1;
  return 0;
}

static inline int allowed_origin(const char *v, size_t n) {
  static const char *const listed[] = {"https://app.example", "http://localhost:3000"};
  for (size_t i = 0; i < sizeof listed / sizeof *listed; i++)
    if (n == strlen(listed[i]) && memcmp(v, listed[i], n) == 0) return 1;
  /* https://LABELS.tenant.example (a pattern's "*" is one or more whole labels)
   * and https://LABELS.plugin.example, lower case */
  static const char *const suffixes[] = {".tenant.example", ".plugin.example"};
  if (n < 9 || memcmp(v, "https://", 8) != 0) return 0;
  for (size_t s = 0; s < 2; s++) {
    size_t sl = strlen(suffixes[s]);
    if (n <= 8 + sl || memcmp(v + n - sl, suffixes[s], sl) != 0) continue;
    int ok = 1;
    for (size_t i = 8; i < n - sl; i++) {
      char c = v[i];
      /* '_' is a host code point the URL standard allows */
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) ok = 0;
    }
    if (ok) return 1;
  }
  return 0;
}

#endif
