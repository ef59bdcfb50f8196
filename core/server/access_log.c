/* The access log: one line per exchange, as text or JSON, whatever protocol
 * it came in on: what an on-call engineer filters on (route, status, origin,
 * the CORS decision and its tenant, the cache's answer) and where the time
 * went (plugin wait, upstream). */
#include <stdio.h>
#include <string.h>

#include "server/internal.h"
#include "util/log.h"

static void ms_field(cg_buf_t *b, const char *name, uint64_t us) {
  cg_buf_adds(b, name);
  cg_buf_addu(b, us / 1000);
  char frac[5] = {'.', (char)('0' + us % 1000 / 100), (char)('0' + us % 100 / 10), (char)('0' + us % 10), 0};
  cg_buf_adds(b, frac);
}

/* One JSON object per line: what an on-call engineer filters on (route,
 * status, origin, the CORS decision and its tenant, the cache's answer) and
 * where the time went (plugin wait, upstream). Raw request bytes are escaped;
 * the origin is the header as sent, cut at 256 bytes. */
static void access_log_json(const cg_exchange_t *x, uint64_t ms) {
  const cg_req_t *r = &x->req;
  const cg_head_t *h = &x->head;
  char stack[1024];
  cg_buf_t b = CG_BUF_ON(stack);
  char ts[40];
  /* the bound is cg_log_stamp's own; said again here because link-time
   * optimization cannot see it and warned of a read past ts */
  size_t tn = cg_log_stamp(ts, sizeof ts);
  if (tn >= sizeof ts) tn = sizeof ts - 1;
  cg_buf_adds(&b, "{\"time\":\"");
  cg_buf_add(&b, ts, tn);
  cg_buf_adds(&b, "\",\"client\":");
  cg_buf_json(&b, x->peer, strlen(x->peer));
  cg_buf_adds(&b, ",\"route\":");
  if (r->route) cg_buf_json(&b, r->route->name, strlen(r->route->name));
  else cg_buf_adds(&b, "null");
  cg_buf_adds(&b, ",\"host\":");
  int hi = h->buf ? cg_head_find_id(h, CG_H_HOST, 0) : -1;
  if (hi >= 0) cg_buf_json(&b, cg_head_value(h, hi), h->hdrs[hi].val_len > 256 ? 256 : h->hdrs[hi].val_len);
  else cg_buf_adds(&b, "null");
  cg_buf_adds(&b, ",\"proto\":\"");
  cg_buf_adds(&b, x->proto);
  cg_buf_adds(&b, x->tls ? "\",\"tls\":\"" : "\",\"tls\":null");
  if (x->tls) {
    cg_buf_adds(&b, x->tls);
    cg_buf_add(&b, "\"", 1);
  }
  cg_buf_adds(&b, ",\"method\":");
  if (h->buf) cg_buf_json(&b, h->buf + h->method_off, h->method_len);
  else cg_buf_adds(&b, "null");
  cg_buf_adds(&b, ",\"path\":");
  if (h->buf) cg_buf_json(&b, h->buf + h->url_off, h->url_len > 1024 ? 1024 : h->url_len);
  else cg_buf_adds(&b, "null");
  cg_buf_adds(&b, ",\"status\":");
  cg_buf_addu(&b, (uint64_t)r->status);
  int oi = h->buf ? cg_head_find_id(h, CG_H_ORIGIN, 0) : -1;
  cg_buf_adds(&b, ",\"origin\":");
  if (oi >= 0) cg_buf_json(&b, cg_head_value(h, oi), h->hdrs[oi].val_len > 256 ? 256 : h->hdrs[oi].val_len);
  else cg_buf_adds(&b, "null");
  cg_buf_adds(&b, ",\"decision\":");
  int decided = r->cors_evaluated && r->route && r->route->cors && r->cors.reason != CG_CORS_NO_ORIGIN &&
                r->cors.kind != CG_CORS_NO_CORS;
  if (decided) {
    cg_buf_add(&b, "\"", 1);
    cg_buf_adds(&b, cg_metrics_result_name(r->cors.reason));
    cg_buf_add(&b, "\"", 1);
  } else {
    cg_buf_adds(&b, "null");
  }
  cg_buf_adds(&b, ",\"tenant\":");
  if (r->tenant[0]) cg_buf_json(&b, r->tenant, strlen(r->tenant));
  else cg_buf_adds(&b, "null");
  cg_buf_adds(&b, ",\"cache\":");
  if (r->cache_result) {
    cg_buf_add(&b, "\"", 1);
    cg_buf_adds(&b, r->cache_result);
    cg_buf_add(&b, "\"", 1);
  } else {
    cg_buf_adds(&b, "null");
  }
  if (r->cache_result) ms_field(&b, ",\"hook_ms\":", r->hook_us);
  else cg_buf_adds(&b, ",\"hook_ms\":null");
  if (r->up_t0 && r->resp_started && r->kind == CG_REQ_PROXY) ms_field(&b, ",\"upstream_ms\":", r->up_us);
  else cg_buf_adds(&b, ",\"upstream_ms\":null");
  cg_buf_adds(&b, ",\"bytes\":");
  cg_buf_addu(&b, r->resp_bytes);
  cg_buf_adds(&b, ",\"duration_ms\":");
  cg_buf_addu(&b, ms);
  cg_buf_adds(&b, "}\n");
  cg_log_line(b.data, b.len);
  cg_buf_free(&b);
}

void cg_access_log(const cg_exchange_t *x, uint64_t ms) {
  const cg_worker_t *w = x->w;
  if (!w->cfg->access_log) return;
  const cg_req_t *r = &x->req;
  const cg_head_t *h = &x->head;
  if (w->cfg->access_log == CG_ACCESS_LOG_JSON) {
    access_log_json(x, ms);
    return;
  }
  cg_log_access("%s \"%.*s %.*s %s\" %d %llu route=%s %llums%s%s", x->peer, (int)h->method_len,
                h->buf ? h->buf + h->method_off : "-", (int)(h->url_len > 512 ? 512 : h->url_len),
                h->buf ? h->buf + h->url_off : "-", x->proto, r->status, (unsigned long long)r->resp_bytes,
                r->route ? r->route->name : "-", (unsigned long long)ms, x->tls ? " " : "", x->tls ? x->tls : "");
}
