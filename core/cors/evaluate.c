/* Evaluating a compiled policy against one request: classify it (preflight or
 * actual), decide, and write the header lines. Runs per request, so it never
 * allocates: the origin is normalized on the stack and everything else goes into
 * the caller's buffer. */
#include "cors/cors_internal.h"

#include <stdio.h>
#include <string.h>

/* The answer to a preflight depends on these request headers besides Origin. */
static const char VARY_PREFLIGHT[] =
    "Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network";
static const char VARY_PREFLIGHT_ORIGIN[] =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network";

typedef struct writer {
  char *buf;
  size_t cap, len;
  int overflow;
} writer_t;

static void put(writer_t *w, const char *s, size_t n) {
  if (n == 0) return; /* an unset pre-rendered line has s == NULL */
  if (w->overflow || n > w->cap - w->len) {
    w->overflow = 1;
    return;
  }
  memcpy(w->buf + w->len, s, n);
  w->len += n;
}

static void put_line(writer_t *w, const char *name, const char *value, size_t vlen) {
  put(w, name, strlen(name));
  put(w, ": ", 2);
  put(w, value, vlen);
  put(w, "\r\n", 2);
}

static void put_str(writer_t *w, const cg_str_t *line) { put(w, line->s, line->len); }

void cg_cors_policy_answer(const cg_cors_policy_t *p, cg_cors_answer_t *a);

/* An Origin byte for byte equal to an origins entry is that entry: entries are
 * stored normalized, and the normalized form parses to itself (fuzz_origin
 * checks that fixed point). So the usual allowed request skips the parser,
 * which was the largest part of a preflight's user-space work. On a hit, fills
 * only what evaluation reads of an origin found in the set. Returns 1 (hit), 0
 * (looked, missed) or -1 (the set cannot hold it). */
static int listed_verbatim(const cg_cors_policy_t *p, const char *s, size_t len, cg_origin_t *o, char *norm) {
  if (p->origins.count == 0 || len == 0 || len > CG_CORS_ORIGIN_MAX) return -1;
  if (!cg_strset_get(&p->origins, s, len, NULL)) return 0;
  memset(o, 0, sizeof *o);
  memcpy(norm, s, len);
  o->norm = norm;
  o->norm_len = len;
  o->port = -1;
  return 1;
}

static int origin_allowed(const cg_cors_policy_t *p, const cg_origin_t *o, int verbatim) {
  if (o->is_null) return p->allow_null || p->origins_any;
  if (verbatim == 1 || p->origins_any) return 1;
  /* A miss on the raw bytes is a miss on norm when the two are equal. */
  if (!(verbatim == 0 && !o->noncanonical) && cg_strset_get(&p->origins, o->norm, o->norm_len, NULL)) return 1;
  /* Linear: routes list a handful of patterns, and each test is one memcmp. */
  for (int i = 0; i < p->npatterns; i++)
    if (cg_pattern_match(&p->patterns[i], o)) return 1;
  return 0;
}

static int method_allowed(const cg_cors_answer_t *a, const char *m, size_t len) {
  /* Fetch never preflights for a safelisted method, and compares bytes exactly. */
  if ((len == 3 && memcmp(m, "GET", 3) == 0) || (len == 4 && memcmp(m, "HEAD", 4) == 0) ||
      (len == 4 && memcmp(m, "POST", 4) == 0))
    return 1;
  if (a->methods_any) return !cg_tok_forbidden_method(m, len);
  for (int i = 0; i < a->nmethods; i++)
    if (a->methods[i].len == len && memcmp(a->methods[i].s, m, len) == 0) return 1;
  return 0;
}

static int header_listed(const cg_cors_answer_t *p, const char *h, size_t len) {
  for (int i = 0; i < p->nheaders; i++)
    if (cg_tok_ieq(p->headers[i].s, p->headers[i].len, h, len)) return 1;
  return 0;
}

static int problem(cg_cors_problem_t *pr, int reason, const char *detail, const char *arg, size_t arg_len) {
  pr->reason = reason;
  pr->detail = detail;
  pr->arg = arg;
  pr->arg_len = arg_len;
  return 1;
}

