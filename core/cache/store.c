/* The process-wide decision store (store.h): stripes of cg_dcache, each
 * behind a mutex. The cache's own machinery does the work (single flight,
 * stale serving, failures, bounds, purges); this file adds the locks and
 * carries answers across threads as override references. */
#include "cache/store.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/hash.h"
#include "util/list.h"

enum { STRIPES = 32 }; /* at most; a power of two */

typedef struct stripe {
  pthread_mutex_t mu;
  cg_dcache_t *c;
  int releasing; /* under mu: the waiters being woken are to ask again */
} stripe_t;

struct cg_dstore {
  int n; /* stripes: a power of two, at most 32, with 8 entries or more each */
  _Atomic uint64_t purges;
  stripe_t stripes[STRIPES];
};

static int stripe_of(const cg_dstore_t *s, const char *origin, size_t len) {
  return (int)(cg_hash(origin, len, 0x57a7e5u) & (uint32_t)(s->n - 1));
}

cg_dstore_t *cg_dstore_new(size_t max_entries, uint64_t stale_limit_ms) {
  cg_dstore_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  /* the bound is exact, shared out over the stripes; a stripe holds 8 or
   * more, so origins that hash alike do not push each other out of a
   * store with room */
  for (s->n = STRIPES; s->n > 1 && (size_t)s->n * 8 > max_entries; s->n /= 2) {
  }
  size_t per = max_entries / (size_t)s->n, more = max_entries % (size_t)s->n;
  for (int i = 0; i < s->n; i++) {
    pthread_mutex_init(&s->stripes[i].mu, NULL);
    size_t cap = per + ((size_t)i < more ? 1 : 0);
    if (!(s->stripes[i].c = cg_dcache_new(cap ? cap : 1, stale_limit_ms))) {
      cg_dstore_free(s);
      return NULL;
    }
  }
  return s;
}

void cg_dstore_free(cg_dstore_t *s) {
  if (!s) return;
  for (int i = 0; i < s->n; i++) {
    cg_dcache_free(s->stripes[i].c);
    pthread_mutex_destroy(&s->stripes[i].mu);
  }
  free(s);
}

/* e's answer, with a reference to its override, for another thread. */
static void copy_answer(const cg_dcache_entry_t *e, cg_dstore_answer_t *a) {
  a->again = 0;
  a->allow = cg_dcache_entry_allow(e);
  a->ov = cg_cors_override_ref((cg_cors_override_t *)cg_dcache_entry_override(e));
  const char *t = cg_dcache_entry_tenant(e);
  snprintf(a->tenant, sizeof a->tenant, "%s", t ? t : "");
  a->expires = cg_dcache_entry_expires(e);
}

static void on_decided(cg_dcache_waiter_t *dw, const cg_dcache_entry_t *e) {
  cg_dstore_waiter_t *w = container_of(dw, cg_dstore_waiter_t, w);
  copy_answer(e, &w->ans);
  w->ans.again = w->store->stripes[w->stripe].releasing;
  w->answered = 1;
  w->notify(w);
}

/* A running entry without an answer takes mine (see store.h); 1 if it did.
 * Under st's lock: a purge counts itself before it takes any stripe's. */
static int seed(cg_dstore_t *s, stripe_t *st, cg_dcache_entry_t *e, const cg_dstore_answer_t *mine) {
  if (!mine || cg_dcache_entry_expires(e) || mine->purges != atomic_load(&s->purges)) return 0;
  cg_dcache_seed(st->c, e, mine->allow, cg_cors_override_ref(mine->ov), mine->tenant, mine->expires);
  return cg_dcache_entry_expires(e) != 0;
}

int cg_dstore_acquire(cg_dstore_t *s, uint32_t route, const char *origin, size_t len, uint64_t now,
                      const cg_dstore_answer_t *mine, cg_dstore_answer_t *ans, cg_dstore_waiter_t *w,
                      cg_dstore_run_t *run) {
  int i = stripe_of(s, origin, len);
  stripe_t *st = &s->stripes[i];
  cg_dcache_entry_t *e = NULL;
  int out;
  pthread_mutex_lock(&st->mu);
  int rc = cg_dcache_get(st->c, route, origin, len, now, &e);
  if (!e) {
    *run = (cg_dstore_run_t){NULL, i}; /* out of memory: decide without the store */
    out = CG_DS_RUN;
  } else if (rc == CG_DC_FRESH || rc == CG_DC_STALE) {
    copy_answer(e, ans);
    out = CG_DS_HAVE;
  } else if (rc == CG_DC_PENDING && seed(s, st, e, mine)) {
    copy_answer(e, ans); /* another worker decides it: mine serves meanwhile */
    out = CG_DS_HAVE;
  } else if (rc == CG_DC_PENDING && !w) {
    out = CG_DS_WAIT_NEEDED;
  } else if (rc == CG_DC_PENDING) {
    w->stripe = i;
    w->store = s;
    w->answered = 0;
    w->w.cb = on_decided;
    cg_dcache_wait(e, &w->w);
    out = CG_DS_WAIT;
  } else { /* CG_DC_MISS_RUN, CG_DC_STALE_REFRESH: the entry is the caller's to decide */
    *run = (cg_dstore_run_t){e, i};
    out = CG_DS_RUN;
    if (rc == CG_DC_MISS_RUN) seed(s, st, e, mine);
    if (rc == CG_DC_STALE_REFRESH) {
      copy_answer(e, ans); /* served meanwhile, by every worker */
      out = CG_DS_RUN_STALE;
    }
  }
  pthread_mutex_unlock(&st->mu);
  return out;
}

