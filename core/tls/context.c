/* A TLS listener's certificates: loaded once per config (and again at each
 * reload), checked the way a browser will judge them, and grouped by the
 * names they cover. Each group is an SSL_CTX holding one certificate per key
 * type (an ECDSA and an RSA one for the same names: OpenSSL gives ECDSA to
 * clients that offer it); the client's SNI picks the group, exact names
 * before wildcards, and without SNI or a match the first certificate serves. */
#include <ctype.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tls/engine_internal.h"

static const char SUITES_13[] = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
/* ALPN, in the server's order of preference (wire format: length-prefixed). */
static const unsigned char ALPN_H1[] = "\x08http/1.1";
static const unsigned char ALPN_H2[] = "\x02h2\x08http/1.1";

enum { EXPIRY_WARN_DAYS = 14 };

typedef struct group {
  SSL_CTX *ssl;
  char **names; /* lower-case DNS names of its subjectAltName; "*.example.com" for wildcards */
  int n_names;
  int key_types[4]; /* EVP_PKEY_* of the certificates it holds */
  int n_keys;
} group_t;

struct cg_tls_ctx {
  group_t *groups; /* groups[0] holds the first certificate: the default (none with a hook and no files) */
  int n_groups;
  int cert_hook; /* names no group covers are asked of the listener's certificate hook */
};

SSL_CTX *cg_tls_ctx_base(cg_tls_ctx_t *ctx) { return ctx->groups[0].ssl; }

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The names of cert's subjectAltName, sorted: DNS names lower-case, IP
 * addresses as "ip:" and their bytes in hex. */
static char **san_names(X509 *cert, int *n) {
  *n = 0;
  GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  if (!gens) return NULL;
  int count = sk_GENERAL_NAME_num(gens);
  char **out = calloc((size_t)count + 1, sizeof *out);
  for (int i = 0; out && i < count; i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
    if (g->type == GEN_IPADD) {
      /* kept as "ip:HEX": no server name matches one, but two certificates
       * for different addresses are not the same names */
      const unsigned char *a = ASN1_STRING_get0_data(g->d.iPAddress);
      int alen = ASN1_STRING_length(g->d.iPAddress);
      char *ip = malloc(3 + 2 * (size_t)alen + 1);
      if (!ip) break;
      strcpy(ip, "ip:");
      for (int k = 0; k < alen; k++) snprintf(ip + 3 + 2 * k, 3, "%02x", a[k]);
      out[(*n)++] = ip;
      continue;
    }
    if (g->type != GEN_DNS) continue;
    const unsigned char *s = ASN1_STRING_get0_data(g->d.dNSName);
    int len = ASN1_STRING_length(g->d.dNSName);
    char *name = malloc((size_t)len + 1);
    if (!name) break;
    for (int k = 0; k < len; k++) name[k] = (char)tolower(s[k]);
    name[len] = 0;
    out[(*n)++] = name;
  }
  GENERAL_NAMES_free(gens);
  if (out) qsort(out, (size_t)*n, sizeof *out, name_cmp);
  return out;
}

static void free_names(char **names, int n) {
  if (!names) return;
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
}

static int same_names(char **a, int na, char **b, int nb) {
  if (na != nb) return 0;
  for (int i = 0; i < na; i++)
    if (strcmp(a[i], b[i]) != 0) return 0;
  return 1;
}

/* ALPN: the first of ours the client offers; without one the handshake goes
 * on without ALPN (the client may still speak HTTP/1.1). */
