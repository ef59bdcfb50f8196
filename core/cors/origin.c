/* Parsing and normalizing one Origin value (RFC 6454 serialization as browsers
 * send it: scheme "://" host [":" port], or "null"). Everything else is
 * malformed: a malformed origin is never allowed and never echoed, so the parser
 * is strict rather than forgiving. */
#include "cors/cors_internal.h"

#include <string.h>

static int is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_hex(unsigned char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* Dotted quad with each part 0..255 and no leading zeros beyond "0" itself. */
static int parse_ipv4(const char *h, size_t n, int *first) {
  int parts = 0;
  size_t i = 0;
  while (i <= n) {
    size_t start = i;
    unsigned v = 0;
    while (i < n && is_digit((unsigned char)h[i]) && i - start < 4) v = v * 10 + (unsigned)(h[i++] - '0');
    size_t dl = i - start;
    if (dl == 0 || dl > 3 || v > 255 || (dl > 1 && h[start] == '0')) return 0;
    if (parts == 0) *first = (int)v;
    parts++;
    if (i == n) break;
    if (h[i] != '.') return 0;
    i++;
  }
  return parts == 4;
}

static int check_hostname(const char *h, size_t n, int *is_ip, int *first_octet) {
  size_t label_start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || h[i] == '.') {
      if (i == label_start) return 0; /* empty label, leading or trailing dot */
      label_start = i + 1;
      continue;
    }
    unsigned char c = (unsigned char)h[i];
    if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_') return 0;
  }
  /* The URL parser reads a name whose last label is numeric as IPv4, and browsers
   * serialize that as a dotted quad: anything else never comes from a browser. */
  size_t last = n;
  while (last > 0 && h[last - 1] != '.') last--;
  int numeric = 1;
  for (size_t i = last; i < n; i++)
    if (!is_digit((unsigned char)h[i])) numeric = 0;
  if (!numeric) return 1;
  if (!parse_ipv4(h, n, first_octet)) return 0;
  *is_ip = 1;
  return 1;
}

/* The first "://" (memmem's general search cost more than the whole rest of
 * the parse for a short origin). */
static const char *find_scheme_end(const char *s, size_t len) {
  const char *end = s + len;
  for (const char *c = memchr(s, ':', len); c; c = memchr(c + 1, ':', (size_t)(end - c - 1)))
    if (end - c >= 3 && c[1] == '/' && c[2] == '/') return c;
  return NULL;
}

static int ends_authority_or_host(char c) {
  return c == '/' || c == '?' || c == '#' || c == '@' || c == '[' || c == ']';
}

/* The shape nearly every browser sends: "http" or "https", "://", a lower-case
 * host name whose last label is not numeric, maybe a non-default port, all
 * already in normal form. One pass over the bytes answers it; anything else
 * (upper case, IPs, default ports, errors) returns 0 and takes the general
 * parser below, which gives the same answer for these (fuzz_origin compares
 * the two on every input). */
static int parse_canonical(const char *s, size_t len, cg_origin_t *out, char *norm_buf, size_t norm_len) {
  size_t slen;
  if (len > 8 && memcmp(s, "https://", 8) == 0) slen = 5;
  else if (len > 7 && memcmp(s, "http://", 7) == 0) slen = 4;
  else return 0;
  if (len > CG_CORS_ORIGIN_MAX || len > norm_len) return 0;
  const char *host = s + slen + 3, *end = s + len, *q = host;
  size_t label = 0;
  int label_numeric = 1;
  for (; q < end && *q != ':'; q++) {
    unsigned char c = (unsigned char)*q;
    if (c == '.') {
      if (label == 0) return 0;
      label = 0;
      label_numeric = 1;
      continue;
    }
    if ((c >= 'a' && c <= 'z') || c == '-' || c == '_') label_numeric = 0;
    else if (!(c >= '0' && c <= '9')) return 0;
    label++;
  }
  if (label == 0 || label_numeric) return 0; /* empty or trailing label, or what the URL parser reads as IPv4 */
  size_t hlen = (size_t)(q - host);
  long port = -1;
  if (q < end) {
    const char *d = ++q;
    if (d == end || *d == '0' || end - d > 5) return 0; /* no digits, or a leading zero normalization drops */
    port = 0;
    for (; q < end; q++) {
      if (*q < '0' || *q > '9') return 0;
      port = port * 10 + (*q - '0');
    }
    if (port > 65535 || port == (slen == 5 ? 443 : 80)) return 0;
  }
  memset(out, 0, sizeof *out);
  memcpy(norm_buf, s, len);
  out->port = (int)port;
  out->scheme = norm_buf;
  out->scheme_len = slen;
  out->host = norm_buf + slen + 3;
  out->host_len = hlen;
  out->norm = norm_buf;
  out->norm_len = len;
  const char *h = out->host;
  out->loopback = (hlen == 9 && memcmp(h, "localhost", 9) == 0) ||
                  (hlen > 10 && memcmp(h + hlen - 10, ".localhost", 10) == 0);
  return 1;
}

