/* Subdomain patterns: "https://STAR.example.com" where STAR is one or more whole
 * leftmost labels (so the apex is excluded) and ":STAR" as the port means any
 * port ("http://localhost:STAR" alone: that host on any port). Matching is a
 * label-boundary suffix comparison, never a regex, so evil-example.com and
 * example.com.evil.net cannot slip through. */
#include "cors/cors_internal.h"

#include <stdlib.h>
#include <string.h>

int cg_pattern_parse(const char *s, size_t len, cg_cors_pattern_t *out, int *origin_err, int *noncanonical) {
  memset(out, 0, sizeof *out);
  *origin_err = 0;
  *noncanonical = 0;
  char norm[CG_CORS_ORIGIN_MAX + 8];
  cg_origin_t o;
  const char *sep = len > CG_CORS_ORIGIN_MAX ? NULL : memmem(s, len, "://", 3);
  if (!sep) {
    *origin_err = cg_cors_origin_parse(s, len, &o, norm, sizeof norm);
    if (*origin_err == 0) *origin_err = CG_ORIGIN_E_NO_SCHEME; /* "null" */
    return CG_PAT_E_ORIGIN;
  }
  const char *auth = sep + 3, *end = s + len, *aend = auth;
  while (aend < end && *aend != '/' && *aend != '?' && *aend != '#') aend++;
  const char *h = auth;
  int k = 0;
  while (aend - h >= 2 && h[0] == '*' && h[1] == '.') {
    k++;
    h += 2;
  }
  const char *hend = aend;
  int any_port = 0;
  if (hend - h >= 2 && hend[-1] == '*' && hend[-2] == ':') {
    any_port = 1;
    hend -= 2;
  }
  if (hend == h || (hend - h == 1 && *h == '*')) return CG_PAT_E_NO_BASE; /* nothing after the wildcard */
  if (memchr(h, '*', (size_t)(hend - h))) return CG_PAT_E_BAD_WILDCARD;       /* a wildcard inside a label or further right */
  if (k == 0 && !any_port) return CG_PAT_E_NO_WILDCARD;

  /* Validate the rest as an origin whose host is the base: same rules, same errors. */
  char sub[CG_CORS_ORIGIN_MAX + 8];
  size_t n = 0, slen = (size_t)(sep + 3 - s), blen = (size_t)(hend - h), rlen = (size_t)(end - aend);
  memcpy(sub + n, s, slen);
  n += slen;
  memcpy(sub + n, h, blen);
  n += blen;
  memcpy(sub + n, aend, rlen);
  n += rlen;
  int rc = cg_cors_origin_parse(sub, n, &o, norm, sizeof norm);
  if (rc < 0) {
    *origin_err = rc;
    return CG_PAT_E_ORIGIN;
  }
  if (o.is_ip && k > 0) return CG_PAT_E_IP; /* an address has no subdomains; any port of it is fine */
  *noncanonical = o.noncanonical;
  out->scheme = strndup(o.scheme, o.scheme_len);
  out->base = strndup(o.host, o.host_len);
  if (!out->scheme || !out->base) {
    free(out->scheme);
    free(out->base);
    memset(out, 0, sizeof *out);
    return CG_PAT_E_NOMEM;
  }
  out->scheme_len = o.scheme_len;
  out->base_len = o.host_len;
  out->min_labels = k;
  out->loopback = o.loopback;
  out->port = any_port ? CG_PATTERN_ANY_PORT : o.port;
  return 0;
}

int cg_pattern_match(const cg_cors_pattern_t *pat, const cg_origin_t *o) {
  if (o->is_null || (o->is_ip && pat->min_labels > 0)) return 0;
  if (o->scheme_len != pat->scheme_len || memcmp(o->scheme, pat->scheme, pat->scheme_len) != 0) return 0;
  if (pat->port != CG_PATTERN_ANY_PORT && pat->port != o->port) return 0;
  if (pat->min_labels == 0) /* only the port is a wildcard */
    return o->host_len == pat->base_len && memcmp(o->host, pat->base, pat->base_len) == 0;
  if (o->host_len <= pat->base_len + 1) return 0; /* the apex, or shorter */
  size_t plen = o->host_len - pat->base_len - 1;
  if (o->host[plen] != '.' || memcmp(o->host + plen + 1, pat->base, pat->base_len) != 0) return 0;
  int labels = 1;
  for (size_t i = 0; i < plen; i++) labels += o->host[i] == '.';
  return labels >= pat->min_labels;
}
