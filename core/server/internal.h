#ifndef CG_SERVER_INTERNAL_H
#define CG_SERVER_INTERNAL_H
/* Shared by the files of the server: a worker, its HTTP/1.1 connections, and
 * the glue between an exchange and routing, CORS, plugins and the gateway's
 * own answers. Everything here belongs to exactly one worker thread: nothing
 * is locked because nothing is shared. The proxy sees none of it (only the
 * exchange, http/exchange.h). */
#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#include "cache/cache.h"
#include "cache/store.h"
#include "config/config.h"
#include "cors/cors.h"
#include "http/buf.h"
#include "http/exchange.h"
#include "http/head.h"
#include "proxy/proxy.h"
#include "server/metrics.h"
#include "util/ascii.h"
#include "util/list.h"
#include "util/topk.h"

/* --- worker -------------------------------------------------------------- */

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

/* One of a worker's listening sockets (an entry of cfg->listeners). */
typedef struct cg_listener {
  uv_tcp_t tcp;
  int fd;
  int index;   /* into cfg->listeners */
  int waiting; /* a connection waits in libuv for a free slot */
  struct cg_worker *w;
} cg_listener_t;

/* A connection a retiring worker hands to its successor at a reload: the
 * socket (a duplicate) and, for TLS, its engine, whose session lives on. */
typedef struct cg_handover {
  int fd;
  int listener; /* index into cfg->listeners */
  struct cg_tls_conn *tls;
} cg_handover_t;

typedef struct cg_worker {
  int id;
  const cg_config_t *cfg;
  uv_loop_t loop;
  uv_thread_t thread;
  cg_listener_t listeners[CG_MAX_LISTENERS];
  int n_listeners;
  uv_async_t wake;
  uv_timer_t drain_timer;
  cg_list_t conns; /* every client connection */
  int n_conns;
  int accept_waiting; /* some listener waits for a free slot */
  int draining;
  int listener_closed;
  cg_proxy_t *proxy; /* the upstream pools */
  struct cg_lua_host *lua;      /* NULL when no route names a plugin */
  cg_dcache_t *dcache; /* the front (L1) of the decisions: this worker's, small */
  /* The generation's process-wide decisions (L2, shared by its workers; NULL:
   * this worker's cache only), and its answers to this worker's waiters:
   * queued in store_done (under store_mu) by the worker whose hook decided,
   * taken in on this loop (store_async). */
  cg_dstore_t *dstore;
  /* the store's purge count once this worker's cache had each purge too
   * (purge.c): its stale copies go back to the store only while equal */
  uint64_t purges_seen;
  uv_async_t store_async;
  uv_mutex_t store_mu;
  cg_list_t store_waits; /* every waiter of this worker on the store */
  cg_list_t store_done;  /* under store_mu: the answered ones */
  int store_open;        /* under store_mu: store_async takes answers */
  int store_made;        /* store_mu and store_async were made */
  int stopping;          /* the plugin host is being freed: its hooks report nothing to keep */
  cg_dcache_t *cert_cache; /* certificates from listeners' hooks; NULL when no listener has one */
  cg_cors_override_t **deny_ov;  /* per route: what a denial or a failed hook answers */
  cg_cors_override_t **allow_ov; /* per route: what a plain "allowed" answers */
  unsigned char *has_expose;    /* per route: its plugin has an expose_headers hook */
  char rbuf[65536]; /* one read buffer for every socket of the worker: data is consumed in the read callback */
  char tls_plain[CG_TLS_READ_CAP]; /* what a TLS connection's read decrypts to, one record at a time */
  int rbuf_busy;
  char cors_scratch[CG_CORS_BUF_SIZE];
  /* Spare blocks for the CORS header lines a request keeps from its decision
   * to its answer (cg_cors_hdrs_*): taken and given back here, so a request
   * allocates nothing. */
  char *hdr_blocks[CG_HDR_BLOCKS];
  int n_hdr_blocks;
  cg_metrics_t metrics; /* written by this worker only; the admin API reads snapshots */
  cg_topk_t refused;    /* the top refused (route, reason, origin): GET /refused */
  uv_async_t rpc_async;
  uv_mutex_t rpc_mu;
  uv_cond_t rpc_cv;
  cg_rpc_t *rpc_head;
  int rpc_closed; /* the loop is ending: calls fail at once */
  cg_list_t h2_flush; /* HTTP/2 connections whose output is owed (server/h2.h) */
  uv_idle_t h2_idle;  /* sends it, active while some is owed */
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
  cg_handover_t *adopt; /* under rpc_mu */
  int n_adopt, cap_adopt;
  int adopt_closed;      /* under rpc_mu: the loop is ending, hand-overs are refused */
  uv_async_t *on_exit;   /* on the main loop: sent when the thread's loop has ended */
  int exited;            /* under rpc_mu */
} cg_worker_t;

