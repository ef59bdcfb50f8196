/* "The limit" of scripts/bench: one libuv loop and llhttp, a fixed 204 to
 * every request, no routing, no CORS, no logging. What one event loop on this
 * machine can answer; the other contenders are measured against it.
 *
 *   limit PORT */
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static const char RESPONSE[] = "HTTP/1.1 204 No Content\r\nServer: limit\r\n\r\n";

typedef struct {
  uv_tcp_t tcp;
  llhttp_t parser;
  int answers; /* responses owed for the bytes just parsed (pipelining) */
} conn_t;

static llhttp_settings_t settings;
static uv_loop_t *loop;
static char rbuf[65536];

static void on_close(uv_handle_t *h) { free(h->data); }

/* SIGINT/SIGTERM end the loop so that main returns: under valgrind
 * (scripts/bench --instructions) that is when callgrind writes its counts. */
static void on_signal(uv_signal_t *s, int signum) {
  (void)signum;
  uv_stop(s->loop);
}

static void on_written(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

static int on_message_complete(llhttp_t *p) {
  ((conn_t *)p->data)->answers++;
  return 0;
}

static void answer(conn_t *c) {
  /* one write for every response this read asked for */
  static char out[sizeof RESPONSE * 64];
  size_t n = 0, len = sizeof RESPONSE - 1;
  while (c->answers > 0 && n + len <= sizeof out) {
    memcpy(out + n, RESPONSE, len);
    n += len;
    c->answers--;
  }
  uv_buf_t buf = uv_buf_init(out, (unsigned)n);
  int w = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
  if (w < 0) w = 0;
  if ((size_t)w < n) {
    uv_write_t *req = malloc(sizeof *req + n - (size_t)w);
    char *copy = (char *)(req + 1);
    memcpy(copy, out + w, n - (size_t)w);
    buf = uv_buf_init(copy, (unsigned)(n - (size_t)w));
    if (uv_write(req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0) free(req);
  }
  if (c->answers > 0) answer(c);
}

static void on_alloc(uv_handle_t *h, size_t s, uv_buf_t *buf) {
  (void)h;
  (void)s;
  *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  conn_t *c = s->data;
  if (n < 0) {
    uv_close((uv_handle_t *)s, on_close);
    return;
  }
  if (n == 0) return;
  if (llhttp_execute(&c->parser, buf->base, (size_t)n) != HPE_OK) {
    uv_close((uv_handle_t *)s, on_close);
    return;
  }
  if (c->answers) answer(c);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  conn_t *c = calloc(1, sizeof *c);
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_close);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  llhttp_init(&c->parser, HTTP_REQUEST, &settings);
  c->parser.data = c;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: limit PORT\n");
    return 2;
  }
  loop = uv_default_loop();
  llhttp_settings_init(&settings);
  settings.on_message_complete = on_message_complete;
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
  uv_tcp_init(loop, &server);
  if (uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0) != 0 ||
      uv_listen((uv_stream_t *)&server, 4096, on_connection) != 0) {
    fprintf(stderr, "limit: cannot listen on port %s\n", argv[1]);
    return 1;
  }
  uv_signal_t sigint, sigterm;
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_init(loop, &sigterm);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}
