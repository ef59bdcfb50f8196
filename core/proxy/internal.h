#ifndef CG_PROXY_INTERNAL_H
#define CG_PROXY_INTERNAL_H
/* Shared by the proxy's files: proxy.c (targets, pools, the request and the
 * response) and upconn_io.c (an upstream connection's bytes: writes, and
 * TLS for HTTPS upstreams). */
#include <llhttp.h>
#include <uv.h>

#include "http/head.h"
#include "proxy/proxy.h"
#include "tls/tls.h"
#include "util/list.h"

#define UP_HIGH_WATER (256 * 1024)
#define UP_LOW_WATER (64 * 1024)
#define UP_IDLE_TIMEOUT_MS 60000

/* HTTPS: the session kept per target to resume, not resumed further than a
 * day from the full handshake it came from (the certificate is then checked
 * again). A session may serve several connections: no early data is sent,
 * so there is nothing to replay, and a gateway's connections to its own
 * upstreams have no privacy to lose by being linkable. */
#define UP_SESSION_MAX_AGE_MS (24ull * 3600 * 1000)

typedef struct cg_up_session {
  cg_tls_session_t *s;
  uint64_t born; /* loop time of the full handshake it descends from */
} cg_up_session_t;

typedef struct cg_target_state {
  uint64_t down_until; /* loop time in ms; 0: up */
  cg_up_session_t session; /* .s NULL: none */
  cg_list_t idle;      /* idle keep-alive cg_upconn_t, most recent last */
  int n_idle;
} cg_target_state_t;

typedef struct cg_upstream_state {
  const cg_upstream_conf_t *conf;
  cg_target_state_t *targets;
  unsigned rr;
} cg_upstream_state_t;

struct cg_proxy {
  uv_loop_t *loop;
  const cg_config_t *cfg;
  char *rbuf;
  size_t rbuf_len;
  cg_proxy_error_cb on_error;
  void *arg;
  int draining; /* no connection goes back to a pool */
  char *plain;  /* what an HTTPS upstream's records decrypt to (CG_TLS_READ_CAP); NULL: none */
  cg_upstream_state_t *upstreams; /* one per cfg->upstreams */
};

typedef struct cg_upconn {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_timer_t timer;
  cg_proxy_t *p;
  cg_upstream_state_t *us;
  int ti; /* target index */
  llhttp_t parser;
  cg_head_t head;
  cg_exchange_t *x; /* the exchange served; NULL while idle in the pool */
  cg_list_t idle_link;
  int handles_open;
  int closing, connected, reused, idle;
  int got_bytes;     /* something of the response arrived */
  int informational; /* a 1xx head is being skipped */
  int resp_complete;
  int req_sent; /* the request's end is written */
  int read_paused;
  int no_reuse;
  int pending_writes;
  cg_tls_conn_t *tls; /* HTTPS: the connection's TLS; NULL: plain */
  int handshaking;    /* HTTPS: connected, the handshake not done (the connect timeout runs on) */
  uint64_t session_born; /* HTTPS: when the full handshake this connection's session descends from was */
} cg_upconn_t;


/* proxy.c, for upconn_io.c */
/* A piece of the upstream's response (plain bytes, decrypted for HTTPS): parsed and relayed. */
void cg_up_parse(cg_upconn_t *u, const char *data, size_t n);
/* The upstream ended its side: a close-delimited body ends (clean: TCP's
 * end of plain HTTP, TLS's close_notify), else the exchange fails. */
void cg_up_eof(cg_upconn_t *u, ssize_t nread, int clean);
/* The connection is ready for the request (connected, TLS done). */
void cg_up_ready(cg_upconn_t *u);
void cg_up_fail(cg_upconn_t *u, int status, const char *why, int retryable);
void cg_up_mark_down(cg_upconn_t *u, const char *why);
void cg_up_close(cg_upconn_t *u);

/* upconn_io.c */
/* Sends a, b and x (any may be empty): at once when the socket takes them,
 * else copied and queued; encrypted first on an HTTPS connection. 0 or < 0. */
int cg_up_write3(cg_upconn_t *u, const void *a, size_t al, const void *b, size_t bl, const void *x, size_t xl);
/* TCP is connected: plain HTTP is ready; HTTPS starts its handshake. */
void cg_up_connected(cg_upconn_t *u);
/* Bytes read on an HTTPS connection: the handshake, then decrypted responses. */
void cg_up_tls_received(cg_upconn_t *u, const char *data, size_t n);
/* An idle HTTPS connection being closed: a close_notify, if the socket takes it now. */
void cg_up_tls_close(cg_upconn_t *u);

#endif
