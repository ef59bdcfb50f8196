/* gw.redis.call(command, arg...): a Redis command from a hook, on the
 * worker's pool of connections to the config's `redis` (redis/redis.h).
 * Legal in origin() only; it yields the hook's coroutine until the answer.
 *
 * Answers convert the way Redis's own Lua scripting converts them: a bulk or
 * status reply is a string, an integer a number, an array a table, and a nil
 * reply is false. An error reply, a timeout or an unavailable server is
 * nil, err (an expected failure); misuse raises (STYLE.md), and so does a
 * command that would take over the shared connection (SUBSCRIBE, MULTI,
 * blocking pops...). */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lua/host_internal.h"
#include "redis/redis.h"

enum { MAX_ARGS = 1024, MAX_DEPTH = 8 };

/* They change the connection's state for every hook sharing it, or hold it
 * (and, below, [P](UN)SUBSCRIBE and [P]MONITOR). */
static const char *const refused[] = {"SSUBSCRIBE", "SUNSUBSCRIBE", "SELECT", "AUTH", "HELLO", "QUIT", "RESET",
                                      "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "BLPOP", "BRPOP",
                                      "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
                                      "WAIT", "WAITAOF", "CLIENT", "SHUTDOWN", "SYNC", "PSYNC", NULL};

static int is_refused(lua_State *L, int argc) {
  const char *cmd = lua_tostring(L, 1);
  for (const char *const *r = refused; *r; r++)
    if (strcasecmp(cmd, *r) == 0) return 1;
  /* hiredis reads any name with a leading "p" stripped (PSUBSCRIBE as
   * SUBSCRIBE), and would switch the shared connection's mode on PMONITOR */
  const char *base = cmd + (cmd[0] == 'p' || cmd[0] == 'P');
  if (strcasecmp(base, "subscribe") == 0 || strcasecmp(base, "unsubscribe") == 0 || strcasecmp(base, "monitor") == 0)
    return 1;
  if (strcasecmp(cmd, "XREAD") == 0 || strcasecmp(cmd, "XREADGROUP") == 0)
    for (int i = 2; i <= argc; i++)
      if (strcasecmp(lua_tostring(L, i), "BLOCK") == 0) return 1;
  return 0;
}

/* stack: -> the reply as a Lua value */
static void push_reply(lua_State *L, const redisReply *r, int depth) {
  switch (r->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS:
    lua_pushlstring(L, r->str, r->len);
    break;
  case REDIS_REPLY_INTEGER:
    lua_pushnumber(L, (lua_Number)r->integer);
    break;
  case REDIS_REPLY_ARRAY:
    if (depth >= MAX_DEPTH || !lua_checkstack(L, 4)) {
      lua_pushboolean(L, 0);
      break;
    }
    lua_createtable(L, (int)r->elements, 0);
    for (size_t i = 0; i < r->elements; i++) {
      push_reply(L, r->element[i], depth + 1); /* stack: t value */
      lua_rawseti(L, -2, (int)i + 1);
    }
    break;
  default: /* nil */
    lua_pushboolean(L, 0);
    break;
  }
}

static void on_answer(void *arg, const redisReply *reply, const char *err) {
  cg_hook_call_t *call = arg;
  call->io = NULL;
  call->cancel = NULL;
  lua_State *co = call->co;
  if (err || reply->type == REDIS_REPLY_ERROR) {
    lua_pushnil(co);
    if (err) lua_pushstring(co, err);
    else lua_pushlstring(co, reply->str, reply->len);
    cg_lua_resume(call, 2);
    return;
  }
  push_reply(co, reply, 0);
  cg_lua_resume(call, 1);
}

/* The hook died first (its deadline): the answer, when it comes, goes nowhere. */
static void redis_cancel(void *io) { cg_redis_forget(io); }

/* An up connection, round robin; else one still connecting (its commands
 * queue behind the handshake); NULL when every one is down. */
static cg_redis_t *pick(cg_lua_host_t *h) {
  for (int i = 0; i < h->n_redis; i++) {
    cg_redis_t *r = h->redis[h->redis_rr++ % (unsigned)h->n_redis];
    if (cg_redis_up(r)) return r;
  }
  for (int i = 0; i < h->n_redis; i++) {
    cg_redis_t *r = h->redis[i];
    if (cg_redis_connecting(r)) return r;
  }
  return NULL;
}

int cg_lua_redis_call(lua_State *L) {
  cg_hook_call_t *call = cg_lua_yieldable(L, "gw.redis.call");
  int argc = lua_gettop(L);
  if (argc < 1) return luaL_error(L, "gw.redis.call: a command is required");
  if (argc > MAX_ARGS) return luaL_error(L, "gw.redis.call: more than %d arguments", MAX_ARGS);
  for (int i = 1; i <= argc; i++) {
    int t = lua_type(L, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      return luaL_error(L, "gw.redis.call: argument %d must be a string or a number, got %s", i, lua_typename(L, t));
  }
  cg_lua_host_t *h = call->host;
  if (h->n_redis == 0) return luaL_error(L, "gw.redis.call: no Redis configured (add redis = { address = ... })");
  if (is_refused(L, argc))
    return luaL_error(L, "gw.redis.call: %s is not allowed in a hook (it would hold the shared connection)",
                      lua_tostring(L, 1));
  const char *argv_s[16];
  size_t lens_s[16];
  const char **argv = argc <= 16 ? argv_s : malloc((size_t)argc * sizeof *argv);
  size_t *lens = argc <= 16 ? lens_s : malloc((size_t)argc * sizeof *lens);
  if (!argv || !lens) {
    if (argv != argv_s) free(argv);
    if (lens != lens_s) free(lens);
    return luaL_error(L, "gw.redis.call: out of memory");
  }
  /* numbers become strings in place: the strings live on the stack until the
   * command is written out below */
  for (int i = 1; i <= argc; i++) argv[i - 1] = lua_tolstring(L, i, &lens[i - 1]);
  cg_redis_t *r = pick(h);
  void *handle = NULL;
  int rc = r ? cg_redis_command(r, argc, argv, lens, on_answer, call, &handle) : -1;
  if (argv != argv_s) free(argv);
  if (lens != lens_s) free(lens);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushstring(L, "redis unavailable");
    return 2;
  }
  call->io = handle;
  call->cancel = redis_cancel;
  return lua_yield(L, 0);
}

void cg_lua_redis_start(cg_lua_host_t *h) {
  const cg_redis_conf_t *c = &h->cfg->redis;
  if (!c->address) return;
  int cap = (int)(sizeof h->redis / sizeof h->redis[0]);
  int n = c->pool_size < cap ? c->pool_size : cap;
  for (int i = 0; i < n; i++) {
    cg_redis_t *r = cg_redis_new(h->loop, c, NULL, NULL, NULL, NULL);
    if (r) h->redis[h->n_redis++] = r;
  }
}

void cg_lua_redis_free(cg_lua_host_t *h) {
  for (int i = 0; i < h->n_redis; i++) cg_redis_free(h->redis[i]);
  h->n_redis = 0;
}
