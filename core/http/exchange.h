#ifndef CG_HTTP_EXCHANGE_H
#define CG_HTTP_EXCHANGE_H
/* One request and its response, whatever protocol carried them: what
 * routing, the CORS glue, the plugin glue, the gateway's own answers, the
 * access log and the proxy work on. An HTTP/1.1 connection serves its
 * requests one at a time through the one exchange it embeds (cleared between
 * requests: nothing may hold an exchange past its response_end or abort); an
 * HTTP/2 session would give each stream its own. The protocol fills in the
 * request head and answers the exchange's calls for the response
 * (cg_exchange_ops_t): the rest never learns which protocol it is, nor
 * reaches into a connection.
 *
 * Trailers are not carried: an upstream's response trailers and a chunked
 * request's trailers are dropped.
 *
 * An exchange belongs to one worker thread, like everything it points at. */
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "config/config.h"
#include "cors/cors.h"
#include "http/head.h"

typedef enum { CG_REQ_NONE, CG_REQ_PROXY, CG_REQ_LOCAL } cg_req_kind_t;

struct cg_upconn;

typedef struct cg_req {
  cg_req_kind_t kind;
  const cg_route_t *route;
  int method; /* llhttp_method_t */
  int has_body, chunked;
  uint64_t content_length; /* when !chunked */
  uint64_t body_bytes;     /* received so far */
  int expect_continue;
  int msg_complete;
  int resp_started, resp_done;
  int status;
  uint64_t resp_bytes;
  uint64_t t_start;
  /* The origin-dependent part of the answer, decided once per request. */
  int cors_evaluated;
  cg_cors_result_t cors;
  char *cors_hdrs; /* the header lines evaluate wrote, copied out of the worker's scratch */
  size_t cors_len;
  int cors_block; /* cors_hdrs is a CG_HDR_BLOCK-sized block, for the worker's spares */
  int cors_untrusted; /* the head was malformed: nothing in it may be echoed */
  /* A plugin's decision for this origin (from the cache). */
  int plugin_asked, decided, waiting, in_dispatch;
  const cg_cors_override_t *decision_ov; /* valid while deciding: the cache may drop it later */
  cg_dcache_waiter_t waiter;
  char tenant[64];
  const char *cache_result; /* the decision cache's answer (access log), NULL: not asked */
  uint64_t hook_t0, hook_us; /* time waited for a plugin decision */
  uint64_t up_t0, up_us;     /* from the first upstream attempt to its response head */
  char cors_origin[CG_CORS_ORIGIN_MAX + 1]; /* the normalized origin, for per-response hooks */
  cg_origin_t origin; /* parsed once for the plugin's cache (its strings in cors_origin), if origin_parsed */
  int origin_parsed;
  int local_status; /* a gateway answer decided at the head (preflights), sent at the request's end */
  /* Proxy state. */
  struct cg_upconn *up;
  int up_attempts;
  int up_ready;     /* head written: request body may flow */
  uint64_t up_sent; /* body bytes forwarded */
  /* Set by the proxy when the upstream does not take the request body as
   * fast as it comes: the protocol stops reading it (HTTP/1.1) or withholds
   * flow-control credit, until body_drained. */
  int body_bp;
} cg_req_t;

typedef struct cg_exchange cg_exchange_t;

/* What the protocol does for the exchange's response. Every call is made on
 * the worker's loop; none may be made after the protocol said the client is
 * gone (cg_exchange_t.gone). */
typedef struct cg_exchange_ops {
  /* A whole response the gateway makes: its status, header lines of its own
   * ("Name: value\r\n" each) and body. The protocol adds the CORS lines, the
   * date and the framing, then ends the exchange. */
  void (*respond)(cg_exchange_t *x, int status, const char *headers, size_t headers_len, const char *body,
                  size_t body_len);
  /* The upstream's response head (uh: its status line's reason in url, its
   * headers): the protocol passes on what cg_exchange_keep_upstream_header
   * keeps, with the CORS lines and its own framing. content_length is the
   * body's, or -1 when the upstream delimits it otherwise; no_body: none
   * follows (HEAD, 204, 304). 0, or -1 when the client is gone. */
  int (*response_head)(cg_exchange_t *x, int status, const cg_head_t *uh, int64_t content_length, int no_body);
  /* A piece of the response body. 0, or -1 when the client is gone. */
  int (*response_body)(cg_exchange_t *x, const char *at, size_t len);
  /* The body's last byte has been given: the protocol ends the response on
   * the wire (HTTP/1.1's last chunk, HTTP/2's END_STREAM), in the same write
   * as the last piece when they come together. */
  void (*response_finish)(cg_exchange_t *x);
  /* The response is complete and sent (or queued): the protocol ends the
   * exchange (its access log line, the connection's next request). */
  void (*response_end)(cg_exchange_t *x);
  /* The gateway answers with an error of its own (an upstream that failed
   * before its response began, a loop): status and why, for the client. */
  void (*fail)(cg_exchange_t *x, int status, const char *why);
  /* The response cannot be completed (the upstream failed after its head
   * went out): the client is cut off. */
  void (*abort)(cg_exchange_t *x);
  /* 1 while the client does not take the response as fast as it comes: the
   * proxy stops reading the upstream until body_drained... */
  int (*send_blocked)(const cg_exchange_t *x);
  /* The upstream took the request head: the request body may flow. */
  void (*body_resume)(cg_exchange_t *x);
  /* The upstream drained what it was sent: the request body may flow again
   * (req.body_bp was set while it did not). */
  void (*body_drained)(cg_exchange_t *x);
  /* Tells the client to send its body (Expect: 100-continue). */
  void (*send_continue)(cg_exchange_t *x);
  /* Writes between cork and uncork leave together. An exchange that ends
   * (response_end) or is cut off (abort) while corked has its corks released
   * by the protocol: the caller uncorks only an exchange still in progress. */
  void (*cork)(cg_exchange_t *x);
  void (*uncork)(cg_exchange_t *x);
  /* The route's plugin decided the origin while the request waited: go on. */
  void (*decided)(cg_exchange_t *x);
} cg_exchange_ops_t;

struct cg_worker;
struct cg_proxy;

struct cg_exchange {
  const cg_exchange_ops_t *ops;
  struct cg_worker *w;     /* the worker serving it (the server side's) */
  struct cg_proxy *proxy;  /* the worker's upstream pools */
  cg_head_t head;          /* the request: method, target (origin-form), headers (Host the authority) */
  cg_req_t req;
  const char *proto;       /* "HTTP/1.1", "HTTP/1.0": for Via and the access log */
  const char *scheme;      /* "http" or "https": for X-Forwarded-Proto */
  const char *tls;         /* the TLS version ("TLSv1.3"); NULL: plain */
  int gone;                /* the client has gone: nothing more can be sent */
  char peer[64];           /* the client's address */
};

/* Whether header i of an upstream response head goes to the client: not a
 * hop-by-hop one, not the Content-Length a protocol frames itself (unless
 * no_body), not one the route's CORS policy owns (the gateway's answer
 * replaces the upstream's). */
int cg_exchange_keep_upstream_header(const cg_exchange_t *x, const cg_head_t *uh, int i, int no_body);

#endif
