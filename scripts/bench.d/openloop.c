/* Open-loop latency for scripts/bench: requests go out on a fixed schedule
 * (RATE per second, evenly spaced), whatever the server's answers do, and each
 * latency is counted from the moment the request was due, not from when a
 * connection was free to send it. wrk waits for an answer before it sends the
 * next request on a connection, so at saturation its percentiles describe the
 * dance of two event loops more than the server; at a fixed rate below
 * saturation they describe what a client of the server waits.
 *
 *   openloop -r RATE -d SECONDS [-w WARMUP] [-c CONNS] [-m METHOD] [-H 'Name: value']...
 *            [-b BODY_BYTES] http://127.0.0.1:PORT/PATH
 *
 * Prints one line: OPENLOOP rate=.. sent=.. answered=.. errors=.. non2xx=..
 * p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. queued_max=..
 * (latencies of the requests due after the warm-up). A request due while every
 * connection is busy waits in a queue, and the wait counts. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct conn {
  int fd;
  llhttp_t parser;
  uint64_t due;     /* when the request in flight was due (ns) */
  size_t sent;      /* bytes of the request written so far */
  int busy, done, dead;
  struct conn *next_free;
} conn_t;

static char *req;
static size_t req_len;
static conn_t *free_list;
static uint64_t *queue; /* due times of requests waiting for a connection */
static size_t q_head, q_len, q_cap, q_max;
static uint64_t *lat;
static size_t n_lat, lat_cap;
static uint64_t warm_end, sent, answered, errors, non2xx;
static int ep, alive;

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "openloop: %s: %s\n", what, strerror(errno));
  exit(2);
}

static int on_complete(llhttp_t *p) {
  conn_t *c = p->data;
  if (p->status_code < 200 || p->status_code >= 300) non2xx++;
  c->done = 1;
  return HPE_PAUSED; /* one answer at a time: the next is for the next request */
}

static llhttp_settings_t settings;

static void watch(conn_t *c, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
}

static void drop(conn_t *c) {
  errors++;
  alive--;
  c->dead = 1;
  c->busy = 0;
  close(c->fd);
}

static void push_out(conn_t *c) {
  while (c->sent < req_len) {
    ssize_t w = write(c->fd, req + c->sent, req_len - c->sent);
    if (w < 0 && errno == EAGAIN) {
      watch(c, EPOLLIN | EPOLLOUT);
      return;
    }
    if (w <= 0) {
      drop(c);
      return;
    }
    c->sent += (size_t)w;
  }
  watch(c, EPOLLIN);
}

static void start(conn_t *c, uint64_t due) {
  c->due = due;
  c->sent = 0;
  c->busy = 1;
  c->done = 0;
  sent++;
  push_out(c);
}

static void dispatch(uint64_t due) {
  if (free_list) {
    conn_t *c = free_list;
    free_list = c->next_free;
    start(c, due);
    return;
  }
  if (q_len == q_cap) {
    fprintf(stderr, "openloop: more than %zu requests waiting for a connection\n", q_cap);
    exit(2);
  }
  queue[(q_head + q_len++) % q_cap] = due;
  if (q_len > q_max) q_max = q_len;
}

static void answered_one(conn_t *c, uint64_t t) {
  answered++;
  if (c->due >= warm_end && n_lat < lat_cap) lat[n_lat++] = t - c->due;
  c->busy = 0;
  if (q_len) {
    uint64_t due = queue[q_head];
    q_head = (q_head + 1) % q_cap;
    q_len--;
    start(c, due);
  } else {
    c->next_free = free_list;
    free_list = c;
  }
}

