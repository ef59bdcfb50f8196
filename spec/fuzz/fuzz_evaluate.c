/* libFuzzer target: evaluate against a few compiled policies.
 *
 * Input format: byte 0 picks the policy and the request's shape (see below);
 * the rest is split on '\n' into origin, Access-Control-Request-Method,
 * Access-Control-Request-Private-Network, then one Access-Control-Request-Headers
 * line per remaining piece.
 *
 * Each input is also evaluated with a plugin decision compiled from it (the
 * fifth line, split on ',', gives its expose headers, headers and methods) on
 * a route whose plugin decides origins.
 *
 * Invariants: never crashes; the lines written are well-formed; an
 * Access-Control-Allow-Origin value is "*" or the request's own origin in
 * normalized form (never anything else the request carried); refusals write
 * nothing; credentials never go with "*". Evaluated again as on a debug route
 * (name_refusal), the answer is the same but for a preflight refused for its
 * method or a header from an allowed origin, which gets the allowed status and
 * the Allow lines; cg_cors_problems lists the refusal evaluate gives first,
 * and nothing for an allowed request. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cors/cors.h"

#include "fuzz_check.h"

enum { NPOLICIES = 4, MAX_LINES = 80 };
static cg_cors_policy_t *policies[NPOLICIES];
static cg_cors_policy_t *plugin_base;
static void check_lines(const char *buf, size_t len, const cg_cors_request_t *req, const cg_cors_result_t *r);
static void check_named(const cg_cors_policy_t *p, const cg_cors_request_t *req, const cg_cors_result_t *r, int rc);
static void check_problems(const cg_cors_policy_t *p, const cg_cors_request_t *req, const cg_cors_result_t *r,
                           const char *in, size_t n);

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  cg_diag_t d;
  cg_diag_init(&d);
  cg_psl_t *psl = cg_psl_load(NULL, &d);
  static const char *o1[] = {"https://a.com", "http://localhost:3000", "null"};
  static const char *p1[] = {"https://*.a.com", "https://*.*.b.org:*", "http://localhost:*"};
  static const char *m1[] = {"GET", "PUT", "PATCH", "delete"};
  static const char *h3[] = {"X-Req", "Content-Type", "authorization"};
  static const char *e1[] = {"X-Total", "X-Id"};
  cg_cors_spec_t s[NPOLICIES];
  memset(s, 0, sizeof s);
  /* 0: listed origins and patterns, credentials, echoed headers */
  s[0] = (cg_cors_spec_t){.origins = o1, .origins_count = 2, .origin_patterns = p1, .origin_patterns_count = 3,
                          .methods = m1, .methods_count = 4, .headers_any = 1, .expose_headers = e1,
                          .expose_headers_count = 2, .credentials = 1, .has_max_age = 1, .max_age = 600};
  /* 1: everything "*" without credentials, preflights answered 200 */
  s[1] = (cg_cors_spec_t){.origins_any = 1, .methods_any = 1, .headers_any = 1, .expose_headers_any = 1,
                          .timing_allow_origin = 1, .preflight_status = 200};
  /* 2: null allowed, a header list, private network */
  s[2] = (cg_cors_spec_t){.origins = o1, .origins_count = 3, .allow_null_origin = 1, .headers = h3,
                          .headers_count = 3, .private_network = 1, .preflight_continue = 1};
  /* 3: patterns only, timing, any method, with credentials */
  s[3] = (cg_cors_spec_t){.origin_patterns = p1, .origin_patterns_count = 3, .timing_allow_origin = 1,
                          .credentials = 1, .methods_any = 1};
  for (int i = 0; i < NPOLICIES; i++) {
    policies[i] = cg_cors_compile(&s[i], psl, "fuzz", &d);
    if (!policies[i]) {
      for (int k = 0; k < d.count; k++) fprintf(stderr, "%s\n", d.items[k].text);
      abort();
    }
  }
  static const char *mp[] = {"GET", "PUT"};
  cg_cors_spec_t ps = {.origins_by_plugin = 1, .methods = mp, .methods_count = 2, .credentials = 1,
                       .has_max_age = 1, .max_age = 60};
  plugin_base = cg_cors_compile(&ps, psl, "fuzz", &d);
  if (!plugin_base) abort();
  cg_psl_free(psl);
  cg_diag_free(&d);
  return 0;
}

