/* Worker counters and their Prometheus text rendering. */
#include "server/metrics.h"

#include "redis/redis.h"
#include "server/fleet.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cors/cors.h"

static const int codes[CG_M_NCODES] = {200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401,
                                       403, 404, 405, 408, 413, 417, 429, 431, 500, 502, 503, 504};
static const char *const result_names[CG_M_NRESULTS] = {
    "allowed", "refused-origin", "refused-method", "refused-header", "refused-private-network",
    "malformed-origin", "too-many-headers"};
static const char *const upstream_kinds[CG_M_UP_NKINDS] = {"connect", "connect_timeout", "timeout", "closed",
                                                           "reset",   "bad_response",    "write",
                                                           "tls"};
/* seconds */
static const double hook_bounds[CG_M_HOOK_BUCKETS - 1] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1};

int cg_metrics_init(cg_metrics_t *m, int n_routes) {
  memset(m, 0, sizeof *m);
  m->n_routes = n_routes;
  m->routes = calloc((size_t)n_routes + 1, sizeof *m->routes);
  return m->routes ? 0 : -1;
}

void cg_metrics_free(cg_metrics_t *m) {
  free(m->routes);
  free(m->tenants);
  memset(m, 0, sizeof *m);
}

static cg_route_metrics_t *route(cg_metrics_t *m, int i) {
  if (!m->routes) return NULL;
  return &m->routes[i >= 0 && i <= m->n_routes ? i : 0];
}

void cg_metrics_request(cg_metrics_t *m, int route_index, int status, int proto) {
  m->requests_proto[proto]++;
  cg_route_metrics_t *r = route(m, route_index);
  if (!r) return;
  for (int i = 0; i < CG_M_NCODES; i++)
    if (codes[i] == status) {
      r->status[i]++;
      return;
    }
  int cls = status / 100;
  r->status[CG_M_NCODES + (cls >= 1 && cls <= 5 ? cls - 1 : 4)]++;
}

static int result_of(int reason) {
  switch (reason) {
  case CG_CORS_OK: return CG_M_ALLOWED;
  case CG_CORS_REFUSED_ORIGIN: return CG_M_REFUSED_ORIGIN;
  case CG_CORS_REFUSED_METHOD: return CG_M_REFUSED_METHOD;
  case CG_CORS_REFUSED_HEADER: return CG_M_REFUSED_HEADER;
  case CG_CORS_REFUSED_PRIVATE_NETWORK: return CG_M_REFUSED_PRIVATE_NETWORK;
  case CG_CORS_MALFORMED_ORIGIN: return CG_M_MALFORMED_ORIGIN;
  case CG_CORS_TOO_MANY_HEADERS: return CG_M_TOO_MANY_HEADERS;
  default: return -1;
  }
}

/* The (route, tenant) counters, created on first use; NULL past the cap. */
static cg_tenant_metrics_t *tenant_slot(cg_metrics_t *m, int route_index, const char *tenant) {
  /* Few tenants per route in practice, and the list is capped: linear. */
  for (int i = 0; i < m->n_tenants; i++)
    if (m->tenants[i].route == route_index && strcmp(m->tenants[i].name, tenant) == 0) return &m->tenants[i];
  if (m->n_tenants >= CG_M_MAX_TENANTS) return NULL;
  if (m->n_tenants % 16 == 0) {
    cg_tenant_metrics_t *n = realloc(m->tenants, (size_t)(m->n_tenants + 16) * sizeof *n);
    if (!n) return NULL;
    m->tenants = n;
  }
  cg_tenant_metrics_t *t = &m->tenants[m->n_tenants++];
  memset(t, 0, sizeof *t);
  t->route = route_index;
  snprintf(t->name, sizeof t->name, "%s", tenant);
  return t;
}

void cg_metrics_cors(cg_metrics_t *m, int route_index, int reason, const char *tenant) {
  int res = result_of(reason);
  cg_route_metrics_t *r = route(m, route_index);
  if (res < 0 || !r) return;
  if (!tenant || !*tenant) {
    r->cors[res]++;
    return;
  }
  cg_tenant_metrics_t *t = tenant_slot(m, route_index, tenant);
  if (t) t->cors[res]++;
  else m->tenant_overflow[res]++;
}

