/* Which response headers belong to the gateway: the proxy drops the upstream's
 * copies so a response never carries two answers or a stray "*". */
#include "cors/cors_internal.h"

#include <string.h>

int cg_cors_is_cors_response_header(const char *name, size_t len) {
  static const char prefix[] = "access-control-";
  return name && len >= sizeof prefix - 1 && cg_tok_ieq(name, sizeof prefix - 1, prefix, sizeof prefix - 1);
}

int cg_cors_policy_owns_header(const cg_cors_policy_t *p, const char *name, size_t len) {
  if (!p) return 0;
  if (cg_cors_is_cors_response_header(name, len)) return 1;
  return p->timing && name && cg_tok_ieq(name, len, "timing-allow-origin", 19);
}
