/* Client connections: reading, parsing with llhttp, dispatch, timeouts and
 * writes.
 *
 * One request is served at a time. The parser pauses after a request's head
 * (until the upstream can take the body) and after a request's end (until its
 * response is out); bytes read past that point wait in c->pending. Pipelined
 * requests are therefore answered in order without a response queue, the way
 * nginx does it. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>

#include "server/h2.h"
#include "server/internal.h"
#include "util/authority.h"
#include "util/log.h"

/* Bytes read ahead while the parser is paused (pipelined requests, a body
 * waiting for its upstream). Reading goes on up to this bound, so a paused
 * request costs no epoll_ctl round trip. */
#define PENDING_MAX (64 * 1024)
/* How long, and how much, a lingering close reads before it closes anyway. */
#define LINGER_MS 2000
#define LINGER_BYTES (1024 * 1024)

static llhttp_settings_t settings;
static uv_once_t settings_once = UV_ONCE_INIT;

static void conn_parse(cg_conn_t *c, const char *data, size_t len);
static int dispatch(cg_conn_t *c);
static int append_pending(cg_conn_t *c, const char *at, size_t len);

/* --- llhttp callbacks ---------------------------------------------------- */

static int on_message_begin(llhttp_t *p) {
  cg_conn_t *c = p->data;
  if (c->state == CG_CONN_IDLE) {
    c->state = CG_CONN_HEAD;
    c->trimmed = 0;
    c->x.req.t_start = uv_now(&c->w->loop);
    /* counts from the first byte of the request, not from each read */
    cg_conn_set_timeout(c, c->w->cfg->timeouts.head);
  }
  return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t len) {
  return cg_head_on_method(&((cg_conn_t *)p->data)->x.head, at, len);
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  return cg_head_on_url(&((cg_conn_t *)p->data)->x.head, at, len);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  return cg_head_on_field(&((cg_conn_t *)p->data)->x.head, at, len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  return cg_head_on_value(&((cg_conn_t *)p->data)->x.head, at, len);
}

static int on_header_value_complete(llhttp_t *p) {
  cg_head_on_value_complete(&((cg_conn_t *)p->data)->x.head);
  return 0;
}

/* Header names must be tokens (RFC 9110 5.1). llhttp already refuses every
 * other byte in a name, except a space and an empty name (llhttp 8.1), so a
 * byte-by-byte scan of every name repeated its work: 420 instructions of a
 * preflight's 7,000. Which check this build needs is probed once, against
 * the llhttp it was compiled with: any other non-token byte that llhttp lets
 * through puts the full scan back. */
static int llhttp_refuses_other_name_bytes;

static int llhttp_accepts_name(const char *name, size_t len) {
  char req[64];
  static const char line[] = "GET / HTTP/1.1\r\nHost: a\r\n";
  size_t n = sizeof line - 1;
  memcpy(req, line, n);
  memcpy(req + n, name, len);
  memcpy(req + n + len, ": v\r\n\r\n", 7);
  llhttp_settings_t none;
  llhttp_settings_init(&none);
  llhttp_t p;
  llhttp_init(&p, HTTP_REQUEST, &none);
  return llhttp_execute(&p, req, n + len + 7) == HPE_OK;
}

static void probe_llhttp_names(void) {
  /* a probe that refuses everything proves nothing: the plain name, and one
   * with the space this check still looks for, must get through */
  if (!llhttp_accepts_name("XYZ", 3) || !llhttp_accepts_name("X Z", 3)) return;
  for (int b = 0; b < 256; b++) {
    if (cg_ascii_tchar((unsigned char)b) || b == ' ' || b == ':') continue;
    for (int pos = 0; pos < 3; pos++) {
      if (pos == 0 && b == '\t') continue; /* a line starting with a tab is a folded value, not a name */
      char name[3] = {'X', 'Y', 'Z'};
      name[pos] = (char)b;
      if (llhttp_accepts_name(name, 3)) return;
    }
  }
  llhttp_refuses_other_name_bytes = 1;
}

static int is_token(const char *s, size_t n) {
  if (n == 0) return 0;
  if (llhttp_refuses_other_name_bytes) return memchr(s, ' ', n) == NULL;
  for (size_t i = 0; i < n; i++)
    if (!cg_ascii_tchar((unsigned char)s[i])) return 0;
  return 1;
}

/* The protocol of the request line, as far as llhttp has read it: what the
 * access log names, also for a request refused before its head was whole. */
static const char *proto_of(const llhttp_t *p) {
  if (p->http_major == 1) return p->http_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
  if (p->http_major == 0 && p->http_minor == 0) return "-"; /* no version read yet */
  return p->http_major == 2 && p->http_minor == 0 ? "HTTP/2.0" : "HTTP/?";
}

/* Refuses the request with a gateway-made response and closes after it. */
static int refuse(cg_conn_t *c, int status, const char *why);

void cg_conn_refuse(cg_conn_t *c, int status, const char *why) { refuse(c, status, why); }

static int refuse(cg_conn_t *c, int status, const char *why) {
  c->x.proto = proto_of(&c->parser);
  c->keep_alive = 0;
  cg_log_info("%s: %d %s", c->x.peer, status, why);
  cg_respond_error(&c->x, status, why);
  return HPE_PAUSED;
}

static int on_headers_complete(llhttp_t *p) {
  cg_conn_t *c = p->data;
  cg_req_t *r = &c->x.req;
  cg_head_t *h = &c->x.head;
  const cg_config_t *cfg = c->w->cfg;

  c->state = CG_CONN_ACTIVE;
  cg_head_sync(h);
  /* llhttp accepts "HTTP/2.0" and friends on a request line; only 1.x is spoken here. */
  if (p->http_major != 1) {
    c->http_minor = 0;
    return refuse(c, 505, "HTTP version not supported");
  }
  c->http_minor = p->http_minor;
  c->x.proto = proto_of(p);
  r->method = p->method;
  /* A gateway is no tunnel, and TRACE would echo credentials to a script
   * (cross-site tracing): neither reaches an upstream. */
  if (p->method == HTTP_CONNECT || p->method == HTTP_TRACE) return refuse(c, 405, "method not allowed by the gateway");
  /* HTTP/1.1 keeps the connection unless told otherwise; 1.0 only when asked. */
  if (c->http_minor >= 1)
    c->keep_alive = !(p->flags & F_CONNECTION_CLOSE);
  else
    c->keep_alive = (p->flags & F_CONNECTION_KEEP_ALIVE) != 0;

  for (int i = 0; i < h->n; i++)
    if (!is_token(cg_head_name(h, i), h->hdrs[i].name_len))
      return refuse(c, 400, "invalid header name");
  int hosts = cg_head_count_id(h, CG_H_HOST);
  if (hosts > 1) return refuse(c, 400, "several Host headers");
  if (hosts == 0 && c->http_minor >= 1) return refuse(c, 400, "missing Host header");
  const char *host = "";
  size_t host_value_len = 0;
  int host_len = 0; /* the Host header without its port, for route matching */
  if (hosts == 1) {
    int i = cg_head_find_id(h, CG_H_HOST, 0);
    host = cg_head_value(h, i);
    host_value_len = h->hdrs[i].val_len;
    host_len = cg_authority_parse(host, host_value_len);
    if (host_len < 0) return refuse(c, 400, "invalid Host header");
  }
  /* llhttp reports a non-chunked request Transfer-Encoding only after this
   * callback; the length of such a body is unknowable (RFC 9112 6.3). */
  if ((p->flags & F_TRANSFER_ENCODING) && !(p->flags & F_CHUNKED))
    return refuse(c, 400, "unsupported Transfer-Encoding");

  r->chunked = (p->flags & F_CHUNKED) != 0;
  r->content_length = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
  r->has_body = r->chunked || r->content_length > 0;
  if (!r->chunked && r->content_length > cfg->limits.max_body_bytes)
    return refuse(c, 413, "request body too large");

  int e = cg_head_find_id(h, CG_H_EXPECT, 0);
  if (e >= 0) {
    if (!cg_name_eq(cg_head_value(h, e), h->hdrs[e].val_len, "100-continue", 12))
      return refuse(c, 417, "unsupported Expect");
    r->expect_continue = r->has_body && c->http_minor >= 1;
  }

  const char *url = h->buf + h->url_off;
  if (h->url_len == 0) return refuse(c, 400, "empty request target");
  if (url[0] != '/' && !(h->url_len == 1 && url[0] == '*' && r->method == HTTP_OPTIONS)) {
    /* absolute-form, which a server MUST accept (RFC 9112 3.2.2): its
     * authority replaces Host, and the upstream gets origin-form */
    uint32_t auth_off, auth_len;
    if (cg_head_origin_form(h, &auth_off, &auth_len) < 0)
      return refuse(c, 400, "request target must be a path or an absolute http(s) URI");
    if (hosts == 1 && !cg_name_eq(host, host_value_len, h->buf + auth_off, auth_len))
      /* what a proxy in front that routes by Host would not expect: said, not hidden */
      cg_log_info("%s: the target's authority %.*s replaces Host %.*s (RFC 9112 3.2.2)", c->x.peer,
                  (int)(auth_len > 200 ? 200 : auth_len), h->buf + auth_off,
                  (int)(host_value_len > 200 ? 200 : host_value_len), host);
    if (cg_head_set_host(h, auth_off, auth_len) < 0) return refuse(c, 431, "request head too large");
    url = h->buf + h->url_off;
    host = h->buf + auth_off;
    host_len = cg_authority_parse(host, auth_len);
  }
  r->route = cg_route_match(cfg, host, (size_t)host_len, url, h->url_len);
  return dispatch(c);
}

/* After the route (cg_dispatch): 0, the body is read here and a local
 * answer goes at its end; HPE_PAUSED, something will resume us. */
static int dispatch(cg_conn_t *c) { return cg_dispatch(&c->x) ? HPE_PAUSED : 0; }

void cg_conn_dispatch(cg_conn_t *c) {
  if (c->state == CG_CONN_CLOSING) return;
  if (dispatch(c) == 0) cg_conn_resume(c);
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  cg_conn_t *c = p->data;
  cg_req_t *r = &c->x.req;
  r->body_bytes += len;
  if (r->body_bytes > c->w->cfg->limits.max_body_bytes) {
    refuse(c, 413, "request body too large");
    return HPE_USER;
  }
  if (r->kind == CG_REQ_PROXY) cg_proxy_body(&c->x, at, len);
  return 0;
}

/* A chunk's size line alone may declare more than the body may hold
 * (ffffffffffffffff): refused at once rather than after reading up to it. */
static int on_chunk_header(llhttp_t *p) {
  cg_conn_t *c = p->data;
  cg_req_t *r = &c->x.req;
  if (p->content_length > c->w->cfg->limits.max_body_bytes - r->body_bytes) {
    refuse(c, 413, "request body too large");
    return HPE_USER;
  }
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  cg_conn_t *c = p->data;
  if (c->skip_msg_end) {
    /* the end of a bodiless request answered before llhttp got to it */
    c->skip_msg_end = 0;
    return 0;
  }
  c->x.req.msg_complete = 1;
  if (c->x.req.kind == CG_REQ_PROXY) cg_proxy_body_end(&c->x);
  return HPE_PAUSED; /* the next request waits for this response */
}

static void init_settings(void) {
  llhttp_settings_init(&settings);
  settings.on_message_begin = on_message_begin;
  settings.on_method = on_method;
  settings.on_url = on_url;
  settings.on_header_field = on_header_field;
  settings.on_header_value = on_header_value;
  settings.on_header_value_complete = on_header_value_complete;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_body;
  settings.on_chunk_header = on_chunk_header;
  settings.on_message_complete = on_message_complete;
  probe_llhttp_names();
}

/* --- timers (the rest in conn_timer.c) --------------------------------------- */

/* Inlined where every request arms it (cg_conn_update_reading). */
__attribute__((always_inline)) static inline void arm_timer(cg_conn_t *c) {
  const cg_timeouts_t *to = &c->w->cfg->timeouts;
  uint64_t ms = 0;
  if (c->handshaking || c->lingering) return; /* the head timeout set at the accept (or the linger's) runs on */
  if (c->h2) {
    cg_h2_arm_timer(c); /* its own timeouts; an idle one is trimmed like any */
    if (c->state != CG_CONN_IDLE) return;
    ms = to->idle;
  } else {
    switch (c->state) {
    case CG_CONN_IDLE:
      ms = to->idle;
      break;
    case CG_CONN_HEAD:
      if (c->deadline) return; /* armed at the first byte */
      ms = to->head;
      break;
    case CG_CONN_ACTIVE:
      if (c->send_blocked)
        ms = to->send;
      else if (!c->x.req.msg_complete && c->reading)
        ms = to->body;
      break;
    case CG_CONN_CLOSING:
      break;
    }
    cg_conn_set_timeout(c, ms);
  }
  if (c->state == CG_CONN_IDLE && !c->trimmed && ms > CG_CONN_TRIM_MS) {
    /* the timer fires early once, to trim (on_timer re-arms for the deadline) */
    uint64_t due = uv_now(&c->w->loop) + CG_CONN_TRIM_MS;
    if (c->timer_due > due) {
      c->timer_due = due;
      uv_timer_start(&c->timer, cg_conn_on_timer, CG_CONN_TRIM_MS, 0);
    }
  }
}

void cg_conn_arm_timer(cg_conn_t *c) { arm_timer(c); }

/* --- reading ------------------------------------------------------------- */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  cg_conn_t *c = container_of((uv_tcp_t *)handle, cg_conn_t, tcp);
  cg_worker_t *w = c->w;
  (void)suggested;
  if (w->rbuf_busy) {
    buf->base = NULL;
    buf->len = 0;
    return;
  }
  w->rbuf_busy = 1;
  buf->base = w->rbuf;
  buf->len = sizeof w->rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  cg_conn_t *c = container_of((uv_tcp_t *)s, cg_conn_t, tcp);
  if (buf->base == c->w->rbuf) c->w->rbuf_busy = 0; /* parsing copies what it keeps */
  if (nread > 0 && __builtin_expect(!c->lingering, 1)) {
    if (c->tls) cg_conn_tls_received(c, buf->base, (size_t)nread);
    else cg_conn_input(c, buf->base, (size_t)nread);
  } else if (nread < 0) {
    cg_conn_peer_closed(c);
  } else if (nread > 0 && (c->lingered += (uint64_t)nread) > LINGER_BYTES) {
    cg_conn_close(c); /* lingering: what comes is dropped, up to a bound */
  }
}

