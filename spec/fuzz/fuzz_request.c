/* libFuzzer target: the whole request path. The input is what a client sends
 * on one connection: bytes -> llhttp -> limits -> route -> CORS (static
 * policies and a Lua plugin) -> response head (and the built-in echo, static
 * and dead-upstream responses). One worker runs in this process on a loopback
 * listener; each input is written on a fresh connection (most of them in
 * small pieces, one gateway read each), the write side shut, and the loop run
 * until the gateway closes the connection.
 *
 * Invariants, over everything the gateway wrote back:
 * - it never crashes (ASan, UBSan) and always closes the connection;
 * - the output is empty or starts with a status line;
 * - every Access-Control-Allow-Origin is "*" or an origin the config allows
 *   (listed, matching the pattern, or allowed by the plugin): an origin that
 *   was not validated is never reflected;
 * - an echoed origin goes with "Vary: Origin" in the same head, and
 *   credentials never go with "*".
 * (The echo upstream's JSON escapes control characters, so a CRLF in the
 * output always belongs to a head.) */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

static const char config_src[] =
    "return {\n"
    "  listen = '127.0.0.1:1', workers = 1, log_level = 'error', access_log = false,\n"
    "  plugin_paths = { fuzz_dir },\n"
    "  limits = { max_head_bytes = 2048, max_headers = 20, max_body_bytes = 512, max_connections = 64 },\n"
    "  upstreams = { dead = { targets = { '127.0.0.1:1' } } },\n"
    "  routes = {\n"
    "    { name = 'list', prefix = '/list', upstream = 'echo', cors = {\n"
    "      origins = { 'https://app.example', 'http://localhost:3000' }, origin_patterns = { 'https://*.tenant.example' },\n"
    "      methods = { 'GET', 'PUT', 'DELETE' }, headers = { 'X-Req', 'Content-Type' },\n"
    "      expose_headers = { 'X-Total' }, credentials = true, max_age = 60, private_network = true } },\n"
    "    { name = 'star', prefix = '/star', upstream = 'echo', cors = { origins = '*', headers = '*' } },\n"
    "    { name = 'plugin', prefix = '/plugin', upstream = 'echo', cors = { plugin = 'fz', methods = { 'GET', 'PUT' } } },\n"
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
static char *out;
static size_t out_cap;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN);
  cg_config_t *cfg = fuzz_config("fuzz_request", plugin_src, "%s", config_src);
  cg_log_set_level(CG_LOG_ERROR);
  /* any free port: the kernel picks it at bind */
  ((struct sockaddr_in *)&cfg->listeners[0].addr)->sin_port = 0;
  /* the decisions through the store the workers share, as the server has them */
  worker.dstore = cg_dstore_new(cfg->cache.max_entries, cfg->cache.stale_limit_ms);
  if (!worker.dstore || cg_worker_init(&worker, 0, cfg) != 0) abort();
  socklen_t len = sizeof gw_addr;
  if (getsockname(worker.listeners[0].fd, (struct sockaddr *)&gw_addr, &len) != 0) abort();
  out_cap = 1 << 20;
  out = malloc(out_cap);
  return 0;
}

/* The head around position at: from the status line before it to the blank line after. */
static void head_around(const char *buf, size_t len, size_t at, size_t *start, size_t *end) {
  size_t s = at;
  while (s > 0 && !(memcmp(buf + s, "HTTP/1.", 7) == 0 && (s == 0 || buf[s - 1] == '\n'))) s--;
  size_t e = at;
  while (e + 4 <= len && memcmp(buf + e, "\r\n\r\n", 4) != 0) e++;
  *start = s;
  *end = e;
}

static void check_output(const char *buf, size_t len) {
  if (len == 0) return;
  CHECK(len >= 9 && memcmp(buf, "HTTP/1.1 ", 9) == 0, "output starts with %.20s", buf);
  static const char acao[] = "\r\naccess-control-allow-origin: ";
  size_t al = sizeof acao - 1;
  for (size_t i = 0; i + al <= len; i++) {
    if (strncasecmp(buf + i, acao, al) != 0) continue;
    size_t v = i + al, e = v;
    while (e < len && buf[e] != '\r') e++;
    size_t vn = e - v;
    int star = vn == 1 && buf[v] == '*';
    CHECK(star || allowed_origin(buf + v, vn), "Access-Control-Allow-Origin: %.*s", (int)vn, buf + v);
    size_t hs, he;
    head_around(buf, len, i, &hs, &he);
    int vary = 0, creds = 0;
    for (size_t j = hs; j + 2 < he; j++) {
      if (buf[j] != '\n') continue;
      const char *l = buf + j + 1;
      size_t ln = 0;
      while (j + 1 + ln < he && l[ln] != '\r') ln++;
      if (ln >= 5 && strncasecmp(l, "vary:", 5) == 0 && has_token(l + 5, ln - 5, "origin")) vary = 1;
      if (ln >= 33 && strncasecmp(l, "access-control-allow-credentials:", 33) == 0) creds = 1;
    }
    CHECK(star || vary, "an echoed origin without Vary: Origin:\n%.*s", (int)(he - hs), buf + hs);
    CHECK(!(star && creds), "credentials with *:\n%.*s", (int)(he - hs), buf + hs);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = fuzz_connect(&worker, &gw_addr);
  /* closed with a reset: millions of inputs must not pile up in TIME_WAIT
   * until connect runs out of local ports */
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  size_t got;
  int eof = fuzz_send(&worker.loop, fd, data, size, fuzz_pieces(data, size), out, out_cap, &got);
  CHECK(eof, "the gateway kept the connection open after %zu bytes in, %zu out", size, got);
  close(fd);
  check_output(out, got);
  /* let the gateway finish with the connection before the next input */
  for (int i = 0; i < 3000 && worker.n_conns > 0; i++) {
    uv_run(&worker.loop, UV_RUN_NOWAIT);
    if (worker.n_conns > 0) fuzz_wait(&worker.loop);
  }
  CHECK(worker.n_conns == 0, "the gateway still holds %d connection(s) 3 s after the client reset it", worker.n_conns);
  return 0;
}
