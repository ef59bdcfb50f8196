/* A connection's TLS engine on memory BIOs: ciphertext goes in as the socket
 * reads it, plaintext comes out, and what OpenSSL writes (handshake
 * messages, records, alerts) waits in the output BIO until the connection
 * sends it. OpenSSL never touches the socket, so the connection's loop,
 * timers and backpressure are the same as in plain HTTP. */
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls_internal.h"

struct cg_tls_conn {
  SSL *ssl;
  BIO *rbio, *wbio; /* owned by ssl */
  char err[160];
};

cg_tls_conn_t *cg_tls_conn_new(cg_tls_ctx_t *ctx) {
  cg_tls_conn_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->ssl = SSL_new(cg_tls_ctx_base(ctx));
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (!t->ssl || !t->rbio || !t->wbio) {
    SSL_free(t->ssl);
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    free(t);
    return NULL;
  }
  /* an empty input BIO means "wait for more", not the end of the stream */
  BIO_set_mem_eof_return(t->rbio, -1);
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  SSL_set_accept_state(t->ssl);
  return t;
}

void cg_tls_conn_free(cg_tls_conn_t *t) {
  if (!t) return;
  SSL_free(t->ssl); /* and its BIOs */
  free(t);
}

int cg_tls_input(cg_tls_conn_t *t, const void *cipher, size_t n) {
  return n == 0 || BIO_write(t->rbio, cipher, (int)n) == (int)n ? 0 : -1;
}

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
  if (e != SSL_ERROR_ZERO_RETURN) note_error(t, e);
  return -1;
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
  char *p = NULL;
  long n = BIO_get_mem_data(t->wbio, &p);
  *out = p;
  return n > 0 ? (size_t)n : 0;
}

void cg_tls_output_clear(cg_tls_conn_t *t) { (void)BIO_reset(t->wbio); }

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
