/* A client connection's timeouts: the head, the body, a client that stops
 * reading, the idle keep-alive (HTTP/2's are its session's, server/h2.c), and
 * the trim of an idle connection's buffers. */
#include "server/h2.h"
#include "server/internal.h"
#include "util/log.h"


/* A connection's timeout changes on every request (the head's, none while
 * answering, then idle), and moving its libuv timer each time (a heap update
 * per change) showed in the tail latency of small requests. So the timer is
 * lazy, as nginx's are: c->deadline is the timeout in force (0: none), and
 * the libuv timer may be due before it, never after; when it fires early it
 * re-arms itself for the rest. In steady keep-alive traffic a connection's
 * timer then moves about once per head timeout, not three times a request. */
void cg_conn_set_timeout(cg_conn_t *c, uint64_t ms) {
  if (!ms) {
    c->deadline = 0;
    return;
  }
  uint64_t d = uv_now(&c->w->loop) + ms;
  c->deadline = d;
  if (uv_is_active((uv_handle_t *)&c->timer) && c->timer_due <= d) return;
  c->timer_due = d;
  uv_timer_start(&c->timer, cg_conn_on_timer, ms, 0);
}

/* An idle connection gives back what its requests used (the head's store,
 * the response's buffer); the next request takes it again. Done CG_CONN_TRIM_MS
 * after the connection went idle, not at every response: a busy connection
 * keeps its memory. */

static void conn_trim(cg_conn_t *c) {
  if (c->state != CG_CONN_IDLE || c->pending_len || c->paused || c->corked || c->obuf.len) return;
  cg_head_free(&c->x.head);
  cg_buf_free(&c->obuf);
  if (c->tls && !c->handshaking) cg_tls_idle(c->tls);
  if (c->h2) cg_h2_trim(c);
  c->trimmed = 1;
}

void cg_conn_on_timer(uv_timer_t *t) {
  cg_conn_t *c = container_of(t, cg_conn_t, timer);
  cg_req_t *r = &c->x.req;
  if (!c->deadline) return;
  uint64_t now = uv_now(&c->w->loop);
  if (c->lingering && now >= c->deadline) {
    cg_conn_close(c);
    return;
  }
  if (c->h2 && now >= c->deadline) {
    c->deadline = 0;
    cg_h2_on_timer(c);
    return;
  }
  if (now < c->deadline) {
    if (!c->trimmed) conn_trim(c);
    c->timer_due = c->deadline;
    uv_timer_start(t, cg_conn_on_timer, c->deadline - now, 0);
    return;
  }
  c->deadline = 0;
  switch (c->state) {
  case CG_CONN_IDLE:
    cg_conn_close(c);
    return;
  case CG_CONN_HEAD:
    cg_conn_refuse(c, 408, "request head not received in time");
    return;
  case CG_CONN_ACTIVE:
    if (!r->resp_started && !r->msg_complete) {
      cg_conn_refuse(c, 408, "request body not received in time");
      return;
    }
    cg_log_info("%s: closing: client stopped reading", c->x.peer);
    cg_conn_close(c);
    return;
  case CG_CONN_CLOSING:
    return;
  }
}