static const struct {
  int status, refused;
} preflight_kinds[CG_M_NPREFLIGHT] = {{204, 0}, {200, 0}, {403, 1}, {204, 1}, {200, 1}};

void cg_metrics_preflight(cg_metrics_t *m, int route_index, int status, int refused) {
  cg_route_metrics_t *r = route(m, route_index);
  if (!r) return;
  for (int k = 0; k < CG_M_NPREFLIGHT; k++)
    if (preflight_kinds[k].status == status && preflight_kinds[k].refused == !!refused) r->preflights[k]++;
}

void cg_metrics_tls_handshake(cg_metrics_t *m, const char *version, int resumed) {
  m->tls_handshakes[strcmp(version, "TLSv1.3") == 0 ? 1 : 0]++;
  if (resumed) m->tls_resumed++;
}

const char *cg_metrics_result_name(int reason) { return result_names[result_of(reason)]; }

void cg_metrics_shadow(cg_metrics_t *m, int route_index, int differs) {
  cg_route_metrics_t *r = route(m, route_index);
  if (r) r->shadow[differs ? 1 : 0]++;
}

void cg_metrics_hook(cg_metrics_t *m, uint64_t us, int failed, int timed_out) {
  int b = 0;
  while (b < CG_M_HOOK_BUCKETS - 1 && (double)us / 1e6 > hook_bounds[b]) b++;
  m->hook_buckets[b]++;
  m->hook_count++;
  m->hook_sum_us += us;
  if (failed) m->hook_errors++;
  if (timed_out) m->hook_timeouts++;
}

void cg_metrics_upstream_error(cg_metrics_t *m, int status, const char *why) {
  int k = CG_M_UP_RESET;
  if (strstr(why, "connect timed out")) k = CG_M_UP_CONNECT_TIMEOUT;
  else if (strstr(why, "upstream TLS")) k = CG_M_UP_TLS;
  else if (status == 504) k = CG_M_UP_TIMEOUT;
  else if (strstr(why, "connection failed")) k = CG_M_UP_CONNECT;
  else if (strstr(why, "closed")) k = CG_M_UP_CLOSED;
  else if (strstr(why, "invalid response")) k = CG_M_UP_BAD_RESPONSE;
  else if (strstr(why, "write failed")) k = CG_M_UP_WRITE;
  m->upstream_errors[k]++;
}

int cg_metrics_copy(cg_metrics_t *dst, const cg_metrics_t *src) {
  *dst = *src;
  dst->routes = malloc(((size_t)src->n_routes + 1) * sizeof *dst->routes);
  dst->tenants = src->n_tenants ? malloc((size_t)src->n_tenants * sizeof *dst->tenants) : NULL;
  if (!dst->routes || (src->n_tenants && !dst->tenants)) {
    free(dst->routes);
    free(dst->tenants);
    memset(dst, 0, sizeof *dst);
    return -1;
  }
  memcpy(dst->routes, src->routes, ((size_t)src->n_routes + 1) * sizeof *dst->routes);
  if (src->n_tenants) memcpy(dst->tenants, src->tenants, (size_t)src->n_tenants * sizeof *dst->tenants);
  return 0;
}

void cg_metrics_add(cg_metrics_t *sum, const cg_metrics_t *m) {
  for (int i = 0; i <= m->n_routes && i <= sum->n_routes; i++) {
    for (int k = 0; k < CG_M_NSTATUS; k++) sum->routes[i].status[k] += m->routes[i].status[k];
    for (int k = 0; k < CG_M_NRESULTS; k++) sum->routes[i].cors[k] += m->routes[i].cors[k];
    for (int k = 0; k < CG_M_NPREFLIGHT; k++) sum->routes[i].preflights[k] += m->routes[i].preflights[k];
    for (int k = 0; k < 2; k++) sum->routes[i].shadow[k] += m->routes[i].shadow[k];
  }
  for (int i = 0; i < m->n_tenants; i++) {
    cg_tenant_metrics_t *t = tenant_slot(sum, m->tenants[i].route, m->tenants[i].name);
    for (int k = 0; k < CG_M_NRESULTS; k++) {
      if (t) t->cors[k] += m->tenants[i].cors[k];
      else sum->tenant_overflow[k] += m->tenants[i].cors[k];
    }
  }
  for (int k = 0; k < CG_M_NRESULTS; k++) sum->tenant_overflow[k] += m->tenant_overflow[k];
  for (int k = 0; k < CG_M_HOOK_BUCKETS; k++) sum->hook_buckets[k] += m->hook_buckets[k];
  sum->hook_count += m->hook_count;
  sum->hook_sum_us += m->hook_sum_us;
  sum->hook_errors += m->hook_errors;
  sum->hook_timeouts += m->hook_timeouts;
  for (int k = 0; k < CG_M_UP_NKINDS; k++) sum->upstream_errors[k] += m->upstream_errors[k];
  sum->connections_open += m->connections_open;
  sum->connections_total += m->connections_total;
  for (int k = 0; k < 2; k++) sum->tls_handshakes[k] += m->tls_handshakes[k];
  sum->tls_handshake_errors += m->tls_handshake_errors;
  sum->tls_resumed += m->tls_resumed;
  for (int k = 0; k < CG_M_NPROTOS; k++) sum->requests_proto[k] += m->requests_proto[k];
  sum->h2_connections += m->h2_connections;
  sum->h2_goaway_calm += m->h2_goaway_calm;
}

