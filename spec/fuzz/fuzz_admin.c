/* libFuzzer target: the admin API's listener. The input is what a client
 * sends on one connection to it: bytes -> llhttp (URL, Host, Authorization,
 * Content-Length, the body) -> the Host and token checks -> the query
 * string's decoding -> the endpoints (the console's files, /healthz,
 * /metrics, /cache and its purges, /refused, /explain with the plugin run
 * for real, /reload refused, /tenants over a Redis that is down). The admin
 * API runs on the harness's loop and two workers on threads of their own,
 * as the server runs them (fuzz_main.h); each input is written on a fresh
 * connection, whole or in pieces as the input picks (fuzz_gateway.h), the
 * write side shut, and the loop run until the admin API closes the
 * connection; then once more on another, a byte at a time.
 *
 * One input in four (by a hash of it) runs without admin.token, when the
 * admin API answers only to loopback names.
 *
 * Invariants, over what the admin API wrote back:
 * - it never crashes (ASan, UBSan), always closes the connection, and lets
 *   go of it (a request cut short gets no answer);
 * - an answer is one HTTP/1.1 response: a status line, header lines, one
 *   Content-Length, and exactly that many bytes after the head (none for
 *   a HEAD request);
 * - with the token configured, a request whose bytes do not hold it gets
 *   no 2xx but the console's files (public: they hold no data), byte for
 *   byte as the binary carries them;
 * - without it, a request naming a Host that is not a loopback name gets
 *   nothing but a 400 or a 403;
 * - the same bytes a byte at a time get the same status (a value the reads
 *   split is still one value). */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/log.h"
#include "fuzz_gateway.h"
#include "fuzz_main.h"
#include "fuzz_origins.h"

#define TOKEN "fuzz-admin-token-0123456789"

/* A route for each kind of decision explain reports on (a list, a pattern,
 * the plugin, a static answer, a host); Redis on a port nobody listens on. */
static const char config_src[] =
    "return {\n"
    "  listen = '127.0.0.1:1', workers = 2, log_level = 'error', access_log = false,\n"
    "  plugin_paths = { fuzz_dir },\n"
    "  admin = { listen = '127.0.0.1:1', token = '" TOKEN "' },\n"
    "  redis = { address = '127.0.0.1:1', channel = false },\n"
    "  routes = {\n"
    "    { name = 'list', prefix = '/list', upstream = 'echo', cors = {\n"
    "      origins = { 'https://app.example' }, origin_patterns = { 'https://*.tenant.example' },\n"
    "      methods = { 'GET', 'PUT' }, headers = { 'X-Req' }, credentials = true, max_age = 60 } },\n"
    "    { name = 'plugin', prefix = '/plugin', upstream = 'echo', cors = { plugin = 'fz', methods = { 'GET', 'PUT' } } },\n"
    "    { name = 'static', prefix = '/static', static = { status = 404, body = 'nope' },\n"
    "      cors = { origins = { 'https://app.example' } } },\n"
    "    { name = 'host', host = '*.api.example', prefix = '/', upstream = 'echo', cors = { origins = '*' } },\n"
    "  },\n"
    "}\n";

extern const char cg_console_html[], cg_console_js[], cg_console_css[];
extern const size_t cg_console_html_len, cg_console_js_len, cg_console_css_len;

static cg_config_t *cfg;
static char *token;
static uv_handle_t *listener;
static struct sockaddr_in admin_addr;
enum { OUT_CAP = 1 << 20 }; /* an answer is far smaller */
enum { BYTEWISE_MAX = 512 };  /* a turn of the loop a byte: longer inputs would slow every run */
static char *out, *out2;
static int verbose; /* CORSGATE_FUZZ_VERBOSE: each input's mode and status line */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void find_listener(uv_handle_t *h, void *arg) {
  (void)arg;
  if (h->type == UV_TCP) listener = h; /* before any connection: the only one */
}

static void count_conns(uv_handle_t *h, void *arg) {
  if (h->type == UV_TCP && h != listener) ++*(int *)arg;
}

static int admin_conns(void) {
  int n = 0;
  uv_walk(&fuzz_main_loop, count_conns, &n);
  return n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN);
  verbose = getenv("CORSGATE_FUZZ_VERBOSE") != NULL;
  cfg = fuzz_config("fuzz_admin", plugin_src, "%s", config_src);
  cg_log_set_level(CG_LOG_ERROR);
  token = cfg->admin_token;
  ((struct sockaddr_in *)&cfg->admin_addr)->sin_port = 0; /* any free port */
  fuzz_main_start(cfg);
  uv_walk(&fuzz_main_loop, find_listener, NULL);
  int len = sizeof admin_addr;
  if (!listener || uv_tcp_getsockname((uv_tcp_t *)listener, (struct sockaddr *)&admin_addr, &len) != 0) abort();
  out = malloc(OUT_CAP);
  out2 = malloc(OUT_CAP);
  return 0;
}

