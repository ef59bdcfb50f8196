/* libFuzzer target: the request path of fuzz_request.c, over HTTP/2. The
 * input is what an h2c client sends after its preface (which the harness
 * writes first, so the fuzzer spends its effort on frames): nghttp2 ->
 * each stream an exchange -> route -> CORS (static policies and a Lua
 * plugin) -> the gateway's own answers, or the proxy to an upstream. One
 * worker runs in this process with a plain listener that allows HTTP/2
 * with prior knowledge; each input goes on a fresh connection (most in
 * small pieces, one gateway read each). The upstream is this harness too:
 * a loopback socket whose requests are parsed by a strict llhttp and
 * answered at once. Once all is sent and the gateway has gone quiet (its
 * answers come at once, or from the idle phase, or after the upstream),
 * the write side is shut and the loop runs until the gateway closes. One
 * input in four also lets time pass once, between two of its frames: the
 * connection's timer fires early (an idle connection trims) or at its
 * deadline (idle GOAWAY, a client that stopped reading dropped).
 *
 * Invariants:
 * - it never crashes (ASan, UBSan) and always closes the connection;
 * - what it writes is HTTP/2: frames, its SETTINGS first, no push, header
 *   blocks contiguous and decodable by HPACK, on streams the client opened;
 *   each response head starts with :status and is one per stream (1xx
 *   aside) before its DATA, with lower-case names, no connection-specific
 *   field and no CR, LF or NUL in a value;
 * - every access-control-allow-origin is "*" or an origin the config allows
 *   (listed, matching the pattern, or allowed by the plugin), at most one a
 *   head: the upstream's own (it always sends one, for an origin nobody
 *   allows, with credentials) never gets through;
 * - an echoed origin goes with "vary: origin", credentials never with "*";
 * - what reaches the upstream is HTTP/1.1 that a strict parser takes, no
 *   upgrade, never more requests than the client sent HEADERS frames (a
 *   stream is never split in two), and each whole request there is one
 *   stream the client ended, its :path and every byte of its DATA (never a
 *   request the client did not finish, or finished otherwise). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "server/internal.h"
#include "util/diag.h"
#include "util/log.h"
#include "fuzz_gateway.h"
#include "fuzz_origins.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* fuzz_request's routes and policies, the CORS-checked ones proxied to the
 * harness's upstream ("up") instead of the built-in echo: every route to it
 * has a policy, so none of its access-control-* headers may reach a client. */
static const char config_fmt[] =
    "return {\n"
    "  listen = { { address = '127.0.0.1:1', http2 = true } },\n"
    "  workers = 1, log_level = 'error', access_log = false,\n"
    "  plugin_paths = { fuzz_dir },\n"
    "  limits = { max_head_bytes = 2048, max_headers = 20, max_body_bytes = 512, max_connections = 64 },\n"
    "  upstreams = { up = { targets = { '127.0.0.1:%d' } }, dead = { targets = { '127.0.0.1:1' } } },\n"
    "  routes = {\n"
    "    { name = 'list', prefix = '/list', upstream = 'up', cors = {\n"
    "      origins = { 'https://app.example', 'http://localhost:3000' }, origin_patterns = { 'https://*.tenant.example' },\n"
    "      methods = { 'GET', 'PUT', 'DELETE' }, headers = { 'X-Req', 'Content-Type' },\n"
    "      expose_headers = { 'X-Total' }, credentials = true, max_age = 60, private_network = true } },\n"
    "    { name = 'star', prefix = '/star', upstream = 'up', cors = { origins = '*', headers = '*' } },\n"
    "    { name = 'plugin', prefix = '/plugin', upstream = 'up', cors = { plugin = 'fz', methods = { 'GET', 'PUT' } } },\n"
    "    { name = 'static', prefix = '/static', static = { status = 404, body = 'nope' },\n"
    "      cors = { origins = { 'https://app.example' } } },\n"
    "    { name = 'dead', prefix = '/dead', upstream = 'dead', cors = { origins = { 'https://app.example' } } },\n"
    "    { name = 'dbg', prefix = '/dbg', upstream = 'echo', debug = true, cors = { origins = { 'https://app.example' },\n"
    "      methods = '*', headers = { 'X-Req' }, credentials = true, preflight_status = 200 } },\n"
    "    { name = 'host', host = '*.api.example', prefix = '/', upstream = 'echo' },\n"
    "    { name = 'plain', prefix = '/', upstream = 'echo' },\n"
    "  },\n"
    "}\n";

