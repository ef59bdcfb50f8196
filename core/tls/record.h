#ifndef CG_TLS_RECORD_H
#define CG_TLS_RECORD_H
/* TLS 1.3's record protection (RFC 8446 section 5), for a connection whose
 * handshake OpenSSL has done: from the two application traffic secrets on,
 * records are sealed and opened here, and the handshake's SSL object (about
 * 14 KB a connection) is freed. What a connection then keeps is its keys,
 * nonces and sequence numbers; the AEAD contexts are made on use and freed
 * while the connection idles. */
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CG_TLS_MAX_SECRET 48
/* A record's plaintext is at most 2^14 bytes; its inner plaintext (with the
 * content type and padding) at most 2^14 + 256 - 16. */
#define CG_TLS_MAX_PLAIN 16384
#define CG_TLS_OPEN_CAP (CG_TLS_MAX_PLAIN + 256)

typedef struct evp_cipher_ctx_st cg_evp_ctx_t;

/* One direction's keys. */
typedef struct cg_tls_keys {
  cg_evp_ctx_t *ctx; /* NULL while idle */
  unsigned char secret[CG_TLS_MAX_SECRET], key[32], iv[12];
  uint64_t seq;
} cg_tls_keys_t;

typedef struct cg_tls_rec {
  int suite;           /* index into record.c's suites */
  cg_tls_keys_t rd;    /* the client's: what we open */
  cg_tls_keys_t wr;    /* ours: what we seal */
  int empty_run;       /* empty records in a row (a flood of them is refused) */
} cg_tls_rec_t;

/* Starts from the cipher suite's id (0x1301 TLS_AES_128_GCM_SHA256, 0x1302
 * TLS_AES_256_GCM_SHA384, 0x1303 TLS_CHACHA20_POLY1305_SHA256), the client's
 * and the server's application traffic secrets, and the records the server
 * has already sent under its secret (session tickets). 0, or -1 for a suite
 * this does not do. */
int cg_tls_rec_start(cg_tls_rec_t *r, uint16_t suite_id, const unsigned char *client_secret,
                     const unsigned char *server_secret, size_t secret_len, uint64_t wr_seq);

/* The length of a secret of suite_id's hash, or 0 for a suite this does not do. */
size_t cg_tls_rec_secret_len(uint16_t suite_id);

/* Seals n bytes of content type `type` (23 application data, 21 alert, 22
 * handshake) into records of up to 2^14 bytes of plaintext each, written
 * where reserve(bytes) says (it returns room for that many, or NULL). 0 or -1. */
int cg_tls_rec_seal(cg_tls_rec_t *r, uint8_t type, const unsigned char *p, size_t n,
                    unsigned char *(*reserve)(size_t));

/* A record's header (5 bytes): 0 with *len the record's length, header
 * included, or the alert it calls for (10 unexpected_message: not
 * application_data outside, as every record after the handshake is; 22
 * record_overflow; 50 decode_error: too short for a tag). */
int cg_tls_rec_header(const unsigned char *hdr, size_t *len);
/* Opens one whole record into out (CG_TLS_OPEN_CAP bytes): the content's
 * length with *type its content type, or one of CG_TLS_OPEN_* (the
 * connection is over). */
enum { CG_TLS_OPEN_BAD_MAC = -1, CG_TLS_OPEN_OVERFLOW = -2, CG_TLS_OPEN_NO_TYPE = -3 };
ssize_t cg_tls_rec_open(cg_tls_rec_t *r, const unsigned char *rec, size_t len, unsigned char *out, uint8_t *type);

/* Checks what the server sent under its new key before the records became
 * ours (p, n: the session tickets OpenSSL wrote as the handshake ended):
 * each must open with the write key at the next sequence number as one
 * whole NewSessionTicket. Then the write sequence goes on after them. 0, or
 * -1 when anything differs (the caller keeps OpenSSL). */
int cg_tls_rec_take_tickets(cg_tls_rec_t *r, const unsigned char *p, size_t n);

/* A KeyUpdate: the direction's next secret, keys, and sequence 0. 0 or -1. */
int cg_tls_rec_update(cg_tls_rec_t *r, cg_tls_keys_t *k);

/* Frees the AEAD contexts (an idle connection); they are made again on use. */
void cg_tls_rec_idle(cg_tls_rec_t *r);
/* Frees and wipes everything. */
void cg_tls_rec_clear(cg_tls_rec_t *r);

#endif