static int refuse(cg_cors_result_t *out, int kind, const cg_cors_problem_t *pr) {
  out->kind = kind;
  out->reason = pr->reason;
  out->detail = pr->detail;
  out->detail_arg = pr->arg;
  out->detail_arg_len = pr->arg_len;
  if (kind == CG_CORS_PREFLIGHT_REFUSED) out->status = 403;
  return 0;
}

enum { ORIGIN_ALLOWED, ORIGIN_MALFORMED, ORIGIN_REFUSED };

/* Each step of the decision is its own function, shared by evaluate and
 * problems; inlined into both, so evaluate (per request) keeps the cost of
 * one function with the constants (first_only) folded in. */
#define STEP static inline __attribute__((always_inline))

/* Parses (unless the caller did) and checks the request's one Origin. Fills
 * *o (its strings in norm) unless malformed, and *pr unless allowed. */
STEP int check_origin(const cg_cors_policy_t *p, const cg_cors_override_t *ov, const cg_cors_request_t *req,
                        cg_origin_t *o, char *norm, cg_cors_problem_t *pr) {
  if (req->origin_count > 1) {
    problem(pr, CG_CORS_MALFORMED_ORIGIN, "several Origin headers", NULL, 0);
    return ORIGIN_MALFORMED;
  }
  int verbatim = -1, rc = CG_ORIGIN_OK;
  if (req->parsed_origin) {
    *o = *req->parsed_origin;
  } else {
    verbatim = listed_verbatim(p, req->origin, req->origin_len, o, norm);
    if (verbatim != 1) rc = cg_cors_origin_parse(req->origin, req->origin_len, o, norm, CG_CORS_ORIGIN_MAX + 8);
  }
  if (rc < 0) {
    problem(pr, CG_CORS_MALFORMED_ORIGIN, cg_cors_origin_strerror(rc), NULL, 0);
    return ORIGIN_MALFORMED;
  }
  if (ov && !o->is_null ? ov->allow : origin_allowed(p, o, verbatim)) return ORIGIN_ALLOWED;
  problem(pr, CG_CORS_REFUSED_ORIGIN,
          o->is_null ? "the null origin needs allow_null_origin"
          : ov ? "the route's plugin refused the origin"
          : p->origins_by_plugin ? "the route's plugin has not decided the origin"
                                 : "the origin is not in origins or origin_patterns",
          NULL, 0);
  return ORIGIN_REFUSED;
}

/* The preflight's method: 0 when allowed, else 1 with *pr. */
STEP int method_problem(const cg_cors_answer_t *a, const cg_cors_request_t *req, cg_cors_problem_t *pr) {
  if (req->acrm_count > 1)
    return problem(pr, CG_CORS_REFUSED_METHOD, "several Access-Control-Request-Method headers", NULL, 0);
  if (!req->acrm || !cg_tok_valid(req->acrm, req->acrm_len))
    return problem(pr, CG_CORS_REFUSED_METHOD, "Access-Control-Request-Method is not a method token", req->acrm,
                   req->acrm ? req->acrm_len : 0);
  if (!method_allowed(a, req->acrm, req->acrm_len))
    return problem(pr, CG_CORS_REFUSED_METHOD,
                   a->methods_any ? "the method is forbidden (CONNECT, TRACE, TRACK)" : "the method is not in methods",
                   req->acrm, req->acrm_len);
  return 0;
}

/* The names of Access-Control-Request-Headers a preflight may send. */
typedef struct names {
  const char *s[CG_CORS_MAX_REQUEST_HEADERS];
  size_t len[CG_CORS_MAX_REQUEST_HEADERS];
  int n;
} names_t;

/* Walks Access-Control-Request-Headers: allowed names go to ok, refused ones
 * to out (at most max of them). Returns how many were refused; first_only
 * stops at the first. More than CG_CORS_MAX_REQUEST_HEADERS names end the
 * walk with one last problem. */
