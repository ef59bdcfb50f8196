/* The HTTP/2 session of a client connection: nghttp2 reads the frames and
 * writes ours, each stream is an exchange (h2_stream.c), and this file
 * holds what belongs to the connection: its SETTINGS, the limits that keep
 * a hostile client bounded, output batching, timeouts and the graceful
 * shutdown.
 *
 * Output is never produced from inside an exchange's call: a call queues
 * frames in the session and schedules the connection (cg_h2_schedule); the
 * worker's idle phase sends what every scheduled connection owes, one write
 * each, so the frames of many streams leave in one system call and no
 * stream is closed (freed) under a caller's feet. Input is answered at
 * once, after the read's frames are all processed.
 *
 * Limits: nghttp2 refuses what RFC 9113 forbids (malformed frames and
 * fields, pseudo-headers, connection-specific fields, a content-length the
 * DATA contradicts) and bounds SETTINGS, PING and RST_STREAM floods, and
 * CONTINUATION chains; this file adds the empty-DATA flood, the decoded
 * header list (HPACK bomb), a client that stops reading (zero window), and
 * the idle and body timeouts. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "server/h2.h"
#include "util/log.h"

/* The connection's receive window: bodies wait within it until the upstream
 * takes them, so it bounds what one connection makes the gateway hold. */
#define CONN_WINDOW (1 << 20)
/* DATA frames with no payload and no END_STREAM a connection may send. */
#define EMPTY_FRAMES_MAX 100
/* A header list decoded past this many times max_head_bytes is a bomb: the
 * connection goes (one just over max_head_bytes gets 431). */
#define BOMB_FACTOR 4
/* Streams the client may reset before their answer (Rapid Reset,
 * CVE-2023-44487): a bucket of RESETS_BURST, refilled RESETS_PER_S a second.
 * Each such stream cost a dispatch, maybe an upstream request. (nghttp2's
 * own bound, set higher, would say INTERNAL_ERROR.) */
#define RESETS_BURST 200
#define RESETS_PER_S 33
/* The shutdown notice goes with a PING: once its ACK is back, every stream
 * the client opened before it read the notice has been read here, and the
 * last GOAWAY can name them all. A client that does not answer gets it after
 * DRAIN_NOTICE_MS. */
static const uint8_t DRAIN_PING[8] = {'c', 'g', '-', 'd', 'r', 'a', 'i', 'n'};
#define DRAIN_NOTICE_MS 5000

static nghttp2_session_callbacks *callbacks;
static int rapid_reset_ok(cg_h2_t *h2);
static nghttp2_option *options;
static uv_once_t init_once = UV_ONCE_INIT;

static cg_h2_stream_t *stream_of(nghttp2_session *ng, int32_t id) {
  return nghttp2_session_get_stream_user_data(ng, id);
}

/* Ends the session: GOAWAY with code, and the connection closes once it is out. */
static void terminate(cg_h2_t *h2, uint32_t code, const char *why) {
  if (h2->closing) return;
  cg_log_info("%s: HTTP/2: closing (%s): %s", h2->c->x.peer, nghttp2_http2_strerror(code), why);
  if (code == NGHTTP2_ENHANCE_YOUR_CALM) h2->c->w->metrics.h2_goaway_calm++;
  nghttp2_session_terminate_session(h2->ng, code);
  h2->closing = 1;
}

