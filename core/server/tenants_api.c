/* The admin API's /tenants: the tenant store (plugins/tenant_redis.lua's
 * keys) over HTTP. Every call is one run of the store's script inside Redis
 * (core/redis/tenants.lua, embedded), so a write is validated, checked
 * against the origins' owners, written and published as one atomic step,
 * exactly as scripts/tenants-load does it. This file only maps the routes to
 * the script's operations and carries its answer back.
 *
 * One Redis connection on the main loop, made when the admin listener starts
 * (with sentinels it follows the primary like every other connection). */
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis.h"
#include "server/internal.h"
#include "util/log.h"

extern const char cg_tenants_script[];
extern const size_t cg_tenants_script_len;

enum { STORE_TIMEOUT_MS = 10000 }; /* a load of many origins is one long command */

static struct {
  uv_loop_t *loop;
  cg_redis_t *redis;
  cg_redis_conf_t conf; /* as made (with STORE_TIMEOUT_MS), to compare on reload */
} store;

typedef struct {
  cg_tenants_done done;
  void *arg;
} call_t;

static void conf_for_store(const cg_redis_conf_t *c, cg_redis_conf_t *out) {
  *out = *c;
  if (out->timeout_ms < STORE_TIMEOUT_MS) out->timeout_ms = STORE_TIMEOUT_MS;
}

void cg_tenants_store_update(uv_loop_t *loop, const cg_config_t *cfg) {
  store.loop = loop;
  cg_redis_conf_t want;
  if (cfg && cfg->redis.address) conf_for_store(&cfg->redis, &want);
  if (store.redis && (!cfg || !cfg->redis.address || !cg_redis_matches(store.redis, &want, NULL))) {
    cg_redis_free(store.redis);
    store.redis = NULL;
  }
  if (!store.redis && cfg && cfg->redis.address) {
    store.conf = want;
    store.redis = cg_redis_new_own(loop, &store.conf);
  }
}

/* Redis's cjson writes "/" as "\/": valid JSON, but not what people read.
 * In place; a "\\" (an escaped backslash) is kept whole. */
static size_t unescape_slashes(char *s, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '\\' && i + 1 < len) {
      if (s[i + 1] != '/') s[o++] = s[i];
      s[o++] = s[++i];
    } else {
      s[o++] = s[i];
    }
  }
  return o;
}

static void on_reply(void *arg, const redisReply *r, const char *err) {
  call_t *k = arg;
  if (err) {
    char body[300];
    int n = snprintf(body, sizeof body,
                     "{\"error\":\"the tenant store (Redis) did not answer: %s; a write may or may not have "
                     "landed: read it back, or send it again (a PUT or DELETE is safe to repeat)\"}",
                     err);
    k->done(k->arg, 503, body, (size_t)n);
  } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_INTEGER &&
             r->element[1]->type == REDIS_REPLY_STRING) {
    redisReply *body = r->element[1];
    k->done(k->arg, (int)r->element[0]->integer, body->str, unescape_slashes(body->str, body->len));
  } else {
    /* a Redis error (a script refused, no memory, a read-only replica) */
    char body[600];
    const char *why = r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply";
    cg_log_error("admin /tenants: Redis: %s", why);
    int n = snprintf(body, sizeof body, "{\"error\":\"the tenant store (Redis) refused: ");
    for (const char *p = why; *p && n < (int)sizeof body - 8; p++)
      if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) body[n++] = *p;
    n += snprintf(body + n, sizeof body - (size_t)n, "\"}");
    k->done(k->arg, 502, body, (size_t)n);
  }
  free(k);
}

/* EVAL the store's script: op, then its arguments. */
static void run(const cg_config_t *cfg, const char *op, int argc, const char **args, const size_t *lens,
                cg_tenants_done done, void *arg) {
  static const char no_store[] = "{\"error\":\"no tenant store: the config sets no redis\"}";
  static const char down[] = "{\"error\":\"the tenant store (Redis) is not reachable; nothing written\"}";
  if (!cfg->redis.address) {
    done(arg, 404, no_store, sizeof no_store - 1);
    return;
  }
  const char *prefix = cfg->tenant_prefix ? cfg->tenant_prefix : "corsgate:";
  const char *channel = cfg->redis.channel ? cfg->redis.channel : "";
  const char *argv[12] = {"EVAL", cg_tenants_script, "0", op, prefix, channel};
  size_t argl[12] = {4, cg_tenants_script_len, 1, strlen(op), strlen(prefix), strlen(channel)};
  int n = 6;
  for (int i = 0; i < argc && n < 12; i++, n++) {
    argv[n] = args[i];
    argl[n] = lens ? lens[i] : strlen(args[i]);
  }
  call_t *k = malloc(sizeof *k);
  if (k) *k = (call_t){done, arg};
  if (!k || !store.redis || cg_redis_command(store.redis, n, argv, argl, on_reply, k, NULL) != 0) {
    free(k);
    done(arg, 503, down, sizeof down - 1);
  }
}

int cg_tenants_handle(const cg_config_t *cfg, const cg_tenants_req_t *q, cg_tenants_done done, void *arg) {
  const char *p = q->path;
  if (strncmp(p, "/tenants", 8) != 0 || (p[8] != 0 && p[8] != '/')) return 0;
  const char *name = p[8] == '/' ? p + 9 : NULL;
  static const char no_method[] = "{\"error\":\"method not allowed\"}";
  static const char bad_name[] = "{\"error\":\"a tenant name is 1-63 letters, digits, '.', '_' or '-'\"}";
  if (name && (*name == 0 || strchr(name, '/'))) {
    done(arg, 404, bad_name, sizeof bad_name - 1);
    return 1;
  }
  const char *takeover = q->takeover && (strcmp(q->takeover, "true") == 0 || strcmp(q->takeover, "1") == 0) ? "1" : "0";
  if (!name && q->method == HTTP_GET) {
    if (q->origin) {
      run(cfg, "owner", 1, (const char *[]){q->origin}, NULL, done, arg);
    } else {
      char limit[16];
      char *end = NULL;
      long l = q->limit ? strtol(q->limit, &end, 10) : 100;
      if (q->limit && (end == q->limit || *end)) l = 100; /* not a number: the default */
      snprintf(limit, sizeof limit, "%ld", l < 1 ? 1 : l > 1000 ? 1000 : l);
      run(cfg, "list", 3, (const char *[]){q->after ? q->after : "", limit, q->match ? q->match : ""}, NULL, done,
          arg);
    }
  } else if (name && q->method == HTTP_GET) {
    run(cfg, "get", 1, (const char *[]){name}, NULL, done, arg);
  } else if (name && q->method == HTTP_PUT) {
    /* what the routes that read the store do for a tenant that does not say */
    const char hint[4] = {cfg->tenant_credentials ? '1' : '0', cfg->tenant_insecure_ok ? '1' : '0',
                          cfg->tenant_expose_any ? '1' : '0', 0};
    run(cfg, "put", 4, (const char *[]){name, q->body ? q->body : "", takeover, hint},
        (const size_t[]){strlen(name), q->body_len, 1, 3}, done, arg);
  } else if (name && q->method == HTTP_DELETE) {
    run(cfg, "delete", 1, (const char *[]){name}, NULL, done, arg);
  } else {
    done(arg, 405, no_method, sizeof no_method - 1);
  }
  return 1;
}

void cg_tenants_store_stop(void) {
  if (store.redis) cg_redis_free(store.redis);
  store.redis = NULL;
}
