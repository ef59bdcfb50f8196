/* Checking an authority against RFC 3986's grammar, byte by byte: it decides
 * the route, and goes upstream as Host. Every request pays for it once, so a
 * name's bytes are one table lookup each. */
#include "util/authority.h"

#include <string.h>

#include "util/ascii.h"

static int hexdig(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* unreserved and sub-delims: ALPHA DIGIT -._~!$&'()*+,;= */
static inline int reg_name_char(unsigned char c) {
  static const uint64_t set[4] = {0x2bff7fd200000000ull, 0x47fffffe87fffffeull, 0, 0};
  return cg_ascii_in(set, c);
}

/* The end of the host part, or NULL when the host is malformed. */
static const char *host_end(const char *v, size_t n) {
  const char *p = v, *e = v + n;
  if (p < e && *p == '[') {
    /* IPv6 or IPvFuture literal: hex digits, ':' and '.', or "v" forms */
    const char *close = memchr(p, ']', n);
    if (!close || close == p + 1) return NULL;
    for (const char *q = p + 1; q < close; q++)
      if (!hexdig((unsigned char)*q) && *q != ':' && *q != '.' && *q != 'v' && *q != 'V') return NULL;
    return close + 1;
  }
  for (; p < e; p++) {
    if (reg_name_char((unsigned char)*p)) continue;
    if (*p == ':') break;
    if (*p != '%' || e - p < 3 || !hexdig((unsigned char)p[1]) || !hexdig((unsigned char)p[2])) return NULL;
    p += 2;
  }
  return p;
}

int cg_authority_parse(const char *v, size_t n) {
  const char *e = v + n, *p = host_end(v, n);
  if (!p) return -1;
  int host = (int)(p - v);
  if (p == e) return host;
  if (*p++ != ':') return -1;
  unsigned port = 0;
  for (int digits = 0; p < e; p++, digits++) {
    if (*p < '0' || *p > '9' || digits == 5) return -1;
    port = port * 10 + (unsigned)(*p - '0');
  }
  return port <= 65535 ? host : -1;
}
