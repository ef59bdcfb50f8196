/* Where a request meets its route's policy plugin: the worker's decision
 * cache first (L1); on a miss there, the process-wide store (L2, shared by
 * the workers): its answer, or one hook run per process for every request of
 * every worker that waits on the same origin (single flight); stale
 * decisions keep serving while one refresh runs. A request waiting for a
 * decision is paused like one waiting for its upstream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lua/host.h"
#include "server/internal.h"
#include "util/log.h"

typedef struct refresh {
  cg_worker_t *w;
  uint64_t t0; /* uv_hrtime() at the start, for the hook duration histogram */
  cg_dcache_entry_t *entry;
  cg_dstore_run_t run; /* the store's entry this run decides (run.e NULL: none) */
  const cg_route_t *route;
} refresh_t;

/* A hook ended: its decision (or failure) goes to the store first (the
 * other workers' waiters), then to this worker's cache, which wakes every
 * request waiting on it here. */
static void on_decided(void *arg, cg_lua_result_t *res) {
  refresh_t *rf = arg;
  cg_worker_t *w = rf->w;
  uint64_t now = uv_now(&w->loop);
  uint64_t ttl = res->ttl >= 0 ? (uint64_t)(res->ttl * 1000)
                               : (res->allow ? rf->route->plugin_ttl_ms : rf->route->plugin_deny_ttl_ms);
  const char *tenant = res->tenant[0] ? res->tenant : NULL;
  if (w->dstore) {
    /* a hook stopped with its worker decided nothing: nothing of it stays */
    if (w->stopping) cg_dstore_release(w->dstore, &rf->run, now);
    else if (res->failed) cg_dstore_fail(w->dstore, &rf->run, rf->route->plugin_deny_ttl_ms, now);
    else cg_dstore_set(w->dstore, &rf->run, res->allow, res->ov, tenant, ttl, now);
  }
  if (w->stopping || !w->dcache) { /* the worker is stopping: its cache goes too */
    if (w->dcache) cg_dcache_fail(w->dcache, rf->entry, 0, now); /* no request waits; a purged entry is freed */
    if (res->ov) cg_cors_override_free(res->ov);
    free(rf);
    return;
  }
  cg_metrics_hook(&w->metrics, (uv_hrtime() - rf->t0) / 1000, res->failed, strcmp(res->error, "timed out") == 0);
  if (res->failed) cg_dcache_fail(w->dcache, rf->entry, rf->route->plugin_deny_ttl_ms, now);
  else cg_dcache_set(w->dcache, rf->entry, res->allow, res->ov, tenant, ttl, now);
  free(rf);
}

static void start_hook(cg_exchange_t *x, cg_dcache_entry_t *e, const cg_dstore_run_t *run, const char *origin,
                       size_t origin_len, const cg_origin_t *o) {
  cg_worker_t *w = x->w;
  const cg_head_t *h = &x->head;
  refresh_t *rf = malloc(sizeof *rf);
  if (!rf) {
    uint64_t now = uv_now(&w->loop);
    if (w->dstore) cg_dstore_fail(w->dstore, run, x->req.route->plugin_deny_ttl_ms, now);
    cg_dcache_fail(w->dcache, e, x->req.route->plugin_deny_ttl_ms, now);
    return;
  }
  rf->w = w;
  rf->t0 = uv_hrtime();
  rf->entry = e;
  rf->run = *run;
  rf->route = x->req.route;
  const char *names[128], *values[128];
  size_t name_lens[128], value_lens[128];
  int n = h->n < 128 ? h->n : 128;
  for (int i = 0; i < n; i++) {
    names[i] = cg_head_name(h, i);
    name_lens[i] = h->hdrs[i].name_len;
    values[i] = cg_head_value(h, i);
    value_lens[i] = h->hdrs[i].val_len;
  }
  const char *url = h->buf + h->url_off;
  const char *q = memchr(url, '?', h->url_len);
  cg_lua_req_t req = {
      .origin = origin, .origin_len = origin_len,
      .scheme = o->scheme, .scheme_len = o->scheme_len, .host = o->host, .host_len = o->host_len,
      .port = o->port,
      .method = h->buf + h->method_off, .method_len = h->method_len,
      .path = url, .path_len = q ? (size_t)(q - url) : h->url_len,
      .header_names = names, .header_name_lens = name_lens, .header_values = values,
      .header_value_lens = value_lens, .n_headers = n};
  cg_lua_origin_run(w->lua, x->req.route, &req, on_decided, rf);
}

/* --- the process-wide store -------------------------------------------------- */

