/* A certificate, its chain and its key: read (from the files a listener
 * names, or from the PEM text a certificate hook returns) and checked the
 * way a browser will judge them: the key belongs to the certificate, each
 * certificate is issued by the next, every one is within its dates, and a
 * hook's certificate names the host it was asked for. */
#include <errno.h>
#include <pthread.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tls/tls_internal.h"

enum { EXPIRY_WARN_DAYS = 14 };

struct cg_tls_cert {
  X509 *leaf;
  STACK_OF(X509) *chain;
  EVP_PKEY *key;
  time_t not_after; /* the soonest end of the leaf's and the chain's validity */
  unsigned char sid_ctx[32]; /* sessions made with it resume only with it, for its name */
};

const char *cg_tls_ossl_error(char *buf, size_t n) {
  unsigned long e = ERR_get_error();
  if (!e) snprintf(buf, n, "unknown error");
  else ERR_error_string_n(e, buf, n);
  ERR_clear_error();
  return buf;
}

/* The passphrase callback of a key read: there is none to give. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return -1;
}

/* PEM certificates from bio: the first into *leaf, the rest into *chain.
 * label names their source in messages. 0, or -1 with the problem in d. */
static int read_certs(BIO *bio, const char *label, const char *at, X509 **leaf, STACK_OF(X509) **chain,
                      cg_diag_t *d) {
  *leaf = NULL;
  *chain = sk_X509_new_null();
  if (!*chain) {
    cg_diag_error(d, at, "out of memory");
    return -1;
  }
  ERR_clear_error();
  *leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
  X509 *x;
  while (*leaf && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) sk_X509_push(*chain, x);
  /* the end of the text reads as "no start line"; anything else is a block
   * that is not a certificate, which would leave the chain short */
  unsigned long e = ERR_peek_last_error();
  int bad = e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
  ERR_clear_error();
  if (!*leaf) {
    cg_diag_error(d, at, "%s holds no PEM certificate", label);
    return -1;
  }
  if (bad) {
    cg_diag_error(d, at, "certificate %d in %s cannot be read (a damaged PEM block)", sk_X509_num(*chain) + 2,
                  label);
    return -1;
  }
  return 0;
}

int cg_tls_read_cert_file(const char *file, const char *at, X509 **leaf, STACK_OF(X509) **chain, cg_diag_t *d) {
  char err[256];
  BIO *bio = BIO_new_file(file, "r");
  if (!bio) {
    *leaf = NULL;
    *chain = NULL;
    cg_diag_error(d, at, "cannot read the certificate file %s: %s", file, cg_tls_ossl_error(err, sizeof err));
    return -1;
  }
  int rc = read_certs(bio, file, at, leaf, chain, d);
  BIO_free(bio);
  return rc;
}

/* A private key from PEM text. An encrypted key is refused rather than
 * asked a passphrase for on a terminal. */
/* The key in PEM text, decoded as a key of type (the certificate's key's,
 * "EC", "RSA"...): OpenSSL 3 then tries the decoders of that type only, a
 * quarter of the work of trying every one (1.2 million instructions against
 * 4.5 for a P-256 key), which a certificate hook pays per answer. NULL when
 * it is not one. */
static EVP_PKEY *decode_as(const char *text, size_t n, const char *type) {
  EVP_PKEY *key = NULL;
  OSSL_DECODER_CTX *dc = OSSL_DECODER_CTX_new_for_pkey(&key, "PEM", NULL, type, EVP_PKEY_KEYPAIR, NULL, NULL);
  const unsigned char *p = (const unsigned char *)text;
  size_t left = n;
  if (dc && OSSL_DECODER_CTX_get_num_decoders(dc) > 0 && OSSL_DECODER_from_data(dc, &p, &left) != 1) {
    EVP_PKEY_free(key);
    key = NULL;
  }
  OSSL_DECODER_CTX_free(dc);
  ERR_clear_error();
  return key;
}

/* type: the key type expected (the certificate's), or NULL. */
static EVP_PKEY *read_key(const char *text, size_t n, const char *type, const char *label, const char *at,
                          cg_diag_t *d) {
  char err[256];
  if (memmem(text, n, "ENCRYPTED", 9)) {
    cg_diag_error(d, at, "the key in %s is encrypted: corsgate reads keys without a passphrase (keep the file "
                         "readable by its user only)", label);
    return NULL;
  }
  EVP_PKEY *key = type ? decode_as(text, n, type) : NULL;
  if (key) return key;
  /* any type, and OpenSSL's reason when it is no key */
  BIO *bio = BIO_new_mem_buf(text, (int)n);
  ERR_clear_error();
  key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
  BIO_free(bio);
  if (!key) cg_diag_error(d, at, "cannot read a private key from %s: %s", label, cg_tls_ossl_error(err, sizeof err));
  return key;
}

