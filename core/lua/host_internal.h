#ifndef CG_LUA_HOST_INTERNAL_H
#define CG_LUA_HOST_INTERNAL_H
/* Shared by the host's files: the running hook and the yielding primitives.
 * A yielding primitive is start (check, arm, register cancel, yield),
 * complete (resume with results) and cancel (disarm when the hook dies
 * first); see gw.sleep in host.c and gw.http in http.c. */
#include <lua.h>
#include <uv.h>

#include "lua/host.h"
#include "util/list.h"

#define CG_LUA_LOG_SLOTS 1024

/* A view of a request's headers (the arrays of cg_lua_req_t, or a copy). */
typedef struct cg_lua_headers {
  int n;
  const char *const *names, *const *values;
  const size_t *name_lens, *value_lens;
} cg_lua_headers_t;

#define CG_LUA_CO_POOL 16

typedef enum { CG_HOOK_ORIGIN, CG_HOOK_EXPOSE, CG_HOOK_CERT } cg_hook_kind_t;

typedef struct cg_hook_call {
  struct cg_lua_host *host;
  cg_hook_kind_t kind;
  const cg_route_t *route;
  lua_State *co;
  int co_ref;
  cg_list_t link;
  uv_timer_t timer; /* the wall-clock limit while the hook waits (armed at its first wait) */
  int timer_armed;
  uint64_t deadline_ns;
  uint64_t instructions;
  int killed;
  char reason[96];
  void *io;                 /* what the hook waits on */
  void (*cancel)(void *io); /* disarms it when the hook dies first */
  const char *plugin;                     /* its name, for the log */
  const cg_listener_conf_t *listener;     /* CG_HOOK_CERT: whose certificate */
  cg_lua_origin_cb cb;
  cg_lua_cert_cb cert_cb; /* CG_HOOK_CERT */
  void *arg;
  char origin[256]; /* the origin decided, or the server name a certificate is for */
  /* ctx.headers' source, read when the hook first asks: the request's own
   * arrays (valid until the hook first waits), then hdr_copy, taken at that
   * wait, which hdrs then points into. */
  double token;
  cg_lua_headers_t hdrs;
  void *hdr_copy;
  int recycle; /* the coroutine ended normally and can run the next hook */
} cg_hook_call_t;

struct cg_http_pool;

struct cg_lua_host {
  lua_State *L;
  uv_loop_t *loop;
  const cg_config_t *cfg;
  int prelude_ref, run_expose_ref;
  int *runner_ref; /* by route index: the route's origin_runner */
  int n_runners;
  int *cert_runner_ref; /* by listener index: its certificate hook's cert_runner, or LUA_NOREF */
  int n_listeners;
  double next_token;
  /* Finished hook coroutines, reused: a new thread and its registry slot per
   * hook were a tenth of a cold decision. */
  lua_State *co_pool[CG_LUA_CO_POOL];
  int co_pool_ref[CG_LUA_CO_POOL];
  int n_co_pool;
  cg_hook_call_t *current; /* the hook running right now */
  cg_list_t calls;         /* every hook started and not finished */
  uint64_t timeout_ms, max_instructions;
  size_t memory_kb;
  size_t mem_used; /* bytes the state holds, counted by its allocator */
  int in_native;   /* inside a native that must not see an allocation refused */
  cg_lua_stats_t stats;
  /* hook failures logged: per slot the origin's hash and when, and this
   * minute's count of lines (log_failure) */
  struct cg_lua_log_slot {
    uint64_t hash, at;
  } log_slots[CG_LUA_LOG_SLOTS];
  uint64_t log_minute;
  unsigned log_lines;
  cg_list_t http_idle; /* idle keep-alive connections of gw.http */
  int http_idle_count;
  struct cg_redis *redis[64]; /* gw.redis's pool (config redis.pool_size) */
  int n_redis;
  unsigned redis_rr;
};

cg_hook_call_t *cg_lua_current(lua_State *L);
/* The call a yielding primitive belongs to; raises when it may not wait here. */
cg_hook_call_t *cg_lua_yieldable(lua_State *L, const char *what);
void cg_lua_resume(cg_hook_call_t *call, int nargs);
void cg_lua_kill(cg_hook_call_t *call, const char *why);

int cg_lua_http_request(lua_State *L);
void cg_lua_http_free(struct cg_lua_host *h);

int cg_lua_redis_call(lua_State *L);
void cg_lua_redis_start(struct cg_lua_host *h); /* connects the pool when the config has redis */
void cg_lua_redis_free(struct cg_lua_host *h);

/* answers.c: the values a hook returned (on co's stack, from index 1) as a
 * result; a wrong answer sets res->failed and res->error. */
void cg_lua_decode_decision(const cg_hook_call_t *call, lua_State *co, cg_lua_result_t *res);
void cg_lua_decode_cert(lua_State *co, cg_lua_cert_result_t *res);

/* host.c: a state (h: the host whose memory limit its allocator enforces, or
 * NULL for one that runs no hooks), and the prelude module pushed on its
 * stack (or an error message, returning nonzero). */
lua_State *cg_lua_new_state(struct cg_lua_host *h);
int cg_lua_push_prelude(lua_State *L);
/* plugin_check.c: loads a plugin in L (prelude: the prelude's stack index),
 * checks it has the hook its use needs and, with configure, validates and
 * applies its plugin_config. Stack unchanged; 0, or -1 with why in err. */
int cg_lua_load_plugin(lua_State *L, int prelude, const cg_plugin_use_t *u, int configure, char *err,
                       size_t errlen);

#endif