static cg_worker_t worker;
static struct sockaddr_in gw_addr;
/* CORSGATE_FUZZ_VERBOSE=1: each response head, what the upstream got and
 * the gateway's debug log, on stderr (to read what a finding's input does) */
static int verbose;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Buffers of this harness grow, never shrink. */
static void grow(uint8_t **p, size_t *cap, size_t need) {
  if (need <= *cap) return;
  size_t c = *cap ? *cap : 4096;
  while (c < need) c *= 2;
  *p = realloc(*p, c);
  if (!*p) abort();
  *cap = c;
}

static int32_t stream_id(const uint8_t *h) {
  return (int32_t)(((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]) & 0x7fffffffu);
}

/* --- what the client sent ---------------------------------------------------- */

/* Streams of one input: a table with room for every HEADERS frame the
 * fuzzer's inputs (a few kB) can hold. */
enum { STREAMS = 2048 };

/* A stream as the input has it, to tell what a whole request at the
 * upstream may be. */
typedef struct {
  int32_t sid; /* 0: a free slot */
  int has_head;
  size_t path_off, path_len; /* :path, in in.paths */
  uint64_t data;             /* DATA payload, up to END_STREAM */
  int ended;                 /* END_STREAM came */
  int forwarded;             /* a whole request at the upstream was this one */
} in_stream_t;

/* Read from the input before it is sent, with an HPACK decoder of our own
 * that sees every header block in order, as the gateway's nghttp2 does.
 * nghttp2 stops at the first connection error and we read on, so what is
 * here is a superset of what the gateway took. */
static struct {
  unsigned headers; /* HEADERS frames */
  int32_t max_sid;
  int unsure; /* a head we could not read as nghttp2 would: requests are not matched */
  in_stream_t streams[STREAMS];
  uint8_t *paths;
  size_t paths_len, paths_cap;
  uint8_t *block; /* a header block: HEADERS and its CONTINUATIONs */
  size_t block_len, block_cap;
} in;

static in_stream_t *in_stream(int32_t sid) {
  unsigned i = ((uint32_t)sid * 2654435761u) % STREAMS;
  for (unsigned probe = 0; probe < STREAMS; probe++, i = (i + 1) % STREAMS) {
    if (in.streams[i].sid == sid) return &in.streams[i];
    if (in.streams[i].sid == 0) {
      in.streams[i].sid = sid;
      return &in.streams[i];
    }
  }
  in.unsure = 1;
  return NULL;
}

/* A header block of stream st; end_stream: its HEADERS frame ended the stream. */
static void input_block(nghttp2_hd_inflater *inf, in_stream_t *st, int end_stream) {
  const uint8_t *p = in.block;
  size_t left = in.block_len;
  int first = !st->has_head;
  st->has_head = 1;
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    ssize_t rv = nghttp2_hd_inflate_hd2(inf, &nv, &flags, p, left, 1);
    if (rv < 0) {
      in.unsure = 1; /* nghttp2 ends the connection here */
      return;
    }
    p += rv;
    left -= (size_t)rv;
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) && first) {
      if (nv.namelen == 5 && memcmp(nv.name, ":path", 5) == 0) {
        grow(&in.paths, &in.paths_cap, in.paths_len + nv.valuelen);
        if (nv.valuelen) memcpy(in.paths + in.paths_len, nv.value, nv.valuelen);
        st->path_off = in.paths_len;
        st->path_len = nv.valuelen;
        in.paths_len += nv.valuelen;
      }
    }
    if (flags & NGHTTP2_HD_INFLATE_FINAL) break;
    if (rv == 0 && left == 0) {
      in.unsure = 1;
      return;
    }
  }
  nghttp2_hd_inflate_end_headers(inf);
}

