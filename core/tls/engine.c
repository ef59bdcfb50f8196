/* A connection's TLS engine on buffers: ciphertext goes in as the socket
 * reads it, plaintext comes out, and what is to be sent (handshake messages,
 * records, alerts) waits in an output buffer until the connection sends it.
 * OpenSSL never touches the socket, so the connection's loop, timers and
 * backpressure are the same as in plain HTTP.
 *
 * OpenSSL does the handshake. A TLS 1.3 connection then goes on without
 * it: the application traffic secrets (from OpenSSL's key log callback) and
 * the sequence numbers are all its records need (stream.c, record.c), and
 * the SSL object, most of an idle connection's memory, is freed. TLS 1.2
 * connections keep OpenSSL to the end. */
#include <openssl/err.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/engine_internal.h"

_Static_assert(CG_TLS_READ_CAP >= CG_TLS_OPEN_CAP, "cg_tls_read's buffer holds a record's plaintext");

/* --- output: one buffer per thread ------------------------------------------ */

/* What is to be sent goes to one buffer per thread, not per connection: the
 * connection sends it (or copies what the socket does not take) right after
 * each call into the engine, so it is empty whenever the loop moves on to
 * another connection, and an idle connection holds none. One grown past
 * OUT_KEEP (a large body's records) is freed before its next use. */
#define OUT_KEEP (256 * 1024)
static __thread char *out_buf;
static __thread size_t out_len, out_cap;
static __thread int out_shrink; /* out_buf is over OUT_KEEP: free it when next empty and needed */

unsigned char *cg_tls_out_reserve(size_t n) {
  if (out_shrink && out_len == 0) {
    free(out_buf);
    out_buf = NULL;
    out_cap = 0;
    out_shrink = 0;
  }
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

size_t cg_tls_out_mark(void) { return out_len; }

void cg_tls_out_rollback(size_t mark) {
  if (mark < out_len) OPENSSL_cleanse(out_buf + mark, out_len - mark);
  out_len = mark;
}

size_t cg_tls_output(cg_tls_conn_t *t, const char **out) {
  (void)t;
  *out = out_buf;
  return out_len;
}

void cg_tls_output_clear(cg_tls_conn_t *t) {
  (void)t;
  out_len = 0;
  if (out_cap > OUT_KEEP) out_shrink = 1; /* what cg_tls_output gave stays valid until the next write */
}

void cg_tls_thread_free(void) {
  free(out_buf);
  out_buf = NULL;
  out_len = out_cap = 0;
  out_shrink = 0;
}

/* --- input: the current read, after what earlier reads left ------------------- */

int cg_tls_left_add(cg_tls_conn_t *t, const char *p, size_t n) {
  if (n == 0) return 0;
  if (t->left_off && t->left_len) memmove(t->left, t->left + t->left_off, t->left_len);
  t->left_off = 0;
  if (t->left_len + n > t->left_cap) {
    char *q = realloc(t->left, t->left_len + n);
    if (!q) return -1;
    t->left = q;
    t->left_cap = t->left_len + n;
  }
  memcpy(t->left + t->left_len, p, n);
  t->left_len += n;
  return 0;
}

void cg_tls_input(cg_tls_conn_t *t, const void *cipher, size_t n) {
  t->in = cipher;
  t->in_len = n;
}

int cg_tls_input_done(cg_tls_conn_t *t) {
  int rc = 0;
  if (!t->ssl && (t->failed || t->peer_closed)) {
    t->in_len = t->left_len = t->left_off = 0; /* nothing more is read: kept neither */
  } else if (t->in_len) {
    rc = cg_tls_left_add(t, t->in, t->in_len); /* a record cut by the read, until the rest comes */
    t->in_len = 0;
  }
  t->in = NULL;
  if (t->left_len == 0 && t->left) {
    free(t->left);
    t->left = NULL;
    t->left_off = t->left_cap = 0;
  }
  return rc;
}

int cg_tls_has_input(const cg_tls_conn_t *t) {
  return t->left_len || t->in_len || (t->ssl && SSL_has_pending(t->ssl));
}

/* --- the engine's BIO, for OpenSSL ------------------------------------------------ */

/* OpenSSL reads from the input above and writes into the thread's output.
 * Memory BIOs would do the same, but keep their largest size for the life
 * of the connection (a 64 KB body's records, per idle connection) and clear
 * all of it on every reset. */
static BIO_METHOD *engine_method;
static pthread_once_t engine_method_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *data, size_t n, size_t *written) {
  BIO_clear_retry_flags(b);
  unsigned char *at = cg_tls_out_reserve(n);
  if (!at) return 0;
  memcpy(at, data, n);
  *written = n;
  return 1;
}

