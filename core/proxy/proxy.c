/* The upstream side of a proxied request: target choice (round robin with
 * passive health), keep-alive pools per worker, the request head and body
 * towards the upstream, and the response streamed back to the client.
 *
 * Bodies are never held whole: each piece read on one side is written to the
 * other, and a side whose write queue grows past a bound stops the other
 * side's reading until it drains. Memory per request is therefore bounded by
 * those queues, whatever the body size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "proxy/internal.h"

#include "http/buf.h"
#include "util/log.h"

static llhttp_settings_t up_settings;
static uv_once_t up_settings_once = UV_ONCE_INIT;

/* This process's name in Via (RFC 9110 7.6.3): a gateway sends Via on every
 * request it forwards, and a request that already names this process has
 * come round a loop (an upstream that is the gateway itself, or leads back
 * to it). Random, so replicas never take each other's requests for a loop. */
static char via_name[24];
static size_t via_name_len;
static uv_once_t via_once = UV_ONCE_INIT;

static void init_via_name(void) {
  uint32_t id = 0;
  /* early in boot there may be no entropy yet: this name need not wait for it */
  if (getrandom(&id, sizeof id, GRND_NONBLOCK) != sizeof id) id = (uint32_t)getpid() ^ (uint32_t)uv_hrtime();
  via_name_len = (size_t)snprintf(via_name, sizeof via_name, "corsgate-%08x", id);
}

static void proxy_connect(cg_exchange_t *x);
static void on_up_timer(uv_timer_t *t);
static void on_up_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static cg_upstream_state_t *state_of(cg_exchange_t *x) {
  return &x->proxy->upstreams[x->req.route->upstream->index];
}

/* --- failure and completion ---------------------------------------------- */

static void detach(cg_upconn_t *u) {
  if (u->x) {
    u->x->req.up = NULL;
    u->x = NULL;
  }
}

void cg_up_mark_down(cg_upconn_t *u, const char *why) {
  const cg_upstream_conf_t *uc = u->us->conf;
  cg_target_state_t *ts = &u->us->targets[u->ti];
  if (uc->fail_timeout_ms) ts->down_until = uv_now(u->p->loop) + uc->fail_timeout_ms;
  cg_log_warn("upstream %s: target %s failed (%s), skipped for %llu ms", uc->name, uc->targets[u->ti].name, why,
              (unsigned long long)uc->fail_timeout_ms);
}

/* The upstream failed this request. Retries on another connection when
 * nothing of the request body is gone yet and nothing of a response came. */
void cg_up_fail(cg_upconn_t *u, int status, const char *why, int retryable) {
  cg_exchange_t *x = u->x;
  /* A pooled connection the upstream closed says nothing about the target:
   * retry anywhere. A failed connect is retried only on another target that
   * is up, so a dead single target costs one attempt, not two. */
  if (retryable && !u->reused) {
    int other = 0;
    uint64_t now = uv_now(u->p->loop);
    for (int i = 0; i < u->us->conf->n_targets && !other; i++)
      other = i != u->ti && u->us->targets[i].down_until <= now;
    retryable = other;
  }
  u->p->on_error(u->p->arg, status, why);
  detach(u);
  cg_up_close(u);
  if (!x || x->gone) return;
  cg_req_t *r = &x->req;
  int max_attempts = r->route->upstream->n_targets + 1;
  if (retryable && !r->resp_started && r->up_sent == 0 && !r->up_ready && r->up_attempts < max_attempts) {
    proxy_connect(x);
    return;
  }
  if (r->resp_started) {
    cg_log_warn("%s: upstream failed mid-response (%s): closing", x->peer, why);
    x->ops->abort(x);
    return;
  }
  cg_log_warn("%s: %d %s", x->peer, status, why);
  /* the client is told what failed; TLS's details (OpenSSL's reasons) stay in the log */
  const char *shown = why;
  if (strncmp(why, "upstream TLS handshake failed", 29) == 0) shown = "upstream TLS handshake failed";
  else if (strncmp(why, "upstream TLS", 12) == 0) shown = "upstream TLS stream broken";
  x->ops->fail(x, status, shown);
}

