/* A connection's TLS engine on buffers: ciphertext goes in as the socket
 * reads it, plaintext comes out, and what OpenSSL writes (handshake
 * messages, records, alerts) waits in an output buffer until the connection
 * sends it. OpenSSL never touches the socket, so the connection's loop,
 * timers and backpressure are the same as in plain HTTP.
 *
 * OpenSSL does the handshake. A TLS 1.3 connection then goes on without
 * it: the application traffic secrets (from OpenSSL's key log callback)
 * and the sequence numbers are all its records need (record.c), and the SSL
 * object, most of an idle connection's memory, is freed. TLS 1.2
 * connections keep OpenSSL to the end. */
#include <openssl/err.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/record.h"
#include "tls/tls_internal.h"

_Static_assert(CG_TLS_READ_CAP >= CG_TLS_OPEN_CAP, "cg_tls_read's buffer holds a record's plaintext");

/* What OpenSSL writes goes to one buffer per thread, not per connection:
 * the connection sends it (or copies what the socket does not take) right
 * after each call into the engine, so it is empty whenever the loop moves on
 * to another connection, and an idle connection holds none. One grown past
 * OUT_KEEP (a large body's records) is freed once sent. */
#define OUT_KEEP (256 * 1024)
static __thread char *out_buf;
static __thread size_t out_len, out_cap;

struct cg_tls_conn {
  SSL *ssl; /* NULL once the records are the engine's own (rec) */
  cg_tls_rec_t rec;
  /* the application traffic secrets, caught as the handshake makes them */
  unsigned char client_secret[CG_TLS_MAX_SECRET], server_secret[CG_TLS_MAX_SECRET];
  size_t client_secret_len, server_secret_len;
  const char *version; /* once the handshake is done: "TLSv1.3", "TLSv1.2" */
  char alpn[16];
  /* input: the bytes of the current read (not copied), then what is left of
   * them when the read is done (a partial record, copied) */
  const char *in;
  size_t in_len;
  char *left;
  size_t left_len;
  char err[160];
};

/* The engine's own BIO: OpenSSL reads from the read the connection just
 * made and writes into a buffer the connection sends from. Memory BIOs
 * would do the same, but keep their largest size for the life of the
 * connection (a 64 KB body's records, per idle connection) and clear all
 * of it on every reset. */
static BIO_METHOD *engine_method;
static pthread_once_t engine_method_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *data, size_t n, size_t *written) {
  BIO_clear_retry_flags(b);
  if (out_len + n > out_cap) {
    size_t cap = out_cap ? out_cap : 16384;
    while (cap < out_len + n) cap *= 2;
    char *p = realloc(out_buf, cap);
    if (!p) return 0;
    out_buf = p;
    out_cap = cap;
  }
  memcpy(out_buf + out_len, data, n);
  out_len += n;
  *written = n;
  return 1;
}

static int bio_read(BIO *b, char *buf, size_t cap, size_t *got) {
  cg_tls_conn_t *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  size_t n = 0;
  if (t->left_len) {
    n = cap < t->left_len ? cap : t->left_len;
    memcpy(buf, t->left, n);
    memmove(t->left, t->left + n, t->left_len - n);
    t->left_len -= n;
  } else if (t->in_len) {
    n = cap < t->in_len ? cap : t->in_len;
    memcpy(buf, t->in, n);
    t->in += n;
    t->in_len -= n;
  }
  if (n == 0) {
    BIO_set_retry_read(b); /* more to come, not the end of the stream */
    return 0;
  }
  *got = n;
  return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)num;
  (void)ptr;
  cg_tls_conn_t *t = BIO_get_data(b);
  switch (cmd) {
  case BIO_CTRL_FLUSH:
    return 1;
  case BIO_CTRL_PENDING:
    return t ? (long)(t->left_len + t->in_len) : 0;
  case BIO_CTRL_WPENDING:
    return (long)out_len;
  default:
    return 0;
  }
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static void make_method(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "corsgate connection");
  if (m && BIO_meth_set_write_ex(m, bio_write) && BIO_meth_set_read_ex(m, bio_read) &&
      BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create))
    engine_method = m;
  else
    BIO_meth_free(m);
}

