#ifndef CG_CONFIG_H
#define CG_CONFIG_H
/* The loaded configuration. Built once by cg_config_load from a Lua file and
 * read-only afterwards, so every worker thread reads it without locks. Freed
 * with cg_config_free, which owns every string and array below. */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tls/tls.h"
#include "util/diag.h"

struct cg_cors_policy;

typedef struct cg_target {
  char *name; /* "host:port" as written */
  struct sockaddr_storage addr;
  socklen_t addrlen;
} cg_target_t;

typedef struct cg_upstream_conf {
  char *name;
  int index;
  cg_target_t *targets;
  int n_targets;
  int keepalive;        /* idle connections kept per target per worker */
  uint64_t fail_timeout_ms;
  struct cg_tls_client *tls;     /* HTTPS to the targets; NULL: plain HTTP */
} cg_upstream_conf_t;

typedef struct cg_static_conf {
  int status;
  char *body;
  size_t body_len;
  char *headers; /* pre-rendered "Name: value\r\n" lines */
  size_t headers_len;
} cg_static_conf_t;

typedef enum { CG_HOST_ANY = 0, CG_HOST_WILDCARD = 1, CG_HOST_EXACT = 2 } cg_host_kind_t;

enum { CG_ACCESS_LOG_TEXT = 1, CG_ACCESS_LOG_JSON = 2 };

typedef enum { CG_ROUTE_PROXY, CG_ROUTE_ECHO, CG_ROUTE_STATIC } cg_route_kind_t;

typedef struct cg_route {
  char *name;
  int index; /* 1-based, as in the config file */
  cg_host_kind_t host_kind;
  char *host; /* lower-case; for wildcards the suffix with its dot: ".example.com" */
  size_t host_len;
  char *prefix;
  size_t prefix_len;
  cg_route_kind_t kind;
  cg_upstream_conf_t *upstream; /* CG_ROUTE_PROXY */
  cg_static_conf_t static_resp; /* CG_ROUTE_STATIC */
  struct cg_cors_policy *cors;  /* NULL: the route does no CORS */
  /* shadow_cors: evaluated on every request with an Origin and compared with
   * what was enforced; never enforced (NULL: none) */
  struct cg_cors_policy *shadow_cors;
  int debug; /* refused preflights say why in X-Corsgate-Reason (development) */
  /* A Lua policy plugin refining cors per origin (NULL: static policy only). */
  char *plugin;
  char *plugin_file;
  char *plugin_conf;       /* plugin_config as Lua source of a table, for every worker's state */
  uint64_t plugin_ttl_ms;  /* how long a decision is cached when it names no ttl */
  uint64_t plugin_deny_ttl_ms;
} cg_route_t;

typedef struct cg_limits {
  size_t max_head_bytes;
  int max_headers;
  uint64_t max_body_bytes;
  int max_connections;
} cg_limits_t;

typedef struct cg_timeouts { /* milliseconds */
  uint64_t head, idle, body, send, upstream_connect, upstream_read, drain;
} cg_timeouts_t;

typedef struct cg_plugin_limits {
  uint64_t timeout_ms;       /* wall clock per hook run, its I/O included */
  uint64_t max_instructions; /* per hook run */
  size_t memory_kb;          /* per worker Lua state */
} cg_plugin_limits_t;

typedef struct cg_cache_conf {
  size_t max_entries;     /* decisions per process (the store the workers share) */
  size_t front_entries;   /* decisions each worker keeps in front of it */
  uint64_t stale_limit_ms; /* how long past expiry a decision serves while refreshes fail */
} cg_cache_conf_t;

/* The shared store of a fleet (top-level `redis = { ... }`): gw.redis in
 * plugins, and the channel every instance listens on for cache
 * invalidations. */
enum { CG_MAX_SENTINELS = 16 };

typedef struct cg_redis_node {
  char host[64]; /* an IP literal */
  int port;
} cg_redis_node_t;

typedef struct cg_redis_conf {
  char *address; /* "host:port" as written (with sentinels: "NAME via sentinels"); NULL: no Redis */
  char host[64]; /* the IP literal hiredis connects to (without sentinels) */
  int port;
  /* sentinels: the primary of master_name is found through them, and
   * followed when they fail over */
  cg_redis_node_t sentinels[CG_MAX_SENTINELS];
  int n_sentinels;
  char *master_name;
  char *sentinel_password; /* NULL: the sentinels take none (CORSGATE_SENTINEL_PASSWORD wins) */
  int db;
  char *password; /* NULL: none (CORSGATE_REDIS_PASSWORD wins over the file) */
  uint64_t timeout_ms, connect_timeout_ms;
  int pool_size; /* command connections per worker */
  char *channel; /* invalidation messages; NULL: none listened to */
} cg_redis_conf_t;

