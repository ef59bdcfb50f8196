/* `corsgate explain`: why a browser on ORIGIN gets (or does not get) CORS
 * headers from this config, step by step, without starting the server. The
 * same functions as the request path decide (router, origin parser, policy
 * evaluation, the route's plugin run for real on a private loop), so the
 * answer is the gateway's, not a re-implementation of it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "cors/cors.h"
#include "lua/host.h"
#include "server/internal.h"
#include "server/server.h"

/* More problems than this in one request are not listed (a browser sends few headers). */
enum { MAX_PROBLEMS = 32 };

typedef struct {
  int done;
  cg_lua_result_t res;
  uint64_t ms;
} plugin_run_t;

static void on_plugin(void *arg, cg_lua_result_t *res) {
  plugin_run_t *run = arg;
  run->res = *res; /* takes the override */
  run->done = 1;
}

/* Out: text for people, or JSON for tools (and the admin API). */
typedef struct {
  FILE *f;
  int json;
  int first; /* no member written yet in the current JSON object */
} out_t;

void cg_json_fputs(FILE *f, const char *s, size_t n) {
  fputc('"', f);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20 || c >= 0x7f) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

static void jkey(out_t *o, const char *k) {
  if (!o->first) fputc(',', o->f);
  o->first = 0;
  cg_json_fputs(o->f, k, strlen(k));
  fputc(':', o->f);
}

static void jkv(out_t *o, const char *k, const char *v) {
  jkey(o, k);
  if (v) cg_json_fputs(o->f, v, strlen(v));
  else fputs("null", o->f);
}

static void jopen(out_t *o, const char *k) {
  if (k) jkey(o, k);
  fputc('{', o->f);
  o->first = 1;
}

static void jclose(out_t *o) {
  fputc('}', o->f);
  o->first = 0;
}

static const char *reason_name(int reason) {
  static const char *names[] = {"allowed",        "no-origin",       "refused-origin",
                                "refused-method", "refused-header",  "refused-private-network",
                                "malformed-origin", "too-many-headers"};
  return reason >= 0 && reason < (int)(sizeof names / sizeof *names) ? names[reason] : "unknown";
}

/* Fetch sends these without a preflight (with a safelisted Content-Type value). */
static int header_safelisted(const char *h) {
  const char *colon = strchr(h, ':');
  size_t n = colon ? (size_t)(colon - h) : strlen(h);
  if ((n == 6 && !strncasecmp(h, "accept", 6)) || (n == 15 && !strncasecmp(h, "accept-language", 15)) ||
      (n == 16 && !strncasecmp(h, "content-language", 16)))
    return 1;
  if (n == 12 && !strncasecmp(h, "content-type", 12) && colon) {
    const char *v = colon + 1;
    while (*v == ' ') v++;
    return !strncasecmp(v, "text/plain", 10) || !strncasecmp(v, "multipart/form-data", 19) ||
           !strncasecmp(v, "application/x-www-form-urlencoded", 33);
  }
  return 0;
}

static size_t name_len(const char *h) {
  const char *colon = strchr(h, ':');
  return colon ? (size_t)(colon - h) : strlen(h);
}

static void print_headers(out_t *o, const char *lines, size_t len, const char *vary, int status) {
  if (o->json) {
    jkey(o, "headers");
    fputc('[', o->f);
  }
  int n = 0;
  const char *p = lines, *end = lines + len;
  while (p < end) {
    const char *eol = memchr(p, '\r', (size_t)(end - p));
    if (!eol) break;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon) {
      if (o->json) {
        fputs(n++ ? ",[" : "[", o->f);
        cg_json_fputs(o->f, p, (size_t)(colon - p));
        fputc(',', o->f);
        cg_json_fputs(o->f, colon + 2, (size_t)(eol - colon - 2));
        fputc(']', o->f);
      } else {
        fprintf(o->f, "             %.*s\n", (int)(eol - p), p);
      }
    }
    p = eol + 2;
  }
  if (vary && *vary) {
    if (o->json) {
      fputs(n++ ? ",[\"Vary\"," : "[\"Vary\",", o->f);
      cg_json_fputs(o->f, vary, strlen(vary));
      fputc(']', o->f);
    } else {
      fprintf(o->f, "             Vary: %s%s\n", vary, status ? "" : " (merged with the upstream's Vary)");
    }
  }
  if (o->json) fputc(']', o->f);
  else if (n == 0 && !(vary && *vary)) fprintf(o->f, "             (no CORS headers)\n");
}

