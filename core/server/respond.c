/* Responses the gateway makes itself: errors, preflights, the echo
 * upstream, static routes, whatever protocol the exchange came in on (the
 * protocol renders them: x->ops->respond). They carry the route's CORS
 * headers like proxied ones, so a browser shows the real status instead of
 * "CORS error". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/internal.h"

/* Appends s escaped, and the closing quote (the opening one is the caller's). */
static void json_string_rest(cg_buf_t *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t run = 0; /* bytes copied as they are, in one go */
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch != '"' && ch != '\\' && ch >= 0x20 && ch < 0x7f) continue;
    cg_buf_add(b, s + run, i - run);
    run = i + 1;
    if (ch == '"' || ch == '\\') {
      char e[2] = {'\\', (char)ch};
      cg_buf_add(b, e, 2);
    } else {
      /* bytes, not text: escaped so the document stays valid JSON */
      char e[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
      cg_buf_add(b, e, 6);
    }
  }
  cg_buf_add(b, s + run, n - run);
  cg_buf_add(b, "\"", 1);
}

static void json_string(cg_buf_t *b, const char *s, size_t n) {
  cg_buf_add(b, "\"", 1);
  json_string_rest(b, s, n);
}

void cg_buf_json(cg_buf_t *b, const char *s, size_t n) { json_string(b, s, n); }

void cg_respond_own_lines(cg_exchange_t *x, cg_buf_t *b, const char *headers, size_t headers_len, const char *hsts) {
  cg_worker_date(x->w);
  cg_buf_add(b, x->w->date, x->w->date_len);
  if (headers_len) cg_buf_add(b, headers, headers_len);
  if (hsts) cg_buf_adds(b, hsts);
  cg_respond_cors_headers(x, b, NULL);
}

static int upstream_sets_hsts(const cg_head_t *uh) {
  static const char name[] = "strict-transport-security";
  for (int i = 0; i < uh->n; i++)
    if (cg_ascii_ieq(cg_head_name(uh, i), uh->hdrs[i].name_len, name, sizeof name - 1))
      return 1;
  return 0;
}

void cg_respond_upstream_lines(cg_exchange_t *x, cg_buf_t *b, int status, const cg_head_t *uh, int no_body,
                               const char *hsts) {
  for (int i = 0; i < uh->n; i++) {
    if (!cg_exchange_keep_upstream_header(x, uh, i, no_body)) continue;
    cg_buf_add(b, cg_head_name(uh, i), uh->hdrs[i].name_len);
    cg_buf_add(b, ": ", 2);
    cg_buf_add(b, cg_head_value(uh, i), uh->hdrs[i].val_len);
    cg_buf_add(b, "\r\n", 2);
  }
  cg_plugin_expose(x, uh, status);
  if (hsts && !upstream_sets_hsts(uh)) cg_buf_adds(b, hsts); /* an upstream's own policy wins */
  cg_respond_cors_headers(x, b, uh);
}

void cg_respond_error(cg_exchange_t *x, int status, const char *message) {
  cg_respond_error2(x, status, "", message);
}

static void error_response(cg_exchange_t *x, int status, const char *extra, size_t extra_len, const char *prefix,
                           const char *message);

void cg_respond_error2(cg_exchange_t *x, int status, const char *prefix, const char *message) {
  error_response(x, status, NULL, 0, prefix, message);
}

#define JSON_TYPE "Content-Type: application/json\r\n"
#define REFUSED_PREFIX "CORS preflight refused: "

static void error_body(cg_buf_t *body, int status, const char *prefix, const char *message) {
  cg_buf_adds(body, "{\"error\":\"");
  cg_buf_adds(body, prefix); /* a literal of ours: nothing to escape */
  json_string_rest(body, message, strlen(message));
  cg_buf_adds(body, ",\"status\":");
  cg_buf_addu(body, (uint64_t)status);
  cg_buf_adds(body, "}\n");
}

/* extra: header lines (each with its CRLF) after Content-Type. */
static void error_response(cg_exchange_t *x, int status, const char *extra, size_t extra_len, const char *prefix,
                           const char *message) {
  if (x->req.resp_started) {
    x->ops->abort(x); /* too late for an answer of ours */
    return;
  }
  char storage[512];
  cg_buf_t body = CG_BUF_ON(storage);
  error_body(&body, status, prefix, message);
  char hs[512];
  cg_buf_t heads = CG_BUF_ON(hs);
  cg_buf_adds(&heads, JSON_TYPE);
  if (extra) cg_buf_add(&heads, extra, extra_len);
  x->ops->respond(x, status, heads.data, heads.len, body.data, body.len);
  cg_buf_free(&heads);
  cg_buf_free(&body);
}

/* A refused preflight's body depends only on its reason, a static phrase
 * (cg_cors_result_t.detail), so each worker renders it once per phrase:
 * building it was a tenth of a refusal's instructions. */
