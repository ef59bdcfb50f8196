#ifndef CG_TLS_TLS_H
#define CG_TLS_TLS_H
/* TLS for the listeners and to upstreams, with OpenSSL 3: a listener's certificates loaded
 * and checked once (a cg_tls_ctx_t, shared by every worker), and each
 * connection's TLS engine (a cg_tls_conn_t) working on memory buffers, so
 * the connection reads and writes its socket as it does in plain HTTP and
 * never hands the socket to OpenSSL.
 *
 * The policy is fixed, not configured: TLS 1.2 (or 1.3 with min_version) and
 * up, AEAD ciphers with forward secrecy only, the server's order, no
 * compression, no renegotiation, ALPN h2 (unless a listener turns HTTP/2 off) and http/1.1; session tickets whose keys
 * rotate every hour and are shared by every context of the process, so a
 * session resumes on any worker and across reloads. */
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/diag.h"

typedef struct cg_tls_cert_conf {
  char *cert; /* PEM file: the certificate, then its chain */
  char *key;  /* PEM file: its private key */
} cg_tls_cert_conf_t;

typedef struct cg_tls_conf {
  const char *address; /* the listener's "host:port" (sessions resume only there) */
  cg_tls_cert_conf_t *certs;
  int n_certs;     /* may be 0 with a certificate hook */
  int min_version; /* 12 or 13 */
  int cert_hook;   /* names no certificate covers are asked of a hook (CG_TLS_WANT_CERT) */
  int h2;          /* ALPN offers h2 before http/1.1 */
} cg_tls_conf_t;

typedef struct cg_tls_ctx cg_tls_ctx_t;
typedef struct cg_tls_cert cg_tls_cert_t;

/* Loads conf's certificates and checks them: each key matches its
 * certificate, each chain is in order (every certificate issued by the
 * next), each certificate names its hosts in subjectAltName; one expiring
 * within 14 days is a warning, an expired one an error. Problems go to d
 * under path ("listen[2].tls"). NULL when d got an error. */
cg_tls_ctx_t *cg_tls_ctx_new(const cg_tls_conf_t *conf, const char *path, cg_diag_t *d);
void cg_tls_ctx_free(cg_tls_ctx_t *ctx);

typedef struct cg_tls_conn cg_tls_conn_t;

/* A connection's engine, accepting. NULL when memory runs out. */
cg_tls_conn_t *cg_tls_conn_new(cg_tls_ctx_t *ctx);

/* --- the client side: HTTPS to upstreams (client.c) --- */

typedef struct cg_tls_client_conf {
  char *server_name; /* SNI and the name verified; NULL: the target's IP address is verified */
  char *ca;          /* PEM file (or directory) of trusted CAs; NULL: the system's */
  int verify;        /* 0: any certificate is taken (refused unless asked for, with a warning) */
} cg_tls_client_conf_t;

typedef struct cg_tls_client cg_tls_client_t;
typedef struct cg_tls_session cg_tls_session_t; /* a session to resume (OpenSSL's SSL_SESSION) */

/* The client context of an upstream: TLS 1.2+, the listeners' ECDHE+AEAD
 * suites at security level 2, ALPN http/1.1, the CAs loaded (a file that does not load
 * is reported under path). NULL when d got an error. */
cg_tls_client_t *cg_tls_client_new(const cg_tls_client_conf_t *conf, const char *path, cg_diag_t *d);
void cg_tls_client_free(cg_tls_client_t *c);
/* An engine connecting to a target whose address is ip (verified when no
 * server_name is configured), resuming session when given. NULL when memory
 * runs out. */
cg_tls_conn_t *cg_tls_connect(cg_tls_client_t *c, const char *ip, cg_tls_session_t *session);
/* The newest session the server gave this connection (the caller owns it),
 * or NULL: kept per target, so the next connection resumes. */
cg_tls_session_t *cg_tls_take_session(cg_tls_conn_t *t);
void cg_tls_session_free(cg_tls_session_t *s);
/* 1 when the handshake resumed a session. */
int cg_tls_resumed(const cg_tls_conn_t *t);
void cg_tls_conn_free(cg_tls_conn_t *t);

