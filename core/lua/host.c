/* The plugin host: LuaJIT states, hook coroutines, budgets.
 *
 * The JIT is off in plugin states. LuaJIT's compiled traces never call count
 * hooks, so a compiled `while true do end` could never be stopped; interpreted,
 * every run is metered. Decisions are cached per origin, so the interpreter's
 * cost is paid once per origin, not per request. */
#include "lua/host.h"

#include <errno.h>
#include <lauxlib.h>
#include <luajit.h>
#include <lualib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lua/host_internal.h"
#include "util/hash.h"
#include "util/log.h"

extern const char cg_lua_prelude[];
extern const size_t cg_lua_prelude_len;

/* The host whose hook is running on this thread: the count hook and the gw.*
 * primitives find their call through it. One state per worker thread. */
static __thread cg_lua_host_t *tls_host;

#define HOOK_EVERY 1000 /* instructions between budget checks */

/* --- helpers ------------------------------------------------------------- */

cg_hook_call_t *cg_lua_current(lua_State *L) {
  cg_lua_host_t *h = tls_host;
  if (!h || !h->current) return NULL;
  (void)L;
  return h->current;
}

static uint64_t now_ns(void) { return uv_hrtime(); }

void cg_lua_kill(cg_hook_call_t *call, const char *why) {
  if (!call->killed) {
    call->killed = 1;
    snprintf(call->reason, sizeof call->reason, "%s", why);
  }
}

/* Logs a hook failure at most once a minute per origin: a broken plugin under
 * traffic must not flood the log. An origin is known by its keyed hash (as in
 * the decision cache, so a client cannot pick origins that collide with one
 * it wants kept out of the log); another origin landing on the same slot
 * takes it over and is logged. Origins made up by the thousand would then
 * each get their line, so a worker writes at most CG_LUA_LOG_SLOTS lines a
 * minute in all, what the slots bounded before. */
static void log_failure(cg_lua_host_t *h, const cg_hook_call_t *call, const char *msg) {
  uint64_t hash = cg_hash(call->origin, strlen(call->origin), 0);
  uint64_t now = uv_now(h->loop);
  struct cg_lua_log_slot *slot = &h->log_slots[hash % CG_LUA_LOG_SLOTS];
  if (slot->at && slot->hash == hash && now - slot->at < 60000) return;
  if (now / 60000 != h->log_minute) {
    h->log_minute = now / 60000;
    h->log_lines = 0;
  }
  if (h->log_lines >= CG_LUA_LOG_SLOTS) return;
  h->log_lines++;
  slot->hash = hash;
  slot->at = now ? now : 1;
  if (call->kind == CG_HOOK_CERT)
    cg_log_warn("plugin %s (listener %s): no certificate for %s, the handshake fails: %s", call->plugin,
                call->listener->address, call->origin, msg);
  else
    cg_log_warn("plugin %s (route %s): origin %s denied: %s", call->plugin, call->route->name,
                call->origin[0] ? call->origin : "-", msg);
}

/* --- the count hook ------------------------------------------------------ */

static void count_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  cg_lua_host_t *h = tls_host;
  cg_hook_call_t *call = h ? h->current : NULL;
  if (!call) return;
  call->instructions += HOOK_EVERY;
  if (!call->killed) {
    if (call->instructions > h->max_instructions)
      cg_lua_kill(call, "instruction budget exceeded");
    else if (now_ns() > call->deadline_ns)
      cg_lua_kill(call, "timed out");
    else if ((size_t)lua_gc(L, LUA_GCCOUNT, 0) > h->memory_kb) {
      lua_gc(L, LUA_GCCOLLECT, 0);
      if ((size_t)lua_gc(L, LUA_GCCOUNT, 0) > h->memory_kb) cg_lua_kill(call, "memory limit exceeded");
    }
  }
  /* Raised again at every check until it leaves the hook: the sandbox's
   * pcall rethrows it, so a plugin cannot swallow it. */
  if (call->killed) luaL_error(L, "%s", call->reason);
}

/* --- the state's allocator ------------------------------------------------ */

