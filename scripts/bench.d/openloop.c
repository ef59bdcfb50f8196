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
 * Prints one line: OPENLOOP rate=.. sent=.. answered=.. unanswered=.. errors=..
 * closed_idle=.. non2xx=.. measured=.. p50_us=.. p90_us=.. p99_us=.. p999_us=..
 * max_us=.. queued_max=.. lag_max_us=..
 * A latency runs from when the request was due to when the kernel received the
 * last segment of its answer. Percentiles are over the requests due after the
 * warm-up. A request due while every connection is busy waits in a queue, and the
 * wait counts, up to the arrival of the answer that freed the connection. What
 * this client adds on its own, sending late although a connection was free (it
 * woke late) or taking a while to see that one was, does not count; lag_max_us
 * says how late it was at worst. A request lost, or still unanswered at the end, counts with the time
 * it had waited by then (a lower bound). Exit status 1 when a request was lost. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

typedef struct conn {
  int fd;
  llhttp_t parser;
  uint64_t due;     /* when the request in flight was due (ns) */
  uint64_t done_at; /* when its answer was complete */
  uint64_t delay;   /* how much later than due this client itself sent it */
  size_t sent;      /* bytes of the request written so far */
  uint32_t watching;
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
static uint64_t warm_end, sent, answered, errors, closed_idle, non2xx, unanswered, lag_max;
static int ep, alive, in_flight;

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The kernel stamps each received segment (SO_TIMESTAMPNS, on the real-time
 * clock) as it arrives; on loopback that is the moment the server's write lands.
 * An answer counts from that stamp, so a late wake-up of this client, a few ms
 * at times on a VM, does not count as the server's. */
static int64_t real_to_mono; /* add to a real-time stamp to get CLOCK_MONOTONIC */

static void init_clocks(void) {
  struct timespec m, r;
  clock_gettime(CLOCK_MONOTONIC, &m);
  clock_gettime(CLOCK_REALTIME, &r);
  real_to_mono = ((int64_t)m.tv_sec - (int64_t)r.tv_sec) * 1000000000 + ((int64_t)m.tv_nsec - (int64_t)r.tv_nsec);
}

static void die(const char *what) {
  fprintf(stderr, "openloop: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void *must_alloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) die("malloc");
  return p;
}

static void record(uint64_t due, uint64_t t) {
  if (due >= warm_end && n_lat < lat_cap) lat[n_lat++] = t - due;
}

static int on_complete(llhttp_t *p) {
  conn_t *c = p->data;
  if (p->status_code < 200 || p->status_code >= 300) non2xx++;
  c->done = 1;
  return HPE_PAUSED; /* one answer at a time: the next is for the next request */
}

static llhttp_settings_t settings;

static void watch(conn_t *c, uint32_t events) {
  if (c->watching == events) return;
  struct epoll_event ev = {.events = events, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
  c->watching = events;
}

/* A connection that failed or was closed. Its request, if any, is lost: it is
 * counted as an error and with the time it had waited (a lower bound). */
static void drop(conn_t *c) {
  if (c->dead) return;
  if (c->busy) {
    errors++;
    in_flight--;
    record(c->due, now_ns());
  } else {
    closed_idle++;
  }
  c->dead = 1;
  c->busy = 0;
  alive--;
  close(c->fd);
}

static conn_t *take_free(void) {
  while (free_list) {
    conn_t *c = free_list;
    free_list = c->next_free;
    if (!c->dead) return c;
  }
  return NULL;
}

static void answered_one(conn_t *c);

static void push_out(conn_t *c) {
  while (c->sent < req_len) {
    ssize_t w = send(c->fd, req + c->sent, req_len - c->sent, MSG_NOSIGNAL);
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
  if (c->done) answered_one(c); /* the answer came before the whole body was out */
}

static void start(conn_t *c, uint64_t due) {
  c->due = due;
  c->sent = 0;
  c->busy = 1;
  c->done = 0;
  sent++;
  in_flight++;
  push_out(c);
}

static void dispatch(uint64_t due) {
  conn_t *c = take_free();
  if (c) {
    /* Late with a free connection: this client woke late (on a VM by up to a
     * few ms), which is no fault of the server, so the clock starts at the send. */
    uint64_t t = now_ns();
    c->delay = t - due;
    if (c->delay > lag_max) lag_max = c->delay;
    start(c, t);
    return;
  }
  if (q_len == q_cap) {
    fprintf(stderr, "openloop: more than %zu requests waiting for a connection\n", q_cap);
    exit(2);
  }
  queue[(q_head + q_len++) % q_cap] = due;
  if (q_len > q_max) q_max = q_len;
}

/* The answer is complete and the request fully written: the connection is free
 * for the next request, queued or to come. */
static void answered_one(conn_t *c) {
  answered++;
  in_flight--;
  record(c->due, c->done_at);
  c->busy = 0;
  c->done = 0;
  if (q_len) {
    uint64_t due = queue[q_head], t = now_ns();
    q_head = (q_head + 1) % q_cap;
    q_len--;
    /* It waited for the server from when it was due until this connection would
     * have been free had this client sent its last request on time; the rest is
     * this client's own delay. */
    uint64_t free_at = c->done_at - c->delay, ready = free_at > due ? free_at : due;
    c->delay = t > ready ? t - ready : 0;
    if (c->delay > lag_max) lag_max = c->delay;
    start(c, due + c->delay);
  } else {
    c->next_free = free_list;
    free_list = c;
  }
}

static void on_readable(conn_t *c) {
  static char buf[1 << 16];
  union {
    char space[CMSG_SPACE(sizeof(struct timespec))];
    struct cmsghdr align;
  } ctl;
  while (!c->dead) {
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space, .msg_controllen = sizeof ctl.space};
    ssize_t n = recvmsg(c->fd, &m, 0);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0 || !c->busy || c->done) { /* closed, failed, or bytes nobody asked for */
      drop(c);
      return;
    }
    llhttp_errno_t e = llhttp_execute(&c->parser, buf, (size_t)n);
    const char *stop = buf + n;
    if (e == HPE_PAUSED) {
      stop = llhttp_get_error_pos(&c->parser);
      llhttp_resume(&c->parser);
    } else if (e != HPE_OK) {
      drop(c);
      return;
    }
    if (c->done) {
      if (stop < buf + n) { /* bytes after the answer: nobody asked for them */
        drop(c);
        return;
      }
      c->done_at = 0;
      for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS) {
          struct timespec ts;
          memcpy(&ts, CMSG_DATA(h), sizeof ts);
          c->done_at = (uint64_t)((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + real_to_mono);
        }
      uint64_t t = now_ns();
      if (!c->done_at || c->done_at > t || c->done_at < c->due) c->done_at = t; /* no stamp, or the clock stepped */
      if (c->sent == req_len) answered_one(c);
      /* else: push_out finishes the body first, then frees the connection */
    }
    if ((size_t)n < sizeof buf) return;
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct_us(double q) { /* nearest rank */
  if (!n_lat) return 0;
  size_t i = (size_t)ceil(q * (double)n_lat);
  i = i ? i - 1 : 0;
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
  if (optind != argc - 1 || !isfinite(rate) || !(rate >= 1 && rate <= 1e7) || !(secs > 0 && secs <= 3600) ||
      !(warm >= 0 && warm <= 3600) || conns < 1 || conns > 100000 || body < 0 || body > (1L << 30) ||
      sscanf(argv[optind], "http://127.0.0.1:%d%2047s", &port, path) != 2 || path[0] != '/')
    return fprintf(stderr, "openloop: needs -r 1..1e7, -d up to 3600 and one http://127.0.0.1:PORT/PATH\n"), 2;

  char head[12288], length[64] = "";
  if (body) snprintf(length, sizeof length, "Content-Length: %ld\r\n", body);
  int hl = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s%s\r\n", method, path, port, headers,
                    length);
  if (hl < 0 || (size_t)hl >= sizeof head) return fprintf(stderr, "openloop: request head too long\n"), 2;
  req_len = (size_t)hl + (size_t)body;
  req = must_alloc(req_len);
  memcpy(req, head, (size_t)hl);
  memset(req + hl, 'x', (size_t)body);

  init_clocks();
  prctl(PR_SET_TIMERSLACK, 1UL); /* wake when a request is due, not 50 us later */
  llhttp_settings_init(&settings);
  settings.on_message_complete = on_complete;
  ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  conn_t *pool = calloc((size_t)conns, sizeof *pool);
  if (!pool) die("calloc");
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < conns; i++) {
    conn_t *c = &pool[i];
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0) die("SO_TIMESTAMPNS");
    if (fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0) die("fcntl");
    llhttp_init(&c->parser, HTTP_RESPONSE, &settings);
    c->parser.data = c;
    c->watching = EPOLLIN;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    c->next_free = free_list;
    free_list = c;
  }
  alive = conns;
  const uint64_t total = (uint64_t)ceil(rate * (warm + secs)); /* requests in the whole run */
  q_cap = (size_t)total + 16;
  queue = must_alloc(q_cap * sizeof *queue);
  lat_cap = (size_t)total + 16;
  lat = must_alloc(lat_cap * sizeof *lat);

  /* Each due time from its index, so rounding does not add up over the run. */
  const uint64_t t0 = now_ns() + 1000000, give_up_after = 5000000000ull;
  warm_end = t0 + (uint64_t)(warm * 1e9);
  uint64_t k = 0, next = t0, end_at = 0;
  struct epoll_event evs[256];
  for (;;) {
    uint64_t t = now_ns();
    while (k < total && next <= t) {
      dispatch(next);
      k++;
      next = t0 + (uint64_t)((double)k * 1e9 / rate);
    }
    if (k == total) {
      if (!end_at) end_at = t;
      if (!in_flight && !q_len) break;
      if (t - end_at >= give_up_after) break;
    }
    if (!alive) {
      fprintf(stderr, "openloop: every connection was closed\n");
      break;
    }
    uint64_t until = k < total ? next : end_at + give_up_after;
    struct timespec to = {.tv_sec = 0, .tv_nsec = 0};
    if (until > t) {
      to.tv_sec = (time_t)((until - t) / 1000000000u);
      to.tv_nsec = (long)((until - t) % 1000000000u);
    }
    int n = epoll_pwait2(ep, evs, 256, &to, NULL);
    if (n < 0 && errno != EINTR) die("epoll_pwait2");
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (!c->dead && (evs[i].events & EPOLLOUT) && c->busy && c->sent < req_len) push_out(c);
      if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c);
    }
  }
  /* What never got an answer counts with the time it had waited (a lower bound). */
  uint64_t t_end = now_ns();
  for (int i = 0; i < conns; i++)
    if (pool[i].busy && !pool[i].dead) {
      unanswered++;
      record(pool[i].due, t_end);
    }
  for (; q_len; q_len--, q_head = (q_head + 1) % q_cap) {
    unanswered++;
    record(queue[q_head], t_end);
  }
  unanswered += total - k; /* never even due: the run was cut short */
  qsort(lat, n_lat, sizeof *lat, cmp_u64);
  printf("OPENLOOP rate=%.0f sent=%llu answered=%llu unanswered=%llu errors=%llu closed_idle=%llu non2xx=%llu "
         "measured=%zu p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f queued_max=%zu lag_max_us=%.1f\n",
         rate, (unsigned long long)sent, (unsigned long long)answered, (unsigned long long)unanswered,
         (unsigned long long)errors, (unsigned long long)closed_idle, (unsigned long long)non2xx, n_lat, pct_us(0.50),
         pct_us(0.90), pct_us(0.99), pct_us(0.999), n_lat ? (double)lat[n_lat - 1] / 1000.0 : 0.0, q_max,
         (double)lag_max / 1000.0);
  return errors || unanswered ? 1 : 0;
}
