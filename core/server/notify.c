/* sd_notify(3) is a few lines: the socket's address comes from the
 * environment (a path, or "@name" in the abstract namespace), and the message
 * is sent in one datagram, so systemd reads it whole or not at all. The reload
 * status file is the other half of notify.h. */
#include "server/notify.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int cg_notify(const char *fmt, ...) {
  const char *path = getenv("NOTIFY_SOCKET");
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t n = path ? strlen(path) : 0;
  if (n < 2 || n >= sizeof sa.sun_path || (path[0] != '/' && path[0] != '@')) return -1;
  memcpy(sa.sun_path, path, n);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = 0; /* abstract: no NUL after the name */
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (len < 0 || (size_t)len >= sizeof msg) return -1;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  ssize_t sent = sendto(fd, msg, (size_t)len, MSG_NOSIGNAL, (struct sockaddr *)&sa,
                        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
  close(fd);
  return sent == len ? 0 : -1;
}

/* The first directory of $RUNTIME_DIRECTORY (systemd lists several with ':'). */
static int runtime_dir(const char *dir, char *out, size_t n) {
  if (!dir) dir = getenv("RUNTIME_DIRECTORY");
  if (!dir || !*dir) return -1;
  size_t len = strcspn(dir, ":");
  if (len + 1 > n) return -1;
  memcpy(out, dir, len);
  out[len] = 0;
  return 0;
}

void cg_notify_reload_status(unsigned n, const char *why) {
  char dir[4096], path[4200], tmp[4200], line[600];
  if (runtime_dir(NULL, dir, sizeof dir) < 0) return;
  size_t wl = why ? strlen(why) : 0;
  while (wl > 0 && (why[wl - 1] == '\n' || why[wl - 1] == ' ')) wl--;
  int len = snprintf(line, sizeof line, "%ld %u %s%.*s\n", (long)getpid(), n, why ? "refused: " : "ok",
                     (int)(wl > 500 ? 500 : wl), why ? why : "");
  if (len < 0) return;
  if ((size_t)len >= sizeof line) len = (int)sizeof line - 1;
  for (int i = 0; i < len - 1; i++)
    if (line[i] == '\n' || line[i] == '\r') line[i] = ';'; /* one line, however many problems */
  snprintf(path, sizeof path, "%s/reload", dir);
  snprintf(tmp, sizeof tmp, "%s/reload.%ld", dir, (long)getpid());
  /* written whole, then renamed: a reader never sees half a line */
  FILE *f = fopen(tmp, "w");
  if (!f) return;
  int ok = fwrite(line, 1, (size_t)len, f) == (size_t)len;
  ok &= fclose(f) == 0;
  if (!ok || rename(tmp, path) != 0) unlink(tmp);
}

/* The last outcome pid recorded: its number, and its text in msg. -1 when the
 * file is absent or another process's. */
static long read_status(const char *path, pid_t pid, char *msg, size_t n) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char line[600];
  long who = 0, num = -1;
  int off = 0;
  if (fgets(line, sizeof line, f) && sscanf(line, "%ld %ld %n", &who, &num, &off) >= 2 && who == (long)pid) {
    line[strcspn(line, "\n")] = 0;
    snprintf(msg, n, "%s", line + off);
  } else {
    num = -1;
  }
  fclose(f);
  return num;
}

int cg_notify_reload_request(pid_t pid, const char *dir_arg, double timeout, char *msg, size_t n) {
  char dir[4096], path[4200];
  if (runtime_dir(dir_arg, dir, sizeof dir) < 0) {
    snprintf(msg, n, "no status directory: run under systemd (RuntimeDirectory=) or give --dir");
    return -1;
  }
  snprintf(path, sizeof path, "%s/reload", dir);
  char seen[600] = "";
  long before = read_status(path, pid, seen, sizeof seen);
  if (kill(pid, SIGHUP) != 0) {
    snprintf(msg, n, "cannot signal process %ld: %s", (long)pid, strerror(errno));
    return -1;
  }
  struct timespec step = {0, 20 * 1000 * 1000};
  for (double waited = 0; waited < timeout; waited += 0.02) {
    long now = read_status(path, pid, seen, sizeof seen);
    if (now > before && (before >= 0 || now > 0)) {
      snprintf(msg, n, "%s", seen);
      return strncmp(seen, "ok", 2) == 0 ? 0 : 1;
    }
    if (kill(pid, 0) != 0 && errno == ESRCH) {
      snprintf(msg, n, "process %ld is gone", (long)pid);
      return -1;
    }
    nanosleep(&step, NULL);
  }
  snprintf(msg, n, "no answer from process %ld within %g s (is %s its RuntimeDirectory?)", (long)pid, timeout, dir);
  return -1;
}
