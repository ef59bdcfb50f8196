#ifndef CG_CORS_CORS_H
#define CG_CORS_CORS_H
/* The CORS engine: the server side of the Fetch standard's CORS protocol as
 * pure functions (no I/O except cg_psl_load reading one file).
 *
 * Compile a policy once per route at config load; evaluate it once per request
 * without allocating: the caller passes a buffer, evaluate writes the complete
 * CORS header lines into it.
 *
 * Memory: a cg_psl_t and a cg_cors_policy_t are long-lived, owned by whoever
 * loaded/compiled them, and have one free function each. Everything evaluate
 * returns points either into the caller's buffer, into the request's bytes, or
 * at static strings, so it lives exactly as long as the request does.
 *
 * Everything between the #include lines and the #endif is plain enough for
 * LuaJIT's ffi.cdef (spec/unit/cors_ffi.lua strips the preprocessor lines):
 * keep it free of macros. */
#include <stddef.h>

#include "util/diag.h"

/* Status codes of every function here that returns an int: >= 0 is success. */
typedef enum cg_cors_status {
  CG_CORS_E_BUFFER = -1,  /* the caller's buffer is too small */
  CG_CORS_E_INVALID = -2, /* a bad argument (NULL where one is required, unsupported override) */
  CG_CORS_E_NOMEM = -3
} cg_cors_status_t;

/* Limits and sizes, as enum constants so the FFI sees them too. */
enum {
  CG_CORS_ORIGIN_MAX = 255,          /* longer Origin values are malformed */
  CG_CORS_MAX_REQUEST_HEADERS = 64,  /* more names in Access-Control-Request-Headers are refused */
  CG_CORS_BUF_SIZE = 4096            /* a buffer size that fits any answer but extreme header echoes */
};

/* ---- public suffix list ---------------------------------------------------- */

typedef struct cg_psl cg_psl_t;
/* Reads the list in the publicsuffix.org format; path NULL means Debian's
 * /usr/share/publicsuffix/public_suffix_list.dat. Returns NULL (and an error in d)
 * when the file cannot be read. Unicode rules are converted to punycode so they
 * compare against the punycode hosts browsers put in Origin. */
cg_psl_t *cg_psl_load(const char *path, cg_diag_t *d);
void cg_psl_free(cg_psl_t *psl);
/* 1 when host (lower-case ASCII, no trailing dot) is itself a public suffix,
 * i.e. nobody owns every name below it; 0 otherwise. */
int cg_psl_is_public_suffix(const cg_psl_t *psl, const char *host, size_t len);
/* Number of rules loaded (for logs and specs). */
int cg_psl_rule_count(const cg_psl_t *psl);

/* ---- origins ----------------------------------------------------------------- */

/* Why an Origin value was refused; 0 means it parsed. */
typedef enum cg_origin_error {
  CG_ORIGIN_OK = 0,
  CG_ORIGIN_E_EMPTY = -1,
  CG_ORIGIN_E_TOO_LONG = -2,
  CG_ORIGIN_E_BAD_CHAR = -3, /* control byte, space, non-ASCII */
  CG_ORIGIN_E_NO_SCHEME = -4,
  CG_ORIGIN_E_BAD_SCHEME = -5,
  CG_ORIGIN_E_USERINFO = -6,
  CG_ORIGIN_E_BAD_HOST = -7,
  CG_ORIGIN_E_BAD_PORT = -8,
  CG_ORIGIN_E_TRAILING_SLASH = -9,
  CG_ORIGIN_E_PATH = -10,
  CG_ORIGIN_E_QUERY = -11,
  CG_ORIGIN_E_FRAGMENT = -12,
  CG_ORIGIN_E_BUFFER = -13 /* norm_buf too small */
} cg_origin_error_t;

/* A parsed origin. scheme, host and norm point into the caller's norm_buf
 * (norm is the whole normalized serialization; scheme and host are slices of it). */
typedef struct cg_origin {
  int is_null;      /* the opaque origin "null" */
  int noncanonical; /* the input differed from norm (case, default port, leading zeros) */
  int loopback;     /* localhost, *.localhost, 127.0.0.0/8, [::1] */
  int is_ip;        /* IPv4 or bracketed IPv6 host */
  int port;         /* explicit non-default port, or -1 */
  const char *scheme;
  size_t scheme_len;
  const char *host;
  size_t host_len;
  const char *norm;
  size_t norm_len;
} cg_origin_t;

/* Parses one Origin value: scheme and host lower-cased, default port (http 80,
 * https 443) dropped, punycode kept as is. Returns 0 or a cg_origin_error_t.
 * norm_buf needs at most len bytes (normalizing never lengthens). */
int cg_cors_origin_parse(const char *s, size_t len, cg_origin_t *out, char *norm_buf, size_t norm_len);
/* A short English phrase for a cg_origin_error_t ("has a path"). */
const char *cg_cors_origin_strerror(int code);

/* ---- policy ------------------------------------------------------------------ */