EVP_PKEY *cg_tls_read_key_file(const char *file, const char *at, cg_diag_t *d) {
  char text[65536];
  FILE *f = fopen(file, "r");
  if (!f) {
    cg_diag_error(d, at, "cannot read a private key from %s: %s", file, strerror(errno));
    return NULL;
  }
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = 0;
  EVP_PKEY *key = read_key(text, n, NULL, file, at, d);
  OPENSSL_cleanse(text, n);
  return key;
}

int cg_tls_check_pair(const char *cert_label, const char *key_label, const char *at, X509 *leaf,
                      STACK_OF(X509) *chain, EVP_PKEY *key, cg_diag_t *d) {
  if (X509_check_private_key(leaf, key) != 1) {
    ERR_clear_error();
    int later = 0; /* the key's certificate further down: the chain is out of order */
    for (int i = 0; i < sk_X509_num(chain) && !later; i++)
      if (X509_check_private_key(sk_X509_value(chain, i), key) == 1) later = i + 2;
    ERR_clear_error();
    if (later)
      cg_diag_error(d, at,
                    "the chain in %s is out of order: the key in %s belongs to certificate %d; the file holds "
                    "the certificate first, then its intermediates",
                    cert_label, key_label, later);
    else
      cg_diag_error(d, at, "the key in %s does not belong to the certificate in %s", key_label, cert_label);
    return -1;
  }
  for (int i = 0; i < sk_X509_num(chain); i++) {
    X509 *child = i == 0 ? leaf : sk_X509_value(chain, i - 1), *parent = sk_X509_value(chain, i);
    if (X509_check_issued(parent, child) != X509_V_OK) {
      cg_diag_error(d, at,
                    "the chain in %s is out of order: certificate %d is not issued by the next one (the file "
                    "holds the certificate, then its intermediates, each followed by its issuer)",
                    cert_label, i + 1);
      return -1;
    }
  }
  return 0;
}

int cg_tls_check_dates(const char *label, const char *at, X509 *leaf, STACK_OF(X509) *chain, cg_diag_t *d) {
  time_t now = time(NULL), soon = now + EXPIRY_WARN_DAYS * 86400;
  for (int i = -1; i < sk_X509_num(chain); i++) {
    X509 *x = i < 0 ? leaf : sk_X509_value(chain, i);
    char which[64];
    if (i < 0) snprintf(which, sizeof which, "the certificate");
    else snprintf(which, sizeof which, "certificate %d (an intermediate)", i + 2);
    if (X509_cmp_time(X509_get0_notAfter(x), &now) < 0) {
      cg_diag_error(d, at, "%s in %s has expired", which, label);
      return -1;
    }
    if (X509_cmp_time(X509_get0_notAfter(x), &soon) < 0)
      cg_diag_warn(d, at, "%s in %s expires within %d days", which, label, EXPIRY_WARN_DAYS);
    if (X509_cmp_time(X509_get0_notBefore(x), &now) > 0)
      cg_diag_warn(d, at, "%s in %s is not valid yet", which, label);
  }
  return 0;
}

/* --- a hook's certificate -------------------------------------------------------- */

/* What a listener's context will refuse when the certificate is served
 * (security level 2: RSA below 2048 bits, SHA-1 signatures, ...), found
 * now, with OpenSSL's reason, rather than at every handshake. */
static SSL_CTX *takes_ctx; /* a context at level 2 to try certificates on: made once, for the process */
static pthread_once_t takes_once = PTHREAD_ONCE_INIT;

static void takes_init(void) {
  if ((takes_ctx = SSL_CTX_new(TLS_server_method()))) SSL_CTX_set_security_level(takes_ctx, 2);
}

static int openssl_takes(const cg_tls_cert_t *c, cg_diag_t *d) {
  char err[256];
  /* a connection of its own, not a context: SSL_CTX_new was 94% of the work */
  pthread_once(&takes_once, takes_init);
  SSL *s = takes_ctx ? SSL_new(takes_ctx) : NULL;
  int ok = s && SSL_use_cert_and_key(s, c->leaf, c->key, c->chain, 1) == 1;
  if (!ok) cg_diag_error(d, "", "OpenSSL refuses it at security level 2: %s", cg_tls_ossl_error(err, sizeof err));
  SSL_free(s);
  return ok ? 0 : -1;
}

/* The certificate's end of validity, and the session context of the
 * sessions it serves: the name and the certificate, so a session resumes
 * only where the same certificate is served for the same name. */