/* --- what the request said (as far as the checks need it) ------------------- */

/* The request as llhttp reads it: the parser the admin API uses, so the two
 * agree on where a head ends and what its lines are (HTTP/0.9 requests, lone
 * CRs, folded lines); what the admin API makes of them is checked against
 * this, not against its own code. */
typedef struct {
  int head;         /* HEAD, its head whole (a 400 before that cannot know) */
  int foreign_host; /* some Host header names no loopback address */
  int in_host;
  char host[256];
  size_t host_len;
} request_t;

/* localhost, 127.D.D.D (digits and dots) or [::1], a port after a colon or not:
 * looser than the admin API's own check, never stricter. */
static int loopback_name(const char *v, size_t n) {
  while (n && (*v == ' ' || *v == '\t')) v++, n--;
  while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
  if (n >= 5 && memcmp(v, "[::1]", 5) == 0) return n == 5 || v[5] == ':';
  const char *colon = memchr(v, ':', n);
  size_t hl = colon ? (size_t)(colon - v) : n;
  if (hl == 9 && strncasecmp(v, "localhost", 9) == 0) return 1;
  if (hl < 5 || memcmp(v, "127.", 4) != 0) return 0;
  for (size_t i = 0; i < hl; i++)
    if (!isdigit((unsigned char)v[i]) && v[i] != '.') return 0;
  return 1;
}

static int on_req_head(llhttp_t *p) {
  ((request_t *)p->data)->head = p->method == HTTP_HEAD;
  return 0;
}

static int on_req_field(llhttp_t *p, const char *at, size_t len) {
  request_t *r = p->data;
  r->in_host = len == 4 && strncasecmp(at, "host", 4) == 0;
  r->host_len = 0;
  return 0;
}

static int on_req_value(llhttp_t *p, const char *at, size_t len) {
  request_t *r = p->data;
  if (!r->in_host) return 0;
  if (r->host_len + len > sizeof r->host) {
    r->foreign_host = 1; /* no loopback name is that long */
    return 0;
  }
  memcpy(r->host + r->host_len, at, len);
  r->host_len += len;
  return 0;
}

static int on_req_value_done(llhttp_t *p) {
  request_t *r = p->data;
  /* (an empty one names nothing: no page sends it) */
  if (r->in_host && r->host_len && !loopback_name(r->host, r->host_len)) r->foreign_host = 1;
  r->in_host = 0;
  return 0;
}

static int on_req_end(llhttp_t *p) { return HPE_PAUSED; } /* the admin API reads one request */

static void read_request(const uint8_t *in, size_t n, request_t *r) {
  static llhttp_settings_t s;
  if (!s.on_headers_complete) {
    llhttp_settings_init(&s);
    s.on_headers_complete = on_req_head;
    s.on_header_field = on_req_field;
    s.on_header_value = on_req_value;
    s.on_header_value_complete = on_req_value_done;
    s.on_message_complete = on_req_end;
  }
  llhttp_t p;
  llhttp_init(&p, HTTP_REQUEST, &s);
  memset(r, 0, sizeof *r);
  p.data = r;
  llhttp_execute(&p, (const char *)in, n);
}

static int console_file(const char *b, size_t n) {
  return (n == cg_console_html_len && memcmp(b, cg_console_html, n) == 0) ||
         (n == cg_console_js_len && memcmp(b, cg_console_js, n) == 0) ||
         (n == cg_console_css_len && memcmp(b, cg_console_css, n) == 0);
}

/* --- the answer ------------------------------------------------------------------ */

