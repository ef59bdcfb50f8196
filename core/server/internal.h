#ifndef CG_SERVER_INTERNAL_H
#define CG_SERVER_INTERNAL_H
/* Shared between the server (client side) and the proxy (upstream side) of
 * one worker. Everything here belongs to exactly one worker thread: nothing is
 * locked because nothing is shared. */
#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#include "config/config.h"
#include "cache/cache.h"
#include "server/metrics.h"
#include "cors/cors.h"


#include "util/ascii.h"
#include "util/list.h"

/* --- message heads ------------------------------------------------------- */

/* The header names the gateway itself reads, recognized once when the name
 * is complete so that lookups compare a byte instead of the name. */
enum {
  CG_H_OTHER = 0,
  CG_H_HOST,
  CG_H_ORIGIN,
  CG_H_EXPECT,
  CG_H_VARY,
  CG_H_ACRM, /* Access-Control-Request-Method */
  CG_H_ACRH, /* Access-Control-Request-Headers */
  CG_H_ACRPN, /* Access-Control-Request-Private-Network */
  CG_H_CONTENT_LENGTH,
  CG_H_X_FORWARDED_FOR,
  CG_H_X_FORWARDED_HOST,
  CG_H_X_FORWARDED_PROTO,
  CG_H_VIA,
  /* hop-by-hop (RFC 9110 7.6.1), never forwarded: from here to the end */
  CG_H_CONNECTION,
  CG_H_KEEP_ALIVE,
  CG_H_PROXY_CONNECTION,
  CG_H_TE,
  CG_H_TRAILER,
  CG_H_TRANSFER_ENCODING,
  CG_H_UPGRADE,
  CG_H_PROXY_AUTHENTICATE,
  CG_H_PROXY_AUTHORIZATION,
  CG_H_COUNT
};
_Static_assert(CG_H_COUNT <= 32, "cg_head_t.multi is a 32-bit mask of these");

/* One header: offsets into cg_head_t.buf, which may move when it grows. */
typedef struct cg_hdr {
  uint32_t name_off, name_len, val_off, val_len;
  uint8_t id; /* CG_H_*, set once the value begins */
} cg_hdr_t;

/* A parsed head (request or response). llhttp hands over fields in pieces
 * that may straddle reads, so the head's bytes are copied here: once per
 * read, by cg_head_sync, which the parser's owner calls when llhttp_execute
 * returns and when the head is complete (no string may be read before). The
 * store is bounded by max_bytes / max_headers and keeps its memory between
 * requests of a connection. */
typedef struct cg_head {
  char *buf;
  size_t len, cap, max_bytes;
  cg_hdr_t *hdrs;
  int n, hcap, max_headers;
  uint32_t url_off, url_len;     /* request target, or the reason phrase of a response */
  uint32_t method_off, method_len;
  int in_value;       /* the last piece was a value: a field piece starts a new header */
  int value_complete; /* the value of the last header has ended */
  int overflow;       /* 1: too many bytes, 2: too many headers */
  int obs_fold;       /* a continuation line was seen (refused) */
  const char *exec_start; /* start of the buffer llhttp is parsing now */
  const char *mark, *mark_end; /* the current read's bytes to copy (mark NULL: none) */
  size_t mark_off;             /* the store offset mark maps to */
  /* Where the CG_H_* names are, noted as they are recognized: a preflight
   * looks up eight of them, and scanning every header for each cost more
   * than recognizing the names. first[id] is 1 + the index of the first
   * header with that id (0: none); multi has bit id set when several do. */
  uint16_t first[CG_H_COUNT];
  uint32_t multi;
} cg_head_t;

void cg_head_init(cg_head_t *h, size_t max_bytes, int max_headers);
void cg_head_reset(cg_head_t *h);
void cg_head_free(cg_head_t *h);
int cg_head_on_url(cg_head_t *h, const char *at, size_t len);
int cg_head_on_method(cg_head_t *h, const char *at, size_t len);
int cg_head_on_field(cg_head_t *h, const char *at, size_t len);
int cg_head_on_value(cg_head_t *h, const char *at, size_t len);
void cg_head_on_value_complete(cg_head_t *h);
/* Copies what the current read holds of the head into the store. */
void cg_head_sync(cg_head_t *h);
/* Rewrites an absolute-form http(s) target (RFC 9112 3.2.2) into origin-form
 * in place, and says where its authority now lies in buf. 0, or -1 when the
 * target is not one (another scheme, no host, userinfo, a bad port). The head
 * must be synced. */
