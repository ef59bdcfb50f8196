/* Reading `listen` (see listen_config.h): addresses, and for a TLS listener
 * its certificates (loaded by core/tls). Problems carry the field's path:
 * "listen[2].tls.certificates[1].key: ...". */
#include "config/listen_config.h"

#include <arpa/inet.h>
#include <lauxlib.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const char *const entry_keys[] = {"address", "tls", "http2", NULL};
static const char *const tls_keys[] = {"certificates", "min_version", "hsts", "plugin", "plugin_config", NULL};
static const char *const hsts_keys[] = {"max_age", "include_subdomains", "preload", NULL};
static const char *const cert_keys[] = {"cert", "key", NULL};

static char *dup_or_die(const char *s) {
  char *p = strdup(s);
  if (!p) abort(); /* config load at startup: nothing sensible to do without memory */
  return p;
}

/* Each key of the table at idx is one of known. stack: unchanged */
static void only_keys(lua_State *L, int idx, const char *path, const char *const *known, cg_diag_t *d) {
  lua_pushnil(L);
  while (lua_next(L, idx)) { /* stack: k, v */
    lua_pop(L, 1);           /* stack: k */
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    int ok = 0;
    for (int i = 0; k && known[i]; i++) ok |= strcmp(k, known[i]) == 0;
    if (!ok && k) cg_diag_error(d, path, "unknown key \"%s\"", k);
    else if (!ok) cg_diag_error(d, path, "expected named fields, found a %s key", luaL_typename(L, -1));
  }
}

/* The string field key of the table at idx: NULL when absent (or wrong, in d). */
static const char *string_field(lua_State *L, int idx, const char *key, const char *path, cg_diag_t *d) {
  lua_getfield(L, idx, key); /* stack: v */
  const char *s = NULL;
  if (lua_type(L, -1) == LUA_TSTRING) s = lua_tostring(L, -1); /* anchored in the table */
  else if (!lua_isnil(L, -1)) cg_diag_error(d, path, "%s: expected a string, got %s", key, luaL_typename(L, -1));
  lua_pop(L, 1);
  return s;
}

/* stack: unchanged. tls.hsts at idx: true (two years), or { max_age =
 * seconds, include_subdomains = bool, preload = bool }, into l->hsts. */
static void load_hsts(lua_State *L, int idx, cg_listener_conf_t *l, const char *tpath, cg_diag_t *d) {
  char p[220];
  snprintf(p, sizeof p, "%s.hsts", tpath);
  lua_Number max_age = 63072000;
  int sub = 0, preload = 0;
  if (lua_type(L, idx) == LUA_TBOOLEAN) {
    if (!lua_toboolean(L, idx)) return;
  } else if (lua_istable(L, idx)) {
    only_keys(L, idx, p, hsts_keys, d);
    lua_getfield(L, idx, "max_age");
    if (lua_type(L, -1) == LUA_TNUMBER) max_age = lua_tonumber(L, -1);
    else if (!lua_isnil(L, -1)) cg_diag_error(d, p, "max_age: expected seconds, got %s", luaL_typename(L, -1));
    lua_pop(L, 1);
    if (max_age < 0 || max_age > 1e9 || max_age != (lua_Number)(long long)max_age)
      cg_diag_error(d, p, "max_age: expected a whole number of seconds from 0 to 1000000000");
    const char *flags[] = {"include_subdomains", "preload"};
    int *vals[] = {&sub, &preload};
    for (int i = 0; i < 2; i++) {
      lua_getfield(L, idx, flags[i]);
      if (lua_type(L, -1) == LUA_TBOOLEAN) *vals[i] = lua_toboolean(L, -1);
      else if (!lua_isnil(L, -1)) cg_diag_error(d, p, "%s: expected a boolean, got %s", flags[i], luaL_typename(L, -1));
      lua_pop(L, 1);
    }
    /* what browsers' preload lists require of a site that asks in */
    if (preload && (!sub || max_age < 31536000))
      cg_diag_error(d, p, "preload: needs include_subdomains = true and max_age of a year (31536000) or more");
  } else {
    cg_diag_error(d, p, "expected true or { max_age = 63072000, include_subdomains = true }, got %s",
                  luaL_typename(L, idx));
    return;
  }
  char line[160];
  snprintf(line, sizeof line, "Strict-Transport-Security: max-age=%lld%s%s\r\n", (long long)max_age,
           sub ? "; includeSubDomains" : "", preload ? "; preload" : "");
  l->hsts = dup_or_die(line);
}