/* The count hook sees memory only every HOOK_EVERY instructions, and one
 * string operation (a rep, a gsub, a doubling `..`) can ask for gigabytes in
 * between. So while a hook runs, one large growth that would take the state
 * past memory_mb is refused where it is asked for: LuaJIT raises "not enough
 * memory" in the hook, which fails closed. Small growths are left to the
 * periodic check, and natives that hold something of their own while they
 * build a value (read_file's file, cjson's buffers) are never refused: the
 * error would unwind past it. */
#define BIG_ALLOC ((size_t)64 * 1024)

static void *state_alloc(void *ud, void *p, size_t osize, size_t nsize) {
  cg_lua_host_t *h = ud;
  if (nsize == 0) {
    free(p);
    if (h) h->mem_used -= osize;
    return NULL;
  }
  if (h && h->current && !h->in_native && nsize > osize && nsize - osize >= BIG_ALLOC &&
      h->mem_used + (nsize - osize) > h->memory_kb * 1024) {
    cg_lua_kill(h->current, "memory limit exceeded");
    return NULL;
  }
  void *q = p ? realloc(p, nsize) : malloc(nsize);
  if (q && h) h->mem_used = h->mem_used - osize + nsize;
  return q;
}

static int on_panic(lua_State *L) {
  /* an error outside any pcall: LuaJIT aborts the process after this */
  cg_log_error("plugin host: unprotected Lua error: %s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
  return 0;
}

/* --- natives the prelude exposes ----------------------------------------- */

static int l_killed(lua_State *L) {
  cg_hook_call_t *call = cg_lua_current(L);
  lua_pushboolean(L, call && call->killed);
  return 1;
}

static int l_kill_reason(lua_State *L) {
  cg_hook_call_t *call = cg_lua_current(L);
  lua_pushstring(L, call && call->killed ? call->reason : "killed");
  return 1;
}

static int l_check_alloc(lua_State *L) {
  double size = luaL_checknumber(L, 1);
  cg_lua_host_t *h = tls_host;
  cg_hook_call_t *call = cg_lua_current(L);
  if (h && call && (size / 1024.0 + (double)lua_gc(L, LUA_GCCOUNT, 0)) > (double)h->memory_kb) {
    cg_lua_kill(call, "memory limit exceeded");
    return luaL_error(L, "%s", call->reason);
  }
  return 0;
}

/* Pushes a table of headers: lower-case names, repeated ones comma-joined as
 * a field list reads. */
static void push_headers(lua_State *L, const cg_lua_headers_t *hs) {
  lua_createtable(L, 0, hs->n);
  for (int i = 0; i < hs->n; i++) {
    char name[128];
    size_t nl = hs->name_lens[i] < sizeof name ? hs->name_lens[i] : sizeof name;
    for (size_t k = 0; k < nl; k++) {
      char ch = hs->names[i][k];
      name[k] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    lua_pushlstring(L, name, nl);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3); /* stack: headers name previous */
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushlstring(L, hs->values[i], hs->value_lens[i]);
    } else {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, hs->values[i], hs->value_lens[i]);
      lua_concat(L, 3);
    }
    lua_rawset(L, -3);
  }
}

/* ctx.headers, built on the first read. A token other than the running
 * hook's (a ctx kept from an earlier run) gets an empty table. */
static int l_headers(lua_State *L) {
  cg_hook_call_t *call = cg_lua_current(L);
  if (!call || lua_type(L, 1) != LUA_TNUMBER || lua_tonumber(L, 1) != call->token) {
    lua_newtable(L);
    lua_pushboolean(L, 0);
    return 2;
  }
  push_headers(L, &call->hdrs);
  lua_pushboolean(L, 1);
  return 2;
}

/* The request's headers outlive it only in this copy, taken when its hook
 * first waits: one block, which *hs is made to point into. NULL when out of
 * memory (*hs is left as it was). */