static void check_answer(const char *buf, size_t len, const uint8_t *in, size_t in_len, int open) {
  if (len == 0) return; /* closed without a word: a request cut short */
  request_t req, *r = &req;
  read_request(in, in_len, r);
  CHECK(len >= 14 && memcmp(buf, "HTTP/1.1 ", 9) == 0 && isdigit((unsigned char)buf[9]) &&
            isdigit((unsigned char)buf[10]) && isdigit((unsigned char)buf[11]) && buf[12] == ' ',
        "not a status line: %.40s", buf);
  int status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
  const char *end = memmem(buf, len, "\r\n\r\n", 4);
  CHECK(end, "a head without its end:\n%.*s", (int)(len < 400 ? len : 400), buf);
  size_t head = (size_t)(end - buf) + 4;
  int n_cl = 0;
  unsigned long long cl = 0;
  for (const char *l = memchr(buf, '\n', head) + 1; l < end + 2;) {
    const char *le = memchr(l, '\r', (size_t)(end + 2 - l));
    CHECK(le && le[1] == '\n', "a header line without its CRLF:\n%.*s", (int)head, buf);
    size_t ll = (size_t)(le - l);
    const char *colon = memchr(l, ':', ll);
    CHECK(colon && colon > l && !memchr(l, '\n', ll), "not a header line: %.*s", (int)ll, l);
    if ((size_t)(colon - l) == 14 && strncasecmp(l, "content-length", 14) == 0) {
      n_cl++;
      char *e;
      cl = strtoull(colon + 1, &e, 10);
      CHECK(e == le, "Content-Length: %.*s", (int)(le - colon - 1), colon + 1);
    }
    l = le + 2;
  }
  CHECK(n_cl == 1, "%d Content-Length lines:\n%.*s", n_cl, (int)head, buf);
  size_t body = len - head;
  if (r->head)
    CHECK(body == 0, "%zu bytes of body answering HEAD:\n%.*s", body, (int)(len < 600 ? len : 600), buf);
  else
    CHECK(body == cl, "Content-Length: %llu with %zu bytes after the head:\n%.*s", cl, body, (int)head, buf);
  if (!open && status / 100 == 2 && !memmem(in, in_len, TOKEN, sizeof TOKEN - 1))
    CHECK(console_file(buf + head, body), "a %d without the token:\n%.*s", status, (int)(len < 600 ? len : 600),
          buf);
  if (open && r->foreign_host)
    CHECK(status == 400 || status == 403, "a %d without admin.token to a Host that is not loopback:\n%.*s", status,
          (int)(len < 600 ? len : 600), buf);
}

/* One connection: data sent on it (in pieces or whole), the answer in out;
 * the admin API has let go of the connection when it returns. */
static size_t exchange(const uint8_t *data, size_t size, int pieces, char *out) {
  int err, fd = fuzz_connect_loop(&fuzz_main_loop, &admin_addr, &err);
  CHECK(fd >= 0, "connect: %s (%d admin connection(s) open)", strerror(err), admin_conns());
  /* closed with a reset: millions of inputs must not pile up in TIME_WAIT */
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  size_t got;
  int eof = fuzz_send(&fuzz_main_loop, fd, data, size, pieces, out, OUT_CAP, &got);
  CHECK(eof, "the admin API kept the connection open after %zu bytes in, %zu out", size, got);
  close(fd);
  for (int i = 0; i < 3000 && admin_conns() > 0; i++) {
    uv_run(&fuzz_main_loop, UV_RUN_NOWAIT);
    if (admin_conns() > 0) fuzz_wait(&fuzz_main_loop);
  }
  CHECK(admin_conns() == 0, "the admin API still holds %d connection(s) 3 s after the client reset it", admin_conns());
  return got;
}

static int status_of(const char *buf, size_t len) { return len >= 12 ? atoi(buf + 9) : 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* the mode, from the input so that a finding replays in it */
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 16777619u;
  int open = (h & 3) == 0;
  cfg->admin_token = open ? NULL : token; /* the admin API reads it at each request */
  size_t got = exchange(data, size, fuzz_pieces(data, size), out);
  if (verbose)
    fprintf(stderr, "%s, %s: %.*s\n", open ? "no token" : "token", fuzz_pieces(data, size) ? "in pieces" : "whole",
            (int)(memchr(out, '\r', got) ? (char *)memchr(out, '\r', got) - out : (ptrdiff_t)got), out);
  check_answer(out, got, data, size, open);
  /* The same bytes a byte at a time (or, past a few hundred, whole if they
   * went in pieces): where the reads split a request changes nothing of
   * its answer (a header's value in two reads is one value). The statuses
   * are compared: bodies count, time and Redis's state. */
  int again = size <= BYTEWISE_MAX ? 2 : fuzz_pieces(data, size) ? 0 : -1;
  if (again >= 0) {
    size_t got2 = exchange(data, size, again, out2);
    CHECK(status_of(out, got) == status_of(out2, got2), "answered %d %s, %d %s:\n%.*s\n--\n%.*s",
          status_of(out, got), fuzz_pieces(data, size) ? "in pieces" : "whole", status_of(out2, got2),
          again ? "a byte at a time" : "whole", (int)(got < 300 ? got : 300), out, (int)(got2 < 300 ? got2 : 300),
          out2);
  }
  return 0;
}