cg_tls_conn_t *cg_tls_conn_new(cg_tls_ctx_t *ctx) {
  pthread_once(&engine_method_once, make_method);
  if (!engine_method) return NULL;
  cg_tls_conn_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->ssl = SSL_new(cg_tls_ctx_base(ctx));
  BIO *bio = BIO_new(engine_method);
  if (!t->ssl || !bio) {
    SSL_free(t->ssl);
    BIO_free(bio);
    free(t);
    return NULL;
  }
  BIO_set_data(bio, t);
  SSL_set_bio(t->ssl, bio, bio); /* one BIO both ways: SSL holds it once */
  SSL_set_app_data(t->ssl, t);   /* for the key log callback */
  SSL_set_accept_state(t->ssl);
  return t;
}

cg_tls_conn_t *cg_tls_conn_new_records(uint16_t suite, const unsigned char *client_secret,
                                       const unsigned char *server_secret, size_t secret_len) {
  cg_tls_conn_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  if (cg_tls_rec_start(&t->rec, suite, client_secret, server_secret, secret_len, 0) < 0) {
    free(t);
    return NULL;
  }
  t->version = "TLSv1.3";
  return t;
}

void cg_tls_conn_free(cg_tls_conn_t *t) {
  if (!t) return;
  SSL_free(t->ssl); /* and its BIO */
  if (!t->ssl) cg_tls_rec_clear(&t->rec);
  OPENSSL_cleanse(t->client_secret, sizeof t->client_secret);
  OPENSSL_cleanse(t->server_secret, sizeof t->server_secret);
  free(t->left);
  free(t);
}

void cg_tls_input(cg_tls_conn_t *t, const void *cipher, size_t n) {
  t->in = cipher;
  t->in_len = n;
}

int cg_tls_input_done(cg_tls_conn_t *t) {
  if (t->in_len) {
    /* a record cut by the read: kept until the rest comes */
    char *p = realloc(t->left, t->left_len + t->in_len);
    if (!p) return -1;
    memcpy(p + t->left_len, t->in, t->in_len);
    t->left = p;
    t->left_len += t->in_len;
    t->in_len = 0;
  }
  t->in = NULL;
  if (t->left_len == 0 && t->left) {
    free(t->left);
    t->left = NULL;
  }
  return 0;
}

int cg_tls_has_input(const cg_tls_conn_t *t) {
  return t->left_len || t->in_len || (t->ssl && SSL_has_pending(t->ssl));
}

static void note_error(cg_tls_conn_t *t, int ssl_err) {
  unsigned long e = ERR_peek_last_error();
  if (e) ERR_error_string_n(e, t->err, sizeof t->err);
  else snprintf(t->err, sizeof t->err, "SSL error %d", ssl_err);
  ERR_clear_error();
}

/* --- the handshake, and leaving OpenSSL after it ---------------------------- */

