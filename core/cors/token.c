/* RFC 9110 tokens and comma-separated lists: the grammar of methods, header
 * names and the list-valued request headers a preflight carries. */
#include "cors/cors_internal.h"

#include <string.h>

int cg_tok_valid(const char *s, size_t len) {
  if (len == 0) return 0;
  for (size_t i = 0; i < len; i++)
    if (!cg_tok_is_tchar((unsigned char)s[i])) return 0;
  return 1;
}

int cg_tok_forbidden_method(const char *m, size_t len) {
  return cg_tok_ieq(m, len, "CONNECT", 7) || cg_tok_ieq(m, len, "TRACE", 5) || cg_tok_ieq(m, len, "TRACK", 5);
}

void cg_list_init(cg_list_iter_t *it, const char *s, size_t len) {
  it->p = s;
  it->end = s ? s + len : s;
  it->done = (s == NULL);
}

int cg_list_next(cg_list_iter_t *it, const char **elem, size_t *elen) {
  if (it->done) return 0;
  const char *start = it->p;
  const char *comma = it->p;
  while (comma < it->end && *comma != ',') comma++;
  const char *stop = comma;
  while (start < stop && cg_tok_is_ows((unsigned char)*start)) start++;
  while (stop > start && cg_tok_is_ows((unsigned char)stop[-1])) stop--;
  *elem = start;
  *elen = (size_t)(stop - start);
  if (comma < it->end)
    it->p = comma + 1;
  else
    it->done = 1;
  return 1;
}