void cg_conn_peer_closed(cg_conn_t *c) {
  if (c->h2 || c->lingering) {
    cg_conn_close(c); /* its streams cannot be answered on a half-closed HTTP/2 connection's terms */
    return;
  }
  if (c->state == CG_CONN_ACTIVE && (c->x.req.msg_complete || !c->x.req.has_body) && !c->x.req.resp_done) {
    /* The client half-closed after a complete request: answer, then close. */
    c->keep_alive = 0;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
    return;
  }
  cg_conn_close(c);
}

/* HTTP/2 with prior knowledge (RFC 9113 3.3) on a plain listener that
 * allows it: the connection's first bytes are the client's preface. */
static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static int h2c_allowed(const cg_conn_t *c) { return !c->tls && c->w->cfg->listeners[c->listener].http2; }

/* three bytes tell the preface from every HTTP/1.1 method (PROPFIND, PUT...) */
static int h2c_preface(const char *data, size_t n) {
  size_t m = n < sizeof PREFACE - 1 ? n : sizeof PREFACE - 1;
  return m >= 3 && memcmp(data, PREFACE, m) == 0;
}

void cg_conn_input(cg_conn_t *c, const char *data, size_t n) {
  if (c->lingering) return;
  if (c->h2) {
    cg_h2_input(c, data, n);
    return;
  }
  if (!c->h2_checked && h2c_allowed(c)) {
    /* a first read of one or two bytes ("P", "PR") cannot tell yet: kept */
    if (c->pre_len + n < 3 && memcmp(data, PREFACE + c->pre_len, n) == 0) {
      memcpy(c->pre + c->pre_len, data, n);
      c->pre_len += (uint8_t)n;
      return;
    }
    if (c->pre_len) {
      char *joined = malloc(c->pre_len + n);
      if (!joined) {
        cg_conn_close(c);
        return;
      }
      memcpy(joined, c->pre, c->pre_len);
      memcpy(joined + c->pre_len, data, n);
      size_t total = c->pre_len + n;
      c->pre_len = 0;
      cg_conn_input(c, joined, total);
      free(joined);
      return;
    }
  }
  if (!c->h2_checked) {
    c->h2_checked = 1;
    if (h2c_allowed(c) && h2c_preface(data, n)) {
      if (cg_h2_start(c) < 0) {
        cg_conn_close(c);
        return;
      }
      cg_h2_input(c, data, n);
      return;
    }
  }
  if (c->paused) {
    if (append_pending(c, data, n) < 0) return;
    if (c->pending_len >= PENDING_MAX) cg_conn_update_reading(c);
    return;
  }
  conn_parse(c, data, n);
}

