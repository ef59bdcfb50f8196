/* An HTTP/2 stream as an exchange: its decoded head checked (RFC 9113
 * section 8) and made into the request model every protocol shares, its
 * body passed to the upstream as the upstream takes it (the stream's window
 * opens only then), and the exchange's calls for the response rendered as
 * HEADERS and DATA frames (queued; h2.c sends them).
 *
 * What goes upstream is HTTP/1.1 built from the head the gateway parsed,
 * never from the client's bytes: a field whose value holds CR, LF or NUL, a
 * connection-specific field, transfer-encoding, a :path with spaces or
 * controls, or DATA beyond the content-length never get there, and an empty
 * DATA frame is never passed on (to a chunked upstream body it would be the
 * last chunk). */
#include <stdlib.h>
#include <string.h>

#include "server/h2.h"
#include "util/authority.h"
#include "util/log.h"

/* A response body held for the client past this (a stream's, or all of a
 * connection's streams') tells the proxy to stop reading the upstream until
 * the client's window lets it go. */
#define STREAM_HIGH (64 * 1024)
#define CONN_HIGH (256 * 1024)

static cg_h2_stream_t *stream_of(cg_exchange_t *x) { return container_of(x, cg_h2_stream_t, x); }

static void consume(cg_h2_stream_t *st, size_t n) {
  if (n && nghttp2_session_consume(st->h2->ng, st->id, n) != 0) nghttp2_session_consume_connection(st->h2->ng, n);
}

static void reset(cg_h2_stream_t *st, uint32_t code) {
  nghttp2_submit_rst_stream(st->h2->ng, NGHTTP2_FLAG_NONE, st->id, code);
  cg_h2_schedule(st->h2);
}

cg_h2_stream_t *cg_h2_stream_new(cg_h2_t *h2, int32_t id) {
  cg_conn_t *c = h2->c;
  cg_worker_t *w = c->w;
  cg_h2_stream_t *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->h2 = h2;
  st->id = id;
  st->content_length = -1;
  cg_exchange_t *x = &st->x;
  x->ops = &cg_h2_ops;
  x->w = w;
  x->proxy = w->proxy;
  x->proto = "HTTP/2.0";
  x->scheme = c->tls ? "https" : "http";
  x->tls = c->x.tls;
  memcpy(x->peer, c->x.peer, sizeof x->peer);
  cg_head_init(&x->head, w->cfg->limits.max_head_bytes, w->cfg->limits.max_headers);
  x->req.t_start = uv_now(&w->loop);
  cg_list_push(&h2->streams, &st->link);
  h2->n_streams++;
  if (h2->empty_frames) h2->empty_frames--; /* a real request earns back one empty frame */
  c->state = CG_CONN_ACTIVE;
  return st;
}

void cg_h2_stream_free(cg_h2_stream_t *st) {
  cg_h2_t *h2 = st->h2;
  /* body bytes it held or forwarded unacknowledged: the connection's window
   * gets them back (the stream's is gone with it) */
  if (st->in.len + st->unconsumed) nghttp2_session_consume_connection(h2->ng, st->in.len + st->unconsumed);
  h2->out_bytes -= st->out.len - st->out_off;
  cg_cors_hdrs_release(st->x.w, &st->x.req);
  cg_head_free(&st->x.head);
  cg_buf_free(&st->cookie);
  cg_buf_free(&st->in);
  cg_buf_free(&st->out);
  cg_list_remove(&st->link);
  if (--h2->n_streams == 0) {
    if (h2->c->state == CG_CONN_ACTIVE) h2->c->state = CG_CONN_IDLE;
    h2->idle_at = uv_now(&h2->c->w->loop);
  }
  free(st);
}

/* --- the request's head ------------------------------------------------------ */

static int refuse(cg_h2_stream_t *st, int status, const char *why) {
  if (!st->refuse) {
    st->refuse = status;
    st->refuse_why = why;
  }
  return 0; /* the rest of the head is decoded (HPACK's state) but not kept */
}

