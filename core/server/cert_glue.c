/* Certificates from a TLS listener's Lua hook (tls.plugin): a handshake
 * for a name no certificate file covers pauses at its ClientHello while the
 * worker's certificate cache answers, or while the hook runs, once per name
 * however many handshakes wait on it (single flight). Answers are kept per
 * (listener, name) for their TTL and served stale while one refresh runs;
 * a hook that fails (error, budget, a certificate that does not check out)
 * fails the handshakes waiting on it: nothing is served that was not
 * vouched for. */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "lua/host.h"
#include "server/internal.h"
#include "util/log.h"

typedef struct cert_run {
  cg_worker_t *w;
  uint64_t t0; /* uv_hrtime() at the start, for the hook duration histogram */
  cg_dcache_entry_t *entry;
  const cg_listener_conf_t *l;
  char name[256];
} cert_run_t;

/* wipes and frees a private key's text */
static void free_secret(char *s, size_t n) {
  if (!s) return;
  OPENSSL_cleanse(s, n);
  free(s);
}

/* Refused certificates are logged at most LOG_PER_MINUTE times a minute per
 * worker: a client inventing names under a broken wildcard gets each one
 * refused, and would otherwise write a line per handshake. */
enum { LOG_PER_MINUTE = 100 };

static int log_allowed(cg_worker_t *w) {
  static __thread uint64_t minute, lines;
  uint64_t now = uv_now(&w->loop) / 60000;
  if (now != minute) {
    if (lines > LOG_PER_MINUTE)
      cg_log_warn("certificate hooks: %llu more refused certificates were not logged",
                  (unsigned long long)(lines - LOG_PER_MINUTE));
    minute = now;
    lines = 0;
  }
  return ++lines <= LOG_PER_MINUTE;
}

/* A hook ended: its certificate (checked), none, or a failure goes to the
 * cache, which wakes every handshake waiting on the name. */
static void on_cert(void *arg, cg_lua_cert_result_t *res) {
  cert_run_t *rf = arg;
  cg_worker_t *w = rf->w;
  cg_tls_cert_t *cert = NULL;
  int failed = res->failed;
  if (w->cert_cache) {
    if (!failed && res->cert) {
      char err[256];
      cert = cg_tls_cert_from_pem(res->cert, res->cert_len, res->key, res->key_len, rf->name, err, sizeof err);
      if (!cert) {
        if (log_allowed(w))
          cg_log_warn("plugin %s (listener %s): the certificate for %s is refused, the handshake fails: %s",
                      rf->l->cert_plugin, rf->l->address, rf->name, err);
        failed = 1;
      }
    }
    cg_metrics_hook(&w->metrics, (uv_hrtime() - rf->t0) / 1000, failed, strcmp(res->error, "timed out") == 0);
  }
  free(res->cert);
  free_secret(res->key, res->key_len);
  if (!w->cert_cache) { /* the worker is stopping */
    free(rf);
    return;
  }
  uint64_t now = uv_now(&w->loop);
  if (failed) {
    cg_dcache_fail(w->cert_cache, rf->entry, CG_CERT_FAIL_TTL_MS, now);
  } else {
    uint64_t ttl = res->ttl >= 0 ? (uint64_t)(res->ttl * 1000) : cert ? CG_CERT_TTL_MS : CG_CERT_NONE_TTL_MS;
    /* never served (fresh) past its certificates' end */
    if (cert && ttl / 1000 > (uint64_t)cg_tls_cert_seconds_left(cert)) ttl = (uint64_t)cg_tls_cert_seconds_left(cert) * 1000;
    cg_dcache_set_value(w->cert_cache, rf->entry, 1, cert, NULL, ttl, now);
  }
  free(rf);
}

static void start_hook(cg_conn_t *c, cg_dcache_entry_t *e, const char *name) {
  cg_worker_t *w = c->w;
  cert_run_t *rf = malloc(sizeof *rf);
  if (!rf) {
    cg_dcache_fail(w->cert_cache, e, CG_CERT_FAIL_TTL_MS, uv_now(&w->loop));
    return;
  }
  rf->w = w;
  rf->t0 = uv_hrtime();
  rf->entry = e;
  rf->l = &w->cfg->listeners[c->listener];
  snprintf(rf->name, sizeof rf->name, "%s", name);
  cg_lua_cert_run(w->lua, rf->l, rf->name, on_cert, rf);
}

/* The entry's answer, to the paused handshake: a certificate, none (the
 * listener's first; a failure on a listener without one), or a failure. */
static void give(cg_conn_t *c, const cg_dcache_entry_t *e) {
  const cg_tls_cert_t *cert = cg_dcache_entry_value(e);
  int none_here = !cert && c->w->cfg->listeners[c->listener].tls.n_certs == 0;
  int expired = cert && cg_tls_cert_seconds_left(cert) == 0; /* an old answer served stale */
  cg_tls_give_cert(c->tls, cert, !cg_dcache_entry_allow(e) || none_here || expired);
}

static void on_waiter(cg_dcache_waiter_t *wt, const cg_dcache_entry_t *e) {
  cg_conn_t *c = container_of(wt, cg_conn_t, cert_waiter);
  c->cert_waiting = 0;
  give(c, e);
  if (c->cert_in_lookup) return; /* answered while starting: the handshake goes on there */
  cg_conn_update_reading(c);
  cg_conn_tls_resume(c);
}

int cg_cert_lookup(cg_conn_t *c) {
  cg_worker_t *w = c->w;
  if (c->cert_waiting) return 0;
  if (!w->cert_cache || !w->lua) {
    cg_tls_give_cert(c->tls, NULL, 1);
    return 1;
  }
  const char *name = cg_tls_wanted_name(c->tls);
  cg_dcache_entry_t *e = NULL;
  int rc = cg_dcache_get(w->cert_cache, (uint32_t)c->listener, name, strlen(name), uv_now(&w->loop), &e);
  if (!e) { /* out of memory */
    cg_tls_give_cert(c->tls, NULL, 1);
    return 1;
  }
  switch (rc) {
  case CG_DC_FRESH:
  case CG_DC_STALE:
    give(c, e);
    return 1;
  case CG_DC_STALE_REFRESH:
    /* (only allowed answers are served stale: the cache's rule) a hook that
     * never waits replaces the value before start_hook returns: the answer
     * is taken after it */
    start_hook(c, e, name);
    give(c, e);
    return 1;
  default:
    c->cert_waiter.cb = on_waiter;
    c->cert_waiting = 1;
    c->cert_in_lookup = 1;
    cg_dcache_wait(e, &c->cert_waiter);
    if (rc == CG_DC_MISS_RUN) start_hook(c, e, name);
    c->cert_in_lookup = 0;
    if (!c->cert_waiting) return 1;
    cg_conn_update_reading(c); /* nothing more is read (or kept) until the answer */
    return 0;
  }
}

void cg_cert_cancel(cg_conn_t *c) {
  if (!c->cert_waiting) return;
  cg_dcache_cancel(&c->cert_waiter);
  c->cert_waiting = 0;
}

static void free_cert(void *v) { cg_tls_cert_free(v); }
static size_t size_cert(const void *v) { return cg_tls_cert_size(v); }

cg_dcache_t *cg_cert_cache_new(const cg_config_t *cfg) {
  return cg_dcache_new_values(cfg->cache.front_entries, cfg->cache.stale_limit_ms, free_cert, size_cert);
}