static void on_readable(conn_t *c) {
  static char buf[1 << 16];
  for (;;) {
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0 || !c->busy) { /* closed, failed, or bytes nobody asked for */
      drop(c);
      return;
    }
    const char *p = buf, *end = buf + n;
    while (p < end) {
      llhttp_errno_t e = llhttp_execute(&c->parser, p, (size_t)(end - p));
      if (e == HPE_PAUSED) {
        p = llhttp_get_error_pos(&c->parser);
        llhttp_resume(&c->parser);
      } else if (e != HPE_OK) {
        drop(c);
        return;
      } else {
        p = end;
      }
      if (c->done) {
        if (p < end) { /* bytes after the answer: nobody asked for them */
          drop(c);
          return;
        }
        answered_one(c, now_ns());
      }
    }
    if ((size_t)n < sizeof buf) return;
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct_us(double q) {
  if (!n_lat) return 0;
  size_t i = (size_t)(q * (double)n_lat);
  if (i >= n_lat) i = n_lat - 1;
  return (double)lat[i] / 1000.0;
}

int main(int argc, char **argv) {
  double rate = 0, secs = 0, warm = 1;
  int conns = 50, opt;
  const char *method = "GET";
  long body = 0;
  char headers[8192] = "";
  size_t hlen = 0;
  while ((opt = getopt(argc, argv, "r:d:w:c:m:H:b:")) != -1) {
    switch (opt) {
    case 'r': rate = atof(optarg); break;
    case 'd': secs = atof(optarg); break;
    case 'w': warm = atof(optarg); break;
    case 'c': conns = atoi(optarg); break;
    case 'm': method = optarg; break;
    case 'b': body = atol(optarg); break;
    case 'H': {
      int w = snprintf(headers + hlen, sizeof headers - hlen, "%s\r\n", optarg);
      if (w < 0 || (size_t)w >= sizeof headers - hlen) return fprintf(stderr, "openloop: headers too long\n"), 2;
      hlen += (size_t)w;
      break;
    }
    default: return fprintf(stderr, "usage: openloop -r RATE -d SECONDS [-w WARMUP] [-c CONNS] [-m METHOD] "
                                     "[-H header]... [-b BYTES] http://127.0.0.1:PORT/PATH\n"), 2;
    }
  }
  int port;
  char path[2048];
  if (optind != argc - 1 || rate <= 0 || secs <= 0 || conns < 1 || body < 0 ||
      sscanf(argv[optind], "http://127.0.0.1:%d%2047s", &port, path) != 2 || path[0] != '/')
    return fprintf(stderr, "openloop: needs -r, -d and one http://127.0.0.1:PORT/PATH\n"), 2;

  char head[12288], length[64] = "";
  if (body) snprintf(length, sizeof length, "Content-Length: %ld\r\n", body);
  int hl = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s%s\r\n", method, path, port, headers,
                    length);
  if (hl < 0 || (size_t)hl >= sizeof head) return fprintf(stderr, "openloop: request head too long\n"), 2;
  req_len = (size_t)hl + (size_t)body;
  req = malloc(req_len);
  memcpy(req, head, (size_t)hl);
  memset(req + hl, 'x', (size_t)body);

  prctl(PR_SET_TIMERSLACK, 1UL); /* wake when a request is due, not 50 us later */
  llhttp_settings_init(&settings);
  settings.on_message_complete = on_complete;
  ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  conn_t *pool = calloc((size_t)conns, sizeof *pool);
  alive = conns;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < conns; i++) {
    conn_t *c = &pool[i];
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0) die("fcntl");
    llhttp_init(&c->parser, HTTP_RESPONSE, &settings);
    c->parser.data = c;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    c->next_free = free_list;
    free_list = c;
  }
  q_cap = (size_t)(rate * (secs + warm)) + 16;
  queue = malloc(q_cap * sizeof *queue);
  lat_cap = (size_t)(rate * (secs + 1)) + 16;
  lat = malloc(lat_cap * sizeof *lat);

  const uint64_t step = (uint64_t)(1e9 / rate), t0 = now_ns() + 1000000;
  const uint64_t end = t0 + (uint64_t)((warm + secs) * 1e9), give_up = end + 5000000000ull;
  warm_end = t0 + (uint64_t)(warm * 1e9);
  uint64_t next = t0;
  struct epoll_event evs[256];
  for (;;) {
    uint64_t t = now_ns();
    while (next <= t && next < end) {
      dispatch(next);
      next += step;
    }
    if (next >= end && answered + errors >= sent && !q_len) break;
    if (t >= give_up) break;
    uint64_t until = next < end ? next : give_up;
    struct timespec to = {.tv_sec = 0, .tv_nsec = 0};
    if (until > t) {
      to.tv_sec = (time_t)((until - t) / 1000000000u);
      to.tv_nsec = (long)((until - t) % 1000000000u);
    }
    int n = epoll_pwait2(ep, evs, 256, &to, NULL);
    if (n < 0 && errno != EINTR) die("epoll_pwait2");
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (c->dead) continue;
      if ((evs[i].events & EPOLLOUT) && c->busy && c->sent < req_len) push_out(c);
      if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c);
    }
    if (!alive) {
      fprintf(stderr, "openloop: every connection was closed\n");
      break;
    }
  }
  qsort(lat, n_lat, sizeof *lat, cmp_u64);
  printf("OPENLOOP rate=%.0f sent=%llu answered=%llu errors=%llu non2xx=%llu measured=%zu p50_us=%.1f p90_us=%.1f "
         "p99_us=%.1f p999_us=%.1f max_us=%.1f queued_max=%zu\n",
         rate, (unsigned long long)sent, (unsigned long long)answered, (unsigned long long)errors,
         (unsigned long long)non2xx, n_lat, pct_us(0.50), pct_us(0.90), pct_us(0.99), pct_us(0.999),
         n_lat ? (double)lat[n_lat - 1] / 1000.0 : 0.0, q_max);
  return errors || answered < sent ? 1 : 0;
}
