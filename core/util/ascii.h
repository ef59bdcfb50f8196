#ifndef CG_UTIL_ASCII_H
#define CG_UTIL_ASCII_H
/* Byte classes of HTTP's grammar, inline: every request's header names and
 * values go through these, so a libc call (strchr, strncasecmp) per byte or
 * per name showed up in the profile of a preflight. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A class is a 256-bit set: bit c of words[c / 64] is set when byte c is in
 * it (only ASCII ever is). One load and a shift, no branch. */
static inline int cg_ascii_in(const uint64_t words[4], unsigned char c) { return (int)((words[c >> 6] >> (c & 63)) & 1); }

/* RFC 9110 tchar: ALPHA, DIGIT and !#$%&'*+-.^_`|~ */
static inline int cg_ascii_tchar(unsigned char c) {
  static const uint64_t tchar[4] = {0x03ff6cfa00000000ull, 0x57ffffffc7fffffeull, 0, 0};
  return cg_ascii_in(tchar, c);
}

static inline unsigned char cg_ascii_lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* Field names and other tokens compare case-insensitively (RFC 9110 5.1). */
static inline int cg_ascii_ieq(const char *a, size_t alen, const char *b, size_t blen) {
  if (alen != blen) return 0;
  for (size_t i = 0; i < alen; i++)
    if (a[i] != b[i] && cg_ascii_lower((unsigned char)a[i]) != cg_ascii_lower((unsigned char)b[i])) return 0;
  return 1;
}

/* Whether token a (any tchars) equals lit, a literal of lower-case letters
 * and '-', ignoring case: eight bytes at a time, since setting bit 5 of a
 * byte turns exactly the upper-case of a letter into it, and '-' is only
 * reached from '-' and CR (never in a token). */
static inline int cg_ascii_token_is(const char *a, size_t alen, const char *lit, size_t len) {
  if (alen != len) return 0;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t x, y;
    memcpy(&x, a + i, 8);
    memcpy(&y, lit + i, 8);
    if ((x | 0x2020202020202020ull) != y) return 0;
  }
  for (; i < len; i++)
    if (((unsigned char)a[i] | 0x20) != (unsigned char)lit[i]) return 0;
  return 1;
}

#endif