/* --- nghttp2 callbacks ----------------------------------------------------- */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *arg) {
  cg_h2_t *h2 = arg;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  cg_h2_stream_t *st = cg_h2_stream_new(h2, f->hd.stream_id);
  if (!st) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is reset */
  nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, st);
  return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *arg) {
  cg_h2_t *h2 = arg;
  (void)flags;
  cg_h2_stream_t *st = stream_of(ng, f->hd.stream_id);
  if (!st) return 0;
  /* the head and the trailers together, as SETTINGS_MAX_HEADER_LIST_SIZE counts */
  st->decoded += namelen + valuelen + 32;
  if (st->decoded > (uint64_t)h2->c->w->cfg->limits.max_head_bytes * BOMB_FACTOR) {
    terminate(h2, NGHTTP2_ENHANCE_YOUR_CALM, "header list decoded past its bound (HPACK bomb)");
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  if (st->head_done) return 0; /* trailers are not carried */
  return cg_h2_stream_header(st, name, namelen, value, valuelen);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *arg) {
  cg_h2_t *h2 = arg;
  int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  cg_h2_stream_t *st;
  switch (f->hd.type) {
  case NGHTTP2_HEADERS:
    if (!(st = stream_of(ng, f->hd.stream_id))) return 0;
    if (!st->head_done) cg_h2_stream_head(st, end);
    else if (end) cg_h2_stream_end(st); /* trailers end the body */
    return 0;
  case NGHTTP2_DATA:
    /* nothing but padding counts as empty */
    if (f->hd.length <= f->data.padlen && !end && ++h2->empty_frames > EMPTY_FRAMES_MAX) {
      terminate(h2, NGHTTP2_ENHANCE_YOUR_CALM, "a flood of empty DATA frames");
      return 0;
    }
    if (end && (st = stream_of(ng, f->hd.stream_id))) cg_h2_stream_end(st);
    return 0;
  case NGHTTP2_RST_STREAM:
    /* the client gave up on a stream before its answer, whatever code it says */
    if ((st = stream_of(ng, f->hd.stream_id)) && !st->x.req.resp_done && !rapid_reset_ok(h2))
      terminate(h2, NGHTTP2_ENHANCE_YOUR_CALM, "streams reset faster than they are answered (Rapid Reset)");
    return 0;
  case NGHTTP2_PING:
    if ((f->hd.flags & NGHTTP2_FLAG_ACK) && h2->draining == 1 && memcmp(f->ping.opaque_data, DRAIN_PING, 8) == 0) {
      h2->draining = 2; /* the last GOAWAY: streams opened after it are not served */
      nghttp2_submit_goaway(ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(ng), NGHTTP2_NO_ERROR, NULL,
                            0);
      cg_conn_arm_timer(h2->c);
    }
    return 0;
  default:
    return 0;
  }
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *arg) {
  cg_h2_t *h2 = arg;
  (void)flags;
  cg_h2_stream_t *st = stream_of(ng, id);
  if (st) st->body_at = uv_now(&h2->c->w->loop);
  if (!st) {
    nghttp2_session_consume(ng, id, len);
    return 0;
  }
  cg_h2_stream_data(st, data, len);
  return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *arg) {
  (void)arg;
  if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
  if (f->hd.type != NGHTTP2_DATA && f->hd.type != NGHTTP2_HEADERS) return 0;
  cg_h2_stream_t *st = stream_of(ng, f->hd.stream_id);
  if (st) cg_h2_stream_sent(st);
  return 0;
}

/* One more stream the client gave up on: whether the bucket still has room. */
static int rapid_reset_ok(cg_h2_t *h2) {
  uint64_t now = uv_now(&h2->c->w->loop);
  if (!h2->resets_at) {
    h2->resets_at = now;
    h2->resets = RESETS_BURST;
  }
  uint64_t refill = (now - h2->resets_at) * RESETS_PER_S / 1000;
  if (refill) {
    h2->resets = h2->resets + refill > RESETS_BURST ? RESETS_BURST : h2->resets + (uint32_t)refill;
    h2->resets_at = now;
  }
  if (h2->resets == 0) return 0;
  h2->resets--;
  return 1;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *arg) {
  cg_h2_t *h2 = arg;
  (void)code;
  cg_h2_stream_t *st = stream_of(ng, id);
  if (!st) return 0;
  nghttp2_session_set_stream_user_data(ng, id, NULL);
  cg_h2_stream_closed(st);
  cg_h2_stream_free(st);
  if (h2->draining == 2 && h2->n_streams == 0 && !nghttp2_session_want_write(ng)) h2->closing = 1;
  return 0;
}

static int on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *f, int err, void *arg) {
  cg_h2_t *h2 = arg;
  (void)ng;
  cg_log_debug("%s: HTTP/2: invalid frame (type %u, stream %d): %s", h2->c->x.peer, f->hd.type, f->hd.stream_id,
               nghttp2_strerror(err));
  return 0;
}

