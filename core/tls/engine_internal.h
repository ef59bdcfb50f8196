#ifndef CG_TLS_ENGINE_INTERNAL_H
#define CG_TLS_ENGINE_INTERNAL_H
/* A connection's TLS engine, as engine.c (its buffers, OpenSSL's handshake
 * and TLS 1.2 records) and stream.c (TLS 1.3 records once OpenSSL is gone)
 * share it. */
#include <openssl/ssl.h>

#include "tls/record.h"
#include "tls/tls_internal.h"

struct cg_tls_conn {
  SSL *ssl; /* NULL once the records are the engine's own (rec) */
  cg_tls_rec_t rec;
  /* the engine's own records: what has ended them */
  int failed;      /* a fatal alert went or came: nothing more is read or sent */
  int peer_closed; /* the client's close_notify: nothing more is read */
  int sent_close;  /* our close_notify: nothing more is sent */
  int ku_owed;     /* the client asked for our KeyUpdate: it goes before our next record */
  int ku_run;      /* KeyUpdates since the last application data */
  int warn_run;    /* warning alerts in a row */
  /* the application traffic secrets, caught as the handshake makes them */
  unsigned char client_secret[CG_TLS_MAX_SECRET], server_secret[CG_TLS_MAX_SECRET];
  size_t client_secret_len, server_secret_len;
  const char *version; /* once the handshake is done: "TLSv1.3", "TLSv1.2" */
  int resumed;         /* the handshake resumed a session */
  int cert_state;      /* CG_CERT_*: a certificate hook's answer for want_name */
  char *want_name;     /* the name asked of the hook (malloc'd), during the handshake only */
  SSL_SESSION *session; /* a client's: the newest session the server gave, until taken */
  char alpn[16];
  /* input: the bytes of the current read (not copied), after what is left of
   * earlier reads (a record they cut, copied to left + left_off) */
  const char *in;
  size_t in_len;
  char *left;
  size_t left_off, left_len, left_cap;
  char err[160];
};

enum { CG_CERT_NONE, CG_CERT_WAITING, CG_CERT_GIVEN, CG_CERT_FAILED };

/* An engine on ctx, accepting (server) or connecting. NULL when memory runs out. */
cg_tls_conn_t *cg_tls_engine_new(SSL_CTX *ctx, int server);

/* Room for n more bytes of output at the end of the thread's buffer, or NULL. */
unsigned char *cg_tls_out_reserve(size_t n);
/* The output's length now; cut back to a length taken before (and the bytes
 * past it wiped): what a failed seal reserved never leaves. */
size_t cg_tls_out_mark(void);
void cg_tls_out_rollback(size_t mark);

/* Appends n bytes of input to left. 0, or -1 when memory runs out. */
int cg_tls_left_add(cg_tls_conn_t *t, const char *p, size_t n);

/* stream.c: the engine's own TLS 1.3 records (see cg_tls_read, cg_tls_write,
 * cg_tls_close_notify in tls.h). */
ssize_t cg_tls_stream_read(cg_tls_conn_t *t, unsigned char *buf, size_t cap);
int cg_tls_stream_write(cg_tls_conn_t *t, const unsigned char *p, size_t n);
void cg_tls_stream_close_notify(cg_tls_conn_t *t);

#endif