static int method_of(const char *s, size_t n) {
#define METHOD(num, name, string) \
  if (n == sizeof #string - 1 && memcmp(s, #string, n) == 0) return num;
  HTTP_METHOD_MAP(METHOD)
#undef METHOD
  return -1;
}

/* RFC 9113 8.3.1 and RFC 3986: a path is visible ASCII, a space or a
 * control would split the request line the upstream reads. */
static int path_ok(const uint8_t *p, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (p[i] <= 0x20 || p[i] >= 0x7f) return 0;
  return p[0] == '/' || (n == 1 && p[0] == '*');
}

static int value_ok(const uint8_t *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (v[i] == '\r' || v[i] == '\n' || v[i] == 0) return 0;
  return 1;
}

static int64_t parse_length(const uint8_t *v, size_t n) {
  if (n == 0 || n > 18) return -1;
  int64_t x = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return -1;
    x = x * 10 + (v[i] - '0');
  }
  return x;
}

static int pseudo(cg_h2_stream_t *st, const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen) {
  cg_head_t *h = &st->x.head;
  const char *v = (const char *)value;
  int *seen = NULL;
  if (nlen == 7 && memcmp(name, ":method", 7) == 0) seen = &st->have_method;
  else if (nlen == 5 && memcmp(name, ":path", 5) == 0) seen = &st->have_path;
  else if (nlen == 7 && memcmp(name, ":scheme", 7) == 0) seen = &st->have_scheme;
  else if (nlen == 10 && memcmp(name, ":authority", 10) == 0) seen = &st->have_authority;
  else return refuse(st, 400, "unknown pseudo-header");
  if (*seen) return refuse(st, 400, "duplicated pseudo-header");
  *seen = 1;
  if (h->n > 0 || st->cookie.len) return refuse(st, 400, "pseudo-header after a regular field");
  if (seen == &st->have_method) {
    for (size_t i = 0; i < vlen; i++)
      if (!cg_ascii_tchar(value[i])) return refuse(st, 400, "invalid method");
    if (vlen == 0) return refuse(st, 400, "invalid method");
    if (cg_head_put_method(h, v, vlen) < 0) return refuse(st, 431, "request head too large");
  } else if (seen == &st->have_path) {
    if (!path_ok(value, vlen)) return refuse(st, 400, "invalid :path");
    if (cg_head_put_url(h, v, vlen) < 0) return refuse(st, 431, "request head too large");
  } else if (seen == &st->have_scheme) {
    if (!(vlen == 4 && memcmp(v, "http", 4) == 0) && !(vlen == 5 && memcmp(v, "https", 5) == 0))
      return refuse(st, 400, "unsupported :scheme");
  } else {
    if (cg_authority_parse(v, vlen) <= 0) return refuse(st, 400, "invalid :authority");
    if (cg_head_put_string(h, v, vlen, &st->auth_off) < 0) return refuse(st, 431, "request head too large");
    st->auth_len = (uint32_t)vlen;
  }
  return 0;
}