/* Bytes read from the socket, for the calls that follow (not copied: they
 * must stay until cg_tls_input_done). */
void cg_tls_input(cg_tls_conn_t *t, const void *cipher, size_t n);
/* The read is done with: what the engine did not take (a record cut by the
 * read) is copied, to wait for the rest. 0, or -1 when memory runs out. */
int cg_tls_input_done(cg_tls_conn_t *t);
/* Bytes read but not yet decrypted and handed out: a connection with any
 * is not moved to another worker. */
int cg_tls_has_input(const cg_tls_conn_t *t);
/* Goes on with the handshake: 1 done, 0 more bytes needed, -1 failed (the
 * connection is closed after its output, an alert, is sent),
 * CG_TLS_WANT_CERT paused until cg_tls_give_cert answers for
 * cg_tls_wanted_name (a listener with a certificate hook, a name no file
 * covers). */
int cg_tls_handshake(cg_tls_conn_t *t);
#define CG_TLS_WANT_CERT 2
/* The server name a paused handshake waits on: lower-case, no trailing dot. */
const char *cg_tls_wanted_name(const cg_tls_conn_t *t);
/* The answer for the wanted name: c to serve (its references taken, c
 * need not outlive the call), NULL for the listener's first certificate;
 * failed: the handshake fails. Then cg_tls_handshake goes on. */
void cg_tls_give_cert(cg_tls_conn_t *t, const cg_tls_cert_t *c, int failed);

/* A certificate from a hook: the leaf, its chain and key as PEM text,
 * checked (key match, chain order, dates, and that it names name). NULL
 * with why in err. */
cg_tls_cert_t *cg_tls_cert_from_pem(const char *cert, size_t cert_len, const char *key, size_t key_len,
                                    const char *name, char *err, size_t errlen);
void cg_tls_cert_free(cg_tls_cert_t *c);
/* About the bytes it holds, for the cache's accounting. */
size_t cg_tls_cert_size(const cg_tls_cert_t *c);
/* Seconds until the first of its certificates expires (0: expired). */
int64_t cg_tls_cert_seconds_left(const cg_tls_cert_t *c);
/* What cg_tls_read's buffer must hold: a record's plaintext with room for
 * its padding. */
#define CG_TLS_READ_CAP (16384 + 256)
/* Decrypted bytes into buf (CG_TLS_READ_CAP): how many, 0 when more input is needed, -1 when
 * the peer closed (close_notify), -2 when the stream is broken (a bad
 * record, an alert: cg_tls_error says which). */
ssize_t cg_tls_read(cg_tls_conn_t *t, void *buf, size_t cap);
/* Encrypts n bytes (one record per 16 KB). 0 or -1. */
int cg_tls_write(cg_tls_conn_t *t, const void *plain, size_t n);
/* A close_notify alert, queued as output. */
void cg_tls_close_notify(cg_tls_conn_t *t);
/* The connection idles: what it can make again on its next record is freed. */
void cg_tls_idle(cg_tls_conn_t *t);
/* The ciphertext waiting to be sent: a pointer to it and its length. The
 * buffer is the thread's, shared by its connections: after every call that
 * may write (handshake, read, write, close_notify) the caller sends or
 * copies it and clears it before touching another connection. */
size_t cg_tls_output(cg_tls_conn_t *t, const char **out);
/* Drops what cg_tls_output gave, all of it (it was sent, or copied). */
void cg_tls_output_clear(cg_tls_conn_t *t);
/* Frees the thread's output buffer (a worker thread that ends). */
void cg_tls_thread_free(void);

/* After the handshake: "TLSv1.3", "TLSv1.2". */
const char *cg_tls_version(const cg_tls_conn_t *t);
/* The protocol ALPN agreed on ("http/1.1"), or "" when the client offered none. */
const char *cg_tls_alpn(const cg_tls_conn_t *t);
/* Why the handshake failed: OpenSSL's reason, for the log. */
const char *cg_tls_error(const cg_tls_conn_t *t);

#endif
