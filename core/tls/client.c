/* HTTPS to upstreams: one client context an upstream (its trusted CAs and
 * the name it verifies), an engine a connection (engine.c, connecting), and
 * the sessions servers give kept so the next connection to a target resumes
 * rather than paying a full handshake. */
#include <ctype.h>
#include <dirent.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tls/engine_internal.h"

struct cg_tls_client {
  SSL_CTX *ssl;
  char *server_name;
  int verify;
};

static const unsigned char ALPN[] = "\x08http/1.1";

/* A session (or a TLS 1.3 ticket) the server gave: the connection keeps the
 * newest until the proxy takes it for the target. A copy: OpenSSL marks the
 * connection's own session unresumable when the connection ends without a
 * close_notify (a response's end with keepalive = 0, a pool's limit), and
 * the copy must outlive that. */
static int on_new_session(SSL *s, SSL_SESSION *sess) {
  cg_tls_conn_t *t = SSL_get_app_data(s);
  SSL_SESSION *copy = t ? SSL_SESSION_dup(sess) : NULL;
  if (copy) {
    SSL_SESSION_free(t->session);
    t->session = copy;
  }
  return 0; /* OpenSSL keeps its reference */
}

/* 1 when dir (NULL: the system's store, its file or its directory) holds a
 * certificate: a file of them, or the hashed names (NNNNNNNN.0) OpenSSL
 * looks CAs up by. */
static int store_has_cas(const char *dir) {
  if (!dir) {
    const char *file = getenv(X509_get_default_cert_file_env());
    if (!file) file = X509_get_default_cert_file();
    FILE *f = fopen(file, "r");
    if (f) {
      X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
      fclose(f);
      ERR_clear_error();
      if (x) {
        X509_free(x);
        return 1;
      }
    }
    dir = getenv(X509_get_default_cert_dir_env());
    if (!dir) dir = X509_get_default_cert_dir();
  }
  DIR *d = opendir(dir);
  if (!d) return 0;
  int found = 0;
  struct dirent *e;
  while (!found && (e = readdir(d)) != NULL) {
    const char *n = e->d_name;
    size_t len = strlen(n), i = 0;
    while (i < 8 && isxdigit((unsigned char)n[i])) i++;
    found = i == 8 && len > 9 && n[8] == '.' && isdigit((unsigned char)n[9]);
  }
  closedir(d);
  return found;
}

cg_tls_client_t *cg_tls_client_new(const cg_tls_client_conf_t *conf, const char *path, cg_diag_t *d) {
  char err[256];
  cg_tls_client_t *c = calloc(1, sizeof *c);
  if (!c || !(c->ssl = SSL_CTX_new(TLS_client_method()))) {
    cg_diag_error(d, path, "out of memory");
    free(c);
    return NULL;
  }
  SSL_CTX *s = c->ssl;
  SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(s, CG_TLS_CIPHERS_12); /* what the listeners take: ECDHE and AEAD only */
  SSL_CTX_set_security_level(s, 2);
  SSL_CTX_set_options(s, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_protos(s, ALPN, sizeof ALPN - 1);
  SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(s, on_new_session);
  c->verify = conf->verify;
  if (conf->server_name) c->server_name = strdup(conf->server_name);
  if (conf->verify) {
    SSL_CTX_set_verify(s, SSL_VERIFY_PEER, NULL);
    int ok, is_dir = 0;
    struct stat st;
    /* a directory (or the system's store) loads lazily, whatever it holds:
     * one with no certificate in it would fail every request, not the load */
    if (!conf->ca) ok = SSL_CTX_set_default_verify_paths(s) && store_has_cas(NULL);
    else if ((is_dir = stat(conf->ca, &st) == 0 && S_ISDIR(st.st_mode)))
      ok = SSL_CTX_load_verify_locations(s, NULL, conf->ca) && store_has_cas(conf->ca);
    else ok = SSL_CTX_load_verify_locations(s, conf->ca, NULL);
    if (!ok) {
      unsigned long e = ERR_get_error();
      if (e) ERR_error_string_n(e, err, sizeof err);
      else if (!conf->ca) snprintf(err, sizeof err, "no certificates in it (install ca-certificates, or set ca)");
      else if (is_dir) snprintf(err, sizeof err, "no certificates under hashed names in it (openssl rehash makes them)");
      else snprintf(err, sizeof err, "no certificates in it");
      ERR_clear_error();
      cg_diag_error(d, path, "ca: cannot load the CAs in %s: %s", conf->ca ? conf->ca : "the system's store", err);
      cg_tls_client_free(c);
      return NULL;
    }
  }
  return c;
}

void cg_tls_client_free(cg_tls_client_t *c) {
  if (!c) return;
  SSL_CTX_free(c->ssl);
  free(c->server_name);
  free(c);
}

cg_tls_conn_t *cg_tls_connect(cg_tls_client_t *c, const char *ip, cg_tls_session_t *session) {
  cg_tls_conn_t *t = cg_tls_engine_new(c->ssl, 0);
  if (!t) return NULL;
  SSL *s = t->ssl;
  int ok = 1;
  if (c->server_name) {
    ok = SSL_set_tlsext_host_name(s, c->server_name) == 1;
    if (ok && c->verify) ok = SSL_set1_host(s, c->server_name) == 1;
  } else if (c->verify) {
    /* no name: the certificate must name the target's address */
    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), ip) == 1;
  }
  /* A copy, for the reason on_new_session copies (TLS 1.2 resumes the very
   * session given). One that does not fit (another version or suite) is a
   * full handshake, not a failure. */
  SSL_SESSION *copy = ok && session ? SSL_SESSION_dup((SSL_SESSION *)session) : NULL;
  if (copy && SSL_set_session(s, copy) != 1) ERR_clear_error();
  SSL_SESSION_free(copy);
  ERR_clear_error();
  if (!ok) {
    cg_tls_conn_free(t);
    return NULL;
  }
  return t;
}