int cg_h2_stream_header(cg_h2_stream_t *st, const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen) {
  if (st->refuse) return 0;
  if (!value_ok(value, vlen) || !value_ok(name, nlen)) return refuse(st, 400, "CR, LF or NUL in a field");
  if (nlen && name[0] == ':') return pseudo(st, name, nlen, value, vlen);
  for (size_t i = 0; i < nlen; i++)
    if (!cg_ascii_tchar(name[i]) || (name[i] >= 'A' && name[i] <= 'Z'))
      return refuse(st, 400, "invalid field name");
  if (nlen == 0) return refuse(st, 400, "invalid field name");
  if (nlen == 6 && memcmp(name, "cookie", 6) == 0) {
    /* crumbs join into the one field an HTTP/1.1 upstream expects */
    if (st->cookie.len) cg_buf_add(&st->cookie, "; ", 2);
    cg_buf_add(&st->cookie, value, vlen);
    if (st->cookie.len > st->x.head.max_bytes) return refuse(st, 431, "request head too large");
    return 0;
  }
  cg_head_t *h = &st->x.head;
  if (cg_head_put_header(h, (const char *)name, nlen, (const char *)value, vlen) < 0)
    return refuse(st, 431, "request head too large");
  switch (h->hdrs[h->n - 1].id) {
  case CG_H_CONNECTION:
  case CG_H_KEEP_ALIVE:
  case CG_H_PROXY_CONNECTION:
  case CG_H_TRANSFER_ENCODING:
  case CG_H_UPGRADE:
    return refuse(st, 400, "connection-specific field in an HTTP/2 request");
  case CG_H_TE:
    if (!(vlen == 8 && memcmp(value, "trailers", 8) == 0)) return refuse(st, 400, "te other than \"trailers\"");
    break;
  case CG_H_CONTENT_LENGTH: {
    int64_t cl = parse_length(value, vlen);
    if (cl < 0 || (st->content_length >= 0 && st->content_length != cl))
      return refuse(st, 400, "invalid content-length");
    st->content_length = cl;
    break;
  }
  }
  return 0;
}

/* A local answer (or a refusal) reads no body: what came is acknowledged
 * and dropped, and the answer goes once the request has ended. */
static void local_ready(cg_h2_stream_t *st) {
  cg_req_t *r = &st->x.req;
  if (st->in.len) {
    consume(st, st->in.len);
    st->in.len = 0;
  }
  if (st->in_end && !r->resp_started) {
    r->msg_complete = 1;
    cg_respond_local(&st->x);
  }
}

static void head_refused(cg_h2_stream_t *st) {
  cg_exchange_t *x = &st->x;
  if (st->refuse == 400) x->req.cors_untrusted = 1; /* a malformed head is never echoed */
  cg_log_info("%s: HTTP/2 stream %d: %d %s", x->peer, st->id, st->refuse, st->refuse_why);
  x->req.kind = CG_REQ_LOCAL;
  cg_respond_error(x, st->refuse, st->refuse_why);
}

void cg_h2_stream_head(cg_h2_stream_t *st, int end_stream) {
  cg_exchange_t *x = &st->x;
  cg_req_t *r = &x->req;
  cg_head_t *h = &x->head;
  const cg_config_t *cfg = x->w->cfg;
  st->head_done = 1;
  st->body_at = uv_now(&x->w->loop);
  if (end_stream) st->in_end = st->bodyless = 1;
  cg_h2_schedule(st->h2);
  if (!st->refuse && st->cookie.len &&
      cg_head_put_header(h, "cookie", 6, st->cookie.data, st->cookie.len) < 0)
    refuse(st, 431, "request head too large");
  if (!st->refuse && (!st->have_method || !st->have_path || !st->have_scheme))
    refuse(st, 400, "a pseudo-header is missing");
  if (!st->refuse && (r->method = method_of(h->buf + h->method_off, h->method_len)) < 0)
    refuse(st, 400, "unknown method");
  if (st->refuse) {
    r->method = HTTP_GET;
    head_refused(st);
    return;
  }
  /* the authority: :authority, or a Host field; both must agree */
  int hosts = cg_head_count_id(h, CG_H_HOST);
  if (hosts > 1) refuse(st, 400, "several Host fields");
  else if (st->have_authority && hosts == 1) {
    int i = cg_head_find_id(h, CG_H_HOST, 0);
    if (!cg_name_eq(cg_head_value(h, i), h->hdrs[i].val_len, h->buf + st->auth_off, st->auth_len))
      refuse(st, 400, "Host differs from :authority");
  } else if (st->have_authority) {
    if (cg_head_set_host(h, st->auth_off, st->auth_len) < 0) refuse(st, 431, "request head too large");
  } else if (hosts == 0) {
    refuse(st, 400, "missing :authority");
  }
  /* A gateway is no tunnel, and TRACE would echo credentials to a script. */
  if (r->method == HTTP_CONNECT || r->method == HTTP_TRACE) refuse(st, 405, "method not allowed by the gateway");
  if (r->method != HTTP_OPTIONS && h->url_len == 1 && h->buf[h->url_off] == '*') refuse(st, 400, "invalid :path");
  if (end_stream && st->content_length > 0) refuse(st, 400, "content-length disagrees with the DATA received");
  if (st->refuse) {
    head_refused(st);
    return;
  }
  int i = cg_head_find_id(h, CG_H_HOST, 0);
  const char *host = cg_head_value(h, i);
  int host_len = cg_authority_parse(host, h->hdrs[i].val_len);
  if (host_len < 0) {
    refuse(st, 400, "invalid Host field");
    head_refused(st);
    return;
  }
  r->content_length = st->content_length > 0 ? (uint64_t)st->content_length : 0;
  r->chunked = !end_stream && st->content_length < 0; /* a body of unknown length: chunked upstream */
  r->has_body = r->chunked || r->content_length > 0;
  r->msg_complete = end_stream;
  if (r->content_length > cfg->limits.max_body_bytes) {
    refuse(st, 413, "request body too large");
    head_refused(st);
    return;
  }
  int e = cg_head_find_id(h, CG_H_EXPECT, 0);
  if (e >= 0) {
    if (!cg_name_eq(cg_head_value(h, e), h->hdrs[e].val_len, "100-continue", 12)) {
      refuse(st, 417, "unsupported Expect");
      head_refused(st);
      return;
    }
    r->expect_continue = r->has_body;
  }
  r->route = cg_route_match(cfg, host, (size_t)host_len, h->buf + h->url_off, h->url_len);
  /* "content-length: 0" with the stream still open: the head upstream would
   * be a whole request before the client's is (DATA may yet come and make it
   * malformed), so it waits for END_STREAM */
  if (st->content_length == 0 && !end_stream) {
    st->dispatch_at_end = 1;
    return;
  }
  if (cg_dispatch(x) == 0) local_ready(st);
}

