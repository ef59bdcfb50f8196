/* A connection's bytes on their way out, and its TLS: writes go to the
 * socket at once when it takes them (uv_try_write), are queued when it does
 * not, and are collected while corked so a response leaves in one write. On
 * a TLS listener the same bytes are encrypted first (one record per write),
 * and what the socket reads is decrypted before the parser sees it; the
 * handshake runs on the first reads, bounded by the head timeout. */
#include <stdlib.h>
#include <string.h>

#include "server/h2.h"
#include "server/internal.h"
#include "util/log.h"

/* A client that stops reading stops the upstream read past this much queued. */
#define SEND_HIGH_WATER (256 * 1024)
#define SEND_LOW_WATER (64 * 1024)
/* A TLS record's plaintext: a head and a small body go in one. */
#define TLS_RECORD 16384

typedef struct out {
  uv_write_t req;
  char data[];
} out_t;

static void on_write(uv_write_t *wr, int status) {
  out_t *o = container_of(wr, out_t, req);
  cg_conn_t *c = wr->data;
  free(o);
  c->pending_writes--;
  if (c->state == CG_CONN_CLOSING) {
    return;
  }
  if (status < 0) {
    cg_conn_close(c);
    return;
  }
  if (c->pending_writes == 0 && c->close_when_flushed) {
    cg_conn_close(c);
    return;
  }
  if (c->pending_writes == 0) cg_conn_migrate_if_idle(c);
  if (c->state == CG_CONN_CLOSING) return;
  if (c->send_blocked && cg_conn_write_queue(c) < SEND_LOW_WATER) {
    c->send_blocked = 0;
    cg_conn_arm_timer(c);
    if (c->h2) cg_h2_drained(c);
    else cg_proxy_client_drained(&c->x);
  }
}

/* Sends a then b. The socket usually takes everything at once: uv_try_write
 * then costs one writev and no allocation, and libuv (1.44) is spared the
 * epoll_ctl it makes after every queued write completes. What the socket
 * does not take is copied and queued. */
static int send_raw(cg_conn_t *c, const char *a, size_t alen, const char *b, size_t blen) {
  if (c->pending_writes == 0) {
    uv_buf_t bufs[2] = {uv_buf_init((char *)a, (unsigned)alen), uv_buf_init((char *)b, (unsigned)blen)};
    int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, blen ? 2 : 1);
    if (n == UV_EAGAIN) n = 0;
    if (n < 0) {
      cg_conn_close(c);
      return -1;
    }
    size_t done = (size_t)n;
    if (done >= alen + blen) return 0;
    if (done >= alen) {
      b += done - alen;
      blen -= done - alen;
      alen = 0;
    } else {
      a += done;
      alen -= done;
    }
  }
  out_t *o = malloc(sizeof *o + alen + blen);
  if (!o) {
    cg_conn_close(c);
    return -1;
  }
  if (alen) memcpy(o->data, a, alen);
  if (blen) memcpy(o->data + alen, b, blen);
  uv_buf_t buf = uv_buf_init(o->data, (unsigned)(alen + blen));
  o->req.data = c;
  int rc = uv_write(&o->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
  if (rc < 0) {
    free(o);
    cg_conn_close(c);
    return -1;
  }
  c->pending_writes++;
  if (!c->send_blocked && cg_conn_write_queue(c) > SEND_HIGH_WATER) {
    c->send_blocked = 1;
    cg_conn_arm_timer(c);
  }
  return 0;
}

size_t cg_conn_write_queue(const cg_conn_t *c) { return c->tcp.write_queue_size; }

/* --- TLS ------------------------------------------------------------------ */

/* Sends what the TLS engine has written (records, handshake messages,
 * alerts): send_raw copies what the socket does not take at once, so the
 * engine's buffer is cleared either way. */
static int tls_flush(cg_conn_t *c) {
  const char *p;
  size_t n = cg_tls_output(c->tls, &p);
  if (n == 0) return 0;
  /* cleared first (p stays valid until the engine writes again): if the
   * send fails and closes the connection, nothing of it is sent twice */
  cg_tls_output_clear(c->tls);
  return send_raw(c, p, n, NULL, 0);
}

static int tls_send(cg_conn_t *c, const char *a, size_t alen, const char *b, size_t blen) {
  int rc;
  if (alen && blen && alen + blen <= TLS_RECORD) {
    /* a head and its body in one record, not two */
    char joined[TLS_RECORD];
    memcpy(joined, a, alen);
    memcpy(joined + alen, b, blen);
    rc = cg_tls_write(c->tls, joined, alen + blen);
  } else {
    rc = cg_tls_write(c->tls, a, alen);
    if (rc == 0) rc = cg_tls_write(c->tls, b, blen);
  }
  if (rc < 0) {
    cg_tls_output_clear(c->tls); /* whatever the failed write left is not sent */
    cg_conn_close(c);
    return -1;
  }
  return tls_flush(c);
}

