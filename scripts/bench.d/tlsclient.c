/* scripts/bench's TLS client, for what wrk cannot measure (its TLS connect
 * stalls under a new connection per request):
 *
 *   tlsclient -c N -d SECONDS [-m METHOD] [-H "Name: value"]... https://127.0.0.1:PORT/PATH
 *     full handshakes: N threads, each making a new TLS connection per request
 *     (no session resumption), one request, the answer read, then closed; prints
 *     the line scripts/bench reads from wrk (BENCH requests=... p50_us=...), the
 *     latency of a request being from connect() to the end of its answer
 *   tlsclient -hold N [-h2] [-m METHOD] [-H ...] URL
 *     idle keep-alive connections: opens N (4 threads), one request on each, keeps
 *     them all open, prints "HELD N" and waits for its stdin to close (or a signal);
 *     "NOT2XX K" before it if K answers were not 2xx (-h2)
 *   -h2: HTTP/2 instead of HTTP/1.1 (ALPN h2, refused if the server picks
 *     anything else): the connection preface and a SETTINGS frame, the request
 *     as one HEADERS frame on stream 1 (HPACK literals without indexing, no
 *     Huffman), the server's SETTINGS acknowledged; a connection counts once its
 *     answer has ended (END_STREAM) and the server has acknowledged our SETTINGS
 *
 * TLS 1.3 by default, any version the server offers with -tls12 off; the
 * certificate is not verified (a bench, not a client). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADERS 16
#define MAX_SAMPLES (1 << 20)

static SSL_CTX *ctx;
static struct sockaddr_in addr;
static char request[4096];
static size_t request_len;
static int h2;                /* -h2 */
static unsigned char h2_start[4096]; /* preface, SETTINGS, HEADERS of the request */
static size_t h2_start_len;
static atomic_long h2_not_2xx; /* answers whose :status did not read as 2xx */
static double deadline;
static atomic_long n_requests, n_bytes, err_connect, err_read, err_status;
static uint32_t *samples; /* latencies in microseconds */
static atomic_long n_samples;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "tlsclient: %s\n", what);
  exit(2);
}

/* --- HTTP/2, just what one request on a connection needs ---------------- */

/* an HPACK integer with an N-bit prefix (RFC 7541 5.1) */
static size_t hpack_int(unsigned char *out, unsigned char first, int nbits, size_t v) {
  size_t max = ((size_t)1 << nbits) - 1, n = 0;
  if (v < max) {
    out[n++] = (unsigned char)(first | v);
    return n;
  }
  out[n++] = (unsigned char)(first | max);
  v -= max;
  while (v >= 128) {
    out[n++] = (unsigned char)(0x80 | (v & 0x7f));
    v >>= 7;
  }
  out[n++] = (unsigned char)v;
  return n;
}

/* a literal header field without indexing, new name, neither string Huffman-coded
 * (RFC 7541 6.2.2); the name is lowercased, as HTTP/2 requires */