static void refused_preflight(cg_exchange_t *x, const char *detail) {
  static __thread struct {
    const char *detail;
    size_t len;
    char body[240];
  } slots[16];
  if (x->req.resp_started) {
    x->ops->abort(x); /* too late for an answer of ours */
    return;
  }
  unsigned i = (unsigned)(((uintptr_t)detail >> 3) % 16);
  for (unsigned probe = 0; probe < 16; probe++, i = (i + 1) % 16) {
    if (slots[i].detail == detail) break;
    if (slots[i].detail) continue;
    cg_buf_t b = CG_BUF_ON(slots[i].body);
    error_body(&b, 403, REFUSED_PREFIX, detail);
    if (b.data != slots[i].body) { /* too long to keep */
      cg_buf_free(&b);
      break;
    }
    slots[i].detail = detail;
    slots[i].len = b.len;
    break;
  }
  if (slots[i].detail == detail) {
    x->ops->respond(x, 403, JSON_TYPE, sizeof JSON_TYPE - 1, slots[i].body, slots[i].len);
    return;
  }
  cg_respond_error2(x, 403, REFUSED_PREFIX, detail);
}

/* `debug = true` on a route: a refused preflight says why in a header, which
 * the browser's network panel shows (it never shows a preflight's body). The
 * offending bytes come from the request: only printable ASCII is kept. One
 * refused for its method or a header from an allowed origin also carries the
 * engine's named-refusal lines and an ok status (cg_cors_result_t.status), so
 * the console names the method or header; it has no body. */
static void refused_preflight_debug(cg_exchange_t *x) {
  const cg_cors_result_t *r = &x->req.cors;
  int named = r->status != 403; /* the header lines name the method or header to the browser */
  char line[400];
  size_t n = 0;
  const char *d = r->detail ? r->detail : "not allowed";
  n += (size_t)snprintf(line, sizeof line, "X-Corsgate-Reason: %s", d);
  if (r->detail_arg && r->detail_arg_len && n + 4 < sizeof line) {
    line[n++] = ' ';
    line[n++] = '"';
    for (size_t i = 0; i < r->detail_arg_len && i < 128 && n + 4 < sizeof line; i++) {
      unsigned char ch = (unsigned char)r->detail_arg[i];
      line[n++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    line[n++] = '"';
  }
  line[n++] = '\r';
  line[n++] = '\n';
  if (named) x->ops->respond(x, r->status, line, n, NULL, 0);
  else error_response(x, 403, line, n, REFUSED_PREFIX, d);
}

static void respond_echo(cg_exchange_t *x) {
  const cg_head_t *h = &x->head;
  const char *url = h->buf + h->url_off;
  const char *q = memchr(url, '?', h->url_len);
  size_t path_len = q ? (size_t)(q - url) : h->url_len;
  cg_buf_t b = {0};
  cg_buf_adds(&b, "{\"method\":");
  json_string(&b, h->buf + h->method_off, h->method_len);
  cg_buf_adds(&b, ",\"path\":");
  json_string(&b, url, path_len);
  cg_buf_adds(&b, ",\"query\":");
  json_string(&b, q ? q + 1 : "", q ? h->url_len - path_len - 1 : 0);
  cg_buf_adds(&b, ",\"headers\":{");
  int first = 1;
  for (int i = 0; i < h->n; i++) {
    const char *name = cg_head_name(h, i);
    size_t nl = h->hdrs[i].name_len;
    int seen = 0;
    for (int j = 0; j < i && !seen; j++) seen = cg_name_eq(cg_head_name(h, j), h->hdrs[j].name_len, name, nl);
    if (seen) continue;
    /* repeated headers are combined, as a field list is (RFC 9110 5.3) */
    cg_buf_t v = {0};
    for (int j = i; j >= 0; j = cg_head_find(h, name, nl, j + 1)) {
      if (v.len) cg_buf_add(&v, ", ", 2);
      cg_buf_add(&v, cg_head_value(h, j), h->hdrs[j].val_len);
    }
    char lower[256];
    size_t ll = nl < sizeof lower ? nl : sizeof lower;
    for (size_t k = 0; k < ll; k++) lower[k] = (char)(name[k] >= 'A' && name[k] <= 'Z' ? name[k] + 32 : name[k]);
    if (!first) cg_buf_add(&b, ",", 1);
    first = 0;
    json_string(&b, lower, ll);
    cg_buf_add(&b, ":", 1);
    json_string(&b, v.data ? v.data : "", v.len);
    cg_buf_free(&v);
  }
  cg_buf_addf(&b, "},\"body_bytes\":%llu,\"route\":", (unsigned long long)x->req.body_bytes);
  json_string(&b, x->req.route->name, strlen(x->req.route->name));
  cg_buf_adds(&b, "}\n");
  static const char ct[] = "Content-Type: application/json\r\n";
  x->ops->respond(x, 200, ct, sizeof ct - 1, b.data, b.len);
  cg_buf_free(&b);
}

void cg_respond_local(cg_exchange_t *x) {
  const cg_route_t *r = x->req.route;
  if (x->req.local_status && x->req.cors.kind == CG_CORS_PREFLIGHT_REFUSED) {
    if (r && r->debug) refused_preflight_debug(x);
    else refused_preflight(x, x->req.cors.detail ? x->req.cors.detail : "not allowed");
    return;
  }
  if (x->req.local_status) { /* an allowed preflight */
    x->ops->respond(x, x->req.local_status, NULL, 0, NULL, 0);
    return;
  }
  if (!r) {
    cg_respond_error(x, 404, "no route");
    return;
  }
  if (r->kind == CG_ROUTE_ECHO) {
    respond_echo(x);
    return;
  }
  const cg_static_conf_t *st = &r->static_resp;
  x->ops->respond(x, st->status, st->headers, st->headers_len, st->body, st->body_len);
}
