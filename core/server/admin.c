/* The admin API, on its own address and on the main thread's loop (the
 * workers' loops never see it): health, metrics, the decision caches,
 * explain. Workers are asked through cg_worker_rpc, so their state is only
 * ever touched by their own thread. One request per connection: it is an
 * operator's tool, not a hot path. */
#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/admin.h"
#include "redis/redis.h"
#include "server/fleet.h"
#include "server/internal.h"
#include "server/server.h"
#include "util/log.h"
#include "util/query.h"

enum { MAX_URL = 4096, MAX_AUTH = 512, MAX_BODY = 1 << 20 }; /* a body: PUT /tenants/{name} */

typedef struct admin_conn {
  uv_tcp_t tcp;
  llhttp_t parser;
  char url[MAX_URL];
  size_t url_len;
  char auth[MAX_AUTH];
  size_t auth_len;
  char hname[32];
  size_t hname_len;
  char host[64]; /* the Host header, as far as it fits */
  size_t host_len;
  int host_seen;
  char origin[80]; /* the Origin header, as far as it fits (only the length past it) */
  size_t origin_len;
  char *body; /* malloc'd as it arrives, up to MAX_BODY */
  size_t body_len;
  int in_value; /* inside a header's value: its next piece (a read later) goes on with it */
  int auth_twice; /* a second Authorization: no token matches */
  int too_long, done;
  int head; /* a HEAD request, its head read whole */
  /* answered before its body was read: the rest is read and dropped for a
   * while before the close, so the client reads the answer rather than a reset */
  int linger;
  uint64_t lingered;
  /* the request's deadline (timeouts.head, then timeouts.body), then the linger's */
  uv_timer_t timer;
  cg_list_t link; /* in admin.conns */
  struct admin *a;
} admin_conn_t;

typedef struct admin {
  uv_loop_t *loop;
  uv_tcp_t listener;
  const cg_config_t *cfg;
  cg_worker_t *workers;
  int n_workers;
  int open;
  cg_list_t conns; /* open now */
  int n_conns;     /* at most ADMIN_CONNS */
  uint64_t started;
} admin_t;

static admin_t admin;
static llhttp_settings_t settings;

/* --- responses ------------------------------------------------------------- */

static void on_closed(uv_handle_t *h) {
  admin_conn_t *c = h->data;
  admin.n_conns--;
  cg_list_remove(&c->link);
  free(c->body);
  free(c);
}

typedef struct {
  uv_write_t req;
  admin_conn_t *c;
  char *data;
} out_t;

/* Connections open at once: past it, the oldest one still sending its
 * request makes room (or the new one goes, when all are being answered),
 * so clients that never finish a request can neither take the process's
 * descriptors from the workers nor keep a health check out. */
enum { LINGER_MS = 2000, LINGER_BYTES = 4 << 20, ADMIN_CONNS = 64 };

static void on_timer_closed(uv_handle_t *h) {
  admin_conn_t *c = h->data;
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* Closes c: its timer, then its socket, then c is freed. */
static void conn_close(admin_conn_t *c) {
  if (uv_is_closing((uv_handle_t *)&c->timer)) return;
  uv_read_stop((uv_stream_t *)&c->tcp);
  uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void on_linger_timeout(uv_timer_t *t) { conn_close(t->data); }

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_deadline(uv_timer_t *t);

static void on_linger_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  admin_conn_t *c = s->data;
  (void)buf;
  if (n < 0 || (c->lingered += (uint64_t)n) > LINGER_BYTES) conn_close(c);
}

static void on_written(uv_write_t *wr, int status) {
  out_t *o = container_of(wr, out_t, req);
  admin_conn_t *c = o->c;
  free(o->data);
  free(o);
  if (c->linger && status == 0) {
    uv_timer_start(&c->timer, on_linger_timeout, LINGER_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_linger_read) == 0) return;
  }
  conn_close(c);
}

static void on_send_timeout(uv_timer_t *t) { conn_close(t->data); }

