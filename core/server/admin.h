#ifndef CG_SERVER_ADMIN_H
#define CG_SERVER_ADMIN_H
/* The admin API (config `admin = { listen, token }`) on the main thread's loop. */
#include <uv.h>

#include "config/config.h"

struct cg_worker;

/* Listens when cfg has an admin address; 0, or -1 when it cannot (logged). */
int cg_admin_start(uv_loop_t *loop, const cg_config_t *cfg, struct cg_worker *workers, int n_workers);
/* After a reload: the config and workers to ask from now on. */
void cg_admin_update(const cg_config_t *cfg, struct cg_worker *workers, int n_workers);
/* Drops decisions in every worker of the serving config: by origin (any form
 * of it; -1 when it is not an origin), by tenant label, or all (both NULL).
 * Returns how many. Main thread only; also used by the fleet's channel. */
long cg_admin_purge(const char *origin, const char *tenant);
/* The same for n origins at once: one call into each worker for all of them
 * (a tenant's load publishes thousands). Those that are no origin are
 * skipped and counted in *invalid. */
long cg_admin_purge_origins(const char *const *origins, int n, int *invalid);
/* Drops every listener's cached certificate-hook answer for a server name
 * (any case, a trailing dot or not): how many, or -1 when it is no name. */
long cg_admin_purge_cert(const char *name);
/* Every worker's decisions expire now and serve stale while they refresh. */
size_t cg_admin_expire_all(void);
/* Stops listening (at shutdown), so the main loop can end. */
void cg_admin_stop(void);

#endif
