/* Loading and validating the config file: a Lua file returning a table.
 *
 * The file runs in a sandbox (no io, no os but os.getenv) and its table is
 * walked here against the schema below. Every problem is reported with the
 * path of its field and loading goes on, so one `corsgate check` shows all
 * of them at once. The result is a plain C struct, independent of Lua. */
#include "config/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <luajit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/cors_config.h"
#include "config/listen_config.h"
#include "config/schema.h"
#include "config/upstream_config.h"
#include "cors/cors.h"
#include "util/log.h"

static void load_plugin(cg_loader_t *ld, int cors_t, const char *cp, cg_config_t *c, cg_route_t *r);

/* --- values -------------------------------------------------------------- */

int cg_config_parse_hostport(const char *s, struct sockaddr_storage *out, socklen_t *outlen) {
  char host[128];
  const char *colon;
  memset(out, 0, sizeof *out);
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host) return -1;
    memcpy(host, s + 1, (size_t)(end - s - 1));
    host[end - s - 1] = 0;
    colon = end + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host || colon == s) return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
  }
  const char *ps = colon + 1;
  if (!*ps || strlen(ps) > 5) return -1;
  for (const char *c = ps; *c; c++)
    if (!isdigit((unsigned char)*c)) return -1;
  int port = atoi(ps);
  if (port < 1 || port > 65535) return -1;
  if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
  struct sockaddr_in *a4 = (struct sockaddr_in *)out;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *outlen = sizeof *a4;
    return 0;
  }
  if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *outlen = sizeof *a6;
    return 0;
  }
  return -2; /* names would need a resolver at load; targets are addresses */
}

static int is_tchar(unsigned char c) {
  return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_token(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!is_tchar((unsigned char)*s)) return 0;
  return 1;
}

static int valid_host_name(const char *h) {
  if (!*h || strlen(h) > 253) return 0;
  for (; *h; h++)
    if (!(isalnum((unsigned char)*h) || *h == '-' || *h == '.')) return 0;
  return 1;
}

/* --- sections ------------------------------------------------------------ */

static const char *const top_keys[] = {"listen",    "workers", "log_level",    "access_log", "limits", "timeouts",
                                       "upstreams", "routes",  "plugin_paths", "plugins",    "cache",  "admin",
                                       "redis",     NULL};
static const char *const admin_keys[] = {"listen", "token", NULL};
static const char *const redis_keys[] = {"address",    "sentinels",          "master_name", "sentinel_password",
                                         "db",         "password",           "timeout_ms",  "connect_timeout_ms",
                                         "pool_size",  "channel",            NULL};
static const char *const plugins_keys[] = {"timeout", "max_instructions", "memory_mb", NULL};
static const char *const cache_keys[] = {"max_entries", "front_entries", "stale_limit", NULL};
/* Keys of a route's cors table that belong to the plugin host, not the engine. */
static const char *const cors_plugin_keys[] = {"plugin", "plugin_config", "ttl", "deny_ttl", NULL};
static const char *const limit_keys[] = {"max_head_bytes", "max_headers", "max_body_bytes",
                                         "max_connections", NULL};
static const char *const timeout_keys[] = {"head", "idle", "body", "send", "upstream_connect",
                                           "upstream_read", "drain", NULL};
static const char *const route_keys[] = {"name", "host", "prefix", "upstream", "static", "cors", "shadow_cors", "debug", NULL};
static const char *const static_keys[] = {"status", "body", "headers", NULL};

static void load_limits(cg_loader_t *ld, int tidx, cg_limits_t *lim) {
  double v;
  if (cg_cfg_get_table(ld, tidx, "", "limits") != 1) return;
  int t = lua_gettop(ld->L);
  cg_cfg_check_keys(ld, t, "limits", limit_keys);
  if (cg_cfg_get_int(ld, t, "limits", "max_head_bytes", 1024, 1 << 20, &v) == 1) lim->max_head_bytes = (size_t)v;
  if (cg_cfg_get_int(ld, t, "limits", "max_headers", 1, 10000, &v) == 1) lim->max_headers = (int)v;
  if (cg_cfg_get_int(ld, t, "limits", "max_body_bytes", 0, 1099511627776.0, &v) == 1)
    lim->max_body_bytes = (uint64_t)v;
  if (cg_cfg_get_int(ld, t, "limits", "max_connections", 1, 1000000, &v) == 1) lim->max_connections = (int)v;
  lua_pop(ld->L, 1);
}

static void load_timeouts(cg_loader_t *ld, int tidx, cg_timeouts_t *to) {
  if (cg_cfg_get_table(ld, tidx, "", "timeouts") != 1) return;
  int t = lua_gettop(ld->L);
  cg_cfg_check_keys(ld, t, "timeouts", timeout_keys);
  uint64_t *slots[] = {&to->head,     &to->idle,          &to->body, &to->send,
                       &to->upstream_connect, &to->upstream_read, &to->drain};
  for (int i = 0; timeout_keys[i]; i++) {
    double v;
    if (cg_cfg_get_number(ld, t, "timeouts", timeout_keys[i], 0.001, 86400, &v) == 1)
      *slots[i] = (uint64_t)(v * 1000 + 0.5);
  }
  lua_pop(ld->L, 1);
}