static int fill_ids(cg_tls_cert_t *c, const char *name, cg_diag_t *d) {
  c->not_after = 0;
  for (int i = -1; i < sk_X509_num(c->chain); i++) {
    X509 *x = i < 0 ? c->leaf : sk_X509_value(c->chain, i);
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1) continue;
    time_t t = timegm(&tm);
    if (c->not_after == 0 || t < c->not_after) c->not_after = t;
  }
  unsigned char fp[EVP_MAX_MD_SIZE];
  unsigned int fpl = 0;
  EVP_MD_CTX *m = EVP_MD_CTX_new();
  int ok = m && X509_digest(c->leaf, EVP_sha256(), fp, &fpl) && EVP_DigestInit_ex(m, EVP_sha256(), NULL) &&
           EVP_DigestUpdate(m, name, strlen(name) + 1) && EVP_DigestUpdate(m, fp, fpl) &&
           EVP_DigestFinal_ex(m, c->sid_ctx, NULL);
  EVP_MD_CTX_free(m);
  if (!ok) cg_diag_error(d, "", "out of memory");
  return ok ? 0 : -1;
}

cg_tls_cert_t *cg_tls_cert_from_pem(const char *cert, size_t cert_len, const char *key, size_t key_len,
                                    const char *name, char *err, size_t errlen) {
  cg_diag_t d;
  cg_diag_init(&d);
  cg_tls_cert_t *c = calloc(1, sizeof *c);
  BIO *bio = c && cert_len <= INT32_MAX ? BIO_new_mem_buf(cert, (int)cert_len) : NULL;
  int ok = bio && key_len <= INT32_MAX;
  if (!ok) cg_diag_error(&d, "", "out of memory");
  if (ok) ok = read_certs(bio, "cert", "", &c->leaf, &c->chain, &d) == 0;
  if (ok) {
    EVP_PKEY *pub = X509_get0_pubkey(c->leaf);
    ok = (c->key = read_key(key, key_len, pub ? EVP_PKEY_get0_type_name(pub) : NULL, "key", "", &d)) != NULL;
  }
  if (ok) ok = cg_tls_check_pair("cert", "key", "", c->leaf, c->chain, c->key, &d) == 0;
  if (ok) ok = cg_tls_check_dates("cert", "", c->leaf, c->chain, &d) == 0;
  /* as browsers match: subjectAltName only, whole-label wildcards */
  if (ok && X509_check_host(c->leaf, name, strlen(name),
                            X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) != 1) {
    cg_diag_error(&d, "", "the certificate does not name %s in subjectAltName", name);
    ok = 0;
  }
  if (ok) ok = openssl_takes(c, &d) == 0;
  if (ok) ok = fill_ids(c, name, &d) == 0;
  BIO_free(bio);
  ERR_clear_error();
  if (!ok) {
    /* the first error (warnings, like an expiry within 14 days, do not stop it) */
    const char *why = "out of memory";
    for (int i = 0; i < d.count; i++)
      if (d.items[i].level == CG_DIAG_ERROR) {
        why = d.items[i].text;
        break;
      }
    snprintf(err, errlen, "%s", why);
    cg_tls_cert_free(c);
    c = NULL;
  }
  cg_diag_free(&d);
  return c;
}

void cg_tls_cert_free(cg_tls_cert_t *c) {
  if (!c) return;
  X509_free(c->leaf);
  sk_X509_pop_free(c->chain, X509_free);
  EVP_PKEY_free(c->key);
  free(c);
}

/* An estimate: parsed, a certificate holds about three times its DER size. */
static size_t der_size(X509 *x) {
  int n = i2d_X509(x, NULL);
  return n > 0 ? 3 * (size_t)n : 0;
}

size_t cg_tls_cert_size(const cg_tls_cert_t *c) {
  if (!c) return 0;
  size_t n = sizeof *c + der_size(c->leaf) + 1024; /* the key */
  for (int i = 0; i < sk_X509_num(c->chain); i++) n += der_size(sk_X509_value(c->chain, i));
  return n;
}

int64_t cg_tls_cert_seconds_left(const cg_tls_cert_t *c) {
  time_t now = time(NULL);
  return c->not_after > now ? (int64_t)(c->not_after - now) : 0;
}

int cg_tls_cert_use(SSL *s, const cg_tls_cert_t *c) {
  /* only c: what the listener's context holds in other key types' slots
   * (its first certificate) would otherwise be preferred by clients */
  SSL_certs_clear(s);
  if (SSL_use_cert_and_key(s, c->leaf, c->key, c->chain, 1) != 1) return -1;
  return SSL_set_session_id_context(s, c->sid_ctx, sizeof c->sid_ctx) == 1 ? 0 : -1;
}