/* A worker waiting on the store for an origin its own cache has pending. */
typedef struct store_wait {
  cg_dstore_waiter_t sw;
  cg_list_t link;      /* in w->store_waits */
  cg_list_t done_link; /* in w->store_done once answered */
  cg_worker_t *w;
  cg_dcache_entry_t *l1; /* this worker's entry: running, so never freed under us */
} store_wait_t;

/* The store's answer into this worker's cache (which takes the override's
 * reference), waking the requests waiting on it. */
static void take_answer(cg_worker_t *w, cg_dcache_entry_t *e, cg_dstore_answer_t *a) {
  uint64_t now = uv_now(&w->loop);
  cg_dcache_set(w->dcache, e, a->allow, a->ov, a->tenant[0] ? a->tenant : NULL, a->expires > now ? a->expires - now : 0,
                now);
  a->ov = NULL;
}

/* On the deciding worker's thread, under the store's lock: queue it. */
static void on_store_answer(cg_dstore_waiter_t *sw) {
  store_wait_t *sv = container_of(sw, store_wait_t, sw);
  cg_worker_t *w = sv->w;
  uv_mutex_lock(&w->store_mu);
  if (w->store_open) {
    cg_list_push(&w->store_done, &sv->done_link);
    uv_async_send(&w->store_async);
  }
  uv_mutex_unlock(&w->store_mu); /* else cg_plugin_store_close frees it */
}

/* The worker deciding e for the process stopped before its hook answered:
 * e leaves this worker's cache, and each request that waited on it decides
 * again, the first one running the hook here (or finding that another
 * worker does). */
static void decide_again(cg_worker_t *w, cg_dcache_entry_t *e) {
  cg_list_t reqs;
  cg_list_init(&reqs);
  cg_dcache_take_waiters(e, &reqs);
  cg_dcache_drop(w->dcache, e);
  cg_dcache_fail(w->dcache, e, 0, uv_now(&w->loop)); /* no waiter left: frees it */
  while (!cg_list_empty(&reqs)) {
    cg_dcache_waiter_t *wt = container_of(reqs.next, cg_dcache_waiter_t, link);
    cg_list_remove(&wt->link);
    cg_req_t *r = container_of(wt, cg_req_t, waiter);
    cg_exchange_t *x = container_of(r, cg_exchange_t, req);
    r->waiting = 0;
    if (cg_plugin_decide(x) == 0) x->ops->decided(x);
  }
}

static void store_run(uv_async_t *a) {
  cg_worker_t *w = container_of(a, cg_worker_t, store_async);
  cg_list_t done;
  cg_list_init(&done);
  uv_mutex_lock(&w->store_mu);
  while (!cg_list_empty(&w->store_done)) {
    cg_list_t *l = w->store_done.next;
    cg_list_remove(l);
    cg_list_push(&done, l);
  }
  uv_mutex_unlock(&w->store_mu);
  while (!cg_list_empty(&done)) {
    store_wait_t *sv = container_of(done.next, store_wait_t, done_link);
    cg_list_remove(&sv->done_link);
    cg_list_remove(&sv->link);
    if (w->dcache && sv->sw.ans.again) decide_again(w, sv->l1);
    else if (w->dcache) take_answer(w, sv->l1, &sv->sw.ans);
    if (!w->dcache || sv->sw.ans.again) cg_cors_override_free(sv->sw.ans.ov);
    free(sv);
  }
}

int cg_plugin_store_open(cg_worker_t *w) {
  cg_list_init(&w->store_waits);
  cg_list_init(&w->store_done);
  if (!w->dstore) return 0;
  if (uv_mutex_init(&w->store_mu) != 0) return -1;
  uv_async_init(&w->loop, &w->store_async, store_run);
  w->store_open = w->store_made = 1;
  return 0;
}

static void on_store_async_closed(uv_handle_t *h) { (void)h; }

void cg_plugin_store_close(cg_worker_t *w) {
  if (!w->dstore || !w->store_open) return;
  uv_mutex_lock(&w->store_mu);
  w->store_open = 0; /* answers from now on stay in their waiter */
  uv_mutex_unlock(&w->store_mu);
  uv_close((uv_handle_t *)&w->store_async, on_store_async_closed);
  while (!cg_list_empty(&w->store_waits)) {
    store_wait_t *sv = container_of(w->store_waits.next, store_wait_t, link);
    cg_list_remove(&sv->link);
    cg_dstore_cancel(w->dstore, &sv->sw); /* after it, no answer can come */
    if (sv->sw.answered) cg_cors_override_free(sv->sw.ans.ov);
    /* its entry here waits no more (one purged meanwhile is freed by this) */
    if (w->dcache) cg_dcache_fail(w->dcache, sv->l1, 0, uv_now(&w->loop));
    free(sv);
  }
}

