/* The Lua side of a CORS policy: walk the `cors` table, check each field's type,
 * refuse unknown keys (a typo such as "origns" would otherwise silently mean "no
 * origins"), and hand a plain cg_cors_spec_t to the compiler. */
#include "config/cors_config.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const keys[] = {"origins",         "origin_patterns",     "allow_null_origin",
                                   "methods",         "headers",             "expose_headers",
                                   "credentials",     "max_age",             "private_network",
                                   "preflight_continue", "preflight_status", "timing_allow_origin",
                                   "allow_insecure_origins", NULL};

typedef struct reader {
  lua_State *L;
  const char *path;
  cg_diag_t *d;
  char buf[256];
  int oom;
} reader_t;

static const char *field_path(reader_t *r, const char *key, int idx) {
  if (idx > 0)
    snprintf(r->buf, sizeof r->buf, "%s.%s[%d]", r->path, key, idx);
  else
    snprintf(r->buf, sizeof r->buf, "%s.%s", r->path, key);
  return r->buf;
}

/* Edit distance, to turn "unknown key" into "did you mean". */
static int distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 40 || lb > 40) return 99;
  int prev[41], cur[41];
  for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
      int del = prev[j] + 1, ins = cur[j - 1] + 1;
      cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
    memcpy(prev, cur, sizeof cur);
  }
  return prev[lb];
}

/* stack: [value] -> [value]. 1 for true, 0 for false, -1 after a type error. */
static int read_bool(reader_t *r, const char *key) {
  if (lua_type(r->L, -1) != LUA_TBOOLEAN) {
    cg_diag_error(r->d, field_path(r, key, 0), "expected a boolean, got %s", luaL_typename(r->L, -1));
    return -1;
  }
  return lua_toboolean(r->L, -1);
}

/* stack: [list] -> [list]. Fills *arr with borrowed strings (malloc'd array). */
static int read_list(reader_t *r, const char *key, const char ***arr, int *count, int allow_star, int *star) {
  lua_State *L = r->L;
  int t = lua_type(L, -1);
  if (t == LUA_TSTRING && allow_star) {
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (len == 1 && s[0] == '*') {
      *star = 1;
      return 0;
    }
    cg_diag_error(r->d, field_path(r, key, 0),
                  "expected \"*\" or a list of strings, got the string \"%.200s\"; write %s = { \"%.200s\" }", s, key,
                  s);
    return -1;
  }
  if (t != LUA_TTABLE) {
    cg_diag_error(r->d, field_path(r, key, 0), "expected %sa list of strings, got %s", allow_star ? "\"*\" or " : "",
                  luaL_typename(L, -1));
    return -1;
  }
  int n = (int)lua_objlen(L, -1), bad = 0;
  /* Every key must be a position 1..n: a map here is a mistake, not a list. */
  lua_pushnil(L); /* stack: list, nil */
  while (lua_next(L, -2)) { /* stack: list, k, v */
    lua_Number k = lua_type(L, -2) == LUA_TNUMBER ? lua_tonumber(L, -2) : 0;
    if (k < 1 || k > n || k != floor(k)) {
      if (lua_type(L, -2) == LUA_TSTRING)
        cg_diag_error(r->d, field_path(r, key, 0), "expected a list, found the key \"%.100s\"", lua_tostring(L, -2));
      else
        cg_diag_error(r->d, field_path(r, key, 0), "expected a list without holes");
      bad = 1;
    }
    lua_pop(L, 1); /* stack: list, k */
  }
  if (bad) return -1;
  *arr = calloc((size_t)(n > 0 ? n : 1), sizeof **arr);
  if (!*arr) {
    r->oom = 1;
    return -1;
  }
  *count = n;
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i); /* stack: list, item */
    size_t len;
    if (lua_type(L, -1) != LUA_TSTRING) {
      cg_diag_error(r->d, field_path(r, key, i), "expected a string, got %s", luaL_typename(L, -1));
      bad = 1;
    } else {
      /* The string stays anchored in the list, which stays anchored in the cors table. */
      const char *s = lua_tolstring(L, -1, &len);
      if (strlen(s) != len) {
        cg_diag_error(r->d, field_path(r, key, i), "contains a NUL byte");
        bad = 1;
      }
      (*arr)[i - 1] = s;
    }
    lua_pop(L, 1); /* stack: list */
  }
  return bad ? -1 : 0;
}

int cg_cors_config_load(lua_State *L, int idx, const char *path, const cg_psl_t *psl, cg_diag_t *d,
                        cg_cors_policy_t **out) {
  return cg_cors_config_load_plugin(L, idx, path, psl, 0, d, out);
}

