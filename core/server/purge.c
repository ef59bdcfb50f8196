/* Purges of cached decisions across the serving config's workers, and the
 * store they share (the store first: a worker's cache emptied before it
 * would fill again from there): for DELETE /cache and the fleet's channel.
 * Main thread only. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "server/admin.h"
#include "server/internal.h"

typedef struct {
  const char *tenant, *cert; /* by tenant, by certificate name, or (both NULL) all */
  size_t purged;
  uint64_t purges; /* the store's purge count after its part */
} purge_t;

/* key is one label below the wildcard "*.parent" arg names. */
static int under_wildcard(const char *key, size_t len, void *arg) {
  const char *parent = (const char *)arg + 1; /* ".acme.com" */
  size_t pl = strlen(parent);
  if (len <= pl || memcmp(key + len - pl, parent, pl) != 0) return 0;
  return memchr(key, '.', len - pl) == NULL; /* exactly one label before it */
}

static void rpc_purge(cg_worker_t *w, void *arg) {
  purge_t *p = arg;
  if (w->cert_cache && p->cert) {
    /* a wildcard's answers are cached under the names asked for */
    if (strncmp(p->cert, "*.", 2) == 0) p->purged += cg_dcache_purge_if(w->cert_cache, under_wildcard, (void *)p->cert);
    else p->purged += cg_dcache_purge_origin(w->cert_cache, p->cert, strlen(p->cert));
    return;
  }
  if (w->cert_cache && !p->tenant) p->purged += cg_dcache_purge_all(w->cert_cache);
  if (!w->dcache || p->cert) return;
  if (p->tenant) p->purged += cg_dcache_purge_tenant(w->dcache, p->tenant);
  else p->purged += cg_dcache_purge_all(w->dcache);
  w->purges_seen = p->purges;
}

/* Normalizes origin into norm (the cache is keyed by the origin as browsers
 * send it). 0, or -1 when it is not an origin. */
static int normalize_origin(const char *origin, char *norm, size_t cap) {
  cg_origin_t o;
  if (cg_cors_origin_parse(origin, strlen(origin), &o, norm, cap) != 0) return -1;
  norm[o.norm_len] = 0;
  return 0;
}

typedef struct {
  char **origins; /* normalized */
  int n;
  size_t purged;
  uint64_t purges; /* the store's purge count after its part */
} purge_many_t;

static void rpc_purge_many(cg_worker_t *w, void *arg) {
  purge_many_t *p = arg;
  if (!w->dcache) return;
  for (int i = 0; i < p->n; i++) p->purged += cg_dcache_purge_origin(w->dcache, p->origins[i], strlen(p->origins[i]));
  w->purges_seen = p->purges;
}

long cg_admin_purge_origins(const char *const *origins, int n, int *invalid) {
  int n_workers;
  cg_worker_t *workers = cg_admin_workers(&n_workers, NULL);
  purge_many_t p = {.origins = calloc((size_t)(n > 0 ? n : 1), sizeof(char *))};
  *invalid = 0;
  if (!p.origins) return -1;
  char norm[CG_CORS_ORIGIN_MAX + 8];
  for (int i = 0; i < n; i++) {
    if (normalize_origin(origins[i], norm, sizeof norm) != 0) {
      ++*invalid;
      continue;
    }
    if (!(p.origins[p.n] = strdup(norm))) break;
    p.n++;
  }
  /* the shared store first: a worker's cache emptied before it would fill
   * again from there */
  cg_dstore_t *st = n_workers ? workers[0].dstore : NULL;
  for (int i = 0; st && i < p.n; i++) p.purged += cg_dstore_purge_origin(st, p.origins[i], strlen(p.origins[i]));
  p.purges = st ? cg_dstore_purges(st) : 0;
  for (int i = 0; i < n_workers; i++) cg_worker_rpc(&workers[i], rpc_purge_many, &p);
  for (int i = 0; i < p.n; i++) free(p.origins[i]);
  free(p.origins);
  return (long)p.purged;
}

/* One origin is a batch of one. */
long cg_admin_purge(const char *origin, const char *tenant) {
  if (origin) {
    int invalid = 0;
    long n = cg_admin_purge_origins(&origin, 1, &invalid);
    return invalid ? -1 : n;
  }
  int n_workers;
  cg_worker_t *workers = cg_admin_workers(&n_workers, NULL);
  purge_t p = {.tenant = tenant};
  cg_dstore_t *st = n_workers ? workers[0].dstore : NULL; /* the store first, as above */
  if (st) p.purged += tenant ? cg_dstore_purge_tenant(st, tenant) : cg_dstore_purge_all(st);
  p.purges = st ? cg_dstore_purges(st) : 0;
  for (int i = 0; i < n_workers; i++) cg_worker_rpc(&workers[i], rpc_purge, &p);
  return (long)p.purged;
}

long cg_admin_purge_cert(const char *name) {
  int n_workers;
  cg_worker_t *workers = cg_admin_workers(&n_workers, NULL);
  char norm[256];
  size_t n = strlen(name);
  if (n == 0 || n >= sizeof norm) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)name[i];
    if (!(isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '*')) return -1; /* what SNI can carry */
    norm[i] = (char)tolower(ch);
  }
  if (norm[n - 1] == '.') n--;
  norm[n] = 0;
  purge_t p = {.cert = norm};
  for (int i = 0; i < n_workers; i++) cg_worker_rpc(&workers[i], rpc_purge, &p);
  return (long)p.purged;
}

static void rpc_expire(cg_worker_t *w, void *arg) {
  if (w->dcache) *(size_t *)arg += cg_dcache_expire_all(w->dcache, uv_now(&w->loop));
  if (w->cert_cache) *(size_t *)arg += cg_dcache_expire_all(w->cert_cache, uv_now(&w->loop));
}

size_t cg_admin_expire_all(void) {
  int n_workers;
  uv_loop_t *loop;
  cg_worker_t *workers = cg_admin_workers(&n_workers, &loop);
  size_t n = 0;
  if (n_workers && workers[0].dstore) n += cg_dstore_expire_all(workers[0].dstore, uv_now(loop));
  for (int i = 0; i < n_workers; i++) cg_worker_rpc(&workers[i], rpc_expire, &n);
  return n;
}