static void scan_input(const uint8_t *data, size_t size) {
  nghttp2_hd_inflater *inf;
  if (nghttp2_hd_inflate_new(&inf) != 0) abort();
  memset(in.streams, 0, sizeof in.streams);
  in.headers = 0;
  in.max_sid = 0;
  in.unsure = 0;
  in.paths_len = 0;
  in_stream_t *block_st = NULL;
  int block_end = 0;
  for (size_t at = 0; size - at >= 9;) {
    const uint8_t *h = data + at, *p = h + 9;
    size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
    uint8_t type = h[3], flags = h[4];
    int32_t sid = stream_id(h);
    if (type == NGHTTP2_HEADERS) {
      in.headers++;
      if (sid > in.max_sid) in.max_sid = sid;
    }
    if (size - at - 9 < len) break;
    at += 9 + len;
    if (in.unsure) continue;
    if (block_st && type != NGHTTP2_CONTINUATION) in.unsure = 1; /* a connection error */
    size_t skip = 0, pad = 0;
    if ((type == NGHTTP2_HEADERS || type == NGHTTP2_DATA) && (flags & NGHTTP2_FLAG_PADDED)) {
      pad = len ? p[0] : 0;
      skip = 1;
    }
    if (type == NGHTTP2_HEADERS && (flags & NGHTTP2_FLAG_PRIORITY)) skip += 5;
    if (skip + pad > len) in.unsure = 1;
    if (in.unsure || sid == 0) continue;
    in_stream_t *st;
    switch (type) {
    case NGHTTP2_HEADERS:
      if (!(st = in_stream(sid))) continue;
      block_end = (flags & NGHTTP2_FLAG_END_STREAM) != 0;
      if (block_end) st->ended = 1;
      block_st = st;
      in.block_len = 0;
      break;
    case NGHTTP2_CONTINUATION:
      if (!block_st || block_st->sid != sid) {
        in.unsure = 1;
        continue;
      }
      break;
    case NGHTTP2_DATA:
      if (!(st = in_stream(sid)) || st->ended) continue; /* (nghttp2 takes no DATA after the end) */
      st->data += len - skip - pad;
      if (flags & NGHTTP2_FLAG_END_STREAM) st->ended = 1;
      continue;
    default:
      continue;
    }
    grow(&in.block, &in.block_cap, in.block_len + len - skip - pad);
    if (len - skip - pad) memcpy(in.block + in.block_len, p + skip, len - skip - pad);
    in.block_len += len - skip - pad;
    if (flags & NGHTTP2_FLAG_END_HEADERS) {
      input_block(inf, block_st, block_end);
      block_st = NULL;
    }
  }
  nghttp2_hd_inflate_del(inf);
}

/* --- the upstream -------------------------------------------------------- */

/* Enough for the streams of one input at once, and the pool's idle ones. */
enum { UP_MAX = 256 };

typedef struct {
  int fd;
  llhttp_t parser;
  char url[4096]; /* the request's target */
  size_t url_len;
  int url_cut; /* longer than url */
  uint64_t body;
  uint8_t *out; /* answers not yet taken by the gateway */
  size_t out_len, out_off, out_cap;
} upconn_t;

static int up_fd;
static upconn_t *ups[UP_MAX];
static int n_ups;
static llhttp_settings_t up_settings;
static unsigned up_begun; /* this input's requests */

/* The answer goes with CORS headers of its own, for an origin no policy
 * allows: the route's policy must replace them. */
#define UP_CORS "access-control-allow-origin: https://evil.example\r\naccess-control-allow-credentials: true\r\n"

static void up_queue(upconn_t *u, const char *s, size_t n) {
  grow(&u->out, &u->out_cap, u->out_len + n);
  memcpy(u->out + u->out_len, s, n);
  u->out_len += n;
}

static int up_has(const upconn_t *u, const char *s) {
  size_t n = strlen(s);
  for (size_t i = 0; i + n <= u->url_len; i++)
    if (memcmp(u->url + i, s, n) == 0) return 1;
  return 0;
}

static int on_up_begin(llhttp_t *p) {
  upconn_t *u = p->data;
  up_begun++;
  u->url_len = 0;
  u->url_cut = 0;
  u->body = 0;
  return 0;
}

static int on_up_url(llhttp_t *p, const char *at, size_t n) {
  upconn_t *u = p->data;
  size_t room = sizeof u->url - u->url_len;
  if (n > room) n = room, u->url_cut = 1;
  memcpy(u->url + u->url_len, at, n);
  u->url_len += n;
  return 0;
}

static int on_up_body(llhttp_t *p, const char *at, size_t n) {
  upconn_t *u = p->data;
  (void)at;
  u->body += n;
  return 0;
}

/* A request is whole at the upstream: it must be one the client sent and
 * ended, with the same target and every byte of its body, and it is
 * forwarded once. Tolerated: a head that says content-length: 0 is a whole
 * HTTP/1.1 request, which h2_stream.c forwards before END_STREAM (DATA
 * after it makes the request malformed: reset, none of it forwarded, but
 * the upstream has served the request by then). */
