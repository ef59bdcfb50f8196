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

#include "server/internal.h"
#include "util/log.h"

#define UP_HIGH_WATER (256 * 1024)
#define UP_LOW_WATER (64 * 1024)
#define UP_IDLE_TIMEOUT_MS 60000

typedef struct cg_upconn {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_timer_t timer;
  cg_worker_t *w;
  cg_upstream_state_t *us;
  int ti; /* target index */
  llhttp_t parser;
  cg_head_t head;
  cg_conn_t *conn; /* the client served; NULL while idle in the pool */
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
} cg_upconn_t;

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

static void proxy_connect(cg_conn_t *c);
static void up_close(cg_upconn_t *u);
static void on_up_timer(uv_timer_t *t);
static void on_up_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static cg_upstream_state_t *state_of(cg_conn_t *c) {
  return &c->w->upstreams[c->req.route->upstream->index];
}

/* --- writing to the upstream -------------------------------------------- */

typedef struct up_out {
  uv_write_t req;
  char data[];
} up_out_t;

static void on_up_write(uv_write_t *wr, int status);

static int up_write3(cg_upconn_t *u, const void *a, size_t al, const void *b, size_t bl, const void *x,
                     size_t xl) {
  if (u->tcp.write_queue_size == 0 && u->pending_writes == 0 && u->connected) {
    /* usually all of it goes at once: no copy, no queued write (see send_now in conn.c) */
    uv_buf_t bufs[3] = {uv_buf_init((char *)a, (unsigned)al), uv_buf_init((char *)b, (unsigned)bl),
                        uv_buf_init((char *)x, (unsigned)xl)};
    int n = uv_try_write((uv_stream_t *)&u->tcp, bufs, xl ? 3 : bl ? 2 : 1);
    if (n == UV_EAGAIN) n = 0;
    if (n < 0) return n;
    size_t done = (size_t)n;
    if (done >= al + bl + xl) return 0;
    /* the rest is queued below, as one copy */
    size_t skip = done;
    const char *parts[3] = {a, b, x};
    size_t lens[3] = {al, bl, xl};
    for (int i = 0; i < 3; i++) {
      size_t k = skip < lens[i] ? skip : lens[i];
      parts[i] += k;
      lens[i] -= k;
      skip -= k;
    }
    a = parts[0], al = lens[0], b = parts[1], bl = lens[1], x = parts[2], xl = lens[2];
  }
  up_out_t *o = malloc(sizeof *o + al + bl + xl);
  if (!o) return -1;
  memcpy(o->data, a, al);
  if (bl) memcpy(o->data + al, b, bl);
  if (xl) memcpy(o->data + al + bl, x, xl);
  o->req.data = u;
  uv_buf_t buf = uv_buf_init(o->data, (unsigned)(al + bl + xl));
  int rc = uv_write(&o->req, (uv_stream_t *)&u->tcp, &buf, 1, on_up_write);
  if (rc < 0) free(o);
  else u->pending_writes++;
  return rc;
}

/* --- failure and completion ---------------------------------------------- */

static void detach(cg_upconn_t *u) {
  if (u->conn) {
    u->conn->req.up = NULL;
    u->conn = NULL;
  }
}

static void mark_down(cg_upconn_t *u, const char *why) {
  const cg_upstream_conf_t *uc = u->us->conf;
  cg_target_state_t *ts = &u->us->targets[u->ti];
  if (uc->fail_timeout_ms) ts->down_until = uv_now(&u->w->loop) + uc->fail_timeout_ms;
  cg_log_warn("upstream %s: target %s failed (%s), skipped for %llu ms", uc->name, uc->targets[u->ti].name, why,
              (unsigned long long)uc->fail_timeout_ms);
}

/* The upstream failed this request. Retries on another connection when
 * nothing of the request body is gone yet and nothing of a response came. */