/* --- the request's body ------------------------------------------------------- */

/* A piece of the body to the upstream. The stream's window reopens by as
 * much once the upstream has taken it. */
static void forward(cg_h2_stream_t *st, const uint8_t *data, size_t len) {
  cg_req_t *r = &st->x.req;
  if (!len) return; /* to a chunked upstream body, an empty piece would be its end */
  cg_proxy_body(&st->x, (const char *)data, len);
  if (r->body_bp) st->unconsumed += len;
  else consume(st, len);
}

/* The piece that completes a content-length waits for END_STREAM: until
 * then more DATA may still come (a malformed request, reset), and the
 * upstream must never hold a complete request the client did not send. */
static int held(const cg_h2_stream_t *st) {
  return st->content_length >= 0 && !st->in_end && st->x.req.body_bytes >= (uint64_t)st->content_length;
}

/* What waited for the upstream goes to it, then the body's end. */
static void pump(cg_h2_stream_t *st) {
  cg_exchange_t *x = &st->x;
  cg_req_t *r = &x->req;
  if (x->gone || r->kind != CG_REQ_PROXY || !r->up_ready) return;
  if (st->in.len && !r->body_bp && !held(st)) {
    size_t n = st->in.len;
    st->in.len = 0;
    forward(st, (const uint8_t *)st->in.data, n);
    if (st->in.cap > STREAM_HIGH) cg_buf_free(&st->in);
  }
  if (x->gone || !r->up_ready) return;
  if (st->in_end && st->in.len == 0 && !r->msg_complete) {
    r->msg_complete = 1;
    cg_proxy_body_end(x);
  }
  cg_h2_schedule(st->h2);
}