/* Sets up w for cfg: its listeners (bound, listening), loop, pools and
 * plugin host. Returns 0, or -1 (logged). Exposed for the request-path
 * fuzzer, which drives one worker's loop itself. */
int cg_worker_init(cg_worker_t *w, int id, const cg_config_t *cfg);
/* The same on inherited listening sockets, one per cfg->listeners (NULL: new
 * ones): a reload keeps the kernel's sockets, and with them the connections
 * waiting in their backlogs. */
int cg_worker_init_fd(cg_worker_t *w, int id, const cg_config_t *cfg, const int *listen_fds);
/* (both return -2 when only the plugin host failed: the loop is whole) */
/* Hands a connection over to w (from another thread). Returns 0, or -1 when
 * w no longer takes connections (the caller closes the fd and frees tls). */
int cg_worker_adopt(cg_worker_t *w, cg_handover_t h);

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

typedef struct cg_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uint64_t deadline;  /* loop time (ms) of the timeout in force; 0: none (see conn_set_timeout) */
  uint64_t timer_due; /* when timer fires: never after deadline */
  cg_worker_t *w;
  cg_list_t link;
  cg_conn_state_t state;
  llhttp_t parser;
  cg_exchange_t x; /* the request being served (one at a time) */
  int listener;       /* index into cfg->listeners */
  cg_tls_conn_t *tls; /* NULL: plain HTTP */
  int handshaking;    /* TLS: the handshake is not done (the head timeout runs from the accept) */
  cg_dcache_waiter_t cert_waiter; /* the handshake waits on its listener's certificate hook */
  int cert_waiting, cert_in_lookup;
  /* this request's HTTP/1.x particulars, cleared with it */
  int http_minor;
  int keep_alive;   /* the connection goes on after this response */
  int resp_chunked; /* the response body is re-chunked towards the client */
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
  int trimmed;      /* idle, its buffers given back (conn_trim) */
  int h2_checked;   /* the first bytes were looked at for HTTP/2's preface */
  char pre[2];      /* a first read too short to tell (h2c's preface or HTTP/1.1) */
  uint8_t pre_len;
  uint64_t lingered; /* bytes dropped while lingering */
  int lingering;    /* our side is shut: what the client still sends is read and dropped (cg_conn_linger) */
  struct cg_h2 *h2; /* HTTP/2 (server/h2.h): the session that takes the bytes; NULL: HTTP/1.1 */
  cg_buf_t obuf;
} cg_conn_t;

/* conn.c */
void cg_conn_accept(cg_listener_t *l);
void cg_conn_adopt(cg_worker_t *w, cg_handover_t h); /* a connection handed over at a reload */
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
/* Ends the connection after what is queued, without losing it: our side is
 * shut once it is written, and the client's bytes still coming are read
 * and dropped for a while, since closing with unread bytes makes the kernel
 * reset the connection, and the client may then never read our last frames
 * (an HTTP/2 GOAWAY saying why). */
