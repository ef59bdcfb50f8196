/* libFuzzer target: the fleet's invalidation messages (server/fleet.c). The
 * input is the payload of one message on the Redis channel, applied as the
 * subscriber applies it (cg_fleet_apply): split into lines, runs of "origin
 * O" lines purged as one batch, "tenant T", "cert NAME" and "all" each on
 * their own, through the admin API's purges into the shared store and two
 * workers running on threads of their own (fuzz_main.h).
 *
 * Before each input the caches hold the same few decisions (filled on the
 * workers' own threads, as their hooks would). Invariants:
 * - it never crashes (ASan, UBSan);
 * - the count it returns is the number of decisions that left the store and
 *   the workers' caches;
 * - a decision a line names exactly (its origin as the cache keys it, its
 *   tenant, or "all") is gone from every worker's cache. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/fleet.h"
#include "util/log.h"
#include "fuzz_gateway.h"
#include "fuzz_main.h"
#include "fuzz_origins.h"

static const char config_src[] =
    "return {\n"
    "  listen = '127.0.0.1:1', workers = 2, log_level = 'error', access_log = false,\n"
    "  plugin_paths = { fuzz_dir },\n"
    "  routes = {\n"
    "    { name = 'plugin', prefix = '/plugin', upstream = 'echo', cors = { plugin = 'fz' } },\n"
    "    { name = 'other', prefix = '/', upstream = 'echo', cors = { plugin = 'fz' } },\n"
    "  },\n"
    "}\n";

/* What the caches hold before each input: normalized origins (as the
 * caches key them) on both routes, with and without a tenant. */
static const struct {
  const char *origin, *tenant;
} held[] = {
    {"https://a.plugin.example", "acme"},
    {"https://b.plugin.example", "acme"},
    {"https://c.plugin.example", "beta"},
    {"http://localhost:3000", NULL},
    {"https://app.example:8443", "beta"},
};
enum { N_HELD = sizeof held / sizeof held[0], TTL_MS = 3600000 };

static const cg_config_t *cfg;
static uint32_t routes[2];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  cg_config_t *c = fuzz_config("fuzz_fleet", plugin_src, "%s", config_src);
  cg_log_set_level(CG_LOG_ERROR);
  fuzz_main_start(c);
  cfg = c;
  for (int i = 0; i < 2; i++) routes[i] = (uint32_t)cfg->routes[i].index;
  return 0;
}

/* On a worker's thread: its cache holds every decision of held[] again. */
static void rpc_fill(cg_worker_t *w, void *arg) {
  (void)arg;
  uint64_t now = uv_now(&w->loop);
  for (int r = 0; r < 2; r++)
    for (int i = 0; i < N_HELD; i++) {
      cg_dcache_entry_t *e;
      int st = cg_dcache_get(w->dcache, routes[r], held[i].origin, strlen(held[i].origin), now, &e);
      if (e && (st == CG_DC_MISS_RUN || st == CG_DC_STALE_REFRESH))
        cg_dcache_set(w->dcache, e, 1, NULL, held[i].tenant, TTL_MS, now);
    }
}

/* The same in the store the workers share (from the main thread, as a
 * worker's hook would from its own). */
static void fill_store(void) {
  cg_dstore_t *s = fuzz_workers[0].dstore;
  uint64_t now = uv_now(&fuzz_main_loop);
  for (int r = 0; r < 2; r++)
    for (int i = 0; i < N_HELD; i++) {
      cg_dstore_answer_t ans;
      cg_dstore_run_t run;
      int st = cg_dstore_acquire(s, routes[r], held[i].origin, strlen(held[i].origin), now, NULL, &ans, NULL, &run);
      if (st == CG_DS_RUN || st == CG_DS_RUN_STALE) cg_dstore_set(s, &run, 1, NULL, held[i].tenant, TTL_MS, now);
      CHECK(st != CG_DS_HAVE || !ans.ov, "the store answered with an override nobody set");
    }
}

typedef struct {
  uint64_t entries;
  int present[2][N_HELD];
} count_t;

static void rpc_count(cg_worker_t *w, void *arg) {
  count_t *c = arg;
  cg_dcache_stats_t st;
  cg_dcache_stats(w->dcache, &st);
  c->entries = st.entries;
  for (int r = 0; r < 2; r++)
    for (int i = 0; i < N_HELD; i++) {
      cg_dcache_info_t info;
      cg_dcache_peek(w->dcache, routes[r], held[i].origin, strlen(held[i].origin), uv_now(&w->loop), &info);
      c->present[r][i] = info.present;
    }
}

/* Entries in the store and every worker's cache; counts[] per worker. */
static uint64_t count_all(count_t *counts) {
  cg_dcache_stats_t st;
  cg_dstore_stats(fuzz_workers[0].dstore, &st);
  uint64_t n = st.entries;
  for (int i = 0; i < FUZZ_WORKERS; i++) {
    memset(&counts[i], 0, sizeof counts[i]);
    CHECK(cg_worker_rpc(&fuzz_workers[i], rpc_count, &counts[i]) == 0, "worker %d does not answer", i);
    n += counts[i].entries;
  }
  return n;
}

/* A line of the message names held[i] exactly: "all", its origin, its tenant. */
static int named(const uint8_t *data, size_t size, int i) {
  const char *p = (const char *)data, *end = p + size;
  while (p <= end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = (size_t)((nl ? nl : end) - p);
    if (n && p[n - 1] == '\r') n--;
    size_t ol = strlen(held[i].origin), tl = held[i].tenant ? strlen(held[i].tenant) : 0;
    if ((n == 3 && memcmp(p, "all", 3) == 0) ||
        (n == 7 + ol && memcmp(p, "origin ", 7) == 0 && memcmp(p + 7, held[i].origin, ol) == 0) ||
        (tl && n == 7 + tl && memcmp(p, "tenant ", 7) == 0 && memcmp(p + 7, held[i].tenant, tl) == 0))
      return 1;
    if (!nl) break;
    p = nl + 1;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fill_store();
  for (int i = 0; i < FUZZ_WORKERS; i++) cg_worker_rpc(&fuzz_workers[i], rpc_fill, NULL);
  count_t counts[FUZZ_WORKERS];
  uint64_t before = count_all(counts);
  CHECK(before == (uint64_t)(FUZZ_WORKERS + 1) * 2 * N_HELD, "%llu decisions held before the message",
        (unsigned long long)before);
  long purged = cg_fleet_apply((const char *)data, size);
  uint64_t after = count_all(counts);
  CHECK(purged >= 0 && (uint64_t)purged == before - after, "%ld decision(s) purged, the caches went from %llu to %llu",
        purged, (unsigned long long)before, (unsigned long long)after);
  for (int w = 0; w < FUZZ_WORKERS; w++)
    for (int r = 0; r < 2; r++)
      for (int i = 0; i < N_HELD; i++)
        CHECK(!counts[w].present[r][i] || !named(data, size, i), "worker %d still holds %s (route %u) after:\n%.*s", w,
              held[i].origin, routes[r], (int)(size < 400 ? size : 400), (const char *)data);
  return 0;
}