static size_t hpack_literal(unsigned char *out, const char *name, size_t nlen, const char *value, size_t vlen) {
  size_t n = 0;
  out[n++] = 0x00;
  n += hpack_int(out + n, 0, 7, nlen);
  for (size_t i = 0; i < nlen; i++) out[n++] = (unsigned char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
  n += hpack_int(out + n, 0, 7, vlen);
  memcpy(out + n, value, vlen);
  return n + vlen;
}

static size_t h2_frame_head(unsigned char *out, size_t len, int type, int flags, uint32_t stream) {
  out[0] = (unsigned char)(len >> 16), out[1] = (unsigned char)(len >> 8), out[2] = (unsigned char)len;
  out[3] = (unsigned char)type, out[4] = (unsigned char)flags;
  out[5] = (unsigned char)(stream >> 24 & 0x7f), out[6] = (unsigned char)(stream >> 16);
  out[7] = (unsigned char)(stream >> 8), out[8] = (unsigned char)stream;
  return 9;
}

/* what a client sends first: the preface, SETTINGS (no server push), the request */
static void h2_build(const char *method, const char *path, const char **headers, int n_headers) {
  unsigned char block[3500];
  size_t b = 0, n = 0;
  b += hpack_literal(block + b, ":method", 7, method, strlen(method));
  b += hpack_literal(block + b, ":scheme", 7, "https", 5);
  b += hpack_literal(block + b, ":authority", 10, "bench.test", 10);
  b += hpack_literal(block + b, ":path", 5, path, strlen(path));
  for (int i = 0; i < n_headers; i++) {
    const char *colon = strchr(headers[i], ':');
    if (!colon || colon == headers[i]) die("a header is Name: value");
    const char *v = colon + 1;
    while (*v == ' ') v++;
    if (b + (size_t)(colon - headers[i]) + strlen(v) + 16 > sizeof block) die("request too long");
    b += hpack_literal(block + b, headers[i], (size_t)(colon - headers[i]), v, strlen(v));
  }
  memcpy(h2_start, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
  n = 24;
  n += h2_frame_head(h2_start + n, 6, 0x4, 0, 0); /* SETTINGS: ENABLE_PUSH = 0 */
  static const unsigned char no_push[6] = {0, 2, 0, 0, 0, 0};
  memcpy(h2_start + n, no_push, 6);
  n += 6;
  n += h2_frame_head(h2_start + n, b, 0x1, 0x4 | 0x1, 1); /* HEADERS, END_HEADERS | END_STREAM */
  memcpy(h2_start + n, block, b);
  h2_start_len = n + b;
}

/* whether a response's header block starts with a 2xx :status: an indexed
 * static entry (8 is 200, 9 is 204, 10 is 206) or a literal on name index 8
 * whose value's first character is '2' (plain, or Huffman's 5-bit 00010) */
static int h2_status_2xx(const unsigned char *p, size_t len) {
  if (len < 1) return 0;
  if (p[0] >= 0x88 && p[0] <= 0x8a) return 1;
  if ((p[0] == 0x48 || p[0] == 0x08 || p[0] == 0x18) && len >= 3)
    return (p[1] & 0x80) ? (p[2] >> 3) == 0x02 : p[2] == '2';
  return 0;
}

/* The answer to stream 1 read to its end, SETTINGS acknowledged both ways:
 * 1, or 0 on a GOAWAY, RST_STREAM, closed connection or protocol surprise. */
static int h2_exchange(SSL *s, size_t *bytes) {
  if (SSL_write(s, h2_start, (int)h2_start_len) != (int)h2_start_len) return 0;
  static _Thread_local unsigned char buf[65536];
  size_t got = 0, total = 0;
  int ended = 0, acked = 0;
  while (!ended || !acked) {
    int n = SSL_read(s, buf + got, (int)(sizeof buf - got));
    if (n <= 0) return 0;
    got += (size_t)n;
    total += (size_t)n;
    size_t off = 0;
    while (got - off >= 9) {
      const unsigned char *f = buf + off;
      size_t len = (size_t)f[0] << 16 | (size_t)f[1] << 8 | f[2];
      int type = f[3], flags = f[4];
      uint32_t stream = (uint32_t)(f[5] & 0x7f) << 24 | (uint32_t)f[6] << 16 | (uint32_t)f[7] << 8 | f[8];
      if (len > sizeof buf - 9) return 0; /* larger than the 16 KB we allow by default */
      if (got - off < 9 + len) break;
      const unsigned char *payload = f + 9;
      if (type == 0x4 && (flags & 0x1)) {
        acked = 1;
      } else if (type == 0x4) {
        unsigned char ack[9];
        h2_frame_head(ack, 0, 0x4, 0x1, 0);
        if (SSL_write(s, ack, 9) != 9) return 0;
      } else if (type == 0x6 && !(flags & 0x1) && len == 8) { /* PING: answered */
        unsigned char pong[17];
        h2_frame_head(pong, 8, 0x6, 0x1, 0);
        memcpy(pong + 9, payload, 8);
        if (SSL_write(s, pong, 17) != 17) return 0;
      } else if (type == 0x7 || (type == 0x3 && stream == 1)) { /* GOAWAY, RST_STREAM */
        return 0;
      } else if (type == 0x1 && stream == 1) {
        size_t skip = 0, pad = 0;
        if (flags & 0x8) pad = len ? payload[0] : 0, skip = 1; /* PADDED */
        if (flags & 0x20) skip += 5;                             /* PRIORITY */
        if (skip + pad > len) return 0;
        /* the first HEADERS of the stream carries :status (a trailer block would not) */
        if (!ended && !h2_status_2xx(payload + skip, len - skip - pad)) atomic_fetch_add(&h2_not_2xx, 1);
        if (flags & 0x1) ended = 1;
      } else if (type == 0x0 && stream == 1 && (flags & 0x1)) {
        ended = 1;
      }
      off += 9 + len;
    }
    memmove(buf, buf + off, got - off);
    got -= off;
  }
  *bytes = total;
  return 1;
}

/* One TLS connection with its request sent and its answer read: the SSL, or
 * NULL (counted). *bytes: the answer's size. */
static SSL *one(size_t *bytes) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    atomic_fetch_add(&err_connect, 1);
    return NULL;
  }
  int one_ = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_, sizeof one_);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    atomic_fetch_add(&err_connect, 1);
    close(fd);
    return NULL;
  }
  SSL *s = SSL_new(ctx);
  SSL_set_fd(s, fd);
  SSL_set_tlsext_host_name(s, "bench.test");
  if (h2) {
    const unsigned char *proto = NULL;
    unsigned proto_len = 0;
    int ok = SSL_connect(s) == 1, is_h2 = 0;
    if (ok) {
      SSL_get0_alpn_selected(s, &proto, &proto_len);
      is_h2 = proto_len == 2 && memcmp(proto, "h2", 2) == 0;
      if (!is_h2) fprintf(stderr, "tlsclient: the server did not select h2 (ALPN)\n");
    }
    if (is_h2 && h2_exchange(s, bytes)) return s;
    ERR_clear_error();
    atomic_fetch_add(is_h2 ? &err_read : &err_connect, 1);
    SSL_free(s);
    close(fd);
    return NULL;
  }
  if (SSL_connect(s) != 1 || SSL_write(s, request, (int)request_len) != (int)request_len) {
    ERR_clear_error();
    atomic_fetch_add(&err_connect, 1);
    SSL_free(s);
    close(fd);
    return NULL;
  }
  /* the answer: a head, then Content-Length bytes (none without one) */
  char buf[16384];
  size_t got = 0, want = 0;
  int have_head = 0;
  for (;;) {
    int n = SSL_read(s, buf + got, (int)(sizeof buf - got));
    if (n <= 0) break;
    got += (size_t)n;
    if (!have_head) {
      buf[got < sizeof buf ? got : sizeof buf - 1] = 0;
      char *end = strstr(buf, "\r\n\r\n");
      if (!end) continue;
      have_head = 1;
      char *cl = strcasestr(buf, "\r\ncontent-length:");
      want = (size_t)(end + 4 - buf) + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
      if (strncmp(buf, "HTTP/1.1 2", 10) != 0) atomic_fetch_add(&err_status, 1);
    }
    if (have_head && got >= want) break;
    if (got == sizeof buf) got = 0, want -= sizeof buf; /* a big body: count, do not keep */
  }
  if (!have_head || got < want) {
    ERR_clear_error();
    atomic_fetch_add(&err_read, 1);
    SSL_free(s);
    close(fd);
    return NULL;
  }
  *bytes = want;
  return s;
}