/* One address the gateway serves on (an entry of `listen`). */
typedef struct cg_listener_conf {
  char *address; /* "host:port" as written */
  struct sockaddr_storage addr;
  socklen_t addrlen;
  cg_tls_conf_t tls;          /* as written (no certificates: plain HTTP) */
  struct cg_tls_ctx *tls_ctx; /* its certificates, loaded and checked; NULL: plain HTTP */
  char *hsts;                 /* "Strict-Transport-Security: ...\r\n" for its responses; NULL: none */
  int index;                  /* in cfg->listeners */
  int http2;                  /* HTTP/2: by ALPN on TLS, with prior knowledge (h2c) on plain HTTP */
  /* tls.plugin: certificates for the names no file covers, from a Lua hook */
  char *cert_plugin, *cert_plugin_file;
  char *cert_plugin_conf; /* plugin_config as Lua source of a table */
} cg_listener_conf_t;

enum { CG_MAX_LISTENERS = 16 };

typedef struct cg_config {
  char *source; /* file name, or "(demo)" */
  char *listen; /* the listeners, for people: "127.0.0.1:8080, 0.0.0.0:443 (TLS)" */
  cg_listener_conf_t *listeners;
  int n_listeners;
  int workers;
  int log_level;
  int access_log; /* 0: off, CG_ACCESS_LOG_TEXT, CG_ACCESS_LOG_JSON */
  cg_limits_t limits;
  cg_timeouts_t timeouts;
  cg_upstream_conf_t *upstreams;
  int n_upstreams;
  cg_route_t *routes;
  int n_routes;
  char **plugin_paths;
  int n_plugin_paths;
  cg_plugin_limits_t plugins;
  cg_cache_conf_t cache;
  char *admin_listen; /* NULL: no admin API */
  struct sockaddr_storage admin_addr;
  socklen_t admin_addrlen;
  char *admin_token; /* NULL: none required (loopback only) */
  /* the key prefix of the tenant store the admin API's /tenants manages: the
   * first tenant_redis route's plugin_config.prefix (NULL: "corsgate:") */
  char *tenant_prefix;
  /* what the tenant_redis routes do for a tenant that does not say: send
   * credentials (any of them does), take plain-http origins with credentials
   * (every one of them allows it), expose "*" (any of them does); the admin
   * API checks tenants by it */
  int tenant_credentials, tenant_insecure_ok, tenant_expose_any, tenant_routes;
  cg_redis_conf_t redis;
} cg_config_t;

/* A plugin as the config uses it: a route's policy (hook "origin") or a TLS
 * listener's certificates (hook "certificate"). key: its plugin_config's
 * key in a state (a route's index, or -(listener index + 1)). */
typedef struct cg_plugin_use {
  const char *name, *file, *conf; /* conf: plugin_config as Lua source */
  int key;
  const char *hook;
} cg_plugin_use_t;
cg_plugin_use_t cg_config_route_plugin(const cg_route_t *r);
cg_plugin_use_t cg_config_listener_plugin(const cg_listener_conf_t *l);

/* How a load finds the plugins a config names and checks them, given by
 * whoever loads it (the plugin host's cg_lua_plugin_finder), so config/
 * stays data and calls into no other folder, and every problem of a file,
 * its plugins' among them, is reported in one load. */
typedef struct cg_plugin_finder {
  /* NAME's file (malloc'd), or NULL when there is none */
  char *(*find)(const cg_config_t *cfg, const char *name);
  /* u's problems (the module, its hook, plugin_config, what it needs) go to d under path */
  void (*check)(const cg_plugin_use_t *u, const char *path, int has_redis, cg_diag_t *d);
} cg_plugin_finder_t;

/* Loads and validates FILE (or the built-in demo when file is NULL), its
 * plugins through `plugins` (required: cg_lua_plugin_finder). Every problem goes to d with the path of its
 * field; returns NULL when d has errors. */
cg_config_t *cg_config_load(const char *file, const cg_plugin_finder_t *plugins, cg_diag_t *d);
/* The same from memory; name is what messages call the source. */
cg_config_t *cg_config_load_buffer(const char *name, const char *src, size_t len, const cg_plugin_finder_t *plugins,
                                   cg_diag_t *d);
void cg_config_free(cg_config_t *c);

/* The built-in demo config, served by `corsgate run` without -c: demo.lua,
 * embedded at build time (and shipped as examples/demo.lua). */
extern const char cg_config_demo[];
extern const size_t cg_config_demo_len;

/* "host:port" -> address. Returns 0 or a negative code. */
int cg_config_parse_hostport(const char *s, struct sockaddr_storage *out, socklen_t *outlen);

#endif
