/* A plugin's decision for one origin, compiled against its route's policy.
 * Decisions are checked as strictly as config: a plugin that answers
 * expose "*" with credentials, or names a header that is not a token, gets
 * an error (and the origin is denied), never a header a browser would
 * misread. What the decision leaves out is borrowed from the base policy, so
 * a cached decision costs only what it changes. */
#include "cors/cors_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void answer_of_policy(const cg_cors_policy_t *p, cg_cors_answer_t *a) {
  a->credentials = p->credentials;
  a->headers_any = p->headers_any;
  a->methods_any = p->methods_any;
  a->methods = p->methods;
  a->nmethods = p->nmethods;
  a->headers = p->headers;
  a->nheaders = p->nheaders;
  a->line_methods = &p->line_methods;
  a->line_headers = &p->line_headers;
  a->line_max_age = &p->line_max_age;
  a->line_expose = &p->line_expose;
  a->line_credentials = &p->line_credentials;
}

void cg_cors_policy_answer(const cg_cors_policy_t *p, cg_cors_answer_t *a) { answer_of_policy(p, a); }

int cg_cors_decision_is_plain(const cg_cors_decision_spec_t *s) {
  return s && !s->has_credentials && !s->has_expose && !s->has_methods && !s->has_headers && !s->has_max_age;
}

static int insecure_origin(const cg_cors_decision_spec_t *spec, char *norm, size_t n, cg_origin_t *o) {
  return spec->origin && spec->origin_len >= 7 && cg_cors_origin_parse(spec->origin, spec->origin_len, o, norm, n) == 0 &&
         !o->is_null && cg_cors_insecure_scheme(o->scheme, o->scheme_len) && !o->loopback;
}

int cg_cors_decision_check_plain(const cg_cors_policy_t *base, const cg_cors_decision_spec_t *spec, cg_diag_t *d) {
  char norm[CG_CORS_ORIGIN_MAX + 8];
  cg_origin_t o;
  if (!base || !spec) return CG_CORS_E_INVALID;
  if (!spec->allow || !base->credentials || base->allow_insecure || !insecure_origin(spec, norm, sizeof norm, &o))
    return 0;
  if (d)
    cg_diag_error(d, "decision.credentials",
                  "\"%.*s\" is plain http, and credentials = true would trust it with cookies; allow it without "
                  "credentials, or set allow_insecure_origins = true on the route",
                  (int)o.norm_len, o.norm);
  return CG_CORS_E_INVALID;
}

static const cg_str_t CREDENTIALS_LINE = {(char *)"Access-Control-Allow-Credentials: true\r\n", 40};
static const cg_str_t NO_LINE = {NULL, 0};