static void *rate_thread(void *arg) {
  (void)arg;
  while (now() < deadline) {
    double t0 = now();
    size_t bytes = 0;
    SSL *s = one(&bytes);
    if (!s) continue;
    int fd = SSL_get_fd(s);
    SSL_free(s); /* no close_notify: a client done with its connection just closes */
    close(fd);
    atomic_fetch_add(&n_requests, 1);
    atomic_fetch_add(&n_bytes, (long)bytes);
    long i = atomic_fetch_add(&n_samples, 1);
    if (i < MAX_SAMPLES) samples[i] = (uint32_t)((now() - t0) * 1e6);
  }
  return NULL;
}

/* -hold: threads taking the next connection to open until all are, or one fails */
#define HOLD_THREADS 4
static SSL **held;
static long n_hold;
static atomic_long hold_next, hold_failed; /* hold_failed: the failed one's number (from 1) */
static int hold_errno;

static void *hold_thread(void *arg) {
  (void)arg;
  for (;;) {
    long i = atomic_fetch_add(&hold_next, 1);
    if (i >= n_hold || atomic_load(&hold_failed)) return NULL;
    size_t bytes;
    held[i] = one(&bytes);
    if (!held[i]) {
      long zero = 0;
      if (atomic_compare_exchange_strong(&hold_failed, &zero, i + 1)) hold_errno = errno;
      return NULL;
    }
  }
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int conns = 1, hold = 0;
  double secs = 5;
  const char *method = "GET", *url = NULL, *headers[MAX_HEADERS];
  int n_headers = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-c") && i + 1 < argc) conns = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-d") && i + 1 < argc) secs = atof(argv[++i]);
    else if (!strcmp(argv[i], "-hold") && i + 1 < argc) hold = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-h2")) h2 = 1;
    else if (!strcmp(argv[i], "-m") && i + 1 < argc) method = argv[++i];
    else if (!strcmp(argv[i], "-H") && i + 1 < argc && n_headers < MAX_HEADERS) headers[n_headers++] = argv[++i];
    else if (!strncmp(argv[i], "https://", 8)) url = argv[i];
    else die("usage: tlsclient -c N -d SECONDS | -hold N [-h2] [-m METHOD] [-H HEADER]... https://127.0.0.1:PORT/PATH");
  }
  char host[64];
  int port = 0, off = 0;
  if (!url || sscanf(url, "https://%63[0-9.]:%d%n", host, &port, &off) < 2) die("expected https://IP:PORT/PATH");
  const char *path = url[off] ? url + off : "/";
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("bad address");
  int n = snprintf(request, sizeof request, "%s %s HTTP/1.1\r\nHost: bench.test\r\n", method, path);
  for (int i = 0; i < n_headers; i++) n += snprintf(request + n, sizeof request - (size_t)n, "%s\r\n", headers[i]);
  n += snprintf(request + n, sizeof request - (size_t)n, "\r\n");
  if (n >= (int)sizeof request) die("request too long");
  request_len = (size_t)n;
  if (h2) h2_build(method, path, headers, n_headers);

  ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) die("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); /* every handshake a full one */
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  if (h2 && SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2", 3) != 0) die("ALPN");

  if (hold > 0) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)hold + 64) {
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
    }
    held = calloc((size_t)hold, sizeof *held);
    if (!held) die("out of memory");
    n_hold = hold;
    /* a few threads open them (one after another, a 2-core machine under load took
     * 43 s for 9,000 HTTP/2 ones: long enough to meet a server's idle timeout) */
    pthread_t th[HOLD_THREADS];
    int nt = hold < HOLD_THREADS ? hold : HOLD_THREADS;
    for (int i = 0; i < nt; i++) pthread_create(&th[i], NULL, hold_thread, NULL);
    for (int i = 0; i < nt; i++) pthread_join(th[i], NULL);
    if (atomic_load(&hold_failed)) {
      fprintf(stderr, "tlsclient: connection %ld failed (%s)\n", atomic_load(&hold_failed), strerror(hold_errno));
      return 1;
    }
    if (atomic_load(&h2_not_2xx)) printf("NOT2XX %ld\n", atomic_load(&h2_not_2xx));
    printf("HELD %d\n", hold);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {
    }
    return 0;
  }

  samples = calloc(MAX_SAMPLES, sizeof *samples);
  pthread_t *th = calloc((size_t)conns, sizeof *th);
  if (!samples || !th || conns < 1) die("bad -c, or out of memory");
  double t0 = now();
  deadline = t0 + secs;
  for (int i = 0; i < conns; i++) pthread_create(&th[i], NULL, rate_thread, NULL);
  for (int i = 0; i < conns; i++) pthread_join(th[i], NULL);
  double took = now() - t0;
  long ns = atomic_load(&n_samples);
  if (ns > MAX_SAMPLES) ns = MAX_SAMPLES;
  qsort(samples, (size_t)ns, sizeof *samples, cmp_u32);
  double p50 = ns ? samples[ns / 2] : 0, p99 = ns ? samples[(long)(ns * 0.99)] : 0;
  printf("BENCH requests=%ld duration_us=%.0f bytes=%ld p50_us=%.1f p99_us=%.1f mean_us=0 err_connect=%ld "
         "err_read=%ld err_write=0 err_status=%ld err_timeout=0\n",
         atomic_load(&n_requests), took * 1e6, atomic_load(&n_bytes), p50, p99, atomic_load(&err_connect),
         atomic_load(&err_read), atomic_load(&err_status));
  return 0;
}