static void reply(admin_conn_t *c, int status, const char *type, const char *body, size_t len) {
  c->done = 1;
  /* a client that does not read its answer gives its place up after timeouts.send */
  uv_timer_start(&c->timer, on_send_timeout, c->a->cfg->timeouts.send, 0);
  uv_read_stop((uv_stream_t *)&c->tcp);
  out_t *o = malloc(sizeof *o);
  char head[768];
  /* the console's page: its own script and style only, no frames, no other origins */
  const char *page = strncmp(type, "text/html", 9) == 0
                         ? "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "
                           "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'\r\nX-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"
                         : "";
  int hl = snprintf(head, sizeof head,
                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                    "X-Content-Type-Options: nosniff\r\n%sConnection: close\r\n\r\n",
                    status, cg_status_reason(status), type, len, page);
  char *data = o ? malloc((size_t)hl + len) : NULL;
  if (!o || !data) {
    free(o);
    conn_close(c);
    return;
  }
  /* HEAD's answer: the length the body would have, and no body */
  if (c->head) len = 0;
  memcpy(data, head, (size_t)hl);
  if (len) memcpy(data + hl, body, len);
  o->c = c;
  o->data = data;
  uv_buf_t buf = uv_buf_init(data, (unsigned)((size_t)hl + len));
  if (uv_write(&o->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0) {
    free(data);
    free(o);
    conn_close(c);
  }
}

static void reply_json(admin_conn_t *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply_json(admin_conn_t *c, int status, const char *fmt, ...) {
  char body[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(body, sizeof body, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof body) n = (int)sizeof body - 1;
  reply(c, status, "application/json", body, (size_t)n);
}

/* --- worker calls -------------------------------------------------------------- */

typedef struct {
  cg_metrics_t m;
  cg_dcache_stats_t cache, certs;
  int ok;
} snapshot_t;

static void rpc_snapshot(cg_worker_t *w, void *arg) {
  snapshot_t *s = arg;
  s->ok = cg_metrics_copy(&s->m, &w->metrics) == 0;
  if (w->dcache) cg_dcache_stats(w->dcache, &s->cache);
  if (w->cert_cache) cg_dcache_stats(w->cert_cache, &s->certs);
}

typedef struct {
  uint32_t route;
  const char *origin;
  cg_dcache_info_t info;
} peek_t;

static void rpc_peek(cg_worker_t *w, void *arg) {
  peek_t *p = arg;
  if (w->dcache) cg_dcache_peek(w->dcache, p->route, p->origin, strlen(p->origin), uv_now(&w->loop), &p->info);
}

/* --- endpoints ------------------------------------------------------------------- */

/* The store the workers share, as /metrics and /cache count it: a hit is a
 * worker's miss it answered (fresh or stale), a miss a hook run it asked for. */
static void shared_stats(const admin_t *a, cg_metrics_extra_t *x) {
  if (!a->n_workers || !a->workers[0].dstore) return;
  cg_dcache_stats_t st;
  cg_dstore_stats(a->workers[0].dstore, &st);
  x->shared = 1;
  x->shared_entries = st.entries;
  x->shared_bytes = st.bytes;
  x->shared_hits = st.hits + st.stale;
  x->shared_misses = st.misses + st.refreshes;
  x->shared_evictions = st.evictions;
}

static void get_metrics(admin_conn_t *c) {
  admin_t *a = c->a;
  cg_metrics_t sum;
  cg_metrics_extra_t x = {.workers = (uint64_t)a->n_workers};
  if (cg_metrics_init(&sum, a->cfg->n_routes) != 0) {
    reply_json(c, 500, "{\"error\":\"out of memory\"}");
    return;
  }
  for (int i = 0; i < a->n_workers; i++) {
    snapshot_t s;
    memset(&s, 0, sizeof s);
    if (cg_worker_rpc(&a->workers[i], rpc_snapshot, &s) != 0 || !s.ok) continue;
    cg_metrics_add(&sum, &s.m);
    cg_metrics_free(&s.m);
    x.cache_entries += s.cache.entries;
    x.cache_hits += s.cache.hits;
    x.cache_misses += s.cache.misses;
    x.cache_stale += s.cache.stale;
    x.cache_evictions += s.cache.evictions;
    x.cache_bytes += s.cache.bytes;
  }
  shared_stats(a, &x);
  size_t len = 0;
  char *text = cg_metrics_render(&sum, a->cfg, &x, &len);
  cg_metrics_free(&sum);
  if (!text) {
    reply_json(c, 500, "{\"error\":\"out of memory\"}");
    return;
  }
  reply(c, 200, "text/plain; version=0.0.4", text, len);
  free(text);
}

static void get_cache(admin_conn_t *c) {
  admin_t *a = c->a;
  cg_dcache_stats_t t = {0};
  uint64_t certs = 0;
  for (int i = 0; i < a->n_workers; i++) {
    snapshot_t s;
    memset(&s, 0, sizeof s);
    if (cg_worker_rpc(&a->workers[i], rpc_snapshot, &s) != 0) continue;
    if (s.ok) cg_metrics_free(&s.m);
    t.entries += s.cache.entries;
    t.hits += s.cache.hits;
    t.misses += s.cache.misses;
    t.stale += s.cache.stale;
    t.refreshes += s.cache.refreshes;
    t.failures += s.cache.failures;
    t.evictions += s.cache.evictions;
    t.expired += s.cache.expired;
    t.bytes += s.cache.bytes;
    certs += s.certs.entries;
  }
  cg_metrics_extra_t x = {0};
  shared_stats(a, &x);
  reply_json(c, 200,
             "{\"certificates\":%llu,\"entries\":%llu,\"hits\":%llu,\"misses\":%llu,\"stale\":%llu,\"refreshes\":%llu,\"failures\":%llu,"
             "\"evictions\":%llu,\"expired\":%llu,\"bytes\":%llu,\"front_entries_per_worker\":%zu,\"workers\":%d,"
             "\"shared\":{\"entries\":%llu,\"bytes\":%llu,\"hits\":%llu,\"misses\":%llu,\"evictions\":%llu,"
             "\"max_entries\":%zu}}",
             (unsigned long long)certs, (unsigned long long)t.entries, (unsigned long long)t.hits, (unsigned long long)t.misses,
             (unsigned long long)t.stale, (unsigned long long)t.refreshes, (unsigned long long)t.failures,
             (unsigned long long)t.evictions, (unsigned long long)t.expired, (unsigned long long)t.bytes,
             a->cfg->cache.front_entries, a->n_workers, (unsigned long long)x.shared_entries,
             (unsigned long long)x.shared_bytes, (unsigned long long)x.shared_hits, (unsigned long long)x.shared_misses,
             (unsigned long long)x.shared_evictions, a->cfg->cache.max_entries);
}

static void delete_cache(admin_conn_t *c, const cg_query_t *q) {
  const char *origin = cg_query_get(q, "origin"), *tenant = cg_query_get(q, "tenant");
  const char *name = cg_query_get(q, "server_name");
  if (name) {
    long n = cg_admin_purge_cert(name);
    if (n < 0) {
      reply_json(c, 400, "{\"error\":\"server_name: not a host name\"}");
      return;
    }
    cg_log_info("admin: certificate cache purged (%s): %ld entries", name, n);
    reply_json(c, 200, "{\"purged\":%ld}", n);
    return;
  }
  long purged = cg_admin_purge(origin, origin ? NULL : tenant);
  if (purged < 0) {
    reply_json(c, 400, "{\"error\":\"origin: not a valid origin\"}");
    return;
  }
  cg_log_info("admin: cache purged (%s%s): %ld entries", origin ? "origin " : tenant ? "tenant " : "all",
              origin ? origin : tenant ? tenant : "", purged);
  reply_json(c, 200, "{\"purged\":%ld}", purged);
}

/* Reloads the config file; the problems of a refused one, as a JSON list. */
static void post_reload(admin_conn_t *c) {
  char *errors = NULL;
  if (cg_server_reload(&errors) == 0) {
    reply_json(c, 200, "{\"status\":\"reloaded\",\"routes\":%d,\"workers\":%d}", admin.cfg->n_routes,
               admin.n_workers);
    return;
  }
  size_t n = errors ? strlen(errors) : 0;
  char *body = malloc(n * 6 + 128), *o = body;
  if (!body) {
    free(errors);
    reply_json(c, 500, "{\"error\":\"out of memory\"}");
    return;
  }
  o += sprintf(o, "{\"error\":\"the new config was refused; the old one keeps serving\",\"problems\":[\"");
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)errors[i];
    if (ch == '\n') o += sprintf(o, i + 1 < n ? "\",\"" : "");
    else if (ch == '"' || ch == '\\') o += sprintf(o, "\\%c", ch);
    else if (ch < 0x20) o += sprintf(o, "\\u%04x", ch);
    else *o++ = (char)ch;
  }
  o += sprintf(o, "\"]}");
  free(errors);
  reply(c, 400, "application/json", body, (size_t)(o - body));
  free(body);
}

static void get_explain(admin_conn_t *c, const cg_query_t *q) {
  admin_t *a = c->a;
  cg_explain_req_t er = {.origin = cg_query_get(q, "origin"), .method = cg_query_get(q, "method"),
                         .path = cg_query_get(q, "path"), .host = cg_query_get(q, "host"), .json = 1};
  const char *headers[32];
  er.headers = headers;
  for (int i = 0; i < q->n && er.n_headers < 32; i++)
    if (strcmp(q->keys[i], "header") == 0) headers[er.n_headers++] = q->vals[i];
  if (!er.origin) {
    reply_json(c, 400, "{\"error\":\"origin= is required\"}");
    return;
  }
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  if (!f) {
    reply_json(c, 500, "{\"error\":\"out of memory\"}");
    return;
  }
  cg_explain(a->cfg, &er, f);
  /* the live decision caches: what each worker holds for this origin now */
  const char *host = er.host ? er.host : "", *path = er.path ? er.path : "/";
  const cg_route_t *r = cg_route_match(a->cfg, host, strlen(host), path, strlen(path));
  char norm[CG_CORS_ORIGIN_MAX + 8];
  cg_origin_t o;
  fflush(f);
  if (len >= 2 && out[len - 2] == '}') {
    fseeko(f, (off_t)len - 2, SEEK_SET);
    fputs(",\"cache\":[", f);
    if (r && r->plugin && cg_cors_origin_parse(er.origin, strlen(er.origin), &o, norm, sizeof norm) == 0) {
      norm[o.norm_len] = 0;
      for (int i = 0; i < a->n_workers; i++) {
        peek_t p = {.route = (uint32_t)r->index, .origin = norm};
        cg_worker_rpc(&a->workers[i], rpc_peek, &p);
        fprintf(f, "%s{\"worker\":%d,\"state\":\"%s\"", i ? "," : "", i,
                !p.info.present ? "absent" : p.info.pending ? "pending" : p.info.expires_in_ms > 0 ? "fresh" : "stale");
        if (p.info.present && !p.info.pending) {
          fprintf(f, ",\"allow\":%s,\"expires_in_ms\":%lld,\"tenant\":", p.info.allow ? "true" : "false",
                  (long long)p.info.expires_in_ms);
          cg_json_fputs(f, p.info.tenant, strlen(p.info.tenant)); /* a plugin's label: any bytes */
        }
        fputc('}', f);
      }
    }
    fputs("]}\n", f);
  }
  fclose(f);
  reply(c, 200, "application/json", out, len);
  free(out);
}

/* Constant time in the token's length, whatever the guess. */
static int token_ok(const admin_conn_t *c) {
  const char *want = c->a->cfg->admin_token;
  if (!want) return 1;
  if (c->auth_twice) return 0;
  static const char prefix[] = "Bearer ";
  if (c->auth_len < sizeof prefix - 1 || strncmp(c->auth, prefix, sizeof prefix - 1) != 0) return 0;
  const char *got = c->auth + sizeof prefix - 1;
  size_t glen = c->auth_len - (sizeof prefix - 1), wlen = strlen(want);
  unsigned diff = (unsigned)(glen ^ wlen);
  for (size_t i = 0; i < wlen; i++) diff |= (unsigned char)want[i] ^ (unsigned char)(i < glen ? got[i] : 0);
  return diff == 0;
}

static void tenants_done(void *arg, int status, const char *body, size_t len) {
  reply(arg, status, "application/json", body, len);
}

static void handle(admin_conn_t *c) {
  if (c->too_long) {
    reply_json(c, 414, "{\"error\":\"request target too long\"}");
    return;
  }
  if (c->parser.method == HTTP_GET) { /* the console's files hold no data: no token */
    const char *q = memchr(c->url, '?', c->url_len), *type, *body;
    size_t len;
    if (cg_console_asset(c->url, q ? (size_t)(q - c->url) : c->url_len, &type, &body, &len)) {
      reply(c, 200, type, body, len);
      return;
    }
  }
  if (!token_ok(c)) {
    reply_json(c, 401, "{\"error\":\"a valid Authorization: Bearer token is required\"}");
    return;
  }
  c->url[c->url_len] = 0;
  char *qs = strchr(c->url, '?');
  if (qs) *qs++ = 0;
  cg_query_t q;
  cg_query_parse(qs, &q);
  const char *path = c->url;
  int m = c->parser.method;
  admin_t *a = c->a;
  cg_tenants_req_t tr = {.method = m, .path = path, .origin = cg_query_get(&q, "origin"),
                         .after = cg_query_get(&q, "after"), .limit = cg_query_get(&q, "limit"),
                         .match = cg_query_get(&q, "match"), .takeover = cg_query_get(&q, "takeover"),
                         .body = c->body, .body_len = c->body_len};
  uv_read_stop((uv_stream_t *)&c->tcp); /* nothing closes c while the store answers */
  c->done = 1;
  if (cg_tenants_handle(a->cfg, &tr, tenants_done, c)) return;
  if (strcmp(path, "/healthz") == 0 && (m == HTTP_GET || m == HTTP_HEAD)) {
    int up = 0;
    for (int i = 0; i < a->n_workers; i++) {
      snapshot_t s;
      memset(&s, 0, sizeof s);
      if (cg_worker_rpc(&a->workers[i], rpc_snapshot, &s) == 0) up++;
      if (s.ok) cg_metrics_free(&s.m);
    }
    /* Redis down is "degraded" but still 200: the instance serves (cached
     * decisions, static routes), and a load balancer that pulled every
     * replica at once over a shared store would turn a Redis outage into a
     * full one. */
    char redis[400] = "";
    int redis_ok = 1;
    if (a->cfg->redis.address) {
      cg_redis_stats_t rs;
      cg_redis_stats(&rs);
      int fleet = cg_fleet_state();
      redis_ok = cg_fleet_redis_ok();
      char primary[80], sent[200] = "";
      cg_redis_primary(primary, sizeof primary);
      if (a->cfg->redis.n_sentinels)
        snprintf(sent, sizeof sent, ",\"primary\":\"%s\",\"failovers\":%llu", primary,
                 (unsigned long long)rs.failovers);
      snprintf(redis, sizeof redis,
               ",\"redis\":{\"state\":\"%s\",\"subscriber\":\"%s\",\"connections\":%llu,\"connections_up\":%llu%s}",
               redis_ok ? "up" : "down", fleet < 0 ? "off" : fleet ? "up" : "down",
               (unsigned long long)rs.connections, (unsigned long long)rs.connections_up, sent);
    }
    reply_json(c, up == a->n_workers ? 200 : 503,
               "{\"status\":\"%s\",\"workers\":%d,\"workers_up\":%d,\"uptime_s\":%llu%s}",
               up == a->n_workers && redis_ok ? "ok" : "degraded", a->n_workers, up,
               (unsigned long long)((uv_now(a->loop) - a->started) / 1000), redis);
  } else if (strcmp(path, "/metrics") == 0 && m == HTTP_GET) {
    get_metrics(c);
  } else if (strcmp(path, "/cache") == 0 && m == HTTP_GET) {
    get_cache(c);
  } else if (strcmp(path, "/cache") == 0 && m == HTTP_DELETE) {
    delete_cache(c, &q);
  } else if (strcmp(path, "/refused") == 0 && m == HTTP_GET) {
    const char *lim = cg_query_get(&q, "limit");
    size_t len = 0;
    char *body = cg_refused_render(a->workers, a->n_workers, a->cfg, lim ? atoi(lim) : 100, &len);
    if (body) reply(c, 200, "application/json", body, len);
    else reply_json(c, 500, "{\"error\":\"out of memory\"}");
    free(body);
  } else if (strcmp(path, "/explain") == 0 && m == HTTP_GET) {
    get_explain(c, &q);
  } else if (strcmp(path, "/reload") == 0 && m == HTTP_POST) {
    post_reload(c);
  } else if (strcmp(path, "/healthz") == 0 || strcmp(path, "/metrics") == 0 || strcmp(path, "/cache") == 0 ||
             strcmp(path, "/explain") == 0 || strcmp(path, "/reload") == 0 || strcmp(path, "/refused") == 0) {
    reply_json(c, 405, "{\"error\":\"method not allowed\"}");
  } else {
    reply_json(c, 404,
               "{\"error\":\"no such endpoint: /healthz, /metrics, /cache, /refused, /explain, /reload, /tenants\"}");
  }
}

/* --- parsing ------------------------------------------------------------------- */

static int on_url(llhttp_t *p, const char *at, size_t len) {
  admin_conn_t *c = p->data;
  if (c->url_len + len >= MAX_URL) {
    c->too_long = 1;
    return 0;
  }
  memcpy(c->url + c->url_len, at, len);
  c->url_len += len;
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  admin_conn_t *c = p->data;
  if (c->hname_len + len < sizeof c->hname) {
    memcpy(c->hname + c->hname_len, at, len);
    c->hname_len += len;
  } else {
    c->hname_len = sizeof c->hname; /* too long to be Authorization */
  }
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  admin_conn_t *c = p->data;
  if (c->hname_len == 4 && strncasecmp(c->hname, "host", 4) == 0) {
    if (c->host_seen == 2) c->host_len = sizeof c->host; /* a second Host: refused below */
    c->host_seen = 1;
    if (c->host_len + len < sizeof c->host) {
      memcpy(c->host + c->host_len, at, len);
      c->host_len += len;
    } else {
      c->host_len = sizeof c->host; /* too long for a loopback name */
    }
  }
  if (c->hname_len == 6 && strncasecmp(c->hname, "origin", 6) == 0) {
    if (c->origin_len + len < sizeof c->origin) memcpy(c->origin + c->origin_len, at, len);
    c->origin_len += len + (c->origin_len && !c->in_value ? 2 : 0); /* a second Origin never matches */
  }
  if (c->hname_len == 13 && strncasecmp(c->hname, "authorization", 13) == 0) {
    if (c->auth_len && !c->in_value) c->auth_twice = 1; /* else its halves would make one token */
    if (c->auth_len + len < MAX_AUTH) {
      memcpy(c->auth + c->auth_len, at, len);
      c->auth_len += len;
    }
  }
  c->in_value = 1;
  return 0;
}

static int on_header_value_complete(llhttp_t *p) {
  admin_conn_t *c = p->data;
  if (c->host_seen == 1) {
    while (c->host_len && c->host_len < sizeof c->host && (c->host[c->host_len - 1] == ' ' || c->host[c->host_len - 1] == '\t'))
      c->host_len--;
    c->host_seen = 2; /* one whole Host value */
  }
  c->hname_len = 0;
  c->in_value = 0;
  return 0;
}

/* Without a token the admin API listens on loopback only, and a browser's
 * page must not reach it by a name of its own pointing there (DNS
 * rebinding): the Host a browser sends is then the page's name, refused. */
static int host_ok(const admin_conn_t *c) {
  if (c->a->cfg->admin_token || !c->host_seen) return 1; /* with a token; HTTP/1.0 probes without Host */
  if (c->host_len >= sizeof c->host) return 0;
  size_t n = c->host_len;
  const char *h = c->host;
  if (n && h[0] == '[') {
    const char *end = memchr(h, ']', n);
    if (!end) return 0;
    size_t hl = (size_t)(end - h) + 1;
    if (hl != 5 || strncmp(h, "[::1]", 5) != 0) return 0;
    return hl == n || h[hl] == ':';
  }
  const char *colon = memchr(h, ':', n);
  size_t hl = colon ? (size_t)(colon - h) : n;
  return (hl == 9 && strncasecmp(h, "localhost", 9) == 0) ||
         (hl >= 7 && hl <= 15 && strncmp(h, "127.", 4) == 0 && strspn(h, "0123456789.") == hl);
}

/* Without a token, being able to reach the listener is the only credential,
 * and a browser reaches it for any page it shows: a page elsewhere may send
 * it a POST (a simple request, no preflight) or a DELETE through a tab of
 * the operator's. Browsers name the page's origin on every such request;
 * only the console's own (http://HOST, the listener's own name) passes. */
static int origin_ok(const admin_conn_t *c) {
  if (c->a->cfg->admin_token || !c->origin_len) return 1; /* with a token; not sent by a page */
  static const char scheme[] = "http://";
  size_t sl = sizeof scheme - 1;
  return c->host_seen && c->host_len < sizeof c->host && c->origin_len < sizeof c->origin &&
         c->origin_len == sl + c->host_len && strncasecmp(c->origin, scheme, sl) == 0 &&
         strncasecmp(c->origin + sl, c->host, c->host_len) == 0;
}

static int on_headers_complete(llhttp_t *p) {
  admin_conn_t *c = p->data;
  c->head = p->method == HTTP_HEAD;
  c->linger = 1; /* an answer from here on comes before the body */
  if (!host_ok(c)) {
    reply_json(c, 403, "{\"error\":\"without admin.token the admin API answers only to Host 127.0.0.1, [::1] or "
                       "localhost\"}");
    return -1;
  }
  if (!origin_ok(c)) {
    reply_json(c, 403, "{\"error\":\"without admin.token the admin API answers no request from a page of another "
                       "origin\"}");
    return -1;
  }
  /* a body only where one is read (PUT /tenants/{name}), and only with the token */
  int chunked = (p->flags & F_CHUNKED) != 0;
  if ((chunked || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0))) {
    if (!token_ok(c)) {
      reply_json(c, 401, "{\"error\":\"a valid Authorization: Bearer token is required\"}");
      return -1;
    }
    int tenants = c->url_len >= 8 && strncmp(c->url, "/tenants", 8) == 0;
    if (tenants && p->method != HTTP_PUT) {
      reply_json(c, 405, "{\"error\":\"method not allowed\"}");
      return -1;
    }
    if (p->method != HTTP_PUT || c->url_len < 9 || strncmp(c->url, "/tenants/", 9) != 0) {
      reply_json(c, 413, "{\"error\":\"no body is read here (only PUT /tenants/{name} takes one)\"}");
      return -1;
    }
  }
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > MAX_BODY) {
    reply_json(c, 413, "{\"error\":\"the body is over %d bytes\"}", MAX_BODY);
    return -1;
  }
  c->linger = 0;
  uv_timer_start(&c->timer, on_deadline, c->a->cfg->timeouts.body, 0); /* the body's time, if one comes */
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  admin_conn_t *c = p->data;
  if (c->body_len + len > MAX_BODY) {
    c->linger = 1;
    reply_json(c, 413, "{\"error\":\"the body is over %d bytes\"}", MAX_BODY);
    return -1;
  }
  char *b = realloc(c->body, c->body_len + len + 1);
  if (!b) {
    reply_json(c, 500, "{\"error\":\"out of memory\"}");
    return -1;
  }
  memcpy(b + c->body_len, at, len);
  c->body = b;
  c->body_len += len;
  b[c->body_len] = 0;
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  handle(p->data);
  return HPE_PAUSED;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static char rbuf[8192]; /* the main loop is single-threaded; data is parsed in the callback */
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  admin_conn_t *c = s->data;
  if (n == 0 || c->done) return;
  if (n < 0) {
    conn_close(c);
    return;
  }
  llhttp_errno_t err = llhttp_execute(&c->parser, buf->base, (size_t)n);
  if (err != HPE_OK && err != HPE_PAUSED && !c->done) reply_json(c, 400, "{\"error\":\"malformed request\"}");
}

