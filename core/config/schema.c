/* The config schema's field readers (see schema.h). */
#include "config/schema.h"

#include <ctype.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *cg_cfg_strdup(const char *s) {
  char *p = strdup(s ? s : "");
  if (!p) abort(); /* config load at startup: nothing sensible to do without memory */
  return p;
}

void *cg_cfg_calloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) abort();
  return p;
}

static int edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 30 || lb > 30) return 99;
  int prev[32], cur[32];
  for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
      int v = prev[j - 1] + cost;
      if (prev[j] + 1 < v) v = prev[j] + 1;
      if (cur[j - 1] + 1 < v) v = cur[j - 1] + 1;
      cur[j] = v;
    }
    memcpy(prev, cur, sizeof(int) * (lb + 1));
  }
  return prev[lb];
}

void cg_cfg_join_path(char *out, size_t cap, const char *parent, const char *key) {
  if (parent && *parent)
    snprintf(out, cap, "%s.%s", parent, key);
  else
    snprintf(out, cap, "%s", key);
}

/* Reports keys of the table at idx that the schema does not know.
 * stack: unchanged */
void cg_cfg_check_keys(cg_loader_t *ld, int idx, const char *path, const char *const *known) {
  lua_State *L = ld->L;
  char p[256];
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) { /* stack: key value */
    if (lua_type(L, -2) != LUA_TSTRING) {
      cg_diag_error(ld->d, path, "expected named fields, found a %s key", luaL_typename(L, -2));
    } else {
      const char *k = lua_tostring(L, -2);
      int found = 0;
      const char *best = NULL;
      int best_d = 3;
      for (const char *const *kn = known; *kn; kn++) {
        if (strcmp(*kn, k) == 0) found = 1;
        int dist = edit_distance(*kn, k);
        if (dist < best_d) best_d = dist, best = *kn;
      }
      if (!found) {
        cg_cfg_join_path(p, sizeof p, path, k);
        if (best)
          cg_diag_error(ld->d, p, "unknown key (did you mean \"%s\"?)", best);
        else
          cg_diag_error(ld->d, p, "unknown key");
      }
    }
    lua_pop(L, 1);
  }
}

/* Length of the list at idx, or -1 (reported) when it is not a list. */
int cg_cfg_list_len(cg_loader_t *ld, int idx, const char *path) {
  lua_State *L = ld->L;
  int n = (int)lua_objlen(L, idx), count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    count++;
    lua_pop(L, 1);
  }
  if (count != n) {
    cg_diag_error(ld->d, path, "expected a list like { \"a\", \"b\" }, got a table with named fields");
    return -1;
  }
  return n;
}

/* Pushes t[key]; returns its Lua type. stack: +1 */
int cg_cfg_field(lua_State *L, int tidx, const char *key) {
  lua_getfield(L, tidx, key);
  return lua_type(L, -1);
}

int cg_cfg_want_type(cg_loader_t *ld, int type, const char *path, const char *what) {
  if (lua_type(ld->L, -1) == type) return 1;
  cg_diag_error(ld->d, path, "expected %s, got %s", what, luaL_typename(ld->L, -1));
  return 0;
}

/* Each get_* reads t[key] into *out when present and valid; returns 1 when set,
 * 0 when absent (a required one is reported), -1 when invalid (reported).
 * stack: unchanged */
int cg_cfg_get_string(cg_loader_t *ld, int tidx, const char *parent, const char *key, int required,
                      const char **out) {
  char p[256];
  cg_cfg_join_path(p, sizeof p, parent, key);
  int t = cg_cfg_field(ld->L, tidx, key);
  int r = 0;
  if (t == LUA_TNIL) {
    if (required) cg_diag_error(ld->d, p, "required");
  } else if (cg_cfg_want_type(ld, LUA_TSTRING, p, "a string")) {
    *out = lua_tostring(ld->L, -1); /* anchored by the config table, which outlives the walk */
    r = 1;
  } else {
    r = -1;
  }
  lua_pop(ld->L, 1);
  return r;
}

/* t[key] as a number in [lo, hi] (integer: a whole one), each problem
 * worded as it always was. 1, 0 (absent) or -1 (reported). */
static int get_number(cg_loader_t *ld, int tidx, const char *parent, const char *key, double lo, double hi,
                      int integer, double *out) {
  char p[256];
  cg_cfg_join_path(p, sizeof p, parent, key);
  int t = cg_cfg_field(ld->L, tidx, key);
  int r = 0;
  if (t != LUA_TNIL) {
    double v = lua_tonumber(ld->L, -1);
    r = -1;
    if (integer && (t != LUA_TNUMBER || floor(v) != v || !(v >= lo && v <= hi)))
      cg_diag_error(ld->d, p, "expected an integer between %.0f and %.0f", lo, hi);
    else if (!integer && !cg_cfg_want_type(ld, LUA_TNUMBER, p, "a number"))
      ; /* reported */
    else if (!(v >= lo && v <= hi))
      cg_diag_error(ld->d, p, "expected a number between %g and %g, got %g", lo, hi, v);
    else
      *out = v, r = 1;
  }
  lua_pop(ld->L, 1);
  return r;
}

int cg_cfg_get_number(cg_loader_t *ld, int tidx, const char *parent, const char *key, double lo,
                      double hi, double *out) {
  return get_number(ld, tidx, parent, key, lo, hi, 0, out);
}