void cg_conn_update_reading(cg_conn_t *c) {
  int want = c->state != CG_CONN_CLOSING && !c->x.req.body_bp && !c->close_when_flushed && !c->cert_waiting &&
             !(c->paused && c->pending_len >= PENDING_MAX);
  if (want && !c->reading) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
  } else if (!want && c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
  }
  arm_timer(c);
}

static int append_pending(cg_conn_t *c, const char *at, size_t len) {
  if (c->pending_len + len > c->pending_cap) {
    size_t cap = c->pending_len + len;
    char *p = realloc(c->pending, cap);
    if (!p) {
      cg_conn_close(c);
      return -1;
    }
    c->pending = p;
    c->pending_cap = cap;
  }
  memcpy(c->pending + c->pending_len, at, len);
  c->pending_len += len;
  return 0;
}

static void keep_pending(cg_conn_t *c, const char *at, size_t len) {
  c->pending_len = 0;
  append_pending(c, at, len);
}

static int head_status(const cg_conn_t *c) {
  if (c->x.head.overflow) return 431;
  return 400;
}

/* Parses one buffer; leaves the unparsed rest in c->pending when the parser
 * pauses. */
static void parse_once(cg_conn_t *c, const char *data, size_t len) {
  llhttp_errno_t err;
  for (;;) {
    c->x.head.exec_start = data;
    err = llhttp_execute(&c->parser, data, len);
    cg_head_sync(&c->x.head); /* before data goes: it may be the worker's shared read buffer */
    if (c->state == CG_CONN_CLOSING) return;
    if (err != HPE_PAUSED || !c->resume_pending) break;
    /* Paused by a callback that was resumed before llhttp returned: a
     * proxied request whose pooled upstream took the head at once. The rest
     * of this buffer (a POST's body, often all of it) is still valid here:
     * go on with it in place rather than copying it to c->pending first. */
    const char *pos = llhttp_get_error_pos(&c->parser);
    size_t rest = pos ? (size_t)(data + len - pos) : 0;
    c->resume_pending = 0;
    llhttp_resume(&c->parser);
    if (!rest) {
      c->pending_len = 0;
      c->kick = 1; /* a bodiless request's end is still owed: conn_parse delivers it */
      if (c->x.req.kind == CG_REQ_LOCAL && c->x.req.msg_complete && !c->x.req.resp_started) cg_respond_local(&c->x);
      return;
    }
    data = pos;
    len = rest;
  }
  if (err == HPE_OK) {
    if (c->state == CG_CONN_HEAD && c->x.head.len > c->w->cfg->limits.max_head_bytes) refuse(c, 431, "request head too large");
    return;
  }
  if (err == HPE_PAUSED) {
    const char *pos = llhttp_get_error_pos(&c->parser);
    size_t rest = pos ? (size_t)(data + len - pos) : 0;
    if (rest) keep_pending(c, pos, rest);
    else c->pending_len = 0;
    c->paused = 1;
    if (c->x.req.kind == CG_REQ_LOCAL && c->x.req.msg_complete && !c->x.req.resp_started) cg_respond_local(&c->x);
    return;
  }
  if (c->close_when_flushed) return; /* a refusal is on its way out: close after it */
  if (c->x.req.resp_started) {
    cg_conn_close(c);
    return;
  }
  int status = head_status(c);
  if (status == 400) c->x.req.cors_untrusted = 1; /* a malformed head is never echoed */
  if (c->x.head.obs_fold) {
    refuse(c, 400, "obsolete line folding");
    return;
  }
  const char *why = status == 431 ? "request head too large" : llhttp_get_error_reason(&c->parser);
  refuse(c, status, why ? why : "malformed request");
}

