#ifndef CG_LUA_HOST_H
#define CG_LUA_HOST_H
/* The plugin host: one LuaJIT state per worker, hooks run as coroutines on
 * the worker's loop. A hook may wait on I/O (gw.sleep, gw.http) without
 * blocking the worker; every run is bounded by an instruction budget, a wall
 * clock and a memory limit, and any failure denies (fails closed).
 *
 * Ownership: a cg_lua_result_t handed to a callback owns its override; the
 * callback takes it or frees it. Nothing else crosses the seam: request bytes
 * are copied into Lua before a hook starts, so the request may end while its
 * hook still runs. */
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "cors/cors.h"
#include "util/diag.h"

typedef struct cg_lua_host cg_lua_host_t;

typedef struct cg_lua_result {
  int failed; /* error, overrun or wrong return: the origin is denied */
  int allow;
  cg_cors_override_t *ov; /* the decision's refinements; NULL with failed or a plain deny */
  char tenant[64];        /* "" when the decision named none */
  double ttl;             /* seconds the decision may be cached; < 0: the route's default */
  char error[256];
} cg_lua_result_t;

typedef void (*cg_lua_origin_cb)(void *arg, cg_lua_result_t *res);

/* What a hook sees of the request that started it. */
typedef struct cg_lua_req {
  const char *origin;
  size_t origin_len;
  const char *scheme, *host;
  size_t scheme_len, host_len;
  int port;
  const char *method, *path;
  size_t method_len, path_len;
  const char *const *header_names;
  const size_t *header_name_lens;
  const char *const *header_values;
  const size_t *header_value_lens;
  int n_headers;
} cg_lua_req_t;

/* Loads every plugin the config's routes name. NULL on failure (logged). */
cg_lua_host_t *cg_lua_host_new(uv_loop_t *loop, const cg_config_t *cfg);
/* Stops running hooks (their callbacks get a failure) and closes the state.
 * Handles it owned are closed: run the loop once more afterwards. */
void cg_lua_host_free(cg_lua_host_t *h);

/* Runs route's origin(ctx) for req. cb runs exactly once, possibly before this
 * returns (a hook that did not wait). */
void cg_lua_origin_run(cg_lua_host_t *h, const cg_route_t *r, const cg_lua_req_t *req, cg_lua_origin_cb cb,
                       void *arg);

/* What a certificate(ctx) hook answered. */
typedef struct cg_lua_cert_result {
  int failed;       /* error, overrun or a wrong return: the handshake fails */
  char *cert, *key; /* PEM text, malloc'd (the callback takes them); NULL: none for the name */
  size_t cert_len, key_len;
  double ttl; /* seconds the answer may be cached; < 0: the default */
  char error[256];
} cg_lua_cert_result_t;

typedef void (*cg_lua_cert_cb)(void *arg, cg_lua_cert_result_t *res);

/* Runs listener l's certificate(ctx) hook for server_name. cb runs exactly
 * once, possibly before this returns. */
void cg_lua_cert_run(cg_lua_host_t *h, const cg_listener_conf_t *l, const char *server_name, cg_lua_cert_cb cb,
                     void *arg);

/* Runs route's expose_headers(ctx, response) synchronously (it may not wait
 * on I/O). Writes a replacement "Access-Control-Expose-Headers: ...\r\n" line
 * into buf and returns its length, 0 to keep the current exposure (the hook
 * returned nil), -1 to send none (it failed: logged, exposes nothing). */
int cg_lua_expose_run(cg_lua_host_t *h, const cg_route_t *r, const char *origin, size_t origin_len,
                      const char *tenant, int status, const char *const *names, const size_t *name_lens,
                      const char *const *values, const size_t *value_lens, int n, char *buf, size_t buflen);

/* Validates a plugin the config uses, in a throwaway state: the module
 * loads, has its hook, plugin_config (Lua source of a table) fits its
 * schema, and what it requires (Redis) is configured. Problems go to d under
 * path ("routes[1].cors", "listen[2].tls"). */
void cg_lua_plugin_check(const cg_plugin_use_t *u, const char *path, int has_redis, cg_diag_t *d);
/* What cg_config_load is given to find and check plugins: cg_lua_plugin_find
 * and cg_lua_plugin_check. */
extern const cg_plugin_finder_t cg_lua_plugin_finder;

/* Finds NAME.lua (or NAME/init.lua) in the config's plugin_paths, then in the
 * shipped plugins directory. Returns a malloc'd path or NULL. */
char *cg_lua_plugin_find(const cg_config_t *cfg, const char *name);
/* The directory of the shipped plugins this binary uses, or NULL. */
const char *cg_lua_shipped_plugins_dir(void);
/* The version of the LuaJIT the process runs with ("LuaJIT 2.1..."), into buf. */
void cg_lua_runtime_version(char *buf, size_t n);

/* 1 when route r's plugin has an expose_headers hook. */
int cg_lua_has_expose(cg_lua_host_t *h, const cg_route_t *r);

typedef struct cg_lua_stats {
  uint64_t runs, errors, timeouts;
} cg_lua_stats_t;
void cg_lua_host_stats(const cg_lua_host_t *h, cg_lua_stats_t *out);

#endif