static void up_whole(upconn_t *u) {
  if (in.unsure || u->url_cut) return;
  in_stream_t *sent = NULL;
  for (int i = 0; i < STREAMS && !sent; i++) {
    in_stream_t *st = &in.streams[i];
    if (!st->sid || !st->has_head || st->forwarded || st->path_len != u->url_len ||
        memcmp(in.paths + st->path_off, u->url, u->url_len) != 0)
      continue;
    if (st->ended && st->data == u->body) sent = st;
  }
  CHECK(sent, "the upstream got a whole request no stream sent: %.*s with %llu body bytes", (int)u->url_len, u->url,
        (unsigned long long)u->body);
  sent->forwarded = 1;
}

/* Answers by the path: a chunked body, one bigger than the client's first
 * window, no body at all, or a small one by length. */
static int on_up_complete(llhttp_t *p) {
  upconn_t *u = p->data;
  int head = llhttp_get_method(p) == HTTP_HEAD;
  up_whole(u);
  if (up_has(u, "/chunk")) {
    static const char r[] = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nvary: accept\r\n" UP_CORS "\r\n";
    static const char body[] = "3\r\nup\n\r\n0\r\n\r\n";
    up_queue(u, r, sizeof r - 1);
    if (!head) up_queue(u, body, sizeof body - 1);
  } else if (up_has(u, "/big")) {
    enum { BIG = 100000 };
    char line[256];
    int n = snprintf(line, sizeof line, "HTTP/1.1 200 OK\r\ncontent-length: %d\r\n" UP_CORS "\r\n", BIG);
    up_queue(u, line, (size_t)n);
    if (!head) {
      static char big[BIG];
      if (!big[0]) memset(big, 'b', sizeof big);
      up_queue(u, big, sizeof big);
    }
  } else if (up_has(u, "/nobody")) {
    static const char r[] = "HTTP/1.1 204 No Content\r\n" UP_CORS "\r\n";
    up_queue(u, r, sizeof r - 1);
  } else {
    static const char r[] = "HTTP/1.1 200 OK\r\ncontent-length: 3\r\nx-total: 1\r\nvary: accept\r\n" UP_CORS "\r\n";
    up_queue(u, r, sizeof r - 1);
    if (!head) up_queue(u, "up\n", 3);
  }
  return 0;
}

static void up_close(int i) {
  close(ups[i]->fd);
  free(ups[i]->out);
  free(ups[i]);
  ups[i] = ups[--n_ups];
}

/* Accepts, reads and answers what the gateway sent its upstream. Returns
 * whether anything moved. */
static int up_service(void) {
  static char rbuf[65536];
  int progress = 0;
  for (;;) {
    int fd = accept4(up_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) break;
    CHECK(n_ups < UP_MAX, "the gateway holds %d upstream connections", n_ups);
    upconn_t *u = calloc(1, sizeof *u);
    if (!u) abort();
    u->fd = fd;
    llhttp_init(&u->parser, HTTP_REQUEST, &up_settings);
    u->parser.data = u;
    ups[n_ups++] = u;
    progress = 1;
  }
  for (int i = 0; i < n_ups;) {
    upconn_t *u = ups[i];
    int gone = 0;
    for (;;) {
      ssize_t n = read(u->fd, rbuf, sizeof rbuf);
      if (n > 0) {
        progress = 1;
        if (verbose) fprintf(stderr, "upstream %d got:\n%.*s\n", u->fd, (int)n, rbuf);
        llhttp_errno_t err = llhttp_execute(&u->parser, rbuf, (size_t)n);
        CHECK(err == HPE_OK, "the upstream got what HTTP/1.1 does not parse: %s (%s), in:\n%.*s", llhttp_errno_name(err),
              llhttp_get_error_reason(&u->parser), (int)n, rbuf);
        continue;
      }
      /* the end of a request the gateway gave up on (its client went) is no finding */
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) gone = 1;
      break;
    }
    while (!gone && u->out_off < u->out_len) {
      ssize_t n = write(u->fd, u->out + u->out_off, u->out_len - u->out_off);
      if (n > 0) {
        u->out_off += (size_t)n;
        progress = 1;
      } else {
        if (n < 0 && errno != EAGAIN && errno != EINTR) gone = 1;
        break;
      }
    }
    if (u->out_off == u->out_len) u->out_off = u->out_len = 0;
    if (gone) {
      up_close(i);
      progress = 1;
    } else {
      i++;
    }
  }
  return progress;
}

