/* gw.http.request{ method, url, headers, body, timeout }: an HTTP/1.1 client
 * on the worker's loop, for hooks that ask a tenant service. Legal in
 * origin() only; it yields the hook's coroutine until the answer (or a
 * failure) arrives, and keeps connections alive per host:port.
 *
 * Returns { status = n, headers = { lower-case name = value }, body = s },
 * or nil and an error string ("timeout", "connection refused", ...): an
 * expected failure is a value, misuse raises (STYLE.md). */
#include <arpa/inet.h>
#include <lauxlib.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/host_internal.h"
#include "http/buf.h"
#include "http/head.h"

#define HTTP_MAX_IDLE 16
#define HTTP_MAX_BODY (1 << 20)
#define HTTP_IDLE_MS 30000

typedef struct http_conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_timer_t timer;
  cg_lua_host_t *host;
  cg_hook_call_t *call; /* NULL while idle */
  cg_list_t idle_link;
  char key[100]; /* "ip:port" */
  struct sockaddr_storage addr;
  llhttp_t parser;
  cg_head_t head;
  cg_buf_t body;
  cg_buf_t out;
  int handles, closing, connected, idle, reused, got_bytes, done, too_big, eof, is_head;
  int status;
  uint64_t timeout_ms;
  char deferred[64];
} http_conn_t;

static llhttp_settings_t settings;
static uv_once_t once = UV_ONCE_INIT;

static void conn_close(http_conn_t *hc);
static void on_idle_timeout(uv_timer_t *t) { conn_close(t->data); }
static http_conn_t *conn_new(cg_lua_host_t *host, const char *key, const struct sockaddr_storage *addr);
static void conn_start(http_conn_t *hc);

static void on_closed(uv_handle_t *h) {
  http_conn_t *hc = h->data;
  if (--hc->handles > 0) return;
  cg_head_free(&hc->head);
  cg_buf_free(&hc->body);
  cg_buf_free(&hc->out);
  free(hc);
}

static void conn_close(http_conn_t *hc) {
  if (hc->closing) return;
  hc->closing = 1;
  if (hc->idle) {
    cg_list_remove(&hc->idle_link);
    hc->host->http_idle_count--;
    hc->idle = 0;
  }
  uv_close((uv_handle_t *)&hc->timer, on_closed);
  uv_close((uv_handle_t *)&hc->tcp, on_closed);
}

/* The hook died first (deadline): drop the exchange with its connection. */
static void http_cancel(void *io) {
  http_conn_t *hc = io;
  hc->call = NULL;
  conn_close(hc);
}

/* Resumes the hook with (nil, err). */
static void on_deferred_fail(uv_timer_t *t);

static void fail(http_conn_t *hc, const char *err) {
  cg_hook_call_t *call = hc->call;
  if (call && call->host->current == call) {
    /* failed while starting, before the hook yielded: resume it from the loop */
    if (err != hc->deferred) snprintf(hc->deferred, sizeof hc->deferred, "%s", err); /* never onto itself */
    uv_timer_start(&hc->timer, on_deferred_fail, 0, 0);
    return;
  }
  hc->call = NULL;
  conn_close(hc);
  if (!call) return;
  call->io = NULL;
  call->cancel = NULL;
  lua_pushnil(call->co);
  lua_pushstring(call->co, err);
  cg_lua_resume(call, 2);
}

static void on_deferred_fail(uv_timer_t *t) {
  http_conn_t *hc = t->data;
  fail(hc, hc->deferred);
}

