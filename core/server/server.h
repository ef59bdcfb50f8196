#ifndef CG_SERVER_H
#define CG_SERVER_H
#include <stdio.h>

#include "config/config.h"

/* Serves cfg until SIGTERM or SIGINT, then drains. Returns the process exit
 * code: 0 after a graceful shutdown, 1 when the listener cannot be set up. */
int cg_server_run(const cg_config_t *cfg);

/* Loads the running config's file (and its plugins) anew and, when valid,
 * swaps it in: new workers take over the listening sockets and the old ones
 * hand their connections over between requests. Returns 0, or -1 with
 * *errors (malloc'd, one "path: message" per line) and the old config still
 * serving. On the main thread (SIGHUP, POST /reload). */
int cg_server_reload(char **errors);

/* What `corsgate explain` is asked about. */
typedef struct cg_explain_req {
  const char *origin;
  const char *method; /* NULL: GET */
  const char *path;   /* NULL: / */
  const char *host;   /* NULL: routes for any host only */
  const char **headers; /* request header names ("X-Req" or "Content-Type: text/plain") */
  int n_headers;
  int json;
} cg_explain_req_t;

/* Prints each step of the CORS decision for q: route, origin as parsed, the
 * rule or plugin that decided (plugins run for real), the preflight a
 * browser would send, and the exact headers. Returns 0 when the browser
 * would let the page read the response, 1 otherwise. */
int cg_explain(const cg_config_t *cfg, const cg_explain_req_t *q, FILE *out);
/* s as a JSON string, quoted and escaped (non-ASCII as \\u00XX). */
void cg_json_fputs(FILE *f, const char *s, size_t n);

#endif