int cg_cors_config_load_plugin(lua_State *L, int idx, const char *path, const cg_psl_t *psl, int by_plugin,
                               cg_diag_t *d, cg_cors_policy_t **out) {
  *out = NULL;
  if (idx < 0 && idx > LUA_REGISTRYINDEX) idx = lua_gettop(L) + idx + 1;
  reader_t r = {.L = L, .path = path ? path : "cors", .d = d};
  int errors_before = d->errors;
  if (lua_type(L, idx) != LUA_TTABLE) {
    cg_diag_error(d, r.path, "expected a table, got %s", luaL_typename(L, idx));
    return CG_CORS_E_INVALID;
  }
  cg_cors_spec_t spec;
  memset(&spec, 0, sizeof spec);
  spec.origins_by_plugin = by_plugin;
  int top = lua_gettop(L);

  /* Unknown keys first; then the known ones in a fixed order, so messages come
   * out in the same order on every run. */
  lua_pushnil(L); /* stack: nil */
  while (lua_next(L, idx)) { /* stack: k, v */
    lua_pop(L, 1);           /* stack: k */
    if (lua_type(L, -1) != LUA_TSTRING) {
      cg_diag_error(d, r.path, "expected named fields (origins = ...), found a %s key", luaL_typename(L, -1));
      continue;
    }
    const char *key = lua_tostring(L, -1);
    int known = 0, best = -1, best_dist = 3;
    for (int i = 0; keys[i]; i++) {
      if (strcmp(key, keys[i]) == 0) known = 1;
      int dist = distance(key, keys[i]);
      if (dist < best_dist) best = i, best_dist = dist;
    }
    if (known) continue;
    if (best >= 0)
      cg_diag_error(d, field_path(&r, key, 0), "unknown key (did you mean \"%s\"?)", keys[best]);
    else
      cg_diag_error(d, field_path(&r, key, 0), "unknown key");
  }

  for (int i = 0; keys[i]; i++) {
    const char *key = keys[i];
    lua_pushstring(L, key);
    lua_rawget(L, idx); /* stack: v */
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      continue;
    }
    int b;
    if (!strcmp(key, "origins")) {
      read_list(&r, key, &spec.origins, &spec.origins_count, 1, &spec.origins_any);
    } else if (!strcmp(key, "origin_patterns")) {
      read_list(&r, key, &spec.origin_patterns, &spec.origin_patterns_count, 0, NULL);
    } else if (!strcmp(key, "methods")) {
      read_list(&r, key, &spec.methods, &spec.methods_count, 1, &spec.methods_any);
    } else if (!strcmp(key, "headers")) {
      read_list(&r, key, &spec.headers, &spec.headers_count, 1, &spec.headers_any);
    } else if (!strcmp(key, "expose_headers")) {
      read_list(&r, key, &spec.expose_headers, &spec.expose_headers_count, 1, &spec.expose_headers_any);
    } else if (!strcmp(key, "preflight_status")) {
      lua_Number v = lua_tonumber(L, -1);
      if (lua_type(L, -1) != LUA_TNUMBER)
        cg_diag_error(d, field_path(&r, key, 0), "expected 200 or 204, got %s", luaL_typename(L, -1));
      else /* the compiler checks the value; anything but a small whole number is refused there */
        spec.preflight_status = v == floor(v) && fabs(v) < 1000 ? (int)v : -1;
    } else if (!strcmp(key, "max_age")) {
      if (lua_type(L, -1) != LUA_TNUMBER) {
        cg_diag_error(d, field_path(&r, key, 0), "expected a number of seconds, got %s", luaL_typename(L, -1));
      } else {
        lua_Number v = lua_tonumber(L, -1);
        if (v != floor(v) || fabs(v) > 2147483647.0)
          cg_diag_error(d, field_path(&r, key, 0), "expected whole seconds, got %g", v);
        else
          spec.has_max_age = 1, spec.max_age = (long long)v;
      }
    } else if ((b = read_bool(&r, key)) >= 0) {
      if (!strcmp(key, "allow_null_origin")) spec.allow_null_origin = b;
      if (!strcmp(key, "credentials")) spec.credentials = b;
      if (!strcmp(key, "private_network")) spec.private_network = b;
      if (!strcmp(key, "preflight_continue")) spec.preflight_continue = b;
      if (!strcmp(key, "timing_allow_origin")) spec.timing_allow_origin = b;
      if (!strcmp(key, "allow_insecure_origins")) spec.allow_insecure_origins = b;
    }
    lua_pop(L, 1); /* stack: (empty) */
  }
  lua_settop(L, top);

  int rc = 0;
  if (r.oom) {
    cg_diag_error(d, r.path, "out of memory");
    rc = CG_CORS_E_NOMEM;
  } else if (d->errors == errors_before) {
    *out = cg_cors_compile(&spec, psl, r.path, d);
    if (!*out) rc = CG_CORS_E_INVALID;
  } else {
    rc = CG_CORS_E_INVALID;
  }
  free(spec.origins);
  free(spec.origin_patterns);
  free(spec.methods);
  free(spec.headers);
  free(spec.expose_headers);
  return rc;
}