int cg_head_origin_form(cg_head_t *h, uint32_t *auth_off, uint32_t *auth_len);
/* Makes buf[off..off+len) the Host header's value, adding the header when
 * the head has none. 0, or -1 when there is no room for it. */
int cg_head_set_host(cg_head_t *h, uint32_t off, uint32_t len);
static inline const char *cg_head_name(const cg_head_t *h, int i) { return h->buf + h->hdrs[i].name_off; }
static inline const char *cg_head_value(const cg_head_t *h, int i) { return h->buf + h->hdrs[i].val_off; }
/* Index of the first header named name (case-insensitive) at or after from, or -1. */
int cg_head_find(const cg_head_t *h, const char *name, size_t name_len, int from);
/* The same for one of the CG_H_* names. */
static inline int cg_head_find_id(const cg_head_t *h, int id, int from) {
  int i = h->first[id] - 1;
  if (i < 0 || i >= h->n) return -1; /* none, or only in a header cut off (n lowered in a copy) */
  if (from <= i) return i;
  if (!((h->multi >> id) & 1)) return -1;
  for (i = from; i < h->n; i++)
    if (h->hdrs[i].id == id) return i;
  return -1;
}
static inline int cg_head_count_id(const cg_head_t *h, int id) {
  if (cg_head_find_id(h, id, 0) < 0) return 0;
  if (!((h->multi >> id) & 1)) return 1;
  int n = 0;
  for (int i = 0; i < h->n; i++) n += h->hdrs[i].id == id;
  return n;
}
static inline int cg_name_eq(const char *a, size_t alen, const char *b, size_t blen) {
  return cg_ascii_ieq(a, alen, b, blen);
}
/* Hop-by-hop per RFC 9110 7.6.1, plus any name the Connection header lists. */
int cg_head_is_hop_by_hop(const cg_head_t *h, int i);

/* --- output -------------------------------------------------------------- */

/* A growable byte buffer used to render heads before one write. */
typedef struct cg_buf {
  char *data;
  size_t len, cap;
  int borrowed; /* data is the caller's (stack) storage until the buffer grows */
} cg_buf_t;

/* A buffer starting in caller storage: no malloc for the common small case. */
#define CG_BUF_ON(storage) ((cg_buf_t){(storage), 0, sizeof(storage), 1})