/* What one read brought, through the handshake or decrypted into the parser. */
static void tls_process(cg_conn_t *c) {
  cg_worker_t *w = c->w;
  if (c->handshaking) {
    int hs = cg_tls_handshake(c->tls);
    if (hs == CG_TLS_WANT_CERT) {
      if (!cg_cert_lookup(c)) return; /* the hook runs: cg_conn_tls_resume follows */
      hs = cg_tls_handshake(c->tls);
    }
    tls_flush(c); /* the server's flight, or the alert of a failure */
    if (c->state == CG_CONN_CLOSING) return;
    if (hs < 0) {
      w->metrics.tls_handshake_errors++;
      cg_log_info("%s: TLS handshake failed: %s", c->x.peer, cg_tls_error(c->tls));
      c->close_when_flushed = 1;
      if (c->pending_writes == 0) cg_conn_close(c);
      else cg_conn_update_reading(c);
      return;
    }
    if (hs == 0) return;
    c->handshaking = 0;
    c->x.tls = cg_tls_version(c->tls);
    cg_metrics_tls_handshake(&w->metrics, c->x.tls, cg_tls_resumed(c->tls));
    if (strcmp(cg_tls_alpn(c->tls), "h2") == 0) {
      if (cg_h2_start(c) < 0) {
        cg_conn_close(c);
        return;
      }
      /* a reload or a shutdown began during the handshake: told at once */
      if (w->draining) cg_h2_drain(c);
    }
    cg_conn_arm_timer(c); /* the idle timeout, until the first request */
  }
  for (;;) {
    ssize_t got = cg_tls_read(c->tls, w->tls_plain, sizeof w->tls_plain);
    if (got == 0) break;
    if (got == -1) { /* close_notify: the client is done sending */
      tls_flush(c);
      if (c->state != CG_CONN_CLOSING) cg_conn_peer_closed(c);
      return;
    }
    if (got < 0) { /* a broken record or an alert: nothing more can be read or sent */
      cg_log_debug("%s: TLS stream broken: %s", c->x.peer, cg_tls_error(c->tls));
      tls_flush(c);
      cg_conn_close(c);
      return;
    }
    tls_flush(c); /* what reading wrote (a key update's answer) goes before the response */
    if (c->state == CG_CONN_CLOSING) return;
    cg_conn_input(c, w->tls_plain, (size_t)got);
    if (c->state == CG_CONN_CLOSING) return;
  }
  tls_flush(c); /* session tickets, key updates */
}

void cg_conn_tls_received(cg_conn_t *c, const char *data, size_t n) {
  int was_handshaking = c->handshaking;
  cg_tls_input(c->tls, data, n);
  tls_process(c);
  if (!c->tls) return; /* handed to the next worker at a reload, engine and all */
  /* data is the read's buffer, freed after this: a record it cut is copied */
  if (cg_tls_input_done(c->tls) < 0) {
    cg_conn_close(c);
    return;
  }
  /* a connection whose handshake ended after a reload began moves now */
  if (was_handshaking && !c->handshaking && c->state != CG_CONN_CLOSING) cg_conn_migrate_if_idle(c);
}

void cg_conn_tls_resume(cg_conn_t *c) {
  if (c->state == CG_CONN_CLOSING || !c->handshaking) return;
  tls_process(c);
  /* a connection whose handshake ended after a reload began moves now */
  if (!c->handshaking && c->state != CG_CONN_CLOSING) cg_conn_migrate_if_idle(c);
}

void cg_conn_tls_close(cg_conn_t *c, int graceful) {
  if (!c->tls || c->handshaking || !graceful) return;
  /* best effort: a close_notify, if the socket takes it now. Only after a
   * whole response or between requests: a response cut short (an upstream
   * failing mid-body) must not look complete to the client */
  cg_tls_close_notify(c->tls);
  const char *p;
  size_t n = cg_tls_output(c->tls, &p);
  if (n && c->pending_writes == 0) {
    uv_buf_t buf = uv_buf_init((char *)p, (unsigned)n);
    (void)uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
  }
  cg_tls_output_clear(c->tls);
}

/* --- writes ----------------------------------------------------------------- */

static int send_now(cg_conn_t *c, const char *a, size_t alen, const char *b, size_t blen) {
  return c->tls ? tls_send(c, a, alen, b, blen) : send_raw(c, a, alen, b, blen);
}

void cg_conn_cork(cg_conn_t *c) { c->corked++; }

/* Sends what corking collected, in one write. */
static int flush_obuf(cg_conn_t *c) {
  if (c->obuf.len == 0 || c->state == CG_CONN_CLOSING) return 0;
  size_t n = c->obuf.len;
  c->obuf.len = 0;
  int rc = send_now(c, c->obuf.data, n, NULL, 0);
  /* a body's worth of buffer is not kept per idle connection */
  if (c->obuf.cap > 16384) cg_buf_free(&c->obuf);
  return rc;
}

void cg_conn_flush(cg_conn_t *c) { flush_obuf(c); }

void cg_conn_uncork(cg_conn_t *c) {
  if (c->corked > 0 && --c->corked == 0) flush_obuf(c);
}

int cg_conn_write2(cg_conn_t *c, const void *a, size_t alen, const void *b, size_t blen) {
  if (c->state == CG_CONN_CLOSING) return -1;
  c->x.req.resp_bytes += alen + blen;
  if (c->corked) {
    if (alen) cg_buf_add(&c->obuf, a, alen);
    if (blen) cg_buf_add(&c->obuf, b, blen);
    if (c->obuf.len < SEND_LOW_WATER) return 0;
    return flush_obuf(c); /* a big body is not held back for the sake of one syscall */
  }
  return send_now(c, a, alen, b, blen);
}

int cg_conn_write(cg_conn_t *c, const void *data, size_t len) { return cg_conn_write2(c, data, len, NULL, 0); }

