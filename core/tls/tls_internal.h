#ifndef CG_TLS_INTERNAL_H
#define CG_TLS_INTERNAL_H
/* Shared by the files of core/tls. */
#include <openssl/ssl.h>
#include <stdint.h>

#include "tls/tls.h"

/* TLS 1.2: ECDHE key exchange (forward secrecy) with AEAD ciphers only, on
 * listeners and to upstreams. TLS 1.3's suites are all both. */
#define CG_TLS_CIPHERS_12                                                                          \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"      \
  "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* The session-ticket callback every context uses (tickets.c): keys drawn at
 * random, a new one every hour, the previous still accepted; one set for the
 * whole process, so a ticket works on every worker and after a reload. */
int cg_tls_ticket_cb(SSL *s, unsigned char key_name[16], unsigned char iv[16], EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc);

/* The key log callback every context sets (engine.c): it catches a TLS 1.3
 * connection's application traffic secrets, so that its records can go on
 * without OpenSSL once the handshake is done. */
void cg_tls_keylog_cb(const SSL *ssl, const char *line);

/* An engine past its handshake, on its own records from the start (for the
 * record fuzzer: no handshake, the secrets given). */
cg_tls_conn_t *cg_tls_conn_new_records(uint16_t suite, const unsigned char *client_secret,
                                       const unsigned char *server_secret, size_t secret_len);

/* certkey.c: OpenSSL's last error as text (its queue cleared); a PEM file's
 * certificate and chain, a PEM key file, and their checks. Problems go to d
 * under at, naming the files (labels); 0 / non-NULL when all is well. */
const char *cg_tls_ossl_error(char *buf, size_t n);
int cg_tls_read_cert_file(const char *file, const char *at, X509 **leaf, STACK_OF(X509) **chain, cg_diag_t *d);
EVP_PKEY *cg_tls_read_key_file(const char *file, const char *at, cg_diag_t *d);
int cg_tls_check_pair(const char *cert_label, const char *key_label, const char *at, X509 *leaf,
                      STACK_OF(X509) *chain, EVP_PKEY *key, cg_diag_t *d);
int cg_tls_check_dates(const char *label, const char *at, X509 *leaf, STACK_OF(X509) *chain, cg_diag_t *d);
/* Serves c on s (instead of the context's certificates). 0 or -1. */
int cg_tls_cert_use(SSL *s, const cg_tls_cert_t *c);

/* The context a new connection starts on (the listener's first certificate). */
SSL_CTX *cg_tls_ctx_base(cg_tls_ctx_t *ctx);

#endif
