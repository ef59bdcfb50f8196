#ifndef CG_CACHE_CACHE_H
#define CG_CACHE_CACHE_H
/* The per-origin decision cache of one worker: what a route's plugin decided
 * for a (route, normalized origin), so the hook runs once per origin and
 * TTL, not once per request.
 *
 * - Single flight: the first request for an unknown origin gets
 *   CG_DC_MISS_RUN and starts the hook; the ones that follow get
 *   CG_DC_PENDING; all of them wait on the entry and are woken together by
 *   cg_dcache_set or cg_dcache_fail.
 * - Stale while revalidate: an expired entry keeps serving while one refresh
 *   runs (CG_DC_STALE_REFRESH to the request that starts it, CG_DC_STALE to
 *   the others). A refresh that fails keeps the old answer up to stale_limit
 *   past its expiry (retrying at most once a second), then the origin is
 *   denied.
 * - Bounded: past max_entries the least recently used idle entry goes. An
 *   entry with a hook running is never freed under it: a purge detaches it
 *   and it is freed once the hook reports.
 *
 * Single-threaded (one per worker); times are milliseconds from the caller's
 * clock. */
#include <stddef.h>
#include <stdint.h>

#include "cors/cors.h"
#include "util/list.h"

typedef struct cg_dcache cg_dcache_t;
typedef struct cg_dcache_entry cg_dcache_entry_t;

typedef struct cg_dcache_waiter cg_dcache_waiter_t;
struct cg_dcache_waiter {
  cg_list_t link;
  /* Runs once, when the entry is decided. e and its override are valid for
   * the duration of the call only. */
  void (*cb)(cg_dcache_waiter_t *w, const cg_dcache_entry_t *e);
};

enum {
  CG_DC_FRESH = 0,         /* decided and within its TTL */
  CG_DC_STALE = 1,         /* expired, a refresh is running (or backing off): use it */
  CG_DC_STALE_REFRESH = 2, /* expired: use it, and run the hook to refresh it */
  CG_DC_MISS_RUN = 3,      /* unknown: wait on it, and run the hook */
  CG_DC_PENDING = 4        /* a hook is deciding it: wait on it */
};

cg_dcache_t *cg_dcache_new(size_t max_entries, uint64_t stale_limit_ms);
/* The same machinery for answers of another kind (a certificate per server
 * name): values are freed with free_val and measured with size_val. Such a
 * cache serves only allowed answers stale: a failure or refusal past its
 * time makes the next lookup wait for the hook.
 * cg_dcache_set_value and cg_dcache_entry_value hold them; a value may be
 * NULL. */
cg_dcache_t *cg_dcache_new_values(size_t max_entries, uint64_t stale_limit_ms, void (*free_val)(void *),
                                  size_t (*size_val)(const void *));
/* Frees everything. Waiters still registered are dropped without a call. */
void cg_dcache_free(cg_dcache_t *c);

/* Looks up (route, origin) and says what to do (CG_DC_*); *e is the entry in
 * every case (never NULL unless memory ran out, then CG_DC_MISS_RUN with *e NULL). */
int cg_dcache_get(cg_dcache_t *c, uint32_t route, const char *origin, size_t len, uint64_t now,
                  cg_dcache_entry_t **e);
void cg_dcache_wait(cg_dcache_entry_t *e, cg_dcache_waiter_t *w);
/* Stops waiting (the request went away). Safe when not waiting. */
void cg_dcache_cancel(cg_dcache_waiter_t *w);
/* Moves e's waiters onto out (an initialized list), to be dealt with by the
 * caller: none of them is called. */
void cg_dcache_take_waiters(cg_dcache_entry_t *e, cg_list_t *out);

/* The hook decided: the entry takes ov (may be NULL) and a copy of tenant,
 * then wakes its waiters. */
void cg_dcache_set(cg_dcache_t *c, cg_dcache_entry_t *e, int allow, cg_cors_override_t *ov, const char *tenant,
                   uint64_t ttl_ms, uint64_t now);
