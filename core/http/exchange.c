/* What of an upstream's response head reaches the client, whatever protocol
 * carries it there. */
#include "http/exchange.h"

int cg_exchange_keep_upstream_header(const cg_exchange_t *x, const cg_head_t *uh, int i, int no_body) {
  if (cg_head_is_hop_by_hop(uh, i)) return 0;
  if (!no_body && uh->hdrs[i].id == CG_H_CONTENT_LENGTH) return 0; /* the protocol frames the body itself */
  const cg_req_t *r = &x->req;
  if (!r->route || !r->route->cors) return 1;
  /* The route's policy is the only source of CORS headers: an upstream's
   * own would duplicate them or leak a "*". Its Vary is merged with ours. */
  const char *name = cg_head_name(uh, i);
  size_t len = uh->hdrs[i].name_len;
  if (cg_cors_policy_owns_header(r->route->cors, name, len)) return 0;
  return !(r->cors.vary && *r->cors.vary && uh->hdrs[i].id == CG_H_VARY);
}
