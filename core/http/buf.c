/* cg_buf: a head rendered in caller storage, moved to the heap only when
 * it outgrows it. */
#include "http/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static void reserve(cg_buf_t *b, size_t n) {
  if (b->len + n <= b->cap) return;
  size_t cap = b->cap ? b->cap : 512;
  while (cap < b->len + n) cap *= 2;
  char *p = b->borrowed ? malloc(cap) : realloc(b->data, cap);
  if (!p) abort(); /* a head is a few KB: failing here means the process is already lost */
  if (b->borrowed && b->len) memcpy(p, b->data, b->len);
  b->borrowed = 0;
  b->data = p;
  b->cap = cap;
}

void cg_buf_addu(cg_buf_t *b, uint64_t v) {
  char tmp[24];
  int n = 0;
  do tmp[sizeof tmp - 1 - n++] = (char)('0' + v % 10);
  while ((v /= 10) && n < (int)sizeof tmp);
  cg_buf_add(b, tmp + sizeof tmp - n, (size_t)n);
}

void cg_buf_add_grow(cg_buf_t *b, const void *p, size_t n) {
  reserve(b, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

void cg_buf_addf(cg_buf_t *b, const char *fmt, ...) {
  va_list ap;
  size_t room = b->cap - b->len;
  va_start(ap, fmt);
  /* one pass when it fits, which is nearly always */
  int n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? room : 0, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (b->data && (size_t)n < room) {
    b->len += (size_t)n;
    return;
  }
  reserve(b, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void cg_buf_free(cg_buf_t *b) {
  if (!b->borrowed) free(b->data);
  b->borrowed = 0;
  b->data = NULL;
  b->len = b->cap = 0;
}

