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
  const cg_head_t *h = &x->head;
  if (!origin) { /* a malformed Origin: its bytes as sent */
    int oi = cg_head_find_id(h, CG_H_ORIGIN, 0);
    if (cg_head_count_id(h, CG_H_ORIGIN) > 1) { /* no one of them is "the" origin */
      detail = "several Origin headers";
      dlen = strlen(detail);
    } else if (oi >= 0) {
      origin = cg_head_value(h, oi), origin_len = h->hdrs[oi].val_len;
    }
  }
  /* the request, to explain it again: its path (no query) and Host */
  const char *url = h->buf + h->url_off;
  const char *q = memchr(url, '?', h->url_len);
  int hi = cg_head_find_id(h, CG_H_HOST, 0);
  cg_topk_sample_t sample = {url, hi >= 0 ? cg_head_value(h, hi) : NULL, q ? (size_t)(q - url) : h->url_len,
                             hi >= 0 ? h->hdrs[hi].val_len : 0};
  /* the loop's clock: uv_hrtime's, read once per iteration */
  cg_topk_add(&x->w->refused, r->route->index, reason, origin, origin ? origin_len : 0, detail, dlen, r->tenant,
              &sample, uv_now(&x->w->loop));
}

static void rpc_copy(cg_worker_t *w, void *arg) { memcpy(arg, &w->refused, sizeof w->refused); }

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

/* The index of it's key in all (through table, open addressing over
 * slots), or where it goes: table[*slot] < 0. */
static int lookup(const cg_topk_item_t *all, const int *table, size_t slots, const cg_topk_item_t *it, size_t *slot) {
  size_t s = it->hash & (slots - 1);
  while (table[s] >= 0 && !cg_topk_same(&all[table[s]], it)) s = (s + 1) & (slots - 1);
  *slot = s;
  return table[s];
}

/* The workers' summaries merged as mergeable summaries are: a key's count
 * is the sum over the workers of its count where held, and where not held
 * of what that worker may have seen of it unheld (its floor, also added to
 * the error). Every key starts from the sum of the floors, and each worker
 * that holds it adds its count over its floor: linear in what the workers
 * hold. Returns how many keys, or -1. */
static int merge(cg_topk_t *sums, int w, cg_topk_item_t *all, int cap) {
  size_t slots = 1;
  while (slots < (size_t)cap * 2) slots <<= 1;
  int *table = malloc(slots * sizeof *table);
  if (!table) return -1;
  memset(table, 0xff, slots * sizeof *table);
  uint64_t floors = 0;
  for (int i = 0; i < w; i++) floors += cg_topk_floor(&sums[i]);
  int n = 0;
  for (int i = 0; i < w; i++) {
    uint64_t floor = cg_topk_floor(&sums[i]);
    for (int k = 0; k < sums[i].n; k++) {
      const cg_topk_item_t *it = &sums[i].items[k];
      size_t s;
      int at = lookup(all, table, slots, it, &s);
      if (at < 0) {
        if (n == cap) continue; /* cannot happen: cap holds every worker's keys */
        at = table[s] = n++;
        all[at] = *it;
        all[at].count = all[at].error = floors;
        all[at].first_ms = UINT64_MAX;
        all[at].last_ms = 0;
        all[at].tenant[0] = 0;
      }
      cg_topk_item_t *m = &all[at];
      m->count += it->count - floor;
      m->error += it->error - floor;
      if (it->first_ms < m->first_ms) m->first_ms = it->first_ms;
      if (it->last_ms >= m->last_ms) {
        m->last_ms = it->last_ms;
        if (it->tenant[0]) memcpy(m->tenant, it->tenant, sizeof m->tenant); /* the latest one named */
      }
    }
  }
  free(table);
  return n;
}

char *cg_refused_render(cg_worker_t *workers, int n_workers, const cg_config_t *cfg, int limit, size_t *len) {
  int cap = CG_TOPK_K * (n_workers > 0 ? n_workers : 1);
  cg_topk_item_t *all = calloc((size_t)cap, sizeof *all);
  cg_topk_t *sums = calloc((size_t)(n_workers > 0 ? n_workers : 1), sizeof *sums);
  int w = 0, n = -1;
  if (all && sums) {
    for (int i = 0; i < n_workers; i++)
      if (cg_worker_rpc(&workers[i], rpc_copy, &sums[w]) == 0) w++;
    n = merge(sums, w, all, cap);
  }
  free(sums);
  if (n < 0) {
    free(all);
    return NULL;
  }
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
      cg_buf_adds(&b, it->reason == CG_CORS_REFUSED_METHOD   ? ",\"method\":"
                      : it->reason == CG_CORS_REFUSED_HEADER ? ",\"header\":"
                                                             : ",\"problem\":");
      cg_buf_json(&b, it->detail, strlen(it->detail));
    }
    if (it->tenant[0]) {
      cg_buf_adds(&b, ",\"tenant\":");
      cg_buf_json(&b, it->tenant, strlen(it->tenant));
    }
    cg_buf_adds(&b, ",\"path\":");
    cg_buf_json(&b, it->path, strlen(it->path));
    cg_buf_adds(&b, ",\"host\":");
    cg_buf_json(&b, it->host, strlen(it->host));
    cg_buf_addf(&b, ",\"count\":%llu,\"error\":%llu,\"first_seen\":\"%s\",\"last_seen\":\"%s\"}",
                (unsigned long long)it->count, (unsigned long long)it->error, first, last);
  }
  cg_buf_adds(&b, "]}");
  free(all);
  *len = b.len;
  return b.data;
}
