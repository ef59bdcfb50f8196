/* Who answers an exchange, once its head is whole and its route known,
 * whatever protocol it came in on: the route's plugin decides the origin
 * first when the decision cache has no answer, then the CORS answer is
 * decided, and a preflight answered here, a proxied request started, or a
 * local answer left for the request's end. */
#include "server/internal.h"

int cg_dispatch(cg_exchange_t *x) {
  cg_req_t *r = &x->req;
  if (r->route && r->route->plugin && !r->plugin_asked) {
    r->plugin_asked = 1;
    if (cg_plugin_decide(x)) return 1; /* x->ops->decided follows */
  }
  cg_cors_decide(x, 0);
  /* A refused preflight is answered here and never forwarded: the upstream
   * must not see it. Its status is 403, or on a debug route the allowed
   * one when the answer names the refused method or header. */
  if (r->cors.kind == CG_CORS_PREFLIGHT_REFUSED ||
      (r->cors.kind == CG_CORS_PREFLIGHT_ALLOWED && !r->cors.preflight_continue)) {
    r->kind = CG_REQ_LOCAL;
    r->local_status = r->cors.status;
    cg_metrics_preflight(&x->w->metrics, r->route->index, r->cors.status, r->cors.kind == CG_CORS_PREFLIGHT_REFUSED);
    return 0;
  }
  if (r->route && r->route->kind == CG_ROUTE_PROXY) {
    r->kind = CG_REQ_PROXY;
    cg_proxy_start(x);
    return 1; /* the proxy calls body_resume once the upstream can take the body */
  }
  r->kind = CG_REQ_LOCAL;
  if (r->expect_continue) x->ops->send_continue(x);
  return 0;
}