static void *copy_headers(cg_lua_headers_t *hs) {
  size_t n = (size_t)hs->n, bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += hs->name_lens[i] + hs->value_lens[i];
  void *block = malloc(n * (2 * sizeof(char *) + 2 * sizeof(size_t)) + bytes);
  if (!block) return NULL;
  const char **names = block, **values = names + n;
  size_t *name_lens = (size_t *)(values + n), *value_lens = name_lens + n;
  char *p = (char *)(value_lens + n);
  for (size_t i = 0; i < n; i++) {
    memcpy(p, hs->names[i], hs->name_lens[i]);
    names[i] = p, name_lens[i] = hs->name_lens[i], p += hs->name_lens[i];
    memcpy(p, hs->values[i], hs->value_lens[i]);
    values[i] = p, value_lens[i] = hs->value_lens[i], p += hs->value_lens[i];
  }
  hs->names = names, hs->values = values, hs->name_lens = name_lens, hs->value_lens = value_lens;
  return block;
}

/* Wall-clock seconds (like ngx.now()), so plugins can compare with dates in tenant data. */
static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
  return 1;
}

static int l_log(lua_State *L) {
  static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
  int level = luaL_checkoption(L, 1, NULL, levels);
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 2; i <= n; i++) {
    lua_getglobal(L, "tostring");
    lua_pushvalue(L, i);
    lua_call(L, 1, 1);
    if (i > 2) luaL_addchar(&b, ' ');
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  cg_hook_call_t *call = cg_lua_current(L);
  cg_log(level, "plugin %s: %s", call ? call->plugin : "-", lua_tostring(L, -1));
  return 0;
}

static int l_read_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  FILE *f = fopen(path, "rb");
  if (!f) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  /* a tenant list, not a data set: bounded so a plugin cannot stall a worker */
  enum { MAX_FILE = 8 << 20 };
  cg_lua_host_t *h = tls_host;
  if (h) h->in_native++; /* f stays open while the string grows */
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t total = 0, n;
  char chunk[8192];
  int too_large = 0;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    total += n;
    if (total > MAX_FILE) {
      too_large = 1;
      break;
    }
    luaL_addlstring(&b, chunk, n);
  }
  fclose(f);
  if (h) h->in_native--;
  if (too_large) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: larger than %d bytes", path, (int)MAX_FILE);
    return 2;
  }
  luaL_pushresult(&b);
  return 1;
}

/* cjson.safe's encode or decode (the upvalue), with the allocator's refusals
 * off: cjson keeps scratch buffers of its own that a refusal would unwind
 * past. What it builds still counts at the next check. */
static int l_json(lua_State *L) {
  cg_lua_host_t *h = tls_host;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  if (h) h->in_native++;
  int rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  if (h) h->in_native--;
  if (rc != 0) return lua_error(L);
  return lua_gettop(L);
}