void cg_h2_stream_data(cg_h2_stream_t *st, const uint8_t *data, size_t len) {
  cg_exchange_t *x = &st->x;
  cg_req_t *r = &x->req;
  r->body_bytes += len;
  if (st->content_length >= 0 && r->body_bytes > (uint64_t)st->content_length) {
    /* nghttp2 resets such a stream too; nothing past the length goes upstream */
    consume(st, len);
    reset(st, NGHTTP2_PROTOCOL_ERROR);
    return;
  }
  if (r->body_bytes > x->w->cfg->limits.max_body_bytes) {
    consume(st, len);
    if (!r->resp_started) cg_respond_error(x, 413, "request body too large");
    else reset(st, NGHTTP2_CANCEL);
    return;
  }
  if (!st->head_done || x->gone || r->resp_done || r->kind == CG_REQ_LOCAL) {
    consume(st, len);
    return;
  }
  if (r->kind == CG_REQ_PROXY && r->up_ready && st->in.len == 0 && !r->body_bp && !held(st)) {
    forward(st, data, len);
    return;
  }
  cg_buf_add(&st->in, data, len); /* within the window: unacknowledged until it moves on */
}

void cg_h2_stream_end(cg_h2_stream_t *st) {
  cg_exchange_t *x = &st->x;
  cg_req_t *r = &x->req;
  st->in_end = 1;
  if (!st->head_done || x->gone) return;
  if (st->content_length > 0 && r->body_bytes != (uint64_t)st->content_length) {
    reset(st, NGHTTP2_PROTOCOL_ERROR); /* less than it said: the upstream must not wait for the rest */
    return;
  }
  if (st->dispatch_at_end) {
    st->dispatch_at_end = 0;
    r->msg_complete = 1;
    if (cg_dispatch(x) == 0) local_ready(st);
  } else if (r->kind == CG_REQ_PROXY) pump(st);
  else if (r->kind == CG_REQ_LOCAL) local_ready(st);
  cg_h2_schedule(st->h2);
}

void cg_h2_stream_sent(cg_h2_stream_t *st) {
  /* the answer is whole while the body still comes: the client may stop
   * (RFC 9113 8.1) */
  if (!st->in_end) nghttp2_submit_rst_stream(st->h2->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
}

void cg_h2_stream_closed(cg_h2_stream_t *st) {
  cg_exchange_t *x = &st->x;
  if (st->closed) return;
  st->closed = 1;
  x->gone = 1;
  cg_plugin_cancel(x);
  if (x->req.kind == CG_REQ_PROXY) cg_proxy_client_gone(x);
}

/* --- the response ----------------------------------------------------------- */

static int connection_specific(const char *n, size_t len) {
  return cg_name_eq(n, len, "connection", 10) || cg_name_eq(n, len, "keep-alive", 10) ||
         cg_name_eq(n, len, "proxy-connection", 16) || cg_name_eq(n, len, "transfer-encoding", 17) ||
         cg_name_eq(n, len, "upgrade", 7);
}

/* HEADERS from header lines ("Name: value\r\n" each, as the shared renderers
 * write them): names lower-cased in place (RFC 9113 8.2.2). */
static void submit_head(cg_h2_stream_t *st, int status, cg_buf_t *lines, int has_data) {
  enum { STACK_NV = 48 };
  nghttp2_nv stack[STACK_NV], *nva = stack;
  size_t n = 1, cap = STACK_NV;
  for (size_t i = 0; i + 1 < lines->len; i++)
    if (lines->data[i] == '\r' && lines->data[i + 1] == '\n') n++;
  if (n > cap) {
    nva = malloc(n * sizeof *nva);
    if (!nva) {
      reset(st, NGHTTP2_INTERNAL_ERROR);
      return;
    }
    cap = n;
  }
  char code[4];
  code[0] = (char)('0' + status / 100 % 10);
  code[1] = (char)('0' + status / 10 % 10);
  code[2] = (char)('0' + status % 10);
  nva[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE};
  n = 1;
  char *p = lines->data, *end = lines->data + lines->len;
  while (p < end) {
    char *eol = memchr(p, '\r', (size_t)(end - p));
    if (!eol) break;
    char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon && colon > p) {
      size_t nl = (size_t)(colon - p);
      char *v = colon + 1;
      while (v < eol && (*v == ' ' || *v == '\t')) v++;
      for (char *q = p; q < colon; q++)
        if (*q >= 'A' && *q <= 'Z') *q = (char)(*q + 32);
      if (!connection_specific(p, nl))
        nva[n++] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)v, nl, (size_t)(eol - v), NGHTTP2_NV_FLAG_NONE};
    }
    p = eol + 2;
  }
  nghttp2_data_provider prd = {.source.ptr = st, .read_callback = cg_h2_stream_read};
  if (nghttp2_submit_response(st->h2->ng, st->id, nva, n, has_data ? &prd : NULL) == 0) {
    st->submitted = 1;
    st->has_data = has_data;
  }
  if (nva != stack) free(nva);
  cg_h2_schedule(st->h2);
}