/* Plain input, as a config file says it. Strings are NUL-terminated and only
 * borrowed during cg_cors_compile. */
typedef struct cg_cors_spec {
  const char **origins;
  int origins_count;
  int origins_any; /* origins = "*" */
  const char **origin_patterns;
  int origin_patterns_count;
  int allow_null_origin;
  const char **methods; /* NULL = GET, HEAD, POST */
  int methods_count;
  int methods_any; /* methods = "*": any method but CONNECT, TRACE and TRACK, echoed */
  const char **headers;
  int headers_count;
  int headers_any; /* headers = "*": echo the requested names */
  const char **expose_headers;
  int expose_headers_count;
  int expose_headers_any;
  int credentials;
  int has_max_age; /* 0: send no Access-Control-Max-Age */
  long long max_age;
  int private_network;
  int preflight_continue;
  int preflight_status; /* of an allowed preflight: 200 or 204 (0: 204) */
  int timing_allow_origin;
  int allow_insecure_origins;
  int origins_by_plugin; /* a plugin decides origins: origins and origin_patterns must be empty */
} cg_cors_spec_t;

typedef struct cg_cors_policy cg_cors_policy_t;

/* Validates and compiles. Problems go to d with paths relative to path_prefix
 * ("routes[1].cors" -> "routes[1].cors.origins[2]"); NULL or "" for bare paths.
 * Returns NULL when d received an error (or memory ran out). psl may be NULL only
 * when the spec has no origin_patterns. */
cg_cors_policy_t *cg_cors_compile(const cg_cors_spec_t *spec, const cg_psl_t *psl,
                                  const char *path_prefix, cg_diag_t *d);
void cg_cors_policy_free(cg_cors_policy_t *p);

/* ---- evaluate ---------------------------------------------------------------- */

/* A view of the request's CORS-relevant headers; *_count is how many header lines
 * carried that name (the first one's value in origin/acrm, every one in acrh). */
typedef struct cg_cors_request {
  const char *method;
  size_t method_len;
  int origin_count;
  const char *origin;
  size_t origin_len;
  int acrm_count;
  const char *acrm;
  size_t acrm_len;
  int acrh_count;
  const char **acrh;
  const size_t *acrh_len;
  const char *acrpn; /* Access-Control-Request-Private-Network, NULL when absent */
  size_t acrpn_len;
  /* The one Origin value, already parsed without error by the caller (a route
   * with a plugin parses it to ask the decision cache), or NULL: evaluation
   * then does not parse it again. */
  const cg_origin_t *parsed_origin;
  /* A route's `debug`: a preflight from an allowed origin refused for its
   * method or a header is answered so that the browser names that cause
   * (see cg_cors_result_t.status). */
  int name_refusal;
} cg_cors_request_t;

typedef enum cg_cors_kind {
  CG_CORS_NO_CORS = 0, /* no policy, or no Origin: headers and vary may still apply */
  CG_CORS_PREFLIGHT_ALLOWED = 1,
  CG_CORS_PREFLIGHT_REFUSED = 2, /* answer 403, no headers */
  CG_CORS_ACTUAL_ALLOWED = 3,
  CG_CORS_ACTUAL_REFUSED = 4 /* proxy the request, add no CORS headers */
} cg_cors_kind_t;

typedef enum cg_cors_reason {
  CG_CORS_OK = 0,
  CG_CORS_NO_ORIGIN = 1,
  CG_CORS_REFUSED_ORIGIN = 2,
  CG_CORS_REFUSED_METHOD = 3,
  CG_CORS_REFUSED_HEADER = 4,
  CG_CORS_REFUSED_PRIVATE_NETWORK = 5,
  CG_CORS_MALFORMED_ORIGIN = 6,
  CG_CORS_TOO_MANY_HEADERS = 7
} cg_cors_reason_t;

typedef struct cg_cors_result {
  int kind;   /* cg_cors_kind_t */
  int reason; /* cg_cors_reason_t */
  const char *detail;     /* static English phrase for "explain" */
  const char *detail_arg; /* the offending bytes inside the request (method, header name), or NULL */
  size_t detail_arg_len;
  const char *vary; /* static comma-separated tokens for Vary, "" when none */
  int preflight_continue; /* an allowed preflight goes upstream, decorated with the headers */
  /* The status a preflight is answered with: the policy's preflight_status
   * when allowed, 403 when refused. With name_refusal, a preflight refused
   * for its method or a header (the origin allowed) gets the allowed status
   * and the origin's Allow-Origin, Allow-Credentials, Allow-Methods and
   * Allow-Headers lines (no Max-Age), which pass the browser's CORS check
   * and fail its method or header check: the console then names the
   * method or header instead of a missing Allow-Origin. 0 when not a
   * preflight. */
  int status;
  const char *origin;     /* normalized origin, in buf after the header lines; NULL if none parsed */
  size_t origin_len;
  size_t headers_len; /* header lines at the start of buf, same as the return value */
} cg_cors_result_t;

