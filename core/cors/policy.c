/* Compiling a route's CORS policy: validate what the operator wrote (refusing
 * what browsers would reject or what would open the route to strangers, and
 * saying what to write instead), normalize it, and pre-render the header lines
 * that do not depend on the request. */
#include "cors/cors_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Chromium caps Access-Control-Max-Age at this many seconds; Firefox at a day. */
enum { CHROMIUM_MAX_AGE = 7200 };

const char *cg_cors_at(compiler_t *c, const char *field, int idx) {
  const char *sep = (c->prefix && *c->prefix) ? "." : "";
  const char *pre = (c->prefix && *c->prefix) ? c->prefix : "";
  if (!field)
    snprintf(c->path, sizeof c->path, "%s", pre);
  else if (idx > 0)
    snprintf(c->path, sizeof c->path, "%s%s%s[%d]", pre, sep, field, idx);
  else
    snprintf(c->path, sizeof c->path, "%s%s%s", pre, sep, field);
  return c->path;
}

/* Quotes a config string for a message; control and non-ASCII bytes become \xNN
 * so a stray CR/LF cannot garble the log line. */
static const char *quote(const char *s, char *buf, size_t n) {
  size_t o = 0;
  buf[o++] = '"';
  for (; *s && o + 6 < n; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
      o += (size_t)snprintf(buf + o, n - o, "\\x%02x", ch);
    else
      buf[o++] = (char)ch;
  }
  if (*s && o + 4 < n) {
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  buf[o++] = '"';
  buf[o] = 0;
  return buf;
}

/* What the operator probably meant: scheme://host[:port], lower-case, with any
 * userinfo, path, query and fragment removed; https:// when the scheme is missing. */
static const char *suggest(const char *s, char *buf, size_t n) {
  size_t o = 0, len = strlen(s);
  const char *sep = strstr(s, "://");
  const char *auth = s;
  if (sep) {
    for (const char *q = s; q < sep && o + 1 < n; q++) buf[o++] = (char)cg_tok_lower((unsigned char)*q);
    auth = sep + 3;
  } else {
    snprintf(buf, n, "https");
    o = 5;
  }
  if (o + 4 < n) {
    memcpy(buf + o, "://", 3);
    o += 3;
  }
  const char *aend = auth;
  while (aend < s + len && *aend != '/' && *aend != '?' && *aend != '#') aend++;
  const char *at_sign = NULL;
  for (const char *q = auth; q < aend; q++)
    if (*q == '@') at_sign = q;
  if (at_sign) auth = at_sign + 1;
  for (const char *q = auth; q < aend && o + 1 < n; q++) buf[o++] = (char)cg_tok_lower((unsigned char)*q);
  buf[o] = 0;
  return buf;
}

static void origin_error(compiler_t *c, const char *path, const char *s, int code) {
  char q[300], sug[300];
  quote(s, q, sizeof q);
  switch (code) {
  case CG_ORIGIN_E_TRAILING_SLASH:
  case CG_ORIGIN_E_PATH:
  case CG_ORIGIN_E_QUERY:
  case CG_ORIGIN_E_FRAGMENT:
  case CG_ORIGIN_E_USERINFO:
    cg_diag_error(c->d, path, "%s %s; an origin is scheme://host[:port], write \"%s\"", q,
                  cg_cors_origin_strerror(code), suggest(s, sug, sizeof sug));
    break;
  case CG_ORIGIN_E_NO_SCHEME:
    cg_diag_error(c->d, path, "%s has no scheme; write \"%s\"", q, suggest(s, sug, sizeof sug));
    break;
  default:
    cg_diag_error(c->d, path, "%s %s; write scheme://host[:port], e.g. \"https://example.com\"", q,
                  cg_cors_origin_strerror(code));
  }
}

int cg_cors_insecure_scheme(const char *scheme, size_t scheme_len) {
  return scheme_len == 4 && memcmp(scheme, "http", 4) == 0;
}

static void insecure_error(compiler_t *c, const char *path, const char *what, const char *norm) {
  cg_diag_error(c->d, path,
                "\"%s\" is plain http, and credentials = true would trust it with cookies; write \"https%s\", "
                "or set allow_insecure_origins = true",
                what, norm + 4);
}

static int push_str(cg_str_t **arr, int *n, const char *s, size_t len) {
  cg_str_t *a = realloc(*arr, (size_t)(*n + 1) * sizeof **arr);
  if (!a) return -1;
  *arr = a;
  a[*n].s = strndup(s, len);
  if (!a[*n].s) return -1;
  a[*n].len = len;
  (*n)++;
  return 0;
}

static int has_str(const cg_str_t *arr, int n, const char *s, size_t len) {
  for (int i = 0; i < n; i++)
    if (arr[i].len == len && memcmp(arr[i].s, s, len) == 0) return 1;
  return 0;
}

static void compile_origins(compiler_t *c, const cg_cors_spec_t *spec, cg_cors_policy_t *p) {
  char norm[CG_CORS_ORIGIN_MAX + 8], q[300];
  for (int i = 0; i < spec->origins_count; i++) {
    const char *s = spec->origins[i];
    const char *path = cg_cors_at(c, "origins", i + 1);
    if (!s) continue;
    if (strcmp(s, "*") == 0) {
      if (spec->origins_count == 1) {
        p->origins_any = 1; /* { "*" } reads as "*" */
        continue;
      }
      cg_diag_error(c->d, path, "\"*\" must stand alone: write origins = \"*\", or list the origins");
      continue;
    }
    cg_origin_t o;
    int rc = cg_cors_origin_parse(s, strlen(s), &o, norm, sizeof norm);
    if (rc < 0) {
      origin_error(c, path, s, rc);
      continue;
    }
    if (o.is_null) {
      if (!spec->allow_null_origin)
        cg_diag_error(c->d, path,
                      "\"null\" requires allow_null_origin = true (null comes from sandboxed iframes, file: "
                      "pages and redirects, and any page can forge it)");
      continue;
    }
    char nq[300];
    snprintf(nq, sizeof nq, "%.*s", (int)o.norm_len, o.norm);
    if (o.noncanonical) cg_diag_warn(c->d, path, "%s normalized to \"%s\"", quote(s, q, sizeof q), nq);
    if (spec->credentials && !spec->allow_insecure_origins && cg_cors_insecure_scheme(o.scheme, o.scheme_len) && !o.loopback) {
      insecure_error(c, path, nq, nq);
      continue;
    }
    if (cg_strset_put(&p->origins, o.norm, o.norm_len, 1) < 0) c->oom = 1;
  }
  if (spec->origins_any) p->origins_any = 1;
  if (p->origins_any && spec->credentials)
    cg_diag_error(c->d, cg_cors_at(c, "origins", 0),
                  "\"*\" cannot be combined with credentials = true (browsers reject the answer); list the "
                  "origins, or use origin_patterns");
}

static void compile_patterns(compiler_t *c, const cg_cors_spec_t *spec, const cg_psl_t *psl,
                             cg_cors_policy_t *p) {
  char q[300];
  if (spec->origin_patterns_count > 0) {
    p->patterns = calloc((size_t)spec->origin_patterns_count, sizeof *p->patterns);
    if (!p->patterns) {
      c->oom = 1;
      return;
    }
  }
  for (int i = 0; i < spec->origin_patterns_count; i++) {
    const char *s = spec->origin_patterns[i];
    const char *path = cg_cors_at(c, "origin_patterns", i + 1);
    if (!s) continue;
    quote(s, q, sizeof q);
    cg_cors_pattern_t pat;
    int oerr, noncanon;
    int rc = cg_pattern_parse(s, strlen(s), &pat, &oerr, &noncanon);
    switch (rc) {
    case 0: break;
    case CG_PAT_E_ORIGIN: origin_error(c, path, s, oerr); continue;
    case CG_PAT_E_NO_WILDCARD:
      cg_diag_error(c->d, path, "%s has no wildcard; put exact origins in origins", q);
      continue;
    case CG_PAT_E_BAD_WILDCARD:
      cg_diag_error(c->d, path,
                    "%s: the wildcard must be one or more whole leftmost labels, as in \"https://*.example.com\", "
                    "or the whole port (\":*\")",
                    q);
      continue;
    case CG_PAT_E_NO_BASE:
      cg_diag_error(c->d, path, "%s has no domain after the wildcard; write e.g. \"https://*.example.com\"", q);
      continue;
    case CG_PAT_E_IP:
      cg_diag_error(c->d, path, "%s: wildcards work on domain names, not IP addresses; list the addresses in origins",
                    q);
      continue;
    default: c->oom = 1; continue;
    }
    /* One host on any port covers no stranger's site: nothing to check
     * against the public suffix list. */
    int local = pat.loopback, exact = pat.min_labels == 0;
    char canon[300];
    int cn = snprintf(canon, sizeof canon, "%s://", pat.scheme);
    for (int k = 0; k < pat.min_labels; k++) cn += snprintf(canon + cn, sizeof canon - (size_t)cn, "*.");
    cn += snprintf(canon + cn, sizeof canon - (size_t)cn, "%s", pat.base);
    if (pat.port == CG_PATTERN_ANY_PORT)
      snprintf(canon + cn, sizeof canon - (size_t)cn, ":*");
    else if (pat.port >= 0)
      snprintf(canon + cn, sizeof canon - (size_t)cn, ":%d", pat.port);
    int bad = 0;
    if (!local && !exact && !psl) {
      cg_diag_error(c->d, path, "%s cannot be checked: the public suffix list is not loaded", q);
      bad = 1;
    } else if (!local && !exact && cg_psl_is_public_suffix(psl, pat.base, pat.base_len)) {
      cg_diag_error(c->d, path,
                    "%s puts the wildcard directly on the public suffix \"%s\", which would allow every site "
                    "under it; name your own domain, e.g. \"%s://*.yourname.%s\"",
                    q, pat.base, pat.scheme, pat.base);
      bad = 1;
    } else if (spec->credentials && !spec->allow_insecure_origins && cg_cors_insecure_scheme(pat.scheme, pat.scheme_len) &&
               !local) {
      insecure_error(c, path, canon, canon);
      bad = 1;
    } else if (noncanon) {
      cg_diag_warn(c->d, path, "%s normalized to \"%s\"", q, canon);
    }
    if (bad) {
      free(pat.scheme);
      free(pat.base);
      continue;
    }
    p->patterns[p->npatterns++] = pat;
  }
}

void cg_cors_compile_methods(compiler_t *c, const char **list, int n, int *any, cg_str_t **out, int *nout) {
  /* Fetch upper-cases only these before comparing, byte for byte, with the list. */
  static const char *normalized[] = {"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"};
  char q[300];
  for (int i = 0; i < n; i++) {
    const char *m = list[i];
    if (!m) continue;
    size_t len = strlen(m);
    const char *path = cg_cors_at(c, "methods", i + 1);
    if (len == 1 && m[0] == '*') {
      /* any method: answered by echoing the one asked for, which browsers
       * read with credentials too (a literal "*" they would not) */
      *any = 1;
      continue;
    }
    if (!cg_tok_valid(m, len)) {
      cg_diag_error(c->d, path,
                    "%s is not a valid method (an RFC 9110 token: letters, digits and !#$%%&'*+-.^_`|~)",
                    quote(m, q, sizeof q));
      continue;
    }
    if (cg_tok_forbidden_method(m, len)) {
      cg_diag_error(c->d, path, "%s is a forbidden method that browsers never send; remove it", quote(m, q, sizeof q));
      continue;
    }
    for (size_t k = 0; k < sizeof normalized / sizeof *normalized; k++) {
      if (strlen(normalized[k]) == len && cg_tok_ieq(m, len, normalized[k], len) && strcmp(m, normalized[k])) {
        cg_diag_warn(c->d, path, "%s normalized to \"%s\" (browsers upper-case it before asking)",
                     quote(m, q, sizeof q), normalized[k]);
        m = normalized[k];
      }
    }
    if (!has_str(*out, *nout, m, len) && push_str(out, nout, m, len) < 0) c->oom = 1;
  }
}

/* headers and expose_headers: tokens, lower-cased, duplicates dropped. */
void cg_cors_compile_names(compiler_t *c, const char *field, const char **list, int n, int *any, cg_str_t **out,
                          int *nout) {
  char q[300], low[256];
  for (int i = 0; i < n; i++) {
    const char *h = list[i];
    if (!h) continue;
    size_t len = strlen(h);
    const char *path = cg_cors_at(c, field, i + 1);
    if (len == 1 && h[0] == '*') {
      /* { "Authorization", "*" } is how Fetch-literate configs cover
       * Authorization next to the wildcard; corsgate's "*" already does
       * (names are echoed), so the names beside it change nothing. */
      *any = 1;
      continue;
    }
    if (!cg_tok_valid(h, len) || len >= sizeof low) {
      cg_diag_error(c->d, path, "%s is not a valid header name (an RFC 9110 token, e.g. \"X-Request-Id\")",
                    quote(h, q, sizeof q));
      continue;
    }
    for (size_t k = 0; k < len; k++) low[k] = (char)cg_tok_lower((unsigned char)h[k]);
    if (!has_str(*out, *nout, low, len) && push_str(out, nout, low, len) < 0) c->oom = 1;
  }
}

/* Renders "Name: a, b\r\n" into *line; nothing when the list is empty. */
int cg_cors_render_list(cg_str_t *line, const char *name, const cg_str_t *items, int n) {
  if (n == 0) return 0;
  size_t len = strlen(name) + 4;
  for (int i = 0; i < n; i++) len += items[i].len + 2;
  char *s = malloc(len + 1);
  if (!s) return -1;
  size_t o = (size_t)sprintf(s, "%s: ", name);
  for (int i = 0; i < n; i++) {
    if (i) {
      s[o++] = ',';
      s[o++] = ' ';
    }
    memcpy(s + o, items[i].s, items[i].len);
    o += items[i].len;
  }
  s[o++] = '\r';
  s[o++] = '\n';
  s[o] = 0;
  line->s = s;
  line->len = o;
  return 0;
}

int cg_cors_render_text(cg_str_t *line, const char *text) {
  line->s = strdup(text);
  line->len = line->s ? strlen(text) : 0;
  return line->s ? 0 : -1;
}

cg_cors_policy_t *cg_cors_compile(const cg_cors_spec_t *spec, const cg_psl_t *psl, const char *path_prefix,
                                  cg_diag_t *d) {
  if (!spec || !d) return NULL;
  int errors_before = d->errors;
  compiler_t c = {.prefix = path_prefix, .d = d};
  cg_cors_policy_t *p = calloc(1, sizeof *p);
  if (!p) {
    cg_diag_error(d, cg_cors_at(&c, NULL, 0), "out of memory compiling the CORS policy");
    return NULL;
  }
  cg_strset_init(&p->origins);
  p->allow_null = spec->allow_null_origin != 0;
  p->credentials = spec->credentials != 0;
  p->private_network = spec->private_network != 0;
  p->preflight_continue = spec->preflight_continue != 0;
  p->timing = spec->timing_allow_origin != 0;
  p->headers_any = spec->headers_any != 0;
  p->expose_any = spec->expose_headers_any != 0;
  p->allow_insecure = spec->allow_insecure_origins != 0;
  p->origins_by_plugin = spec->origins_by_plugin != 0;
  if (p->origins_by_plugin && (spec->origins_any || spec->origins_count || spec->origin_patterns_count))
    cg_diag_error(d, cg_cors_at(&c, spec->origin_patterns_count && !spec->origins_count ? "origin_patterns" : "origins", 0),
                  "the route's plugin decides every origin; move these origins into its plugin_config (or drop "
                  "plugin for a static policy)");

  compile_origins(&c, spec, p);
  compile_patterns(&c, spec, psl, p);
  static const char *default_methods[] = {"GET", "HEAD", "POST"};
  p->methods_any = spec->methods_any != 0;
  cg_cors_compile_methods(&c, spec->methods ? spec->methods : default_methods, spec->methods ? spec->methods_count : 3,
                          &p->methods_any, &p->methods, &p->nmethods);
  p->preflight_status = spec->preflight_status ? spec->preflight_status : 204;
  if (p->preflight_status == -1)
    cg_diag_error(d, cg_cors_at(&c, "preflight_status", 0),
                  "expected 200 or 204 (the status of an allowed preflight), got another number");
  else if (p->preflight_status != 200 && p->preflight_status != 204)
    cg_diag_error(d, cg_cors_at(&c, "preflight_status", 0),
                  "expected 200 or 204 (the status of an allowed preflight), got %d", spec->preflight_status);
  cg_cors_compile_names(&c, "headers", spec->headers, spec->headers_count, &p->headers_any, &p->headers, &p->nheaders);
  cg_str_t *expose = NULL;
  int nexpose = 0;
  cg_cors_compile_names(&c, "expose_headers", spec->expose_headers, spec->expose_headers_count, &p->expose_any, &expose,
                &nexpose);
  if (p->expose_any && p->credentials)
    cg_diag_error(d, cg_cors_at(&c, "expose_headers", 0),
                  "\"*\" with credentials = true is read by browsers as a header literally named \"*\"; list the "
                  "header names to expose");
  if (spec->has_max_age) {
    if (spec->max_age < 0)
      cg_diag_error(d, cg_cors_at(&c, "max_age", 0),
                    "must be 0 or more seconds, got %lld; leave it out to send no Access-Control-Max-Age",
                    spec->max_age);
    else if (spec->max_age > CHROMIUM_MAX_AGE)
      cg_diag_warn(d, cg_cors_at(&c, "max_age", 0),
                   "%lld exceeds Chromium's cap of 7200 seconds (Firefox caps at 86400); browsers use the "
                   "smaller value",
                   spec->max_age);
  }
  if (!p->origins_any && p->origins.count == 0 && p->npatterns == 0 && !p->allow_null && !p->origins_by_plugin &&
      d->errors == errors_before)
    cg_diag_warn(d, cg_cors_at(&c, NULL, 0),
                 "no origins, origin_patterns or allow_null_origin: every cross-origin request is refused");

  int rc = p->methods_any ? 0 : cg_cors_render_list(&p->line_methods, "Access-Control-Allow-Methods", p->methods, p->nmethods);
  if (!p->headers_any)
    rc |= cg_cors_render_list(&p->line_headers, "Access-Control-Allow-Headers", p->headers, p->nheaders);
  if (p->expose_any)
    rc |= cg_cors_render_text(&p->line_expose, "Access-Control-Expose-Headers: *\r\n");
  else
    rc |= cg_cors_render_list(&p->line_expose, "Access-Control-Expose-Headers", expose, nexpose);
  if (p->credentials) rc |= cg_cors_render_text(&p->line_credentials, "Access-Control-Allow-Credentials: true\r\n");
  if (spec->has_max_age && spec->max_age >= 0) {
    char line[64];
    snprintf(line, sizeof line, "Access-Control-Max-Age: %lld\r\n", spec->max_age);
    rc |= cg_cors_render_text(&p->line_max_age, line);
  }
  for (int i = 0; i < nexpose; i++) free(expose[i].s);
  free(expose);
  if (rc || c.oom) cg_diag_error(d, cg_cors_at(&c, NULL, 0), "out of memory compiling the CORS policy");
  if (d->errors > errors_before) {
    cg_cors_policy_free(p);
    return NULL;
  }
  return p;
}

void cg_cors_free_strs(cg_str_t *a, int n) {
  for (int i = 0; i < n; i++) free(a[i].s);
  free(a);
}

void cg_cors_policy_free(cg_cors_policy_t *p) {
  if (!p) return;
  cg_strset_free(&p->origins);
  for (int i = 0; i < p->npatterns; i++) {
    free(p->patterns[i].scheme);
    free(p->patterns[i].base);
  }
  free(p->patterns);
  cg_cors_free_strs(p->methods, p->nmethods);
  cg_cors_free_strs(p->headers, p->nheaders);
  free(p->line_methods.s);
  free(p->line_headers.s);
  free(p->line_max_age.s);
  free(p->line_expose.s);
  free(p->line_credentials.s);
  free(p);
}
