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

/* The context a new connection starts on (the listener's first certificate). */
SSL_CTX *cg_tls_ctx_base(cg_tls_ctx_t *ctx);

#endif
