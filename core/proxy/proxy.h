#ifndef CG_PROXY_PROXY_H
#define CG_PROXY_PROXY_H
/* The upstream side: a worker's keep-alive pools, and the exchanges it
 * forwards. It sees a request only as a cg_exchange_t and answers through
 * the exchange's calls, so it serves any protocol the client came in on; it
 * speaks HTTP/1.1 to upstreams. */
#include <stddef.h>
#include <uv.h>

#include "config/config.h"
#include "http/exchange.h"

typedef struct cg_proxy cg_proxy_t;

/* Counts an upstream failure: the status the client got and its kind. */
typedef void (*cg_proxy_error_cb)(void *arg, int status, const char *why);

/* A worker's upstream state for cfg, on loop. id spreads the workers'
 * first picks over the targets. rbuf (the worker's read buffer, consumed
 * inside each read callback) is borrowed for reads. NULL when memory runs
 * out. */
cg_proxy_t *cg_proxy_new(uv_loop_t *loop, const cg_config_t *cfg, unsigned id, char *rbuf, size_t rbuf_len,
                         cg_proxy_error_cb on_error, void *arg);
/* The worker drains: idle connections are closed and none is kept again. */
void cg_proxy_drain(cg_proxy_t *p);
/* Frees what cg_proxy_new made; its connections must be closed (the loop run
 * until their handles are) first. */
void cg_proxy_free(cg_proxy_t *p);

/* Forwards x (x->proxy set) to its route's upstream. The request body, if
 * any, follows with cg_proxy_body once the exchange's body_resume is called. */
void cg_proxy_start(cg_exchange_t *x);
/* A piece of the request body. */
void cg_proxy_body(cg_exchange_t *x, const char *at, size_t len);
/* The request body's end. */
void cg_proxy_body_end(cg_exchange_t *x);
/* The client is gone: the upstream connection is let go. */
void cg_proxy_client_gone(cg_exchange_t *x);
/* The client took what was queued for it: the upstream is read again. */
void cg_proxy_client_drained(cg_exchange_t *x);

#endif