STEP int header_problems(const cg_cors_answer_t *a, const cg_cors_request_t *req, names_t *ok,
                           cg_cors_problem_t *out, int max, int first_only) {
  int refused = 0, seen = 0;
  /* the names refused so far, so "x-a, X-A" is one problem however little
   * room out has (at most the limit plus the name past it) */
  const char *bad[CG_CORS_MAX_REQUEST_HEADERS + 1];
  size_t bad_len[CG_CORS_MAX_REQUEST_HEADERS + 1];
  ok->n = 0;
  for (int line = 0; line < req->acrh_count && req->acrh; line++) {
    cg_list_iter_t it;
    const char *h;
    size_t hlen;
    cg_list_init(&it, req->acrh[line], req->acrh_len ? req->acrh_len[line] : 0);
    while (cg_list_next(&it, &h, &hlen)) {
      if (hlen == 0) continue;
      cg_cors_problem_t pr;
      int stop = seen++ == CG_CORS_MAX_REQUEST_HEADERS;
      if (stop) problem(&pr, CG_CORS_TOO_MANY_HEADERS, "too many names in Access-Control-Request-Headers", h, hlen);
      else if (!cg_tok_valid(h, hlen)) problem(&pr, CG_CORS_REFUSED_HEADER, "a requested header name is not a token", h, hlen);
      else if (!a->headers_any && !header_listed(a, h, hlen)) problem(&pr, CG_CORS_REFUSED_HEADER, "the header is not in headers", h, hlen);
      else {
        ok->s[ok->n] = h;
        ok->len[ok->n++] = hlen;
        continue;
      }
      if (first_only) {
        if (max > 0) out[0] = pr;
        return 1;
      }
      int dup = 0;
      for (int i = 0; i < refused && !dup; i++) dup = cg_tok_ieq(bad[i], bad_len[i], h, hlen);
      if (!dup) {
        if (refused < max) out[refused] = pr;
        bad[refused] = h;
        bad_len[refused++] = hlen;
      }
      if (stop) return refused;
    }
  }
  return refused;
}

/* Access-Control-Request-Private-Network: true */
static int asks_private_network(const cg_cors_request_t *req) {
  if (!req->acrpn) return 0;
  const char *v = req->acrpn, *e = req->acrpn + req->acrpn_len;
  while (v < e && cg_tok_is_ows((unsigned char)*v)) v++;
  while (e > v && cg_tok_is_ows((unsigned char)e[-1])) e--;
  return e - v == 4 && memcmp(v, "true", 4) == 0;
}

/* Appends the normalized origin after the header lines so it outlives the call. */
static int finish(writer_t *w, cg_cors_result_t *out, const cg_origin_t *o) {
  if (w->overflow) return CG_CORS_E_BUFFER;
  size_t headers = w->len;
  if (o && o->norm_len) {
    put(w, o->norm, o->norm_len);
    if (w->overflow) return CG_CORS_E_BUFFER;
    out->origin = w->buf + headers;
    out->origin_len = o->norm_len;
  }
  out->headers_len = headers;
  return (int)headers;
}

/* The lines a preflight answer shares with a named refusal: Allow-Origin,
 * Allow-Credentials, Allow-Methods (the method asked for, echoed, when
 * methods = "*" and echo_method) and Allow-Headers (the names asked for,
 * echoed, when headers = "*" and echo is given). */
STEP void put_allow_lines(writer_t *w, const cg_cors_answer_t *a, const cg_cors_request_t *req, const char *acao,
                            size_t acao_len, int echo_method, const names_t *echo) {
  put_line(w, "Access-Control-Allow-Origin", acao, acao_len);
  put_str(w, a->line_credentials);
  if (!a->methods_any) put_str(w, a->line_methods);
  else if (echo_method) put_line(w, "Access-Control-Allow-Methods", req->acrm, req->acrm_len);
  if (!a->headers_any) {
    put_str(w, a->line_headers);
    return;
  }
  if (!echo) return;
  /* Echo the names rather than send "*": a literal "*" means nothing with
   * credentials and never covers Authorization. */
  int written = 0;
  for (int i = 0; i < echo->n; i++) {
    int dup = 0;
    for (int j = 0; j < i && !dup; j++) dup = cg_tok_ieq(echo->s[i], echo->len[i], echo->s[j], echo->len[j]);
    if (dup) continue;
    static const char name[] = "Access-Control-Allow-Headers: ";
    put(w, written ? ", " : name, written ? 2 : sizeof name - 1);
    for (size_t k = 0; k < echo->len[i]; k++) {
      char c = (char)cg_tok_lower((unsigned char)echo->s[i][k]);
      put(w, &c, 1);
    }
    written = 1;
  }
  if (written) put(w, "\r\n", 2);
}