static int bio_read(BIO *b, char *buf, size_t cap, size_t *got) {
  cg_tls_conn_t *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  size_t n = 0;
  if (t->left_len) {
    n = cap < t->left_len ? cap : t->left_len;
    memcpy(buf, t->left + t->left_off, n);
    t->left_off += n;
    t->left_len -= n;
    if (t->left_len == 0) t->left_off = 0;
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

/* --- life ----------------------------------------------------------------------- */

cg_tls_conn_t *cg_tls_engine_new(SSL_CTX *ctx, int server) {
  pthread_once(&engine_method_once, make_method);
  if (!engine_method) return NULL;
  cg_tls_conn_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->ssl = SSL_new(ctx);
  BIO *bio = BIO_new(engine_method);
  if (!t->ssl || !bio) {
    SSL_free(t->ssl);
    BIO_free(bio);
    free(t);
    return NULL;
  }
  BIO_set_data(bio, t);
  SSL_set_bio(t->ssl, bio, bio); /* one BIO both ways: SSL holds it once */
  SSL_set_app_data(t->ssl, t);   /* for the key log and new session callbacks */
  if (server) SSL_set_accept_state(t->ssl);
  else SSL_set_connect_state(t->ssl);
  return t;
}

cg_tls_conn_t *cg_tls_conn_new(cg_tls_ctx_t *ctx) { return cg_tls_engine_new(cg_tls_ctx_base(ctx), 1); }

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

static void forget_secrets(cg_tls_conn_t *t) {
  OPENSSL_cleanse(t->client_secret, sizeof t->client_secret);
  OPENSSL_cleanse(t->server_secret, sizeof t->server_secret);
  t->client_secret_len = t->server_secret_len = 0;
}

void cg_tls_conn_free(cg_tls_conn_t *t) {
  if (!t) return;
  if (t->ssl) SSL_free(t->ssl); /* and its BIO */
  else cg_tls_rec_clear(&t->rec);
  SSL_SESSION_free(t->session);
  free(t->want_name);
  forget_secrets(t);
  free(t->left);
  free(t);
}

static void note_error(cg_tls_conn_t *t, int ssl_err) {
  unsigned long e = ERR_peek_last_error();
  if (e) ERR_error_string_n(e, t->err, sizeof t->err);
  else snprintf(t->err, sizeof t->err, "SSL error %d", ssl_err);
  ERR_clear_error();
}

/* --- the handshake, and leaving OpenSSL after it ---------------------------------- */

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
  if (strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0) dst = t->client_secret, dst_len = &t->client_secret_len;
  else if (strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0) dst = t->server_secret, dst_len = &t->server_secret_len;
  else return;
  const char *rest = strchr(line + 24, ' ');
  if (!rest || unhex(rest + 1, dst, CG_TLS_MAX_SECRET, dst_len) < 0) *dst_len = 0;
}

/* After a TLS 1.3 handshake: the records are the engine's own from now on
 * and the SSL object goes. It stays (and does the records) when anything is
 * unusual: a suite record.c does not do, a secret missing, early data,
 * kernel TLS, bytes OpenSSL has read but not handed out, or other than
 * whole session tickets under the new key in what OpenSSL wrote as the
 * handshake ended (sent, n): those must open at sequence 0, 1, ... for the
 * write sequence to go on from their count. The client's records after its
 * Finished are still in the input (OpenSSL reads a record at a time), so its
 * sequence starts at 0. */
static void leave_openssl(cg_tls_conn_t *t, const unsigned char *sent, size_t n) {
  if (!SSL_is_server(t->ssl)) return; /* a client (to an upstream) keeps OpenSSL */
  const SSL_CIPHER *cipher = SSL_get_current_cipher(t->ssl);
  uint16_t id = cipher ? (uint16_t)SSL_CIPHER_get_protocol_id(cipher) : 0;
  size_t want = cg_tls_rec_secret_len(id);
  BIO *wbio = SSL_get_wbio(t->ssl);
  int usual = SSL_version(t->ssl) == TLS1_3_VERSION && want && t->client_secret_len == want &&
              t->server_secret_len == want && !SSL_has_pending(t->ssl) &&
              SSL_get_early_data_status(t->ssl) != SSL_EARLY_DATA_ACCEPTED && !BIO_get_ktls_send(wbio) &&
              !BIO_get_ktls_recv(SSL_get_rbio(t->ssl));
  if (usual && cg_tls_rec_start(&t->rec, id, t->client_secret, t->server_secret, want, 0) == 0) {
    if (cg_tls_rec_take_tickets(&t->rec, sent, n) == 0) {
      SSL_free(t->ssl);
      t->ssl = NULL;
    } else {
      cg_tls_rec_clear(&t->rec);
    }
  }
  forget_secrets(t);
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
    t->resumed = SSL_session_reused(t->ssl);
    free(t->want_name); /* asked only during the handshake */
    t->want_name = NULL;
    leave_openssl(t, out_len > mark ? (const unsigned char *)out_buf + mark : NULL, out_len - mark);
    return 1;
  }
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
  if (e == SSL_ERROR_WANT_CLIENT_HELLO_CB && t->cert_state == CG_CERT_WAITING) return CG_TLS_WANT_CERT;
  note_error(t, e);
  long v = SSL_get_verify_result(t->ssl);
  if (!SSL_is_server(t->ssl) && SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE && v != X509_V_OK)
    /* the reason a person can act on */
    snprintf(t->err, sizeof t->err, "certificate verify failed: %s", X509_verify_cert_error_string(v));
  return -1;
}