void cg_buf_add_grow(cg_buf_t *b, const void *p, size_t n);
/* Inline when it fits (nearly always): a response head is a dozen of these. */
static inline void cg_buf_add(cg_buf_t *b, const void *p, size_t n) {
  if (n > b->cap - b->len) {
    cg_buf_add_grow(b, p, n);
    return;
  }
  if (n) memcpy(b->data + b->len, p, n); /* an empty value on a buffer not yet allocated: nothing to copy */
  b->len += n;
}
static inline void cg_buf_adds(cg_buf_t *b, const char *s) { cg_buf_add(b, s, strlen(s)); }
void cg_buf_addf(cg_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cg_buf_free(cg_buf_t *b);
void cg_buf_addu(cg_buf_t *b, uint64_t v);

/* --- worker -------------------------------------------------------------- */

typedef struct cg_target_state {
  uint64_t down_until; /* loop time in ms; 0: up */
  cg_list_t idle;      /* idle keep-alive cg_upconn_t, most recent last */
  int n_idle;
} cg_target_state_t;

typedef struct cg_upstream_state {
  const cg_upstream_conf_t *conf;
  cg_target_state_t *targets;
  unsigned rr;
} cg_upstream_state_t;

struct cg_worker;

/* A call the admin API makes on a worker's own loop (cg_worker_rpc). */
typedef struct cg_rpc {
  void (*fn)(struct cg_worker *w, void *arg);
  void *arg;
  int done;
  struct cg_rpc *next;
} cg_rpc_t;

/* A request's CORS header lines fit one block of this size but for extreme
 * header echoes (those are malloc'd); a worker keeps this many spare. */
enum { CG_HDR_BLOCK = 512, CG_HDR_BLOCKS = 64 };

typedef struct cg_worker {
  int id;
  const cg_config_t *cfg;
  uv_loop_t loop;
  uv_thread_t thread;
  uv_tcp_t listener;
  int listen_fd;
  uv_async_t wake;
  uv_timer_t drain_timer;
  cg_list_t conns; /* every client connection */
  int n_conns;
  int accept_waiting; /* a connection waits in libuv for a free slot */
  int draining;
  int listener_closed;
  cg_upstream_state_t *upstreams;
  struct cg_lua_host *lua;      /* NULL when no route names a plugin */
  cg_dcache_t *dcache;
  cg_cors_override_t **deny_ov;  /* per route: what a denial or a failed hook answers */
  cg_cors_override_t **allow_ov; /* per route: what a plain "allowed" answers */
  unsigned char *has_expose;    /* per route: its plugin has an expose_headers hook */
  char rbuf[65536]; /* one read buffer for every socket of the worker: data is consumed in the read callback */
  int rbuf_busy;
  char cors_scratch[CG_CORS_BUF_SIZE];
  /* Spare blocks for the CORS header lines a request keeps from its decision
   * to its answer (cg_cors_hdrs_*): taken and given back here, so a request
   * allocates nothing. */
  char *hdr_blocks[CG_HDR_BLOCKS];
  int n_hdr_blocks;
  cg_metrics_t metrics; /* written by this worker only; the admin API reads snapshots */
  uv_async_t rpc_async;
  uv_mutex_t rpc_mu;
  uv_cond_t rpc_cv;
  cg_rpc_t *rpc_head;
  int rpc_closed; /* the loop is ending: calls fail at once */
  char date[40]; /* "Date: ...\r\n" for gateway-made responses, refreshed once a second */
  size_t date_len;
  uint64_t date_sec;
  /* reload: a retiring worker hands its connections to its successor, which
   * takes them in on its own loop (adopt_async) */
  uint64_t shadow_log_sec; /* shadow_cors log lines: this second's count */
  int shadow_log_n;
  struct cg_worker *successor;
  int retire;            /* set by the main thread before waking the worker */
  uv_async_t adopt_async;
  int *adopt_fds;        /* under rpc_mu */
  int n_adopt, cap_adopt;
  int adopt_closed;      /* under rpc_mu: the loop is ending, hand-overs are refused */
  uv_async_t *on_exit;   /* on the main loop: sent when the thread's loop has ended */
  int exited;            /* under rpc_mu */
} cg_worker_t;

/* Sets up w for cfg: its listener (bound, listening), loop, pools and plugin
 * host. Returns 0, or -1 (logged). Exposed for the request-path fuzzer,
 * which drives one worker's loop itself. */
int cg_worker_init(cg_worker_t *w, int id, const cg_config_t *cfg);
/* The same on an inherited listening socket (a reload keeps the kernel's
 * socket, and with it the connections waiting in its backlog). */
int cg_worker_init_fd(cg_worker_t *w, int id, const cg_config_t *cfg, int listen_fd);
/* (both return -2 when only the plugin host failed: the loop is whole) */
/* Hands connection fd over to w (from another thread). Returns 0, or -1 when
 * w no longer takes connections (the caller closes fd). */
int cg_worker_adopt(cg_worker_t *w, int fd);

/* Runs fn(w, arg) on w's loop and waits for it (from the main thread).
 * Returns 0, or -1 when the worker has stopped. */
int cg_worker_rpc(cg_worker_t *w, void (*fn)(cg_worker_t *w, void *arg), void *arg);

/* --- client connection --------------------------------------------------- */

typedef enum {
  CG_CONN_IDLE,   /* between requests */
  CG_CONN_HEAD,   /* receiving a request head */
  CG_CONN_ACTIVE, /* a request is being served */
  CG_CONN_CLOSING
} cg_conn_state_t;

typedef enum { CG_REQ_NONE, CG_REQ_PROXY, CG_REQ_LOCAL } cg_req_kind_t;

struct cg_upconn;

typedef struct cg_req {
  cg_req_kind_t kind;
  const cg_route_t *route;
  int http_minor;
  int method; /* llhttp_method_t */
  int keep_alive;
  int has_body, chunked;
  uint64_t content_length; /* when !chunked */
  uint64_t body_bytes;     /* received so far */
  int expect_continue;
  int msg_complete;
  int resp_started, resp_done;
  int resp_chunked; /* the response body is re-chunked towards the client */
  int resp_close_delimited;
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
  int body_bp;      /* client reading stopped: the upstream is not keeping up */
} cg_req_t;

typedef struct cg_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uint64_t deadline;  /* loop time (ms) of the timeout in force; 0: none (see conn_set_timeout) */
  uint64_t timer_due; /* when timer fires: never after deadline */
  cg_worker_t *w;
  cg_list_t link;
  cg_conn_state_t state;
  llhttp_t parser;
  cg_head_t head;
  cg_req_t req;
  char *pending; /* unparsed bytes kept while the parser is paused */
  size_t pending_len, pending_cap;
  int paused;  /* the parser is paused: reading is off until it resumes */
  int in_parse; /* inside conn_parse: resuming continues there, not recursively */
  int kick;           /* the resumed parser must run even with no pending bytes */
  int skip_msg_end;   /* llhttp still owes the end of a request already answered */
  int resume_pending; /* resumed from inside a callback, before llhttp returned paused */
  int reading;
  int pending_writes;
  int close_when_flushed;
  int handles_open;
  int send_blocked; /* the upstream read is stopped until this client drains */
  int corked;       /* writes collect in obuf and leave in one write at uncork */
  cg_buf_t obuf;
  char peer[64];
} cg_conn_t;

