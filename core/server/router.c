/* Route matching: host first (exact beats wildcard beats any), then the
 * longest path prefix. A prefix matches at a segment boundary, so "/api"
 * serves "/api" and "/api/x" but not "/apix". */
#include <string.h>
#include <strings.h>

#include "server/internal.h"

static int host_matches(const cg_route_t *r, const char *host, size_t len) {
  switch (r->host_kind) {
  case CG_HOST_ANY:
    return 1;
  case CG_HOST_EXACT:
    return len == r->host_len && strncasecmp(host, r->host, len) == 0;
  case CG_HOST_WILDCARD: /* r->host is ".example.com": at least one label before it */
    return len > r->host_len && strncasecmp(host + len - r->host_len, r->host, r->host_len) == 0 &&
           host[0] != '.';
  }
  return 0;
}

static int prefix_matches(const cg_route_t *r, const char *path, size_t len) {
  if (len < r->prefix_len || memcmp(path, r->prefix, r->prefix_len) != 0) return 0;
  if (r->prefix[r->prefix_len - 1] == '/' || len == r->prefix_len) return 1;
  char next = path[r->prefix_len];
  return next == '/' || next == '?';
}

const cg_route_t *cg_route_match(const cg_config_t *cfg, const char *host, size_t host_len,
                                 const char *path, size_t path_len) {
  const cg_route_t *best = NULL;
  size_t best_host = 0;
  for (int i = 0; i < cfg->n_routes; i++) {
    const cg_route_t *r = &cfg->routes[i];
    if (!host_matches(r, host, host_len) || !prefix_matches(r, path, path_len)) continue;
    /* host specificity first: an exact host, then the longest wildcard suffix */
    size_t hs = r->host_kind == CG_HOST_EXACT ? 100000 : r->host_kind == CG_HOST_WILDCARD ? r->host_len : 0;
    if (!best || hs > best_host || (hs == best_host && r->prefix_len > best->prefix_len)) {
      best = r;
      best_host = hs;
    }
  }
  return best;
}