/* --- what the gateway wrote: frames ------------------------------------------- */

/* The frame size every peer accepts; nghttp2 sends no larger frame (its
 * DATA and header blocks are cut at this size whatever the client allows). */
enum { FRAME_MAX = 16384 };
enum { ST_HEAD = 1, ST_DONE }; /* a stream's state: 0, nothing sent on it yet */

static struct {
  nghttp2_hd_inflater *inf;
  uint8_t *buf; /* bytes not yet a whole frame */
  size_t len, cap;
  unsigned frames;
  /* a header block in progress (HEADERS and its CONTINUATIONs) */
  uint8_t *block;
  size_t block_len, block_cap;
  int32_t block_sid;
  int block_end_stream;
  int in_block;
  /* per stream: what the gateway has sent on it */
  struct {
    int32_t sid;
    int state;
  } streams[STREAMS];
} o;

/* A response head as it is decoded, kept for the checks and a message. */
static struct {
  int fields;
  int status;
  int acao, star, vary_origin, creds;
  char text[2048]; /* "name: value" lines, cut */
  size_t text_len;
} hd;

static int *stream_state(int32_t sid) {
  unsigned i = ((uint32_t)sid * 2654435761u) % STREAMS;
  for (unsigned probe = 0; probe < STREAMS; probe++, i = (i + 1) % STREAMS) {
    if (o.streams[i].sid == sid) return &o.streams[i].state;
    if (o.streams[i].sid == 0) {
      o.streams[i].sid = sid;
      return &o.streams[i].state;
    }
  }
  static int spare; /* more streams than the table holds: unknown (-1), unchecked */
  spare = -1;
  return &spare;
}

static int connection_specific(const uint8_t *n, size_t len) {
  static const char *const names[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (len == strlen(names[i]) && memcmp(n, names[i], len) == 0) return 1;
  return 0;
}

static void head_field(const nghttp2_nv *nv) {
  const char *n = (const char *)nv->name, *v = (const char *)nv->value;
  size_t nl = nv->namelen, vl = nv->valuelen;
  int room = (int)(sizeof hd.text - hd.text_len);
  int w = snprintf(hd.text + hd.text_len, (size_t)room, "%.*s: %.*s\n", (int)nl, n, (int)vl, v);
  hd.text_len += w < room ? (size_t)w : (size_t)(room > 0 ? room - 1 : 0);
  if (hd.fields++ == 0) {
    CHECK(nl == 7 && memcmp(n, ":status", 7) == 0 && vl == 3 && v[0] >= '1' && v[0] <= '5' && v[1] >= '0' &&
              v[1] <= '9' && v[2] >= '0' && v[2] <= '9',
          "a response head starts with %.*s: %.*s", (int)nl, n, (int)vl, v);
    hd.status = (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0');
    return;
  }
  CHECK(nl > 0 && n[0] != ':', "a pseudo-header after :status:\n%s", hd.text);
  for (size_t i = 0; i < nl; i++)
    CHECK(!(n[i] >= 'A' && n[i] <= 'Z') && n[i] > 0x20 && n[i] < 0x7f, "a field name that HTTP/2 forbids:\n%s", hd.text);
  CHECK(!connection_specific(nv->name, nl), "a connection-specific field:\n%s", hd.text);
  for (size_t i = 0; i < vl; i++)
    CHECK(v[i] != '\r' && v[i] != '\n' && v[i] != 0, "CR, LF or NUL in a value:\n%s", hd.text);
  if (nl == 27 && memcmp(n, "access-control-allow-origin", 27) == 0) {
    hd.acao++;
    hd.star = vl == 1 && v[0] == '*';
    CHECK(hd.star || allowed_origin(v, vl), "access-control-allow-origin: %.*s", (int)vl, v);
  }
  if (nl == 4 && memcmp(n, "vary", 4) == 0 && has_token(v, vl, "origin")) hd.vary_origin = 1;
  if (nl == 32 && memcmp(n, "access-control-allow-credentials", 32) == 0) hd.creds = 1;
}

static void header_block(void) {
  int *state = stream_state(o.block_sid);
  memset(&hd, 0, sizeof hd);
  const uint8_t *at = o.block;
  size_t left = o.block_len;
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    ssize_t rv = nghttp2_hd_inflate_hd2(o.inf, &nv, &flags, at, left, 1);
    CHECK(rv >= 0, "the gateway's HPACK does not decode: %s", nghttp2_strerror((int)rv));
    at += rv;
    left -= (size_t)rv;
    if (flags & NGHTTP2_HD_INFLATE_EMIT) head_field(&nv);
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(o.inf);
      break;
    }
    CHECK(rv > 0 || left > 0, "HPACK stopped short");
  }
  if (verbose) fprintf(stderr, "stream %d%s:\n%s\n", o.block_sid, o.block_end_stream ? " (end)" : "", hd.text);
  CHECK(hd.fields > 0, "an empty header block on stream %d (trailers?)", o.block_sid);
  if (hd.status < 200) {
    CHECK(*state < ST_HEAD && !o.block_end_stream, "a %d after the response's head on stream %d", hd.status,
          o.block_sid);
  } else {
    CHECK(*state < ST_HEAD, "a second response head on stream %d:\n%s", o.block_sid, hd.text);
    *state = o.block_end_stream ? ST_DONE : ST_HEAD;
  }
  if (hd.acao) {
    CHECK(hd.acao == 1, "access-control-allow-origin %d times:\n%s", hd.acao, hd.text);
    CHECK(hd.star || hd.vary_origin, "an echoed origin without vary: origin:\n%s", hd.text);
    CHECK(!(hd.star && hd.creds), "credentials with *:\n%s", hd.text);
  }
}

