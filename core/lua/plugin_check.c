/* A plugin loaded into a state: for a worker's host (configured), and for
 * `corsgate check` in a throwaway state that validates a route's plugin and
 * its plugin_config without running a hook. */
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "lua/host_internal.h"

int cg_lua_load_plugin(lua_State *L, int prelude, const cg_plugin_use_t *u, int configure, char *err,
                       size_t errlen) {
  lua_getfield(L, prelude, "load");
  lua_pushstring(L, u->name);
  lua_pushstring(L, u->file);
  if (lua_pcall(L, 2, 0, 0) != 0) {
    snprintf(err, errlen, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  lua_getfield(L, prelude, "has_hook");
  lua_pushstring(L, u->name);
  lua_pushstring(L, u->hook);
  int has = lua_pcall(L, 2, 1, 0) == 0 && lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (!has) {
    snprintf(err, errlen, "%s: the plugin has no %s(ctx) hook, which %s", u->file, u->hook,
             strcmp(u->hook, "origin") == 0 ? "a route's policy plugin needs"
                                            : "a TLS listener's certificate plugin needs");
    return -1;
  }
  if (!configure) return 0;
  lua_getfield(L, prelude, "configure");
  lua_pushinteger(L, u->key);
  lua_pushstring(L, u->name);
  lua_pushstring(L, u->conf ? u->conf : "{}");
  if (lua_pcall(L, 3, 0, 0) != 0) {
    snprintf(err, errlen, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

const cg_plugin_finder_t cg_lua_plugin_finder = {cg_lua_plugin_find, cg_lua_plugin_check};

void cg_lua_plugin_check(const cg_plugin_use_t *u, const char *path, int has_redis, cg_diag_t *d) {
  lua_State *L = cg_lua_new_state(NULL);
  if (!L) {
    cg_diag_error(d, path, "cannot create a Lua state");
    return;
  }
  char p[300];
  if (cg_lua_push_prelude(L) != 0) {
    cg_diag_error(d, path, "plugin host: %s", lua_tostring(L, -1));
    lua_close(L);
    return;
  }
  int prelude = lua_gettop(L);
  char err[512];
  snprintf(p, sizeof p, "%s.plugin", path);
  if (cg_lua_load_plugin(L, prelude, u, 0, err, sizeof err) != 0) {
    cg_diag_error(d, p, "%s", err);
    lua_close(L);
    return;
  }
  lua_getfield(L, prelude, "requires");
  lua_pushstring(L, u->name);
  lua_pushstring(L, "redis");
  if (lua_pcall(L, 2, 1, 0) == 0 && lua_toboolean(L, -1) && !has_redis)
    cg_diag_error(d, p, "%s reads from Redis: add a top-level redis = { address = \"127.0.0.1:6379\" }", u->name);
  lua_pop(L, 1);
  /* every schema problem, each with its own path */
  lua_pushfstring(L, "return %s", u->conf ? u->conf : "{}");
  if (luaL_loadstring(L, lua_tostring(L, -1)) != 0 || lua_pcall(L, 0, 1, 0) != 0) {
    cg_diag_error(d, path, "plugin_config: %s", lua_tostring(L, -1));
    lua_close(L);
    return;
  }
  int conf = lua_gettop(L);
  snprintf(p, sizeof p, "%s.plugin_config", path);
  lua_getfield(L, prelude, "validate");
  lua_pushstring(L, u->name);
  lua_pushvalue(L, conf);
  lua_pushstring(L, p);
  if (lua_pcall(L, 3, 2, 0) != 0) {
    cg_diag_error(d, p, "%s", lua_tostring(L, -1));
  } else if (lua_istable(L, -1)) { /* stack: ... nil problems */
    int n = (int)lua_objlen(L, -1);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      lua_rawgeti(L, -1, 1);
      lua_rawgeti(L, -2, 2);
      cg_diag_error(d, lua_tostring(L, -2), "%s", lua_tostring(L, -1));
      lua_pop(L, 3);
    }
  }
  lua_close(L);
}
