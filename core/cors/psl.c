/* The public suffix list (publicsuffix.org format), read once at load so that a
 * pattern whose wildcard sits right on a suffix such as github.io can be refused:
 * it would admit every stranger's site under that suffix. */
#include "cors/cors_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char DEFAULT_PATH[] = "/usr/share/publicsuffix/public_suffix_list.dat";

enum { RULE_NORMAL = 1, RULE_WILDCARD = 2, RULE_EXCEPTION = 4 };

struct cg_psl {
  cg_strset_t rules; /* key: the rule without "*." or "!"; val: RULE_* bits */
  int nrules;
};

static char *read_file(const char *path, size_t *len, int *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    *err = errno;
    return NULL;
  }
  size_t cap = 1 << 18, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap) break;
    char *bigger = realloc(buf, cap * 2);
    if (!bigger) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = bigger;
    cap *= 2;
  }
  *err = buf ? (ferror(f) ? EIO : 0) : ENOMEM;
  fclose(f);
  if (buf && *err) {
    free(buf);
    buf = NULL;
  }
  *len = n;
  return buf;
}

cg_psl_t *cg_psl_load(const char *path, cg_diag_t *d) {
  if (!path) path = DEFAULT_PATH;
  size_t len;
  int err;
  char *text = read_file(path, &len, &err);
  if (!text) {
    cg_diag_error(d, NULL, "public suffix list %s: cannot read: %s (apt-get install publicsuffix)", path,
                  strerror(err));
    return NULL;
  }
  cg_psl_t *psl = calloc(1, sizeof *psl);
  if (!psl) {
    free(text);
    cg_diag_error(d, NULL, "public suffix list %s: out of memory", path);
    return NULL;
  }
  cg_strset_init(&psl->rules);
  char ascii[512];
  size_t pos = 0;
  int lineno = 0, bad = 0;
  while (pos < len) {
    size_t eol = pos;
    while (eol < len && text[eol] != '\n') eol++;
    lineno++;
    /* A rule is the line up to its first whitespace; "//" starts a comment. */
    size_t end = pos;
    while (end < eol && text[end] != ' ' && text[end] != '\t' && text[end] != '\r') end++;
    const char *rule = text + pos;
    size_t rlen = end - pos;
    pos = eol + 1;
    if (rlen == 0 || (rlen >= 2 && rule[0] == '/' && rule[1] == '/')) continue;
    unsigned kind = RULE_NORMAL;
    if (rule[0] == '!') {
      kind = RULE_EXCEPTION;
      rule++, rlen--;
    } else if (rlen > 2 && rule[0] == '*' && rule[1] == '.') {
      kind = RULE_WILDCARD;
      rule += 2, rlen -= 2;
    }
    int n = cg_punycode_domain(rule, rlen, ascii, sizeof ascii);
    if (n <= 0 || memchr(ascii, '*', (size_t)n)) {
      bad++; /* wildcards only as the leftmost label; other shapes are not in the format */
      continue;
    }
    if (cg_strset_put(&psl->rules, ascii, (size_t)n, kind) < 0) {
      cg_diag_error(d, NULL, "public suffix list %s: out of memory", path);
      free(text);
      cg_psl_free(psl);
      return NULL;
    }
    psl->nrules++;
  }
  free(text);
  if (bad) cg_diag_warn(d, NULL, "public suffix list %s: skipped %d rules it could not read", path, bad);
  if (psl->nrules == 0) {
    cg_diag_error(d, NULL, "public suffix list %s: no rules found", path);
    cg_psl_free(psl);
    return NULL;
  }
  return psl;
}

void cg_psl_free(cg_psl_t *psl) {
  if (!psl) return;
  cg_strset_free(&psl->rules);
  free(psl);
}

int cg_psl_rule_count(const cg_psl_t *psl) { return psl ? psl->nrules : 0; }

/* host is a public suffix when the longest matching rule covers all of it: an
 * exact rule, a wildcard rule on its parent, or the implicit "*" rule for a
 * single label. An exception rule makes the name registrable. */
int cg_psl_is_public_suffix(const cg_psl_t *psl, const char *host, size_t len) {
  if (!psl || len == 0) return 0;
  unsigned v = 0;
  if (cg_strset_get(&psl->rules, host, len, &v)) {
    if (v & RULE_EXCEPTION) return 0;
    if (v & RULE_NORMAL) return 1;
  }
  const char *dot = memchr(host, '.', len);
  if (!dot) return 1;
  size_t plen = len - (size_t)(dot + 1 - host);
  return cg_strset_get(&psl->rules, dot + 1, plen, &v) && (v & RULE_WILDCARD);
}
