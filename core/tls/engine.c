/* A connection's TLS engine on buffers: ciphertext goes in as the socket
 * reads it, plaintext comes out, and what OpenSSL writes (handshake
 * messages, records, alerts) waits in an output buffer until the connection
 * sends it. OpenSSL never touches the socket, so the connection's loop,
 * timers and backpressure are the same as in plain HTTP. */
#include <openssl/err.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls_internal.h"

/* An idle connection keeps an output buffer this big at most; a larger one
 * (a body's records) is freed once sent. */
#define OUT_KEEP 4096

struct cg_tls_conn {
  SSL *ssl;
  /* input: the bytes of the current read (not copied), then what is left of
   * them when the read is done (a partial record, copied) */
  const char *in;
  size_t in_len;
  char *left;
  size_t left_len;
  /* output: records and handshake messages waiting to be sent */
  char *out;
  size_t out_len, out_cap;
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
  cg_tls_conn_t *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (t->out_len + n > t->out_cap) {
    size_t cap = t->out_cap ? t->out_cap : 1024;
    while (cap < t->out_len + n) cap *= 2;
    char *p = realloc(t->out, cap);
    if (!p) return 0;
    t->out = p;
    t->out_cap = cap;
  }
  memcpy(t->out + t->out_len, data, n);
  t->out_len += n;
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
    return t ? (long)t->out_len : 0;
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
  SSL_set_accept_state(t->ssl);
  return t;
}

void cg_tls_conn_free(cg_tls_conn_t *t) {
  if (!t) return;
  SSL_free(t->ssl); /* and its BIO */
  free(t->left);
  free(t->out);
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

int cg_tls_has_input(const cg_tls_conn_t *t) { return t->left_len || t->in_len || SSL_has_pending(t->ssl); }

static void note_error(cg_tls_conn_t *t, int ssl_err) {
  unsigned long e = ERR_peek_last_error();
  if (e) ERR_error_string_n(e, t->err, sizeof t->err);
  else snprintf(t->err, sizeof t->err, "SSL error %d", ssl_err);
  ERR_clear_error();
}

int cg_tls_handshake(cg_tls_conn_t *t) {
  ERR_clear_error();
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) return 1;
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
  note_error(t, e);
  return -1;
}

ssize_t cg_tls_read(cg_tls_conn_t *t, void *buf, size_t cap) {
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
  ERR_clear_error();
  size_t done = 0;
  /* a memory BIO takes everything: one call, records of up to 16 KB */
  if (n == 0 || (SSL_write_ex(t->ssl, plain, n, &done) == 1 && done == n)) return 0;
  note_error(t, SSL_get_error(t->ssl, 0));
  return -1;
}

void cg_tls_close_notify(cg_tls_conn_t *t) {
  ERR_clear_error();
  if (SSL_is_init_finished(t->ssl)) SSL_shutdown(t->ssl);
  ERR_clear_error();
}

size_t cg_tls_output(cg_tls_conn_t *t, const char **out) {
  *out = t->out;
  return t->out_len;
}

void cg_tls_output_clear(cg_tls_conn_t *t) {
  t->out_len = 0;
  if (t->out_cap > OUT_KEEP) {
    free(t->out);
    t->out = NULL;
    t->out_cap = 0;
  }
}

const char *cg_tls_version(const cg_tls_conn_t *t) { return SSL_get_version(t->ssl); }

const char *cg_tls_server_name(const cg_tls_conn_t *t) {
  const char *n = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
  return n ? n : "";
}

const char *cg_tls_alpn(const cg_tls_conn_t *t) {
  static __thread char buf[32];
  const unsigned char *p = NULL;
  unsigned int n = 0;
  SSL_get0_alpn_selected(t->ssl, &p, &n);
  if (n >= sizeof buf) n = 0;
  if (n) memcpy(buf, p, n);
  buf[n] = 0;
  return buf;
}

const char *cg_tls_error(const cg_tls_conn_t *t) { return t->err[0] ? t->err : "handshake failed"; }