static int is_preflight(const cg_cors_request_t *req) {
  return req->method_len == 7 && req->method && memcmp(req->method, "OPTIONS", 7) == 0 && req->origin_count > 0 &&
         req->acrm_count > 0;
}

int cg_cors_evaluate(const cg_cors_policy_t *p, const cg_cors_override_t *ov, const cg_cors_request_t *req,
                     cg_cors_result_t *out, char *buf, size_t buflen) {
  if (!out || !req || (!buf && buflen)) return CG_CORS_E_INVALID;
  memset(out, 0, sizeof *out);
  out->vary = "";
  out->detail = "";
  writer_t w = {buf, buflen, 0, 0};
  if (!p) {
    out->kind = CG_CORS_NO_CORS;
    out->detail = "the route has no CORS policy";
    return 0;
  }
  cg_cors_answer_t a;
  if (ov) a = ov->ans;
  else cg_cors_policy_answer(p, &a);
  /* A plugin's answer depends on the origin even when the static policy's does not. */
  int any = p->origins_any && !ov;

  int preflight = is_preflight(req);
  if (req->origin_count <= 0) {
    out->kind = CG_CORS_NO_CORS;
    out->reason = CG_CORS_NO_ORIGIN;
    out->detail = "no Origin header";
    if (any) {
      /* Fetch's advice for "*": send it on every response, so a cached copy
       * serves CORS and non-CORS requests alike and needs no Vary. */
      put_line(&w, "Access-Control-Allow-Origin", "*", 1);
      put_str(&w, a.line_expose);
      if (p->timing) put_line(&w, "Timing-Allow-Origin", "*", 1);
    } else {
      out->vary = "Origin";
    }
    return finish(&w, out, NULL);
  }

  int refused_kind = preflight ? CG_CORS_PREFLIGHT_REFUSED : CG_CORS_ACTUAL_REFUSED;
  const char *vary_origin = preflight ? VARY_PREFLIGHT_ORIGIN : "Origin";
  out->vary = any ? (preflight ? VARY_PREFLIGHT : "") : vary_origin;

  char norm[CG_CORS_ORIGIN_MAX + 8];
  cg_origin_t o;
  cg_cors_problem_t pr;
  switch (check_origin(p, ov, req, &o, norm, &pr)) {
  case ORIGIN_MALFORMED:
    /* A malformed origin gets no headers even under "*", so that answer
     * differs from the usual one and must not be served from a cache to
     * anyone else. */
    out->vary = vary_origin;
    return refuse(out, refused_kind, &pr);
  case ORIGIN_REFUSED:
    refuse(out, refused_kind, &pr);
    return finish(&w, out, &o);
  }
  const char *acao = any ? "*" : o.norm;
  size_t acao_len = any ? 1 : o.norm_len;

  if (!preflight) {
    out->kind = CG_CORS_ACTUAL_ALLOWED;
    out->detail = "allowed";
    put_line(&w, "Access-Control-Allow-Origin", acao, acao_len);
    put_str(&w, a.line_credentials);
    put_str(&w, a.line_expose);
    if (p->timing) put_line(&w, "Timing-Allow-Origin", acao, acao_len);
    return finish(&w, out, &o);
  }

  names_t names;
  int method_bad = method_problem(&a, req, &pr);
  int bad = method_bad || header_problems(&a, req, &names, &pr, 1, 1) > 0;
  int pna = asks_private_network(req);
  if (!bad && pna && !p->private_network)
    bad = problem(&pr, CG_CORS_REFUSED_PRIVATE_NETWORK, "private network access is not enabled", NULL, 0);
  if (bad) {
    refuse(out, refused_kind, &pr);
    if (req->name_refusal && pr.reason != CG_CORS_REFUSED_PRIVATE_NETWORK) {
      out->status = p->preflight_status;
      put_allow_lines(&w, &a, req, acao, acao_len, !method_bad, NULL);
    }
    return finish(&w, out, &o);
  }

  out->kind = CG_CORS_PREFLIGHT_ALLOWED;
  out->detail = "allowed";
  out->status = p->preflight_status;
  out->preflight_continue = p->preflight_continue;
  put_allow_lines(&w, &a, req, acao, acao_len, 1, &names);
  put_str(&w, a.line_max_age);
  if (pna) put_line(&w, "Access-Control-Allow-Private-Network", "true", 4);
  return finish(&w, out, &o);
}

