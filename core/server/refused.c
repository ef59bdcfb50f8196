/* The top refused origins: each worker keeps a space-saving summary
 * (util/topk.h) of the (route, reason, origin, method or header) its CORS
 * refusals were for, in fixed memory and constant work per refusal; GET
 * /refused on the admin API merges the workers' summaries. Raw origins are
 * never metric labels: they live here, bounded. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/buf.h"
#include "server/internal.h"

static uint64_t mono_ms(void) { return uv_hrtime() / 1000000; }

void cg_refused_note(cg_exchange_t *x, const char *origin, size_t origin_len) {
  cg_req_t *r = &x->req;
  int reason = r->cors.reason;
  if (reason == CG_CORS_OK || reason == CG_CORS_NO_ORIGIN) return;
  const char *detail = NULL;
  size_t dlen = 0;
  if (reason == CG_CORS_REFUSED_METHOD || reason == CG_CORS_REFUSED_HEADER) {
    detail = r->cors.detail_arg;
    dlen = r->cors.detail_arg_len;
  }
  if (!origin) { /* a malformed Origin: its bytes as sent */
    const cg_head_t *h = &x->head;
    int oi = cg_head_find_id(h, CG_H_ORIGIN, 0);
    if (oi >= 0) origin = cg_head_value(h, oi), origin_len = h->hdrs[oi].val_len;
  }
  /* the loop's clock: uv_hrtime's, read once per iteration */
  cg_topk_add(&x->w->refused, r->route->index, reason, origin, origin ? origin_len : 0, detail, dlen, r->tenant,
              uv_now(&x->w->loop));
}

typedef struct {
  cg_topk_item_t items[CG_TOPK_K];
  int n;
} copy_t;

static void rpc_copy(cg_worker_t *w, void *arg) {
  copy_t *c = arg;
  c->n = w->refused.n;
  memcpy(c->items, w->refused.items, (size_t)c->n * sizeof *c->items);
}

static int by_count(const void *a, const void *b) {
  const cg_topk_item_t *x = a, *y = b;
  return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

/* "2026-12-02T10:04:05.123Z" for a time of mono_ms()'s clock. */
static void stamp(char *out, size_t n, uint64_t t, uint64_t mono_now, const struct timespec *wall_now) {
  int64_t wall_ms = (int64_t)wall_now->tv_sec * 1000 + wall_now->tv_nsec / 1000000 - (int64_t)(mono_now - t);
  time_t s = (time_t)(wall_ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  char base[32];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, n, "%s.%03dZ", base, (int)(wall_ms % 1000));
}

char *cg_refused_render(cg_worker_t *workers, int n_workers, const cg_config_t *cfg, int limit, size_t *len) {
  int cap = CG_TOPK_K * (n_workers > 0 ? n_workers : 1);
  cg_topk_item_t *all = calloc((size_t)cap, sizeof *all);
  copy_t *c = malloc(sizeof *c);
  if (!all || !c) {
    free(all);
    free(c);
    return NULL;
  }
  int n = 0;
  for (int i = 0; i < n_workers; i++) {
    c->n = 0;
    if (cg_worker_rpc(&workers[i], rpc_copy, c) != 0) continue;
    n = cg_topk_merge(all, n, cap, c->items, c->n);
  }
  free(c);
  qsort(all, (size_t)n, sizeof *all, by_count);
  if (limit > 0 && n > limit) n = limit;
  uint64_t mono_now = mono_ms();
  struct timespec wall_now;
  clock_gettime(CLOCK_REALTIME, &wall_now);
  cg_buf_t b = {0};
  cg_buf_addf(&b, "{\"workers\":%d,\"per_worker\":%d,\"refused\":[", n_workers, CG_TOPK_K);
  for (int i = 0; i < n; i++) {
    const cg_topk_item_t *it = &all[i];
    const char *route = it->route >= 1 && it->route <= cfg->n_routes ? cfg->routes[it->route - 1].name : NULL;
    char first[40], last[40];
    stamp(first, sizeof first, it->first_ms, mono_now, &wall_now);
    stamp(last, sizeof last, it->last_ms, mono_now, &wall_now);
    cg_buf_adds(&b, i ? ",{\"origin\":" : "{\"origin\":");
    cg_buf_json(&b, it->origin, strlen(it->origin));
    cg_buf_adds(&b, ",\"route\":");
    cg_buf_json(&b, route ? route : "", route ? strlen(route) : 0);
    cg_buf_addf(&b, ",\"reason\":\"%s\"", cg_metrics_result_name(it->reason));
    if (it->detail[0]) {
      cg_buf_adds(&b, it->reason == CG_CORS_REFUSED_METHOD ? ",\"method\":" : ",\"header\":");
      cg_buf_json(&b, it->detail, strlen(it->detail));
    }
    if (it->tenant[0]) {
      cg_buf_adds(&b, ",\"tenant\":");
      cg_buf_json(&b, it->tenant, strlen(it->tenant));
    }
    cg_buf_addf(&b, ",\"count\":%llu,\"error\":%llu,\"first_seen\":\"%s\",\"last_seen\":\"%s\"}",
                (unsigned long long)it->count, (unsigned long long)it->error, first, last);
  }
  cg_buf_adds(&b, "]}");
  free(all);
  *len = b.len;
  return b.data;
}
