#ifndef CG_FUZZ_GATEWAY_H
#define CG_FUZZ_GATEWAY_H
/* For the fuzz targets that drive a whole gateway (fuzz_request, fuzz_h2,
 * fuzz_admin, fuzz_fleet): an invariant that names what it saw, their config
 * with its plugin, and a client connection to a listener on a loop the
 * harness runs, with the bytes of an input sent on it. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "lua/host.h"
#include "server/internal.h"
#include "util/diag.h"

#define CHECK(cond, ...)                                                        \
  do {                                                                          \
    if (!(cond)) {                                                              \
      fprintf(stderr, "invariant failed: %s (line %d): ", #cond, __LINE__);    \
      fprintf(stderr, __VA_ARGS__);                                             \
      fputc('\n', stderr);                                                      \
      abort();                                                                  \
    }                                                                           \
  } while (0)

/* The config fmt makes (a Lua chunk; the arguments fill it in). With a
 * plugin (its source; NULL: none), the chunk finds it as fz in the folder
 * named by the Lua local fuzz_dir (for plugin_paths), a new one under /tmp.
 * Its problems are printed, and a refused config aborts. */
static inline __attribute__((format(printf, 3, 4))) cg_config_t *fuzz_config(const char *name, const char *plugin,
                                                                          const char *fmt, ...) {
  char dir[] = "/tmp/corsgate-fuzz.XXXXXX";
  if (!mkdtemp(dir)) abort();
  if (plugin) {
    char path[256];
    snprintf(path, sizeof path, "%s/fz.lua", dir);
    FILE *f = fopen(path, "w");
    if (!f) abort();
    fputs(plugin, f);
    fclose(f);
  }
  char src[8192];
  int n = snprintf(src, sizeof src, "local fuzz_dir = '%s'\n", dir);
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(src + n, sizeof src - (size_t)n, fmt, ap);
  va_end(ap);
  if ((size_t)n >= sizeof src) abort();
  cg_diag_t d;
  cg_diag_init(&d);
  cg_config_t *cfg = cg_config_load_buffer(name, src, (size_t)n, &cg_lua_plugin_finder, &d);
  for (int i = 0; i < d.count; i++) fprintf(stderr, "config: %s\n", d.items[i].text);
  if (!cfg) abort();
  cg_diag_free(&d);
  return cfg;
}

/* Waits up to 1 ms for the loop's sockets. */
static inline void fuzz_wait(uv_loop_t *loop) {
  struct pollfd p = {.fd = uv_backend_fd(loop), .events = POLLIN};
  poll(&p, 1, 1);
}

/* A non-blocking connection to addr, loop run until it is accepted; -1
 * when it was not. */
static inline int fuzz_connect_loop(uv_loop_t *loop, const struct sockaddr_in *addr, int *err) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) abort();
  *err = 0;
  if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) == 0) return fd;
  CHECK(errno == EINPROGRESS, "connect: %s", strerror(errno));
  int done = 0;
  for (int i = 0; i < 5000 && !done; i++) {
    uv_run(loop, UV_RUN_NOWAIT);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    done = poll(&p, 1, 1) == 1;
  }
  socklen_t el = sizeof *err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &el);
  if (done && *err == 0) return fd;
  if (!done) *err = ETIMEDOUT;
  close(fd);
  return -1;
}

/* The same to a worker's listener, its loop run by the harness. */
static inline int fuzz_connect(cg_worker_t *w, const struct sockaddr_in *addr) {
  int err, fd = fuzz_connect_loop(&w->loop, addr, &err);
  CHECK(fd >= 0, "connect: %s (gateway: %d connection(s), accept waiting %d)", strerror(err), w->n_conns,
        w->accept_waiting);
  return fd;
}

/* Three inputs in four go out in pieces of 1-64 bytes (fuzz_send), the
 * loop running between pieces, so a head is split across the gateway's
 * reads at places the input decides (the head store carries strings across
 * reads). The choice and the piece sizes come from the input itself, so a
 * finding replays the same. */
static inline uint64_t fuzz_input_hash(const uint8_t *data, size_t size) {
  uint64_t rnd = 0x9e3779b97f4a7c15u ^ size;
  for (size_t i = 0; i < size && i < 64; i++) rnd = (rnd ^ data[i]) * 0x100000001b3u;
  return rnd;
}

static inline int fuzz_pieces(const uint8_t *data, size_t size) {
  return ((fuzz_input_hash(data, size) >> 40) & 3) != 0;
}

/* Writes data on fd (pieces: 0 whole, 1 in pieces of 1-64 bytes, 2 a byte
 * at a time) and reads what comes back into out
 * (cap bytes; past that it starts over, so checks see the tail only),
 * running loop between turns; the write side is shut once all is sent.
 * Returns 1 when the peer closed, 0 when it kept the connection open through
 * 2000 idle turns. */
static inline int fuzz_send(uv_loop_t *loop, int fd, const uint8_t *data, size_t size, int pieces, char *out,
                            size_t cap, size_t *got) {
  size_t sent = 0;
  int shut = 0, eof = 0;
  uint64_t rnd = fuzz_input_hash(data, size);
  *got = 0;
  /* bounded: the gateway has no reason to keep a closed-for-writing client
   * past its responses */
  for (int idle = 0; idle < 2000 && !eof;) {
    uv_run(loop, UV_RUN_NOWAIT);
    int progress = 0;
    if (sent < size) {
      size_t want = size - sent;
      if (pieces) {
        rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
        size_t piece = pieces == 2 ? 1 : 1 + (size_t)(rnd >> 58);
        if (piece < want) want = piece;
      }
      ssize_t n = write(fd, data + sent, want);
      if (n > 0) sent += (size_t)n, progress = 1;
      else if (n < 0 && errno != EAGAIN) sent = size; /* reset by the gateway: it has answered */
    } else if (!shut) {
      shutdown(fd, SHUT_WR);
      shut = 1;
    }
    for (;;) {
      if (*got == cap) *got = 0;
      ssize_t n = read(fd, out + *got, cap - *got);
      if (n > 0) {
        *got += (size_t)n;
        progress = 1;
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) eof = 1;
      break;
    }
    if (progress) idle = 0;
    else idle++, fuzz_wait(loop);
  }
  return eof;
}

#endif
