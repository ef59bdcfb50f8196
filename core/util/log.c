#include "util/log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int cg_log_level_current = CG_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void cg_log_set_level(int level) { cg_log_level_current = level; }

int cg_log_level_parse(const char *s) {
  for (int i = 0; i < 4; i++)
    if (strcmp(s, level_names[i]) == 0) return i;
  return -1;
}

static size_t stamp(char *buf, size_t cap) {
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
  n += (size_t)snprintf(buf + n, cap - n, ".%03dZ", (int)(tv.tv_usec / 1000));
  /* snprintf counts what it would have written: never more than buf holds */
  return n < cap ? n : (cap ? cap - 1 : 0);
}

static void emit(const char *prefix, const char *fmt, va_list ap) {
  char line[4096];
  size_t n = stamp(line, sizeof line);
  n += (size_t)snprintf(line + n, sizeof line - n, " %s", prefix);
  int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
  if (m < 0) return;
  n += (size_t)m;
  if (n > sizeof line - 2) n = sizeof line - 2;
  line[n++] = '\n';
  /* Best effort: a log line that cannot be written must not stop the request. */
  ssize_t r = write(STDERR_FILENO, line, n);
  (void)r;
}

void cg_log_write(int level, const char *fmt, ...) {
  char prefix[16];
  snprintf(prefix, sizeof prefix, "[%s] ", level_names[level & 3]);
  va_list ap;
  va_start(ap, fmt);
  emit(prefix, fmt, ap);
  va_end(ap);
}

size_t cg_log_stamp(char *buf, size_t cap) { return stamp(buf, cap); }

void cg_log_line(const char *line, size_t n) {
  ssize_t r = write(STDERR_FILENO, line, n);
  (void)r;
}

void cg_log_access(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  emit("", fmt, ap);
  va_end(ap);
}
