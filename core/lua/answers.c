/* What hooks return, turned into results: origin()'s decision (checked
 * against the route's policy and compiled into an override) and
 * certificate()'s PEM text. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/host_internal.h"

/* Pushes t[key] without metamethods: an answer's __index could raise an
 * error here, outside any protected call, or hand back a string nothing
 * anchors. */
static void cg_rawfield(lua_State *L, int idx, const char *key) {
  lua_pushstring(L, key);
  lua_rawget(L, idx < 0 ? idx - 1 : idx);
}

/* A hook's ttl: at most 30 days (a bigger one, or infinity, is 30 days). */
static double clamp_ttl(double ttl) { return ttl > 30 * 86400.0 ? 30 * 86400.0 : ttl; }

static void read_list(lua_State *L, int idx, const char *field, const char ***out, int *count, int *has, int *any,
                      char *err, size_t errlen) {
  cg_rawfield(L, idx, field);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  *has = 1;
  if (any && lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "*") == 0) {
    *any = 1;
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1)) {
    snprintf(err, errlen, "%s: expected a list of strings, got %s", field, luaL_typename(L, -1));
    lua_pop(L, 1);
    return;
  }
  int n = (int)lua_objlen(L, -1);
  *out = calloc((size_t)n + 1, sizeof **out);
  for (int i = 1; i <= n && *out; i++) {
    lua_rawgeti(L, -1, i);
    if (lua_type(L, -1) != LUA_TSTRING) {
      snprintf(err, errlen, "%s[%d]: expected a string, got %s", field, i, luaL_typename(L, -1));
      lua_pop(L, 1);
      break;
    }
    /* anchored by the result table, which stays on the coroutine's stack */
    (*out)[(*count)++] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* Turns origin()'s return value (top of co) into a result. */
void cg_lua_decode_decision(const cg_hook_call_t *call, lua_State *co, cg_lua_result_t *res) {
  int top = lua_gettop(co);
  if (top >= 1 && lua_type(co, 1) == LUA_TBOOLEAN) {
    res->allow = lua_toboolean(co, 1);
  } else if (top >= 1 && lua_type(co, 1) == LUA_TTABLE) {
    cg_rawfield(co, 1, "allow");
    if (lua_type(co, -1) != LUA_TBOOLEAN) {
      snprintf(res->error, sizeof res->error, "origin() returned a table without allow = true|false");
      res->failed = 1;
      lua_pop(co, 1);
      return;
    }
    res->allow = lua_toboolean(co, -1);
    lua_pop(co, 1);
  } else {
    snprintf(res->error, sizeof res->error, "origin() must return true, false or a decision table, got %s",
             top >= 1 ? luaL_typename(co, 1) : "nothing");
    res->failed = 1;
    return;
  }
  cg_cors_decision_spec_t spec;
  memset(&spec, 0, sizeof spec);
  spec.allow = res->allow;
  spec.origin = call->origin;
  spec.origin_len = strlen(call->origin);
  char err[200] = "";
  const char **expose = NULL, **methods = NULL, **headers = NULL;
  if (lua_type(co, 1) != LUA_TTABLE) goto check;
  cg_rawfield(co, 1, "credentials");
  if (lua_type(co, -1) == LUA_TBOOLEAN)
    spec.has_credentials = 1, spec.credentials = lua_toboolean(co, -1);
  else if (!lua_isnil(co, -1))
    snprintf(err, sizeof err, "credentials: expected a boolean, got %s", luaL_typename(co, -1));
  lua_pop(co, 1);
  cg_rawfield(co, 1, "max_age");
  if (lua_type(co, -1) == LUA_TNUMBER)
    spec.has_max_age = 1, spec.max_age = (long long)lua_tonumber(co, -1);
  else if (!lua_isnil(co, -1))
    snprintf(err, sizeof err, "max_age: expected a number, got %s", luaL_typename(co, -1));
  lua_pop(co, 1);
  cg_rawfield(co, 1, "ttl");
  if (lua_type(co, -1) == LUA_TNUMBER && lua_tonumber(co, -1) >= 0)
    res->ttl = clamp_ttl(lua_tonumber(co, -1));
  else if (!lua_isnil(co, -1))
    snprintf(err, sizeof err, "ttl: expected a number of seconds");
  lua_pop(co, 1);
  cg_rawfield(co, 1, "tenant");
  if (lua_type(co, -1) == LUA_TSTRING) {
    size_t tl;
    const char *t = lua_tolstring(co, -1, &tl);
    if (tl >= sizeof res->tenant || tl == 0)
      snprintf(err, sizeof err, "tenant: expected a label of 1 to %zu bytes", sizeof res->tenant - 1);
    else
      memcpy(res->tenant, t, tl + 1);
  } else if (!lua_isnil(co, -1)) {
    snprintf(err, sizeof err, "tenant: expected a string, got %s", luaL_typename(co, -1));
  }
  lua_pop(co, 1);
  if (!err[0])
    read_list(co, 1, "expose_headers", &expose, &spec.expose_headers_count, &spec.has_expose, &spec.expose_any, err,
              sizeof err);
  if (!err[0])
    read_list(co, 1, "methods", &methods, &spec.methods_count, &spec.has_methods, &spec.methods_any, err,
              sizeof err);
  if (!err[0])
    read_list(co, 1, "headers", &headers, &spec.headers_count, &spec.has_headers, &spec.headers_any, err, sizeof err);
  spec.expose_headers = expose;
  spec.methods = methods;
  spec.headers = headers;
check:
  if (!err[0] && res->allow) {
    /* Plain answers are checked too (credentials on the route and an http
     * origin), then served by the route's shared override. */
    cg_diag_t d;
    cg_diag_init(&d);
    if (cg_cors_decision_is_plain(&spec)) {
      if (cg_cors_decision_check_plain(call->route->cors, &spec, &d) != 0)
        snprintf(err, sizeof err, "%s", d.count ? d.items[0].text : "invalid decision");
    } else {
      res->ov = cg_cors_override_compile(call->route->cors, &spec, &d);
      if (!res->ov) snprintf(err, sizeof err, "%s", d.count ? d.items[0].text : "invalid decision");
    }
    cg_diag_free(&d);
  }
  free(expose);
  free(methods);
  free(headers);
  if (err[0]) {
    snprintf(res->error, sizeof res->error, "invalid decision: %s", err);
    res->failed = 1;
  }
}

/* Turns certificate()'s return value (top of co) into a result: nil or
 * false (none for the name), or { cert = PEM, key = PEM, ttl = seconds }. */
void cg_lua_decode_cert(lua_State *co, cg_lua_cert_result_t *res) {
  int top = lua_gettop(co);
  if (top == 0 || lua_isnil(co, 1) || (lua_type(co, 1) == LUA_TBOOLEAN && !lua_toboolean(co, 1))) return;
  if (lua_type(co, 1) != LUA_TTABLE) {
    snprintf(res->error, sizeof res->error, "certificate() must return nil, false or { cert = PEM, key = PEM }, got %s",
             luaL_typename(co, 1));
    res->failed = 1;
    return;
  }
  const char *fields[] = {"cert", "key"};
  const char *got[2] = {NULL, NULL};
  size_t lens[2] = {0, 0};
  for (int i = 0; i < 2; i++) {
    cg_rawfield(co, 1, fields[i]);
    if (lua_type(co, -1) == LUA_TSTRING) got[i] = lua_tolstring(co, -1, &lens[i]);
    else if (!res->failed)
      snprintf(res->error, sizeof res->error, "%s: expected PEM text, got %s", fields[i], luaL_typename(co, -1)),
          res->failed = 1;
    lua_pop(co, 1); /* the strings stay anchored by the table */
  }
  cg_rawfield(co, 1, "ttl");
  if (lua_type(co, -1) == LUA_TNUMBER && lua_tonumber(co, -1) >= 0) res->ttl = clamp_ttl(lua_tonumber(co, -1));
  else if (!lua_isnil(co, -1) && !res->failed)
    snprintf(res->error, sizeof res->error, "ttl: expected a number of seconds"), res->failed = 1;
  lua_pop(co, 1);
  if (res->failed) return;
  res->cert = malloc(lens[0] + 1);
  res->key = malloc(lens[1] + 1);
  if (!res->cert || !res->key) {
    free(res->cert), free(res->key);
    res->cert = res->key = NULL;
    snprintf(res->error, sizeof res->error, "out of memory");
    res->failed = 1;
    return;
  }
  memcpy(res->cert, got[0], lens[0] + 1);
  memcpy(res->key, got[1], lens[1] + 1);
  res->cert_len = lens[0];
  res->key_len = lens[1];
}
