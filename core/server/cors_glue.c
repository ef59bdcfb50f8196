/* The seam between a request and the CORS engine: what the engine reads from
 * the head, and what the gateway does with its answer. The engine itself
 * (core/cors) stays pure; this file is the only one that knows both. */
#include <stdlib.h>
#include <string.h>

#include "server/internal.h"
#include "util/authority.h"
#include "util/log.h"

/* The engine refuses more names than this anyway: lines past it are counted,
 * not kept. */
#define MAX_ACRH_LINES 16

static void find_first(const cg_head_t *h, int id, int *count, const char **v, size_t *vl) {
  *count = 0;
  *v = NULL;
  *vl = 0;
  for (int i = cg_head_find_id(h, id, 0); i >= 0; i = cg_head_find_id(h, id, i + 1)) {
    if ((*count)++ == 0) {
      *v = cg_head_value(h, i);
      *vl = h->hdrs[i].val_len;
    }
  }
}

static int outcome(int kind) {
  if (kind == CG_CORS_PREFLIGHT_ALLOWED || kind == CG_CORS_ACTUAL_ALLOWED) return 1;
  if (kind == CG_CORS_PREFLIGHT_REFUSED || kind == CG_CORS_ACTUAL_REFUSED) return -1;
  return 0;
}

static const char *outcome_name(int o) { return o > 0 ? "allowed" : o < 0 ? "refused" : "no CORS"; }

/* The route's shadow policy on the same request: counted, and logged when its
 * answer (allowed or not, and the exact header lines) differs from what was
 * enforced. Logging is bounded (20 lines a second per worker): a policy that
 * differs on every request must not drown the log. */
static void shadow(cg_exchange_t *x, const cg_cors_request_t *q, const char *enforced, size_t enforced_len) {
  cg_req_t *r = &x->req;
  cg_worker_t *w = x->w;
  if (q->origin_count == 0) return;
  cg_cors_result_t sr;
  int n = cg_cors_evaluate(r->route->shadow_cors, NULL, q, &sr, w->cors_scratch, sizeof w->cors_scratch);
  int so = n < 0 ? -1 : outcome(sr.kind), eo = outcome(r->cors.kind);
  int differs = so != eo || (so > 0 && ((size_t)n != enforced_len || memcmp(w->cors_scratch, enforced, enforced_len) != 0));
  cg_metrics_shadow(&w->metrics, r->route->index, differs);
  if (!differs) return;
  uint64_t sec = uv_now(&w->loop) / 1000;
  if (sec != w->shadow_log_sec) {
    w->shadow_log_sec = sec;
    w->shadow_log_n = 0;
  }
  if (w->shadow_log_n++ >= 20) return;
  int ol = q->origin_len > 200 ? 200 : (int)q->origin_len;
  if (so == eo)
    cg_log_info("shadow_cors: route \"%s\", origin %.*s: both allow, with other headers", r->route->name, ol, q->origin);
  else
    cg_log_info("shadow_cors: route \"%s\", origin %.*s: enforced %s, shadow %s%s%s", r->route->name, ol, q->origin,
                outcome_name(eo), outcome_name(so), so < 0 && n >= 0 ? ": " : "", so < 0 && n >= 0 ? sr.detail : "");
}

void cg_cors_hdrs_release(cg_worker_t *w, cg_req_t *r) {
  if (r->cors_hdrs && r->cors_block && w->n_hdr_blocks < CG_HDR_BLOCKS) w->hdr_blocks[w->n_hdr_blocks++] = r->cors_hdrs;
  else free(r->cors_hdrs);
  r->cors_hdrs = NULL;
  r->cors_len = 0;
  r->cors_block = 0;
}

void cg_cors_hdrs_free_spares(cg_worker_t *w) {
  while (w->n_hdr_blocks > 0) free(w->hdr_blocks[--w->n_hdr_blocks]);
}

