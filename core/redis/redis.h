#ifndef CG_REDIS_REDIS_H
#define CG_REDIS_REDIS_H
/* One Redis connection on a libuv loop (hiredis and its libuv adapter) that
 * keeps itself up: it connects, authenticates and selects its db, and when
 * the connection is lost it reconnects with a growing, jittered backoff
 * (100 ms doubling to 5 s) for as long as it lives.
 *
 * Commands pipeline on the connection and answer in order, so one timer is
 * enough for all of them: it watches the oldest. A command that outlives
 * timeout_ms means the server stopped answering; the connection is dropped
 * (every command waiting on it fails) and built again.
 *
 * With sentinels (redis.sentinels, master_name), each connect first asks a
 * sentinel (in turn, the next after a failure) where the primary is, checks
 * with ROLE that it is one, and a READONLY reply sends it looking again; a
 * subscriber also watches +switch-master and moves at once.
 *
 * Single-threaded: a cg_redis_t belongs to the loop that made it. The
 * process-wide counters (cg_redis_stats) are atomics, read by /metrics. */
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"

typedef struct cg_redis cg_redis_t;

/* reply is valid during the call only; err is NULL on success (a Redis error
 * reply is a success here: the caller reads it). */
typedef void (*cg_redis_cb)(void *arg, const redisReply *reply, const char *err);
/* For a subscriber connection: each ["message", channel, payload]. */
typedef void (*cg_redis_msg_cb)(void *arg, const char *payload, size_t len);
/* The connection became ready (up = 1) or was lost (up = 0). */
typedef void (*cg_redis_state_cb)(void *arg, int up);

/* Starts connecting at once. channel non-NULL makes a subscriber: after every
 * (re)connect it subscribes and hands messages to on_msg. */
cg_redis_t *cg_redis_new(uv_loop_t *loop, const cg_redis_conf_t *conf, const char *channel, cg_redis_msg_cb on_msg,
                         cg_redis_state_cb on_state, void *arg);
/* A command connection outside the workers' pools (the admin API's): left
 * out of cg_redis_stats' connection gauges, which /healthz reads. */
cg_redis_t *cg_redis_new_own(uv_loop_t *loop, const cg_redis_conf_t *conf);
/* Commands still waiting fail with "closed"; the handles close on the loop
 * (run it once more). */
void cg_redis_free(cg_redis_t *r);
int cg_redis_up(const cg_redis_t *r);
/* 1 when r was made from these settings (a reload keeps it then). */
int cg_redis_matches(const cg_redis_t *r, const cg_redis_conf_t *conf, const char *channel);
/* Connecting (its first commands may already queue). */
int cg_redis_connecting(const cg_redis_t *r);

/* Sends a command. Returns 0 and cb runs exactly once, later (never from
 * inside this call); or -1 when the connection is not up, and cb never runs. */
int cg_redis_command(cg_redis_t *r, int argc, const char **argv, const size_t *lens, cg_redis_cb cb, void *arg,
                     void **handle);
/* The caller no longer wants the answer to the command behind handle (its
 * hook died): cb will not run. */
void cg_redis_forget(void *handle);

typedef struct cg_redis_stats {
  uint64_t connections, connections_up; /* command connections (every worker's pool) */
  uint64_t commands, errors, timeouts, reconnects;
  uint64_t subscribers, subscribers_up, invalidations, invalidated;
  uint64_t failovers; /* with sentinels: times they named a new primary */
} cg_redis_stats_t;
void cg_redis_stats(cg_redis_stats_t *out);
/* An invalidation message was applied and dropped n cache entries. */
void cg_redis_count_invalidation(uint64_t n);
/* With sentinels: the primary they named last ("ip:port"), or "". */
void cg_redis_primary(char *out, size_t n);

#endif