void cg_conn_linger(cg_conn_t *c);
/* Arms the timeout the connection's state calls for. */
void cg_conn_arm_timer(cg_conn_t *c);
/* The timeout in force from now (0: none). (conn_timer.c, with the timer) */
void cg_conn_set_timeout(cg_conn_t *c, uint64_t ms);
void cg_conn_on_timer(uv_timer_t *t);
/* An idle connection gives its buffers back this long after it went idle
 * (the timer fires early once for it). */
enum { CG_CONN_TRIM_MS = 2000 };
/* Refuses the request with a gateway-made response and closes after it. */
void cg_conn_refuse(cg_conn_t *c, int status, const char *why);
/* Bytes the client sent (decrypted, for TLS): parsed, or kept while paused. */
void cg_conn_input(cg_conn_t *c, const char *data, size_t n);
/* The client closed its side (or sent TLS's close_notify). */
void cg_conn_peer_closed(cg_conn_t *c);

/* conn_io.c: writes, and TLS */
size_t cg_conn_write_queue(const cg_conn_t *c);
/* Sends what corking collected (before a response's end decides on the connection). */
void cg_conn_flush(cg_conn_t *c);
/* Bytes read on a TLS connection: the handshake, then decrypted input. */
void cg_conn_tls_received(cg_conn_t *c, const char *data, size_t n);
/* The handshake goes on after its certificate hook answered. */
void cg_conn_tls_resume(cg_conn_t *c);
/* A close_notify before the socket closes, if it goes now. */
void cg_conn_tls_close(cg_conn_t *c, int graceful);

/* http1.c: an exchange's response on an HTTP/1.1 connection. */
extern const cg_exchange_ops_t cg_http1_ops;
const char *cg_status_reason(int status);
/* Refreshes w->date ("Date: ...\r\n"), once a second. */
void cg_worker_date(cg_worker_t *w);

/* respond.c: the gateway's own answers, through x->ops->respond. */
/* The header lines of a response of the gateway's own, whatever the
 * protocol frames them in: Date, headers (lines of the caller's), the
 * listener's HSTS line (NULL: none), the CORS lines. */
void cg_respond_own_lines(cg_exchange_t *x, cg_buf_t *b, const char *headers, size_t headers_len, const char *hsts);
/* The header lines of a proxied response: the upstream's that go on (uh),
 * the plugin's per-response Expose-Headers, HSTS unless the upstream set
 * its own, the CORS lines with the merged Vary. */
void cg_respond_upstream_lines(cg_exchange_t *x, cg_buf_t *b, int status, const cg_head_t *uh, int no_body,
                               const char *hsts);
void cg_respond_error(cg_exchange_t *x, int status, const char *message);
/* The same, the message after a literal prefix of ours (not escaped). */
void cg_respond_error2(cg_exchange_t *x, int status, const char *prefix, const char *message);
void cg_respond_local(cg_exchange_t *x); /* a preflight's answer, echo, static, 404, at the request's end */
/* Appends s as a JSON string (quoted, escaped). */
void cg_buf_json(cg_buf_t *b, const char *s, size_t n);

/* access_log.c: one line per exchange, text or JSON, ms after its start. */
void cg_access_log(const cg_exchange_t *x, uint64_t ms);

/* cors_glue.c: decides the CORS answer for the current request once;
 * as_actual treats a preflight as an ordinary request (for gateway errors). */
void cg_cors_decide(cg_exchange_t *x, int as_actual);
/* Adds the route's CORS header lines and the merged Vary for this request to
 * b; upstream_head's Vary values (it may be NULL) are merged into ours. */
void cg_respond_cors_headers(cg_exchange_t *x, cg_buf_t *b, const cg_head_t *upstream_head);
/* Lets go of the request's CORS header lines (back to the worker's spares). */
void cg_cors_hdrs_release(cg_worker_t *w, cg_req_t *r);
/* Frees the worker's spare blocks (at its end). */
void cg_cors_hdrs_free_spares(cg_worker_t *w);