static void load_plugin_settings(cg_loader_t *ld, int tidx, cg_config_t *c) {
  lua_State *L = ld->L;
  double v;
  int r = cg_cfg_get_table(ld, tidx, "", "plugin_paths");
  if (r == 1) {
    int pt = lua_gettop(L);
    int n = cg_cfg_list_len(ld, pt, "plugin_paths");
    if (n > 0) c->plugin_paths = cg_cfg_calloc((size_t)n, sizeof *c->plugin_paths);
    for (int i = 1; i <= n; i++) {
      char p[64];
      snprintf(p, sizeof p, "plugin_paths[%d]", i);
      lua_rawgeti(L, pt, i);
      if (cg_cfg_want_type(ld, LUA_TSTRING, p, "a directory")) c->plugin_paths[c->n_plugin_paths++] = cg_cfg_strdup(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  if (cg_cfg_get_table(ld, tidx, "", "plugins") == 1) {
    int t = lua_gettop(L);
    cg_cfg_check_keys(ld, t, "plugins", plugins_keys);
    if (cg_cfg_get_number(ld, t, "plugins", "timeout", 0.001, 3600, &v) == 1) c->plugins.timeout_ms = (uint64_t)(v * 1000);
    if (cg_cfg_get_int(ld, t, "plugins", "max_instructions", 1000, 1e12, &v) == 1) c->plugins.max_instructions = (uint64_t)v;
    if (cg_cfg_get_int(ld, t, "plugins", "memory_mb", 1, 65536, &v) == 1) c->plugins.memory_kb = (size_t)v * 1024;
    lua_pop(L, 1);
  }
  if (cg_cfg_get_table(ld, tidx, "", "cache") == 1) {
    int t = lua_gettop(L);
    cg_cfg_check_keys(ld, t, "cache", cache_keys);
    if (cg_cfg_get_int(ld, t, "cache", "max_entries", 1, 1e8, &v) == 1) c->cache.max_entries = (size_t)v;
    if (cg_cfg_get_int(ld, t, "cache", "front_entries", 1, 1e8, &v) == 1) c->cache.front_entries = (size_t)v;
    if (cg_cfg_get_number(ld, t, "cache", "stale_limit", 0, 86400 * 30, &v) == 1) c->cache.stale_limit_ms = (uint64_t)(v * 1000);
    lua_pop(L, 1);
  }
}

/* The admin API: loopback by default; anywhere else only with a token. */
static void load_admin(cg_loader_t *ld, int tidx, cg_config_t *c) {
  lua_State *L = ld->L;
  const char *s;
  const char *env = getenv("CORSGATE_ADMIN_TOKEN");
  if (cg_cfg_get_table(ld, tidx, "", "admin") != 1) return;
  int t = lua_gettop(L);
  cg_cfg_check_keys(ld, t, "admin", admin_keys);
  if (cg_cfg_get_string(ld, t, "admin", "listen", 1, &s) == 1) {
    c->admin_listen = cg_cfg_strdup(s);
    if (cg_config_parse_hostport(s, &c->admin_addr, &c->admin_addrlen) != 0)
      cg_diag_error(ld->d, "admin.listen", "expected \"host:port\", got \"%s\"", s);
  }
  if (cg_cfg_get_string(ld, t, "admin", "token", 0, &s) == 1) {
    if (strlen(s) < 16) cg_diag_error(ld->d, "admin.token", "too short to guess-proof: use 16 characters or more");
    c->admin_token = cg_cfg_strdup(s);
  }
  if (env && *env) {
    free(c->admin_token);
    c->admin_token = cg_cfg_strdup(env);
  }
  if (c->admin_listen && !c->admin_token) {
    int loopback = 0;
    if (c->admin_addr.ss_family == AF_INET)
      loopback = (ntohl(((struct sockaddr_in *)&c->admin_addr)->sin_addr.s_addr) >> 24) == 127;
    else if (c->admin_addr.ss_family == AF_INET6)
      loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&c->admin_addr)->sin6_addr);
    if (!loopback)
      cg_diag_error(ld->d, "admin.token",
                    "required when admin.listen is not a loopback address (or set CORSGATE_ADMIN_TOKEN)");
  }
  lua_pop(L, 1);
}

/* Redis: the address must be an IP literal or localhost, as everywhere else
 * in the config (no resolver runs on a worker's loop). */
/* "IP:port" (or localhost) into host and port: 0 or -1. */
static int redis_node(const char *s, char *host, size_t cap, int *port) {
  struct sockaddr_storage sa;
  socklen_t sl;
  if (cg_config_parse_hostport(s, &sa, &sl) != 0) return -1;
  if (sa.ss_family == AF_INET) {
    inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, host, (socklen_t)cap);
    *port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
  } else {
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, host, (socklen_t)cap);
    *port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
  }
  return 0;
}