static int unhex(const char *s, unsigned char *out, size_t cap, size_t *n) {
  size_t len = strlen(s);
  if (len % 2 || len / 2 > cap) return -1;
  for (size_t i = 0; i < len / 2; i++) {
    int hi = OPENSSL_hexchar2int((unsigned char)s[2 * i]), lo = OPENSSL_hexchar2int((unsigned char)s[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (unsigned char)(hi << 4 | lo);
  }
  *n = len / 2;
  return 0;
}

/* OpenSSL's key log line ("LABEL client_random secret", hex): the two
 * application traffic secrets of TLS 1.3 are kept, nothing else. */
void cg_tls_keylog_cb(const SSL *ssl, const char *line) {
  cg_tls_conn_t *t = SSL_get_app_data(ssl);
  if (!t) return;
  unsigned char *dst;
  size_t *dst_len;
  const char *rest;
  if (strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0) dst = t->client_secret, dst_len = &t->client_secret_len;
  else if (strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0) dst = t->server_secret, dst_len = &t->server_secret_len;
  else return;
  rest = strchr(line + 24, ' ');
  if (!rest || unhex(rest + 1, dst, CG_TLS_MAX_SECRET, dst_len) < 0) *dst_len = 0;
}

/* The whole records in buf (n bytes, records only). */
static uint64_t count_records(const char *buf, size_t n) {
  uint64_t k = 0;
  for (size_t i = 0; i + 5 <= n; k++) i += 5 + ((size_t)(unsigned char)buf[i + 3] << 8 | (unsigned char)buf[i + 4]);
  return k;
}

/* After a TLS 1.3 handshake: the records are the engine's own from now on
 * and the SSL object goes. It stays (and does the records) when anything is
 * unusual: a suite record.c does not do, a secret missing, bytes OpenSSL
 * has read but not handed out. sent_after_finished: what OpenSSL wrote in
 * the call that ended the handshake (the session tickets, under the server's
 * application secret: their count is the first sequence number). */
static void leave_openssl(cg_tls_conn_t *t, const char *sent_after_finished, size_t n) {
  const SSL_CIPHER *cipher = SSL_get_current_cipher(t->ssl);
  uint16_t id = cipher ? (uint16_t)SSL_CIPHER_get_protocol_id(cipher) : 0;
  size_t want = cg_tls_rec_secret_len(id);
  if (SSL_version(t->ssl) != TLS1_3_VERSION || !want || t->client_secret_len != want ||
      t->server_secret_len != want || SSL_has_pending(t->ssl))
    return;
  if (cg_tls_rec_start(&t->rec, id, t->client_secret, t->server_secret, want, count_records(sent_after_finished, n)) <
      0)
    return;
  SSL_free(t->ssl);
  t->ssl = NULL;
  OPENSSL_cleanse(t->client_secret, sizeof t->client_secret);
  OPENSSL_cleanse(t->server_secret, sizeof t->server_secret);
}

int cg_tls_handshake(cg_tls_conn_t *t) {
  ERR_clear_error();
  size_t mark = out_len;
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) {
    t->version = SSL_get_version(t->ssl); /* a static string */
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (p && n < sizeof t->alpn) memcpy(t->alpn, p, n);
    leave_openssl(t, out_buf + mark, out_len - mark);
    return 1;
  }
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
  note_error(t, e);
  return -1;
}

/* --- records, once the engine's own ------------------------------------------ */

static unsigned char *reserve(size_t n) {
  if (out_len + n > out_cap) {
    size_t cap = out_cap ? out_cap : 16384;
    while (cap < out_len + n) cap *= 2;
    char *p = realloc(out_buf, cap);
    if (!p) return NULL;
    out_buf = p;
    out_cap = cap;
  }
  unsigned char *at = (unsigned char *)out_buf + out_len;
  out_len += n;
  return at;
}

/* A fatal alert (RFC 8446 6.2), best effort: the connection ends after it. */
static void send_alert(cg_tls_conn_t *t, unsigned char desc, const char *why) {
  unsigned char a[2] = {2, desc};
  (void)cg_tls_rec_seal(&t->rec, 21, a, 2, reserve);
  snprintf(t->err, sizeof t->err, "%s", why);
}

/* The next whole record of the input (left first, then this read), or NULL:
 * more bytes are needed (*bad 0) or the header is not a record's (*bad 1). */
static const unsigned char *next_record(cg_tls_conn_t *t, size_t *len, int *bad) {
  *bad = 0;
  if (t->left_len == 0) {
    if (t->in_len < 5) return NULL;
    size_t rl = cg_tls_rec_length((const unsigned char *)t->in);
    if (!rl) return *bad = 1, NULL;
    if (t->in_len < rl) return NULL;
    const unsigned char *p = (const unsigned char *)t->in;
    t->in += rl;
    t->in_len -= rl;
    *len = rl;
    return p;
  }
  /* a record begun in an earlier read: completed in left */
  size_t need = t->left_len < 5 ? 5 : cg_tls_rec_length((const unsigned char *)t->left);
  if (t->left_len >= 5 && !need) return *bad = 1, NULL;
  for (;;) {
    size_t take = need - t->left_len < t->in_len ? need - t->left_len : t->in_len;
    if (take) {
      char *p = realloc(t->left, t->left_len + take);
      if (!p) return *bad = 1, NULL;
      memcpy(p + t->left_len, t->in, take);
      t->left = p;
      t->left_len += take;
      t->in += take;
      t->in_len -= take;
    }
    if (t->left_len < need) return NULL;
    if (need > 5 || t->left_len > 5) break;
    need = cg_tls_rec_length((const unsigned char *)t->left);
    if (!need) return *bad = 1, NULL;
  }
  *len = t->left_len;
  t->left_len = 0; /* handed out: the caller is done with it before the next call */
  return (const unsigned char *)t->left;
}

/* KeyUpdate messages (RFC 8446 4.6.3) in a handshake record; anything else
 * after the handshake is refused. 0 or -1. */
static int post_handshake(cg_tls_conn_t *t, const unsigned char *m, size_t n) {
  while (n > 0) {
    if (n < 5 || m[0] != 24 || m[1] != 0 || m[2] != 0 || m[3] != 1 || m[4] > 1) {
      send_alert(t, 10, "unexpected message after the handshake"); /* unexpected_message */
      return -1;
    }
    if (cg_tls_rec_update(&t->rec, &t->rec.rd) < 0) return -1;
    if (m[4] == 1) { /* update_requested: ours, under the old key, then the new one */
      static const unsigned char ku[5] = {24, 0, 0, 1, 0};
      if (cg_tls_rec_seal(&t->rec, 22, ku, sizeof ku, reserve) < 0 || cg_tls_rec_update(&t->rec, &t->rec.wr) < 0)
        return -1;
    }
    m += 5;
    n -= 5;
  }
  return 0;
}

/* Up to cap (at least CG_TLS_OPEN_CAP) bytes of application data: one
 * record's worth, 0 when more input is needed, -1 close_notify, -2 broken. */
static ssize_t own_read(cg_tls_conn_t *t, unsigned char *buf, size_t cap) {
  if (cap < CG_TLS_OPEN_CAP) return -2;
  for (;;) {
    size_t len;
    int bad;
    const unsigned char *rec = next_record(t, &len, &bad);
    if (!rec) {
      if (!bad) return 0;
      send_alert(t, 50, "not a TLS 1.3 record"); /* decode_error */
      return -2;
    }
    uint8_t type;
    ssize_t n = cg_tls_rec_open(&t->rec, rec, len, buf, &type);
    if (n < 0) {
      send_alert(t, 20, "a record failed to decrypt"); /* bad_record_mac */
      return -2;
    }
    if (type == 23) {
      if (n > 0) {
        t->rec.empty_run = 0;
        return n;
      }
      if (++t->rec.empty_run > 32) {
        send_alert(t, 10, "a flood of empty records");
        return -2;
      }
      continue;
    }
    if (type == 21) {
      if (n == 2 && buf[1] == 0) return -1; /* close_notify */
      if (n == 2 && buf[1] == 90) continue; /* user_canceled, a warning */
      snprintf(t->err, sizeof t->err, "the client sent alert %d", n == 2 ? buf[1] : -1);
      return -2;
    }
    if (type == 22 && post_handshake(t, buf, (size_t)n) == 0) continue;
    if (type != 22) send_alert(t, 10, "unexpected record type after the handshake");
    return -2;
  }
}

ssize_t cg_tls_read(cg_tls_conn_t *t, void *buf, size_t cap) {
  if (!t->ssl) return own_read(t, buf, cap);
  ERR_clear_error();
  size_t got = 0;
  if (SSL_read_ex(t->ssl, buf, cap, &got) == 1) return (ssize_t)got;
  int e = SSL_get_error(t->ssl, 0);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
  if (e == SSL_ERROR_ZERO_RETURN) return -1;
  note_error(t, e);
  return -2;
}

int cg_tls_write(cg_tls_conn_t *t, const void *plain, size_t n) {
  if (n == 0) return 0;
  if (!t->ssl) {
    if (cg_tls_rec_seal(&t->rec, 23, plain, n, reserve) == 0) return 0;
    snprintf(t->err, sizeof t->err, "cannot seal a record");
    return -1;
  }
  ERR_clear_error();
  size_t done = 0;
  /* the engine's BIO takes everything: one call, records of up to 16 KB */
  if (SSL_write_ex(t->ssl, plain, n, &done) == 1 && done == n) return 0;
  note_error(t, SSL_get_error(t->ssl, 0));
  return -1;
}

void cg_tls_close_notify(cg_tls_conn_t *t) {
  if (!t->ssl) {
    static const unsigned char cn[2] = {1, 0};
    (void)cg_tls_rec_seal(&t->rec, 21, cn, sizeof cn, reserve);
    return;
  }
  ERR_clear_error();
  if (SSL_is_init_finished(t->ssl)) SSL_shutdown(t->ssl);
  ERR_clear_error();
}

void cg_tls_idle(cg_tls_conn_t *t) {
  if (!t->ssl) cg_tls_rec_idle(&t->rec);
}

size_t cg_tls_output(cg_tls_conn_t *t, const char **out) {
  (void)t;
  *out = out_buf;
  return out_len;
}

void cg_tls_output_clear(cg_tls_conn_t *t) {
  (void)t;
  out_len = 0;
  if (out_cap > OUT_KEEP) {
    free(out_buf);
    out_buf = NULL;
    out_cap = 0;
  }
}

void cg_tls_thread_free(void) {
  free(out_buf);
  out_buf = NULL;
  out_len = out_cap = 0;
}

const char *cg_tls_version(const cg_tls_conn_t *t) { return t->version ? t->version : "TLS"; }

const char *cg_tls_alpn(const cg_tls_conn_t *t) { return t->alpn; }

const char *cg_tls_error(const cg_tls_conn_t *t) { return t->err[0] ? t->err : "handshake failed"; }
