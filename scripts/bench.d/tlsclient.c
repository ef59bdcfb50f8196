/* scripts/bench's TLS client, for what wrk cannot measure (its TLS connect
 * stalls under a new connection per request):
 *
 *   tlsclient -c N -d SECONDS [-m METHOD] [-H "Name: value"]... https://127.0.0.1:PORT/PATH
 *     full handshakes: N threads, each making a new TLS connection per request
 *     (no session resumption), one request, the answer read, then closed; prints
 *     the line scripts/bench reads from wrk (BENCH requests=... p50_us=...), the
 *     latency of a request being from connect() to the end of its answer
 *   tlsclient -hold N [-m METHOD] [-H ...] URL
 *     idle keep-alive connections: opens N, one request on each, keeps them all
 *     open, prints "HELD N" and waits for its stdin to close (or a signal)
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
    else if (!strcmp(argv[i], "-m") && i + 1 < argc) method = argv[++i];
    else if (!strcmp(argv[i], "-H") && i + 1 < argc && n_headers < MAX_HEADERS) headers[n_headers++] = argv[++i];
    else if (!strncmp(argv[i], "https://", 8)) url = argv[i];
    else die("usage: tlsclient -c N -d SECONDS | -hold N [-m METHOD] [-H HEADER]... https://127.0.0.1:PORT/PATH");
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

  ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) die("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); /* every handshake a full one */
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);

  if (hold > 0) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)hold + 64) {
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
    }
    SSL **held = calloc((size_t)hold, sizeof *held);
    if (!held) die("out of memory");
    for (int i = 0; i < hold; i++) {
      size_t bytes;
      held[i] = one(&bytes);
      if (!held[i]) {
        fprintf(stderr, "tlsclient: connection %d failed (%s)\n", i + 1, strerror(errno));
        return 1;
      }
    }
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