static int l_file_mtime(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushnumber(L, (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9);
  return 1;
}

/* gw.sleep(seconds): legal in origin() only. */
typedef struct sleep_io {
  uv_timer_t timer;
  cg_hook_call_t *call;
} sleep_io_t;

static void on_sleep_closed(uv_handle_t *hd) { free(hd->data); }

static void sleep_cancel(void *io) {
  sleep_io_t *s = io;
  uv_close((uv_handle_t *)&s->timer, on_sleep_closed);
}

static void on_sleep(uv_timer_t *t) {
  sleep_io_t *s = t->data;
  cg_hook_call_t *call = s->call;
  call->io = NULL;
  call->cancel = NULL;
  uv_close((uv_handle_t *)&s->timer, on_sleep_closed);
  cg_lua_resume(call, 0);
}

static int l_sleep(lua_State *L) {
  cg_hook_call_t *call = cg_lua_yieldable(L, "gw.sleep");
  double s = luaL_checknumber(L, 1);
  if (!(s >= 0)) return luaL_argerror(L, 1, "negative duration"); /* NaN too */
  sleep_io_t *io = calloc(1, sizeof *io);
  if (!io) return luaL_error(L, "gw.sleep: out of memory");
  io->call = call;
  uv_timer_init(call->host->loop, &io->timer);
  io->timer.data = io;
  /* The loop's clock stopped when this iteration began, and hooks may have
   * run since: without the update the sleep could end that much early. */
  uv_update_time(call->host->loop);
  double ms = s * 1000;
  uv_timer_start(&io->timer, on_sleep, !(ms < 1e15) ? (uint64_t)1e15 : (uint64_t)ms + (ms > (uint64_t)ms), 0);
  call->io = io;
  call->cancel = sleep_cancel;
  return lua_yield(L, 0);
}

cg_hook_call_t *cg_lua_yieldable(lua_State *L, const char *what) {
  cg_hook_call_t *call = cg_lua_current(L);
  if (!call || call->kind == CG_HOOK_EXPOSE || L != call->co)
    luaL_error(L, "%s: only legal in origin() and certificate(), where the hook may wait", what);
  return call;
}

/* --- running hooks --------------------------------------------------------- */

static void on_call_timer_closed(uv_handle_t *hd) {
  cg_hook_call_t *call = hd->data;
  free(call);
}

static void call_free(cg_hook_call_t *call) {
  cg_lua_host_t *h = call->host;
  if (call->cancel) {
    call->cancel(call->io);
    call->cancel = NULL;
    call->io = NULL;
  }
  if (call->co_ref != LUA_NOREF) {
    if (call->recycle && h->n_co_pool < CG_LUA_CO_POOL) {
      lua_settop(call->co, 0);
      h->co_pool[h->n_co_pool] = call->co;
      h->co_pool_ref[h->n_co_pool++] = call->co_ref;
    } else {
      luaL_unref(h->L, LUA_REGISTRYINDEX, call->co_ref);
    }
  }
  call->co_ref = LUA_NOREF;
  free(call->hdr_copy);
  call->hdr_copy = NULL;
  cg_list_remove(&call->link);
  if (call->timer_armed)
    uv_close((uv_handle_t *)&call->timer, on_call_timer_closed);
  else
    free(call);
}

/* 1 when the hook died (killed by a budget, or an error: why into err),
 * 0 when it returned (its values on the coroutine's stack). */
static int run_failed(cg_hook_call_t *call, int rc, char *err, size_t n) {
  if (call->killed) {
    snprintf(err, n, "%s", call->reason);
    if (strcmp(call->reason, "timed out") == 0) call->host->stats.timeouts++;
    return 1;
  }
  if (rc != 0) {
    snprintf(err, n, "%s", lua_isstring(call->co, -1) ? lua_tostring(call->co, -1) : "error");
    return 1;
  }
  return 0;
}

static void finish_cert(cg_hook_call_t *call, int rc) {
  cg_lua_host_t *h = call->host;
  cg_lua_cert_result_t res;
  memset(&res, 0, sizeof res);
  res.ttl = -1;
  res.failed = run_failed(call, rc, res.error, sizeof res.error);
  if (!res.failed) {
    cg_lua_decode_cert(call->co, &res);
    call->recycle = 1;
  }
  if (res.failed) {
    h->stats.errors++;
    log_failure(h, call, res.error);
  }
  cg_lua_cert_cb cb = call->cert_cb;
  void *arg = call->arg;
  call->cert_cb = NULL;
  call_free(call);
  if (cb) cb(arg, &res);
  else free(res.cert), free(res.key);
}

static void finish(cg_hook_call_t *call, int rc) {
  cg_lua_host_t *h = call->host;
  if (call->kind == CG_HOOK_CERT) {
    finish_cert(call, rc);
    return;
  }
  cg_lua_result_t res;
  memset(&res, 0, sizeof res);
  res.ttl = -1;
  res.failed = run_failed(call, rc, res.error, sizeof res.error);
  if (!res.failed) {
    cg_lua_decode_decision(call, call->co, &res);
    call->recycle = 1;
  }
  if (res.failed) {
    h->stats.errors++;
    res.allow = 0;
    if (res.ov) cg_cors_override_free(res.ov), res.ov = NULL;
    log_failure(h, call, res.error);
  }
  cg_lua_origin_cb cb = call->cb;
  void *arg = call->arg;
  call->cb = NULL;
  call_free(call);
  if (cb) cb(arg, &res);
  else if (res.ov) cg_cors_override_free(res.ov);
}

static void on_deadline(uv_timer_t *t);

void cg_lua_resume(cg_hook_call_t *call, int nargs) {
  cg_lua_host_t *h = call->host;
  cg_lua_host_t *prev = tls_host;
  tls_host = h;
  h->current = call;
  h->in_native = 0;
  int rc = lua_resume(call->co, nargs);
  h->current = NULL;
  tls_host = prev;
  if (rc == LUA_YIELD && !call->killed) {
    if (!call->io) {
      /* a bare coroutine.yield: nothing would ever resume it */
      cg_lua_kill(call, "yielded outside a gw.* call");
      finish(call, LUA_ERRRUN);
      return;
    }
    if (call->hdrs.n && !call->hdr_copy) {
      call->hdr_copy = copy_headers(&call->hdrs);
      if (!call->hdr_copy) {
        /* hdrs still points into the request, which goes away now; a hook
         * shown no headers instead would decide on a request that is not
         * the one it got, and the decision would be cached: deny */
        cg_lua_kill(call, "out of memory");
        finish(call, LUA_ERRRUN);
        return;
      }
    }
    if (!call->timer_armed) {
      /* The wall clock of a waiting hook. One that never waits is bounded by
       * the count hook's clock check, and costs no timer. */
      uint64_t now = now_ns(), left = call->deadline_ns > now ? (call->deadline_ns - now) / 1000000 : 0;
      uv_timer_init(h->loop, &call->timer);
      uv_update_time(h->loop); /* the loop's clock is as old as this iteration */
      call->timer.data = call;
      call->timer_armed = 1;
      uv_timer_start(&call->timer, on_deadline, left, 0);
    }
    return;
  }
  finish(call, rc == LUA_YIELD ? LUA_ERRRUN : rc);
}

static void on_deadline(uv_timer_t *t) {
  cg_hook_call_t *call = t->data;
  /* Only a waiting hook gets here: a running one is stopped by the count hook. */
  cg_lua_kill(call, "timed out");
  finish(call, LUA_ERRRUN);
}

/* A hook call, started: linked, counted, its deadline set, its coroutine
 * taken from the pool or made. NULL when memory runs out. */
static cg_hook_call_t *call_new(cg_lua_host_t *h, cg_hook_kind_t kind, const char *plugin, const char *key,
                                size_t key_len, void *arg) {
  cg_hook_call_t *call = calloc(1, sizeof *call);
  if (!call) return NULL;
  call->host = h;
  call->kind = kind;
  call->plugin = plugin;
  call->arg = arg;
  call->co_ref = LUA_NOREF;
  size_t kl = key_len < sizeof call->origin - 1 ? key_len : sizeof call->origin - 1;
  memcpy(call->origin, key, kl);
  cg_list_init(&call->link);
  cg_list_push(&h->calls, &call->link);
  h->stats.runs++;
  call->deadline_ns = now_ns() + h->timeout_ms * 1000000ull;
  if (h->n_co_pool > 0) {
    h->n_co_pool--;
    call->co = h->co_pool[h->n_co_pool];
    call->co_ref = h->co_pool_ref[h->n_co_pool];
  } else {
    call->co = lua_newthread(h->L);
    call->co_ref = luaL_ref(h->L, LUA_REGISTRYINDEX); /* the registry keeps the coroutine alive while it waits */
  }
  call->token = ++h->next_token;
  return call;
}

void cg_lua_origin_run(cg_lua_host_t *h, const cg_route_t *r, const cg_lua_req_t *req, cg_lua_origin_cb cb,
                       void *arg) {
  cg_hook_call_t *call = call_new(h, CG_HOOK_ORIGIN, r->plugin, req->origin, req->origin_len, arg);
  if (!call) {
    cg_lua_result_t fail;
    memset(&fail, 0, sizeof fail);
    fail.failed = 1;
    snprintf(fail.error, sizeof fail.error, "out of memory");
    cb(arg, &fail);
    return;
  }
  call->route = r;
  call->cb = cb;
  lua_State *co = call->co;
  call->hdrs = (cg_lua_headers_t){req->n_headers, req->header_names, req->header_values, req->header_name_lens,
                                  req->header_value_lens};
  lua_rawgeti(co, LUA_REGISTRYINDEX, h->runner_ref[r->index]);
  lua_pushnumber(co, call->token);
  lua_pushlstring(co, req->origin, req->origin_len);
  lua_pushlstring(co, req->scheme ? req->scheme : "", req->scheme_len);
  lua_pushlstring(co, req->host ? req->host : "", req->host_len);
  if (req->port > 0)
    lua_pushinteger(co, req->port);
  else
    lua_pushnil(co);
  lua_pushlstring(co, req->method, req->method_len);
  lua_pushlstring(co, req->path, req->path_len);
  cg_lua_resume(call, 7);
  /* call may be gone: it finished, or copied what it needs when it waited */
}

void cg_lua_cert_run(cg_lua_host_t *h, const cg_listener_conf_t *l, const char *server_name, cg_lua_cert_cb cb,
                     void *arg) {
  cg_hook_call_t *call = NULL;
  if (l->index < h->n_listeners && h->cert_runner_ref[l->index] != LUA_NOREF)
    call = call_new(h, CG_HOOK_CERT, l->cert_plugin, server_name, strlen(server_name), arg);
  if (!call) {
    cg_lua_cert_result_t fail;
    memset(&fail, 0, sizeof fail);
    fail.failed = 1;
    snprintf(fail.error, sizeof fail.error, "out of memory");
    cb(arg, &fail);
    return;
  }
  call->listener = l;
  call->cert_cb = cb;
  lua_rawgeti(call->co, LUA_REGISTRYINDEX, h->cert_runner_ref[l->index]);
  lua_pushstring(call->co, call->origin);
  cg_lua_resume(call, 1);
}

/* --- expose_headers ------------------------------------------------------- */

int cg_lua_expose_run(cg_lua_host_t *h, const cg_route_t *r, const char *origin, size_t origin_len,
                      const char *tenant, int status, const char *const *names, const size_t *name_lens,
                      const char *const *values, const size_t *value_lens, int n, char *buf, size_t buflen) {
  lua_State *L = h->L;
  cg_hook_call_t call;
  memset(&call, 0, sizeof call);
  call.host = h;
  call.kind = CG_HOOK_EXPOSE;
  call.plugin = r->plugin;
  call.route = r;
  call.co = L;
  call.deadline_ns = now_ns() + h->timeout_ms * 1000000ull;
  size_t ol = origin_len < sizeof call.origin - 1 ? origin_len : sizeof call.origin - 1;
  memcpy(call.origin, origin, ol);
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->run_expose_ref);
  lua_pushstring(L, r->plugin);
  lua_pushinteger(L, r->index);
  lua_pushstring(L, r->name);
  lua_pushlstring(L, origin, origin_len);
  if (tenant && *tenant)
    lua_pushstring(L, tenant);
  else
    lua_pushnil(L);
  lua_pushinteger(L, status);
  lua_createtable(L, 0, n);
  for (int i = 0; i < n; i++) {
    char name[128];
    size_t nl = name_lens[i] < sizeof name ? name_lens[i] : sizeof name;
    for (size_t k = 0; k < nl; k++) name[k] = (char)(names[i][k] >= 'A' && names[i][k] <= 'Z' ? names[i][k] + 32 : names[i][k]);
    lua_pushlstring(L, name, nl);
    lua_pushlstring(L, values[i], value_lens[i]);
    lua_rawset(L, -3);
  }
  cg_lua_host_t *prev = tls_host;
  tls_host = h;
  h->current = &call;
  h->in_native = 0;
  h->stats.runs++;
  int rc = lua_pcall(L, 7, 1, 0);
  h->current = NULL;
  tls_host = prev;
  int out = -1;
  char err[200] = "";
  if (call.killed) {
    snprintf(err, sizeof err, "%s", call.reason);
  } else if (rc != 0) {
    snprintf(err, sizeof err, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "error");
  } else if (lua_isnil(L, -1)) {
    out = 0;
  } else if (lua_istable(L, -1)) {
    int cnt = (int)lua_objlen(L, -1);
    const char *list[64];
    size_t lens[64];
    if (cnt > 64) cnt = -1;
    for (int i = 1; i <= cnt; i++) {
      lua_rawgeti(L, -1, i);
      if (lua_type(L, -1) != LUA_TSTRING) {
        cnt = -1;
        lua_pop(L, 1);
        break;
      }
      list[i - 1] = lua_tolstring(L, -1, &lens[i - 1]);
      lua_pop(L, 1); /* still anchored by the returned table */
    }
    if (cnt < 0) {
      snprintf(err, sizeof err, "expose_headers() must return a list of at most 64 header names");
    } else if (cnt == 0) {
      out = -1;
    } else {
      out = cg_cors_expose_line(list, lens, cnt, buf, buflen);
      if (out < 0) snprintf(err, sizeof err, "expose_headers() returned an invalid header name");
    }
  } else {
    snprintf(err, sizeof err, "expose_headers() must return a list of names or nil, got %s", luaL_typename(L, -1));
  }
  lua_settop(L, top);
  if (err[0]) {
    h->stats.errors++;
    log_failure(h, &call, err);
    return -1;
  }
  return out;
}