static void block_piece(uint8_t flags, const uint8_t *p, size_t len) {
  grow(&o.block, &o.block_cap, o.block_len + len);
  if (len) memcpy(o.block + o.block_len, p, len);
  o.block_len += len;
  if (flags & NGHTTP2_FLAG_END_HEADERS) {
    o.in_block = 0;
    header_block();
  }
}

static void frame(uint8_t type, uint8_t flags, int32_t sid, const uint8_t *p, size_t len) {
  if (verbose) fprintf(stderr, "frame type %u flags %#x stream %d, %zu bytes\n", type, flags, sid, len);
  if (o.frames++ == 0)
    CHECK(type == NGHTTP2_SETTINGS && !(flags & NGHTTP2_FLAG_ACK) && sid == 0,
          "the gateway's first frame is of type %u, not its SETTINGS", type);
  CHECK(len <= FRAME_MAX, "a frame of %zu bytes", len);
  CHECK(!o.in_block || (type == NGHTTP2_CONTINUATION && sid == o.block_sid),
        "a frame of type %u inside stream %d's header block", type, o.block_sid);
  CHECK(type != NGHTTP2_PUSH_PROMISE, "a push");
  switch (type) {
  case NGHTTP2_HEADERS: {
    CHECK(sid > 0 && (sid & 1) && sid <= in.max_sid, "HEADERS on stream %d, which the client did not open", sid);
    size_t skip = 0, pad = 0;
    if (flags & NGHTTP2_FLAG_PADDED) {
      CHECK(len >= 1, "PADDED HEADERS without its length");
      pad = p[0];
      skip = 1;
    }
    if (flags & NGHTTP2_FLAG_PRIORITY) skip += 5;
    CHECK(skip + pad <= len, "HEADERS padded past its end");
    o.block_len = 0;
    o.block_sid = sid;
    o.block_end_stream = (flags & NGHTTP2_FLAG_END_STREAM) != 0;
    o.in_block = 1;
    block_piece(flags, p + skip, len - skip - pad);
    return;
  }
  case NGHTTP2_CONTINUATION:
    CHECK(o.in_block, "CONTINUATION out of a header block");
    block_piece(flags, p, len);
    return;
  case NGHTTP2_DATA: {
    int *state = stream_state(sid);
    CHECK(*state < 0 || *state == ST_HEAD, "DATA on stream %d %s", sid, *state == ST_DONE ? "after its end" : "before its head");
    if (flags & NGHTTP2_FLAG_END_STREAM) *state = ST_DONE;
    return;
  }
  case NGHTTP2_RST_STREAM:
    if (sid > 0) *stream_state(sid) = ST_DONE;
    return;
  default:
    return;
  }
}

/* Bytes the gateway wrote, in any pieces. */
static void output(const char *data, size_t n) {
  grow(&o.buf, &o.cap, o.len + n);
  memcpy(o.buf + o.len, data, n);
  o.len += n;
  size_t at = 0;
  while (o.len - at >= 9) {
    const uint8_t *h = o.buf + at;
    size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
    if (o.len - at < 9 + len) break;
    frame(h[3], h[4], stream_id(h), h + 9, len);
    at += 9 + len;
  }
  memmove(o.buf, o.buf + at, o.len - at);
  o.len -= at;
}

