/* Query strings; see query.h. */
#include "util/query.h"

#include <stdlib.h>
#include <string.h>

static void url_decode(char *s) {
  char *o = s;
  for (char *p = s; *p; p++) {
    if (*p == '+') {
      *o++ = ' ';
    } else if (*p == '%' && p[1] && p[2]) {
      char hex[3] = {p[1], p[2], 0};
      char *end;
      long v = strtol(hex, &end, 16);
      if (*end == 0 && v > 0) {
        *o++ = (char)v;
        p += 2;
      } else {
        *o++ = *p;
      }
    } else {
      *o++ = *p;
    }
  }
  *o = 0;
}

void cg_query_parse(char *q, cg_query_t *out) {
  out->n = 0;
  while (q && *q && out->n < CG_QUERY_MAX) {
    char *amp = strchr(q, '&');
    if (amp) *amp = 0;
    char *eq = strchr(q, '=');
    if (eq) *eq = 0;
    url_decode(q);
    if (eq) url_decode(eq + 1);
    out->keys[out->n] = q;
    out->vals[out->n++] = eq ? eq + 1 : "";
    q = amp ? amp + 1 : NULL;
  }
}

const char *cg_query_get(const cg_query_t *q, const char *key) {
  for (int i = 0; i < q->n; i++)
    if (strcmp(q->keys[i], key) == 0) return q->vals[i];
  return NULL;
}