static void conn_parse(cg_conn_t *c, const char *data, size_t len) {
  int outer = !c->in_parse;
  c->in_parse = 1;
  if (data) parse_once(c, data, len);
  /* Serving a request may resume the parser (a local answer, a pipelined
   * next request): keep going here rather than recursing. */
  while (outer && c->state != CG_CONN_CLOSING && !c->paused && (c->pending_len > 0 || c->kick)) {
    if (c->pending_len == 0) {
      /* Paused after a head with nothing behind it, llhttp still owes the
       * message's end (a bodiless request): an empty execute delivers it. */
      c->kick = 0;
      parse_once(c, "", 0);
      continue;
    }
    c->kick = 0;
    char *buf = c->pending;
    size_t n = c->pending_len;
    c->pending = NULL;
    c->pending_len = c->pending_cap = 0;
    parse_once(c, buf, n);
    free(buf);
  }
  if (outer) c->in_parse = 0;
  if (c->state != CG_CONN_CLOSING) cg_conn_update_reading(c);
}

void cg_conn_resume(cg_conn_t *c) {
  if (c->state == CG_CONN_CLOSING) return;
  if (!c->paused) {
    if (c->in_parse) c->resume_pending = 1;
    return;
  }
  c->paused = 0;
  llhttp_resume(&c->parser);
  c->kick = 1;
  conn_parse(c, NULL, 0);
}