/* stack: unchanged. tls = { ... } at idx, into l->tls (and l->tls_ctx). */
static void load_tls(lua_State *L, int idx, cg_listener_conf_t *l, const char *path, cg_diag_t *d) {
  int errors = d->errors;
  char p[200];
  snprintf(p, sizeof p, "%s.tls", path);
  if (!lua_istable(L, idx)) {
    cg_diag_error(d, p, "expected a table like { certificates = { { cert = ..., key = ... } } }, got %s",
                  luaL_typename(L, idx));
    return;
  }
  only_keys(L, idx, p, tls_keys, d);
  /* a certificate hook: its plugin is found and checked once the whole
   * config is read (plugin_paths, redis: cg_listen_config_plugins) */
  const char *plugin = string_field(L, idx, "plugin", p, d);
  cg_loader_t ld = {L, d, NULL, NULL}; /* for the plugin_config reader only */
  if (plugin) {
    l->cert_plugin = dup_or_die(plugin);
    l->cert_plugin_conf = cg_cfg_plugin_config(&ld, idx, p);
    l->tls.cert_hook = 1;
  } else {
    lua_getfield(L, idx, "plugin_config");
    if (!lua_isnil(L, -1)) cg_diag_error(d, p, "plugin_config: only meaningful with plugin = \"NAME\"");
    lua_pop(L, 1);
  }
  l->tls.address = l->address;
  lua_getfield(L, idx, "hsts");
  if (!lua_isnil(L, -1)) load_hsts(L, lua_gettop(L), l, p, d);
  lua_pop(L, 1);
  l->tls.min_version = 12;
  const char *mv = string_field(L, idx, "min_version", p, d);
  if (mv && strcmp(mv, "1.3") == 0) l->tls.min_version = 13;
  else if (mv && strcmp(mv, "1.2") != 0)
    cg_diag_error(d, p, "min_version: expected \"1.2\" or \"1.3\" (TLS 1.0 and 1.1 are refused), got \"%s\"", mv);
  lua_getfield(L, idx, "certificates"); /* stack: certs */
  int ct = lua_gettop(L);
  int n = lua_istable(L, ct) ? (int)lua_objlen(L, ct) : 0;
  if (n == 0 && plugin && lua_isnil(L, ct)) {
    /* every certificate from the hook; a name it has none for fails */
    lua_pop(L, 1);
    if (d->errors == errors) l->tls_ctx = cg_tls_ctx_new(&l->tls, p, d);
    return;
  }
  if (!lua_istable(L, ct) || n == 0) {
    cg_diag_error(d, p, "certificates: expected a list like { { cert = \"/etc/corsgate/tls/api.pem\", key = "
                        "\"/etc/corsgate/tls/api.key\" } }");
    lua_pop(L, 1);
    return;
  }
  l->tls.certs = calloc((size_t)n, sizeof *l->tls.certs);
  if (!l->tls.certs) abort();
  for (int i = 1; i <= n; i++) {
    char cp[240];
    snprintf(cp, sizeof cp, "%s.certificates[%d]", p, i);
    lua_rawgeti(L, ct, i); /* stack: certs, cert */
    int e = lua_gettop(L);
    if (!lua_istable(L, e)) {
      cg_diag_error(d, cp, "expected { cert = ..., key = ... }, got %s", luaL_typename(L, e));
    } else {
      only_keys(L, e, cp, cert_keys, d);
      const char *cert = string_field(L, e, "cert", cp, d), *key = string_field(L, e, "key", cp, d);
      if (!cert || !key) {
        cg_diag_error(d, cp, "cert and key are both required (PEM files)");
      } else {
        cg_tls_cert_conf_t *cc = &l->tls.certs[l->tls.n_certs++];
        cc->cert = dup_or_die(cert);
        cc->key = dup_or_die(key);
      }
    }
    lua_pop(L, 1); /* stack: certs */
  }
  lua_pop(L, 1);
  if (d->errors == errors) l->tls_ctx = cg_tls_ctx_new(&l->tls, p, d);
}

/* Two listeners on one port where one address covers the other (0.0.0.0
 * and 127.0.0.1, or [::] and either): with SO_REUSEPORT both would bind
 * and each take a share of the connections. */