/* --- one worker, one connection an input ------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN);
  verbose = getenv("CORSGATE_FUZZ_VERBOSE") != NULL;
  /* the upstream first: the config names its port */
  up_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in ua = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t ul = sizeof ua;
  if (up_fd < 0 || bind(up_fd, (struct sockaddr *)&ua, sizeof ua) != 0 || listen(up_fd, 512) != 0 ||
      getsockname(up_fd, (struct sockaddr *)&ua, &ul) != 0)
    abort();
  llhttp_settings_init(&up_settings);
  up_settings.on_message_begin = on_up_begin;
  up_settings.on_url = on_up_url;
  up_settings.on_body = on_up_body;
  up_settings.on_message_complete = on_up_complete;
  cg_config_t *cfg = fuzz_config("fuzz_h2", plugin_src, config_fmt, ntohs(ua.sin_port));
  /* any free port: the kernel picks it at bind */
  ((struct sockaddr_in *)&cfg->listeners[0].addr)->sin_port = 0;
  worker.dstore = cg_dstore_new(cfg->cache.max_entries, cfg->cache.stale_limit_ms);
  if (!worker.dstore || cg_worker_init(&worker, 0, cfg) != 0) abort();
  /* (the server sets the config's level; a worker alone does not) */
  cg_log_set_level(verbose ? CG_LOG_DEBUG : CG_LOG_ERROR);
  socklen_t len = sizeof gw_addr;
  if (getsockname(worker.listeners[0].fd, (struct sockaddr *)&gw_addr, &len) != 0) abort();
  return 0;
}

/* Waits up to ms for any socket of the gateway, the client or the upstream. */
static void wait_io(int client, int ms) {
  struct pollfd p[UP_MAX + 3];
  int n = 0;
  p[n++] = (struct pollfd){.fd = uv_backend_fd(&worker.loop), .events = POLLIN};
  p[n++] = (struct pollfd){.fd = up_fd, .events = POLLIN};
  if (client >= 0) p[n++] = (struct pollfd){.fd = client, .events = POLLIN};
  for (int i = 0; i < n_ups; i++)
    p[n++] = (struct pollfd){.fd = ups[i]->fd, .events = POLLIN | (ups[i]->out_len ? POLLOUT : 0)};
  poll(p, (nfds_t)n, ms);
}

static int connect_gateway(void) {
  int fd = fuzz_connect(&worker, &gw_addr);
  /* closed with a reset: millions of inputs must not pile up in TIME_WAIT */
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  /* each piece leaves at once: Nagle would hold the last one back until the
   * gateway's delayed ACK, and the gateway would look quiet meanwhile */
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  /* the preface in one write: the gateway tells HTTP/2 from its first read */
  CHECK(write(fd, preface, sizeof preface - 1) == (ssize_t)(sizeof preface - 1), "the preface: %s", strerror(errno));
  return fd;
}

/* Where the input's k-th whole frame ends (its end if it has fewer). */
static size_t frame_end(const uint8_t *data, size_t size, size_t k) {
  size_t at = 0;
  for (size_t i = 0; i < k && size - at >= 9; i++) {
    size_t len = (size_t)data[at] << 16 | (size_t)data[at + 1] << 8 | data[at + 2];
    if (size - at - 9 < len) break;
    at += 9 + len;
  }
  return at;
}

/* Time passes for the connection, the gateway quiet: its timer fires now,
 * as it would after TRIM_MS of idleness (an idle connection gives its
 * buffers back, conn_trim) or, with deadline, once its deadline has come
 * (an idle one says GOAWAY, one whose client stopped reading is dropped).
 * The loop's clock is the real one, so the timer is fired, not awaited;
 * with its own callback, which it was last started with. */