static void release(cg_upconn_t *u) {
  cg_exchange_t *x = u->x;
  detach(u);
  cg_target_state_t *ts = &u->us->targets[u->ti];
  /* Over TLS, records of this read past the response's end would be taken
   * for the next request's response if the connection went back to the
   * pool now (a pipelined request takes it before the read is done). */
  if (u->tls && cg_tls_has_input(u->tls)) u->no_reuse = 1;
  /* a connection whose session is a day from its full handshake is not
   * kept: the next one checks the upstream's certificate again */
  if (u->tls && uv_now(u->p->loop) - u->session_born > UP_SESSION_MAX_AGE_MS) u->no_reuse = 1;
  if (u->no_reuse || !u->req_sent || !llhttp_should_keep_alive(&u->parser) || u->p->draining ||
      ts->n_idle >= u->us->conf->keepalive) {
    cg_up_close(u);
  } else {
    llhttp_init(&u->parser, HTTP_RESPONSE, &up_settings);
    u->parser.data = u;
    cg_head_reset(&u->head);
    u->got_bytes = u->informational = u->resp_complete = u->req_sent = 0;
    u->idle = 1;
    cg_list_push(&ts->idle, &u->idle_link);
    ts->n_idle++;
    if (u->read_paused) {
      /* an idle connection keeps reading, to notice the upstream closing it */
      u->read_paused = 0;
      uv_read_start((uv_stream_t *)&u->tcp, on_up_alloc, on_up_read);
    }
    uv_timer_start(&u->timer, on_up_timer, UP_IDLE_TIMEOUT_MS, 0);
  }
  if (x) x->ops->response_end(x);
}

/* --- timers -------------------------------------------------------------- */

static void on_up_timer(uv_timer_t *t) {
  cg_upconn_t *u = container_of(t, cg_upconn_t, timer);
  if (u->idle) {
    cg_up_close(u);
  } else if (!u->connected || u->handshaking) {
    cg_up_mark_down(u, "connect timed out");
    cg_up_fail(u, 504, "upstream connect timed out", 1);
  } else {
    cg_up_fail(u, 504, "upstream timed out", 0);
  }
}

static void arm(cg_upconn_t *u, uint64_t ms) {
  if (!u->closing) uv_timer_start(&u->timer, on_up_timer, ms, 0);
}

/* --- the response -------------------------------------------------------- */

static int on_up_status(llhttp_t *p, const char *at, size_t len) {
  return cg_head_on_url(&((cg_upconn_t *)p->data)->head, at, len);
}
static int on_up_field(llhttp_t *p, const char *at, size_t len) {
  return cg_head_on_field(&((cg_upconn_t *)p->data)->head, at, len);
}
static int on_up_value(llhttp_t *p, const char *at, size_t len) {
  return cg_head_on_value(&((cg_upconn_t *)p->data)->head, at, len);
}
static int on_up_value_complete(llhttp_t *p) {
  cg_head_on_value_complete(&((cg_upconn_t *)p->data)->head);
  return 0;
}

static int on_up_headers_complete(llhttp_t *p) {
  cg_upconn_t *u = p->data;
  cg_exchange_t *x = u->x;
  int status = p->status_code;
  cg_head_sync(&u->head);
  if (status >= 100 && status < 200) {
    /* Interim answers (103 Early Hints) are not relayed; the final one follows. */
    if (status == 101) return -1;
    u->informational = 1;
    return 0;
  }
  if (!x) return -1;
  int no_body = x->req.method == HTTP_HEAD || status == 204 || status == 304;
  x->req.up_us = (uv_hrtime() - x->req.up_t0) / 1000;
  if (x->ops->response_head(x, status, &u->head, (p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length : -1,
                            no_body) < 0)
    return -1;
  return no_body ? 1 : 0; /* 1: llhttp reads no body, whatever Content-Length says */
}

static int on_up_body(llhttp_t *p, const char *at, size_t len) {
  cg_upconn_t *u = p->data;
  cg_exchange_t *x = u->x;
  if (!x || x->ops->response_body(x, at, len) < 0) return -1;
  if (x->ops->send_blocked(x) && !u->read_paused) {
    u->read_paused = 1;
    uv_read_stop((uv_stream_t *)&u->tcp);
  }
  return 0;
}

static int on_up_message_complete(llhttp_t *p) {
  cg_upconn_t *u = p->data;
  if (u->informational) {
    u->informational = 0;
    cg_head_reset(&u->head);
    return 0;
  }
  u->resp_complete = 1;
  /* ended on the wire now, still corked: the last piece and the end leave
   * in one write; the exchange itself ends after llhttp returns (release) */
  if (u->x) u->x->ops->response_finish(u->x);
  return HPE_PAUSED;
}

static void init_up_settings(void) {
  llhttp_settings_init(&up_settings);
  up_settings.on_status = on_up_status;
  up_settings.on_header_field = on_up_field;
  up_settings.on_header_value = on_up_value;
  up_settings.on_header_value_complete = on_up_value_complete;
  up_settings.on_headers_complete = on_up_headers_complete;
  up_settings.on_body = on_up_body;
  up_settings.on_message_complete = on_up_message_complete;
}

static void on_up_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  cg_upconn_t *u = container_of((uv_tcp_t *)handle, cg_upconn_t, tcp);
  (void)suggested;
  buf->base = u->p->rbuf;
  buf->len = u->p->rbuf_len;
}

