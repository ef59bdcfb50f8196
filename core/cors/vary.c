/* Merging our Vary tokens with the upstream's: one header, no repeated field
 * names (compared case-insensitively), and "*" -- which already means "varies
 * on everything" -- standing alone. */
#include "cors/cors_internal.h"

#include <string.h>

static int seen(const char *buf, size_t len, const char *tok, size_t tlen) {
  cg_list_iter_t it;
  const char *e;
  size_t elen;
  cg_list_init(&it, buf, len);
  while (len && cg_list_next(&it, &e, &elen))
    if (cg_tok_ieq(e, elen, tok, tlen)) return 1;
  return 0;
}

/* Returns 1 when tok is "*", else appends it unless present. */
static int add(char *buf, size_t cap, size_t *len, int *overflow, const char *tok, size_t tlen) {
  if (tlen == 0) return 0;
  if (tlen == 1 && tok[0] == '*') return 1;
  if (seen(buf, *len, tok, tlen)) return 0;
  size_t need = tlen + (*len ? 2 : 0);
  if (need > cap - *len) {
    *overflow = 1;
    return 0;
  }
  if (*len) {
    memcpy(buf + *len, ", ", 2);
    *len += 2;
  }
  memcpy(buf + *len, tok, tlen);
  *len += tlen;
  return 0;
}

int cg_cors_vary_merge(const char **values, const size_t *lens, int count, const char *ours, char *buf,
                       size_t buflen) {
  if ((count > 0 && (!values || !lens)) || (!buf && buflen)) return CG_CORS_E_INVALID;
  size_t len = 0;
  int star = 0, overflow = 0;
  cg_list_iter_t it;
  const char *tok;
  size_t tlen;
  for (int i = 0; i < count; i++) {
    if (!values[i]) continue;
    cg_list_init(&it, values[i], lens[i]);
    while (cg_list_next(&it, &tok, &tlen)) star |= add(buf, buflen, &len, &overflow, tok, tlen);
  }
  if (ours) {
    cg_list_init(&it, ours, strlen(ours));
    while (cg_list_next(&it, &tok, &tlen)) star |= add(buf, buflen, &len, &overflow, tok, tlen);
  }
  if (star) {
    if (buflen < 1) return CG_CORS_E_BUFFER;
    buf[0] = '*';
    return 1;
  }
  return overflow ? CG_CORS_E_BUFFER : (int)len;
}