/* The request did not come whole in time (the head within timeouts.head,
 * then its body within timeouts.body). */
static void on_deadline(uv_timer_t *t) {
  admin_conn_t *c = t->data;
  if (c->done) return; /* answered, or being answered (the tenant store) */
  c->linger = 1;
  reply_json(c, 408, "{\"error\":\"the request did not arrive in time\"}");
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  admin_conn_t *c = calloc(1, sizeof *c);
  if (!c) return;
  c->a = &admin;
  admin.n_conns++;
  cg_list_push(&admin.conns, &c->link);
  uv_tcp_init(admin.loop, &c->tcp);
  uv_timer_init(admin.loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || !admin.open) {
    conn_close(c);
    return;
  }
  if (admin.n_conns > ADMIN_CONNS) { /* room: the oldest still sending its request */
    admin_conn_t *old = NULL;
    for (cg_list_t *l = admin.conns.next; l != &admin.conns && !old; l = l->next) {
      admin_conn_t *o = container_of(l, admin_conn_t, link);
      if (o != c && !o->done && !uv_is_closing((uv_handle_t *)&o->timer)) old = o;
    }
    if (!old) {
      conn_close(c);
      return;
    }
    conn_close(old);
  }
  llhttp_init(&c->parser, HTTP_REQUEST, &settings);
  c->parser.data = c;
  uv_timer_start(&c->timer, on_deadline, admin.cfg->timeouts.head, 0);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

cg_worker_t *cg_admin_workers(int *n, uv_loop_t **loop) {
  *n = admin.n_workers;
  if (loop) *loop = admin.loop;
  return admin.workers;
}

int cg_admin_start(uv_loop_t *loop, const cg_config_t *cfg, cg_worker_t *workers, int n_workers) {
  admin = (admin_t){.loop = loop, .cfg = cfg, .workers = workers, .n_workers = n_workers, .started = uv_now(loop)};
  cg_list_init(&admin.conns);
  if (!cfg->admin_listen) return 0;
  llhttp_settings_init(&settings);
  settings.on_url = on_url;
  settings.on_header_field = on_header_field;
  settings.on_header_value = on_header_value;
  settings.on_header_value_complete = on_header_value_complete;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;
  uv_tcp_init(loop, &admin.listener);
  int rc = uv_tcp_bind(&admin.listener, (const struct sockaddr *)&cfg->admin_addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&admin.listener, 64, on_connection);
  if (rc < 0) {
    cg_log_error("admin: cannot listen on %s: %s", cfg->admin_listen, uv_strerror(rc));
    uv_close((uv_handle_t *)&admin.listener, NULL);
    return -1;
  }
  admin.open = 1;
  cg_tenants_store_update(loop, cfg);
  cg_log_info("admin API on %s%s", cfg->admin_listen, cfg->admin_token ? " (token required)" : "");
  return 0;
}

void cg_admin_update(const cg_config_t *cfg, cg_worker_t *workers, int n_workers) {
  admin.cfg = cfg;
  admin.workers = workers;
  admin.n_workers = n_workers;
  if (admin.open) cg_tenants_store_update(admin.loop, cfg);
}

void cg_admin_stop(void) {
  if (!admin.open) return;
  admin.open = 0;
  cg_tenants_store_stop();
  uv_close((uv_handle_t *)&admin.listener, NULL);
  /* requests still arriving end here; answers being made or written finish */
  for (cg_list_t *l = admin.conns.next, *next; l != &admin.conns; l = next) {
    next = l->next;
    admin_conn_t *c = container_of(l, admin_conn_t, link);
    if (!c->done) conn_close(c);
  }
}
