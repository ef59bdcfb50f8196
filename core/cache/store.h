#ifndef CG_CACHE_STORE_H
#define CG_CACHE_STORE_H
/* The process-wide decision store: what plugins decided for (route, origin),
 * held once per process and shared by every worker, so a new origin costs
 * one hook run per process, not one per worker (lua-resty-mlcache's L2; each
 * worker's cg_dcache is the small L1 in front of it).
 *
 * A worker asks the store when its own cache cannot answer:
 * - CG_DS_HAVE: the store holds an answer (fresh, or expired and served
 *   stale while another worker refreshes it or a failed refresh backs off):
 *   copied into *ans, its override a reference the caller now owns.
 * - CG_DS_RUN: nobody is deciding it: the caller runs the hook, then reports
 *   with cg_dstore_set or cg_dstore_fail on *run (always exactly one).
 * - CG_DS_WAIT: another worker's hook is deciding it: w is registered, and
 *   w->notify(w) runs once, on that worker's thread, with w->ans filled.
 *   Without w (NULL), CG_DS_WAIT_NEEDED instead: ask again with one (the
 *   common paths then allocate no waiter).
 *
 * Stripes, each a cg_dcache (single flight, TTLs, stale serving, LRU bound,
 * tenant purges) behind its own mutex, picked by a keyed hash of the origin,
 * so workers rarely meet on a lock and a purge by origin takes one. */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

typedef struct cg_dstore cg_dstore_t;

typedef struct cg_dstore_answer {
  int again; /* no answer: the run was given up (its worker stopped); ask again */
  int allow;
  cg_cors_override_t *ov; /* a reference the receiver owns; NULL: the route's plain answer */
  char tenant[64];        /* "" when none */
  uint64_t expires;       /* in the past: serve it stale */
  uint64_t purges;        /* as mine (below): the store's purge count the caller's copy has seen */
} cg_dstore_answer_t;

typedef struct cg_dstore_waiter cg_dstore_waiter_t;
struct cg_dstore_waiter {
  cg_dcache_waiter_t w; /* on the store's entry */
  int stripe;
  int answered;
  cg_dstore_answer_t ans;
  cg_dstore_t *store;
  /* Runs on the deciding worker's thread, under the store's lock: it may
   * only hand the waiter to its owner (a queue, a wake-up). */
  void (*notify)(cg_dstore_waiter_t *w);
};

typedef struct cg_dstore_run {
  cg_dcache_entry_t *e; /* NULL: memory ran out; report anyway (a no-op) */
  int stripe;
} cg_dstore_run_t;

/* CG_DS_RUN_STALE: as CG_DS_RUN, and *ans holds the expired answer the
 * store keeps serving while the caller's hook refreshes it. */
enum { CG_DS_HAVE = 0, CG_DS_RUN = 1, CG_DS_WAIT = 2, CG_DS_RUN_STALE = 3, CG_DS_WAIT_NEEDED = 4 };

/* max_entries bounds the whole store (spread over its stripes). */
cg_dstore_t *cg_dstore_new(size_t max_entries, uint64_t stale_limit_ms);
/* No worker may use it any more; registered waiters are dropped uncalled. */
void cg_dstore_free(cg_dstore_t *s);

/* mine: the answer the caller still serves stale itself (its own copy
 * expired and it refreshes it), or NULL. When the store holds no answer for
 * the origin (its bound evicted it while the workers' fronts answered it,
 * or another worker without a copy is deciding it), the entry starts from
 * mine: the workers are served it stale meanwhile, and a failing decision
 * keeps it (stale_limit) instead of denying the origin. Only while
 * mine->purges is the store's purge count: a copy that a purge has reached
 * in the store but not yet in the caller's cache is never put back. Not
 * taken over: the caller keeps its reference. */
int cg_dstore_acquire(cg_dstore_t *s, uint32_t route, const char *origin, size_t len, uint64_t now,
                      const cg_dstore_answer_t *mine, cg_dstore_answer_t *ans, cg_dstore_waiter_t *w,
                      cg_dstore_run_t *run);
/* The hook decided: the store takes its own reference to ov, then notifies
 * the waiters. */
void cg_dstore_set(cg_dstore_t *s, const cg_dstore_run_t *run, int allow, cg_cors_override_t *ov, const char *tenant,
                   uint64_t ttl_ms, uint64_t now);
void cg_dstore_fail(cg_dstore_t *s, const cg_dstore_run_t *run, uint64_t deny_ttl_ms, uint64_t now);
/* The run decided nothing (its worker stopped): the entry leaves the store,
 * so the next request asks anew, and its waiters are told to ask again
 * (ans.again): one of them runs the hook in its own worker. */
void cg_dstore_release(cg_dstore_t *s, const cg_dstore_run_t *run, uint64_t now);
/* Stops waiting (the worker is stopping). Safe once notified. */
void cg_dstore_cancel(cg_dstore_t *s, cg_dstore_waiter_t *w);

/* Purges count themselves first (cg_dstore_purges), before any entry goes. */
uint64_t cg_dstore_purges(cg_dstore_t *s);
size_t cg_dstore_purge_all(cg_dstore_t *s);
size_t cg_dstore_purge_origin(cg_dstore_t *s, const char *origin, size_t len);
size_t cg_dstore_purge_tenant(cg_dstore_t *s, const char *tenant);
size_t cg_dstore_expire_all(cg_dstore_t *s, uint64_t now);
void cg_dstore_stats(cg_dstore_t *s, cg_dcache_stats_t *out);

#endif
