/* Where plugins are found: the config's plugin_paths, then the shipped
 * plugins' directory (wherever this binary was installed or built), and the
 * LuaJIT version the process runs with. */
#include <limits.h>
#include <lauxlib.h>
#include <luajit.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua/host.h"

char *cg_lua_plugin_find(const cg_config_t *cfg, const char *name) {
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
      return NULL; /* a name, never a path */
  char path[4096];
  int n = cfg ? cfg->n_plugin_paths : 0;
  for (int i = 0; i <= n; i++) {
    const char *dir = i < n ? cfg->plugin_paths[i] : cg_lua_shipped_plugins_dir();
    if (!dir) continue;
    const char *forms[] = {"%s/%s.lua", "%s/%s/init.lua"};
    for (int f = 0; f < 2; f++) {
      int len = snprintf(path, sizeof path, forms[f], dir, name);
      if (len > 0 && (size_t)len < sizeof path && access(path, R_OK) == 0) return strdup(path);
    }
  }
  return NULL;
}

void cg_lua_runtime_version(char *buf, size_t n) {
  snprintf(buf, n, "%s", LUAJIT_VERSION); /* what it was built with, unless the library says */
  lua_State *L = luaL_newstate();
  if (!L) return;
  luaL_openlibs(L);
  lua_getglobal(L, "jit"); /* stack: jit */
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "version"); /* stack: jit, version */
    if (lua_isstring(L, -1)) snprintf(buf, n, "%s", lua_tostring(L, -1));
  }
  lua_close(L);
}

/* The shipped plugins, first found of:
 *   1. where `cmake --install` put them, when this binary is the installed one
 *      (the package's /usr/share/corsgate/plugins);
 *   2. $CORSGATE_PLUGINS_DIR;
 *   3. PREFIX/share/corsgate/plugins next to the binary's PREFIX/bin (an
 *      installed tree moved, or installed with --prefix);
 *   4. the source tree the binary was built from (a build directory anywhere);
 *   5. plugins/ next to the binary or its parent;
 *   6. the install location again: a copy of the installed binary.
 * A developer's build therefore never picks up an older installed copy, and
 * `corsgate version` says which one is used. */
static int usable(char *out, size_t n, const char *dir) {
  if (!dir || !*dir || access(dir, R_OK) != 0) return 0;
  if (!realpath(dir, out)) snprintf(out, n, "%s", dir);
  return 1;
}

const char *cg_lua_shipped_plugins_dir(void) {
  static char dir[PATH_MAX];
  static int done;
  if (done) return dir[0] ? dir : NULL;
  done = 1;
  char exe[PATH_MAX] = "", bindir[PATH_MAX] = "", guess[PATH_MAX + 64];
  if (realpath("/proc/self/exe", exe)) {
    snprintf(bindir, sizeof bindir, "%s", exe);
    char *slash = strrchr(bindir, '/');
    if (slash) *slash = 0;
  }
#ifdef CORSGATE_INSTALL_BINARY
  if (strcmp(exe, CORSGATE_INSTALL_BINARY) == 0 && usable(dir, sizeof dir, CORSGATE_PLUGINS_INSTALL_DIR)) return dir;
#endif
  if (usable(dir, sizeof dir, getenv("CORSGATE_PLUGINS_DIR"))) return dir;
  if (bindir[0]) {
    snprintf(guess, sizeof guess, "%s/../share/corsgate/plugins", bindir);
    if (usable(dir, sizeof dir, guess)) return dir;
  }
#ifdef CORSGATE_SOURCE_PLUGINS_DIR
  if (usable(dir, sizeof dir, CORSGATE_SOURCE_PLUGINS_DIR)) return dir;
#endif
  const char *near[] = {"%s/../plugins", "%s/plugins"};
  for (int i = 0; i < 2 && bindir[0]; i++) {
    snprintf(guess, sizeof guess, near[i], bindir);
    if (usable(dir, sizeof dir, guess)) return dir;
  }
#ifdef CORSGATE_PLUGINS_INSTALL_DIR
  if (usable(dir, sizeof dir, CORSGATE_PLUGINS_INSTALL_DIR)) return dir;
#endif
  dir[0] = 0;
  return NULL;
}