static int on_alpn(SSL *s, const unsigned char **out, unsigned char *outlen, const unsigned char *in, unsigned int inlen,
                   void *arg) {
  (void)s;
  unsigned char *sel;
  unsigned char sel_len;
  const unsigned char *ours = arg ? ALPN_H2 : ALPN_H1;
  unsigned ours_len = arg ? sizeof ALPN_H2 - 1 : sizeof ALPN_H1 - 1;
  /* the server's preference decides (RFC 7301 3.2): h2 when the client offers it */
  if (SSL_select_next_proto(&sel, &sel_len, ours, ours_len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  *outlen = sel_len;
  return SSL_TLSEXT_ERR_OK;
}

static const group_t *lookup(const cg_tls_ctx_t *t, const char *name) {
  for (int g = 0; g < t->n_groups; g++)
    for (int i = 0; i < t->groups[g].n_names; i++)
      if (strcmp(t->groups[g].names[i], name) == 0) return &t->groups[g];
  /* a wildcard covers exactly one label: *.example.com serves a.example.com */
  const char *dot = strchr(name, '.');
  if (!dot || dot == name) return NULL;
  for (int g = 0; g < t->n_groups; g++)
    for (int i = 0; i < t->groups[g].n_names; i++) {
      const char *w = t->groups[g].names[i];
      if (w[0] == '*' && w[1] == '.' && strcmp(w + 1, dot) == 0) return &t->groups[g];
    }
  return NULL;
}

/* SNI: the group whose names cover the name asked for. */
static int on_sni(SSL *s, int *alert, void *arg) {
  (void)alert;
  const cg_tls_ctx_t *t = arg;
  const char *asked = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
  if (!asked) return SSL_TLSEXT_ERR_NOACK;
  char name[256];
  size_t n = strlen(asked);
  if (n == 0 || n >= sizeof name) return SSL_TLSEXT_ERR_NOACK;
  for (size_t i = 0; i < n; i++) name[i] = (char)tolower((unsigned char)asked[i]);
  if (name[n - 1] == '.') n--;
  name[n] = 0;
  const group_t *g = lookup(t, name);
  if (g && g->ssl != SSL_get_SSL_CTX(s)) SSL_set_SSL_CTX(s, g->ssl);
  return SSL_TLSEXT_ERR_OK;
}

/* The server name of a ClientHello, lower-case without a trailing dot, into
 * out: 0, or -1 when it has none (or one that is no host name). */
static int hello_name(SSL *s, char *out, size_t cap) {
  const unsigned char *p;
  size_t len;
  if (!SSL_client_hello_get0_ext(s, TLSEXT_TYPE_server_name, &p, &len) || len < 5) return -1;
  /* server_name_list: its length, then (type 0 host_name, length, name) */
  size_t list = (size_t)p[0] << 8 | p[1], n = (size_t)p[3] << 8 | p[4];
  if (list + 2 != len || p[2] != 0 || n + 3 > list || n == 0 || n >= cap) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = p[5 + i];
    if (!(isalnum(ch) || ch == '-' || ch == '.' || ch == '_')) return -1;
    out[i] = (char)tolower(ch);
  }
  if (out[n - 1] == '.') n--;
  out[n] = 0;
  return n ? 0 : -1;
}

/* The ClientHello, before SNI is acted on: a name no certificate file
 * covers pauses the handshake (SSL_CLIENT_HELLO_RETRY) until the
 * certificate hook has answered (cg_tls_give_cert); OpenSSL calls back
 * again when the handshake goes on. */
static int on_client_hello(SSL *s, int *alert, void *arg) {
  const cg_tls_ctx_t *t = arg;
  cg_tls_conn_t *c = SSL_get_app_data(s);
  if (!c || !t->cert_hook) return SSL_CLIENT_HELLO_SUCCESS;
  char name[256];
  if (hello_name(s, name, sizeof name) != 0) name[0] = 0;
  if (c->cert_state == CG_CERT_GIVEN) {
    /* a second ClientHello (after a HelloRetryRequest) must ask for the
     * name the hook answered for */
    if (!c->want_name || strcmp(name, c->want_name) == 0) return SSL_CLIENT_HELLO_SUCCESS;
    *alert = SSL_AD_ILLEGAL_PARAMETER;
    return SSL_CLIENT_HELLO_ERROR;
  }
  if (c->cert_state == CG_CERT_FAILED) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  if (!name[0] || lookup(t, name)) {
    c->cert_state = CG_CERT_GIVEN; /* no name, or one a file covers */
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  /* kept only while a name waits on the hook: idle connections hold none */
  free(c->want_name);
  if (!(c->want_name = strdup(name))) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  c->cert_state = CG_CERT_WAITING;
  return SSL_CLIENT_HELLO_RETRY;
}

static SSL_CTX *new_ssl_ctx(int min_version, int h2) {
  SSL_CTX *c = SSL_CTX_new(TLS_server_method());
  if (!c) return NULL;
  int ok = SSL_CTX_set_min_proto_version(c, min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION) &&
           SSL_CTX_set_cipher_list(c, CG_TLS_CIPHERS_12) && SSL_CTX_set_ciphersuites(c, SUITES_13) &&
           SSL_CTX_set1_groups_list(c, "X25519:P-256:P-384");
  /* RSA and DH of 2048 bits or more, ECC of 224 or more, whatever the
   * system's openssl.cnf says */
  SSL_CTX_set_security_level(c, 2);
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  /* an idle connection keeps no 16 KB read and write buffers */
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  /* resumption by tickets only: a session cache would be one per worker */
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(c, cg_tls_ticket_cb);
  SSL_CTX_set_alpn_select_cb(c, on_alpn, h2 ? (void *)ALPN_H2 : NULL);
  SSL_CTX_set_keylog_callback(c, cg_tls_keylog_cb);
  if (!ok) {
    SSL_CTX_free(c);
    return NULL;
  }
  return c;
}

/* A session resumes only where it began: on the same listening address
 * and certificate names (the ticket keys are the process's). */
static int set_sid_ctx(SSL_CTX *c, const char *address, char **names, int n) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX *m = EVP_MD_CTX_new();
  int ok = m && EVP_DigestInit_ex(m, EVP_sha256(), NULL) && EVP_DigestUpdate(m, address, strlen(address) + 1);
  for (int i = 0; ok && i < n; i++) ok = EVP_DigestUpdate(m, names[i], strlen(names[i]) + 1);
  ok = ok && EVP_DigestFinal_ex(m, md, &len);
  EVP_MD_CTX_free(m);
  if (len > SSL_MAX_SID_CTX_LENGTH) len = SSL_MAX_SID_CTX_LENGTH;
  return ok && SSL_CTX_set_session_id_context(c, md, len) ? 0 : -1;
}

/* One certificate: loaded, checked, and added to its group. 0 or -1 (in d). */
static int load_one(cg_tls_ctx_t *t, const cg_tls_conf_t *conf, int idx, const char *path, cg_diag_t *d) {
  const cg_tls_cert_conf_t *cc = &conf->certs[idx];
  char at[300], err[256];
  snprintf(at, sizeof at, "%s.certificates[%d]", path, idx + 1);
  X509 *leaf;
  STACK_OF(X509) *chain;
  EVP_PKEY *key = NULL;
  int rc = -1, n_names = 0;
  char **names = NULL;
  if (cg_tls_read_cert_file(cc->cert, at, &leaf, &chain, d) < 0 || (key = cg_tls_read_key_file(cc->key, at, d)) == NULL ||
      cg_tls_check_pair(cc->cert, cc->key, at, leaf, chain, key, d) < 0 ||
      cg_tls_check_dates(cc->cert, at, leaf, chain, d) < 0)
    goto out;
  names = san_names(leaf, &n_names);
  if (n_names == 0) {
    cg_diag_error(d, at,
                  "the certificate in %s names no host in subjectAltName (browsers ignore the Common Name)",
                  cc->cert);
    goto out;
  }
  /* its group: the one with the same names, or a new one */
  group_t *g = NULL;
  for (int i = 0; i < t->n_groups && !g; i++)
    if (same_names(t->groups[i].names, t->groups[i].n_names, names, n_names)) g = &t->groups[i];
  int type = EVP_PKEY_get_base_id(key);
  if (g) {
    for (int k = 0; k < g->n_keys; k++)
      if (g->key_types[k] == type) {
        cg_diag_error(d, at, "another certificate of the same key type already covers the same names");
        goto out;
      }
    if (g->n_keys == 4) {
      cg_diag_error(d, at, "too many certificates for the same names");
      goto out;
    }
  } else {
    group_t *grown = realloc(t->groups, (size_t)(t->n_groups + 1) * sizeof *grown);
    if (!grown) goto oom;
    t->groups = grown;
    g = &t->groups[t->n_groups];
    memset(g, 0, sizeof *g);
    g->ssl = new_ssl_ctx(conf->min_version, conf->h2);
    if (!g->ssl || set_sid_ctx(g->ssl, conf->address, names, n_names) < 0) goto oom;
    t->n_groups++;
    g->names = names;
    g->n_names = n_names;
    names = NULL;
    n_names = 0;
  }
  if (SSL_CTX_use_cert_and_key(g->ssl, leaf, key, chain, 1) != 1) {
    cg_diag_error(d, at, "OpenSSL refused the certificate in %s: %s", cc->cert, cg_tls_ossl_error(err, sizeof err));
    goto out;
  }
  g->key_types[g->n_keys++] = type;
  rc = 0;
  goto out;
oom:
  cg_diag_error(d, at, "out of memory");
out:
  free_names(names, n_names);
  EVP_PKEY_free(key);
  X509_free(leaf);
  sk_X509_pop_free(chain, X509_free);
  return rc;
}

cg_tls_ctx_t *cg_tls_ctx_new(const cg_tls_conf_t *conf, const char *path, cg_diag_t *d) {
  int errors = d->errors;
  cg_tls_ctx_t *t = calloc(1, sizeof *t);
  if (!t) {
    cg_diag_error(d, path, "out of memory");
    return NULL;
  }
  if (conf->n_certs == 0 && !conf->cert_hook)
    cg_diag_error(d, path, "certificates: at least one { cert = ..., key = ... } is required");
  for (int i = 0; i < conf->n_certs; i++) load_one(t, conf, i, path, d);
  t->cert_hook = conf->cert_hook;
  if (t->n_groups == 0 && conf->cert_hook && d->errors == errors) {
    /* only the hook's certificates: a base without one, for the handshakes to start on */
    t->groups = calloc(1, sizeof *t->groups);
    if (t->groups && (t->groups[0].ssl = new_ssl_ctx(conf->min_version, conf->h2)) != NULL) t->n_groups = 1; /* freed with t */
    if (!t->n_groups || set_sid_ctx(t->groups[0].ssl, conf->address, NULL, 0) < 0)
      cg_diag_error(d, path, "out of memory");
  }
  if (d->errors > errors || t->n_groups == 0) {
    cg_tls_ctx_free(t);
    return NULL;
  }
  /* every group gets the SNI callback: a connection switched to one (or
   * resuming there) keeps the same choice */
  for (int g = 0; g < t->n_groups; g++) {
    SSL_CTX_set_tlsext_servername_callback(t->groups[g].ssl, on_sni);
    SSL_CTX_set_tlsext_servername_arg(t->groups[g].ssl, t);
    SSL_CTX_set_client_hello_cb(t->groups[g].ssl, on_client_hello, t);
  }
  return t;
}

void cg_tls_ctx_free(cg_tls_ctx_t *t) {
  if (!t) return;
  for (int g = 0; g < t->n_groups; g++) {
    SSL_CTX_free(t->groups[g].ssl);
    free_names(t->groups[g].names, t->groups[g].n_names);
  }
  free(t->groups);
  free(t);
}
