/* Checking an authority against RFC 3986's grammar, byte by byte: it decides
 * the route, and goes upstream as Host. Every request pays for it once, so a
 * name's bytes are one table lookup each. */
#include "util/authority.h"

#include <arpa/inet.h>
#include <netinet/in.h>
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

/* IP-literal = "[" ( IPv6address / IPvFuture ) "]" (RFC 3986 3.2.2), the
 * inside given. IPv6 is checked by inet_pton (which takes exactly RFC 4291's
 * text forms); IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ).
 * A zone ("%25eth0", RFC 6874) is refused: it means nothing past this host. */
static int ip_literal(const char *p, size_t n) {
  if (n > 0 && (p[0] == 'v' || p[0] == 'V')) {
    size_t i = 1;
    while (i < n && hexdig((unsigned char)p[i])) i++;
    if (i == 1 || i + 1 >= n || p[i] != '.') return 0;
    for (i++; i < n; i++)
      if (!reg_name_char((unsigned char)p[i]) && p[i] != ':') return 0;
    return 1;
  }
  char text[INET6_ADDRSTRLEN];
  struct in6_addr a;
  if (n == 0 || n >= sizeof text) return 0;
  memcpy(text, p, n);
  text[n] = 0;
  return inet_pton(AF_INET6, text, &a) == 1;
}

/* The end of the host part, or NULL when the host is malformed. */
static const char *host_end(const char *v, size_t n) {
  const char *p = v, *e = v + n;
  if (p < e && *p == '[') {
    const char *close = memchr(p, ']', n);
    if (!close || !ip_literal(p + 1, (size_t)(close - p - 1))) return NULL;
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