cg_cors_override_t *cg_cors_override_compile(const cg_cors_policy_t *base, const cg_cors_decision_spec_t *spec,
                                             cg_diag_t *d) {
  if (!base || !spec) return NULL;
  cg_diag_t local;
  if (!d) {
    cg_diag_init(&local);
    d = &local;
  }
  int errors_before = d->errors;
  compiler_t c = {.prefix = "decision", .d = d};
  cg_cors_override_t *ov = calloc(1, sizeof *ov);
  if (!ov) goto out;
  ov->allow = spec->allow != 0;
  answer_of_policy(base, &ov->ans);
  if (!ov->allow) goto out; /* a denial sends nothing: the rest is moot */

  cg_cors_answer_t *a = &ov->ans;
  if (spec->has_credentials) {
    a->credentials = spec->credentials != 0;
    a->line_credentials = a->credentials ? &CREDENTIALS_LINE : &NO_LINE;
  }
  if (a->credentials && !base->allow_insecure) {
    char norm[CG_CORS_ORIGIN_MAX + 8];
    cg_origin_t o;
    if (insecure_origin(spec, norm, sizeof norm, &o))
      cg_diag_error(d, cg_cors_at(&c, "credentials", 0),
                    "\"%.*s\" is plain http, and credentials = true would trust it with cookies; allow it without "
                    "credentials, or set allow_insecure_origins = true on the route",
                    (int)o.norm_len, o.norm);
  }
  if (spec->has_methods) {
    int any = spec->methods_any != 0;
    cg_cors_compile_methods(&c, spec->methods, spec->methods_count, &any, &ov->methods, &ov->nmethods);
    a->methods_any = any;
    a->methods = ov->methods;
    a->nmethods = ov->nmethods;
    if (!any && cg_cors_render_list(&ov->line_methods, "Access-Control-Allow-Methods", ov->methods, ov->nmethods) < 0)
      c.oom = 1;
    a->line_methods = &ov->line_methods;
  }
  if (spec->has_headers) {
    int any = spec->headers_any != 0;
    if (!any)
      cg_cors_compile_names(&c, "headers", spec->headers, spec->headers_count, &any, &ov->headers, &ov->nheaders);
    a->headers_any = any;
    a->headers = ov->headers;
    a->nheaders = ov->nheaders;
    if (!any && cg_cors_render_list(&ov->line_headers, "Access-Control-Allow-Headers", ov->headers, ov->nheaders) < 0)
      c.oom = 1;
    a->line_headers = &ov->line_headers;
  }
  int expose_any = base->expose_any;
  if (spec->has_expose) {
    cg_str_t *names = NULL;
    int n = 0;
    expose_any = spec->expose_any != 0;
    if (!expose_any)
      cg_cors_compile_names(&c, "expose_headers", spec->expose_headers, spec->expose_headers_count, &expose_any, &names,
                            &n);
    int rc = expose_any ? cg_cors_render_text(&ov->line_expose, "Access-Control-Expose-Headers: *\r\n")
                        : cg_cors_render_list(&ov->line_expose, "Access-Control-Expose-Headers", names, n);
    if (rc < 0) c.oom = 1;
    cg_cors_free_strs(names, n);
    a->line_expose = &ov->line_expose;
  }
  if (expose_any && a->credentials)
    cg_diag_error(d, cg_cors_at(&c, "expose_headers", 0),
                  "\"*\" with credentials is read by browsers as a header literally named \"*\"; list the names");
  if (spec->has_max_age) {
    if (spec->max_age < 0 || spec->max_age > 86400) {
      cg_diag_error(d, cg_cors_at(&c, "max_age", 0), "expected 0 to 86400 seconds, got %lld", spec->max_age);
    } else {
      char line[64];
      snprintf(line, sizeof line, "Access-Control-Max-Age: %lld\r\n", spec->max_age);
      if (cg_cors_render_text(&ov->line_max_age, line) < 0) c.oom = 1;
      a->line_max_age = &ov->line_max_age;
    }
  }
  if (c.oom) cg_diag_error(d, cg_cors_at(&c, NULL, 0), "out of memory compiling the decision");

out:
  if (ov && d->errors > errors_before) {
    cg_cors_override_free(ov);
    ov = NULL;
  } else if (!ov) {
    cg_diag_error(d, "decision", "out of memory compiling the decision");
  }
  if (d == &local) cg_diag_free(&local);
  return ov;
}

cg_cors_override_t *cg_cors_override_ref(cg_cors_override_t *ov) {
  if (ov) atomic_fetch_add_explicit(&ov->refs, 1, memory_order_relaxed);
  return ov;
}

void cg_cors_override_free(cg_cors_override_t *ov) {
  if (!ov) return;
  /* the last holder frees; what it frees was written before any holder shared it */
  if (atomic_fetch_sub_explicit(&ov->refs, 1, memory_order_acq_rel) != 0) return;
  cg_cors_free_strs(ov->methods, ov->nmethods);
  cg_cors_free_strs(ov->headers, ov->nheaders);
  free(ov->line_methods.s);
  free(ov->line_headers.s);
  free(ov->line_max_age.s);
  free(ov->line_expose.s);
  free(ov);
}

size_t cg_cors_override_size(const cg_cors_override_t *ov) {
  if (!ov) return 0;
  size_t n = sizeof *ov + ov->line_methods.len + ov->line_headers.len + ov->line_max_age.len + ov->line_expose.len;
  for (int i = 0; i < ov->nmethods; i++) n += sizeof *ov->methods + ov->methods[i].len + 1;
  for (int i = 0; i < ov->nheaders; i++) n += sizeof *ov->headers + ov->headers[i].len + 1;
  return n;
}

int cg_cors_expose_line(const char **names, const size_t *lens, int n, char *buf, size_t buflen) {
  static const char head[] = "Access-Control-Expose-Headers: ";
  if (!names || !lens || n <= 0 || !buf) return CG_CORS_E_INVALID;
  size_t o = 0;
  int written = 0;
  if (buflen < sizeof head - 1) return CG_CORS_E_BUFFER;
  memcpy(buf, head, sizeof head - 1);
  o = sizeof head - 1;
  for (int i = 0; i < n; i++) {
    if (!names[i] || !cg_tok_valid(names[i], lens[i]) || (lens[i] == 1 && names[i][0] == '*'))
      return CG_CORS_E_INVALID;
    int dup = 0;
    for (int j = 0; j < i && !dup; j++) dup = cg_tok_ieq(names[i], lens[i], names[j], lens[j]);
    if (dup) continue;
    if (buflen - o < lens[i] + 4) return CG_CORS_E_BUFFER;
    if (written++) buf[o++] = ',', buf[o++] = ' ';
    for (size_t k = 0; k < lens[i]; k++) buf[o++] = (char)cg_tok_lower((unsigned char)names[i][k]);
  }
  buf[o++] = '\r';
  buf[o++] = '\n';
  return (int)o;
}