static int overlaps(const cg_listener_conf_t *a, const cg_listener_conf_t *b) {
  const struct sockaddr *x = (const struct sockaddr *)&a->addr, *y = (const struct sockaddr *)&b->addr;
  in_port_t px = x->sa_family == AF_INET ? ((const struct sockaddr_in *)x)->sin_port
                                         : ((const struct sockaddr_in6 *)x)->sin6_port;
  in_port_t py = y->sa_family == AF_INET ? ((const struct sockaddr_in *)y)->sin_port
                                         : ((const struct sockaddr_in6 *)y)->sin6_port;
  if (px != py) return 0;
  int wx = x->sa_family == AF_INET ? ((const struct sockaddr_in *)x)->sin_addr.s_addr == htonl(INADDR_ANY)
                                   : IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)x)->sin6_addr);
  int wy = y->sa_family == AF_INET ? ((const struct sockaddr_in *)y)->sin_addr.s_addr == htonl(INADDR_ANY)
                                   : IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)y)->sin6_addr);
  /* [::] takes IPv4 too unless the socket is v6-only: count it as covering both */
  int v6any_x = wx && x->sa_family == AF_INET6, v6any_y = wy && y->sa_family == AF_INET6;
  if (x->sa_family != y->sa_family) return v6any_x || v6any_y;
  return wx || wy;
}

/* stack: unchanged. One entry (a string or a table) at idx. */
static void load_entry(lua_State *L, int idx, cg_config_t *c, const char *path, cg_diag_t *d) {
  cg_listener_conf_t *l = &c->listeners[c->n_listeners];
  const char *addr = NULL;
  int entry_t = 0;
  int http2 = -1; /* -1: as the listener's kind has it (on with TLS, off without) */
  if (lua_type(L, idx) == LUA_TSTRING) {
    addr = lua_tostring(L, idx);
  } else if (lua_istable(L, idx)) {
    entry_t = idx;
    only_keys(L, idx, path, entry_keys, d);
    addr = string_field(L, idx, "address", path, d);
    if (!addr) cg_diag_error(d, path, "address: required (\"host:port\")");
    lua_getfield(L, idx, "http2");
    if (lua_type(L, -1) == LUA_TBOOLEAN)
      http2 = lua_toboolean(L, -1);
    else if (!lua_isnil(L, -1))
      cg_diag_error(d, path, "http2: expected a boolean, got %s", luaL_typename(L, -1));
    lua_pop(L, 1);
  } else {
    cg_diag_error(d, path, "expected \"host:port\" or { address = \"host:port\", tls = { ... } }, got %s",
                  luaL_typename(L, idx));
    return;
  }
  if (!addr) return;
  if (cg_config_parse_hostport(addr, &l->addr, &l->addrlen) != 0) {
    cg_diag_error(d, path, "expected \"host:port\", got \"%s\"", addr);
    return;
  }
  for (int i = 0; i < c->n_listeners; i++) {
    if (c->listeners[i].addrlen == l->addrlen && memcmp(&c->listeners[i].addr, &l->addr, l->addrlen) == 0) {
      cg_diag_error(d, path, "\"%s\" is listed twice", addr);
      return;
    }
    if (overlaps(&c->listeners[i], l)) {
      cg_diag_error(d, path, "\"%s\" shares its port with \"%s\", and one address covers the other: use one "
                             "listener, or different ports", addr, c->listeners[i].address);
      return;
    }
  }
  l->address = dup_or_die(addr);
  l->index = c->n_listeners++;
  l->tls.h2 = http2 != 0; /* ALPN offers h2 unless it is turned off */
  if (entry_t) {
    lua_getfield(L, entry_t, "tls"); /* stack: tls */
    if (!lua_isnil(L, -1)) load_tls(L, lua_gettop(L), l, path, d);
    lua_pop(L, 1);
  }
  /* TLS: h2 by ALPN unless turned off; plain: h2c with prior knowledge only when asked */
  l->http2 = l->tls_ctx ? http2 != 0 : http2 == 1;
}

/* The list at idx holds entries 1..n only: a stray key ("tls = ..." beside
 * the addresses) would be ignored, and a listener meant to be TLS served in
 * plain HTTP. stack: unchanged */
static void only_list(lua_State *L, int idx, cg_diag_t *d) {
  int n = (int)lua_objlen(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) { /* stack: k, v */
    lua_pop(L, 1);           /* stack: k */
    if (lua_type(L, -1) == LUA_TNUMBER) {
      lua_Number k = lua_tonumber(L, -1);
      if (k >= 1 && k <= n && k == (lua_Number)(int)k) continue;
    }
    if (lua_type(L, -1) == LUA_TSTRING)
      cg_diag_error(d, "listen", "unknown key \"%s\" (each listener is an entry of the list: { address = ..., "
                                 "tls = ... })", lua_tostring(L, -1));
    else
      cg_diag_error(d, "listen", "expected a list of listeners, found a %s key", luaL_typename(L, -1));
  }
}