/* redis.sentinels = { "IP:port", ... } and redis.master_name. */
static void load_sentinels(cg_loader_t *ld, int t, cg_redis_conf_t *r) {
  lua_State *L = ld->L;
  const char *s;
  if (cg_cfg_get_table(ld, t, "redis", "sentinels") == 1) {
    int st = lua_gettop(L);
    int n = cg_cfg_list_len(ld, st, "redis.sentinels");
    if (n == 0) cg_diag_error(ld->d, "redis.sentinels", "needs at least one \"IP:port\" (three, for a quorum)");
    if (n > CG_MAX_SENTINELS) cg_diag_error(ld->d, "redis.sentinels", "at most %d sentinels", CG_MAX_SENTINELS);
    for (int i = 1; i <= n && i <= CG_MAX_SENTINELS; i++) {
      char p[40];
      snprintf(p, sizeof p, "redis.sentinels[%d]", i);
      lua_rawgeti(L, st, i);
      if (cg_cfg_want_type(ld, LUA_TSTRING, p, "a string \"IP:port\"")) {
        cg_redis_node_t *nd = &r->sentinels[r->n_sentinels];
        if (redis_node(lua_tostring(L, -1), nd->host, sizeof nd->host, &nd->port) == 0) r->n_sentinels++;
        else cg_diag_error(ld->d, p, "expected \"IP:port\", got \"%s\"", lua_tostring(L, -1));
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  if (cg_cfg_get_string(ld, t, "redis", "sentinel_password", 0, &s) == 1) r->sentinel_password = cg_cfg_strdup(s);
  const char *env = getenv("CORSGATE_SENTINEL_PASSWORD");
  if (env && *env) {
    free(r->sentinel_password);
    r->sentinel_password = cg_cfg_strdup(env);
  }
  if (cg_cfg_get_string(ld, t, "redis", "master_name", 1, &s) == 1) {
    if (!*s || strpbrk(s, " \r\n") || strlen(s) > 100) {
      cg_diag_error(ld->d, "redis.master_name", "expected the name the sentinels monitor, got \"%s\"", s);
    } else {
      r->master_name = cg_cfg_strdup(s);
      char desc[200];
      snprintf(desc, sizeof desc, "%s via %d sentinel(s)", s, r->n_sentinels);
      r->address = cg_cfg_strdup(desc);
    }
  }
}

static void load_redis(cg_loader_t *ld, int tidx, cg_config_t *c) {
  lua_State *L = ld->L;
  const char *s;
  double v;
  cg_redis_conf_t *r = &c->redis;
  if (cg_cfg_get_table(ld, tidx, "", "redis") != 1) return;
  int t = lua_gettop(L);
  cg_cfg_check_keys(ld, t, "redis", redis_keys);
  int has_sentinels = cg_cfg_field(L, t, "sentinels") != LUA_TNIL;
  lua_pop(L, 1);
  if (has_sentinels) {
    load_sentinels(ld, t, r);
    lua_getfield(L, t, "address");
    if (!lua_isnil(L, -1))
      cg_diag_error(ld->d, "redis.address", "address or sentinels, not both (with sentinels the primary is found "
                                            "through them)");
    lua_pop(L, 1);
  } else if (cg_cfg_get_string(ld, t, "redis", "address", 0, &s) == 1) {
    const char *only[] = {"master_name", "sentinel_password"};
    for (int i = 0; i < 2; i++) {
      lua_getfield(L, t, only[i]);
      if (!lua_isnil(L, -1)) {
        char p[40];
        snprintf(p, sizeof p, "redis.%s", only[i]);
        cg_diag_error(ld->d, p, "only meaningful with sentinels = { ... }");
      }
      lua_pop(L, 1);
    }
    r->address = cg_cfg_strdup(s);
    if (redis_node(s, &r->host[0], sizeof r->host, &r->port) != 0)
      cg_diag_error(ld->d, "redis.address", "expected \"IP:port\" or \"localhost:port\", got \"%s\"", s);
  } else {
    cg_diag_error(ld->d, "redis", "address = \"IP:port\" (one server) or sentinels = { ... } with master_name");
  }
  if (cg_cfg_get_int(ld, t, "redis", "db", 0, 65535, &v) == 1) r->db = (int)v;
  if (cg_cfg_get_string(ld, t, "redis", "password", 0, &s) == 1) r->password = cg_cfg_strdup(s);
  const char *env = getenv("CORSGATE_REDIS_PASSWORD");
  if (env && *env) {
    free(r->password);
    r->password = cg_cfg_strdup(env);
  }
  if (cg_cfg_get_int(ld, t, "redis", "timeout_ms", 1, 600000, &v) == 1) r->timeout_ms = (uint64_t)v;
  if (r->timeout_ms >= c->plugins.timeout_ms)
    cg_diag_warn(ld->d, "redis.timeout_ms",
                 "%llu ms is not below plugins.timeout (%llu ms): a hook is cut off before gw.redis can report a "
                 "timeout", (unsigned long long)r->timeout_ms, (unsigned long long)c->plugins.timeout_ms);
  if (cg_cfg_get_int(ld, t, "redis", "connect_timeout_ms", 1, 600000, &v) == 1) r->connect_timeout_ms = (uint64_t)v;
  if (cg_cfg_get_int(ld, t, "redis", "pool_size", 1, 64, &v) == 1) r->pool_size = (int)v;
  int ct = cg_cfg_field(L, t, "channel");
  lua_pop(L, 1);
  if (ct == LUA_TBOOLEAN) {
    /* channel = false: this instance does not listen for invalidations */
    int on = 1;
    cg_cfg_get_bool(ld, t, "redis", "channel", &on);
    if (on) cg_diag_error(ld->d, "redis.channel", "expected a channel name, or false for none");
    free(r->channel);
    r->channel = NULL;
  } else if (cg_cfg_get_string(ld, t, "redis", "channel", 0, &s) == 1) {
    if (!*s || strpbrk(s, " \r\n")) {
      cg_diag_error(ld->d, "redis.channel", "expected a channel name without spaces, got \"%s\"", s);
    } else {
      free(r->channel);
      r->channel = cg_cfg_strdup(s);
    }
  }
  lua_pop(L, 1);
}

static cg_upstream_conf_t *find_upstream(cg_config_t *c, const char *name) {
  for (int i = 0; i < c->n_upstreams; i++)
    if (strcmp(c->upstreams[i].name, name) == 0) return &c->upstreams[i];
  return NULL;
}

static void load_static(cg_loader_t *ld, int tidx, const char *path, cg_static_conf_t *st) {
  lua_State *L = ld->L;
  char p[256];
  cg_cfg_join_path(p, sizeof p, path, "static");
  int t = lua_gettop(L);
  (void)tidx;
  cg_cfg_check_keys(ld, t, p, static_keys);
  double v;
  st->status = 200;
  if (cg_cfg_get_int(ld, t, p, "status", 200, 599, &v) == 1) st->status = (int)v;
  const char *body = "";
  cg_cfg_get_string(ld, t, p, "body", 0, &body);
  lua_getfield(L, t, "body");
  size_t blen = 0;
  if (lua_type(L, -1) == LUA_TSTRING) lua_tolstring(L, -1, &blen);
  lua_pop(L, 1);
  st->body = cg_cfg_calloc(blen + 1, 1);
  memcpy(st->body, body, blen);
  st->body_len = blen;
  /* Headers are rendered once here: the response path copies bytes, never formats. */
  size_t cap = 1, len = 0;
  char *block = cg_cfg_calloc(1, 1);
  if (cg_cfg_get_table(ld, t, p, "headers") == 1) {
    int ht = lua_gettop(L);
    char hp[300];
    lua_pushnil(L);
    while (lua_next(L, ht)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
        snprintf(hp, sizeof hp, "%s.headers", p);
        cg_diag_error(ld->d, hp, "expected { [\"name\"] = \"value\" } pairs of strings");
      } else {
        const char *name = lua_tostring(L, -2), *val = lua_tostring(L, -1);
        snprintf(hp, sizeof hp, "%s.headers[\"%s\"]", p, name);
        if (!is_token(name)) {
          cg_diag_error(ld->d, hp, "not a valid header name");
        } else if (strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0 ||
                   strcasecmp(name, "connection") == 0) {
          cg_diag_error(ld->d, hp, "set by the gateway; remove it");
        } else if (strpbrk(val, "\r\n") || strchr(val, 0) != val + lua_objlen(L, -1)) {
          cg_diag_error(ld->d, hp, "a header value cannot contain CR, LF or NUL");
        } else {
          size_t need = len + strlen(name) + strlen(val) + 5;
          if (need > cap) {
            cap = need * 2;
            block = realloc(block, cap);
            if (!block) abort();
          }
          len += (size_t)sprintf(block + len, "%s: %s\r\n", name, val);
        }
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  st->headers = block;
  st->headers_len = len;
}

static void load_route(cg_loader_t *ld, int rt, int idx, cg_config_t *c, cg_route_t *r) {
  lua_State *L = ld->L;
  char p[64];
  snprintf(p, sizeof p, "routes[%d]", idx);
  cg_cfg_check_keys(ld, rt, p, route_keys);
  r->index = idx;
  const char *s = NULL;
  char defname[32];
  snprintf(defname, sizeof defname, "route%d", idx);
  r->name = cg_cfg_strdup(cg_cfg_get_string(ld, rt, p, "name", 0, &s) == 1 ? s : defname);

  const char *host = "*";
  char hp[96];
  snprintf(hp, sizeof hp, "%s.host", p);
  cg_cfg_get_string(ld, rt, p, "host", 0, &host);
  char *h = cg_cfg_strdup(host);
  for (char *q = h; *q; q++) *q = (char)tolower((unsigned char)*q);
  if (strcmp(h, "*") == 0) {
    r->host_kind = CG_HOST_ANY;
    r->host = h;
  } else if (strncmp(h, "*.", 2) == 0 && valid_host_name(h + 2) && strchr(h + 2, '.')) {
    r->host_kind = CG_HOST_WILDCARD;
    r->host = cg_cfg_strdup(h + 1); /* keep the dot: matching is a label-boundary suffix test */
    free(h);
  } else if (valid_host_name(h)) {
    r->host_kind = CG_HOST_EXACT;
    r->host = h;
  } else {
    cg_diag_error(ld->d, hp, "expected \"*\", a host name like \"api.example.com\" or \"*.example.com\", got \"%s\"", host);
    r->host = h;
  }
  r->host_len = strlen(r->host);

  char pp[96];
  snprintf(pp, sizeof pp, "%s.prefix", p);
  if (cg_cfg_get_string(ld, rt, p, "prefix", 1, &s) == 1) {
    if (s[0] != '/' || strpbrk(s, " ?#\r\n\t"))
      cg_diag_error(ld->d, pp, "expected a path starting with \"/\", got \"%s\"", s);
    r->prefix = cg_cfg_strdup(s);
  } else {
    r->prefix = cg_cfg_strdup("/");
  }
  r->prefix_len = strlen(r->prefix);

  int has_static = cg_cfg_field(L, rt, "static") != LUA_TNIL;
  lua_pop(L, 1);
  const char *up = NULL;
  int has_up = cg_cfg_get_string(ld, rt, p, "upstream", 0, &up);
  if (has_static && has_up) {
    cg_diag_error(ld->d, p, "has both upstream and static: keep one");
  } else if (has_static) {
    r->kind = CG_ROUTE_STATIC;
    if (cg_cfg_get_table(ld, rt, p, "static") == 1) {
      load_static(ld, rt, p, &r->static_resp);
      lua_pop(L, 1);
    }
  } else if (has_up == 1) {
    char upp[96];
    snprintf(upp, sizeof upp, "%s.upstream", p);
    if (strcmp(up, "echo") == 0) {
      r->kind = CG_ROUTE_ECHO;
    } else {
      r->kind = CG_ROUTE_PROXY;
      r->upstream = find_upstream(c, up);
      if (!r->upstream) cg_diag_error(ld->d, upp, "unknown upstream \"%s\"", up);
    }
  } else if (has_up == 0) {
    cg_diag_error(ld->d, p, "needs upstream = \"NAME\" (or \"echo\") or static = { ... }");
  }

  int ct = cg_cfg_field(L, rt, "cors");
  if (ct != LUA_TNIL) {
    char cp[96];
    snprintf(cp, sizeof cp, "%s.cors", p);
    if (ct != LUA_TTABLE) {
      cg_diag_error(ld->d, cp, "expected a table, got %s", luaL_typename(L, -1));
    } else {
      int cors_t = lua_gettop(L);
      /* the engine sees the policy without the plugin host's keys */
      lua_newtable(L);
      lua_pushnil(L);
      while (lua_next(L, cors_t)) {
        int ours = 0;
        if (lua_type(L, -2) == LUA_TSTRING)
          for (const char *const *k = cors_plugin_keys; *k; k++) ours |= strcmp(*k, lua_tostring(L, -2)) == 0;
        if (ours) {
          lua_pop(L, 1);
        } else {
          lua_pushvalue(L, -2);
          lua_insert(L, -2);
          lua_rawset(L, -4);
        }
      }
      /* read once, and only by configs that use CORS */
      if (!ld->psl) ld->psl = cg_psl_load(NULL, ld->d);
      lua_getfield(L, cors_t, "plugin");
      int by_plugin = !lua_isnil(L, -1);
      lua_pop(L, 1);
      cg_cors_config_load_plugin(L, lua_gettop(L), cp, ld->psl, by_plugin, ld->d, &r->cors);
      lua_pop(L, 1);
      load_plugin(ld, cors_t, cp, c, r);
    }
  }
  lua_pop(L, 1);

  cg_cfg_get_bool(ld, rt, p, "debug", &r->debug);

  int st = cg_cfg_field(L, rt, "shadow_cors");
  if (st != LUA_TNIL) {
    char sp[96];
    snprintf(sp, sizeof sp, "%s.shadow_cors", p);
    if (st != LUA_TTABLE) {
      cg_diag_error(ld->d, sp, "expected a table, got %s", luaL_typename(L, -1));
    } else {
      int t = lua_gettop(L);
      for (const char *const *k = cors_plugin_keys; *k; k++) {
        lua_getfield(L, t, *k);
        if (!lua_isnil(L, -1))
          cg_diag_error(ld->d, sp, "%s: a shadow policy is static (origins, patterns, methods...); shadow a plugin "
                        "by running it on a second route", *k);
        lua_pop(L, 1);
      }
      if (!ld->psl) ld->psl = cg_psl_load(NULL, ld->d);
      cg_cors_config_load(L, t, sp, ld->psl, ld->d, &r->shadow_cors);
    }
  }
  lua_pop(L, 1);
}

static void load_plugin(cg_loader_t *ld, int cors_t, const char *cp, cg_config_t *c, cg_route_t *r) {
  lua_State *L = ld->L;
  const char *name = NULL;
  char pp[128];
  snprintf(pp, sizeof pp, "%s.plugin", cp);
  if (cg_cfg_get_string(ld, cors_t, cp, "plugin", 0, &name) != 1) {
    for (const char *const *k = cors_plugin_keys + 1; *k; k++) {
      lua_getfield(L, cors_t, *k);
      if (!lua_isnil(L, -1)) {
        char kp[160];
        snprintf(kp, sizeof kp, "%s.%s", cp, *k);
        cg_diag_error(ld->d, kp, "only meaningful with plugin = \"NAME\"");
      }
      lua_pop(L, 1);
    }
    return;
  }
  r->plugin = cg_cfg_strdup(name);
  r->plugin_file = ld->plugins->find(c, name);
  if (!r->plugin_file) {
    cg_diag_error(ld->d, pp, "no plugin \"%s\" in plugin_paths or the shipped plugins", name);
    return;
  }
  double v;
  r->plugin_ttl_ms = 60000;
  r->plugin_deny_ttl_ms = 10000;
  if (cg_cfg_get_number(ld, cors_t, cp, "ttl", 0, 86400 * 30, &v) == 1) r->plugin_ttl_ms = (uint64_t)(v * 1000);
  if (cg_cfg_get_number(ld, cors_t, cp, "deny_ttl", 0, 86400 * 30, &v) == 1) r->plugin_deny_ttl_ms = (uint64_t)(v * 1000);
  r->plugin_conf = cg_cfg_plugin_config(ld, cors_t, cp);
  if (r->plugin_conf) {
    cg_plugin_use_t u = cg_config_route_plugin(r);
    ld->plugins->check(&u, cp, c->redis.address != NULL, ld->d);
  }
  if (strcmp(name, "tenant_redis") == 0) {
    lua_getfield(L, cors_t, "credentials");
    if (lua_toboolean(L, -1)) c->tenant_credentials = 1;
    lua_getfield(L, cors_t, "allow_insecure_origins");
    c->tenant_insecure_ok = lua_toboolean(L, -1) && (c->tenant_routes == 0 || c->tenant_insecure_ok);
    lua_getfield(L, cors_t, "expose_headers");
    if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "*") == 0) c->tenant_expose_any = 1;
    if (lua_istable(L, -1)) { /* { "X-A", "*" }: "*" among names is the wildcard too */
      for (int i = 1; i <= (int)lua_objlen(L, -1); i++) {
        lua_rawgeti(L, -1, i);
        if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "*") == 0) c->tenant_expose_any = 1;
        lua_pop(L, 1);
      }
    }
    c->tenant_routes++;
    lua_pop(L, 3);
  }
  if (strcmp(name, "tenant_redis") == 0 && !c->tenant_prefix) { /* the store GET/PUT /tenants manages */
    lua_getfield(L, cors_t, "plugin_config");
    if (lua_istable(L, -1)) lua_getfield(L, -1, "prefix");
    else lua_pushnil(L);
    if (lua_type(L, -1) == LUA_TSTRING) c->tenant_prefix = cg_cfg_strdup(lua_tostring(L, -1));
    lua_pop(L, 2);
  }
}

static void load_routes(cg_loader_t *ld, int tidx, cg_config_t *c) {
  lua_State *L = ld->L;
  int r = cg_cfg_get_table(ld, tidx, "", "routes");
  if (r == 0) cg_diag_error(ld->d, "routes", "required: at least one route");
  if (r != 1) return;
  int rt = lua_gettop(L);
  int n = cg_cfg_list_len(ld, rt, "routes");
  if (n == 0) cg_diag_error(ld->d, "routes", "needs at least one route");
  if (n <= 0) {
    lua_pop(L, 1);
    return;
  }
  c->routes = cg_cfg_calloc((size_t)n, sizeof *c->routes);
  for (int i = 1; i <= n; i++) {
    char p[64];
    snprintf(p, sizeof p, "routes[%d]", i);
    lua_rawgeti(L, rt, i);
    cg_route_t *route = &c->routes[c->n_routes];
    if (cg_cfg_want_type(ld, LUA_TTABLE, p, "a table like { name = \"api\", prefix = \"/\", upstream = \"echo\" }")) {
      load_route(ld, lua_gettop(L), i, c, route);
      c->n_routes++;
      for (int j = 0; j < c->n_routes - 1; j++) {
        cg_route_t *o = &c->routes[j];
        if (strcmp(o->name, route->name) == 0)
          cg_diag_error(ld->d, p, "route name \"%s\" is already used by routes[%d]", route->name, o->index);
        else if (strcmp(o->host, route->host) == 0 && o->host_kind == route->host_kind &&
                 strcmp(o->prefix, route->prefix) == 0)
          cg_diag_error(ld->d, p, "same host and prefix as routes[%d]: it could never match", o->index);
      }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* --- entry --------------------------------------------------------------- */

static void sandbox(lua_State *L) {
  /* stack: chunk -> chunk (with its environment set) */
  lua_newtable(L);
  static const char *const globals[] = {"assert", "error",  "ipairs", "next",   "pairs",  "pcall",
                                        "select", "tonumber", "tostring", "type", "unpack", "string",
                                        "table",  "math",   NULL};
  for (const char *const *g = globals; *g; g++) {
    lua_getglobal(L, *g);
    lua_setfield(L, -2, *g);
  }
  lua_newtable(L); /* os = { getenv = os.getenv } so secrets can stay out of the file */
  lua_getglobal(L, "os");
  lua_getfield(L, -1, "getenv");
  lua_setfield(L, -3, "getenv");
  lua_pop(L, 1);
  lua_setfield(L, -2, "os");
  lua_setfenv(L, -2);
}

static long default_workers(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : (n > 256 ? 256 : n);
}

/* A config is a program: a loop that never ends or a string doubled forty
 * times must end in an error at load, not hang `corsgate check` or take the
 * machine's memory. */
#define CONFIG_MEMORY_LIMIT (256u << 20)
#define CONFIG_INSTRUCTION_LIMIT 100000000L
#define CONFIG_HOOK_EVERY 1000
/* instructions are not all equal (LuaJIT's string interning degrades with
 * colliding strings), so wall-clock time is bounded too */
#define CONFIG_TIME_LIMIT_S 5

typedef struct {
  size_t used;
  long instructions;
  struct timespec start;
} config_budget_t;

static void *config_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  config_budget_t *b = ud;
  if (nsize == 0) {
    b->used -= osize;
    free(ptr);
    return NULL;
  }
  /* osize is the old block's size only when ptr is set (else it is a type tag) */
  size_t old = ptr ? osize : 0;
  if (nsize > old && b->used - old + nsize > CONFIG_MEMORY_LIMIT) return NULL;
  void *q = realloc(ptr, nsize);
  if (q) b->used = b->used - old + nsize;
  return q;
}

static void config_count_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  config_budget_t *b;
  lua_getallocf(L, (void **)&b);
  b->instructions += CONFIG_HOOK_EVERY;
  if (b->instructions > CONFIG_INSTRUCTION_LIMIT)
    luaL_error(L, "the config did not finish within %d million Lua instructions (a loop that never ends?)",
               (int)(CONFIG_INSTRUCTION_LIMIT / 1000000));
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (now.tv_sec - b->start.tv_sec > CONFIG_TIME_LIMIT_S)
    luaL_error(L, "the config did not finish within %d seconds", CONFIG_TIME_LIMIT_S);
}

static cg_config_t *load(const char *name, const char *src, size_t len, const cg_plugin_finder_t *plugins,
                         cg_diag_t *d);

cg_config_t *cg_config_load(const char *file, const cg_plugin_finder_t *plugins, cg_diag_t *d) {
  if (!file) return load("(demo)", cg_config_demo, cg_config_demo_len, plugins, d);
  return load(file, NULL, 0, plugins, d);
}

cg_config_t *cg_config_load_buffer(const char *name, const char *src, size_t len, const cg_plugin_finder_t *plugins,
                                   cg_diag_t *d) {
  return load(name, src, len, plugins, d);
}

cg_plugin_use_t cg_config_route_plugin(const cg_route_t *r) {
  return (cg_plugin_use_t){r->plugin, r->plugin_file, r->plugin_conf, r->index, "origin"};
}

/* src NULL: read the file called name. */
static cg_config_t *load(const char *name, const char *src, size_t len, const cg_plugin_finder_t *plugins,
                         cg_diag_t *d) {
  cg_config_t *c = cg_cfg_calloc(1, sizeof *c);
  c->source = cg_cfg_strdup(name);
  c->workers = (int)default_workers();
  c->log_level = CG_LOG_INFO;
  c->access_log = 1;
  c->limits = (cg_limits_t){.max_head_bytes = 16384, .max_headers = 100,
                            .max_body_bytes = 10 * 1024 * 1024, .max_connections = 10000};
  c->plugins = (cg_plugin_limits_t){.timeout_ms = 1000, .max_instructions = 10000000, .memory_kb = 64 * 1024};
  c->cache = (cg_cache_conf_t){.max_entries = 250000, .front_entries = 10000, .stale_limit_ms = 300000};
  c->redis = (cg_redis_conf_t){.timeout_ms = 500, .connect_timeout_ms = 1000, .pool_size = 2,
                               .channel = cg_cfg_strdup("corsgate:invalidate")};
  c->timeouts = (cg_timeouts_t){.head = 10000, .idle = 60000, .body = 30000, .send = 60000,
                                .upstream_connect = 5000, .upstream_read = 30000, .drain = 10000};

  config_budget_t budget = {0};
  clock_gettime(CLOCK_MONOTONIC, &budget.start);
  lua_State *L = lua_newstate(config_alloc, &budget);
  if (!L) {
    cg_diag_error(d, NULL, "cannot create a Lua state");
    cg_config_free(c);
    return NULL;
  }
  luaL_openlibs(L);
  /* the count hook does not run inside compiled traces */
  luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
  lua_sethook(L, config_count_hook, LUA_MASKCOUNT, CONFIG_HOOK_EVERY);
  cg_loader_t ld = {.L = L, .d = d, .psl = NULL, .plugins = plugins};
  int rc;
  if (src) {
    char chunk[128];
    snprintf(chunk, sizeof chunk, "=%s", name);
    rc = luaL_loadbuffer(L, src, len, chunk);
  } else {
    rc = luaL_loadfile(L, name);
  }
  if (rc == 0) {
    sandbox(L);
    rc = lua_pcall(L, 0, 1, 0);
  }
  if (rc == LUA_ERRMEM) {
    cg_diag_error(d, NULL, "evaluating the config took more than %u MiB of memory", CONFIG_MEMORY_LIMIT >> 20);
  } else if (rc != 0) {
    cg_diag_error(d, NULL, "%s", lua_tostring(L, -1));
  } else if (!lua_istable(L, -1)) {
    cg_diag_error(d, NULL, "the file must return a table, like return { listen = \"127.0.0.1:8080\", ... }");
  } else {
    int t = lua_gettop(L);
    cg_cfg_check_keys(&ld, t, "", top_keys);
    const char *s;
    lua_getfield(L, t, "listen");
    cg_listen_config_load(L, -1, c, d);
    lua_pop(L, 1);
    double v;
    if (cg_cfg_get_int(&ld, t, "", "workers", 1, 256, &v) == 1) c->workers = (int)v;
    if (cg_cfg_get_string(&ld, t, "", "log_level", 0, &s) == 1) {
      int lv = cg_log_level_parse(s);
      if (lv < 0)
        cg_diag_error(d, "log_level", "expected \"error\", \"warn\", \"info\" or \"debug\", got \"%s\"", s);
      else
        c->log_level = lv;
    }
    /* access_log = true | false | "text" | "json" */
    lua_getfield(L, t, "access_log");
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *f = lua_tostring(L, -1);
      if (strcmp(f, "json") == 0) c->access_log = CG_ACCESS_LOG_JSON;
      else if (strcmp(f, "text") == 0) c->access_log = CG_ACCESS_LOG_TEXT;
      else cg_diag_error(d, "access_log", "expected true, false, \"text\" or \"json\", got \"%s\"", f);
      lua_pop(L, 1);
    } else {
      lua_pop(L, 1);
      cg_cfg_get_bool(&ld, t, "", "access_log", &c->access_log);
    }
    load_limits(&ld, t, &c->limits);
    load_timeouts(&ld, t, &c->timeouts);
    cg_upstream_config_load(&ld, t, c);
    load_plugin_settings(&ld, t, c);
    load_admin(&ld, t, c);
    load_redis(&ld, t, c);
    load_routes(&ld, t, c);
    cg_listen_config_plugins(&ld, c);
  }
  if (ld.psl) cg_psl_free(ld.psl);
  lua_close(L);
  if (d->errors) {
    cg_config_free(c);
    return NULL;
  }
  return c;
}

void cg_config_free(cg_config_t *c) {
  if (!c) return;
  cg_upstream_config_free(c);
  for (int i = 0; i < c->n_routes; i++) {
    cg_route_t *r = &c->routes[i];
    free(r->name);
    free(r->host);
    free(r->prefix);
    free(r->static_resp.body);
    free(r->static_resp.headers);
    if (r->cors) cg_cors_policy_free(r->cors);
    if (r->shadow_cors) cg_cors_policy_free(r->shadow_cors);
    free(r->plugin);
    free(r->plugin_file);
    free(r->plugin_conf);
  }
  for (int i = 0; i < c->n_plugin_paths; i++) free(c->plugin_paths[i]);
  free(c->plugin_paths);
  free(c->routes);
  cg_listen_config_free(c);
  free(c->admin_listen);
  free(c->admin_token);
  free(c->tenant_prefix);
  free(c->redis.address);
  free(c->redis.master_name);
  free(c->redis.sentinel_password);
  free(c->redis.password);
  free(c->redis.channel);
  free(c->source);
  free(c);
}