int cg_cfg_get_int(cg_loader_t *ld, int tidx, const char *parent, const char *key, double lo,
                   double hi, double *out) {
  return get_number(ld, tidx, parent, key, lo, hi, 1, out);
}

int cg_cfg_get_bool(cg_loader_t *ld, int tidx, const char *parent, const char *key, int *out) {
  char p[256];
  cg_cfg_join_path(p, sizeof p, parent, key);
  int t = cg_cfg_field(ld->L, tidx, key);
  int r = 0;
  if (t != LUA_TNIL) {
    r = -1;
    if (cg_cfg_want_type(ld, LUA_TBOOLEAN, p, "a boolean")) *out = lua_toboolean(ld->L, -1), r = 1;
  }
  lua_pop(ld->L, 1);
  return r;
}

/* Pushes t[key] when it is a table (returns 1) ; else pushes nothing and
 * returns 0 (absent) or -1 (wrong type, reported). */
int cg_cfg_get_table(cg_loader_t *ld, int tidx, const char *parent, const char *key) {
  char p[256];
  cg_cfg_join_path(p, sizeof p, parent, key);
  int t = cg_cfg_field(ld->L, tidx, key);
  if (t == LUA_TTABLE) return 1;
  if (t != LUA_TNIL) cg_diag_error(ld->d, p, "expected a table, got %s", luaL_typename(ld->L, -1));
  lua_pop(ld->L, 1);
  return t == LUA_TNIL ? 0 : -1;
}

/* --- Lua source of a value ------------------------------------------------------ */

typedef struct {
  char *data;
  size_t len, cap;
} srcbuf_t;

static void buf_add(srcbuf_t *b, const char *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + n) cap *= 2;
    b->data = realloc(b->data, cap);
    if (!b->data) abort();
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

/* Lua source for the value at idx (tables of strings, numbers, booleans), so
 * each worker's state can rebuild plugin_config. Returns 0 or -1 (reported). */
static int serialize(cg_loader_t *ld, int idx, srcbuf_t *b, const char *path, int depth) {
  lua_State *L = ld->L;
  switch (lua_type(L, idx)) {
  case LUA_TSTRING: {
    size_t n;
    const char *v = lua_tolstring(L, idx, &n);
    buf_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
      char esc[8];
      unsigned char ch = (unsigned char)v[i];
      if (ch == '"' || ch == '\\' || ch < 0x20 || ch >= 0x7f) {
        snprintf(esc, sizeof esc, "\\%03u", ch);
        buf_add(b, esc, 4);
      } else {
        buf_add(b, (const char *)&v[i], 1);
      }
    }
    buf_add(b, "\"", 1);
    return 0;
  }
  case LUA_TNUMBER: {
    char num[40];
    snprintf(num, sizeof num, "%.17g", lua_tonumber(L, idx));
    buf_add(b, num, strlen(num));
    return 0;
  }
  case LUA_TBOOLEAN:
    buf_add(b, lua_toboolean(L, idx) ? "true" : "false", lua_toboolean(L, idx) ? 4 : 5);
    return 0;
  case LUA_TTABLE: {
    if (depth > 16) {
      cg_diag_error(ld->d, path, "nested too deeply");
      return -1;
    }
    int t = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    int rc = 0;
    buf_add(b, "{", 1);
    lua_pushnil(L);
    while (lua_next(L, t)) {
      char sub[300];
      if (lua_type(L, -2) == LUA_TSTRING)
        snprintf(sub, sizeof sub, "%s.%s", path, lua_tostring(L, -2));
      else
        snprintf(sub, sizeof sub, "%s[%g]", path, lua_tonumber(L, -2));
      buf_add(b, "[", 1);
      if (lua_type(L, -2) != LUA_TSTRING && lua_type(L, -2) != LUA_TNUMBER) {
        cg_diag_error(ld->d, path, "keys must be strings or numbers");
        rc = -1;
      } else if (serialize(ld, -2, b, sub, depth + 1) < 0) {
        rc = -1;
      }
      buf_add(b, "]=", 2);
      if (serialize(ld, -1, b, sub, depth + 1) < 0) rc = -1;
      buf_add(b, ",", 1);
      lua_pop(L, 1);
    }
    buf_add(b, "}", 1);
    return rc;
  }
  default:
    cg_diag_error(ld->d, path, "expected strings, numbers, booleans or tables, got %s", luaL_typename(L, idx));
    return -1;
  }
}

char *cg_cfg_plugin_config(cg_loader_t *ld, int t, const char *parent) {
  lua_State *L = ld->L;
  char path[300];
  cg_cfg_join_path(path, sizeof path, parent, "plugin_config");
  srcbuf_t b = {0};
  int ty = cg_cfg_field(L, t, "plugin_config");
  int ok = 1;
  if (ty == LUA_TNIL) {
    buf_add(&b, "{}", 2);
  } else if (ty != LUA_TTABLE) {
    cg_diag_error(ld->d, path, "expected a table, got %s", luaL_typename(L, -1));
    ok = 0;
  } else {
    ok = serialize(ld, -1, &b, path, 0) == 0;
  }
  lua_pop(L, 1);
  buf_add(&b, "", 1);
  if (!ok) {
    free(b.data);
    return NULL;
  }
  return b.data;
}