/* Compiles a decision from the input and evaluates the request with it. */
static void with_decision(uint8_t flags, const char *list, size_t list_len, const cg_cors_request_t *req) {
  char *names = malloc(list_len + 1);
  const char *items[32];
  int n = 0;
  if (!names) return;
  memcpy(names, list, list_len);
  names[list_len] = 0;
  for (char *p = names; n < 32;) {
    items[n++] = p;
    char *comma = strchr(p, ',');
    if (!comma) break;
    *comma = 0;
    p = comma + 1;
  }
  cg_cors_decision_spec_t ds = {.allow = flags & 1, .origin = req->origin_count ? req->origin : NULL,
                                .origin_len = req->origin_count ? req->origin_len : 0,
                                .has_credentials = (flags >> 1) & 1, .credentials = (flags >> 5) & 1};
  switch ((flags >> 2) & 3) {
  case 0: ds.has_expose = 1, ds.expose_headers = items, ds.expose_headers_count = n; break;
  case 1: ds.has_headers = 1, ds.headers = items, ds.headers_count = n; break;
  case 2: ds.has_methods = 1, ds.methods = items, ds.methods_count = n; break;
  default: ds.has_expose = ds.expose_any = 1, ds.has_headers = ds.headers_any = 1; break;
  }
  cg_diag_t d;
  cg_diag_init(&d);
  cg_cors_override_t *ov = cg_cors_override_compile(plugin_base, &ds, &d);
  if (ov) {
    static char buf[1 << 16];
    cg_cors_result_t r;
    int rc = cg_cors_evaluate(plugin_base, ov, req, &r, buf, sizeof buf);
    CHECK(rc >= 0 && (size_t)rc == r.headers_len);
    check_lines(buf, (size_t)rc, req, &r);
    /* a decision never makes "*", and a denial sends nothing */
    CHECK(!memmem(buf, (size_t)rc, "Allow-Origin: *", 15));
    if (!ds.allow) CHECK(rc == 0);
    cg_cors_override_free(ov);
  } else {
    CHECK(d.errors > 0);
  }
  cg_diag_free(&d);
  free(names);
}

static void check_lines(const char *buf, size_t len, const cg_cors_request_t *req, const cg_cors_result_t *r) {
  int acao = 0, acac = 0, star = 0;
  size_t i = 0;
  while (i < len) {
    const char *line = buf + i;
    const char *eol = memchr(line, '\r', len - i);
    CHECK(eol && eol + 1 < buf + len && eol[1] == '\n');
    const char *colon = memchr(line, ':', (size_t)(eol - line));
    CHECK(colon && colon > line && colon + 1 < eol && colon[1] == ' ');
    for (const char *q = line; q < eol; q++) CHECK((unsigned char)*q >= 0x20 && (unsigned char)*q < 0x7f);
    const char *v = colon + 2;
    size_t vlen = (size_t)(eol - v);
    size_t nlen = (size_t)(colon - line);
    if (nlen == 27 && strncasecmp(line, "Access-Control-Allow-Origin", 27) == 0) {
      acao++;
      if (vlen == 1 && v[0] == '*') {
        star = 1;
      } else {
        /* Must be the request's origin, normalized, and a valid origin itself. */
        CHECK(req->origin_count == 1);
        char n1[CG_CORS_ORIGIN_MAX + 1], n2[CG_CORS_ORIGIN_MAX + 1];
        cg_origin_t o1, o2;
        CHECK(cg_cors_origin_parse(req->origin, req->origin_len, &o1, n1, sizeof n1) == 0);
        CHECK(cg_cors_origin_parse(v, vlen, &o2, n2, sizeof n2) == 0);
        CHECK(!o2.noncanonical);
        CHECK(o1.norm_len == vlen && memcmp(o1.norm, v, vlen) == 0);
        CHECK(r->origin && r->origin_len == vlen && memcmp(r->origin, v, vlen) == 0);
      }
    }
    if (nlen == 32 && strncasecmp(line, "Access-Control-Allow-Credentials", 32) == 0) acac++;
    i = (size_t)(eol - buf) + 2;
  }
  CHECK(acao <= 1 && acac <= 1);
  CHECK(!(acac && star));
  if (r->kind == CG_CORS_PREFLIGHT_ALLOWED || r->kind == CG_CORS_ACTUAL_ALLOWED) CHECK(acao == 1);
  if (r->kind == CG_CORS_NO_CORS) CHECK(acao == 0 || star);
}

/* 1 when a line of the header block is named name (an echoed value may hold
 * the same bytes: only a line's start counts). */
static int has_line(const char *buf, size_t len, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < len;) {
    if (len - i > n && memcmp(buf + i, name, n) == 0 && buf[i + n] == ':') return 1;
    const char *eol = memchr(buf + i, '\n', len - i);
    if (!eol) break;
    i = (size_t)(eol - buf) + 1;
  }
  return 0;
}

/* The same request as on a debug route: only a preflight refused for its
 * method or headers from an allowed origin answers differently. */
static void check_named(const cg_cors_policy_t *p, const cg_cors_request_t *req, const cg_cors_result_t *r, int rc) {
  static char buf[1 << 16];
  cg_cors_request_t q = *req;
  q.name_refusal = 1;
  cg_cors_result_t nr;
  int nrc = cg_cors_evaluate(p, NULL, &q, &nr, buf, sizeof buf);
  CHECK(nrc >= 0 && (size_t)nrc == nr.headers_len);
  CHECK(nr.kind == r->kind && nr.reason == r->reason);
  int named = r->kind == CG_CORS_PREFLIGHT_REFUSED &&
              (r->reason == CG_CORS_REFUSED_METHOD || r->reason == CG_CORS_REFUSED_HEADER ||
               r->reason == CG_CORS_TOO_MANY_HEADERS);
  if (!named) {
    CHECK(nrc == rc && nr.status == r->status);
    return;
  }
  CHECK(nr.status == 200 || nr.status == 204);
  CHECK(nrc > 0 && has_line(buf, (size_t)nrc, "Access-Control-Allow-Origin"));
  CHECK(!has_line(buf, (size_t)nrc, "Access-Control-Max-Age"));
  check_lines(buf, (size_t)nrc, req, &nr);
}

