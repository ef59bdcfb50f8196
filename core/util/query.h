#ifndef CG_UTIL_QUERY_H
#define CG_UTIL_QUERY_H
/* A URL's query string (application/x-www-form-urlencoded): key=value pairs
 * split on '&' and percent-decoded ('+' is a space), in place. */

enum { CG_QUERY_MAX = 32 }; /* pairs kept; the rest are ignored */

typedef struct cg_query {
  char *keys[CG_QUERY_MAX], *vals[CG_QUERY_MAX];
  int n;
} cg_query_t;

/* Splits q (modified in place; NULL: none) into decoded pairs. A key without
 * '=' has the value "". %00 and malformed escapes are kept as written. */
void cg_query_parse(char *q, cg_query_t *out);
/* The first value of key, or NULL. */
const char *cg_query_get(const cg_query_t *q, const char *key);

#endif
