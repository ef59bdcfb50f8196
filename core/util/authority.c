/* Checking an authority against RFC 3986's grammar, byte by byte: it decides
 * the route, and goes upstream as Host. */
#include "util/authority.h"

#include <string.h>

#include "util/ascii.h"

static int hexdig(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* unreserved and sub-delims (the host characters without ':' '[' ']' '%') */
static int reg_name_char(unsigned char c) {
  return cg_ascii_host_char(c) && c != ':' && c != '[' && c != ']' && c != '%';
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
  while (p < e && *p != ':') {
    if (*p == '%') {
      if (e - p < 3 || !hexdig((unsigned char)p[1]) || !hexdig((unsigned char)p[2])) return NULL;
      p += 3;
      continue;
    }
    if (!reg_name_char((unsigned char)*p)) return NULL;
    p++;
  }
  return p;
}

int cg_authority_valid(const char *v, size_t n) {
  const char *e = v + n, *p = host_end(v, n);
  if (!p) return 0;
  if (p == e) return 1;
  if (*p++ != ':') return 0;
  unsigned port = 0;
  for (int digits = 0; p < e; p++, digits++) {
    if (*p < '0' || *p > '9' || digits == 5) return 0;
    port = port * 10 + (unsigned)(*p - '0');
  }
  return port <= 65535;
}

size_t cg_authority_host_len(const char *v, size_t n) {
  const char *p = host_end(v, n);
  return p ? (size_t)(p - v) : n;
}
