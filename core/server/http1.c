/* The HTTP/1.1 side of an exchange's response: what cg_http1_ops does with
 * the gateway's own answers and the upstream's, on the connection (conn.c)
 * the exchange came in on. Status line, Date, the CORS lines, framing
 * (Content-Length, or chunked re-framing for an upstream body of unknown
 * length, or the close for HTTP/1.0), and whether the connection goes on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/internal.h"

/* The statuses the gateway sends itself, with their reason phrases. */
#define CG_STATUSES(X)                  \
  X(100, "Continue")                    \
  X(200, "OK")                          \
  X(201, "Created")                     \
  X(202, "Accepted")                    \
  X(204, "No Content")                  \
  X(301, "Moved Permanently")           \
  X(302, "Found")                       \
  X(304, "Not Modified")                \
  X(400, "Bad Request")                 \
  X(401, "Unauthorized")                \
  X(403, "Forbidden")                   \
  X(404, "Not Found")                   \
  X(405, "Method Not Allowed")          \
  X(408, "Request Timeout")             \
  X(409, "Conflict")                    \
  X(413, "Content Too Large")           \
  X(414, "URI Too Long")                \
  X(417, "Expectation Failed")          \
  X(431, "Request Header Fields Too Large") \
  X(500, "Internal Server Error")       \
  X(502, "Bad Gateway")                 \
  X(503, "Service Unavailable")         \
  X(504, "Gateway Timeout")             \
  X(505, "HTTP Version Not Supported")   \
  X(508, "Loop Detected")

const char *cg_status_reason(int status) {
#define REASON(code, text) \
  case code:               \
    return text;
  switch (status) {
    CG_STATUSES(REASON)
  default: return "Unknown";
  }
#undef REASON
}

static void status_line(cg_buf_t *b, int status) {
  /* Whole lines as literals: one copy instead of five appends per response. */
#define LINE(code, text)                                  \
  case code: {                                            \
    static const char line[] = "HTTP/1.1 " #code " " text "\r\n"; \
    cg_buf_add(b, line, sizeof line - 1);                 \
    return;                                               \
  }
  switch (status) {
    CG_STATUSES(LINE)
  }
#undef LINE
  cg_buf_adds(b, "HTTP/1.1 ");
  cg_buf_addu(b, (uint64_t)status);
  cg_buf_adds(b, " Unknown\r\n");
}