/* plugin_glue.c */
/* 1: the request waits for a decision (x->ops->decided follows); 0: decided. */
int cg_plugin_decide(cg_exchange_t *x);
/* The worker's link to its generation's decision store (w->dstore): made
 * with the plugin host, closed before its cache goes (idempotent). */
int cg_plugin_store_open(cg_worker_t *w);
void cg_plugin_store_close(cg_worker_t *w);
void cg_plugin_cancel(cg_exchange_t *x);

/* console.c: the console's page, script or style for path: 1 with its
 * type and bytes, or 0. */
int cg_console_asset(const char *path, size_t path_len, const char **type, const char **body, size_t *len);

/* refused.c: a CORS refusal into the worker's top refused origins (origin:
 * the normalized one, or NULL for the Origin bytes as sent); the workers'
 * summaries merged as the JSON of GET /refused (malloc'd; limit <= 0: all). */
void cg_refused_note(cg_exchange_t *x, const char *origin, size_t origin_len);
char *cg_refused_render(cg_worker_t *workers, int n_workers, const cg_config_t *cfg, int limit, size_t *len);

/* admin.c: the serving config's workers (and the main loop), for purge.c */
cg_worker_t *cg_admin_workers(int *n, uv_loop_t **loop);

/* tenants_api.c: the admin API's /tenants, over the tenant store in Redis.
 * cg_tenants_handle returns 0 when path is not its own; else 1, and done
 * runs exactly once (maybe from inside the call) with the status and the
 * JSON body (valid during the call only). */
typedef void (*cg_tenants_done)(void *arg, int status, const char *body, size_t len);
typedef struct cg_tenants_req {
  int method; /* llhttp's HTTP_GET, ... */
  const char *path;
  const char *origin, *after, *limit, *match, *takeover; /* the query's, or NULL */
  const char *body;
  size_t body_len;
} cg_tenants_req_t;
int cg_tenants_handle(const cg_config_t *cfg, const cg_tenants_req_t *req, cg_tenants_done done, void *arg);
/* Makes (or, after a reload that changed redis, remakes) the store's
 * connection; stop closes it. */
void cg_tenants_store_update(uv_loop_t *loop, const cg_config_t *cfg);
void cg_tenants_store_stop(void);

/* cert_glue.c: certificates from a listener's hook (tls.plugin). How long an
 * answer is kept: a certificate (unless the hook says), none, a failure. */
enum { CG_CERT_TTL_MS = 3600000, CG_CERT_NONE_TTL_MS = 60000, CG_CERT_FAIL_TTL_MS = 10000 };
/* c's handshake paused for a certificate (CG_TLS_WANT_CERT): 1 when it was
 * answered now (the handshake goes on), 0 when c waits for the hook
 * (cg_conn_tls_resume follows). */
int cg_cert_lookup(cg_conn_t *c);
void cg_cert_cancel(cg_conn_t *c);
cg_dcache_t *cg_cert_cache_new(const cg_config_t *cfg);
void cg_plugin_expose(cg_exchange_t *x, const cg_head_t *upstream_head, int status);
/* conn.c: goes on with a request whose decision just arrived. */
void cg_conn_dispatch(cg_conn_t *c);

/* dispatch.c: after the route, who answers x. 1: it waits (for a plugin's
 * decision: x->ops->decided follows; for the upstream: body_resume
 * follows); 0: a local answer, sent at the request's end (cg_respond_local). */
int cg_dispatch(cg_exchange_t *x);

/* router.c */
const cg_route_t *cg_route_match(const cg_config_t *cfg, const char *host, size_t host_len,
                                 const char *path, size_t path_len);

/* worker.c */
void cg_worker_conn_closed(cg_worker_t *w);

#endif