void cg_cors_decide(cg_exchange_t *x, int as_actual) {
  cg_req_t *r = &x->req;
  if (r->cors_evaluated) return;
  r->cors_evaluated = 1;
  memset(&r->cors, 0, sizeof r->cors);
  r->cors.vary = "";
  if (!r->route || (!r->route->cors && !r->route->shadow_cors) || !x->head.buf) return;
  /* After an error that cut the head short, its last header may be a
   * fragment ("https://a.exam"): only whole headers count. */
  cg_head_t whole = x->head;
  if (whole.n > 0 && !whole.value_complete) whole.n--;
  const cg_head_t *h = &whole;
  cg_cors_request_t q;
  memset(&q, 0, sizeof q);
  q.method = h->buf + h->method_off;
  q.method_len = h->method_len;
  find_first(h, CG_H_ORIGIN, &q.origin_count, &q.origin, &q.origin_len);
  if (r->origin_parsed && q.origin_count == 1) q.parsed_origin = &r->origin;
  q.name_refusal = r->route->debug;
  const char *acrh[MAX_ACRH_LINES];
  size_t acrh_len[MAX_ACRH_LINES];
  int too_many = 0;
  if (!as_actual) {
    find_first(h, CG_H_ACRM, &q.acrm_count, &q.acrm, &q.acrm_len);
    for (int i = cg_head_find_id(h, CG_H_ACRH, 0); i >= 0; i = cg_head_find_id(h, CG_H_ACRH, i + 1)) {
      if (q.acrh_count == MAX_ACRH_LINES) {
        too_many = 1;
        break;
      }
      acrh[q.acrh_count] = cg_head_value(h, i);
      acrh_len[q.acrh_count] = h->hdrs[i].val_len;
      q.acrh_count++;
    }
    q.acrh = acrh;
    q.acrh_len = acrh_len;
    int pn;
    find_first(h, CG_H_ACRPN, &pn, &q.acrpn, &q.acrpn_len);
  }
  cg_worker_t *w = x->w;
  if (!r->route->cors) { /* only a shadow policy: the route does no CORS */
    r->cors.kind = CG_CORS_NO_CORS;
    shadow(x, &q, NULL, 0);
    return;
  }
  int n = cg_cors_evaluate(r->route->cors, r->decision_ov, &q, &r->cors, w->cors_scratch, sizeof w->cors_scratch);
  r->decision_ov = NULL; /* the cache may drop it from here on */
  if (n >= 0 && r->cors.reason != CG_CORS_NO_ORIGIN && r->cors.kind != CG_CORS_NO_CORS) {
    cg_metrics_cors(&w->metrics, r->route->index, r->cors.reason, r->tenant);
    if (r->cors.reason != CG_CORS_OK) cg_refused_note(x, r->cors.origin, r->cors.origin_len);
  }
  if (n >= 0 && r->cors.origin && r->cors.origin_len < sizeof r->cors_origin) {
    memcpy(r->cors_origin, r->cors.origin, r->cors.origin_len);
    r->cors_origin[r->cors.origin_len] = 0;
  }
  r->cors.origin = NULL; /* it pointed into the worker's scratch */
  if (too_many && n >= 0) n = CG_CORS_E_BUFFER; /* more lines than any browser sends */
  if (n < 0) {
    /* An answer that does not fit (a huge header echo) is a refusal, never a
     * partial header. */
    cg_log_info("%s: CORS answer too large, refused", x->peer);
    int preflight = !as_actual && q.origin_count > 0 && q.acrm_count > 0 && cg_name_eq(q.method, q.method_len, "OPTIONS", 7) &&
                    memcmp(q.method, "OPTIONS", 7) == 0;
    r->cors.kind = preflight ? CG_CORS_PREFLIGHT_REFUSED : CG_CORS_ACTUAL_REFUSED;
    r->cors.status = preflight ? 403 : 0;
    r->cors.reason = too_many ? CG_CORS_TOO_MANY_HEADERS : CG_CORS_REFUSED_HEADER;
    r->cors.detail = "too many requested headers";
    r->cors.headers_len = 0;
    if (!r->cors.vary) r->cors.vary = "";
    return;
  }
  if (n > 0) {
    r->cors_block = (size_t)n <= CG_HDR_BLOCK;
    if (r->cors_block && w->n_hdr_blocks > 0) r->cors_hdrs = w->hdr_blocks[--w->n_hdr_blocks];
    else r->cors_hdrs = malloc(r->cors_block ? CG_HDR_BLOCK : (size_t)n);
    if (!r->cors_hdrs) {
      /* no memory for the lines: refused, and a preflight stays one (it is
       * answered here, never forwarded) */
      int preflight = r->cors.kind == CG_CORS_PREFLIGHT_ALLOWED || r->cors.kind == CG_CORS_PREFLIGHT_REFUSED;
      r->cors.kind = preflight ? CG_CORS_PREFLIGHT_REFUSED : CG_CORS_ACTUAL_REFUSED;
      r->cors.status = preflight ? 403 : 0;
      r->cors.headers_len = 0;
      return;
    }
    memcpy(r->cors_hdrs, w->cors_scratch, (size_t)n);
    r->cors_len = (size_t)n;
  }
  if (r->route->shadow_cors) shadow(x, &q, r->cors_hdrs, r->cors_len);
}

