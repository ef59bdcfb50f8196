/* A Lua C module for the unit specs: exposes cg_cors_config_load to busted so
 * it reads real Lua tables through the real Lua C API. Built by cors_ffi.lua
 * (or CMake) against libcorsgate; never part of the gateway. */
#include <lauxlib.h>
#include <lua.h>

#include "config/cors_config.h"

static cg_psl_t *psl; /* loaded once per process: the specs compile many policies */

/* load(tbl [, path]) -> policy lightuserdata or nil, { errors }, { warnings }, rc.
 * The caller owns the policy (free it through the FFI). */
static int l_load(lua_State *L) {
  const char *path = luaL_optstring(L, 2, "routes[1].cors");
  cg_diag_t d;
  cg_diag_init(&d);
  if (!psl) psl = cg_psl_load(NULL, &d);
  cg_cors_policy_t *p = NULL;
  int top = lua_gettop(L);
  int rc = cg_cors_config_load(L, 1, path, psl, &d, &p);
  if (lua_gettop(L) != top) return luaL_error(L, "cg_cors_config_load left the stack unbalanced");
  if (p)
    lua_pushlightuserdata(L, p);
  else
    lua_pushnil(L);
  for (int level = CG_DIAG_ERROR; level <= CG_DIAG_WARNING; level++) {
    lua_newtable(L);
    int n = 0;
    for (int i = 0; i < d.count; i++) {
      if ((int)d.items[i].level != level) continue;
      lua_pushstring(L, d.items[i].text);
      lua_rawseti(L, -2, ++n);
    }
  }
  lua_pushinteger(L, rc);
  cg_diag_free(&d);
  return 4;
}

int luaopen_cors_config_shim(lua_State *L);
int luaopen_cors_config_shim(lua_State *L) {
  lua_newtable(L);
  lua_pushcfunction(L, l_load);
  lua_setfield(L, -2, "load");
  return 1;
}
