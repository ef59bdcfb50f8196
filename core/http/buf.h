#ifndef CG_HTTP_BUF_H
#define CG_HTTP_BUF_H
/* A growable byte buffer heads are rendered into before one write. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct cg_buf {
  char *data;
  size_t len, cap;
  int borrowed; /* data is the caller's (stack) storage until the buffer grows */
} cg_buf_t;

/* A buffer starting in caller storage: no malloc for the common small case. */
#define CG_BUF_ON(storage) ((cg_buf_t){(storage), 0, sizeof(storage), 1})

void cg_buf_add_grow(cg_buf_t *b, const void *p, size_t n);
/* Inline when it fits (nearly always): a response head is a dozen of these. */
static inline void cg_buf_add(cg_buf_t *b, const void *p, size_t n) {
  if (n > b->cap - b->len) {
    cg_buf_add_grow(b, p, n);
    return;
  }
  if (n) memcpy(b->data + b->len, p, n); /* an empty value on a buffer not yet allocated: nothing to copy */
  b->len += n;
}
static inline void cg_buf_adds(cg_buf_t *b, const char *s) { cg_buf_add(b, s, strlen(s)); }
void cg_buf_addf(cg_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cg_buf_free(cg_buf_t *b);
void cg_buf_addu(cg_buf_t *b, uint64_t v);

#endif
