#include "util/diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cg_diag_init(cg_diag_t *d) { memset(d, 0, sizeof *d); }

void cg_diag_free(cg_diag_t *d) {
  for (int i = 0; i < d->count; i++) free(d->items[i].text);
  free(d->items);
  memset(d, 0, sizeof *d);
}

void cg_diag_add(cg_diag_t *d, cg_diag_level_t level, const char *path, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (d->count == d->cap) {
    int cap = d->cap ? d->cap * 2 : 8;
    cg_diag_item_t *items = realloc(d->items, (size_t)cap * sizeof *items);
    if (!items) return; /* out of memory: the count below still refuses the config */
    d->items = items;
    d->cap = cap;
  }
  size_t n = (path ? strlen(path) : 0) + strlen(msg) + 3;
  char *text = malloc(n);
  if (text) {
    if (path && *path)
      snprintf(text, n, "%s: %s", path, msg);
    else
      snprintf(text, n, "%s", msg);
    d->items[d->count].level = level;
    d->items[d->count].text = text;
    d->count++;
  }
  if (level == CG_DIAG_ERROR)
    d->errors++;
  else
    d->warnings++;
}