/* --- states ----------------------------------------------------------------- */

int cg_lua_push_prelude(lua_State *L) {
  /* stack: -> prelude module (or error message; returns nonzero) */
  if (luaL_loadbuffer(L, cg_lua_prelude, cg_lua_prelude_len, "=prelude") != 0) return -1;
  lua_newtable(L);
  static const luaL_Reg natives[] = {
      {"killed", l_killed},       {"kill_reason", l_kill_reason}, {"check_alloc", l_check_alloc},
      {"now", l_now},             {"log", l_log},                 {"sleep", l_sleep},
      {"http_request", cg_lua_http_request}, {"read_file", l_read_file}, {"file_mtime", l_file_mtime},
      {"redis_call", cg_lua_redis_call}, {"headers", l_headers},
      {NULL, NULL}};
  for (const luaL_Reg *n = natives; n->name; n++) {
    lua_pushcfunction(L, n->func);
    lua_setfield(L, -2, n->name);
  }
  /* lua-cjson, loaded here, outside the sandbox: plugins get its functions only */
  lua_getglobal(L, "require");
  lua_pushstring(L, "cjson.safe");
  if (lua_pcall(L, 1, 1, 0) == 0) {
    lua_getfield(L, -1, "encode");
    lua_pushcclosure(L, l_json, 1);
    lua_setfield(L, -3, "json_encode");
    lua_getfield(L, -1, "decode");
    lua_pushcclosure(L, l_json, 1);
    lua_setfield(L, -3, "json_decode");
  }
  lua_pop(L, 1);
  return lua_pcall(L, 1, 1, 0);
}