static const char *hsts_of(const cg_h2_stream_t *st) { return st->x.w->cfg->listeners[st->h2->c->listener].hsts; }

static void h2_response_end(cg_exchange_t *x) {
  cg_req_t *r = &x->req;
  if (r->resp_done) return;
  r->resp_done = 1;
  cg_access_log(x, uv_now(&x->w->loop) - r->t_start);
  cg_metrics_request(&x->w->metrics, r->route ? r->route->index : 0, r->status, CG_M_HTTP2);
  cg_h2_schedule(stream_of(x)->h2);
}

static void h2_respond(cg_exchange_t *x, int status, const char *headers, size_t headers_len, const char *body,
                       size_t body_len) {
  cg_h2_stream_t *st = stream_of(x);
  cg_req_t *r = &x->req;
  if (r->resp_started || x->gone) return;
  r->resp_started = 1;
  r->status = status;
  /* the gateway answers (an error, a refusal, a timeout): whatever was under
   * way for it stops here, as closing an HTTP/1.1 connection would stop it */
  cg_plugin_cancel(x);
  if (r->kind == CG_REQ_PROXY) cg_proxy_client_gone(x);
  char storage[2048];
  cg_buf_t b = CG_BUF_ON(storage);
  cg_respond_own_lines(x, &b, headers, headers_len, hsts_of(st));
  if (status >= 200 && status != 204 && status != 304) {
    cg_buf_adds(&b, "content-length: ");
    cg_buf_addu(&b, body_len);
    cg_buf_add(&b, "\r\n", 2);
  }
  int send_body = r->method != HTTP_HEAD && status != 204 && status != 304 && body_len > 0;
  if (send_body) {
    cg_buf_add(&st->out, body, body_len);
    st->h2->out_bytes += body_len;
    r->resp_bytes += body_len;
  }
  st->out_eof = 1;
  submit_head(st, status, &b, send_body);
  cg_buf_free(&b);
  h2_response_end(x);
}

static int h2_response_head(cg_exchange_t *x, int status, const cg_head_t *uh, int64_t content_length, int no_body) {
  cg_h2_stream_t *st = stream_of(x);
  cg_req_t *r = &x->req;
  if (x->gone || r->resp_started) return -1;
  char storage[4096];
  cg_buf_t b = CG_BUF_ON(storage);
  cg_respond_upstream_lines(x, &b, status, uh, no_body, hsts_of(st));
  if (!no_body && content_length >= 0) {
    cg_buf_adds(&b, "content-length: ");
    cg_buf_addu(&b, (uint64_t)content_length);
    cg_buf_add(&b, "\r\n", 2);
  }
  r->resp_started = 1;
  r->status = status;
  if (no_body) st->out_eof = 1;
  submit_head(st, status, &b, !no_body);
  cg_buf_free(&b);
  return x->gone ? -1 : 0;
}

static int h2_response_body(cg_exchange_t *x, const char *at, size_t len) {
  cg_h2_stream_t *st = stream_of(x);
  if (x->gone) return -1;
  if (st->out_off && st->out.len + len > st->out.cap) {
    /* what the data source already took makes room, rather than the buffer growing */
    memmove(st->out.data, st->out.data + st->out_off, st->out.len - st->out_off);
    st->out.len -= st->out_off;
    st->out_off = 0;
  }
  cg_buf_add(&st->out, at, len);
  st->h2->out_bytes += len;
  x->req.resp_bytes += len;
  if (st->has_data) nghttp2_session_resume_data(st->h2->ng, st->id);
  cg_h2_schedule(st->h2);
  return 0;
}