cg_tls_session_t *cg_tls_take_session(cg_tls_conn_t *t) {
  SSL_SESSION *s = t->session;
  t->session = NULL;
  return (cg_tls_session_t *)s;
}

void cg_tls_session_free(cg_tls_session_t *s) { SSL_SESSION_free((SSL_SESSION *)s); }

int cg_tls_resumed(const cg_tls_conn_t *t) { return t->resumed; }

const char *cg_tls_wanted_name(const cg_tls_conn_t *t) { return t->want_name ? t->want_name : ""; }

void cg_tls_give_cert(cg_tls_conn_t *t, const cg_tls_cert_t *c, int failed) {
  t->cert_state = CG_CERT_GIVEN;
  if (failed || (c && cg_tls_cert_use(t->ssl, c) < 0)) {
    ERR_clear_error();
    t->cert_state = CG_CERT_FAILED;
  }
}

/* --- records -------------------------------------------------------------------- */

ssize_t cg_tls_read(cg_tls_conn_t *t, void *buf, size_t cap) {
  if (!t->ssl) return cg_tls_stream_read(t, buf, cap);
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
  if (!t->ssl) return cg_tls_stream_write(t, plain, n);
  ERR_clear_error();
  size_t done = 0;
  /* the engine's BIO takes everything: one call, records of up to 16 KB */
  if (SSL_write_ex(t->ssl, plain, n, &done) == 1 && done == n) return 0;
  note_error(t, SSL_get_error(t->ssl, 0));
  return -1;
}

void cg_tls_close_notify(cg_tls_conn_t *t) {
  if (!t->ssl) {
    cg_tls_stream_close_notify(t);
    return;
  }
  ERR_clear_error();
  if (SSL_is_init_finished(t->ssl)) SSL_shutdown(t->ssl);
  ERR_clear_error();
}

void cg_tls_idle(cg_tls_conn_t *t) {
  if (!t->ssl) cg_tls_rec_idle(&t->rec);
}

const char *cg_tls_version(const cg_tls_conn_t *t) { return t->version ? t->version : "TLS"; }

const char *cg_tls_alpn(const cg_tls_conn_t *t) { return t->alpn; }

const char *cg_tls_error(const cg_tls_conn_t *t) { return t->err[0] ? t->err : "handshake failed"; }