void cg_up_eof(cg_upconn_t *u, ssize_t nread, int clean) {
  if (u->handshaking) { /* says no more about the request than a refused connection */
    char why[128];
    snprintf(why, sizeof why, "upstream TLS handshake failed: %s",
             nread == UV_EOF ? "the connection was closed" : uv_strerror((int)nread));
    cg_up_mark_down(u, why);
    cg_up_fail(u, 502, why, 1);
    return;
  }
  if (u->idle) {
    cg_up_close(u); /* the upstream closed a pooled connection */
    return;
  }
  if (nread == UV_EOF && clean && u->got_bytes && !u->resp_complete) {
    llhttp_finish(&u->parser); /* a close-delimited body ends here */
    u->no_reuse = 1;
    if (u->resp_complete) {
      release(u);
      return;
    }
  }
  int stale = u->reused && !u->got_bytes;
  cg_up_fail(u, 502, nread == UV_EOF ? "upstream closed the connection" : uv_strerror((int)nread), stale);
}

void cg_up_parse(cg_upconn_t *u, const char *data, size_t n) {
  cg_exchange_t *x = u->x;
  u->got_bytes = 1;
  if (x) arm(u, u->p->cfg->timeouts.upstream_read);
  u->head.exec_start = data;
  /* a head and the body behind it in one read leave in one write */
  if (x) x->ops->cork(x);
  llhttp_errno_t err = llhttp_execute(&u->parser, data, n);
  cg_head_sync(&u->head);
  /* an exchange cut off meanwhile had its corks released by its protocol */
  if (x && u->x == x) x->ops->uncork(x);
  if (u->closing) return;
  if (err == HPE_PAUSED) {
    const char *pos = llhttp_get_error_pos(&u->parser);
    if (pos && pos < data + n) u->no_reuse = 1; /* bytes past the response */
    release(u);
    return;
  }
  if (err != HPE_OK) {
    cg_log_warn("upstream %s: invalid response: %s", u->us->conf->name, llhttp_get_error_reason(&u->parser));
    cg_up_fail(u, 502, "invalid response from upstream", 0);
  }
}

static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  cg_upconn_t *u = container_of((uv_tcp_t *)s, cg_upconn_t, tcp);
  if (nread == 0 || u->closing) return;
  if (nread < 0) {
    /* over TLS the clean end is a close_notify (cg_up_tls_received): a TCP
     * end without one may be a response cut short */
    cg_up_eof(u, nread, !u->tls);
    return;
  }
  if (u->tls) {
    cg_up_tls_received(u, buf->base, (size_t)nread);
    return;
  }
  if (u->idle) {
    cg_up_close(u); /* bytes nobody asked for */
    return;
  }
  cg_up_parse(u, buf->base, (size_t)nread);
}

/* --- the request --------------------------------------------------------- */

