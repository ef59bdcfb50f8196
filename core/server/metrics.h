#ifndef CG_SERVER_METRICS_H
#define CG_SERVER_METRICS_H
/* Counters of one worker. Only its own thread writes them (plain integers,
 * no atomics on the request path); the admin API reads them through a
 * snapshot the worker copies on its own loop, then sums the workers'.
 *
 * Label sets are bounded: routes come from the config, results and kinds
 * are fixed lists, and tenants (only from plugin decisions, never raw
 * origins) are capped per worker, the rest counted as tenant="other". */
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* Status codes with their own label; the rest count as "1xx".."5xx". */
enum { CG_M_NCODES = 24, CG_M_NSTATUS = CG_M_NCODES + 5 };

typedef enum {
  CG_M_ALLOWED,
  CG_M_REFUSED_ORIGIN,
  CG_M_REFUSED_METHOD,
  CG_M_REFUSED_HEADER,
  CG_M_REFUSED_PRIVATE_NETWORK,
  CG_M_MALFORMED_ORIGIN,
  CG_M_TOO_MANY_HEADERS,
  CG_M_NRESULTS
} cg_m_result_t;

typedef enum {
  CG_M_UP_CONNECT,
  CG_M_UP_CONNECT_TIMEOUT,
  CG_M_UP_TIMEOUT,
  CG_M_UP_CLOSED,
  CG_M_UP_RESET,
  CG_M_UP_BAD_RESPONSE,
  CG_M_UP_WRITE,
  CG_M_UP_TLS,
  CG_M_UP_NKINDS
} cg_m_upstream_error_t;

enum { CG_M_HOOK_BUCKETS = 9, CG_M_MAX_TENANTS = 1000 };
/* Protocols of the requests counted. */
enum { CG_M_HTTP10, CG_M_HTTP11, CG_M_HTTP2, CG_M_NPROTOS };
/* Preflights the gateway answers, by status and result: 204 or 200
 * (preflight_status) allowed, 403 refused, and 204 or 200 refused (a debug
 * route naming the cause to the browser). */
enum { CG_M_NPREFLIGHT = 5 };

typedef struct cg_route_metrics {
  uint64_t status[CG_M_NSTATUS];
  uint64_t cors[CG_M_NRESULTS]; /* decisions that named no tenant */
  uint64_t preflights[CG_M_NPREFLIGHT]; /* answered by the gateway, by status (metrics.c) */
  uint64_t shadow[2];          /* shadow_cors: [0] same answer, [1] a different one */
} cg_route_metrics_t;

typedef struct cg_tenant_metrics {
  int route; /* index into routes */
  char name[64];
  uint64_t cors[CG_M_NRESULTS];
} cg_tenant_metrics_t;

typedef struct cg_metrics {
  int n_routes;
  cg_route_metrics_t *routes; /* [0]: requests no route matched; [i]: routes[i-1] */
  cg_tenant_metrics_t *tenants;
  int n_tenants;
  uint64_t tenant_overflow[CG_M_NRESULTS];
  uint64_t hook_buckets[CG_M_HOOK_BUCKETS]; /* cumulative at render time only */
  uint64_t hook_count, hook_sum_us, hook_errors, hook_timeouts;
  uint64_t upstream_errors[CG_M_UP_NKINDS];
  uint64_t connections_open, connections_total;
  uint64_t tls_handshakes[2]; /* completed: [0] TLSv1.2, [1] TLSv1.3 */
  uint64_t tls_handshake_errors;
  uint64_t tls_resumed; /* completed handshakes that resumed a session */
  uint64_t requests_proto[CG_M_NPROTOS]; /* responses, by the protocol that carried them */
  uint64_t h2_connections;               /* connections that spoke HTTP/2 */
  uint64_t h2_goaway_calm;               /* ... closed with ENHANCE_YOUR_CALM (floods, bombs, Rapid Reset) */
} cg_metrics_t;

int cg_metrics_init(cg_metrics_t *m, int n_routes);
void cg_metrics_free(cg_metrics_t *m);

/* route_index 0 for no route; proto: CG_M_HTTP10, CG_M_HTTP11 or CG_M_HTTP2. */
void cg_metrics_request(cg_metrics_t *m, int route_index, int status, int proto);
/* One CORS decision (reason: a cg_cors_reason_t, not NO_ORIGIN); tenant NULL or "". */
void cg_metrics_cors(cg_metrics_t *m, int route_index, int reason, const char *tenant);
void cg_metrics_preflight(cg_metrics_t *m, int route_index, int status, int refused);
/* A TLS handshake completed with version ("TLSv1.2", "TLSv1.3"). */
void cg_metrics_tls_handshake(cg_metrics_t *m, const char *version, int resumed);
void cg_metrics_shadow(cg_metrics_t *m, int route_index, int differs);
/* "allowed", "refused-origin", ... for a decision's reason (as in the metric) */
const char *cg_metrics_result_name(int reason);
void cg_metrics_hook(cg_metrics_t *m, uint64_t us, int failed, int timed_out);
void cg_metrics_upstream_error(cg_metrics_t *m, int status, const char *why);

/* A deep copy (the snapshot the admin thread reads) and the sum of several. */
int cg_metrics_copy(cg_metrics_t *dst, const cg_metrics_t *src);
void cg_metrics_add(cg_metrics_t *sum, const cg_metrics_t *m);

typedef struct cg_metrics_extra {
  uint64_t cache_entries, cache_hits, cache_misses, cache_stale, cache_evictions, cache_bytes;
  int shared; /* the process-wide store's (the workers' caches are its front) */
  uint64_t shared_entries, shared_bytes, shared_hits, shared_misses, shared_evictions;
  uint64_t workers;
} cg_metrics_extra_t;

/* Prometheus text exposition of m (summed) into a malloc'd string. */
char *cg_metrics_render(const cg_metrics_t *m, const cg_config_t *cfg, const cg_metrics_extra_t *x, size_t *len);

#endif