void cg_dstore_set(cg_dstore_t *s, const cg_dstore_run_t *run, int allow, cg_cors_override_t *ov, const char *tenant,
                   uint64_t ttl_ms, uint64_t now) {
  if (!run->e) return;
  stripe_t *st = &s->stripes[run->stripe];
  pthread_mutex_lock(&st->mu);
  cg_dcache_set(st->c, run->e, allow, cg_cors_override_ref(ov), tenant, ttl_ms, now);
  pthread_mutex_unlock(&st->mu);
}

void cg_dstore_fail(cg_dstore_t *s, const cg_dstore_run_t *run, uint64_t deny_ttl_ms, uint64_t now) {
  if (!run->e) return;
  stripe_t *st = &s->stripes[run->stripe];
  pthread_mutex_lock(&st->mu);
  cg_dcache_fail(st->c, run->e, deny_ttl_ms, now);
  pthread_mutex_unlock(&st->mu);
}

void cg_dstore_release(cg_dstore_t *s, const cg_dstore_run_t *run, uint64_t now) {
  if (!run->e) return;
  stripe_t *st = &s->stripes[run->stripe];
  pthread_mutex_lock(&st->mu);
  cg_dcache_drop(st->c, run->e);
  st->releasing = 1;
  cg_dcache_fail(st->c, run->e, 0, now);
  st->releasing = 0;
  pthread_mutex_unlock(&st->mu);
}

void cg_dstore_cancel(cg_dstore_t *s, cg_dstore_waiter_t *w) {
  stripe_t *st = &s->stripes[w->stripe];
  pthread_mutex_lock(&st->mu);
  cg_dcache_cancel(&w->w);
  pthread_mutex_unlock(&st->mu);
}

/* fn on every stripe, each under its lock; the sum of what it returns. */
static size_t each(cg_dstore_t *s, size_t (*fn)(cg_dcache_t *c, const void *arg, uint64_t now), const void *arg,
                   uint64_t now) {
  size_t n = 0;
  for (int i = 0; i < s->n; i++) {
    pthread_mutex_lock(&s->stripes[i].mu);
    n += fn(s->stripes[i].c, arg, now);
    pthread_mutex_unlock(&s->stripes[i].mu);
  }
  return n;
}

static size_t do_purge_all(cg_dcache_t *c, const void *arg, uint64_t now) {
  (void)arg;
  (void)now;
  return cg_dcache_purge_all(c);
}
static size_t do_purge_tenant(cg_dcache_t *c, const void *arg, uint64_t now) {
  (void)now;
  return cg_dcache_purge_tenant(c, arg);
}
static size_t do_expire(cg_dcache_t *c, const void *arg, uint64_t now) {
  (void)arg;
  return cg_dcache_expire_all(c, now);
}

uint64_t cg_dstore_purges(cg_dstore_t *s) { return atomic_load(&s->purges); }

size_t cg_dstore_purge_all(cg_dstore_t *s) {
  atomic_fetch_add(&s->purges, 1);
  return each(s, do_purge_all, NULL, 0);
}

size_t cg_dstore_purge_tenant(cg_dstore_t *s, const char *tenant) {
  atomic_fetch_add(&s->purges, 1);
  return each(s, do_purge_tenant, tenant, 0);
}
size_t cg_dstore_expire_all(cg_dstore_t *s, uint64_t now) { return each(s, do_expire, NULL, now); }

size_t cg_dstore_purge_origin(cg_dstore_t *s, const char *origin, size_t len) {
  atomic_fetch_add(&s->purges, 1);
  stripe_t *st = &s->stripes[stripe_of(s, origin, len)];
  pthread_mutex_lock(&st->mu);
  size_t n = cg_dcache_purge_origin(st->c, origin, len);
  pthread_mutex_unlock(&st->mu);
  return n;
}

void cg_dstore_stats(cg_dstore_t *s, cg_dcache_stats_t *out) {
  memset(out, 0, sizeof *out);
  for (int i = 0; i < s->n; i++) {
    cg_dcache_stats_t one;
    pthread_mutex_lock(&s->stripes[i].mu);
    cg_dcache_stats(s->stripes[i].c, &one);
    pthread_mutex_unlock(&s->stripes[i].mu);
    out->hits += one.hits;
    out->misses += one.misses;
    out->stale += one.stale;
    out->refreshes += one.refreshes;
    out->failures += one.failures;
    out->evictions += one.evictions;
    out->expired += one.expired;
    out->entries += one.entries;
    out->bytes += one.bytes;
  }
}