/* h: the host whose memory_mb the state's allocator enforces, or NULL (a
 * state that runs no hooks). */
lua_State *cg_lua_new_state(cg_lua_host_t *h) {
  lua_State *L = lua_newstate(state_alloc, h);
  if (L) {
    lua_atpanic(L, on_panic);
  } else {
    /* a LuaJIT built without GC64 takes no allocator on 64-bit: its own, and
     * the periodic check alone */
    L = luaL_newstate();
    if (!L) return NULL;
  }
  luaL_openlibs(L);
  luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
  return L;
}

/* stack: prelude at its index. A runner (prelude.fn(name, a, b)) into the
 * registry: its reference, or LUA_NOREF with the error logged. */
static int runner(lua_State *L, int prelude, const char *fn, const char *name, int a, const char *b,
                  const char *where) {
  lua_getfield(L, prelude, fn);
  lua_pushstring(L, name);
  lua_pushinteger(L, a);
  lua_pushstring(L, b);
  if (lua_pcall(L, 3, 1, 0) != 0) {
    cg_log_error("%s: %s", where, lua_tostring(L, -1));
    lua_pop(L, 1);
    return LUA_NOREF;
  }
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

static void host_fail(cg_lua_host_t *h) {
  lua_close(h->L);
  free(h->runner_ref);
  free(h->cert_runner_ref);
  free(h);
}

cg_lua_host_t *cg_lua_host_new(uv_loop_t *loop, const cg_config_t *cfg) {
  cg_lua_host_t *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->loop = loop;
  h->cfg = cfg;
  h->timeout_ms = cfg->plugins.timeout_ms;
  h->max_instructions = cfg->plugins.max_instructions;
  h->memory_kb = cfg->plugins.memory_kb;
  cg_list_init(&h->calls);
  cg_list_init(&h->http_idle);
  h->L = cg_lua_new_state(h);
  if (!h->L) {
    free(h);
    return NULL;
  }
  lua_State *L = h->L;
  if (cg_lua_push_prelude(L) != 0) {
    cg_log_error("plugin host: %s", lua_tostring(L, -1));
    host_fail(h);
    return NULL;
  }
  int prelude = lua_gettop(L);
  h->n_runners = cfg->n_routes + 1;
  h->n_listeners = cfg->n_listeners;
  h->runner_ref = malloc((size_t)h->n_runners * sizeof *h->runner_ref);
  h->cert_runner_ref = malloc((size_t)(h->n_listeners + 1) * sizeof *h->cert_runner_ref);
  if (!h->runner_ref || !h->cert_runner_ref) {
    host_fail(h);
    return NULL;
  }
  for (int i = 0; i < h->n_runners; i++) h->runner_ref[i] = LUA_NOREF;
  for (int i = 0; i < h->n_listeners; i++) h->cert_runner_ref[i] = LUA_NOREF;
  char err[512], where[64];
  for (int i = 0; i < cfg->n_routes; i++) {
    const cg_route_t *r = &cfg->routes[i];
    if (!r->plugin) continue;
    cg_plugin_use_t u = cg_config_route_plugin(r);
    snprintf(where, sizeof where, "routes[%d].cors.plugin", r->index);
    if (cg_lua_load_plugin(L, prelude, &u, 1, err, sizeof err) != 0) {
      cg_log_error("%s: %s", where, err);
      host_fail(h);
      return NULL;
    }
    h->runner_ref[r->index] = runner(L, prelude, "origin_runner", r->plugin, r->index, r->name, where);
    if (h->runner_ref[r->index] == LUA_NOREF) {
      host_fail(h);
      return NULL;
    }
  }
  for (int i = 0; i < cfg->n_listeners; i++) {
    const cg_listener_conf_t *l = &cfg->listeners[i];
    if (!l->cert_plugin) continue;
    cg_plugin_use_t u = cg_config_listener_plugin(l);
    snprintf(where, sizeof where, "listen[%d].tls.plugin", i + 1);
    if (cg_lua_load_plugin(L, prelude, &u, 1, err, sizeof err) != 0) {
      cg_log_error("%s: %s", where, err);
      host_fail(h);
      return NULL;
    }
    h->cert_runner_ref[i] = runner(L, prelude, "cert_runner", l->cert_plugin, u.key, "", where);
    if (h->cert_runner_ref[i] == LUA_NOREF) {
      host_fail(h);
      return NULL;
    }
  }
  lua_pushvalue(L, prelude);
  h->prelude_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, prelude, "run_expose");
  h->run_expose_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
  lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
  cg_lua_redis_start(h);
  return h;
}

void cg_lua_host_free(cg_lua_host_t *h) {
  if (!h) return;
  while (!cg_list_empty(&h->calls)) {
    cg_hook_call_t *call = container_of(h->calls.next, cg_hook_call_t, link);
    cg_lua_kill(call, "worker stopping");
    finish(call, LUA_ERRRUN);
  }
  cg_lua_http_free(h);
  cg_lua_redis_free(h);
  lua_close(h->L);
  free(h->runner_ref);
  free(h->cert_runner_ref);
  free(h);
}

int cg_lua_has_expose(cg_lua_host_t *h, const cg_route_t *r) {
  lua_State *L = h->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->prelude_ref);
  lua_getfield(L, -1, "has_expose");
  lua_pushstring(L, r->plugin);
  int yes = lua_pcall(L, 1, 1, 0) == 0 && lua_toboolean(L, -1);
  lua_pop(L, 2);
  return yes;
}

void cg_lua_host_stats(const cg_lua_host_t *h, cg_lua_stats_t *out) { *out = h->stats; }
