/* HTTPS to upstreams: one client context an upstream (its trusted CAs and
 * the name it verifies), an engine a connection (engine.c, connecting), and
 * the sessions servers give kept so the next connection to a target resumes
 * rather than paying a full handshake. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tls/engine_internal.h"

typedef struct cas cas_t;

struct cg_tls_client {
  SSL_CTX *ssl;
  char *server_name;
  int verify;
  cas_t *cas; /* the CAs it trusts, shared; NULL for a directory's */
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

/* --- CA files, loaded once -------------------------------------------------
 * A file of CAs (the system's bundle is about 140 of them, 0.8 MB once
 * parsed) is loaded once and its store shared by every upstream that trusts
 * it, rather than once per upstream. A file that changed (its identity,
 * size, modification or change time) is loaded again, so a reload sees a renewed bundle; a store
 * goes with the last upstream that used it. Directories load lazily, one
 * certificate as needed, so they are not shared. */
struct cas {
  cas_t *next;
  char *key; /* the file, or "" for the system's store */
  struct stat st;
  X509_STORE *store;
  int users;
};
static cas_t *cas_all;
static pthread_mutex_t cas_mu = PTHREAD_MUTEX_INITIALIZER;

/* The same file, unchanged: its change time moves with any write, and
 * nothing sets it back (cp -p or rsync -t keep the modification time). */
static int same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
         a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void cas_free(cas_t *e) {
  X509_STORE_free(e->store);
  free(e->key);
  free(e);
}

/* A new entry for file (NULL: the system's), loaded and listed; NULL when
 * it cannot be. Under cas_mu. */
static cas_t *cas_load(const char *key, const char *file, const struct stat *st) {
  cas_t *e = calloc(1, sizeof *e);
  if (!e) return NULL;
  e->st = *st;
  if (!(e->key = strdup(key)) || !(e->store = X509_STORE_new()) ||
      (file ? X509_STORE_load_file(e->store, file) : X509_STORE_set_default_paths(e->store)) != 1) {
    cas_free(e);
    return NULL;
  }
  e->next = cas_all;
  cas_all = e;
  return e;
}

/* The store of file (NULL: the system's, its bundle and its directory),
 * shared; NULL when it cannot be loaded (OpenSSL's error queue says why). */
static cas_t *cas_get(const char *file) {
  const char *key = file ? file : "";
  struct stat st;
  memset(&st, 0, sizeof st);
  if (file) {
    if (stat(file, &st) != 0) {
      ERR_raise_data(ERR_LIB_SYS, errno, "stat(%s)", file);
      return NULL;
    }
  } else {
    const char *def = getenv(X509_get_default_cert_file_env());
    if (stat(def ? def : X509_get_default_cert_file(), &st) != 0) memset(&st, 0, sizeof st);
  }
  pthread_mutex_lock(&cas_mu);
  cas_t *e;
  for (e = cas_all; e; e = e->next)
    if (strcmp(e->key, key) == 0 && same_file(&e->st, &st)) break;
  if (!e) e = cas_load(key, file, &st);
  if (e) e->users++;
  pthread_mutex_unlock(&cas_mu);
  return e;
}

static void cas_put(cas_t *e) {
  if (!e) return;
  pthread_mutex_lock(&cas_mu);
  if (--e->users == 0) {
    for (cas_t **p = &cas_all; *p; p = &(*p)->next)
      if (*p == e) {
        *p = e->next;
        break;
      }
    cas_free(e);
  }
  pthread_mutex_unlock(&cas_mu);
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
    if ((is_dir = conf->ca && stat(conf->ca, &st) == 0 && S_ISDIR(st.st_mode))) {
      ok = SSL_CTX_load_verify_locations(s, NULL, conf->ca) && store_has_cas(conf->ca);
    } else {
      ok = (c->cas = cas_get(conf->ca)) != NULL && (conf->ca || store_has_cas(NULL));
      if (c->cas) SSL_CTX_set1_cert_store(s, c->cas->store); /* a reference of the context's own */
    }
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
  cas_put(c->cas);
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