void cg_listen_config_load(lua_State *L, int idx, cg_config_t *c, cg_diag_t *d) {
  if (idx < 0 && idx > LUA_REGISTRYINDEX) idx = lua_gettop(L) + idx + 1;
  c->listeners = calloc(CG_MAX_LISTENERS, sizeof *c->listeners);
  if (!c->listeners) abort();
  int t = lua_type(L, idx);
  if (t == LUA_TNIL) {
    lua_pushstring(L, "127.0.0.1:8080");
    load_entry(L, lua_gettop(L), c, "listen", d);
    lua_pop(L, 1);
  } else if (t == LUA_TSTRING) {
    load_entry(L, idx, c, "listen", d);
  } else if (t == LUA_TTABLE) {
    int n = (int)lua_objlen(L, idx);
    lua_getfield(L, idx, "address");
    int bare = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (bare) {
      cg_diag_error(d, "listen", "expected a list of listeners: write listen = { { address = ..., tls = ... } }");
      n = 0;
    } else {
      only_list(L, idx, d);
      if (n == 0) cg_diag_error(d, "listen", "expected at least one address");
    }
    if (n > CG_MAX_LISTENERS) {
      cg_diag_error(d, "listen", "at most %d listeners", CG_MAX_LISTENERS);
      n = CG_MAX_LISTENERS;
    }
    for (int i = 1; i <= n; i++) {
      char p[40];
      snprintf(p, sizeof p, "listen[%d]", i);
      lua_rawgeti(L, idx, i);
      load_entry(L, lua_gettop(L), c, p, d);
      lua_pop(L, 1);
    }
  } else {
    cg_diag_error(d, "listen", "expected \"host:port\" or a list of listeners, got %s", luaL_typename(L, idx));
  }
  /* for people: the addresses, TLS ones marked */
  size_t len = 1;
  for (int i = 0; i < c->n_listeners; i++) len += strlen(c->listeners[i].address) + 9;
  c->listen = calloc(1, len);
  if (!c->listen) abort();
  for (int i = 0; i < c->n_listeners; i++) {
    if (i) strcat(c->listen, ", ");
    strcat(c->listen, c->listeners[i].address);
    if (c->listeners[i].tls_ctx) strcat(c->listen, " (TLS)");
  }
}

cg_plugin_use_t cg_config_listener_plugin(const cg_listener_conf_t *l) {
  return (cg_plugin_use_t){l->cert_plugin, l->cert_plugin_file, l->cert_plugin_conf, -(l->index + 1), "certificate"};
}

void cg_listen_config_plugins(cg_loader_t *ld, cg_config_t *c) {
  for (int i = 0; i < c->n_listeners; i++) {
    cg_listener_conf_t *l = &c->listeners[i];
    if (!l->cert_plugin || !l->cert_plugin_conf) continue;
    char p[60], pp[80];
    snprintf(p, sizeof p, "listen[%d].tls", i + 1);
    snprintf(pp, sizeof pp, "%s.plugin", p);
    l->cert_plugin_file = ld->plugins->find(c, l->cert_plugin);
    if (!l->cert_plugin_file) {
      cg_diag_error(ld->d, pp, "no plugin \"%s\" in plugin_paths or the shipped plugins", l->cert_plugin);
      continue;
    }
    cg_plugin_use_t u = cg_config_listener_plugin(l);
    ld->plugins->check(&u, p, c->redis.address != NULL, ld->d);
  }
}

void cg_listen_config_free(cg_config_t *c) {
  for (int i = 0; c->listeners && i < c->n_listeners; i++) {
    cg_listener_conf_t *l = &c->listeners[i];
    free(l->address);
    free(l->hsts);
    free(l->cert_plugin);
    free(l->cert_plugin_file);
    free(l->cert_plugin_conf);
    for (int k = 0; k < l->tls.n_certs; k++) {
      free(l->tls.certs[k].cert);
      free(l->tls.certs[k].key);
    }
    free(l->tls.certs);
    cg_tls_ctx_free(l->tls_ctx);
  }
  free(c->listeners);
  c->listeners = NULL;
  c->n_listeners = 0;
  free(c->listen);
  c->listen = NULL;
}