int cg_cors_problems(const cg_cors_policy_t *p, const cg_cors_override_t *ov, const cg_cors_request_t *req,
                     cg_cors_problem_t *out, int max) {
  if (!req || max < 0 || (max > 0 && !out)) return CG_CORS_E_INVALID;
  if (!p || req->origin_count <= 0) return 0;
  cg_cors_answer_t a;
  if (ov) a = ov->ans;
  else cg_cors_policy_answer(p, &a);
  int n = 0;
  cg_cors_problem_t pr;
  char norm[CG_CORS_ORIGIN_MAX + 8];
  cg_origin_t o;
#define ADD(x)                \
  do {                        \
    if (n < max) out[n] = (x); \
    n++;                      \
  } while (0)
  if (check_origin(p, ov, req, &o, norm, &pr) != ORIGIN_ALLOWED) ADD(pr);
  if (!is_preflight(req)) return n;
  if (method_problem(&a, req, &pr)) ADD(pr);
  names_t names;
  n += header_problems(&a, req, &names, n < max ? out + n : NULL, n < max ? max - n : 0, 0);
  if (asks_private_network(req) && !p->private_network) {
    problem(&pr, CG_CORS_REFUSED_PRIVATE_NETWORK, "private network access is not enabled", NULL, 0);
    ADD(pr);
  }
#undef ADD
  return n;
}

int cg_cors_origin_rule(const cg_cors_policy_t *p, const char *origin, size_t len, char *buf, size_t buflen) {
  if (!p || !origin || !buf || !buflen) return CG_CORS_E_INVALID;
  char norm[CG_CORS_ORIGIN_MAX + 8];
  cg_origin_t o;
  if (cg_cors_origin_parse(origin, len, &o, norm, sizeof norm) != 0) {
    snprintf(buf, buflen, "no rule: the origin is malformed");
    return 0;
  }
  int n = -1;
  if (o.is_null) {
    if (p->allow_null) n = snprintf(buf, buflen, "allow_null_origin");
    else if (p->origins_any) n = snprintf(buf, buflen, "origins = \"*\"");
  } else if (p->origins_any) {
    n = snprintf(buf, buflen, "origins = \"*\"");
  } else if (cg_strset_get(&p->origins, o.norm, o.norm_len, NULL)) {
    n = snprintf(buf, buflen, "origins entry \"%.*s\"", (int)o.norm_len, o.norm);
  } else {
    for (int i = 0; i < p->npatterns && n < 0; i++) {
      const cg_cors_pattern_t *pat = &p->patterns[i];
      if (!cg_pattern_match(pat, &o)) continue;
      char port[16] = "";
      if (pat->port == CG_PATTERN_ANY_PORT) snprintf(port, sizeof port, ":*");
      else if (pat->port >= 0) snprintf(port, sizeof port, ":%d", pat->port);
      char stars[16] = "";
      for (int k = 0; k < pat->min_labels && k < 7; k++) memcpy(stars + 2 * k, "*.", 3);
      n = snprintf(buf, buflen, "origin_patterns entry \"%.*s://%s%.*s%s\"", (int)pat->scheme_len, pat->scheme, stars,
                   (int)pat->base_len, pat->base, port);
    }
  }
  if (n >= 0) return (size_t)n < buflen ? 1 : CG_CORS_E_BUFFER;
  snprintf(buf, buflen, "%s", p->origins_by_plugin ? "no static rule: the route's plugin decides"
                                                    : o.is_null ? "no rule: null needs allow_null_origin"
                                                                : "no rule: not in origins or origin_patterns");
  return 0;
}
