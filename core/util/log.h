#ifndef CG_UTIL_LOG_H
#define CG_UTIL_LOG_H
/* Error log with levels, and the access log. Each line is formatted into one
 * buffer and written with a single write(2), so lines from several worker
 * threads never interleave. */
#include <stdarg.h>
#include <stddef.h>

typedef enum { CG_LOG_ERROR = 0, CG_LOG_WARN = 1, CG_LOG_INFO = 2, CG_LOG_DEBUG = 3 } cg_log_level_t;

extern int cg_log_level_current;

void cg_log_set_level(int level);
int cg_log_level_parse(const char *s); /* -1 when unknown */
void cg_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The access log: one line, no level prefix. */
/* "2026-01-02T03:04:05.678Z" into buf; returns its length. */
size_t cg_log_stamp(char *buf, size_t cap);
/* Writes line (which ends with its newline) as it is, in one write. */
void cg_log_line(const char *line, size_t n);
void cg_log_access(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define cg_log(level, ...)                                          \
  do {                                                              \
    if ((level) <= cg_log_level_current) cg_log_write((level), __VA_ARGS__); \
  } while (0)
#define cg_log_error(...) cg_log(CG_LOG_ERROR, __VA_ARGS__)
#define cg_log_warn(...) cg_log(CG_LOG_WARN, __VA_ARGS__)
#define cg_log_info(...) cg_log(CG_LOG_INFO, __VA_ARGS__)
#define cg_log_debug(...) cg_log(CG_LOG_DEBUG, __VA_ARGS__)

#endif