static void h2_response_finish(cg_exchange_t *x) {
  cg_h2_stream_t *st = stream_of(x);
  if (x->gone) return;
  st->out_eof = 1;
  if (st->has_data) nghttp2_session_resume_data(st->h2->ng, st->id);
  cg_h2_schedule(st->h2);
}

ssize_t cg_h2_stream_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                          nghttp2_data_source *source, void *arg) {
  (void)ng, (void)id, (void)arg;
  cg_h2_stream_t *st = source->ptr;
  size_t avail = st->out.len - st->out_off, n = avail < length ? avail : length;
  if (n) memcpy(buf, st->out.data + st->out_off, n);
  st->out_off += n;
  st->h2->out_bytes -= n;
  if (st->out_off == st->out.len) {
    st->out.len = st->out_off = 0;
    if (st->out.cap > STREAM_HIGH) cg_buf_free(&st->out);
    if (st->out_eof) *flags |= NGHTTP2_DATA_FLAG_EOF;
    else if (!n) return NGHTTP2_ERR_DEFERRED; /* resumed when the upstream gives more */
  }
  return (ssize_t)n;
}

static void h2_fail(cg_exchange_t *x, int status, const char *why) { cg_respond_error(x, status, why); }

static void h2_abort(cg_exchange_t *x) {
  cg_h2_stream_t *st = stream_of(x);
  if (x->gone) return;
  cg_h2_stream_closed(st); /* the exchange is let go; the stream's memory goes when nghttp2 closes it */
  reset(st, NGHTTP2_INTERNAL_ERROR);
}

static int h2_send_blocked(const cg_exchange_t *x) {
  cg_h2_stream_t *st = (cg_h2_stream_t *)stream_of((cg_exchange_t *)x);
  int b = st->out.len - st->out_off > STREAM_HIGH || st->h2->out_bytes > CONN_HIGH || st->h2->c->send_blocked;
  if (b) st->blocked = 1;
  return b;
}

static void h2_body_resume(cg_exchange_t *x) { pump(stream_of(x)); }

static void h2_body_drained(cg_exchange_t *x) {
  cg_h2_stream_t *st = stream_of(x);
  consume(st, st->unconsumed);
  st->unconsumed = 0;
  pump(st);
  cg_h2_schedule(st->h2);
}

static void h2_send_continue(cg_exchange_t *x) {
  cg_h2_stream_t *st = stream_of(x);
  if (x->gone || x->req.resp_started) return;
  nghttp2_nv nv = {(uint8_t *)":status", (uint8_t *)"100", 7, 3, NGHTTP2_NV_FLAG_NONE};
  nghttp2_submit_headers(st->h2->ng, NGHTTP2_FLAG_NONE, st->id, NULL, &nv, 1, NULL);
  cg_h2_schedule(st->h2);
}

/* Frames leave together anyway: the session's output is sent once per turn. */
static void h2_cork(cg_exchange_t *x) { (void)x; }

static void h2_uncork(cg_exchange_t *x) { (void)x; }

static void h2_decided(cg_exchange_t *x) {
  cg_h2_stream_t *st = stream_of(x);
  if (x->gone || x->req.resp_started) return;
  if (cg_dispatch(x) == 0) local_ready(st);
  cg_h2_schedule(st->h2);
}

const cg_exchange_ops_t cg_h2_ops = {
    .respond = h2_respond,
    .response_head = h2_response_head,
    .response_body = h2_response_body,
    .response_finish = h2_response_finish,
    .response_end = h2_response_end,
    .fail = h2_fail,
    .abort = h2_abort,
    .send_blocked = h2_send_blocked,
    .body_resume = h2_body_resume,
    .body_drained = h2_body_drained,
    .send_continue = h2_send_continue,
    .cork = h2_cork,
    .uncork = h2_uncork,
    .decided = h2_decided,
};