void cg_up_ready(cg_upconn_t *u) {
  cg_exchange_t *x = u->x;
  cg_req_t *r = &x->req;
  const cg_head_t *h = &x->head;
  char storage[4096];
  cg_buf_t b = CG_BUF_ON(storage);
  cg_buf_add(&b, h->buf + h->method_off, h->method_len);
  cg_buf_add(&b, " ", 1);
  cg_buf_add(&b, h->buf + h->url_off, h->url_len);
  cg_buf_adds(&b, " HTTP/1.1\r\n");
  int xff_seen = 0;
  int host_i = -1;
  for (int i = 0; i < h->n; i++) {
    const char *name = cg_head_name(h, i);
    size_t nl = h->hdrs[i].name_len;
    int id = h->hdrs[i].id;
    if (cg_head_is_hop_by_hop(h, i) || id == CG_H_CONTENT_LENGTH || id == CG_H_EXPECT ||
        id == CG_H_X_FORWARDED_PROTO || id == CG_H_X_FORWARDED_FOR || id == CG_H_X_FORWARDED_HOST || id == CG_H_VIA)
      continue;
    if (id == CG_H_HOST) host_i = i;
    cg_buf_add(&b, name, nl);
    cg_buf_add(&b, ": ", 2);
    cg_buf_add(&b, cg_head_value(h, i), h->hdrs[i].val_len);
    cg_buf_add(&b, "\r\n", 2);
  }
  if (host_i < 0) {
    cg_buf_adds(&b, "Host: ");
    cg_buf_adds(&b, u->us->conf->targets[u->ti].name);
    cg_buf_add(&b, "\r\n", 2);
  }
  /* Several X-Forwarded-For lines are one list (RFC 9110 5.3): one line, in
   * arrival order, with the client's address last. */
  cg_buf_adds(&b, "X-Forwarded-For: ");
  for (int i = 0; i < h->n; i++) {
    if (h->hdrs[i].id != CG_H_X_FORWARDED_FOR) continue;
    if (!h->hdrs[i].val_len) continue;
    if (xff_seen++) cg_buf_add(&b, ", ", 2);
    cg_buf_add(&b, cg_head_value(h, i), h->hdrs[i].val_len);
  }
  if (xff_seen) cg_buf_add(&b, ", ", 2);
  cg_buf_adds(&b, x->peer);
  cg_buf_add(&b, "\r\n", 2);
  /* (no cg_buf_addf on this path: its vsnprintf cost 400 instructions a line) */
  cg_buf_adds(&b, "X-Forwarded-Proto: ");
  cg_buf_adds(&b, x->scheme);
  cg_buf_add(&b, "\r\n", 2);
  /* Via is a list too: the hops before, then this one, named for the
   * protocol the request came in on. */
  cg_buf_adds(&b, "Via: ");
  for (int i = 0; i < h->n; i++) {
    if (h->hdrs[i].id != CG_H_VIA || !h->hdrs[i].val_len || cg_head_is_hop_by_hop(h, i)) continue;
    cg_buf_add(&b, cg_head_value(h, i), h->hdrs[i].val_len);
    cg_buf_add(&b, ", ", 2);
  }
  /* received-protocol: "1.1" for HTTP/1.1 (the name HTTP is implied) */
  cg_buf_adds(&b, strncmp(x->proto, "HTTP/", 5) == 0 ? x->proto + 5 : x->proto);
  cg_buf_add(&b, " ", 1);
  cg_buf_add(&b, via_name, via_name_len);
  cg_buf_add(&b, "\r\n", 2);
  if (host_i >= 0) {
    cg_buf_adds(&b, "X-Forwarded-Host: ");
    cg_buf_add(&b, cg_head_value(h, host_i), h->hdrs[host_i].val_len);
    cg_buf_add(&b, "\r\n", 2);
  }
  if (r->chunked)
    cg_buf_adds(&b, "Transfer-Encoding: chunked\r\n");
  else if (r->content_length > 0 || r->method == HTTP_POST || r->method == HTTP_PUT || r->method == HTTP_PATCH)
  {
    cg_buf_adds(&b, "Content-Length: ");
    cg_buf_addu(&b, r->content_length);
    cg_buf_add(&b, "\r\n", 2);
  }
  cg_buf_add(&b, "\r\n", 2);
  int rc = cg_up_write3(u, b.data, b.len, NULL, 0, NULL, 0);
  cg_buf_free(&b);
  if (rc < 0) {
    cg_up_fail(u, 502, "upstream write failed", u->reused);
    return;
  }
  r->up_ready = 1;
  arm(u, u->p->cfg->timeouts.upstream_read);
  if (r->expect_continue) x->ops->send_continue(x);
  if (r->msg_complete) u->req_sent = 1;
  x->ops->body_resume(x); /* the body (or the next request) may flow now */
}

static void on_connect(uv_connect_t *creq, int status) {
  cg_upconn_t *u = container_of(creq, cg_upconn_t, connect_req);
  if (u->closing) return;
  if (status < 0) {
    cg_up_mark_down(u, uv_strerror(status));
    cg_up_fail(u, 502, "upstream connection failed", 1);
    return;
  }
  u->connected = 1;
  uv_tcp_nodelay(&u->tcp, 1);
  uv_read_start((uv_stream_t *)&u->tcp, on_up_alloc, on_up_read);
  cg_up_connected(u); /* the request now, or after a TLS handshake */
}

static void on_up_closed(uv_handle_t *h) {
  cg_upconn_t *u = h->data;
  if (--u->handles_open > 0) return;
  cg_head_free(&u->head);
  cg_tls_conn_free(u->tls);
  free(u);
}

