#ifndef CG_FUZZ_GATEWAY_H
#define CG_FUZZ_GATEWAY_H
/* For the fuzz targets that drive a whole gateway worker (fuzz_request,
 * fuzz_h2): an invariant that names what it saw, and a client connection to
 * the worker's listener while the harness runs the worker's loop. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server/internal.h"

#define CHECK(cond, ...)                                                        \
  do {                                                                          \
    if (!(cond)) {                                                              \
      fprintf(stderr, "invariant failed: %s (line %d): ", #cond, __LINE__);    \
      fprintf(stderr, __VA_ARGS__);                                             \
      fputc('\n', stderr);                                                      \
      abort();                                                                  \
    }                                                                           \
  } while (0)

/* A non-blocking connection to addr, the worker's loop run until it is
 * accepted. */
static int fuzz_connect(cg_worker_t *w, const struct sockaddr_in *addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) abort();
  if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) != 0) {
    CHECK(errno == EINPROGRESS, "connect: %s", strerror(errno));
    int done = 0;
    for (int i = 0; i < 5000 && !done; i++) {
      uv_run(&w->loop, UV_RUN_NOWAIT);
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      done = poll(&p, 1, 1) == 1;
    }
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    CHECK(done && err == 0, "connect: %s (gateway: %d connection(s), accept waiting %d)",
          done ? strerror(err) : "timed out", w->n_conns, w->accept_waiting);
  }
  return fd;
}

#endif