/* conn.c */
void cg_conn_accept(cg_worker_t *w);
void cg_conn_adopt(cg_worker_t *w, int fd); /* a connection handed over at a reload */
void cg_conn_migrate_if_idle(cg_conn_t *c);
void cg_conn_close(cg_conn_t *c);
int cg_conn_write(cg_conn_t *c, const void *data, size_t len);
void cg_conn_cork(cg_conn_t *c);
void cg_conn_uncork(cg_conn_t *c);
int cg_conn_write2(cg_conn_t *c, const void *a, size_t alen, const void *b, size_t blen);
/* The response is fully queued: log it, then serve the next request or close. */
void cg_conn_response_done(cg_conn_t *c);
/* The request has been read to its end, or only its end is owed by the parser. */
int cg_conn_msg_end_known(const cg_conn_t *c);
/* The upstream is ready to take the request body: resume parsing. */
void cg_conn_resume(cg_conn_t *c);
void cg_conn_update_reading(cg_conn_t *c);
void cg_conn_drain(cg_conn_t *c); /* graceful shutdown: close when idle */
size_t cg_conn_write_queue(const cg_conn_t *c);

/* respond.c: gateway-made responses. */
void cg_respond_error(cg_conn_t *c, int status, const char *message);
/* The same, the message after a literal prefix of ours (not escaped). */
void cg_respond_error2(cg_conn_t *c, int status, const char *prefix, const char *message);
void cg_respond_local(cg_conn_t *c); /* echo, static, 404 at message end */
const char *cg_status_reason(int status);
/* "HTTP/1.1 204 No Content\r\n" */
void cg_buf_status_line(cg_buf_t *b, int status);
void cg_respond_common_headers(cg_conn_t *c, cg_buf_t *b);
void cg_worker_date(cg_worker_t *w);
/* Adds the route's CORS header lines and the merged Vary for this request to b;
 * vary_in are the upstream's Vary values (may be NULL). */
/* Appends s as a JSON string (quoted, escaped). */
void cg_buf_json(cg_buf_t *b, const char *s, size_t n);
void cg_respond_cors_headers(cg_conn_t *c, cg_buf_t *b, const cg_head_t *upstream_head);
/* Upstream response headers the gateway replaces (the route's CORS ones). */
int cg_respond_skip_upstream_header(const cg_conn_t *c, const char *name, size_t len);
/* "Connection: close" when this response ends the connection (decided now). */
void cg_respond_connection_header(cg_conn_t *c, cg_buf_t *b);

/* Decides the CORS answer for the current request once; as_actual treats a
 * preflight as an ordinary request (for gateway errors). */
void cg_cors_decide(cg_conn_t *c, int as_actual);
/* Lets go of the request's CORS header lines (back to the worker's spares). */
void cg_cors_hdrs_release(cg_worker_t *w, cg_req_t *r);
/* Frees the worker's spare blocks (at its end). */
void cg_cors_hdrs_free_spares(cg_worker_t *w);

/* plugin_glue.c */
/* 1: the request waits for a decision (cg_conn_dispatch follows); 0: decided. */
int cg_plugin_decide(cg_conn_t *c);
void cg_plugin_cancel(cg_conn_t *c);
void cg_plugin_expose(cg_conn_t *c, const cg_head_t *upstream_head, int status);
/* conn.c: goes on with a request whose decision just arrived. */
void cg_conn_dispatch(cg_conn_t *c);

/* router.c */
const cg_route_t *cg_route_match(const cg_config_t *cfg, const char *host, size_t host_len,
                                 const char *path, size_t path_len);

/* proxy.c */
void cg_proxy_start(cg_conn_t *c);
int cg_proxy_body(cg_conn_t *c, const char *at, size_t len);
void cg_proxy_body_end(cg_conn_t *c);
void cg_proxy_client_gone(cg_conn_t *c);
void cg_proxy_client_drained(cg_conn_t *c);
void cg_proxy_worker_init(cg_worker_t *w);
void cg_proxy_worker_close_idle(cg_worker_t *w);
void cg_proxy_worker_free(cg_worker_t *w);

/* worker.c */
void cg_worker_conn_closed(cg_worker_t *w);

#endif
