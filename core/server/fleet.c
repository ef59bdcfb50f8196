/* The fleet's invalidation channel: every corsgate instance subscribes to
 * config redis.channel on its main loop, and a message there purges the
 * matching decisions in every worker (through the admin API's purge, so the
 * workers' caches are only touched by their own threads).
 *
 * A message is one or more lines:
 *   origin https://app.acme.com     every route's decision for that origin
 *   tenant acme                     every decision labelled with that tenant
 *   cert api.acme.com               the certificate hook's answer for that name
 *   all                             everything
 *
 * Messages published while this instance was not listening are lost (Redis
 * pub/sub keeps nothing), so each time the subscription is (re)made every
 * decision expires: it keeps serving stale while one refresh per origin asks
 * Redis again. */
#include "server/fleet.h"

#include <stdlib.h>
#include <string.h>

#include "redis/redis.h"
#include "server/admin.h"
#include "util/log.h"

static cg_redis_t *sub;
static uv_loop_t *sub_loop;

static long apply_line(const char *line, size_t n) {
  char buf[512];
  if (n == 0) return 0;
  if (n >= sizeof buf) {
    cg_log_warn("fleet: invalidation line too long (%zu bytes), ignored", n);
    return 0;
  }
  memcpy(buf, line, n);
  buf[n] = 0;
  long purged;
  if (strcmp(buf, "all") == 0) {
    purged = cg_admin_purge(NULL, NULL);
  } else if (strncmp(buf, "origin ", 7) == 0) {
    purged = cg_admin_purge(buf + 7, NULL);
  } else if (strncmp(buf, "tenant ", 7) == 0 && buf[7]) {
    purged = cg_admin_purge(NULL, buf + 7);
  } else if (strncmp(buf, "cert ", 5) == 0 && buf[5]) {
    purged = cg_admin_purge_cert(buf + 5);
  } else {
    cg_log_warn("fleet: unknown invalidation \"%.80s\" (expected \"origin O\", \"tenant T\", \"cert NAME\" or "
                "\"all\")", buf);
    return 0;
  }
  if (purged < 0) {
    cg_log_warn("fleet: invalidation for \"%.200s\": not an origin", buf + 7);
    return 0;
  }
  cg_redis_count_invalidation((uint64_t)purged);
  cg_log_debug("fleet: invalidated %s: %ld decision(s)", buf, purged);
  return purged;
}

/* "origin O" lines in a row, purged together: one call into each worker
 * for all of them (a tenant's load publishes them by the thousand). */
typedef struct {
  char *copy; /* the lines, NUL-terminated in place */
  const char **origins;
  int n;
} batch_t;

static long flush_origins(batch_t *b) {
  if (!b->n) return 0;
  int invalid = 0;
  long purged = cg_admin_purge_origins(b->origins, b->n, &invalid);
  if (invalid) cg_log_warn("fleet: %d invalidation(s) for what is not an origin, ignored", invalid);
  b->n = 0;
  if (purged < 0) return 0;
  cg_redis_count_invalidation((uint64_t)purged);
  return purged;
}

long cg_fleet_apply(const char *payload, size_t len) {
  long lines = 0, purged = 0;
  batch_t b = {.copy = malloc(len + 1), .origins = malloc((len / 8 + 1) * sizeof(char *))};
  if (b.copy) memcpy(b.copy, payload, len);
  const char *p = payload, *end = payload + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop = nl ? nl : end;
    size_t n = (size_t)(stop - p);
    if (n && p[n - 1] == '\r') n--;
    if (b.copy && b.origins && n > 7 && strncmp(p, "origin ", 7) == 0) {
      char *o = b.copy + (p - payload);
      o[n] = 0;
      b.origins[b.n++] = o + 7;
    } else {
      purged += flush_origins(&b);
      purged += apply_line(p, n);
    }
    lines++;
    p = stop + 1;
  }
  purged += flush_origins(&b);
  free(b.copy);
  free(b.origins);
  cg_log_info("fleet: invalidation (%ld line(s)%s%.*s): %ld decision(s) dropped", lines, lines == 1 ? ": " : "",
              lines == 1 ? (int)(len < 200 ? len : 200) : 0, payload, purged);
  return purged;
}

static void on_message(void *arg, const char *payload, size_t len) {
  (void)arg;
  cg_fleet_apply(payload, len);
}

static void on_state(void *arg, int up) {
  (void)arg;
  if (!up) return;
  size_t n = cg_admin_expire_all();
  if (n) cg_log_info("fleet: subscribed again; %zu decision(s) expire and refresh (invalidations may have been missed)", n);
}

void cg_fleet_start(uv_loop_t *loop, const cg_config_t *cfg) {
  sub_loop = loop;
  cg_fleet_update(cfg);
}

void cg_fleet_update(const cg_config_t *cfg) {
  const cg_redis_conf_t *c = &cfg->redis;
  int want = c->address && c->channel;
  if (sub && want && cg_redis_matches(sub, c, c->channel)) return;
  cg_fleet_stop();
  if (want) sub = cg_redis_new(sub_loop, c, c->channel, on_message, on_state, NULL);
}

void cg_fleet_stop(void) {
  cg_redis_free(sub);
  sub = NULL;
}

int cg_fleet_state(void) { return sub ? cg_redis_up(sub) : -1; }

int cg_fleet_redis_ok(void) {
  cg_redis_stats_t rs;
  cg_redis_stats(&rs);
  return cg_fleet_state() != 0 && !(rs.connections > 0 && rs.connections_up == 0);
}