static void up_fail(cg_upconn_t *u, int status, const char *why, int retryable) {
  cg_conn_t *c = u->conn;
  /* A pooled connection the upstream closed says nothing about the target:
   * retry anywhere. A failed connect is retried only on another target that
   * is up, so a dead single target costs one attempt, not two. */
  if (retryable && !u->reused) {
    int other = 0;
    uint64_t now = uv_now(&u->w->loop);
    for (int i = 0; i < u->us->conf->n_targets && !other; i++)
      other = i != u->ti && u->us->targets[i].down_until <= now;
    retryable = other;
  }
  cg_metrics_upstream_error(&u->w->metrics, status, why);
  detach(u);
  up_close(u);
  if (!c || c->state == CG_CONN_CLOSING) return;
  cg_req_t *r = &c->req;
  int max_attempts = r->route->upstream->n_targets + 1;
  if (retryable && !r->resp_started && r->up_sent == 0 && !r->up_ready && r->up_attempts < max_attempts) {
    proxy_connect(c);
    return;
  }
  if (r->resp_started) {
    cg_log_warn("%s: upstream failed mid-response (%s): closing", c->peer, why);
    cg_conn_close(c);
    return;
  }
  cg_log_warn("%s: %d %s", c->peer, status, why);
  cg_respond_error(c, status, why);
}