int cg_explain(const cg_config_t *cfg, const cg_explain_req_t *q, FILE *f) {
  out_t o = {.f = f, .json = q->json, .first = 1};
  const char *method = q->method ? q->method : "GET";
  const char *path = q->path ? q->path : "/";
  const char *host = q->host ? q->host : "";
  int allowed = 0;

  const cg_route_t *r = cg_route_match(cfg, host, strlen(host), path, strlen(path));
  if (o.json) {
    jopen(&o, NULL);
    jopen(&o, "request");
    jkv(&o, "origin", q->origin);
    jkv(&o, "method", method);
    jkv(&o, "host", host);
    jkv(&o, "path", path);
    jclose(&o);
    jopen(&o, "route");
    if (r) {
      char idx[16];
      snprintf(idx, sizeof idx, "%d", r->index);
      jkey(&o, "index");
      fputs(idx, f);
      jkv(&o, "name", r->name);
      jkv(&o, "plugin", r->plugin);
      jkey(&o, "cors");
      fputs(r->cors ? "true" : "false", f);
    }
    jclose(&o);
  } else {
    fprintf(f, "request      %s %s%s from %s\n", method, host[0] ? host : "(any host)", path, q->origin);
    if (r)
      fprintf(f, "route        routes[%d] \"%s\"%s\n", r->index, r->name,
              r->kind == CG_ROUTE_PROXY ? " (proxied)" : r->kind == CG_ROUTE_ECHO ? " (echo)" : " (static)");
    else
      fprintf(f, "route        none matches: 404 from corsgate, without CORS headers\n");
  }
  if (!r || !r->cors) {
    if (r && !o.json) fprintf(f, "policy       the route has no cors: responses pass untouched, no CORS headers\n");
    if (o.json) {
      jkey(&o, "allowed");
      fputs("false", f);
      jclose(&o);
      fputc('\n', f);
    }
    return 1;
  }

  /* the origin, as the engine parses it */
  char norm[CG_CORS_ORIGIN_MAX + 8];
  cg_origin_t org;
  int prc = cg_cors_origin_parse(q->origin, strlen(q->origin), &org, norm, sizeof norm);
  if (o.json) {
    jopen(&o, "origin");
    jkey(&o, "valid");
    fputs(prc == 0 ? "true" : "false", f);
    if (prc == 0) {
      jkey(&o, "normalized");
      cg_json_fputs(f, org.norm, org.norm_len);
      jkey(&o, "noncanonical");
      fputs(org.noncanonical ? "true" : "false", f);
    } else {
      jkv(&o, "error", cg_cors_origin_strerror(prc));
    }
    jclose(&o);
  } else if (prc == 0) {
    fprintf(f, "origin       %.*s%s\n", (int)org.norm_len, org.norm,
            org.noncanonical ? " (normalized from the input: browsers send it this way)" : "");
  } else {
    fprintf(f, "origin       malformed (%s): never allowed, never echoed\n", cg_cors_origin_strerror(prc));
  }

  /* who decides */
  cg_cors_override_t *ov = NULL, *shared = NULL;
  plugin_run_t run = {0};
  if (prc == 0 && r->plugin && !org.is_null) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    cg_lua_host_t *h = cg_lua_host_new(&loop, cfg);
    if (!h) {
      run.done = 1;
      run.res.failed = 1;
      snprintf(run.res.error, sizeof run.res.error, "the plugin did not load (see the log above)");
    } else {
      const char *names[3] = {"origin", "host", "access-control-request-method"};
      size_t nl[3] = {6, 4, 29};
      const char *vals[3] = {q->origin, host, method};
      size_t vl[3] = {strlen(q->origin), strlen(host), strlen(method)};
      cg_lua_req_t req = {.origin = org.norm, .origin_len = org.norm_len, .scheme = org.scheme,
                          .scheme_len = org.scheme_len, .host = org.host, .host_len = org.host_len,
                          .port = org.port, .method = method, .method_len = strlen(method), .path = path,
                          .path_len = strlen(path), .header_names = names, .header_name_lens = nl,
                          .header_values = vals, .header_value_lens = vl, .n_headers = 3};
      uint64_t t0 = uv_hrtime();
      cg_lua_origin_run(h, r, &req, on_plugin, &run);
      while (!run.done && uv_run(&loop, UV_RUN_ONCE)) {
      }
      run.ms = (uv_hrtime() - t0) / 1000000;
      cg_lua_host_free(h);
    }
    uv_run(&loop, UV_RUN_DEFAULT); /* the host's handles close */
    uv_loop_close(&loop);
    if (!run.done) {
      run.res.failed = 1;
      snprintf(run.res.error, sizeof run.res.error, "the hook never finished");
    }
    int allow = !run.res.failed && run.res.allow;
    ov = run.res.ov;
    if (!ov) ov = shared = cg_cors_override_compile(r->cors, &(cg_cors_decision_spec_t){.allow = allow}, NULL);
    if (o.json) {
      jopen(&o, "decided_by");
      jkv(&o, "kind", "plugin");
      jkv(&o, "plugin", r->plugin);
      jkey(&o, "allow");
      fputs(allow ? "true" : "false", f);
      jkv(&o, "tenant", run.res.tenant[0] ? run.res.tenant : NULL);
      jkv(&o, "error", run.res.failed ? run.res.error : NULL);
      jkey(&o, "ttl");
      fprintf(f, "%g", run.res.failed ? (double)r->plugin_deny_ttl_ms / 1000
                       : run.res.ttl >= 0 ? run.res.ttl
                       : (double)(allow ? r->plugin_ttl_ms : r->plugin_deny_ttl_ms) / 1000);
      jkey(&o, "ms");
      fprintf(f, "%llu", (unsigned long long)run.ms);
      jclose(&o);
    } else if (run.res.failed) {
      fprintf(f, "decided by   plugin %s: FAILED (%s): the origin is denied (fails closed)\n", r->plugin, run.res.error);
    } else {
      fprintf(f, "decided by   plugin %s: %s%s%s%s, cached %gs (ran %llu ms)\n", r->plugin,
              allow ? "allowed" : "denied", run.res.tenant[0] ? ", tenant " : "", run.res.tenant,
              run.res.ov ? ", refining the route's fields" : "",
              run.res.ttl >= 0 ? run.res.ttl : (double)(allow ? r->plugin_ttl_ms : r->plugin_deny_ttl_ms) / 1000,
              (unsigned long long)run.ms);
    }
  } else {
    char rule[300];
    cg_cors_origin_rule(r->cors, q->origin, strlen(q->origin), rule, sizeof rule);
    if (o.json) {
      jopen(&o, "decided_by");
      jkv(&o, "kind", "static");
      jkv(&o, "rule", rule);
      jclose(&o);
    } else {
      fprintf(f, "decided by   static policy: %s\n", rule);
    }
  }

  /* a preflight, when a browser would send one */
  int need = strcmp(method, "GET") && strcmp(method, "HEAD") && strcmp(method, "POST");
  for (int i = 0; i < q->n_headers && !need; i++) need = !header_safelisted(q->headers[i]);
  char buf[CG_CORS_BUF_SIZE];
  cg_cors_result_t res;
  cg_cors_request_t cr = {.origin_count = 1, .origin = q->origin, .origin_len = strlen(q->origin)};
  int preflight_ok = 1;
  if (need) {
    const char *acrh[64];
    size_t acrh_len[64];
    int n = 0;
    for (int i = 0; i < q->n_headers && n < 64; i++) {
      if (header_safelisted(q->headers[i])) continue;
      acrh[n] = q->headers[i];
      acrh_len[n++] = name_len(q->headers[i]);
    }
    cg_cors_request_t pf = cr;
    pf.method = "OPTIONS";
    pf.method_len = 7;
    pf.acrm_count = 1;
    pf.acrm = method;
    pf.acrm_len = strlen(method);
    pf.acrh_count = n;
    pf.acrh = acrh;
    pf.acrh_len = acrh_len;
    pf.name_refusal = r->debug; /* what the route answers, debug or not */
    int len = cg_cors_evaluate(r->cors, ov, &pf, &res, buf, sizeof buf);
    preflight_ok = len >= 0 && res.kind == CG_CORS_PREFLIGHT_ALLOWED;
    int status = len < 0 ? 403 : preflight_ok && res.preflight_continue ? 0 : res.status;
    cg_cors_problem_t probs[MAX_PROBLEMS];
    int all = len < 0 || preflight_ok ? 0 : cg_cors_problems(r->cors, ov, &pf, probs, MAX_PROBLEMS);
    int np = all > MAX_PROBLEMS ? MAX_PROBLEMS : all < 0 ? 0 : all;
    if (o.json) {
      jopen(&o, "preflight");
      jkv(&o, "result", len < 0 ? "error" : reason_name(res.reason));
      jkv(&o, "detail", len < 0 ? "the answer does not fit" : res.detail);
      if (res.detail_arg) {
        jkey(&o, "detail_arg");
        cg_json_fputs(f, res.detail_arg, res.detail_arg_len);
      }
      jkey(&o, "problems");
      fputc('[', f);
      for (int i = 0; i < np; i++) {
        if (i) fputc(',', f);
        jopen(&o, NULL);
        jkv(&o, "result", reason_name(probs[i].reason));
        jkv(&o, "detail", probs[i].detail);
        if (probs[i].arg) {
          jkey(&o, "arg");
          cg_json_fputs(f, probs[i].arg, probs[i].arg_len);
        }
        jclose(&o);
      }
      fputc(']', f);
      o.first = 0;
      jkey(&o, "status");
      fprintf(f, "%d", status);
      jkey(&o, "forwarded");
      fputs(status == 0 ? "true" : "false", f);
      print_headers(&o, buf, len > 0 ? (size_t)len : 0, res.vary, status);
      jclose(&o);
    } else {
      fprintf(f, "preflight    needed (%s): OPTIONS with Access-Control-Request-Method: %s%s\n",
              strcmp(method, "GET") && strcmp(method, "HEAD") && strcmp(method, "POST") ? "the method is not safelisted"
                                                                                       : "a header is not safelisted",
              method, n ? " and Access-Control-Request-Headers" : "");
      char answer[160];
      snprintf(answer, sizeof answer, "%d from corsgate%s, not forwarded", status,
               !preflight_ok && status != 403 ? " (debug: its headers make the browser name the method or header)"
                                              : "");
      if (preflight_ok)
        fprintf(f, "             allowed: %s\n",
                status ? answer : "forwarded to the upstream (preflight_continue), decorated");
      else if (np <= 1)
        fprintf(f, "             REFUSED, %s%s%.*s%s: %s\n", res.detail, res.detail_arg ? " (\"" : "",
                res.detail_arg ? (int)res.detail_arg_len : 0, res.detail_arg ? res.detail_arg : "",
                res.detail_arg ? "\")" : "", answer);
      else {
        fprintf(f, "             REFUSED for %d reasons%s: %s\n", all, all > np ? " (the first listed)" : "", answer);
        for (int i = 0; i < np; i++)
          fprintf(f, "               - %s%s%.*s%s\n", probs[i].detail, probs[i].arg ? " (\"" : "",
                  probs[i].arg ? (int)probs[i].arg_len : 0, probs[i].arg ? probs[i].arg : "", probs[i].arg ? "\")" : "");
      }
      print_headers(&o, buf, len > 0 ? (size_t)len : 0, res.vary, status);
    }
  } else if (!o.json) {
    fprintf(f, "preflight    not needed: a simple %s\n", method);
  }

  /* the request itself */
  cr.method = method;
  cr.method_len = strlen(method);
  int len = cg_cors_evaluate(r->cors, ov, &cr, &res, buf, sizeof buf);
  allowed = preflight_ok && len >= 0 && res.kind == CG_CORS_ACTUAL_ALLOWED;
  if (o.json) {
    jopen(&o, "actual");
    jkv(&o, "result", len < 0 ? "error" : reason_name(res.reason));
    jkv(&o, "detail", len < 0 ? "the answer does not fit" : res.detail);
    jkey(&o, "sent");
    fputs(preflight_ok ? "true" : "false", f);
    print_headers(&o, buf, len > 0 ? (size_t)len : 0, res.vary, 0);
    jclose(&o);
    jkey(&o, "allowed");
    fputs(allowed ? "true" : "false", f);
    jclose(&o);
    fputc('\n', f);
  } else {
    if (!preflight_ok)
      fprintf(f, "request      not sent: the browser stops at the refused preflight\n");
    else if (res.kind == CG_CORS_ACTUAL_ALLOWED)
      fprintf(f, "request      allowed; corsgate adds to the response:\n");
    else
      fprintf(f, "request      REFUSED (%s): proxied, and answered without CORS headers:\n", res.detail);
    if (preflight_ok) print_headers(&o, buf, len > 0 ? (size_t)len : 0, res.vary, 0);
    fprintf(f, "verdict      %s\n", allowed ? "the page can read the response"
                                            : "the browser blocks it (\"CORS error\" in the console)");
  }
  if (run.res.ov) cg_cors_override_free(run.res.ov);
  if (shared) cg_cors_override_free(shared);
  return allowed ? 0 : 1;
}