void cg_worker_date(cg_worker_t *w) {
  time_t now = time(NULL);
  if ((uint64_t)now == w->date_sec) return;
  w->date_sec = (uint64_t)now;
  struct tm tm;
  gmtime_r(&now, &tm);
  w->date_len = strftime(w->date, sizeof w->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

static cg_conn_t *conn_of(cg_exchange_t *x) { return container_of(x, cg_conn_t, x); }

/* Whether the head announces the end of the connection. A proxied head goes
 * out before the parser (paused at the request's head) has seen the request's
 * end, so that is not asked here: cg_conn_response_done closes anyway when a
 * response beat its request's end. */
static int will_close(const cg_conn_t *c) {
  /* A request not read to its end cannot be followed by the next one: say so.
   * A worker retiring at a reload hands its connections over instead. */
  return !c->keep_alive || (c->w->draining && !c->w->successor) || !cg_conn_msg_end_known(c);
}

/* "Connection: close" when this response ends the connection (decided now). */
static void connection_header(cg_conn_t *c, cg_buf_t *b) {
  if (will_close(c)) {
    c->keep_alive = 0;
    cg_buf_adds(b, "Connection: close\r\n");
  } else if (c->http_minor == 0) {
    cg_buf_adds(b, "Connection: keep-alive\r\n");
  }
}

/* A whole response: status line, Date, the given header block, the CORS
 * headers, Content-Length, then the body (omitted for HEAD). */
static void h1_respond(cg_exchange_t *x, int status, const char *headers, size_t headers_len, const char *body,
                       size_t body_len) {
  cg_conn_t *c = conn_of(x);
  cg_req_t *r = &x->req;
  if (r->resp_started) return;
  r->resp_started = 1;
  r->status = status;
  char storage[2048];
  cg_buf_t b = CG_BUF_ON(storage);
  status_line(&b, status);
  cg_respond_own_lines(x, &b, headers, headers_len, c->w->cfg->listeners[c->listener].hsts);
  if (status >= 200 && status != 204 && status != 304) {
    cg_buf_adds(&b, "Content-Length: ");
    cg_buf_addu(&b, body_len);
    cg_buf_add(&b, "\r\n", 2);
  }
  connection_header(c, &b);
  cg_buf_add(&b, "\r\n", 2);
  int send_body = r->method != HTTP_HEAD && status != 204 && status != 304;
  cg_conn_write2(c, b.data, b.len, body, send_body ? body_len : 0);
  cg_buf_free(&b);
  cg_conn_response_done(c);
}

/* The upstream's head, decorated: what cg_exchange_keep_upstream_header
 * keeps, the plugin's per-response Expose-Headers, the CORS lines and Vary,
 * then this connection's framing. */
static int h1_response_head(cg_exchange_t *x, int status, const cg_head_t *uh, int64_t content_length, int no_body) {
  cg_conn_t *c = conn_of(x);
  cg_req_t *r = &x->req;
  char storage[4096];
  cg_buf_t b = CG_BUF_ON(storage);
  cg_buf_adds(&b, "HTTP/1.1 ");
  cg_buf_addu(&b, (uint64_t)status);
  cg_buf_add(&b, " ", 1);
  if (uh->url_len)
    cg_buf_add(&b, uh->buf + uh->url_off, uh->url_len);
  else
    cg_buf_adds(&b, cg_status_reason(status));
  cg_buf_add(&b, "\r\n", 2);
  cg_respond_upstream_lines(x, &b, status, uh, no_body, c->w->cfg->listeners[c->listener].hsts);
  if (!no_body) {
    if (content_length >= 0) {
      cg_buf_adds(&b, "Content-Length: ");
      cg_buf_addu(&b, (uint64_t)content_length);
      cg_buf_add(&b, "\r\n", 2);
    } else if (c->http_minor >= 1) {
      c->resp_chunked = 1;
      cg_buf_adds(&b, "Transfer-Encoding: chunked\r\n");
    } else {
      c->keep_alive = 0; /* an HTTP/1.0 client learns the end from the close */
    }
  }
  connection_header(c, &b);
  cg_buf_add(&b, "\r\n", 2);
  r->resp_started = 1;
  r->status = status;
  int rc = cg_conn_write(c, b.data, b.len);
  cg_buf_free(&b);
  return rc;
}

static int h1_response_body(cg_exchange_t *x, const char *at, size_t len) {
  cg_conn_t *c = conn_of(x);
  if (!c->resp_chunked) return cg_conn_write(c, at, len);
  char size[24];
  int n = snprintf(size, sizeof size, "%zx\r\n", len);
  /* one write per piece: size line, data and CRLF together */
  int rc = cg_conn_write2(c, size, (size_t)n, at, len);
  return rc == 0 ? cg_conn_write(c, "\r\n", 2) : rc;
}

static void h1_response_finish(cg_exchange_t *x) {
  cg_conn_t *c = conn_of(x);
  if (c->resp_chunked) cg_conn_write(c, "0\r\n\r\n", 5);
}

static void h1_response_end(cg_exchange_t *x) { cg_conn_response_done(conn_of(x)); }

static void h1_fail(cg_exchange_t *x, int status, const char *why) { cg_respond_error(x, status, why); }

static void h1_abort(cg_exchange_t *x) { cg_conn_close(conn_of(x)); }

static int h1_send_blocked(const cg_exchange_t *x) { return container_of(x, const cg_conn_t, x)->send_blocked; }

static void h1_body_resume(cg_exchange_t *x) { cg_conn_resume(conn_of(x)); }

static void h1_body_drained(cg_exchange_t *x) { cg_conn_update_reading(conn_of(x)); }

static void h1_send_continue(cg_exchange_t *x) { cg_conn_write(conn_of(x), "HTTP/1.1 100 Continue\r\n\r\n", 25); }

static void h1_cork(cg_exchange_t *x) { cg_conn_cork(conn_of(x)); }

static void h1_uncork(cg_exchange_t *x) { cg_conn_uncork(conn_of(x)); }

static void h1_decided(cg_exchange_t *x) { cg_conn_dispatch(conn_of(x)); }

const cg_exchange_ops_t cg_http1_ops = {
    .respond = h1_respond,
    .response_head = h1_response_head,
    .response_body = h1_response_body,
    .response_finish = h1_response_finish,
    .response_end = h1_response_end,
    .fail = h1_fail,
    .abort = h1_abort,
    .send_blocked = h1_send_blocked,
    .body_resume = h1_body_resume,
    .body_drained = h1_body_drained,
    .send_continue = h1_send_continue,
    .cork = h1_cork,
    .uncork = h1_uncork,
    .decided = h1_decided,
};
