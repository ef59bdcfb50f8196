#ifndef CG_TLS_INTERNAL_H
#define CG_TLS_INTERNAL_H
/* Shared by the files of core/tls. */
#include <openssl/ssl.h>

#include "tls/tls.h"

/* The session-ticket callback every context uses (tickets.c): keys drawn at
 * random, a new one every hour, the previous still accepted; one set for the
 * whole process, so a ticket works on every worker and after a reload. */
int cg_tls_ticket_cb(SSL *s, unsigned char key_name[16], unsigned char iv[16], EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc);

/* The context a new connection starts on (the listener's first certificate). */
SSL_CTX *cg_tls_ctx_base(cg_tls_ctx_t *ctx);

#endif
