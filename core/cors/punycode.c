/* RFC 3492 punycode encoding, for the Unicode rules of the public suffix list:
 * browsers put the ASCII form of a name in Origin, so that is what patterns are
 * compared with. Only encoding is needed, and only at load time. */
#include "cors/cors_internal.h"

#include <stdint.h>
#include <string.h>

enum { BASE = 36, TMIN = 1, TMAX = 26, SKEW = 38, DAMP = 700, INITIAL_BIAS = 72, INITIAL_N = 128 };
enum { MAX_LABEL_CP = 256 };

static uint32_t adapt(uint32_t delta, uint32_t numpoints, int first) {
  delta = first ? delta / DAMP : delta / 2;
  delta += delta / numpoints;
  uint32_t k = 0;
  while (delta > ((BASE - TMIN) * TMAX) / 2) {
    delta /= BASE - TMIN;
    k += BASE;
  }
  return k + (BASE - TMIN + 1) * delta / (delta + SKEW);
}

static char digit(uint32_t d) { return (char)(d < 26 ? 'a' + d : '0' + (d - 26)); }

/* Decodes UTF-8; -1 on anything malformed or too long for a label. */
static int utf8_decode(const unsigned char *s, size_t len, uint32_t *cp) {
  int n = 0;
  for (size_t i = 0; i < len;) {
    uint32_t c = s[i];
    int extra = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
    if (extra < 0 || (size_t)extra > len - i - 1) return -1;
    if (extra > 0) c &= 0x3fu >> extra;
    for (int k = 1; k <= extra; k++) {
      if ((s[i + (size_t)k] & 0xc0) != 0x80) return -1;
      c = (c << 6) | (s[i + (size_t)k] & 0x3f);
    }
    if (n == MAX_LABEL_CP || c > 0x10ffff) return -1;
    cp[n++] = c;
    i += (size_t)extra + 1;
  }
  return n;
}

static int encode_label(const uint32_t *cp, int len, char *out, size_t cap, size_t *o) {
#define PUT(ch)                     \
  do {                              \
    if (*o >= cap) return -1;       \
    out[(*o)++] = (char)(ch);       \
  } while (0)
  PUT('x');
  PUT('n');
  PUT('-');
  PUT('-');
  uint32_t n = INITIAL_N, delta = 0, bias = INITIAL_BIAS, h, b = 0;
  for (int i = 0; i < len; i++)
    if (cp[i] < 0x80) {
      PUT(cg_tok_lower((unsigned char)cp[i]));
      b++;
    }
  h = b;
  if (b > 0) PUT('-');
  while (h < (uint32_t)len) {
    uint32_t m = UINT32_MAX;
    for (int i = 0; i < len; i++)
      if (cp[i] >= n && cp[i] < m) m = cp[i];
    if ((uint64_t)(m - n) * (h + 1) + delta > UINT32_MAX) return -1;
    delta += (m - n) * (h + 1);
    n = m;
    for (int i = 0; i < len; i++) {
      if (cp[i] < n) delta++;
      if (cp[i] != n) continue;
      uint32_t q = delta;
      for (uint32_t k = BASE;; k += BASE) {
        uint32_t t = k <= bias ? TMIN : k >= bias + TMAX ? TMAX : k - bias;
        if (q < t) break;
        PUT(digit(t + (q - t) % (BASE - t)));
        q = (q - t) / (BASE - t);
      }
      PUT(digit(q));
      bias = adapt(delta, h + 1, h == b);
      delta = 0;
      h++;
    }
    delta++;
    n++;
  }
  return 0;
#undef PUT
}

int cg_punycode_domain(const char *in, size_t len, char *out, size_t outcap) {
  size_t o = 0, start = 0;
  uint32_t cp[MAX_LABEL_CP];
  for (size_t i = 0; i <= len; i++) {
    if (i < len && in[i] != '.') continue;
    const unsigned char *label = (const unsigned char *)in + start;
    size_t llen = i - start;
    int ascii = 1;
    for (size_t k = 0; k < llen; k++)
      if (label[k] >= 0x80) ascii = 0;
    if (ascii) {
      if (o + llen > outcap) return -1;
      for (size_t k = 0; k < llen; k++) out[o++] = (char)cg_tok_lower(label[k]);
    } else {
      int n = utf8_decode(label, llen, cp);
      if (n < 0 || encode_label(cp, n, out, outcap, &o) < 0) return -1;
    }
    if (i < len) {
      if (o >= outcap) return -1;
      out[o++] = '.';
    }
    start = i + 1;
  }
  return (int)o;
}