/* cg_cors_problems agrees with evaluate: nothing when allowed, and first the
 * reason evaluate stopped at. */
static void check_problems(const cg_cors_policy_t *p, const cg_cors_request_t *req, const cg_cors_result_t *r,
                           const char *in, size_t n) {
  cg_cors_problem_t pr[8];
  int np = cg_cors_problems(p, NULL, req, pr, 8);
  CHECK(np >= 0);
  if (r->kind == CG_CORS_PREFLIGHT_ALLOWED || r->kind == CG_CORS_ACTUAL_ALLOWED || r->kind == CG_CORS_NO_CORS) {
    CHECK(np == 0);
    return;
  }
  CHECK(np >= 1 && pr[0].reason == r->reason && pr[0].detail == r->detail);
  for (int i = 0; i < np && i < 8; i++) {
    CHECK(pr[i].detail != NULL && pr[i].reason != CG_CORS_OK);
    if (pr[i].arg) CHECK(pr[i].arg >= in && pr[i].arg + pr[i].arg_len <= in + n);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t flags = data[0];
  /* A heap copy of the rest so ASan catches reads past any field. */
  size_t n = size - 1;
  char *in = malloc(n ? n : 1);
  if (!in) return 0;
  memcpy(in, data + 1, n);

  const char *field[MAX_LINES + 3];
  size_t flen[MAX_LINES + 3];
  int nf = 0;
  size_t start = 0;
  for (size_t i = 0; i <= n && nf < MAX_LINES + 3; i++) {
    if (i == n || in[i] == '\n') {
      field[nf] = in + start;
      flen[nf++] = i - start;
      start = i + 1;
    }
  }

  cg_cors_request_t req;
  memset(&req, 0, sizeof req);
  static const char *methods[] = {"OPTIONS", "GET", "POST", "options"};
  req.method = methods[(flags >> 2) & 3];
  req.method_len = strlen(req.method);
  int origin_lines = (flags >> 4) & 3; /* 0, 1, 2 or 3 Origin header lines */
  if (nf > 0 && origin_lines) {
    req.origin = field[0];
    req.origin_len = flen[0];
    req.origin_count = origin_lines == 3 ? 1 : origin_lines;
  }
  if (nf > 1 && (flags & 0x40)) {
    req.acrm = field[1];
    req.acrm_len = flen[1];
    req.acrm_count = 1;
  }
  if (nf > 2 && (flags & 0x80)) {
    req.acrpn = field[2];
    req.acrpn_len = flen[2];
  }
  if (nf > 3) {
    req.acrh = &field[3];
    req.acrh_len = &flen[3];
    req.acrh_count = nf - 3;
  }

  const cg_cors_policy_t *p = policies[flags & 3];
  static char buf[1 << 16];
  cg_cors_result_t r;
  int rc = cg_cors_evaluate(p, NULL, &req, &r, buf, sizeof buf);
  CHECK(rc >= 0); /* the buffer is larger than any echo of this input */
  CHECK((size_t)rc == r.headers_len);
  CHECK(r.kind >= CG_CORS_NO_CORS && r.kind <= CG_CORS_ACTUAL_REFUSED);
  CHECK(r.vary != NULL && r.detail != NULL);
  if (r.kind == CG_CORS_PREFLIGHT_REFUSED || r.kind == CG_CORS_ACTUAL_REFUSED) CHECK(rc == 0 && r.reason != CG_CORS_OK);
  if (r.kind == CG_CORS_PREFLIGHT_ALLOWED) CHECK(req.acrm_count > 0 && req.origin_count == 1);
  if (r.reason == CG_CORS_MALFORMED_ORIGIN) CHECK(r.origin == NULL);
  if (r.detail_arg) CHECK(r.detail_arg >= in && r.detail_arg + r.detail_arg_len <= in + n);
  if (r.kind == CG_CORS_PREFLIGHT_ALLOWED) CHECK(r.status == 200 || r.status == 204);
  if (r.kind == CG_CORS_PREFLIGHT_REFUSED) CHECK(r.status == 403);
  check_lines(buf, (size_t)rc, &req, &r);
  check_named(p, &req, &r, rc);
  check_problems(p, &req, &r, in, n);

  /* A smaller buffer either fits the same answer or says it does not. */
  size_t need = (size_t)rc + r.origin_len;
  if (need > 0) {
    char *tight = malloc(need - 1 ? need - 1 : 1);
    cg_cors_result_t r2;
    if (tight) {
      CHECK(cg_cors_evaluate(p, NULL, &req, &r2, tight, need - 1) == CG_CORS_E_BUFFER);
      free(tight);
    }
  }
  with_decision(flags, nf > 4 ? field[4] : "", nf > 4 ? flen[4] : 0, &req);
  free(in);
  return 0;
}
