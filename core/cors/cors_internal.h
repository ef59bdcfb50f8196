#ifndef CG_CORS_INTERNAL_H
#define CG_CORS_INTERNAL_H
/* Shared between the files of core/cors, never seen by the FFI. */
#include <stddef.h>
#include <stdint.h>

#include "cors/cors.h"
#include "util/ascii.h"

/* ---- tokens (token.c) ---- */

/* RFC 9110 tchar; methods and header names are tokens. */
static inline int cg_tok_is_tchar(unsigned char c) { return cg_ascii_tchar(c); }
int cg_tok_valid(const char *s, size_t len);
/* CONNECT, TRACE, TRACK in any case: Fetch's forbidden methods, never allowed. */
int cg_tok_forbidden_method(const char *m, size_t len);
static inline int cg_tok_ieq(const char *a, size_t alen, const char *b, size_t blen) {
  return cg_ascii_ieq(a, alen, b, blen);
}
static inline unsigned char cg_tok_lower(unsigned char c) { return cg_ascii_lower(c); }
static inline int cg_tok_is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

/* cg_cors_origin_parse without its fast path for the usual canonical shape:
 * every input, the slow way (fuzz_origin checks the two agree). */
int cg_cors_origin_parse_general(const char *s, size_t len, cg_origin_t *out, char *norm_buf, size_t norm_len);

/* Walks a comma-separated header list; yields trimmed elements, empty ones included
 * (callers skip them: RFC 9110 tolerates "a,,b"). Returns 0 at the end. */
typedef struct cg_list_iter {
  const char *p, *end;
  int done;
} cg_list_iter_t;
void cg_list_init(cg_list_iter_t *it, const char *s, size_t len);
int cg_list_next(cg_list_iter_t *it, const char **elem, size_t *elen);

/* ---- string set (strset.c): open addressing, keys copied into a pool ---- */

typedef struct cg_strset {
  uint32_t *slots; /* entry index + 1; 0 = empty */
  uint32_t nslots; /* power of two */
  struct cg_strset_entry {
    uint32_t off, len;
    unsigned val;
  } *entries;
  uint32_t count, cap;
  char *pool;
  size_t pool_len, pool_cap;
} cg_strset_t;

void cg_strset_init(cg_strset_t *s);
void cg_strset_free(cg_strset_t *s);
/* Adds key (ORing val into an existing entry). 0 or CG_CORS_E_NOMEM. */
int cg_strset_put(cg_strset_t *s, const char *key, size_t len, unsigned val);
/* 1 and *val when present, else 0. */
int cg_strset_get(const cg_strset_t *s, const char *key, size_t len, unsigned *val);

/* ---- punycode (punycode.c) ---- */

/* Converts one UTF-8 domain name to its ASCII form label by label (RFC 3492 with
 * the "xn--" prefix, no nameprep: PSL rules are already normalized). Returns the
 * length or -1 on invalid UTF-8 or overflow. */
int cg_punycode_domain(const char *in, size_t len, char *out, size_t outcap);

/* ---- patterns (pattern.c) ---- */

enum { CG_PATTERN_ANY_PORT = -2 };

typedef struct cg_cors_pattern {
  char *scheme; /* owned, lower-case */
  size_t scheme_len;
  char *base; /* owned: the host after the wildcard labels */
  size_t base_len;
  int min_labels; /* how many "*" labels the pattern starts with (0: only the port is "*") */
  int loopback;   /* the base is localhost, below it, or a loopback address */
  int port;       /* -1 default only, CG_PATTERN_ANY_PORT, or a number */
} cg_cors_pattern_t;

enum {
  CG_PAT_E_ORIGIN = -1,      /* the non-wildcard part is not an origin: see *origin_err */
  CG_PAT_E_NO_WILDCARD = -2,
  CG_PAT_E_BAD_WILDCARD = -3, /* inside a label, not leftmost, or a partial port */
  CG_PAT_E_NO_BASE = -4,
  CG_PAT_E_IP = -5,
  CG_PAT_E_NOMEM = -6
};
/* Parses a pattern into out (which then owns scheme and base). 0 or CG_PAT_E_*. */
int cg_pattern_parse(const char *s, size_t len, cg_cors_pattern_t *out, int *origin_err, int *noncanonical);
int cg_pattern_match(const cg_cors_pattern_t *pat, const cg_origin_t *o);

/* ---- the compiled policy (policy.c) ---- */

typedef struct cg_str {
  char *s;
  size_t len;
} cg_str_t;

struct cg_cors_policy {
  int origins_any, allow_null, credentials, private_network, preflight_continue, timing;
  int allow_insecure;     /* allow_insecure_origins: also checked on plugin decisions */
  int origins_by_plugin;  /* a plugin decides each origin; origins and patterns are empty */
  int headers_any, expose_any;
  int methods_any;      /* methods = "*": the requested method is echoed */
  int preflight_status; /* of an allowed preflight: 200 or 204 */
  cg_strset_t origins; /* normalized exact origins */
  cg_cors_pattern_t *patterns;
  int npatterns;
  cg_str_t *methods; /* case-sensitive, as Fetch compares them */
  int nmethods;
  cg_str_t *headers; /* lower-case */
  int nheaders;
  /* Pre-rendered "Name: value\r\n" lines; len 0 when the line is not sent. */
  cg_str_t line_methods, line_headers, line_max_age, line_expose, line_credentials;
};

/* What evaluate reads besides the origin rules: from the policy itself, or
 * from a plugin's decision refining it (override.c). */
typedef struct cg_cors_answer {
  int credentials, headers_any, methods_any;
  const cg_str_t *methods;
  int nmethods;
  const cg_str_t *headers;
  int nheaders;
  const cg_str_t *line_methods, *line_headers, *line_max_age, *line_expose, *line_credentials;
} cg_cors_answer_t;

struct cg_cors_override {
  _Atomic unsigned refs; /* holders less one: caches of several workers share a decision */
  int allow;
  cg_cors_answer_t ans;
  /* owned parts; ans points at these or into the base policy */
  cg_str_t *methods, *headers;
  int nmethods, nheaders;
  cg_str_t line_methods, line_headers, line_max_age, line_expose;
};

/* ---- compiling (policy.c), shared with override.c ---- */

typedef struct compiler {
  const char *prefix;
  cg_diag_t *d;
  char path[256];
  int oom;
} compiler_t;

/* "prefix.field[idx]" in c->path (idx 0: no index; field NULL: the prefix). */
const char *cg_cors_at(compiler_t *c, const char *field, int idx);
int cg_cors_insecure_scheme(const char *scheme, size_t scheme_len);
/* "*" among the methods sets *any (the list is then moot). */
void cg_cors_compile_methods(compiler_t *c, const char **list, int n, int *any, cg_str_t **out, int *nout);
void cg_cors_compile_names(compiler_t *c, const char *field, const char **list, int n, int *any, cg_str_t **out,
                           int *nout);
int cg_cors_render_list(cg_str_t *line, const char *name, const cg_str_t *items, int n);
int cg_cors_render_text(cg_str_t *line, const char *text);
void cg_cors_free_strs(cg_str_t *a, int n);

#endif
