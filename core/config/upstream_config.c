/* Reading `upstreams` (see upstream_config.h). */
#include "config/upstream_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const upstream_keys[] = {"targets", "keepalive", "fail_timeout", "tls", NULL};
static const char *const tls_keys[] = {"server_name", "ca", "verify", NULL};

/* A DNS name: labels of letters, digits and hyphens, dots between. */
static int dns_name(const char *s) {
  size_t n = strlen(s), label = 0;
  if (n == 0 || n > 253) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '.') {
      if (label == 0) return 0;
      label = 0;
    } else if (isalnum(ch) || ch == '-') {
      if (++label > 63) return 0;
    } else {
      return 0;
    }
  }
  return label > 0;
}

/* tls = true, or { server_name = ..., ca = ..., verify = ... }: u->tls. */
static void load_tls(cg_loader_t *ld, int t, const char *p, cg_upstream_conf_t *u) {
  lua_State *L = ld->L;
  char tp[300];
  snprintf(tp, sizeof tp, "%s.tls", p);
  int ty = cg_cfg_field(L, t, "tls");
  int errors = ld->d->errors;
  /* its strings stay the config table's (anchored for the load): the client
   * context copies what it keeps */
  cg_tls_client_conf_t conf = {.verify = 1}, *tc = &conf;
  if (ty == LUA_TNIL || (ty == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
    lua_pop(L, 1);
    return;
  }
  if (ty == LUA_TTABLE) {
    int tt = lua_gettop(L);
    cg_cfg_check_keys(ld, tt, tp, tls_keys);
    const char *s;
    if (cg_cfg_get_string(ld, tt, tp, "server_name", 0, &s) == 1) {
      const char *last = strrchr(s, '.');
      unsigned char a6[16];
      if (inet_pton(AF_INET6, s, a6) == 1 || (dns_name(s) && isdigit((unsigned char)(last ? last[1] : s[0]))))
        cg_diag_error(ld->d, tp, "server_name: \"%s\" is an address, not a name (SNI carries names only): leave "
                                 "server_name out and the target's address is verified", s);
      else if (dns_name(s)) tc->server_name = (char *)s;
      else cg_diag_error(ld->d, tp, "server_name: expected a DNS name like \"billing.internal\", got \"%s\"", s);
    }
    if (cg_cfg_get_string(ld, tt, tp, "ca", 0, &s) == 1) tc->ca = (char *)s;
    cg_cfg_get_bool(ld, tt, tp, "verify", &tc->verify);
    if (!tc->verify)
      cg_diag_warn(ld->d, tp, "verify = false: any certificate is taken, so whoever answers at the targets' "
                              "addresses gets the requests and their credentials; for a lab only");
    if (!tc->verify && tc->ca) cg_diag_warn(ld->d, tp, "ca is not used with verify = false");
  } else if (ty != LUA_TBOOLEAN) {
    cg_diag_error(ld->d, tp, "expected true or { server_name = ..., ca = ... }, got %s", luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  if (ld->d->errors == errors) u->tls = cg_tls_client_new(tc, tp, ld->d);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void cg_upstream_config_load(cg_loader_t *ld, int tidx, cg_config_t *c) {
  lua_State *L = ld->L;
  if (cg_cfg_get_table(ld, tidx, "", "upstreams") != 1) return;
  int ut = lua_gettop(L);
  /* Sorted so errors and indexes do not depend on Lua's hash order. */
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, ut)) n++, lua_pop(L, 1);
  const char **names = cg_cfg_calloc((size_t)n, sizeof *names);
  int k = 0;
  lua_pushnil(L);
  while (lua_next(L, ut)) {
    if (lua_type(L, -2) == LUA_TSTRING)
      names[k++] = lua_tostring(L, -2);
    else
      cg_diag_error(ld->d, "upstreams", "expected upstreams by name, like upstreams = { api = { ... } }");
    lua_pop(L, 1);
  }
  qsort(names, (size_t)k, sizeof *names, cmp_str);
  c->upstreams = cg_cfg_calloc((size_t)k, sizeof *c->upstreams);
  for (int i = 0; i < k; i++) {
    char p[256], tp[300];
    snprintf(p, sizeof p, "upstreams.%s", names[i]);
    if (strcmp(names[i], "echo") == 0) {
      cg_diag_error(ld->d, p, "the name \"echo\" is reserved for the built-in echo upstream");
      continue;
    }
    lua_getfield(L, ut, names[i]);
    if (!cg_cfg_want_type(ld, LUA_TTABLE, p, "a table like { targets = { \"127.0.0.1:9000\" } }")) {
      lua_pop(L, 1);
      continue;
    }
    int t = lua_gettop(L);
    cg_cfg_check_keys(ld, t, p, upstream_keys);
    cg_upstream_conf_t *u = &c->upstreams[c->n_upstreams];
    u->name = cg_cfg_strdup(names[i]);
    u->index = c->n_upstreams++;
    u->keepalive = 32;
    u->fail_timeout_ms = 10000;
    double v;
    if (cg_cfg_get_int(ld, t, p, "keepalive", 0, 10000, &v) == 1) u->keepalive = (int)v;
    if (cg_cfg_get_number(ld, t, p, "fail_timeout", 0, 86400, &v) == 1) u->fail_timeout_ms = (uint64_t)(v * 1000);
    load_tls(ld, t, p, u);
    snprintf(tp, sizeof tp, "%s.targets", p);
    int r = cg_cfg_get_table(ld, t, p, "targets");
    if (r == 0) cg_diag_error(ld->d, tp, "required");
    if (r == 1) {
      int tt = lua_gettop(L);
      int nt = cg_cfg_list_len(ld, tt, tp);
      if (nt == 0) cg_diag_error(ld->d, tp, "needs at least one \"host:port\"");
      if (nt > 0) u->targets = cg_cfg_calloc((size_t)nt, sizeof *u->targets);
      for (int j = 1; j <= nt; j++) {
        char ep[320];
        snprintf(ep, sizeof ep, "%s[%d]", tp, j);
        lua_rawgeti(L, tt, j);
        if (cg_cfg_want_type(ld, LUA_TSTRING, ep, "a string \"host:port\"")) {
          const char *s = lua_tostring(L, -1);
          cg_target_t *tg = &u->targets[u->n_targets];
          int pr = cg_config_parse_hostport(s, &tg->addr, &tg->addrlen);
          if (pr == -2)
            cg_diag_error(ld->d, ep, "expected an IP address and port like \"127.0.0.1:9000\", got \"%s\"", s);
          else if (pr < 0)
            cg_diag_error(ld->d, ep, "expected \"host:port\", got \"%s\"", s);
          else
            tg->name = cg_cfg_strdup(s), u->n_targets++;
        }
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  free(names);
  lua_pop(L, 1);
}


void cg_upstream_config_free(cg_config_t *c) {
  for (int i = 0; i < c->n_upstreams; i++) {
    cg_upstream_conf_t *u = &c->upstreams[i];
    for (int j = 0; j < u->n_targets; j++) free(u->targets[j].name);
    free(u->targets);
    free(u->name);
    cg_tls_client_free(u->tls);
  }
  free(c->upstreams);
  c->upstreams = NULL;
  c->n_upstreams = 0;
}