static int on_invalid_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                             const uint8_t *value, size_t valuelen, uint8_t flags, void *arg) {
  cg_h2_t *h2 = arg;
  (void)ng, (void)value, (void)valuelen, (void)flags;
  cg_log_info("%s: HTTP/2: stream %d refused: malformed field \"%.*s\"", h2->c->x.peer, f->hd.stream_id,
              (int)(namelen > 64 ? 64 : namelen), (const char *)name);
  return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is reset: a malformed request (RFC 9113 8.1.1) */
}

static void init(void) {
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks, on_invalid_frame);
  nghttp2_session_callbacks_set_on_invalid_header_callback(callbacks, on_invalid_header);
  nghttp2_option_new(&options);
  /* the window opens as the upstream takes a body, not as it arrives */
  nghttp2_option_set_no_auto_window_update(options, 1);
  /* bounds that nghttp2 keeps (these are its defaults, said here so they stay) */
  nghttp2_option_set_max_outbound_ack(options, 1000);    /* SETTINGS and PING floods */
  nghttp2_option_set_max_settings(options, 32);          /* entries in one SETTINGS frame */
  nghttp2_option_set_max_continuations(options, 8);      /* CONTINUATION flood (CVE-2024-27316) */
  nghttp2_option_set_stream_reset_rate_limit(options, 4 * RESETS_BURST, 4 * RESETS_PER_S); /* a backstop */
  nghttp2_option_set_max_deflate_dynamic_table_size(options, 4096);
}

/* --- memory ---------------------------------------------------------------------
 * nghttp2 gives each session a frame buffer of 16 KB and a frame header, most
 * of what an idle connection holds. Its bytes matter only while the session
 * writes a frame: between writes they are dead. So blocks that large get
 * pages of their own, and an idle connection gives those back to the kernel
 * (cg_h2_trim: MADV_DONTNEED, the pages read as zero when touched again), as
 * it gives back its other buffers. */
#define BIG_BLOCK 16384

static void *ng_malloc(size_t size, void *arg) {
  (void)arg;
  return malloc(size);
}

/* The frame buffer: the one block of BIG_BLOCK or more nghttp2 makes while
 * the session is created (with realloc(NULL, ...)). Nothing else gets pages
 * of its own: a decoded field kept in the HPACK table may be as large, and
 * its bytes must live on. */
static void *frame_buffer(cg_h2_t *h2, size_t size) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), len = (size + page - 1) / page * page;
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  h2->big = p;
  h2->big_len = size;
  return p;
}

static size_t mapped(size_t size) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  return (size + page - 1) / page * page;
}

static void ng_free(void *ptr, void *arg) {
  cg_h2_t *h2 = arg;
  if (ptr && ptr == h2->big) {
    munmap(ptr, mapped(h2->big_len));
    h2->big = NULL;
    return;
  }
  free(ptr);
}

static void *ng_calloc(size_t n, size_t size, void *arg) {
  (void)arg;
  return calloc(n, size);
}

static void *ng_realloc(void *ptr, size_t size, void *arg) {
  cg_h2_t *h2 = arg;
  if (!ptr && h2->creating && !h2->big && size >= BIG_BLOCK) return frame_buffer(h2, size);
  if (ptr && ptr == h2->big) {
    void *n = malloc(size);
    if (!n) return NULL;
    memcpy(n, ptr, h2->big_len < size ? h2->big_len : size);
    ng_free(ptr, arg);
    return n;
  }
  return realloc(ptr, size);
}

