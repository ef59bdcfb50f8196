/* Responses the gateway makes itself: errors, the echo upstream, static
 * routes. They carry the route's CORS headers like proxied ones, so a
 * browser shows the real status instead of "CORS error". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/internal.h"
#include "util/authority.h"

/* The statuses the gateway sends itself, with their reason phrases. */
#define CG_STATUSES(X)                  \
  X(100, "Continue")                    \
  X(200, "OK")                          \
  X(201, "Created")                     \
  X(202, "Accepted")                    \
  X(204, "No Content")                  \
  X(301, "Moved Permanently")           \
  X(302, "Found")                       \
  X(304, "Not Modified")                \
  X(400, "Bad Request")                 \
  X(401, "Unauthorized")                \
  X(403, "Forbidden")                   \
  X(404, "Not Found")                   \
  X(405, "Method Not Allowed")          \
  X(408, "Request Timeout")             \
  X(413, "Content Too Large")           \
  X(417, "Expectation Failed")          \
  X(431, "Request Header Fields Too Large") \
  X(500, "Internal Server Error")       \
  X(502, "Bad Gateway")                 \
  X(503, "Service Unavailable")         \
  X(504, "Gateway Timeout")             \
  X(505, "HTTP Version Not Supported")   \
  X(508, "Loop Detected")

const char *cg_status_reason(int status) {
#define REASON(code, text) \
  case code:               \
    return text;
  switch (status) {
    CG_STATUSES(REASON)
  default: return "Unknown";
  }
#undef REASON
}

void cg_buf_status_line(cg_buf_t *b, int status) {
  /* Whole lines as literals: one copy instead of five appends per response. */
#define LINE(code, text)                                  \
  case code: {                                            \
    static const char line[] = "HTTP/1.1 " #code " " text "\r\n"; \
    cg_buf_add(b, line, sizeof line - 1);                 \
    return;                                               \
  }
  switch (status) {
    CG_STATUSES(LINE)
  }
#undef LINE
  cg_buf_adds(b, "HTTP/1.1 ");
  cg_buf_addu(b, (uint64_t)status);
  cg_buf_adds(b, " Unknown\r\n");
}