/* This worker's cache has e pending or stale, with a hook to run: the store
 * says whether it knows the answer (taken now), another worker is deciding
 * it (this one waits), or this worker decides it (1, with run). When the
 * store keeps an expired answer while this worker refreshes it and e has none
 * it may serve (own_stale 0: it left this worker's front, or is too old), e
 * takes that answer at once and the hook refreshes the store alone (*l1 =
 * NULL): e then asks the store again at its next request. */
static int ask_store(cg_exchange_t *x, cg_dcache_entry_t **l1, int own_stale, const char *origin, size_t len,
                     cg_dstore_run_t *run) {
  cg_worker_t *w = x->w;
  cg_dcache_entry_t *e = *l1;
  *run = (cg_dstore_run_t){NULL, 0};
  if (!w->dstore || !e) return 1;
  uint32_t route = (uint32_t)x->req.route->index;
  cg_dstore_answer_t a, mine, *own = NULL;
  if (own_stale) { /* what e serves stale: the store starts from it if it lost the origin */
    const char *t = cg_dcache_entry_tenant(e);
    mine.allow = cg_dcache_entry_allow(e);
    mine.ov = (cg_cors_override_t *)cg_dcache_entry_override(e);
    snprintf(mine.tenant, sizeof mine.tenant, "%s", t ? t : "");
    mine.expires = cg_dcache_entry_expires(e);
    mine.purges = w->purges_seen;
    own = &mine;
  }
  store_wait_t *sv = NULL;
  int rc = cg_dstore_acquire(w->dstore, route, origin, len, uv_now(&w->loop), own, &a, NULL, run);
  if (rc == CG_DS_WAIT_NEEDED) { /* another worker decides it: a waiter, and ask again */
    if (!(sv = calloc(1, sizeof *sv))) return 1;
    sv->w = w;
    sv->l1 = e;
    sv->sw.notify = on_store_answer;
    rc = cg_dstore_acquire(w->dstore, route, origin, len, uv_now(&w->loop), own, &a, &sv->sw, run);
  }
  if (rc == CG_DS_WAIT) {
    cg_list_push(&w->store_waits, &sv->link);
    return 0;
  }
  free(sv);
  switch (rc) {
  case CG_DS_HAVE:
    take_answer(w, e, &a);
    return 0;
  case CG_DS_RUN_STALE:
    if (own_stale) { /* e serves its own stale answer meanwhile, and takes the hook's */
      cg_cors_override_free(a.ov);
      return 1;
    }
    take_answer(w, e, &a);
    *l1 = NULL;
    return 1;
  default:
    return 1;
  }
}

/* --- decisions ------------------------------------------------------------------ */

static void take_decision(cg_exchange_t *x, const cg_dcache_entry_t *e) {
  cg_req_t *r = &x->req;
  cg_worker_t *w = x->w;
  r->decided = 1;
  int i = r->route->index - 1;
  r->decision_ov = cg_dcache_entry_override(e);
  if (!cg_dcache_entry_allow(e)) r->decision_ov = w->deny_ov[i];
  else if (!r->decision_ov) r->decision_ov = w->allow_ov[i];
  const char *tenant = cg_dcache_entry_tenant(e);
  if (tenant) {
    size_t n = strlen(tenant);
    if (n >= sizeof r->tenant) n = sizeof r->tenant - 1;
    memcpy(r->tenant, tenant, n);
    r->tenant[n] = 0;
  }
}

static void on_waiter(cg_dcache_waiter_t *wt, const cg_dcache_entry_t *e) {
  cg_req_t *r = container_of(wt, cg_req_t, waiter);
  cg_exchange_t *x = container_of(r, cg_exchange_t, req);
  r->waiting = 0;
  r->hook_us = (uv_hrtime() - r->hook_t0) / 1000;
  take_decision(x, e);
  if (r->in_dispatch) return; /* decided while starting: dispatch goes on there */
  x->ops->decided(x);
}