/* The CORS lines and Vary of a response, decided now if they were not yet
 * (a gateway error before the route was chosen). */
void cg_respond_cors_headers(cg_exchange_t *x, cg_buf_t *b, const cg_head_t *upstream_head) {
  cg_req_t *r = &x->req;
  if (r->cors_untrusted) return;
  if (!r->cors_evaluated) {
    /* A gateway error before the route was chosen (a head that broke a limit,
     * a timeout): route what was parsed, so an allowed origin can read it. */
    if (!r->route && x->head.url_len && x->head.buf && x->head.buf[x->head.url_off] == '/') {
      const char *host = "";
      size_t host_len = 0;
      int i = cg_head_find_id(&x->head, CG_H_HOST, 0);
      int hl = i >= 0 ? cg_authority_parse(cg_head_value(&x->head, i), x->head.hdrs[i].val_len) : -1;
      if (hl >= 0) { /* an invalid Host routes as none */
        host = cg_head_value(&x->head, i);
        host_len = (size_t)hl;
      }
      r->route = cg_route_match(x->w->cfg, host, host_len, x->head.buf + x->head.url_off, x->head.url_len);
    }
    cg_cors_decide(x, 1);
  }
  if (r->cors_len) cg_buf_add(b, r->cors_hdrs, r->cors_len);
  const char *ours = r->cors.vary;
  if (!ours || !*ours) return;
  const char *vals[16];
  size_t lens[16];
  int n = 0;
  if (upstream_head)
    for (int i = cg_head_find_id(upstream_head, CG_H_VARY, 0); i >= 0 && n < 16; i = cg_head_find_id(upstream_head, CG_H_VARY, i + 1)) {
      vals[n] = cg_head_value(upstream_head, i);
      lens[n] = upstream_head->hdrs[i].val_len;
      n++;
    }
  if (n == 0) {
    /* Ours alone (every preflight and most responses): it is one of the
     * engine's own lists, already free of repeats, so it goes out as is. */
    cg_buf_adds(b, "Vary: ");
    cg_buf_adds(b, ours);
    cg_buf_add(b, "\r\n", 2);
    return;
  }
  char merged[1024];
  int m = cg_cors_vary_merge(vals, lens, n, ours, merged, sizeof merged);
  if (m > 0) {
    cg_buf_adds(b, "Vary: ");
    cg_buf_add(b, merged, (size_t)m);
    cg_buf_add(b, "\r\n", 2);
  } else if (m < 0) {
    /* the upstream's list does not fit: keep it whole, ours on a line of its own */
    for (int k = 0; k < n; k++) {
      cg_buf_adds(b, "Vary: ");
      cg_buf_add(b, vals[k], lens[k]);
      cg_buf_add(b, "\r\n", 2);
    }
    cg_buf_addf(b, "Vary: %s\r\n", ours);
  }
}