void cg_worker_date(cg_worker_t *w) {
  time_t now = time(NULL);
  if ((uint64_t)now == w->date_sec) return;
  w->date_sec = (uint64_t)now;
  struct tm tm;
  gmtime_r(&now, &tm);
  w->date_len = strftime(w->date, sizeof w->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

void cg_respond_common_headers(cg_conn_t *c, cg_buf_t *b) {
  cg_worker_date(c->w);
  cg_buf_add(b, c->w->date, c->w->date_len);
}

void cg_respond_cors_headers(cg_conn_t *c, cg_buf_t *b, const cg_head_t *upstream_head) {
  cg_req_t *r = &c->req;
  if (r->cors_untrusted) return;
  if (!r->cors_evaluated) {
    /* A gateway error before the route was chosen (a head that broke a limit,
     * a timeout): route what was parsed, so an allowed origin can read it. */
    if (!r->route && c->head.url_len && c->head.buf && c->head.buf[c->head.url_off] == '/') {
      const char *host = "";
      size_t host_len = 0;
      int i = cg_head_find_id(&c->head, CG_H_HOST, 0);
      int hl = i >= 0 ? cg_authority_parse(cg_head_value(&c->head, i), c->head.hdrs[i].val_len) : -1;
      if (hl >= 0) { /* an invalid Host routes as none */
        host = cg_head_value(&c->head, i);
        host_len = (size_t)hl;
      }
      r->route = cg_route_match(c->w->cfg, host, host_len, c->head.buf + c->head.url_off, c->head.url_len);
    }
    cg_cors_decide(c, 1);
  }
  if (r->cors_len) cg_buf_add(b, r->cors_hdrs, r->cors_len);
  const char *ours = r->cors.vary;
  if (!ours || !*ours) return;
  const char *vals[16];
  size_t lens[16];
  int n = 0;
  if (upstream_head)
    for (int i = cg_head_find_id(upstream_head, CG_H_VARY, 0); i >= 0 && n < 16; i = cg_head_find_id(upstream_head, CG_H_VARY, i + 1)) {
      vals[n] = cg_head_value(upstream_head, i);
      lens[n] = upstream_head->hdrs[i].val_len;
      n++;
    }
  if (n == 0) {
    /* Ours alone (every preflight and most responses): it is one of the
     * engine's own lists, already free of repeats, so it goes out as is. */
    cg_buf_adds(b, "Vary: ");
    cg_buf_adds(b, ours);
    cg_buf_add(b, "\r\n", 2);
    return;
  }
  char merged[1024];
  int m = cg_cors_vary_merge(vals, lens, n, ours, merged, sizeof merged);
  if (m > 0) {
    cg_buf_adds(b, "Vary: ");
    cg_buf_add(b, merged, (size_t)m);
    cg_buf_add(b, "\r\n", 2);
  } else if (m < 0) {
    /* the upstream's list does not fit: keep it whole, ours on a line of its own */
    for (int k = 0; k < n; k++) {
      cg_buf_adds(b, "Vary: ");
      cg_buf_add(b, vals[k], lens[k]);
      cg_buf_add(b, "\r\n", 2);
    }
    cg_buf_addf(b, "Vary: %s\r\n", ours);
  }
}

int cg_respond_skip_upstream_header(const cg_conn_t *c, const char *name, size_t len) {
  const cg_req_t *r = &c->req;
  if (!r->route || !r->route->cors) return 0;
  /* The route's policy is the only source of CORS headers: an upstream's
   * own would duplicate them or leak a "*". Its Vary is merged with ours. */
  if (cg_cors_policy_owns_header(r->route->cors, name, len)) return 1;
  return r->cors.vary && *r->cors.vary && cg_name_eq(name, len, "vary", 4);
}

/* Whether the head announces the end of the connection. A proxied head goes
 * out before the parser (paused at the request's head) has seen the request's
 * end, so that is not asked here: cg_conn_response_done closes anyway when a
 * response beat its request's end. */
static int will_close(const cg_conn_t *c) {
  /* A request not read to its end cannot be followed by the next one: say so. */
  return !c->req.keep_alive || c->w->draining || !cg_conn_msg_end_known(c);
}

void cg_respond_connection_header(cg_conn_t *c, cg_buf_t *b) {
  if (will_close(c)) {
    c->req.keep_alive = 0;
    cg_buf_adds(b, "Connection: close\r\n");
  } else if (c->req.http_minor == 0) {
    cg_buf_adds(b, "Connection: keep-alive\r\n");
  }
}

/* Writes a whole response: status line, the given header block, the common
 * and CORS headers, Content-Length, then body (omitted for HEAD). */
static void respond(cg_conn_t *c, int status, const char *headers, size_t headers_len,
                    const char *body, size_t body_len) {
  cg_req_t *r = &c->req;
  if (r->resp_started) return;
  r->resp_started = 1;
  r->status = status;
  char storage[2048];
  cg_buf_t b = CG_BUF_ON(storage);
  cg_buf_status_line(&b, status);
  cg_respond_common_headers(c, &b);
  if (headers_len) cg_buf_add(&b, headers, headers_len);
  cg_respond_cors_headers(c, &b, NULL);
  if (status >= 200 && status != 204 && status != 304) {
    cg_buf_adds(&b, "Content-Length: ");
    cg_buf_addu(&b, body_len);
    cg_buf_add(&b, "\r\n", 2);
  }
  cg_respond_connection_header(c, &b);
  cg_buf_add(&b, "\r\n", 2);
  int send_body = r->method != HTTP_HEAD && status != 204 && status != 304;
  cg_conn_write2(c, b.data, b.len, body, send_body ? body_len : 0);
  cg_buf_free(&b);
  cg_conn_response_done(c);
}

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

void cg_respond_error(cg_conn_t *c, int status, const char *message) {
  cg_respond_error2(c, status, "", message);
}

static void error_response(cg_conn_t *c, int status, const char *extra, size_t extra_len, const char *prefix,
                           const char *message);

void cg_respond_error2(cg_conn_t *c, int status, const char *prefix, const char *message) {
  error_response(c, status, NULL, 0, prefix, message);
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
static void error_response(cg_conn_t *c, int status, const char *extra, size_t extra_len, const char *prefix,
                           const char *message) {
  if (c->req.resp_started) {
    cg_conn_close(c);
    return;
  }
  char storage[512];
  cg_buf_t body = CG_BUF_ON(storage);
  error_body(&body, status, prefix, message);
  char hs[512];
  cg_buf_t heads = CG_BUF_ON(hs);
  cg_buf_adds(&heads, JSON_TYPE);
  if (extra) cg_buf_add(&heads, extra, extra_len);
  respond(c, status, heads.data, heads.len, body.data, body.len);
  cg_buf_free(&heads);
  cg_buf_free(&body);
}

/* A refused preflight's body depends only on its reason, a static phrase
 * (cg_cors_result_t.detail), so each worker renders it once per phrase:
 * building it was a tenth of a refusal's instructions. */
static void refused_preflight(cg_conn_t *c, const char *detail) {
  static __thread struct {
    const char *detail;
    size_t len;
    char body[240];
  } slots[16];
  if (c->req.resp_started) {
    cg_conn_close(c);
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
    respond(c, 403, JSON_TYPE, sizeof JSON_TYPE - 1, slots[i].body, slots[i].len);
    return;
  }
  cg_respond_error2(c, 403, REFUSED_PREFIX, detail);
}

/* `debug = true` on a route: a refused preflight says why in a header, which
 * the browser's network panel shows (it never shows a preflight's body). The
 * offending bytes come from the request: only printable ASCII is kept. One
 * refused for its method or a header from an allowed origin also carries the
 * engine's named-refusal lines and an ok status (cg_cors_result_t.status), so
 * the console names the method or header; it has no body. */
static void refused_preflight_debug(cg_conn_t *c) {
  const cg_cors_result_t *r = &c->req.cors;
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
  if (named) respond(c, r->status, line, n, NULL, 0);
  else error_response(c, 403, line, n, REFUSED_PREFIX, d);
}

static void respond_echo(cg_conn_t *c) {
  const cg_head_t *h = &c->head;
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
  cg_buf_addf(&b, "},\"body_bytes\":%llu,\"route\":", (unsigned long long)c->req.body_bytes);
  json_string(&b, c->req.route->name, strlen(c->req.route->name));
  cg_buf_adds(&b, "}\n");
  static const char ct[] = "Content-Type: application/json\r\n";
  respond(c, 200, ct, sizeof ct - 1, b.data, b.len);
  cg_buf_free(&b);
}

void cg_respond_local(cg_conn_t *c) {
  const cg_route_t *r = c->req.route;
  if (c->req.local_status && c->req.cors.kind == CG_CORS_PREFLIGHT_REFUSED) {
    if (r && r->debug) refused_preflight_debug(c);
    else refused_preflight(c, c->req.cors.detail ? c->req.cors.detail : "not allowed");
    return;
  }
  if (c->req.local_status) { /* an allowed preflight */
    respond(c, c->req.local_status, NULL, 0, NULL, 0);
    return;
  }
  if (!r) {
    cg_respond_error(c, 404, "no route");
    return;
  }
  if (r->kind == CG_ROUTE_ECHO) {
    respond_echo(c);
    return;
  }
  const cg_static_conf_t *st = &r->static_resp;
  respond(c, st->status, st->headers, st->headers_len, st->body, st->body_len);
}