/* --- lifecycle ----------------------------------------------------------- */

void cg_conn_response_done(cg_conn_t *c) {
  cg_req_t *r = &c->x.req;
  r->resp_done = 1;
  cg_conn_flush(c); /* before deciding to close: nothing may stay behind */
  cg_access_log(&c->x, uv_now(&c->w->loop) - r->t_start);
  /* HTTP/1.1 without a string compare; HTTP/1.0 (and a request refused
   * before its version was read, counted as HTTP/1.1) with one */
  int pv = c->http_minor >= 1 ? CG_M_HTTP11 : strcmp(c->x.proto, "HTTP/1.0") == 0 ? CG_M_HTTP10 : CG_M_HTTP11;
  cg_metrics_request(&c->w->metrics, r->route ? r->route->index : 0, r->status, pv);
  /* A worker retiring at a reload hands its kept-alive connections over
   * instead of closing them (cg_conn_migrate_if_idle below). */
  int closing_worker = c->w->draining && !c->w->successor;
  if (!c->keep_alive || !cg_conn_msg_end_known(c) || closing_worker || c->state == CG_CONN_CLOSING) {
    c->close_when_flushed = 1;
    if (c->pending_writes == 0) cg_conn_close(c);
    else cg_conn_update_reading(c);
    return;
  }
  int end_owed = !r->msg_complete;
  cg_cors_hdrs_release(c->w, r);
  memset(r, 0, sizeof *r);
  c->http_minor = c->keep_alive = c->resp_chunked = 0;
  cg_head_reset(&c->x.head);
  c->x.proto = "HTTP/1.1"; /* until the next request line says */
  c->state = CG_CONN_IDLE;
  /* Heads of one request are often a few hundred bytes; a large one's memory
   * is returned instead of being kept per idle connection. */
  if (c->x.head.cap > 8192) cg_head_free(&c->x.head);
  if (c->paused) {
    c->paused = 0;
    llhttp_resume(&c->parser);
    if (end_owed) c->skip_msg_end = c->kick = 1;
  }
  conn_parse(c, NULL, 0);
  cg_conn_migrate_if_idle(c);
}