static void let_time_pass(int deadline) {
  if (worker.n_conns != 1) return;
  cg_conn_t *c = container_of(worker.conns.next, cg_conn_t, link);
  if (!c->h2 || c->lingering || c->state == CG_CONN_CLOSING || !uv_is_active((uv_handle_t *)&c->timer)) return;
  if (verbose) fprintf(stderr, "time passes: the connection's timer fires%s\n", deadline ? " at its deadline" : "");
  if (deadline) c->deadline = uv_now(&worker.loop);
  uv_timer_start(&c->timer, c->timer.timer_cb, 0, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char rbuf[65536];
  memset(&o.streams, 0, sizeof o.streams);
  o.len = o.frames = 0;
  o.in_block = 0;
  if (nghttp2_hd_inflate_new(&o.inf) != 0) abort();
  scan_input(data, size);
  up_begun = 0;

  int fd = connect_gateway();
  size_t sent = 0;
  int shut = 0, eof = 0;
  /* Three inputs in four go out in pieces of 1-64 bytes, the loop running
   * between pieces, so frames are split across the gateway's reads at
   * places the input decides. The piece sizes come from the input itself,
   * so a finding replays the same. */
  uint64_t rnd = 0x9e3779b97f4a7c15u ^ size;
  for (size_t i = 0; i < size && i < 64; i++) rnd = (rnd ^ data[i]) * 0x100000001b3u;
  int pieces = ((rnd >> 40) & 3) != 0;
  /* One input in four lets time pass once, at one of its first 256 frame
   * boundaries (right after the preface up to its end), then goes on. */
  size_t pause_at = SIZE_MAX;
  if (((rnd >> 44) & 3) == 0) pause_at = frame_end(data, size, (size_t)((rnd >> 20) & 0xff));
  int pause_deadline = (rnd >> 50) & 1;
  /* idle: turns in a row in which nothing moved. Once the input is all
   * sent, two such turns (each waiting 1 ms on every socket) mean the
   * gateway waits for the client: the write side is shut. Bounded, like
   * the turns overall: a gateway that spins is a finding too. */
  int idle = 0, turns = 0;
  while (!eof && idle < 2000) {
    CHECK(++turns < 200000, "the gateway never went quiet (%zu bytes in)", size);
    uv_run(&worker.loop, UV_RUN_NOWAIT);
    int progress = 0;
    if (sent == pause_at) {
      if (idle >= 2) {
        let_time_pass(pause_deadline);
        pause_at = SIZE_MAX;
        progress = 1;
      }
    } else if (sent < size) {
      size_t want = size - sent;
      if (pieces) {
        rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
        size_t piece = 1 + (size_t)(rnd >> 58);
        if (piece < want) want = piece;
      }
      if (sent < pause_at && pause_at - sent < want) want = pause_at - sent;
      ssize_t n = write(fd, data + sent, want);
      if (n > 0) sent += (size_t)n, progress = 1;
      else if (n < 0 && errno != EAGAIN) sent = size, pause_at = SIZE_MAX; /* reset by the gateway: it has answered */
    } else if (!shut && idle >= 2) {
      shutdown(fd, SHUT_WR);
      if (verbose) fprintf(stderr, "turn %d: all %zu bytes sent, the write side shut\n", turns, size);
      shut = 1;
      progress = 1;
    }
    for (;;) {
      ssize_t n = read(fd, rbuf, sizeof rbuf);
      if (n > 0) {
        output(rbuf, (size_t)n);
        progress = 1;
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) eof = 1;
      break;
    }
    if (up_service()) progress = 1;
    /* frames owed from the idle phase go at the next turn */
    if (progress || uv_is_active((uv_handle_t *)&worker.h2_idle)) {
      idle = 0;
    } else {
      idle++;
      wait_io(fd, 1);
    }
  }
  CHECK(eof, "the gateway kept the connection open after %zu bytes in, %u frames out", size, o.frames);
  close(fd);
  CHECK(o.frames > 0, "no SETTINGS from the gateway");
  /* let the gateway finish with the connection (and its upstream
   * connections) before the next input */
  for (int i = 0; i < 3000 && worker.n_conns > 0; i++) {
    uv_run(&worker.loop, UV_RUN_NOWAIT);
    if (!up_service() && worker.n_conns > 0) wait_io(-1, 1);
  }
  CHECK(worker.n_conns == 0, "the gateway still holds %d connection(s) 3 s after the client reset it", worker.n_conns);
  for (int i = 0; i < 3; i++) {
    uv_run(&worker.loop, UV_RUN_NOWAIT);
    up_service();
  }
  if (verbose) fprintf(stderr, "%u HEADERS frames in, %u requests to the upstream\n", in.headers, up_begun);
  CHECK(up_begun <= in.headers, "%u requests reached the upstream from %u HEADERS frames", up_begun, in.headers);
  nghttp2_hd_inflate_del(o.inf);
  o.inf = NULL;
  return 0;
}