void cg_h2_trim(cg_conn_t *c) {
  cg_h2_t *h2 = c->h2;
  if (nghttp2_session_want_write(h2->ng)) return; /* a frame may be half written */
  if (h2->big) madvise(h2->big, mapped(h2->big_len), MADV_DONTNEED);
}

/* --- the session ------------------------------------------------------------ */

int cg_h2_start(cg_conn_t *c) {
  uv_once(&init_once, init);
  if (!callbacks || !options) return -1;
  cg_h2_t *h2 = calloc(1, sizeof *h2);
  if (!h2) return -1;
  h2->c = c;
  cg_list_init(&h2->streams);
  cg_list_init(&h2->flush_link);
  nghttp2_mem mem = {h2, ng_malloc, ng_free, ng_calloc, ng_realloc};
  h2->creating = 1;
  int rc = nghttp2_session_server_new3(&h2->ng, callbacks, h2, options, &mem);
  h2->creating = 0;
  if (rc != 0) {
    free(h2);
    return -1;
  }
  const cg_limits_t *lim = &c->w->cfg->limits;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, CG_H2_MAX_STREAMS},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)lim->max_head_bytes},
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
  };
  if (nghttp2_submit_settings(h2->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0 ||
      nghttp2_session_set_local_window_size(h2->ng, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0) {
    nghttp2_session_del(h2->ng);
    free(h2);
    return -1;
  }
  c->h2 = h2;
  h2->idle_at = uv_now(&c->w->loop);
  c->w->metrics.h2_connections++;
  c->x.proto = "HTTP/2.0";
  c->state = CG_CONN_IDLE;
  cg_h2_flush(h2); /* the server's preface */
  return 0;
}

void cg_h2_input(cg_conn_t *c, const char *data, size_t n) {
  cg_h2_t *h2 = c->h2;
  if (h2->closing) return;
  c->trimmed = 0;
  ssize_t rv = nghttp2_session_mem_recv(h2->ng, (const uint8_t *)data, n);
  if (c->state == CG_CONN_CLOSING) return;
  if (rv < 0) {
    /* nghttp2 queued the GOAWAY a connection error calls for (a bad
     * preface, a broken frame, a CONTINUATION chain past its bound); a
     * flood it detected gets one saying so */
    cg_log_info("%s: HTTP/2: closing: %s", c->x.peer, nghttp2_strerror((int)rv));
    int calm = rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS;
    /* (a no-op when nghttp2 has queued its own) */
    nghttp2_session_terminate_session(h2->ng, calm ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
    if (calm) c->w->metrics.h2_goaway_calm++;
    h2->closing = 1;
  }
  cg_h2_flush(h2);
}

void cg_h2_schedule(cg_h2_t *h2) {
  cg_worker_t *w = h2->c->w;
  if (h2->c->state == CG_CONN_CLOSING || !cg_list_empty(&h2->flush_link)) return;
  cg_list_push(&w->h2_flush, &h2->flush_link);
  if (!uv_is_active((uv_handle_t *)&w->h2_idle)) uv_idle_start(&w->h2_idle, cg_h2_on_idle);
}

void cg_h2_on_idle(uv_idle_t *idle) {
  cg_worker_t *w = container_of(idle, cg_worker_t, h2_idle);
  /* a connection scheduled while these are sent waits for the next turn */
  cg_list_t batch;
  cg_list_init(&batch);
  while (!cg_list_empty(&w->h2_flush)) {
    cg_list_t *it = w->h2_flush.next;
    cg_list_remove(it);
    cg_list_push(&batch, it);
  }
  while (!cg_list_empty(&batch)) {
    cg_h2_t *h2 = container_of(batch.next, cg_h2_t, flush_link);
    cg_list_remove(&h2->flush_link);
    cg_list_init(&h2->flush_link);
    cg_h2_flush(h2);
  }
  if (cg_list_empty(&w->h2_flush)) uv_idle_stop(idle);
}

/* Streams the proxy was told to hold: their turn again once both their own
 * buffer and the socket drained. */
static void release_blocked(cg_h2_t *h2) {
  if (h2->c->send_blocked) return;
  for (cg_list_t *it = h2->streams.next; it != &h2->streams;) {
    cg_h2_stream_t *st = container_of(it, cg_h2_stream_t, link);
    it = it->next; /* the proxy may answer at once; nothing here is freed by it */
    if (st->blocked && !st->x.ops->send_blocked(&st->x)) {
      st->blocked = 0;
      cg_proxy_client_drained(&st->x);
    }
  }
}

void cg_h2_flush(cg_h2_t *h2) {
  cg_conn_t *c = h2->c;
  if (c->state == CG_CONN_CLOSING) return;
  if (!cg_list_empty(&h2->flush_link)) { /* sent now: not again at the idle turn */
    cg_list_remove(&h2->flush_link);
    cg_list_init(&h2->flush_link);
  }
  cg_conn_cork(c);
  while (!c->send_blocked) {
    const uint8_t *p;
    ssize_t n = nghttp2_session_mem_send(h2->ng, &p);
    if (n < 0) {
      cg_log_info("%s: HTTP/2: closing: %s", c->x.peer, nghttp2_strerror((int)n));
      h2->closing = 1;
      break;
    }
    if (n == 0) break;
    if (cg_conn_write(c, p, (size_t)n) < 0) return; /* closed */
  }
  cg_conn_uncork(c);
  if (c->state == CG_CONN_CLOSING) return;
  release_blocked(h2);
  if (c->state == CG_CONN_CLOSING) return;
  int over = !nghttp2_session_want_read(h2->ng) && !nghttp2_session_want_write(h2->ng);
  if (h2->draining == 2 && h2->n_streams == 0) over = 1;
  if (over || (h2->closing && !nghttp2_session_want_write(h2->ng))) {
    cg_conn_linger(c); /* the client reads our GOAWAY before the close */
    return;
  }
  cg_conn_arm_timer(c);
}

void cg_h2_drained(cg_conn_t *c) { cg_h2_schedule(c->h2); }

/* --- timeouts ------------------------------------------------------------- */

/* Whether some response waits on the client's window (it stopped reading). */
static int window_blocked(cg_h2_t *h2) {
  if (h2->c->send_blocked) return 1;
  int conn_closed = nghttp2_session_get_remote_window_size(h2->ng) <= 0;
  for (cg_list_t *it = h2->streams.next; it != &h2->streams; it = it->next) {
    cg_h2_stream_t *st = container_of(it, cg_h2_stream_t, link);
    if (st->out.len <= st->out_off) continue;
    if (conn_closed || nghttp2_session_get_stream_remote_window_size(h2->ng, st->id) <= 0) return 1;
  }
  return 0;
}

/* Whether st waits for its body from the client (its own clock: st->body_at,
 * the head's or the last DATA's time). */
static int body_owed(const cg_h2_stream_t *st) {
  return st->head_done && !st->in_end && !st->x.req.resp_done && !st->x.req.body_bp;
}

/* The earliest time a stream's body is due since (0: none is owed). */
static uint64_t body_since(cg_h2_t *h2) {
  uint64_t since = 0;
  for (cg_list_t *it = h2->streams.next; it != &h2->streams; it = it->next) {
    cg_h2_stream_t *st = container_of(it, cg_h2_stream_t, link);
    if (body_owed(st) && (!since || st->body_at < since)) since = st->body_at;
  }
  return since;
}

/* A GOAWAY (NO_ERROR) naming the last stream taken, sent now; closing: the
 * connection ends once it is out. */
static void goaway(cg_h2_t *h2, int closing) {
  nghttp2_submit_goaway(h2->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h2->ng), NGHTTP2_NO_ERROR,
                        NULL, 0);
  if (closing) h2->closing = 1;
  cg_h2_flush(h2);
}

/* The deadline is counted from when the condition began, not from now: a
 * client that keeps the connection busy with PINGs does not push it back. */
static void arm_from(cg_conn_t *c, uint64_t since, uint64_t ms) {
  uint64_t now = uv_now(&c->w->loop), due = since + ms;
  cg_conn_set_timeout(c, due > now ? due - now : 1);
}

void cg_h2_arm_timer(cg_conn_t *c) {
  cg_h2_t *h2 = c->h2;
  const cg_timeouts_t *to = &c->w->cfg->timeouts;
  uint64_t now = uv_now(&c->w->loop);
  if (h2->draining == 1) return; /* the notice's own timer runs */
  if (h2->n_streams == 0) {
    /* from when the last stream ended: the client's PINGs do not keep it */
    h2->blocked_at = 0;
    arm_from(c, h2->idle_at, to->idle);
    return;
  }
  if (window_blocked(h2)) {
    if (!h2->blocked_at) h2->blocked_at = now;
    arm_from(c, h2->blocked_at, to->send);
    return;
  }
  h2->blocked_at = 0;
  uint64_t since = body_since(h2);
  if (since) {
    arm_from(c, since, to->body);
    return;
  }
  cg_conn_set_timeout(c, 0); /* the upstream or a plugin is awaited: theirs run */
}

void cg_h2_on_timer(cg_conn_t *c) {
  cg_h2_t *h2 = c->h2;
  if (h2->draining == 1) {
    /* the last GOAWAY: streams the client opened after it are not served */
    h2->draining = 2;
    goaway(h2, 0);
    return;
  }
  if (h2->n_streams == 0) {
    goaway(h2, 1);
    return;
  }
  if (window_blocked(h2)) {
    cg_log_info("%s: closing: HTTP/2 client stopped reading", c->x.peer);
    cg_conn_close(c);
    return;
  }
  /* streams whose body stopped coming for timeouts.body: 408 if they can
   * still be answered */
  uint64_t now = uv_now(&c->w->loop), ms = c->w->cfg->timeouts.body;
  for (cg_list_t *it = h2->streams.next; it != &h2->streams; it = it->next) {
    cg_h2_stream_t *st = container_of(it, cg_h2_stream_t, link);
    if (!body_owed(st) || st->body_at + ms > now) continue;
    if (!st->x.req.resp_started) cg_respond_error(&st->x, 408, "request body not received in time");
    else nghttp2_submit_rst_stream(h2->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
  }
  cg_h2_flush(h2);
}

/* --- the end ----------------------------------------------------------------- */

void cg_h2_drain(cg_conn_t *c) {
  cg_h2_t *h2 = c->h2;
  if (h2->draining || h2->closing) return;
  if (h2->n_streams == 0) {
    goaway(h2, 1);
    return;
  }
  /* RFC 9113 6.8: a GOAWAY naming the last stream possible first, so that
   * requests already on their way are still served; the real one after */
  h2->draining = 1;
  nghttp2_submit_shutdown_notice(h2->ng);
  nghttp2_submit_ping(h2->ng, NGHTTP2_FLAG_NONE, DRAIN_PING);
  cg_conn_set_timeout(c, DRAIN_NOTICE_MS);
  cg_h2_flush(h2);
}

void cg_h2_close(cg_conn_t *c) {
  cg_h2_t *h2 = c->h2;
  if (!cg_list_empty(&h2->flush_link)) {
    cg_list_remove(&h2->flush_link);
    cg_list_init(&h2->flush_link);
  }
  for (cg_list_t *it = h2->streams.next; it != &h2->streams; it = it->next)
    cg_h2_stream_closed(container_of(it, cg_h2_stream_t, link));
}

void cg_h2_free(cg_conn_t *c) {
  cg_h2_t *h2 = c->h2;
  if (!h2) return;
  while (!cg_list_empty(&h2->streams)) cg_h2_stream_free(container_of(h2->streams.next, cg_h2_stream_t, link));
  nghttp2_session_del(h2->ng);
  free(h2);
  c->h2 = NULL;
}