void cg_up_close(cg_upconn_t *u) {
  if (u->closing) return;
  u->closing = 1;
  detach(u);
  cg_up_tls_close(u); /* an idle HTTPS connection says goodbye */
  if (u->idle) {
    cg_list_remove(&u->idle_link);
    u->us->targets[u->ti].n_idle--;
    u->idle = 0;
  }
  uv_close((uv_handle_t *)&u->timer, on_up_closed);
  uv_close((uv_handle_t *)&u->tcp, on_up_closed);
}

/* Round robin over the targets that are up; when all are down, the one that
 * comes back soonest is tried rather than failing without trying. */
static int pick_target(cg_upstream_state_t *us, uint64_t now) {
  int n = us->conf->n_targets, best = -1;
  for (int k = 0; k < n; k++) {
    int i = (int)((us->rr + (unsigned)k) % (unsigned)n);
    if (us->targets[i].down_until <= now) {
      us->rr = (unsigned)i + 1;
      return i;
    }
    if (best < 0 || us->targets[i].down_until < us->targets[best].down_until) best = i;
  }
  us->rr++;
  return best;
}

static void proxy_connect(cg_exchange_t *x) {
  cg_proxy_t *p = x->proxy;
  cg_upstream_state_t *us = state_of(x);
  x->req.up_attempts++;
  int ti = pick_target(us, uv_now(p->loop));
  cg_target_state_t *ts = &us->targets[ti];
  if (!cg_list_empty(&ts->idle)) {
    cg_upconn_t *u = container_of(ts->idle.prev, cg_upconn_t, idle_link);
    cg_list_remove(&u->idle_link);
    ts->n_idle--;
    u->idle = 0;
    u->reused = 1;
    u->x = x;
    x->req.up = u;
    if (u->read_paused) {
      u->read_paused = 0;
      uv_read_start((uv_stream_t *)&u->tcp, on_up_alloc, on_up_read);
    }
    cg_up_ready(u);
    return;
  }
  cg_upconn_t *u = calloc(1, sizeof *u);
  if (!u) {
    x->ops->fail(x, 502, "out of memory");
    return;
  }
  u->p = p;
  u->us = us;
  u->ti = ti;
  u->x = x;
  x->req.up = u;
  cg_list_init(&u->idle_link);
  uv_once(&up_settings_once, init_up_settings);
  llhttp_init(&u->parser, HTTP_RESPONSE, &up_settings);
  u->parser.data = u;
  cg_head_init(&u->head, 65536, 1000);
  uv_tcp_init(p->loop, &u->tcp);
  uv_timer_init(p->loop, &u->timer);
  u->tcp.data = u->timer.data = u;
  u->handles_open = 2;
  const cg_target_t *t = &us->conf->targets[ti];
  int rc = uv_tcp_connect(&u->connect_req, &u->tcp, (const struct sockaddr *)&t->addr, on_connect);
  if (rc < 0) {
    cg_up_mark_down(u, uv_strerror(rc));
    cg_up_fail(u, 502, "upstream connection failed", 1);
    return;
  }
  arm(u, p->cfg->timeouts.upstream_connect);
}

/* --- entry points from the client side ---------------------------------- */

/* 1 when a Via of the request names this process: it has been here before. */
static int came_round(const cg_head_t *h) {
  for (int i = cg_head_find_id(h, CG_H_VIA, 0); i >= 0; i = cg_head_find_id(h, CG_H_VIA, i + 1)) {
    const char *v = cg_head_value(h, i);
    size_t n = h->hdrs[i].val_len;
    for (const char *p = v; (p = memmem(p, n - (size_t)(p - v), via_name, via_name_len)) != NULL; p++) {
      /* the whole received-by, not a part of a longer name */
      size_t end = (size_t)(p - v) + via_name_len;
      int starts = p == v || !cg_ascii_tchar((unsigned char)p[-1]);
      if (starts && (end == n || !cg_ascii_tchar((unsigned char)v[end]))) return 1;
    }
  }
  return 0;
}

void cg_proxy_start(cg_exchange_t *x) {
  if (came_round(&x->head)) {
    /* A loop of the config repeats until a hop gives up: one line a minute
     * says so, not one per round (nor one per request of a client that has
     * learnt the name from an upstream that echoes requests). */
    static __thread uint64_t logged;
    uint64_t now = uv_now(x->proxy->loop);
    if (!logged || now - logged >= 60000) {
      logged = now ? now : 1;
      cg_log_warn("request loop: %.*s %.*s came back through Via %s; answered 508 (logged once a minute)",
                  (int)x->head.method_len, x->head.buf + x->head.method_off, (int)x->head.url_len,
                  x->head.buf + x->head.url_off, via_name);
    }
    x->ops->fail(x, 508, "request loop: this gateway forwarded the request already (Via)");
    return;
  }
  x->req.up_attempts = 0;
  x->req.up_t0 = uv_hrtime();
  proxy_connect(x);
}