int cg_plugin_decide(cg_exchange_t *x) {
  cg_req_t *r = &x->req;
  cg_worker_t *w = x->w;
  const cg_head_t *h = &x->head;
  if (!w->dcache || !w->lua) return 0;
  int oi = cg_head_find_id(h, CG_H_ORIGIN, 0);
  if (oi < 0 || cg_head_count_id(h, CG_H_ORIGIN) != 1) return 0; /* no origin, or a malformed one: the static answer */
  /* Parsed into the request, where evaluation finds it instead of parsing
   * the same bytes again. */
  cg_origin_t *op = &r->origin;
  if (cg_cors_origin_parse(cg_head_value(h, oi), h->hdrs[oi].val_len, op, r->cors_origin, sizeof r->cors_origin - 1) != 0)
    return 0;
  r->cors_origin[op->norm_len] = 0;
  r->origin_parsed = 1;
  if (op->is_null) return 0;
  cg_dcache_entry_t *e = NULL, *l1;
  cg_dstore_run_t run;
  uint64_t now = uv_now(&w->loop);
  int rc = cg_dcache_get(w->dcache, (uint32_t)r->route->index, op->norm, op->norm_len, now, &e);
  if (!e) { /* out of memory: refused, as a failing hook is */
    r->decided = 1;
    r->decision_ov = w->deny_ov[r->route->index - 1];
    r->cache_result = "miss";
    return 0;
  }
  switch (rc) {
  case CG_DC_FRESH:
  case CG_DC_STALE:
    r->cache_result = rc == CG_DC_FRESH ? "hit" : "stale";
    take_decision(x, e);
    return 0;
  case CG_DC_STALE_REFRESH:
    /* The refresh runs on and this request does not wait. A hook that never
     * waits has already replaced (and freed) the stale value when start_hook
     * returns, so the decision is taken after it: the new one, or the stale
     * one while the refresh is still running. */
    r->cache_result = "stale-refresh";
    l1 = e;
    if (ask_store(x, &l1, 1, op->norm, op->norm_len, &run)) start_hook(x, l1, &run, op->norm, op->norm_len, op);
    take_decision(x, e);
    return 0;
  case CG_DC_MISS_RUN:
  case CG_DC_PENDING:
  default:
    r->cache_result = rc == CG_DC_MISS_RUN ? "miss" : "wait";
    r->hook_t0 = uv_hrtime();
    r->waiter.cb = on_waiter;
    r->waiting = 1;
    r->in_dispatch = 1;
    cg_dcache_wait(e, &r->waiter);
    l1 = e;
    if (rc == CG_DC_MISS_RUN && ask_store(x, &l1, 0, op->norm, op->norm_len, &run))
      start_hook(x, l1, &run, op->norm, op->norm_len, op);
    r->in_dispatch = 0;
    return r->decided ? 0 : 1;
  }
}

void cg_plugin_cancel(cg_exchange_t *x) {
  if (x->req.waiting) {
    cg_dcache_cancel(&x->req.waiter);
    x->req.waiting = 0;
  }
}

/* Replaces the Expose-Headers line of an allowed response with what the
 * route's expose_headers hook says for this response. */
void cg_plugin_expose(cg_exchange_t *x, const cg_head_t *up, int status) {
  cg_req_t *r = &x->req;
  cg_worker_t *w = x->w;
  if (!w->lua || !r->route || !r->route->plugin || !w->has_expose[r->route->index - 1]) return;
  if (r->cors.kind != CG_CORS_ACTUAL_ALLOWED || !r->cors_origin[0]) return;
  const char *names[128], *values[128];
  size_t nl[128], vl[128];
  int n = up ? (up->n < 128 ? up->n : 128) : 0;
  for (int i = 0; i < n; i++) {
    names[i] = cg_head_name(up, i);
    nl[i] = up->hdrs[i].name_len;
    values[i] = cg_head_value(up, i);
    vl[i] = up->hdrs[i].val_len;
  }
  char line[2048];
  int len = cg_lua_expose_run(w->lua, r->route, r->cors_origin, strlen(r->cors_origin), r->tenant, status, names, nl,
                              values, vl, n, line, sizeof line);
  if (len == 0) return;
  /* drop the current Expose-Headers line, then add the hook's (if any) */
  static const char key[] = "access-control-expose-headers:";
  char *out = malloc(r->cors_len + (len > 0 ? (size_t)len : 0) + 1);
  if (!out) return;
  size_t o = 0;
  const char *p = r->cors_hdrs, *end = r->cors_hdrs + r->cors_len;
  while (p && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    size_t ll = eol ? (size_t)(eol - p + 1) : (size_t)(end - p);
    if (!(ll >= sizeof key - 1 && strncasecmp(p, key, sizeof key - 1) == 0)) {
      memcpy(out + o, p, ll);
      o += ll;
    }
    p += ll;
  }
  if (len > 0) {
    memcpy(out + o, line, (size_t)len);
    o += (size_t)len;
  }
  cg_cors_hdrs_release(w, r);
  r->cors_hdrs = out;
  r->cors_len = o;
}