static void release(cg_upconn_t *u) {
  cg_conn_t *c = u->conn;
  detach(u);
  cg_target_state_t *ts = &u->us->targets[u->ti];
  if (u->no_reuse || !u->req_sent || !llhttp_should_keep_alive(&u->parser) || u->w->draining ||
      ts->n_idle >= u->us->conf->keepalive) {
    up_close(u);
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
  if (c) cg_conn_response_done(c);
}

/* --- timers -------------------------------------------------------------- */

static void on_up_timer(uv_timer_t *t) {
  cg_upconn_t *u = container_of(t, cg_upconn_t, timer);
  if (u->idle) {
    up_close(u);
  } else if (!u->connected) {
    mark_down(u, "connect timed out");
    up_fail(u, 504, "upstream connect timed out", 1);
  } else {
    up_fail(u, 504, "upstream timed out", 0);
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
  cg_conn_t *c = u->conn;
  int status = p->status_code;
  cg_head_sync(&u->head);
  if (status >= 100 && status < 200) {
    /* Interim answers (103 Early Hints) are not relayed; the final one follows. */
    if (status == 101) return -1;
    u->informational = 1;
    return 0;
  }
  if (!c) return -1;
  cg_req_t *r = &c->req;
  const cg_head_t *h = &u->head;
  char storage[4096];
  cg_buf_t b = CG_BUF_ON(storage);
  cg_buf_adds(&b, "HTTP/1.1 ");
  cg_buf_addu(&b, (uint64_t)status);
  cg_buf_add(&b, " ", 1);
  if (h->url_len)
    cg_buf_add(&b, h->buf + h->url_off, h->url_len);
  else
    cg_buf_adds(&b, cg_status_reason(status));
  cg_buf_add(&b, "\r\n", 2);
  int no_body = r->method == HTTP_HEAD || status == 204 || status == 304;
  for (int i = 0; i < h->n; i++) {
    if (cg_head_is_hop_by_hop(h, i)) continue;
    const char *name = cg_head_name(h, i);
    size_t nl = h->hdrs[i].name_len;
    if (!no_body && h->hdrs[i].id == CG_H_CONTENT_LENGTH) continue; /* re-framed below */
    if (cg_respond_skip_upstream_header(c, name, nl)) continue;
    cg_buf_add(&b, name, nl);
    cg_buf_add(&b, ": ", 2);
    cg_buf_add(&b, cg_head_value(h, i), h->hdrs[i].val_len);
    cg_buf_add(&b, "\r\n", 2);
  }
  cg_plugin_expose(c, h, status);
  cg_respond_cors_headers(c, &b, h);
  if (!no_body) {
    if (p->flags & F_CONTENT_LENGTH) {
      cg_buf_adds(&b, "Content-Length: ");
      cg_buf_addu(&b, p->content_length);
      cg_buf_add(&b, "\r\n", 2);
    } else if (r->http_minor >= 1) {
      r->resp_chunked = 1;
      cg_buf_adds(&b, "Transfer-Encoding: chunked\r\n");
    } else {
      r->resp_close_delimited = 1; /* an HTTP/1.0 client learns the end from the close */
      r->keep_alive = 0;
    }
  }
  cg_respond_connection_header(c, &b);
  cg_buf_add(&b, "\r\n", 2);
  r->resp_started = 1;
  r->status = status;
  r->up_us = (uv_hrtime() - r->up_t0) / 1000;
  cg_conn_write(c, b.data, b.len);
  cg_buf_free(&b);
  return no_body ? 1 : 0; /* 1: llhttp reads no body, whatever Content-Length says */
}

static int on_up_body(llhttp_t *p, const char *at, size_t len) {
  cg_upconn_t *u = p->data;
  cg_conn_t *c = u->conn;
  if (!c) return -1;
  int rc;
  if (c->req.resp_chunked) {
    char size[24];
    int n = snprintf(size, sizeof size, "%zx\r\n", len);
    /* one write per piece: size line, data and CRLF together */
    rc = cg_conn_write2(c, size, (size_t)n, at, len);
    if (rc == 0) rc = cg_conn_write(c, "\r\n", 2);
  } else {
    rc = cg_conn_write(c, at, len);
  }
  if (rc < 0) return -1;
  if (c->send_blocked && !u->read_paused) {
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
  if (u->conn && u->conn->req.resp_chunked) cg_conn_write(u->conn, "0\r\n\r\n", 5);
  return HPE_PAUSED; /* finished after llhttp returns, never inside it */
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
  buf->base = u->w->rbuf;
  buf->len = sizeof u->w->rbuf;
}

static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  cg_upconn_t *u = container_of((uv_tcp_t *)s, cg_upconn_t, tcp);
  if (nread == 0 || u->closing) return;
  if (u->idle) {
    up_close(u); /* closed by the upstream, or bytes nobody asked for */
    return;
  }
  cg_conn_t *c = u->conn;
  if (nread < 0) {
    if (nread == UV_EOF && u->got_bytes && !u->resp_complete) {
      llhttp_finish(&u->parser); /* a close-delimited body ends here */
      u->no_reuse = 1;
      if (u->resp_complete) {
        release(u);
        return;
      }
    }
    int stale = u->reused && !u->got_bytes;
    up_fail(u, 502, nread == UV_EOF ? "upstream closed the connection" : uv_strerror((int)nread), stale);
    return;
  }
  u->got_bytes = 1;
  if (c) arm(u, c->w->cfg->timeouts.upstream_read);
  u->head.exec_start = buf->base;
  /* a head and the body behind it in one read leave in one write */
  if (c) cg_conn_cork(c);
  llhttp_errno_t err = llhttp_execute(&u->parser, buf->base, (size_t)nread);
  cg_head_sync(&u->head);
  if (c) cg_conn_uncork(c);
  if (u->closing) return;
  if (err == HPE_PAUSED) {
    const char *pos = llhttp_get_error_pos(&u->parser);
    if (pos && pos < buf->base + nread) u->no_reuse = 1; /* bytes past the response */
    release(u);
    return;
  }
  if (err != HPE_OK) {
    cg_log_warn("upstream %s: invalid response: %s", u->us->conf->name, llhttp_get_error_reason(&u->parser));
    up_fail(u, 502, "invalid response from upstream", 0);
  }
}

/* --- the request --------------------------------------------------------- */

static void on_up_write(uv_write_t *wr, int status) {
  up_out_t *o = container_of(wr, up_out_t, req);
  cg_upconn_t *u = wr->data;
  free(o);
  u->pending_writes--;
  if (u->closing) return;
  if (status < 0) {
    int stale = u->reused && !u->got_bytes && u->conn && u->conn->req.up_sent == 0;
    up_fail(u, 502, "upstream write failed", stale);
    return;
  }
  cg_conn_t *c = u->conn;
  if (c && c->req.body_bp && u->tcp.write_queue_size < UP_LOW_WATER) {
    c->req.body_bp = 0;
    cg_conn_update_reading(c);
  }
}

static void send_head(cg_upconn_t *u) {
  cg_conn_t *c = u->conn;
  cg_req_t *r = &c->req;
  const cg_head_t *h = &c->head;
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
  if (host_i < 0) cg_buf_addf(&b, "Host: %s\r\n", u->us->conf->targets[u->ti].name);
  /* Several X-Forwarded-For lines are one list (RFC 9110 5.3): one line, in
   * arrival order, with the client's address last. */
  cg_buf_adds(&b, "X-Forwarded-For: ");
  for (int i = 0; i < h->n; i++) {
    if (h->hdrs[i].id != CG_H_X_FORWARDED_FOR) continue;
    if (!h->hdrs[i].val_len) continue;
    if (xff_seen++) cg_buf_add(&b, ", ", 2);
    cg_buf_add(&b, cg_head_value(h, i), h->hdrs[i].val_len);
  }
  cg_buf_addf(&b, "%s%s\r\n", xff_seen ? ", " : "", c->peer);
  cg_buf_adds(&b, "X-Forwarded-Proto: http\r\n");
  /* Via is a list too: the hops before, then this one, named for the
   * protocol the request came in on. */
  cg_buf_adds(&b, "Via: ");
  for (int i = 0; i < h->n; i++) {
    if (h->hdrs[i].id != CG_H_VIA || !h->hdrs[i].val_len || cg_head_is_hop_by_hop(h, i)) continue;
    cg_buf_add(&b, cg_head_value(h, i), h->hdrs[i].val_len);
    cg_buf_add(&b, ", ", 2);
  }
  cg_buf_adds(&b, r->http_minor == 0 ? "1.0 " : "1.1 ");
  cg_buf_add(&b, via_name, via_name_len);
  cg_buf_add(&b, "\r\n", 2);
  if (host_i >= 0)
    cg_buf_addf(&b, "X-Forwarded-Host: %.*s\r\n", (int)h->hdrs[host_i].val_len, cg_head_value(h, host_i));
  if (r->chunked)
    cg_buf_adds(&b, "Transfer-Encoding: chunked\r\n");
  else if (r->content_length > 0 || r->method == HTTP_POST || r->method == HTTP_PUT || r->method == HTTP_PATCH)
  {
    cg_buf_adds(&b, "Content-Length: ");
    cg_buf_addu(&b, r->content_length);
    cg_buf_add(&b, "\r\n", 2);
  }
  cg_buf_add(&b, "\r\n", 2);
  int rc = up_write3(u, b.data, b.len, NULL, 0, NULL, 0);
  cg_buf_free(&b);
  if (rc < 0) {
    up_fail(u, 502, "upstream write failed", u->reused);
    return;
  }
  r->up_ready = 1;
  arm(u, c->w->cfg->timeouts.upstream_read);
  if (r->expect_continue) cg_conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  if (r->msg_complete) u->req_sent = 1;
  cg_conn_resume(c); /* the body (or the next request) may flow now */
}

static void on_connect(uv_connect_t *creq, int status) {
  cg_upconn_t *u = container_of(creq, cg_upconn_t, connect_req);
  if (u->closing) return;
  if (status < 0) {
    mark_down(u, uv_strerror(status));
    up_fail(u, 502, "upstream connection failed", 1);
    return;
  }
  u->connected = 1;
  uv_tcp_nodelay(&u->tcp, 1);
  uv_read_start((uv_stream_t *)&u->tcp, on_up_alloc, on_up_read);
  send_head(u);
}

static void on_up_closed(uv_handle_t *h) {
  cg_upconn_t *u = h->data;
  if (--u->handles_open > 0) return;
  cg_head_free(&u->head);
  free(u);
}

static void up_close(cg_upconn_t *u) {
  if (u->closing) return;
  u->closing = 1;
  detach(u);
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

static void proxy_connect(cg_conn_t *c) {
  cg_worker_t *w = c->w;
  cg_upstream_state_t *us = state_of(c);
  c->req.up_attempts++;
  int ti = pick_target(us, uv_now(&w->loop));
  cg_target_state_t *ts = &us->targets[ti];
  if (!cg_list_empty(&ts->idle)) {
    cg_upconn_t *u = container_of(ts->idle.prev, cg_upconn_t, idle_link);
    cg_list_remove(&u->idle_link);
    ts->n_idle--;
    u->idle = 0;
    u->reused = 1;
    u->conn = c;
    c->req.up = u;
    if (u->read_paused) {
      u->read_paused = 0;
      uv_read_start((uv_stream_t *)&u->tcp, on_up_alloc, on_up_read);
    }
    send_head(u);
    return;
  }
  cg_upconn_t *u = calloc(1, sizeof *u);
  if (!u) {
    cg_respond_error(c, 502, "out of memory");
    return;
  }
  u->w = w;
  u->us = us;
  u->ti = ti;
  u->conn = c;
  c->req.up = u;
  cg_list_init(&u->idle_link);
  uv_once(&up_settings_once, init_up_settings);
  llhttp_init(&u->parser, HTTP_RESPONSE, &up_settings);
  u->parser.data = u;
  cg_head_init(&u->head, 65536, 1000);
  uv_tcp_init(&w->loop, &u->tcp);
  uv_timer_init(&w->loop, &u->timer);
  u->tcp.data = u->timer.data = u;
  u->handles_open = 2;
  const cg_target_t *t = &us->conf->targets[ti];
  int rc = uv_tcp_connect(&u->connect_req, &u->tcp, (const struct sockaddr *)&t->addr, on_connect);
  if (rc < 0) {
    mark_down(u, uv_strerror(rc));
    up_fail(u, 502, "upstream connection failed", 1);
    return;
  }
  arm(u, w->cfg->timeouts.upstream_connect);
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

void cg_proxy_start(cg_conn_t *c) {
  if (came_round(&c->head)) {
    /* A loop of the config repeats until a hop gives up: one line a minute
     * says so, not one per round (nor one per request of a client that has
     * learnt the name from an upstream that echoes requests). */
    static __thread uint64_t logged;
    uint64_t now = uv_now(&c->w->loop);
    if (!logged || now - logged >= 60000) {
      logged = now ? now : 1;
      cg_log_warn("request loop: %.*s %.*s came back through Via %s; answered 508 (logged once a minute)",
                  (int)c->head.method_len, c->head.buf + c->head.method_off, (int)c->head.url_len,
                  c->head.buf + c->head.url_off, via_name);
    }
    cg_respond_error(c, 508, "request loop: this gateway forwarded the request already (Via)");
    return;
  }
  c->req.up_attempts = 0;
  c->req.up_t0 = uv_hrtime();
  proxy_connect(c);
}

int cg_proxy_body(cg_conn_t *c, const char *at, size_t len) {
  cg_upconn_t *u = c->req.up;
  if (!u) return 0; /* the upstream already answered or failed: the rest is dropped */
  int rc;
  if (c->req.chunked) {
    char size[24];
    int n = snprintf(size, sizeof size, "%zx\r\n", len);
    rc = up_write3(u, size, (size_t)n, at, len, "\r\n", 2);
  } else {
    rc = up_write3(u, at, len, NULL, 0, NULL, 0);
  }
  if (rc < 0) {
    up_fail(u, 502, "upstream write failed", 0);
    return 0;
  }
  c->req.up_sent += len;
  arm(u, c->w->cfg->timeouts.upstream_read);
  if (u->tcp.write_queue_size > UP_HIGH_WATER) c->req.body_bp = 1;
  return 0;
}

void cg_proxy_body_end(cg_conn_t *c) {
  cg_upconn_t *u = c->req.up;
  if (!u || !c->req.up_ready) return; /* send_head notes the end itself */
  if (c->req.chunked && up_write3(u, "0\r\n\r\n", 5, NULL, 0, NULL, 0) < 0) {
    up_fail(u, 502, "upstream write failed", 0);
    return;
  }
  u->req_sent = 1;
}

void cg_proxy_client_gone(cg_conn_t *c) {
  cg_upconn_t *u = c->req.up;
  if (!u) return;
  detach(u);
  up_close(u);
}

void cg_proxy_client_drained(cg_conn_t *c) {
  cg_upconn_t *u = c->req.up;
  if (u && u->read_paused && !u->closing) {
    u->read_paused = 0;
    uv_read_start((uv_stream_t *)&u->tcp, on_up_alloc, on_up_read);
  }
}

void cg_proxy_worker_init(cg_worker_t *w) {
  const cg_config_t *cfg = w->cfg;
  uv_once(&via_once, init_via_name);
  w->upstreams = calloc((size_t)cfg->n_upstreams + 1, sizeof *w->upstreams);
  for (int i = 0; i < cfg->n_upstreams; i++) {
    cg_upstream_state_t *us = &w->upstreams[i];
    us->conf = &cfg->upstreams[i];
    us->targets = calloc((size_t)us->conf->n_targets, sizeof *us->targets);
    us->rr = (unsigned)w->id; /* workers start on different targets */
    for (int j = 0; j < us->conf->n_targets; j++) cg_list_init(&us->targets[j].idle);
  }
}

void cg_proxy_worker_close_idle(cg_worker_t *w) {
  for (int i = 0; i < w->cfg->n_upstreams; i++) {
    cg_upstream_state_t *us = &w->upstreams[i];
    for (int j = 0; j < us->conf->n_targets; j++)
      while (!cg_list_empty(&us->targets[j].idle))
        up_close(container_of(us->targets[j].idle.next, cg_upconn_t, idle_link));
  }
}

void cg_proxy_worker_free(cg_worker_t *w) {
  if (!w->upstreams) return;
  for (int i = 0; i < w->cfg->n_upstreams; i++) free(w->upstreams[i].targets);
  free(w->upstreams);
  w->upstreams = NULL;
}