static void succeed(http_conn_t *hc) {
  cg_hook_call_t *call = hc->call;
  hc->call = NULL;
  lua_State *co = call->co;
  lua_createtable(co, 0, 3);
  lua_pushinteger(co, hc->status);
  lua_setfield(co, -2, "status");
  lua_pushlstring(co, hc->body.data ? hc->body.data : "", hc->body.len);
  lua_setfield(co, -2, "body");
  lua_createtable(co, 0, hc->head.n);
  for (int i = 0; i < hc->head.n; i++) {
    char name[128];
    size_t nl = hc->head.hdrs[i].name_len < sizeof name ? hc->head.hdrs[i].name_len : sizeof name;
    for (size_t k = 0; k < nl; k++) {
      char ch = cg_head_name(&hc->head, i)[k];
      name[k] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    lua_pushlstring(co, name, nl);
    lua_pushlstring(co, cg_head_value(&hc->head, i), hc->head.hdrs[i].val_len);
    lua_rawset(co, -3);
  }
  lua_setfield(co, -2, "headers");
  /* back to the pool, unless the answer said otherwise */
  cg_lua_host_t *h = hc->host;
  if (!hc->eof && llhttp_should_keep_alive(&hc->parser) && h->http_idle_count < HTTP_MAX_IDLE && !hc->closing) {
    llhttp_init(&hc->parser, HTTP_RESPONSE, &settings);
    hc->parser.data = hc;
    cg_head_reset(&hc->head);
    hc->body.len = 0;
    hc->got_bytes = hc->done = 0;
    hc->idle = 1;
    cg_list_push(&h->http_idle, &hc->idle_link);
    h->http_idle_count++;
    uv_timer_start(&hc->timer, on_idle_timeout, HTTP_IDLE_MS, 0);
  } else {
    conn_close(hc);
  }
  call->io = NULL;
  call->cancel = NULL;
  cg_lua_resume(call, 1);
}

static int on_status(llhttp_t *p, const char *at, size_t len) { return cg_head_on_url(&((http_conn_t *)p->data)->head, at, len); }
static int on_field(llhttp_t *p, const char *at, size_t len) { return cg_head_on_field(&((http_conn_t *)p->data)->head, at, len); }
static int on_value(llhttp_t *p, const char *at, size_t len) { return cg_head_on_value(&((http_conn_t *)p->data)->head, at, len); }
static int on_value_complete(llhttp_t *p) {
  cg_head_on_value_complete(&((http_conn_t *)p->data)->head);
  return 0;
}
static int on_headers_complete(llhttp_t *p) {
  http_conn_t *hc = p->data;
  cg_head_sync(&hc->head);
  hc->status = p->status_code;
  return hc->is_head && hc->status >= 200 ? 1 : 0; /* 1: a HEAD answer has no body */
}
static int on_body(llhttp_t *p, const char *at, size_t len) {
  http_conn_t *hc = p->data;
  if (hc->body.len + len > HTTP_MAX_BODY) {
    hc->too_big = 1;
    return -1;
  }
  cg_buf_add(&hc->body, at, len);
  return 0;
}
static int on_message_complete(llhttp_t *p) {
  http_conn_t *hc = p->data;
  if (hc->status >= 100 && hc->status < 200) { /* interim: the final answer follows */
    cg_head_reset(&hc->head);
    return 0;
  }
  hc->done = 1;
  return HPE_PAUSED;
}

static void init_settings(void) {
  llhttp_settings_init(&settings);
  settings.on_status = on_status;
  settings.on_header_field = on_field;
  settings.on_header_value = on_value;
  settings.on_header_value_complete = on_value_complete;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  static __thread char rbuf[65536];
  (void)suggested;
  buf->base = rbuf;
  buf->len = sizeof rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  http_conn_t *hc = container_of((uv_tcp_t *)s, http_conn_t, tcp);
  if (nread == 0 || hc->closing) return;
  if (hc->idle || !hc->call) {
    conn_close(hc);
    return;
  }
  if (nread < 0) {
    if (nread == UV_EOF && hc->got_bytes) {
      hc->eof = 1;
      llhttp_finish(&hc->parser); /* a body that ends with the connection */
      if (hc->done) {
        succeed(hc);
        return;
      }
    }
    if (hc->reused && !hc->got_bytes) {
      /* the service closed a pooled connection as we reused it: once more, fresh */
      http_conn_t *fresh = conn_new(hc->host, hc->key, &hc->addr);
      if (fresh) {
        cg_hook_call_t *call = hc->call;
        cg_buf_add(&fresh->out, hc->out.data, hc->out.len);
        fresh->is_head = hc->is_head;
        fresh->call = call;
        call->io = fresh;
        hc->call = NULL;
        fresh->timeout_ms = hc->timeout_ms;
        conn_close(hc);
        conn_start(fresh);
        return;
      }
    }
    fail(hc, nread == UV_EOF ? "connection closed" : uv_strerror((int)nread));
    return;
  }
  hc->got_bytes = 1;
  hc->head.exec_start = buf->base;
  llhttp_errno_t err = llhttp_execute(&hc->parser, buf->base, (size_t)nread);
  cg_head_sync(&hc->head);
  if (err == HPE_PAUSED && hc->done) {
    succeed(hc);
    return;
  }
  if (err != HPE_OK) fail(hc, hc->too_big ? "response body too large" : "invalid response");
}

static void on_timeout(uv_timer_t *t) {
  http_conn_t *hc = t->data;
  fail(hc, "timeout");
}

static void on_written(uv_write_t *wr, int status) {
  http_conn_t *hc = wr->data;
  free(wr);
  if (status < 0 && !hc->closing) fail(hc, "write failed");
}

static void send_request(http_conn_t *hc) {
  uv_write_t *wr = malloc(sizeof *wr);
  if (!wr) {
    fail(hc, "out of memory");
    return;
  }
  wr->data = hc;
  uv_buf_t b = uv_buf_init(hc->out.data, (unsigned)hc->out.len);
  if (uv_write(wr, (uv_stream_t *)&hc->tcp, &b, 1, on_written) < 0) {
    free(wr);
    fail(hc, "write failed");
    return;
  }
  uv_read_start((uv_stream_t *)&hc->tcp, on_alloc, on_read);
}

static void on_timeout(uv_timer_t *t);
static void on_connect(uv_connect_t *creq, int status);

static http_conn_t *conn_new(cg_lua_host_t *host, const char *key, const struct sockaddr_storage *addr) {
  http_conn_t *hc = calloc(1, sizeof *hc);
  if (!hc) return NULL;
  hc->host = host;
  snprintf(hc->key, sizeof hc->key, "%s", key);
  hc->addr = *addr;
  cg_list_init(&hc->idle_link);
  cg_head_init(&hc->head, 65536, 200);
  llhttp_init(&hc->parser, HTTP_RESPONSE, &settings);
  hc->parser.data = hc;
  uv_tcp_init(host->loop, &hc->tcp);
  uv_timer_init(host->loop, &hc->timer);
  hc->tcp.data = hc->timer.data = hc;
  hc->handles = 2;
  return hc;
}

/* Sends hc->out on a pooled connection, or connects first. */
static void conn_start(http_conn_t *hc) {
  uv_update_time(hc->timer.loop); /* the hook may have run long since this iteration began */
  uv_timer_start(&hc->timer, on_timeout, hc->timeout_ms, 0);
  if (hc->reused) {
    send_request(hc);
  } else if (uv_tcp_connect(&hc->creq, &hc->tcp, (struct sockaddr *)&hc->addr, on_connect) < 0) {
    fail(hc, "connect failed");
  }
}

static void on_connect(uv_connect_t *creq, int status) {
  http_conn_t *hc = container_of(creq, http_conn_t, creq);
  if (hc->closing) return;
  if (status < 0) {
    fail(hc, status == UV_ECONNREFUSED ? "connection refused" : uv_strerror(status));
    return;
  }
  hc->connected = 1;
  uv_tcp_nodelay(&hc->tcp, 1);
  send_request(hc);
}

/* url: http://host[:port]/path with host an IPv4 literal, [IPv6] or
 * localhost. No resolver runs on the worker's loop for a hook. */
static int parse_url(const char *url, struct sockaddr_storage *addr, char *hostport, size_t hpl, const char **path) {
  if (strncmp(url, "http://", 7) != 0) return -1;
  const char *h = url + 7;
  const char *slash = strchr(h, '/');
  size_t hl = slash ? (size_t)(slash - h) : strlen(h);
  if (hl == 0 || hl >= hpl - 6) return -1;
  memcpy(hostport, h, hl);
  hostport[hl] = 0;
  *path = slash ? slash : "/";
  char tmp[128];
  int has_port = (hostport[0] == '[') ? strstr(hostport, "]:") != NULL : strchr(hostport, ':') != NULL;
  snprintf(tmp, sizeof tmp, "%s%s", hostport, has_port ? "" : ":80");
  socklen_t sl;
  return cg_config_parse_hostport(tmp, addr, &sl);
}

int cg_lua_http_request(lua_State *L) {
  cg_hook_call_t *call = cg_lua_yieldable(L, "gw.http.request");
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "url");
  const char *url = luaL_checkstring(L, -1);
  lua_getfield(L, 1, "method");
  const char *method = luaL_optstring(L, -1, "GET");
  for (const char *m = method; *m; m++)
    if (*m < 'A' || *m > 'Z') return luaL_error(L, "gw.http.request: invalid method");
  lua_getfield(L, 1, "body");
  size_t body_len = 0;
  const char *body = luaL_optlstring(L, -1, NULL, &body_len);
  lua_getfield(L, 1, "timeout");
  double timeout = luaL_optnumber(L, -1, 5.0);
  if (!(timeout >= 0)) return luaL_error(L, "gw.http.request: timeout must be a number of seconds, not negative");
  if (!(timeout < 1e12)) timeout = 1e12; /* the hook's own deadline comes first anyway */
  struct sockaddr_storage addr;
  char hostport[100];
  const char *path;
  if (parse_url(url, &addr, hostport, sizeof hostport, &path) != 0)
    return luaL_error(L, "gw.http.request: url must be http://IP-or-localhost[:port]/path, got %s", url);
  if (strpbrk(path, " \r\n")) return luaL_error(L, "gw.http.request: invalid characters in url");
  uv_once(&once, init_settings);

  cg_lua_host_t *host = call->host;
  char key[100];
  snprintf(key, sizeof key, "%s", hostport);
  http_conn_t *hc = NULL;
  for (cg_list_t *it = host->http_idle.next; it != &host->http_idle; it = it->next) {
    http_conn_t *c = container_of(it, http_conn_t, idle_link);
    if (strcmp(c->key, key) == 0) {
      hc = c;
      break;
    }
  }
  if (hc) {
    cg_list_remove(&hc->idle_link);
    host->http_idle_count--;
    hc->idle = 0;
    hc->reused = 1;
    uv_timer_stop(&hc->timer);
  } else {
    hc = conn_new(host, key, &addr);
    if (!hc) {
      lua_pushnil(L);
      lua_pushstring(L, "out of memory");
      return 2;
    }
  }
  hc->call = call;
  hc->out.len = 0;
  cg_buf_addf(&hc->out, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, hostport);
  lua_getfield(L, 1, "headers");
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
        const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
        if (strpbrk(k, " :\r\n") || strpbrk(v, "\r\n")) {
          conn_close(hc);
          return luaL_error(L, "gw.http.request: invalid header %s", k);
        }
        cg_buf_addf(&hc->out, "%s: %s\r\n", k, v);
      }
      lua_pop(L, 1);
    }
  }
  if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0)
    cg_buf_addf(&hc->out, "Content-Length: %zu\r\n", body_len);
  cg_buf_add(&hc->out, "\r\n", 2);
  if (body_len) cg_buf_add(&hc->out, body, body_len);
  hc->is_head = strcmp(method, "HEAD") == 0;
  hc->timeout_ms = (uint64_t)(timeout * 1000);
  call->io = hc;
  call->cancel = http_cancel;
  /* A failure to start resumes the hook with (nil, err) once it has yielded;
   * the yield below happens first, since fail() resumes only a yielded call. */
  conn_start(hc);
  return lua_yield(L, 0);
}

void cg_lua_http_free(cg_lua_host_t *h) {
  while (!cg_list_empty(&h->http_idle)) conn_close(container_of(h->http_idle.next, http_conn_t, idle_link));
}