typedef struct {
  char *s;
  size_t len, cap;
  int oom;
} sbuf_t;

static void add(sbuf_t *b, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    size_t room = b->cap - b->len;
    va_start(ap, fmt);
    int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (b->s && (size_t)n < room) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->len + (size_t)n + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
      b->oom = 1;
      return;
    }
    b->s = s;
    b->cap = cap;
  }
}

/* Label values: route names and tenants are config or plugin strings. */
static const char *label(const char *v, char *buf, size_t n) {
  size_t o = 0;
  for (; *v && o + 3 < n; v++) {
    if (*v == '"' || *v == '\\') buf[o++] = '\\', buf[o++] = *v;
    else if (*v == '\n') buf[o++] = '\\', buf[o++] = 'n';
    else buf[o++] = *v;
  }
  buf[o] = 0;
  return buf;
}

static const char *route_name(const cg_config_t *cfg, int i) {
  return i >= 1 && i <= cfg->n_routes ? cfg->routes[i - 1].name : "";
}

char *cg_metrics_render(const cg_metrics_t *m, const cg_config_t *cfg, const cg_metrics_extra_t *x, size_t *len) {
  sbuf_t b = {0};
  char l1[160], l2[160];
  add(&b, "# HELP corsgate_requests_total Requests answered, by route and status.\n"
          "# TYPE corsgate_requests_total counter\n");
  for (int i = 0; i <= m->n_routes; i++)
    for (int k = 0; k < CG_M_NSTATUS; k++) {
      uint64_t n = m->routes[i].status[k];
      if (!n) continue;
      char st[8];
      if (k < CG_M_NCODES) snprintf(st, sizeof st, "%d", codes[k]);
      else snprintf(st, sizeof st, "%dxx", k - CG_M_NCODES + 1);
      add(&b, "corsgate_requests_total{route=\"%s\",status=\"%s\"} %llu\n", label(route_name(cfg, i), l1, sizeof l1),
          st, (unsigned long long)n);
    }
  add(&b, "# HELP corsgate_cors_decisions_total CORS decisions, by route, result and tenant (plugin routes).\n"
          "# TYPE corsgate_cors_decisions_total counter\n");
  for (int i = 1; i <= m->n_routes; i++)
    for (int k = 0; k < CG_M_NRESULTS; k++)
      if (m->routes[i].cors[k])
        add(&b, "corsgate_cors_decisions_total{route=\"%s\",result=\"%s\",tenant=\"\"} %llu\n",
            label(route_name(cfg, i), l1, sizeof l1), result_names[k], (unsigned long long)m->routes[i].cors[k]);
  for (int t = 0; t < m->n_tenants; t++)
    for (int k = 0; k < CG_M_NRESULTS; k++)
      if (m->tenants[t].cors[k])
        add(&b, "corsgate_cors_decisions_total{route=\"%s\",result=\"%s\",tenant=\"%s\"} %llu\n",
            label(route_name(cfg, m->tenants[t].route), l1, sizeof l1), result_names[k],
            label(m->tenants[t].name, l2, sizeof l2), (unsigned long long)m->tenants[t].cors[k]);
  for (int k = 0; k < CG_M_NRESULTS; k++)
    if (m->tenant_overflow[k])
      add(&b, "corsgate_cors_decisions_total{route=\"\",result=\"%s\",tenant=\"other\"} %llu\n", result_names[k],
          (unsigned long long)m->tenant_overflow[k]);
  add(&b, "# HELP corsgate_preflights_total Preflights answered by the gateway, by route, status and result.\n"
          "# TYPE corsgate_preflights_total counter\n");
  for (int i = 1; i <= m->n_routes; i++)
    for (int k = 0; k < CG_M_NPREFLIGHT; k++)
      if (m->routes[i].preflights[k])
        add(&b, "corsgate_preflights_total{route=\"%s\",status=\"%d\",result=\"%s\"} %llu\n",
            label(route_name(cfg, i), l1, sizeof l1), preflight_kinds[k].status,
            preflight_kinds[k].refused ? "refused" : "allowed", (unsigned long long)m->routes[i].preflights[k]);
  int any_shadow = 0;
  for (int i = 1; i <= m->n_routes; i++) any_shadow |= cfg->routes[i - 1].shadow_cors != NULL;
  if (any_shadow) {
    add(&b, "# HELP corsgate_shadow_decisions_total Requests with an Origin on routes with shadow_cors, by whether the "
            "shadow policy would have answered the same as the enforced one.\n"
            "# TYPE corsgate_shadow_decisions_total counter\n");
    for (int i = 1; i <= m->n_routes; i++)
      if (cfg->routes[i - 1].shadow_cors)
        for (int k = 0; k < 2; k++)
          add(&b, "corsgate_shadow_decisions_total{route=\"%s\",outcome=\"%s\"} %llu\n",
              label(route_name(cfg, i), l1, sizeof l1), k ? "different" : "same",
              (unsigned long long)m->routes[i].shadow[k]);
  }
  add(&b,
      "# HELP corsgate_cache_hits_total Plugin decisions served fresh from the cache.\n"
      "# TYPE corsgate_cache_hits_total counter\ncorsgate_cache_hits_total %llu\n"
      "# HELP corsgate_cache_misses_total Lookups a worker's cache could not answer fresh (the shared store or a hook did).\n"
      "# TYPE corsgate_cache_misses_total counter\ncorsgate_cache_misses_total %llu\n"
      "# HELP corsgate_cache_stale_total Expired decisions served while a refresh ran.\n"
      "# TYPE corsgate_cache_stale_total counter\ncorsgate_cache_stale_total %llu\n"
      "# HELP corsgate_cache_evictions_total Decisions evicted by the size bound.\n"
      "# TYPE corsgate_cache_evictions_total counter\ncorsgate_cache_evictions_total %llu\n"
      "# HELP corsgate_cache_entries Decisions cached in the workers' caches (in front of the shared store).\n"
      "# TYPE corsgate_cache_entries gauge\ncorsgate_cache_entries %llu\n"
      "# HELP corsgate_cache_bytes Memory the decision caches hold.\n"
      "# TYPE corsgate_cache_bytes gauge\ncorsgate_cache_bytes %llu\n",
      (unsigned long long)x->cache_hits, (unsigned long long)x->cache_misses, (unsigned long long)x->cache_stale,
      (unsigned long long)x->cache_evictions, (unsigned long long)x->cache_entries,
      (unsigned long long)x->cache_bytes);
  if (x->shared)
    add(&b,
        "# HELP corsgate_cache_shared_entries Decisions in the store the workers share (one per route and origin).\n"
        "# TYPE corsgate_cache_shared_entries gauge\ncorsgate_cache_shared_entries %llu\n"
        "# HELP corsgate_cache_shared_bytes Memory the shared store holds.\n"
        "# TYPE corsgate_cache_shared_bytes gauge\ncorsgate_cache_shared_bytes %llu\n"
        "# HELP corsgate_cache_shared_hits_total A worker's miss answered by the shared store.\n"
        "# TYPE corsgate_cache_shared_hits_total counter\ncorsgate_cache_shared_hits_total %llu\n"
        "# HELP corsgate_cache_shared_misses_total Hook runs the shared store asked for (one per origin and process).\n"
        "# TYPE corsgate_cache_shared_misses_total counter\ncorsgate_cache_shared_misses_total %llu\n"
        "# HELP corsgate_cache_shared_evictions_total Decisions the shared store evicted by its size bound.\n"
        "# TYPE corsgate_cache_shared_evictions_total counter\ncorsgate_cache_shared_evictions_total %llu\n",
        (unsigned long long)x->shared_entries, (unsigned long long)x->shared_bytes,
        (unsigned long long)x->shared_hits, (unsigned long long)x->shared_misses,
        (unsigned long long)x->shared_evictions);
  if (cfg->redis.address) {
    cg_redis_stats_t rs;
    cg_redis_stats(&rs);
    int fleet = cg_fleet_state();
    add(&b,
        "# HELP corsgate_redis_up 1 when Redis answers: a gw.redis connection is up (when there are any) and the "
        "invalidation channel, if any, is subscribed.\n"
        "# TYPE corsgate_redis_up gauge\ncorsgate_redis_up %d\n"
        "# HELP corsgate_redis_connections gw.redis connections, all workers, by state.\n"
        "# TYPE corsgate_redis_connections gauge\n"
        "corsgate_redis_connections{state=\"up\"} %llu\ncorsgate_redis_connections{state=\"down\"} %llu\n"
        "# HELP corsgate_redis_subscriber_up 1 while the invalidation channel is subscribed.\n"
        "# TYPE corsgate_redis_subscriber_up gauge\ncorsgate_redis_subscriber_up %d\n"
        "# HELP corsgate_redis_commands_total Commands sent by gw.redis.\n"
        "# TYPE corsgate_redis_commands_total counter\ncorsgate_redis_commands_total %llu\n"
        "# HELP corsgate_redis_errors_total Error replies from Redis.\n"
        "# TYPE corsgate_redis_errors_total counter\ncorsgate_redis_errors_total %llu\n"
        "# HELP corsgate_redis_timeouts_total Commands that got no answer within redis.timeout_ms.\n"
        "# TYPE corsgate_redis_timeouts_total counter\ncorsgate_redis_timeouts_total %llu\n"
        "# HELP corsgate_redis_reconnects_total Connection attempts after a lost or failed connection.\n"
        "# TYPE corsgate_redis_reconnects_total counter\ncorsgate_redis_reconnects_total %llu\n"
        "# HELP corsgate_redis_invalidations_total Invalidation lines received on the channel.\n"
        "# TYPE corsgate_redis_invalidations_total counter\ncorsgate_redis_invalidations_total %llu\n"
        "# HELP corsgate_redis_invalidated_total Decisions those invalidations dropped.\n"
        "# TYPE corsgate_redis_invalidated_total counter\ncorsgate_redis_invalidated_total %llu\n"
        "# HELP corsgate_redis_failovers_total With sentinels: times they named a new primary.\n"
        "# TYPE corsgate_redis_failovers_total counter\ncorsgate_redis_failovers_total %llu\n",
        cg_fleet_redis_ok(),
        (unsigned long long)rs.connections_up, (unsigned long long)(rs.connections - rs.connections_up), fleet == 1,
        (unsigned long long)rs.commands, (unsigned long long)rs.errors, (unsigned long long)rs.timeouts,
        (unsigned long long)rs.reconnects, (unsigned long long)rs.invalidations, (unsigned long long)rs.invalidated,
        (unsigned long long)rs.failovers);
    char primary[80];
    cg_redis_primary(primary, sizeof primary);
    if (primary[0] && cfg->redis.n_sentinels)
      add(&b, "# HELP corsgate_redis_primary The primary the sentinels name now (value 1).\n"
              "# TYPE corsgate_redis_primary gauge\ncorsgate_redis_primary{address=\"%s\"} 1\n", primary);
  }
  add(&b, "# HELP corsgate_hook_duration_seconds Plugin hook runs (origin(), certificate()), I/O included.\n"
          "# TYPE corsgate_hook_duration_seconds histogram\n");
  uint64_t cum = 0;
  for (int k = 0; k < CG_M_HOOK_BUCKETS; k++) {
    cum += m->hook_buckets[k];
    if (k < CG_M_HOOK_BUCKETS - 1)
      add(&b, "corsgate_hook_duration_seconds_bucket{le=\"%g\"} %llu\n", hook_bounds[k], (unsigned long long)cum);
    else
      add(&b, "corsgate_hook_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
  }
  add(&b,
      "corsgate_hook_duration_seconds_sum %.6f\ncorsgate_hook_duration_seconds_count %llu\n"
      "# HELP corsgate_hook_errors_total Hook runs that failed (error, overrun, wrong answer): the origin was denied, or the handshake failed.\n"
      "# TYPE corsgate_hook_errors_total counter\ncorsgate_hook_errors_total %llu\n"
      "# HELP corsgate_hook_timeouts_total Hook runs cut off by plugins.timeout.\n"
      "# TYPE corsgate_hook_timeouts_total counter\ncorsgate_hook_timeouts_total %llu\n",
      (double)m->hook_sum_us / 1e6, (unsigned long long)m->hook_count, (unsigned long long)m->hook_errors,
      (unsigned long long)m->hook_timeouts);
  add(&b, "# HELP corsgate_upstream_errors_total Failed upstream exchanges, by kind.\n"
          "# TYPE corsgate_upstream_errors_total counter\n");
  for (int k = 0; k < CG_M_UP_NKINDS; k++)
    add(&b, "corsgate_upstream_errors_total{kind=\"%s\"} %llu\n", upstream_kinds[k],
        (unsigned long long)m->upstream_errors[k]);
  int has_tls = 0;
  for (int i = 0; i < cfg->n_listeners; i++) has_tls |= cfg->listeners[i].tls_ctx != NULL;
  if (has_tls)
    add(&b,
        "# HELP corsgate_tls_handshakes_total TLS handshakes completed, by version.\n"
        "# TYPE corsgate_tls_handshakes_total counter\n"
        "corsgate_tls_handshakes_total{version=\"TLSv1.2\"} %llu\ncorsgate_tls_handshakes_total{version=\"TLSv1.3\"} %llu\n"
        "# HELP corsgate_tls_handshake_errors_total TLS handshakes that failed.\n"
        "# TYPE corsgate_tls_handshake_errors_total counter\ncorsgate_tls_handshake_errors_total %llu\n"
        "# HELP corsgate_tls_resumed_total TLS handshakes that resumed a session (a ticket).\n"
        "# TYPE corsgate_tls_resumed_total counter\ncorsgate_tls_resumed_total %llu\n",
        (unsigned long long)m->tls_handshakes[0], (unsigned long long)m->tls_handshakes[1],
        (unsigned long long)m->tls_handshake_errors, (unsigned long long)m->tls_resumed);
  add(&b,
      "# HELP corsgate_connections_open Client connections open now.\n"
      "# TYPE corsgate_connections_open gauge\ncorsgate_connections_open %llu\n"
      "# HELP corsgate_connections_total Client connections accepted.\n"
      "# TYPE corsgate_connections_total counter\ncorsgate_connections_total %llu\n"
      "# HELP corsgate_workers Worker threads.\n# TYPE corsgate_workers gauge\ncorsgate_workers %llu\n"
      "# HELP corsgate_requests_by_protocol_total Responses, by the protocol that carried them.\n"
      "# TYPE corsgate_requests_by_protocol_total counter\n"
      "corsgate_requests_by_protocol_total{protocol=\"HTTP/1.0\"} %llu\n"
      "corsgate_requests_by_protocol_total{protocol=\"HTTP/1.1\"} %llu\n"
      "corsgate_requests_by_protocol_total{protocol=\"HTTP/2\"} %llu\n"
      "# HELP corsgate_http2_connections_total Client connections that spoke HTTP/2.\n"
      "# TYPE corsgate_http2_connections_total counter\ncorsgate_http2_connections_total %llu\n"
      "# HELP corsgate_http2_abusive_closed_total HTTP/2 connections closed with ENHANCE_YOUR_CALM (floods, "
      "HPACK bombs, Rapid Reset).\n"
      "# TYPE corsgate_http2_abusive_closed_total counter\ncorsgate_http2_abusive_closed_total %llu\n",
      (unsigned long long)m->connections_open, (unsigned long long)m->connections_total,
      (unsigned long long)x->workers, (unsigned long long)m->requests_proto[0],
      (unsigned long long)m->requests_proto[1], (unsigned long long)m->requests_proto[2],
      (unsigned long long)m->h2_connections, (unsigned long long)m->h2_goaway_calm);
  if (b.oom) {
    free(b.s);
    return NULL;
  }
  *len = b.len;
  return b.s;
}
