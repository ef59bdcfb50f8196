#ifndef CG_SERVER_H2_H
#define CG_SERVER_H2_H
/* HTTP/2 on a client connection (h2.c: the session, its frames and limits;
 * h2_stream.c: each stream's exchange). nghttp2 does the framing, HPACK and
 * flow control; a connection whose client said h2 (ALPN, or the preface with
 * prior knowledge on a plain listener that allows it) hands its bytes here
 * instead of to llhttp, and each stream becomes an exchange like an
 * HTTP/1.1 request: routing, CORS, plugins, local answers and the proxy see
 * no difference. Everything belongs to the connection's worker thread. */
#include <nghttp2/nghttp2.h>

#include "server/internal.h"

/* SETTINGS_MAX_CONCURRENT_STREAMS the gateway announces. */
enum { CG_H2_MAX_STREAMS = 100 };

typedef struct cg_h2 cg_h2_t;

typedef struct cg_h2_stream {
  cg_exchange_t x;
  cg_h2_t *h2;
  int32_t id;
  cg_list_t link; /* h2->streams */
  /* the request's head, as HPACK decodes it */
  int head_done;      /* its HEADERS ended: dispatched (or refused) */
  int refuse;         /* a status to refuse it with at its head's end (0: none) */
  const char *refuse_why;
  uint64_t decoded;   /* bytes of the header list decoded, kept or not */
  int have_method, have_path, have_scheme, have_authority;
  uint32_t auth_off, auth_len; /* :authority in the head's store */
  int64_t content_length;      /* -1: none given */
  cg_buf_t cookie;             /* cookie fields, joined with "; " (RFC 9113 8.2.3) */
  /* its body on the way in: held until the upstream takes it, within the
   * stream's window (unconsumed bytes are not acknowledged to the client) */
  cg_buf_t in;
  size_t unconsumed; /* given to the upstream while it pushed back: acknowledged at body_drained */
  int in_end;        /* END_STREAM came */
  uint64_t body_at;  /* loop time of its head or last DATA: timeouts.body counts from it */
  int bodyless;      /* END_STREAM came with the head */
  int dispatch_at_end; /* "content-length: 0" before END_STREAM: dispatched when it comes */
  /* its response on the way out: the data source reads from here */
  cg_buf_t out;
  size_t out_off;
  int out_eof;     /* the body's end is in out */
  int submitted;   /* the response's HEADERS are queued */
  int has_data;    /* a data source was given with them */
  int blocked;     /* send_blocked said 1 to the proxy: drained is owed */
  int closed;      /* nghttp2 closed the stream */
} cg_h2_stream_t;

struct cg_h2 {
  nghttp2_session *ng;
  cg_conn_t *c;
  cg_list_t streams; /* every open stream */
  int n_streams;
  cg_list_t flush_link; /* in w->h2_flush: output is owed */
  int draining;         /* 1: the shutdown notice went, 2: the last GOAWAY went */
  int closing;          /* the session ends: the connection closes once its last frames are out */
  uint32_t empty_frames; /* DATA frames without payload or end (CVE-2019-9518's flood) */
  uint32_t resets;       /* streams the client may still reset unanswered (h2.c's bucket) */
  uint64_t resets_at;    /* loop time the bucket was last filled */
  uint64_t blocked_at;   /* loop time since a response is held by the client's window (0: none) */
  void *big;             /* nghttp2's frame buffer, in pages of its own (h2.c) */
  size_t big_len;
  int creating;          /* the session is being made: its frame buffer is allocated now */
  uint64_t idle_at;      /* loop time since no stream is open */
  size_t out_bytes;      /* response bytes its streams hold for the client */
};

/* h2.c */
/* Makes c an HTTP/2 connection: the session, its SETTINGS. 0, or -1. */
int cg_h2_start(cg_conn_t *c);
/* Bytes the client sent (decrypted, for TLS). */
void cg_h2_input(cg_conn_t *c, const char *data, size_t n);
/* The connection's output is owed: sent from the worker's idle phase. */
void cg_h2_schedule(cg_h2_t *h2);
/* Sends what the session has to send now. */
void cg_h2_flush(cg_h2_t *h2);
/* The socket took what was queued. */
void cg_h2_drained(cg_conn_t *c);
void cg_h2_arm_timer(cg_conn_t *c);
void cg_h2_on_timer(cg_conn_t *c);
/* An idle connection gives back the pages of nghttp2's frame buffer. */
void cg_h2_trim(cg_conn_t *c);
/* Graceful shutdown: GOAWAY, the streams under way are served, then the close. */
void cg_h2_drain(cg_conn_t *c);
/* The connection closes: its streams' exchanges are let go (the proxy, plugins). */
void cg_h2_close(cg_conn_t *c);
/* Frees the session and streams (the connection's handles are closed). */
void cg_h2_free(cg_conn_t *c);
/* The worker's idle phase: sends what the scheduled connections owe. */
void cg_h2_on_idle(uv_idle_t *idle);

/* h2_stream.c */
extern const cg_exchange_ops_t cg_h2_ops;
cg_h2_stream_t *cg_h2_stream_new(cg_h2_t *h2, int32_t id);
void cg_h2_stream_free(cg_h2_stream_t *st);
/* A decoded field of the request's head. 0, or an nghttp2 error for the stream. */
int cg_h2_stream_header(cg_h2_stream_t *st, const uint8_t *name, size_t name_len, const uint8_t *value,
                        size_t value_len);
/* The head ended (end_stream: the request has no body). */
void cg_h2_stream_head(cg_h2_stream_t *st, int end_stream);
void cg_h2_stream_data(cg_h2_stream_t *st, const uint8_t *data, size_t len);
void cg_h2_stream_end(cg_h2_stream_t *st);
/* The response's last DATA went out before the request's end. */
void cg_h2_stream_sent(cg_h2_stream_t *st);
/* The stream closed (reset, or both ends done): its exchange is let go. */
void cg_h2_stream_closed(cg_h2_stream_t *st);
/* The data source of a response body. */
ssize_t cg_h2_stream_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                          nghttp2_data_source *source, void *arg);

#endif