void cg_proxy_body(cg_exchange_t *x, const char *at, size_t len) {
  cg_upconn_t *u = x->req.up;
  if (!u) return; /* the upstream already answered or failed: the rest is dropped */
  int rc;
  if (x->req.chunked) {
    char size[24];
    int n = snprintf(size, sizeof size, "%zx\r\n", len);
    rc = cg_up_write3(u, size, (size_t)n, at, len, "\r\n", 2);
  } else {
    rc = cg_up_write3(u, at, len, NULL, 0, NULL, 0);
  }
  if (rc < 0) {
    cg_up_fail(u, 502, "upstream write failed", 0);
    return;
  }
  x->req.up_sent += len;
  arm(u, u->p->cfg->timeouts.upstream_read);
  if (u->tcp.write_queue_size > UP_HIGH_WATER) x->req.body_bp = 1;
}

void cg_proxy_body_end(cg_exchange_t *x) {
  cg_upconn_t *u = x->req.up;
  if (!u || !x->req.up_ready) return; /* cg_up_ready notes the end itself */
  if (x->req.chunked && cg_up_write3(u, "0\r\n\r\n", 5, NULL, 0, NULL, 0) < 0) {
    cg_up_fail(u, 502, "upstream write failed", 0);
    return;
  }
  u->req_sent = 1;
}

void cg_proxy_client_gone(cg_exchange_t *x) {
  cg_upconn_t *u = x->req.up;
  if (!u) return;
  detach(u);
  cg_up_close(u);
}

void cg_proxy_client_drained(cg_exchange_t *x) {
  cg_upconn_t *u = x->req.up;
  if (u && u->read_paused && !u->closing) {
    u->read_paused = 0;
    uv_read_start((uv_stream_t *)&u->tcp, on_up_alloc, on_up_read);
  }
}

cg_proxy_t *cg_proxy_new(uv_loop_t *loop, const cg_config_t *cfg, unsigned id, char *rbuf, size_t rbuf_len,
                         cg_proxy_error_cb on_error, void *arg) {
  uv_once(&via_once, init_via_name);
  cg_proxy_t *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  *p = (cg_proxy_t){.loop = loop, .cfg = cfg, .rbuf = rbuf, .rbuf_len = rbuf_len, .on_error = on_error, .arg = arg};
  p->upstreams = calloc((size_t)cfg->n_upstreams + 1, sizeof *p->upstreams);
  if (!p->upstreams) {
    free(p);
    return NULL;
  }
  for (int i = 0; i < cfg->n_upstreams; i++) {
    cg_upstream_state_t *us = &p->upstreams[i];
    us->conf = &cfg->upstreams[i];
    if (us->conf->tls && !p->plain && !(p->plain = malloc(CG_TLS_READ_CAP))) {
      cg_proxy_free(p);
      return NULL;
    }
    us->targets = calloc((size_t)us->conf->n_targets, sizeof *us->targets);
    if (!us->targets) {
      cg_proxy_free(p);
      return NULL;
    }
    us->rr = id; /* workers start on different targets */
    for (int j = 0; j < us->conf->n_targets; j++) cg_list_init(&us->targets[j].idle);
  }
  return p;
}

void cg_proxy_drain(cg_proxy_t *p) {
  if (!p) return;
  p->draining = 1;
  for (int i = 0; i < p->cfg->n_upstreams; i++) {
    cg_upstream_state_t *us = &p->upstreams[i];
    for (int j = 0; j < us->conf->n_targets; j++)
      while (!cg_list_empty(&us->targets[j].idle))
        cg_up_close(container_of(us->targets[j].idle.next, cg_upconn_t, idle_link));
  }
}

void cg_proxy_free(cg_proxy_t *p) {
  if (!p) return;
  for (int i = 0; i < p->cfg->n_upstreams; i++) {
    cg_upstream_state_t *us = &p->upstreams[i];
    for (int j = 0; us->targets && j < us->conf->n_targets; j++) cg_tls_session_free(us->targets[j].session.s);
    free(us->targets);
  }
  free(p->upstreams);
  free(p->plain);
  free(p);
}