/* Reload: a connection of a retiring worker moves to its successor once it
 * is between requests with nothing buffered or being written. The socket
 * itself moves (a duplicate of its descriptor), so what the client sends
 * meanwhile waits in the kernel and nothing is lost or closed. */
void cg_conn_migrate_if_idle(cg_conn_t *c) {
  cg_worker_t *w = c->w;
  if (c->h2) return; /* its session cannot move: it is drained (GOAWAY) where it is */
  /* a TLS handshake under way stays (its SNI callback belongs to the old
   * config): it moves once done (cg_conn_tls_received); so do records read
   * but not yet decrypted */
  if (!w->successor || c->state != CG_CONN_IDLE || c->pending_len || c->paused || c->pending_writes ||
      cg_conn_write_queue(c) || c->close_when_flushed || c->handshaking || (c->tls && cg_tls_has_input(c->tls)))
    return;
  uv_os_fd_t fd;
  if (c->tls) cg_tls_input_done(c->tls); /* no pointer into this worker's read buffer goes along */
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    cg_handover_t h = {.fd = nfd, .listener = c->listener, .tls = c->tls};
    if (nfd >= 0 && cg_worker_adopt(w->successor, h) == 0) c->tls = NULL; /* it moved with the socket */
    else if (nfd >= 0) close(nfd);
  }
  cg_conn_close(c);
}

