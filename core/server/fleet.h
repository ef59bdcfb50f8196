#ifndef CG_SERVER_FLEET_H
#define CG_SERVER_FLEET_H
/* The fleet's cache invalidation channel (config redis.channel), listened to
 * on the main thread's loop; see fleet.c for the message format. */
#include <uv.h>

#include "config/config.h"

/* Subscribes when cfg has redis and a channel (after cg_admin_start). */
void cg_fleet_start(uv_loop_t *loop, const cg_config_t *cfg);
/* After a reload: subscribes anew only when the Redis settings changed. */
void cg_fleet_update(const cg_config_t *cfg);
/* At shutdown, so the main loop can end. */
void cg_fleet_stop(void);
/* Applies one message of the channel (payload: its lines, not
 * NUL-terminated) as if it had arrived: how many decisions it dropped. Main
 * thread only, after cg_admin_start (for fuzz_fleet; the subscriber calls it). */
long cg_fleet_apply(const char *payload, size_t len);
/* -1: not listening (no redis or channel); 0: down; 1: subscribed. */
int cg_fleet_state(void);
/* Redis answers: the channel (if any) is subscribed and, when gw.redis
 * connections exist, one of them is up. What /healthz and corsgate_redis_up say. */
int cg_fleet_redis_ok(void);

#endif
