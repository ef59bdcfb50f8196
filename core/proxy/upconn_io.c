/* An upstream connection's bytes: writes that go at once when the socket
 * takes them and are copied and queued when it does not, and for an HTTPS
 * upstream its TLS (core/tls, connecting): the handshake once TCP is up,
 * the request encrypted on its way out, the response decrypted before the
 * parser sees it, the sessions servers give kept per target to resume. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/internal.h"
#include "util/log.h"

/* --- writes ----------------------------------------------------------------- */

typedef struct up_out {
  uv_write_t req;
  char data[];
} up_out_t;

static void on_up_write(uv_write_t *wr, int status);

static int raw_write3(cg_upconn_t *u, const void *a, size_t al, const void *b, size_t bl, const void *x,
                      size_t xl) {
  if (u->tcp.write_queue_size == 0 && u->pending_writes == 0 && u->connected) {
    /* usually all of it goes at once: no copy, no queued write */
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

static void on_up_write(uv_write_t *wr, int status) {
  up_out_t *o = container_of(wr, up_out_t, req);
  cg_upconn_t *u = wr->data;
  free(o);
  u->pending_writes--;
  if (u->closing) return;
  if (status < 0) {
    int stale = u->reused && !u->got_bytes && u->x && u->x->req.up_sent == 0;
    cg_up_fail(u, 502, "upstream write failed", stale);
    return;
  }
  cg_exchange_t *x = u->x;
  if (x && x->req.body_bp && u->tcp.write_queue_size < UP_LOW_WATER) {
    x->req.body_bp = 0;
    x->ops->body_drained(x);
  }
}

/* --- TLS ----------------------------------------------------------------------- */

/* Sends what the engine has written (records, handshake messages, alerts). */
static int tls_flush(cg_upconn_t *u) {
  const char *p;
  size_t n = cg_tls_output(u->tls, &p);
  if (n == 0) return 0;
  cg_tls_output_clear(u->tls); /* p stays valid until the engine writes again */
  return raw_write3(u, p, n, NULL, 0, NULL, 0);
}

int cg_up_write3(cg_upconn_t *u, const void *a, size_t al, const void *b, size_t bl, const void *x, size_t xl) {
  if (!u->tls) return raw_write3(u, a, al, b, bl, x, xl);
  const void *parts[3] = {a, b, x};
  size_t lens[3] = {al, bl, xl}, total = al + bl + xl;
  int rc = 0;
  if (total <= 16384) {
    /* a head, or a chunk with its framing, in one record */
    char joined[16384];
    size_t off = 0;
    for (int i = 0; i < 3; i++)
      if (lens[i]) memcpy(joined + off, parts[i], lens[i]), off += lens[i];
    rc = cg_tls_write(u->tls, joined, total);
  } else {
    for (int i = 0; i < 3 && rc == 0; i++) rc = cg_tls_write(u->tls, parts[i], lens[i]);
  }
  if (rc < 0) {
    cg_tls_output_clear(u->tls);
    return -1;
  }
  return tls_flush(u);
}

static void keep_session(cg_upconn_t *u) {
  cg_tls_session_t *s = cg_tls_take_session(u->tls);
  if (!s) return;
  cg_target_state_t *ts = &u->us->targets[u->ti];
  if (ts->session.s && u->session_born < ts->session.born) { /* an older line than the one kept */
    cg_tls_session_free(s);
    return;
  }
  cg_tls_session_free(ts->session.s);
  ts->session = (cg_up_session_t){s, u->session_born};
}

/* The session kept for the target, when young enough (it stays kept), or
 * NULL. */
static cg_tls_session_t *young_session(cg_upconn_t *u, uint64_t now, uint64_t *born) {
  cg_up_session_t *e = &u->us->targets[u->ti].session;
  if (e->s && now - e->born > UP_SESSION_MAX_AGE_MS) {
    cg_tls_session_free(e->s);
    e->s = NULL;
  }
  if (e->s) *born = e->born;
  return e->s;
}

/* The target's address as text, for verifying a certificate that names no
 * host: from the address connected to ("localhost:443" is 127.0.0.1). */
static void target_ip(const cg_target_t *t, char *out, size_t cap) {
  const struct sockaddr *sa = (const struct sockaddr *)&t->addr;
  const void *a = sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                                            : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
  if (!inet_ntop(sa->sa_family, a, out, (socklen_t)cap)) out[0] = 0;
}

/* Goes on with the handshake (a first call sends the ClientHello). */
static void handshake(cg_upconn_t *u) {
  int hs = cg_tls_handshake(u->tls);
  if (tls_flush(u) < 0) {
    cg_up_fail(u, 502, "upstream write failed", 1);
    return;
  }
  if (hs == 0) return;
  if (hs < 0) {
    char why[256];
    snprintf(why, sizeof why, "upstream TLS handshake failed: %s", cg_tls_error(u->tls));
    cg_up_mark_down(u, why);
    cg_up_fail(u, 502, why, 1);
    return;
  }
  u->handshaking = 0;
  if (!cg_tls_resumed(u->tls)) u->session_born = uv_now(u->p->loop); /* a full handshake */
  keep_session(u);
  cg_up_ready(u);
}

void cg_up_connected(cg_upconn_t *u) {
  const cg_upstream_conf_t *uc = u->us->conf;
  if (!uc->tls) {
    cg_up_ready(u);
    return;
  }
  char ip[INET6_ADDRSTRLEN];
  target_ip(&uc->targets[u->ti], ip, sizeof ip);
  uint64_t now = uv_now(u->p->loop);
  u->session_born = now;
  u->tls = cg_tls_connect(uc->tls, ip, young_session(u, now, &u->session_born)); /* which takes a copy */
  if (!u->tls) {
    cg_up_fail(u, 502, "upstream TLS handshake failed: cannot set up TLS (out of memory)", 0);
    return;
  }
  u->handshaking = 1;
  handshake(u);
}

void cg_up_tls_received(cg_upconn_t *u, const char *data, size_t n) {
  cg_tls_input(u->tls, data, n);
  if (u->handshaking) {
    handshake(u);
    if (u->closing || u->handshaking) {
      if (!u->closing && cg_tls_input_done(u->tls) < 0) cg_up_fail(u, 502, "out of memory", 1);
      return;
    }
  }
  for (;;) {
    ssize_t got = cg_tls_read(u->tls, u->p->plain, CG_TLS_READ_CAP);
    keep_session(u); /* TLS 1.3 tickets come after the handshake, maybe with the response */
    if (tls_flush(u) < 0) { /* a key update's answer */
      if (u->idle) cg_up_close(u);
      else cg_up_fail(u, 502, "upstream write failed", 0);
      return;
    }
    if (got == 0) break;
    if (got == -1) { /* close_notify: the clean end a close-delimited body needs */
      cg_up_eof(u, UV_EOF, 1);
      return;
    }
    if (got < 0) {
      if (u->idle) { /* no exchange failed: the pool loses a connection */
        cg_up_close(u);
        return;
      }
      char why[256];
      snprintf(why, sizeof why, "upstream TLS stream broken: %s", cg_tls_error(u->tls));
      cg_up_fail(u, 502, why, 0);
      return;
    }
    if (u->idle) { /* application data nobody asked for */
      cg_up_close(u);
      return;
    }
    cg_up_parse(u, u->p->plain, (size_t)got);
    if (u->closing) return;
  }
  if (cg_tls_input_done(u->tls) < 0) { /* a record cut by the read could not be kept */
    if (u->idle) cg_up_close(u);
    else cg_up_fail(u, 502, "out of memory", 0);
  }
}

void cg_up_tls_close(cg_upconn_t *u) {
  /* after whole exchanges only: a response or request cut short must not
   * look complete to the other side */
  if (!u->tls || u->handshaking || !(u->idle || u->resp_complete)) return;
  cg_tls_close_notify(u->tls);
  const char *p;
  size_t n = cg_tls_output(u->tls, &p);
  if (n && u->pending_writes == 0 && u->tcp.write_queue_size == 0) {
    uv_buf_t buf = uv_buf_init((char *)p, (unsigned)n);
    (void)uv_try_write((uv_stream_t *)&u->tcp, &buf, 1);
  }
  cg_tls_output_clear(u->tls);
}