int cg_conn_msg_end_known(const cg_conn_t *c) {
  const cg_req_t *r = &c->x.req;
  if (r->msg_complete) return 1;
  /* Paused right after the head of a bodiless request: nothing of it is left
   * unread, llhttp only owes the end, so the connection can go on. */
  return !r->has_body && c->state == CG_CONN_ACTIVE && c->paused && !c->in_parse;
}

static void on_close(uv_handle_t *h) {
  cg_conn_t *c = h->data;
  if (--c->handles_open > 0) return;
  cg_worker_t *w = c->w;
  cg_h2_free(c);
  cg_head_free(&c->x.head);
  cg_buf_free(&c->obuf);
  cg_cors_hdrs_release(w, &c->x.req);
  cg_tls_conn_free(c->tls);
  free(c->pending);
  free(c);
  cg_worker_conn_closed(w);
}

void cg_conn_close(cg_conn_t *c) {
  if (c->state == CG_CONN_CLOSING) return;
  /* an end the client can take as one: between requests, or after a whole response */
  int graceful = c->state == CG_CONN_IDLE || (c->close_when_flushed && c->x.req.resp_done);
  c->state = CG_CONN_CLOSING;
  c->x.gone = 1;
  cg_plugin_cancel(&c->x);
  cg_cert_cancel(c);
  if (c->x.req.kind == CG_REQ_PROXY) cg_proxy_client_gone(&c->x);
  if (c->h2) cg_h2_close(c);
  cg_list_remove(&c->link);
  cg_conn_tls_close(c, graceful);
  uv_close((uv_handle_t *)&c->timer, on_close);
  uv_close((uv_handle_t *)&c->tcp, on_close);
}