void cg_dcache_set_value(cg_dcache_t *c, cg_dcache_entry_t *e, int allow, void *val, const char *tenant,
                         uint64_t ttl_ms, uint64_t now);
const void *cg_dcache_entry_value(const cg_dcache_entry_t *e);
/* e was just made for a hook to decide (CG_DC_MISS_RUN): it takes an answer
 * the caller still serves stale from elsewhere (ov's reference; expires in
 * the past), without waking anyone and with the hook still running. The
 * entry is then one being refreshed: served stale meanwhile, and kept if the
 * hook fails, as long as stale_limit allows. A no-op on any other entry. */
void cg_dcache_seed(cg_dcache_t *c, cg_dcache_entry_t *e, int allow, cg_cors_override_t *ov, const char *tenant,
                    uint64_t expires);
/* The hook failed (error, overrun, wrong answer): stale serving goes on if
 * the entry's answer is young enough, else it becomes a denial for
 * deny_ttl_ms. Wakes the waiters. */
void cg_dcache_fail(cg_dcache_t *c, cg_dcache_entry_t *e, uint64_t deny_ttl_ms, uint64_t now);

int cg_dcache_entry_allow(const cg_dcache_entry_t *e);
const cg_cors_override_t *cg_dcache_entry_override(const cg_dcache_entry_t *e);
const char *cg_dcache_entry_tenant(const cg_dcache_entry_t *e); /* NULL when none */
/* When the entry's answer expires (the caller's clock), 0 without one; and
 * 1 while a hook is deciding or refreshing it. */
uint64_t cg_dcache_entry_expires(const cg_dcache_entry_t *e);
int cg_dcache_entry_running(const cg_dcache_entry_t *e);

/* Takes e out of the cache (a running one is freed once its hook reports). */
void cg_dcache_drop(cg_dcache_t *c, cg_dcache_entry_t *e);
/* Each returns how many entries it dropped. By origin: every route's entry
 * for that normalized origin. */
size_t cg_dcache_purge_all(cg_dcache_t *c);
size_t cg_dcache_purge_origin(cg_dcache_t *c, const char *origin, size_t len);
size_t cg_dcache_purge_tenant(cg_dcache_t *c, const char *tenant);
/* Every entry whose key match() says 1 for. Walks the whole table: for
 * small caches (certificates per name) or rare purges. */
size_t cg_dcache_purge_if(cg_dcache_t *c, int (*match)(const char *key, size_t len, void *arg), void *arg);
/* Every decision expires now but keeps serving stale while its refresh runs
 * (after invalidations may have been missed: nothing goes cold at once).
 * Returns how many were fresh. */
size_t cg_dcache_expire_all(cg_dcache_t *c, uint64_t now);

/* What the cache holds for (route, origin), without touching it (explain). */
typedef struct cg_dcache_info {
  int present, pending, allow;
  int64_t expires_in_ms; /* negative: expired (served stale while refreshing) */
  char tenant[64];
} cg_dcache_info_t;
void cg_dcache_peek(const cg_dcache_t *c, uint32_t route, const char *origin, size_t len, uint64_t now,
                    cg_dcache_info_t *out);

typedef struct cg_dcache_stats {
  uint64_t hits, misses, stale, refreshes, failures, evictions;
  uint64_t expired; /* dropped for being too old to serve, even stale */
  uint64_t entries;
  uint64_t bytes; /* entries, keys, tenants, overrides and the table */
} cg_dcache_stats_t;
/* Constant time: the admin API calls it on the worker's loop. */
void cg_dcache_stats(const cg_dcache_t *c, cg_dcache_stats_t *out);
/* Entries in the fullest slot of the table, what one lookup may walk. Walks
 * the whole table: for specs and diagnosis, not for a live worker's loop. */
size_t cg_dcache_longest_chain(const cg_dcache_t *c);

#endif
