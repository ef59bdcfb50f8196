#ifndef CG_FUZZ_MAIN_H
#define CG_FUZZ_MAIN_H
/* For the fuzz targets of what runs on the main thread (fuzz_admin,
 * fuzz_fleet): the gateway as cg_server_run sets it up, but for the signals
 * and the reloads. The workers run their loops on threads of their own, since
 * the admin API calls into them with cg_worker_rpc and waits for the answer;
 * the main loop is the harness's, run from its own thread. The workers only
 * answer those calls: no client connects to them, so what they do stays the
 * same from one input to the next. */
#include <uv.h>

#include "server/admin.h"
#include "server/internal.h"

enum { FUZZ_WORKERS = 2 };

static uv_loop_t fuzz_main_loop;
static cg_worker_t fuzz_workers[FUZZ_WORKERS];

static void fuzz_worker_main(void *arg) {
  cg_worker_t *w = arg;
  uv_run(&w->loop, UV_RUN_DEFAULT); /* until the process ends: nothing stops it */
}

/* Starts cfg's workers (its first listener on any free port; the config
 * sets FUZZ_WORKERS of them) sharing one decision store, then the admin API
 * (listening when cfg has admin.listen) on fuzz_main_loop. */
static inline void fuzz_main_start(cg_config_t *cfg) {
  if (cfg->workers != FUZZ_WORKERS) abort();
  ((struct sockaddr_in *)&cfg->listeners[0].addr)->sin_port = 0;
  uv_loop_init(&fuzz_main_loop);
  cg_dstore_t *store = cg_dstore_new(cfg->cache.max_entries, cfg->cache.stale_limit_ms);
  if (!store) abort();
  for (int i = 0; i < FUZZ_WORKERS; i++) {
    fuzz_workers[i].dstore = store;
    if (cg_worker_init(&fuzz_workers[i], i, cfg) != 0) abort();
  }
  if (cg_admin_start(&fuzz_main_loop, cfg, fuzz_workers, FUZZ_WORKERS) != 0) abort();
  for (int i = 0; i < FUZZ_WORKERS; i++)
    if (uv_thread_create(&fuzz_workers[i].thread, fuzz_worker_main, &fuzz_workers[i]) != 0) abort();
}

#endif