void cg_conn_drain(cg_conn_t *c) {
  if (c->h2) {
    cg_h2_drain(c);
    return;
  }
  if (c->w->successor) {
    cg_conn_migrate_if_idle(c); /* a busy one moves after its current response */
    return;
  }
  if (c->state == CG_CONN_IDLE && c->pending_len == 0 && !c->paused) cg_conn_close(c);
  else c->keep_alive = 0;
}


static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  free(req);
}

void cg_conn_linger(cg_conn_t *c) {
  if (c->state == CG_CONN_CLOSING || c->lingering) return;
  c->lingering = 1;
  uv_shutdown_t *req = malloc(sizeof *req);
  /* the FIN follows what is queued (libuv waits for the writes) */
  if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    free(req);
    cg_conn_close(c);
    return;
  }
  if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
  cg_conn_set_timeout(c, LINGER_MS);
}

static void conn_start(cg_worker_t *w, cg_listener_t *l, cg_handover_t h);

void cg_conn_accept(cg_listener_t *l) { conn_start(l->w, l, (cg_handover_t){.fd = -1, .listener = l->index}); }

void cg_conn_adopt(cg_worker_t *w, cg_handover_t h) { conn_start(w, NULL, h); }

/* l: accept from that listener; else take over h, a connection handed over
 * by the worker this one replaced (its socket, and its TLS engine). */
static void conn_start(cg_worker_t *w, cg_listener_t *l, cg_handover_t h) {
  uv_once(&settings_once, init_settings);
  int fd = l ? -1 : h.fd;
  cg_conn_t *c = calloc(1, sizeof *c);
  if (!c) {
    if (fd >= 0) close(fd);
    cg_tls_conn_free(h.tls);
    return;
  }
  c->w = w;
  uv_tcp_init(&w->loop, &c->tcp);
  uv_timer_init(&w->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles_open = 2;
  cg_list_init(&c->link);
  cg_list_push(&w->conns, &c->link);
  w->n_conns++;
  w->metrics.connections_open++;
  w->metrics.connections_total++;
  int rc = fd < 0 ? uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&c->tcp) : uv_tcp_open(&c->tcp, fd);
  const cg_listener_conf_t *lc = &w->cfg->listeners[h.listener < w->cfg->n_listeners ? h.listener : 0];
  c->listener = h.listener;
  c->tls = h.tls; /* a handed-over TLS connection keeps its session */
  if (rc == 0 && !c->tls && lc->tls_ctx) {
    c->tls = cg_tls_conn_new(lc->tls_ctx);
    c->handshaking = 1;
    if (!c->tls) rc = UV_ENOMEM;
  }
  if (rc != 0) {
    if (fd >= 0 && rc != UV_ENOMEM) close(fd);
    cg_conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_storage ss;
  int sl = sizeof ss;
  strcpy(c->x.peer, "-");
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET)
      uv_ip4_name((struct sockaddr_in *)&ss, c->x.peer, sizeof c->x.peer);
    else if (ss.ss_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)&ss, c->x.peer, sizeof c->x.peer);
  }
  c->x.ops = &cg_http1_ops;
  c->x.w = w;
  c->x.proxy = w->proxy;
  c->x.proto = "HTTP/1.1";
  c->x.scheme = c->tls ? "https" : "http";
  c->x.tls = c->tls && !c->handshaking ? cg_tls_version(c->tls) : NULL;
  llhttp_init(&c->parser, HTTP_REQUEST, &settings);
  c->parser.data = c;
  cg_head_init(&c->x.head, w->cfg->limits.max_head_bytes, w->cfg->limits.max_headers);
  c->state = CG_CONN_IDLE;
  /* a TLS handshake is bounded like a request head: a client that sends
   * half a ClientHello and waits is closed like a slowloris */
  if (c->handshaking) cg_conn_set_timeout(c, w->cfg->timeouts.head);
  cg_conn_update_reading(c);
}