int cg_cors_origin_parse(const char *s, size_t len, cg_origin_t *out, char *norm_buf, size_t norm_len) {
  if (s && parse_canonical(s, len, out, norm_buf, norm_len)) return CG_ORIGIN_OK;
  return cg_cors_origin_parse_general(s, len, out, norm_buf, norm_len);
}

int cg_cors_origin_parse_general(const char *s, size_t len, cg_origin_t *out, char *norm_buf, size_t norm_len) {
  memset(out, 0, sizeof *out);
  out->port = -1;
  if (!s || len == 0) return CG_ORIGIN_E_EMPTY;
  if (len > CG_CORS_ORIGIN_MAX) return CG_ORIGIN_E_TOO_LONG;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c >= 0x7f) return CG_ORIGIN_E_BAD_CHAR;
  }
  if (len == 4 && memcmp(s, "null", 4) == 0) {
    if (norm_len < 4) return CG_ORIGIN_E_BUFFER;
    memcpy(norm_buf, "null", 4);
    out->is_null = 1;
    out->norm = norm_buf;
    out->norm_len = 4;
    return CG_ORIGIN_OK;
  }

  const char *sep = find_scheme_end(s, len);
  if (!sep) return CG_ORIGIN_E_NO_SCHEME;
  size_t slen = (size_t)(sep - s);
  for (size_t i = 0; i < slen; i++)
    if (ends_authority_or_host(s[i])) return CG_ORIGIN_E_NO_SCHEME; /* "a.com/x://" */
  if (slen == 0 || !is_alpha((unsigned char)s[0])) return CG_ORIGIN_E_BAD_SCHEME;
  for (size_t i = 1; i < slen; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') return CG_ORIGIN_E_BAD_SCHEME;
  }

  const char *auth = sep + 3, *end = s + len;
  const char *rest = auth;
  while (rest < end && *rest != '/' && *rest != '?' && *rest != '#') rest++;
  if (rest < end) {
    if (*rest == '?') return CG_ORIGIN_E_QUERY;
    if (*rest == '#') return CG_ORIGIN_E_FRAGMENT;
    if (rest + 1 == end) return CG_ORIGIN_E_TRAILING_SLASH;
    if (rest[1] == '?') return CG_ORIGIN_E_QUERY;
    if (rest[1] == '#') return CG_ORIGIN_E_FRAGMENT;
    return CG_ORIGIN_E_PATH;
  }
  if (memchr(auth, '@', (size_t)(rest - auth))) return CG_ORIGIN_E_USERINFO;

  const char *host = auth, *host_end, *port_at = NULL;
  int is_ip = 0, first_octet = -1, v6_loop = 0;
  if (host < rest && *host == '[') {
    const char *close = memchr(host, ']', (size_t)(rest - host));
    if (!close || close == host + 1) return CG_ORIGIN_E_BAD_HOST;
    int colons = 0;
    for (const char *q = host + 1; q < close; q++) {
      if (*q == ':')
        colons++;
      else if (!is_hex((unsigned char)*q) && *q != '.')
        return CG_ORIGIN_E_BAD_HOST;
    }
    if (colons < 2) return CG_ORIGIN_E_BAD_HOST;
    host_end = close + 1;
    if (host_end < rest) {
      if (*host_end != ':') return CG_ORIGIN_E_BAD_HOST;
      port_at = host_end + 1;
    }
    is_ip = 1;
    v6_loop = (close - host - 1 == 3 && memcmp(host + 1, "::1", 3) == 0);
  } else {
    host_end = memchr(host, ':', (size_t)(rest - host));
    if (host_end)
      port_at = host_end + 1;
    else
      host_end = rest;
    if (!check_hostname(host, (size_t)(host_end - host), &is_ip, &first_octet)) return CG_ORIGIN_E_BAD_HOST;
  }

  long port = -1;
  if (port_at) {
    if (port_at == rest) return CG_ORIGIN_E_BAD_PORT;
    port = 0;
    for (const char *q = port_at; q < rest; q++) {
      if (!is_digit((unsigned char)*q)) return CG_ORIGIN_E_BAD_PORT;
      port = port * 10 + (*q - '0');
      if (port > 65535) return CG_ORIGIN_E_BAD_PORT;
    }
  }

  /* Normalize: lower-case scheme and host, drop the scheme's default port. */
  size_t hlen = (size_t)(host_end - host);
  char tmp[CG_CORS_ORIGIN_MAX + 8];
  size_t n = 0;
  for (size_t i = 0; i < slen; i++) tmp[n++] = (char)cg_tok_lower((unsigned char)s[i]);
  int is_http = (slen == 4 && memcmp(tmp, "http", 4) == 0);
  int is_https = (slen == 5 && memcmp(tmp, "https", 5) == 0);
  if ((is_http && port == 80) || (is_https && port == 443)) port = -1;
  memcpy(tmp + n, "://", 3);
  n += 3;
  size_t host_off = n;
  for (size_t i = 0; i < hlen; i++) tmp[n++] = (char)cg_tok_lower((unsigned char)host[i]);
  if (port >= 0) {
    char digits[8];
    int nd = 0;
    long v = port;
    do {
      digits[nd++] = (char)('0' + v % 10);
      v /= 10;
    } while (v);
    tmp[n++] = ':';
    while (nd) tmp[n++] = digits[--nd];
  }
  if (n > norm_len) return CG_ORIGIN_E_BUFFER;
  memcpy(norm_buf, tmp, n);
  out->noncanonical = (n != len || memcmp(norm_buf, s, n) != 0);
  out->is_ip = is_ip;
  out->port = (int)port;
  out->scheme = norm_buf;
  out->scheme_len = slen;
  out->host = norm_buf + host_off;
  out->host_len = hlen;
  out->norm = norm_buf;
  out->norm_len = n;
  const char *h = out->host;
  out->loopback = v6_loop || first_octet == 127 || (hlen == 9 && memcmp(h, "localhost", 9) == 0) ||
                  (hlen > 10 && memcmp(h + hlen - 10, ".localhost", 10) == 0);
  return CG_ORIGIN_OK;
}

const char *cg_cors_origin_strerror(int code) {
  switch (code) {
  case CG_ORIGIN_OK: return "ok";
  case CG_ORIGIN_E_EMPTY: return "is empty";
  case CG_ORIGIN_E_TOO_LONG: return "is longer than 255 bytes";
  case CG_ORIGIN_E_BAD_CHAR: return "contains a space, control or non-ASCII byte (use punycode for names)";
  case CG_ORIGIN_E_NO_SCHEME: return "has no scheme";
  case CG_ORIGIN_E_BAD_SCHEME: return "has an invalid scheme";
  case CG_ORIGIN_E_USERINFO: return "has userinfo";
  case CG_ORIGIN_E_BAD_HOST: return "has an invalid host";
  case CG_ORIGIN_E_BAD_PORT: return "has an invalid port";
  case CG_ORIGIN_E_TRAILING_SLASH: return "has a trailing slash";
  case CG_ORIGIN_E_PATH: return "has a path";
  case CG_ORIGIN_E_QUERY: return "has a query";
  case CG_ORIGIN_E_FRAGMENT: return "has a fragment";
  case CG_ORIGIN_E_BUFFER: return "does not fit the buffer";
  default: return "is malformed";
  }
}