/* A plugin's decision for one origin, refining its route's policy: allowed
 * or not, and optionally its own credentials, methods, headers, exposed
 * headers and max age. Compiled once per decision (then cached), checked
 * like config. */
typedef struct cg_cors_override cg_cors_override_t;

typedef struct cg_cors_decision_spec {
  int allow;
  const char *origin; /* the normalized origin decided, for the insecure-origin check; may be NULL */
  size_t origin_len;
  int has_credentials, credentials;
  const char **expose_headers;
  int expose_headers_count, has_expose, expose_any;
  const char **methods;
  int methods_count, has_methods, methods_any;
  const char **headers;
  int headers_count, has_headers, headers_any;
  int has_max_age;
  long long max_age;
} cg_cors_decision_spec_t;

/* NULL when the decision is invalid (errors in d, paths under "decision"; d
 * may be NULL) or memory ran out. The override borrows from base: free it
 * before base. */
cg_cors_override_t *cg_cors_override_compile(const cg_cors_policy_t *base, const cg_cors_decision_spec_t *spec,
                                             cg_diag_t *d);
/* Overrides are immutable once compiled, so holders on several threads may
 * share one: ref adds a holder (returns ov), free drops one and frees with
 * the last. */
cg_cors_override_t *cg_cors_override_ref(cg_cors_override_t *ov);
void cg_cors_override_free(cg_cors_override_t *ov);
/* Bytes the override holds, for the decision cache's accounting. */
size_t cg_cors_override_size(const cg_cors_override_t *ov);
/* 1 when a decision with only allow set needs no override of its own (a
 * shared one per route and answer does). */
int cg_cors_decision_is_plain(const cg_cors_decision_spec_t *spec);
/* Checks a plain decision against base without allocating (the only thing to
 * check: credentials on the route for a plain-http origin). 0 or
 * CG_CORS_E_INVALID with the error in d (which may be NULL). */
int cg_cors_decision_check_plain(const cg_cors_policy_t *base, const cg_cors_decision_spec_t *spec, cg_diag_t *d);

/* Renders "Access-Control-Expose-Headers: a, b\r\n" from n header names
 * (tokens, lower-cased, duplicates dropped). Returns its length, or
 * CG_CORS_E_INVALID for a bad name or "*", CG_CORS_E_BUFFER. */
int cg_cors_expose_line(const char **names, const size_t *lens, int n, char *buf, size_t buflen);

/* Writes "Name: value\r\n" lines into buf and returns their length, or a
 * cg_cors_status_t. p NULL means the route has no policy. ov, when not NULL,
 * is the route plugin's decision for this request's origin: it replaces the
 * origin rules and refines the answer (the origin is echoed, never "*").
 * With origins = "*" (never with credentials) even Origin-less responses get
 * "Access-Control-Allow-Origin: *", so caches need no Vary. */
int cg_cors_evaluate(const cg_cors_policy_t *p, const cg_cors_override_t *ov,
                     const cg_cors_request_t *req, cg_cors_result_t *out, char *buf, size_t buflen);

/* One reason a request is refused, for explain. detail is a static phrase;
 * arg, when not NULL, the offending bytes inside the request. */
typedef struct cg_cors_problem {
  int reason; /* cg_cors_reason_t */
  const char *detail;
  const char *arg;
  size_t arg_len;
} cg_cors_problem_t;

/* Every reason req is refused, where cg_cors_evaluate stops at the first: the
 * origin, then the method, each requested header that is refused, and
 * private network access. Writes at most max into out and returns how many
 * there are (0: allowed, or no CORS), or a cg_cors_status_t. */
int cg_cors_problems(const cg_cors_policy_t *p, const cg_cors_override_t *ov, const cg_cors_request_t *req,
                     cg_cors_problem_t *out, int max);

/* For explain: which rule of p allows the origin (already parsed), written into
 * buf as text: `origins entry "https://a.com"`, `origin_patterns entry
 * "https://STAR.a.com"` (with the pattern's own star), `origins = "*"`, `allow_null_origin`. Returns 1 when a
 * rule allows it (buf says which), 0 when none does (buf says so), or a
 * cg_cors_status_t. */
int cg_cors_origin_rule(const cg_cors_policy_t *p, const char *origin, size_t len, char *buf, size_t buflen);

/* ---- response headers --------------------------------------------------------- */

/* 1 for Access-Control-* names (any case): the proxy drops the upstream's so the
 * answer has no duplicates and no leaked "*". */
int cg_cors_is_cors_response_header(const char *name, size_t len);
/* Same, plus Timing-Allow-Origin when the policy sets it; p NULL strips nothing. */
int cg_cors_policy_owns_header(const cg_cors_policy_t *p, const char *name, size_t len);

/* Merges the upstream's Vary header lines with our tokens into buf: one value,
 * duplicates dropped case-insensitively, upstream order first, "*" absorbing the
 * rest. Returns the length (0: send no Vary) or a cg_cors_status_t. */
int cg_cors_vary_merge(const char **values, const size_t *lens, int count, const char *ours,
                       char *buf, size_t buflen);

#endif
