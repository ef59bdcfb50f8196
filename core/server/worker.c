/* Worker threads: each has its own loop, its own SO_REUSEPORT listener and
 * its own upstream pools, so no lock is taken on the request path. The main
 * thread only waits for signals and tells the workers to drain. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lua/host.h"
#include "server/admin.h"
#include "server/fleet.h"
#include "server/internal.h"
#include "server/notify.h"
#include "server/server.h"
#include "util/log.h"

static atomic_int stop_requested;

static void on_connection(uv_stream_t *server, int status) {
  cg_listener_t *l = container_of((uv_tcp_t *)server, cg_listener_t, tcp);
  cg_worker_t *w = l->w;
  if (status < 0) {
    cg_log_warn("worker %d: accept: %s", w->id, uv_strerror(status));
    return;
  }
  if (w->n_conns >= w->cfg->limits.max_connections) {
    /* Not accepting here makes libuv stop polling the listener: further
     * connections wait in the kernel's backlog until a slot frees up. */
    l->waiting = w->accept_waiting = 1;
    return;
  }
  cg_conn_accept(l);
}

static void on_handle_closed(uv_handle_t *h) { (void)h; }

static void plugins_free(cg_worker_t *w) {
  /* the host first: hooks it stops report to the caches (the store's waiters
   * on other workers hear of it) */
  w->stopping = 1;
  cg_lua_host_free(w->lua);
  w->lua = NULL;
  cg_plugin_store_close(w);
  cg_dcache_free(w->dcache);
  w->dcache = NULL;
  cg_dcache_free(w->cert_cache);
  w->cert_cache = NULL;
}

static void rpc_run(uv_async_t *a) {
  cg_worker_t *w = container_of(a, cg_worker_t, rpc_async);
  uv_mutex_lock(&w->rpc_mu);
  cg_rpc_t *list = w->rpc_head;
  w->rpc_head = NULL;
  uv_mutex_unlock(&w->rpc_mu);
  for (cg_rpc_t *c = list; c;) {
    cg_rpc_t *next = c->next; /* c lives on the caller's stack until done */
    c->fn(w, c->arg);
    uv_mutex_lock(&w->rpc_mu);
    c->done = 1;
    uv_cond_broadcast(&w->rpc_cv);
    uv_mutex_unlock(&w->rpc_mu);
    c = next;
  }
}

/* No more calls: the ones queued run now, later ones fail. */
static void rpc_close(cg_worker_t *w) {
  if (uv_is_closing((uv_handle_t *)&w->rpc_async)) return;
  rpc_run(&w->rpc_async);
  uv_mutex_lock(&w->rpc_mu);
  w->rpc_closed = 1;
  uv_cond_broadcast(&w->rpc_cv);
  uv_mutex_unlock(&w->rpc_mu);
  uv_close((uv_handle_t *)&w->rpc_async, on_handle_closed);
}

int cg_worker_rpc(cg_worker_t *w, void (*fn)(cg_worker_t *w, void *arg), void *arg) {
  cg_rpc_t call = {.fn = fn, .arg = arg};
  uv_mutex_lock(&w->rpc_mu);
  if (w->rpc_closed) {
    uv_mutex_unlock(&w->rpc_mu);
    return -1;
  }
  call.next = w->rpc_head;
  w->rpc_head = &call;
  uv_async_send(&w->rpc_async);
  while (!call.done && !w->rpc_closed) uv_cond_wait(&w->rpc_cv, &w->rpc_mu);
  int rc = call.done ? 0 : -1;
  if (!call.done) {
    /* closed before it ran: take it back out of the queue */
    for (cg_rpc_t **p = &w->rpc_head; *p; p = &(*p)->next)
      if (*p == &call) {
        *p = call.next;
        break;
      }
  }
  uv_mutex_unlock(&w->rpc_mu);
  return rc;
}

static void adopt_close(cg_worker_t *w) {
  if (uv_is_closing((uv_handle_t *)&w->adopt_async)) return;
  uv_mutex_lock(&w->rpc_mu);
  w->adopt_closed = 1;
  for (int i = 0; i < w->n_adopt; i++) {
    close(w->adopt[i].fd);
    cg_tls_conn_free(w->adopt[i].tls);
  }
  w->n_adopt = 0;
  uv_mutex_unlock(&w->rpc_mu);
  uv_close((uv_handle_t *)&w->adopt_async, on_handle_closed);
}

static void adopt_run(uv_async_t *a) {
  cg_worker_t *w = container_of(a, cg_worker_t, adopt_async);
  cg_handover_t hs[64];
  for (;;) {
    uv_mutex_lock(&w->rpc_mu);
    int n = w->n_adopt < 64 ? w->n_adopt : 64;
    memcpy(hs, w->adopt + w->n_adopt - n, (size_t)n * sizeof *hs);
    w->n_adopt -= n;
    uv_mutex_unlock(&w->rpc_mu);
    if (n == 0) break;
    for (int i = 0; i < n; i++) {
      if (w->draining) { /* stopping too: the client reconnects */
        close(hs[i].fd);
        cg_tls_conn_free(hs[i].tls);
      } else {
        cg_conn_adopt(w, hs[i]);
      }
    }
  }
}

int cg_worker_adopt(cg_worker_t *w, cg_handover_t h) {
  uv_mutex_lock(&w->rpc_mu);
  if (w->adopt_closed) {
    uv_mutex_unlock(&w->rpc_mu);
    return -1;
  }
  if (w->n_adopt == w->cap_adopt) {
    int cap = w->cap_adopt ? w->cap_adopt * 2 : 64;
    cg_handover_t *p = realloc(w->adopt, (size_t)cap * sizeof *p);
    if (!p) {
      uv_mutex_unlock(&w->rpc_mu);
      return -1;
    }
    w->adopt = p;
    w->cap_adopt = cap;
  }
  w->adopt[w->n_adopt++] = h;
  uv_async_send(&w->adopt_async);
  uv_mutex_unlock(&w->rpc_mu);
  return 0;
}

/* The proxy's failures, counted by the worker. */
static void on_upstream_error(void *arg, int status, const char *why) {
  cg_worker_t *w = arg;
  cg_metrics_upstream_error(&w->metrics, status, why);
}

static void finish_if_drained(cg_worker_t *w) {
  if (!w->draining || w->n_conns > 0) return;
  adopt_close(w);
  rpc_close(w);
  cg_proxy_drain(w->proxy);
  plugins_free(w);
  if (!uv_is_closing((uv_handle_t *)&w->drain_timer)) uv_close((uv_handle_t *)&w->drain_timer, on_handle_closed);
  if (!uv_is_closing((uv_handle_t *)&w->wake)) uv_close((uv_handle_t *)&w->wake, on_handle_closed);
  if (!uv_is_closing((uv_handle_t *)&w->h2_idle)) uv_close((uv_handle_t *)&w->h2_idle, on_handle_closed);
}

void cg_worker_conn_closed(cg_worker_t *w) {
  w->n_conns--;
  w->metrics.connections_open--;
  if (w->accept_waiting && !w->draining) {
    /* the slot goes to a listener that had to wait */
    w->accept_waiting = 0;
    cg_listener_t *next = NULL;
    for (int i = 0; i < w->n_listeners; i++) {
      if (!w->listeners[i].waiting) continue;
      if (next) w->accept_waiting = 1;
      else next = &w->listeners[i];
    }
    if (next) {
      next->waiting = 0;
      cg_conn_accept(next);
    }
  }
  finish_if_drained(w);
}

static void on_drain_timeout(uv_timer_t *t) {
  cg_worker_t *w = container_of(t, cg_worker_t, drain_timer);
  if (w->n_conns) cg_log_warn("worker %d: drain timeout, closing %d connection(s)", w->id, w->n_conns);
  while (!cg_list_empty(&w->conns)) cg_conn_close(container_of(w->conns.next, cg_conn_t, link));
}

static void on_wake(uv_async_t *a) {
  cg_worker_t *w = container_of(a, cg_worker_t, wake);
  uv_mutex_lock(&w->rpc_mu);
  int retire = w->retire;
  uv_mutex_unlock(&w->rpc_mu);
  if ((!atomic_load(&stop_requested) && !retire) || w->draining) return;
  /* Stopping: idle connections close now, busy ones after their current
   * response. Retiring at a reload (w->successor set): the same, except that
   * connections move to the successor instead of closing. */
  w->draining = 1;
  if (!w->listener_closed) {
    w->listener_closed = 1;
    for (int i = 0; i < w->n_listeners; i++) uv_close((uv_handle_t *)&w->listeners[i].tcp, on_handle_closed);
  }
  cg_proxy_drain(w->proxy);
  cg_list_t *it = w->conns.next;
  while (it != &w->conns) {
    cg_list_t *next = it->next;
    cg_conn_drain(container_of(it, cg_conn_t, link));
    it = next;
  }
  uv_timer_start(&w->drain_timer, on_drain_timeout, w->cfg->timeouts.drain, 0);
  finish_if_drained(w);
}

static void worker_main(void *arg) {
  cg_worker_t *w = arg;
  uv_run(&w->loop, UV_RUN_DEFAULT);
  plugins_free(w);
  uv_run(&w->loop, UV_RUN_DEFAULT); /* the close callbacks of what the host held */
  cg_tls_thread_free();
  cg_proxy_free(w->proxy);
  w->proxy = NULL;
  for (int i = 0; i < w->cfg->n_routes; i++) {
    if (w->deny_ov) cg_cors_override_free(w->deny_ov[i]);
    if (w->allow_ov) cg_cors_override_free(w->allow_ov[i]);
  }
  free(w->deny_ov);
  free(w->allow_ov);
  free(w->has_expose);
  cg_cors_hdrs_free_spares(w);
  if (uv_loop_close(&w->loop) != 0) cg_log_debug("worker %d: loop closed with handles open", w->id);
  uv_mutex_lock(&w->rpc_mu);
  w->exited = 1;
  uv_mutex_unlock(&w->rpc_mu);
  if (w->on_exit) uv_async_send(w->on_exit);
}

static int open_listener(const cg_listener_conf_t *lc) {
  int fd = socket(lc->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  /* One listening socket per worker: the kernel spreads connections over
   * them, and no worker waits on another's accept. */
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
      bind(fd, (const struct sockaddr *)&lc->addr, lc->addrlen) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

/* The plugin host, its decision cache and each plugin route's denial, per
 * worker. Returns 0, or -1 when a plugin cannot start (logged). */
static int plugins_init(cg_worker_t *w) {
  const cg_config_t *cfg = w->cfg;
  int any = 0, certs = 0;
  for (int i = 0; i < cfg->n_routes; i++) any |= cfg->routes[i].plugin != NULL;
  for (int i = 0; i < cfg->n_listeners; i++) certs |= cfg->listeners[i].cert_plugin != NULL;
  if (!any && !certs) return 0;
  w->lua = cg_lua_host_new(&w->loop, cfg);
  if (certs && !(w->cert_cache = cg_cert_cache_new(cfg))) return -1;
  /* with the process-wide store, this cache is its small front */
  w->dcache = cg_dcache_new(w->dstore ? cfg->cache.front_entries : cfg->cache.max_entries, cfg->cache.stale_limit_ms);
  if (cg_plugin_store_open(w) != 0) return -1;
  w->deny_ov = calloc((size_t)cfg->n_routes, sizeof *w->deny_ov);
  w->allow_ov = calloc((size_t)cfg->n_routes, sizeof *w->allow_ov);
  w->has_expose = calloc((size_t)cfg->n_routes, 1);
  if (!w->lua || !w->dcache || !w->deny_ov || !w->allow_ov || !w->has_expose) return -1;
  for (int i = 0; i < cfg->n_routes; i++) {
    const cg_route_t *r = &cfg->routes[i];
    if (!r->plugin) continue;
    /* shared by every plain true/false decision, so those cost no memory per origin */
    w->deny_ov[i] = cg_cors_override_compile(r->cors, &(cg_cors_decision_spec_t){.allow = 0}, NULL);
    w->allow_ov[i] = cg_cors_override_compile(r->cors, &(cg_cors_decision_spec_t){.allow = 1}, NULL);
    w->has_expose[i] = (unsigned char)cg_lua_has_expose(w->lua, r);
    if (!w->deny_ov[i] || !w->allow_ov[i]) return -1;
  }
  return 0;
}

int cg_worker_init(cg_worker_t *w, int id, const cg_config_t *cfg) { return cg_worker_init_fd(w, id, cfg, NULL); }

int cg_worker_init_fd(cg_worker_t *w, int id, const cg_config_t *cfg, const int *listen_fds) {
  w->id = id;
  w->cfg = cfg;
  for (int i = 0; i < cfg->n_listeners; i++) {
    const cg_listener_conf_t *lc = &cfg->listeners[i];
    int fd = listen_fds ? listen_fds[i] : open_listener(lc);
    if (fd < 0) {
      cg_log_error("cannot listen on %s: %s", lc->address, strerror(-fd));
      for (int k = 0; k < i && !listen_fds; k++) close(w->listeners[k].fd);
      return -1;
    }
    w->listeners[i] = (cg_listener_t){.fd = fd, .index = i, .w = w};
  }
  w->n_listeners = cfg->n_listeners;
  uv_loop_init(&w->loop);
  cg_list_init(&w->conns);
  for (int i = 0; i < w->n_listeners; i++) {
    cg_listener_t *l = &w->listeners[i];
    uv_tcp_init(&w->loop, &l->tcp);
    int rc = uv_tcp_open(&l->tcp, l->fd);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&l->tcp, 1024, on_connection);
    if (rc < 0) {
      cg_log_error("cannot listen on %s: %s", cfg->listeners[i].address, uv_strerror(rc));
      return -1;
    }
  }
  if (cg_metrics_init(&w->metrics, cfg->n_routes) != 0) return -1;
  cg_topk_init(&w->refused);
  uv_async_init(&w->loop, &w->wake, on_wake);
  uv_async_init(&w->loop, &w->rpc_async, rpc_run);
  uv_async_init(&w->loop, &w->adopt_async, adopt_run);
  uv_mutex_init(&w->rpc_mu);
  uv_cond_init(&w->rpc_cv);
  uv_timer_init(&w->loop, &w->drain_timer);
  cg_list_init(&w->h2_flush);
  uv_idle_init(&w->loop, &w->h2_idle);
  w->proxy = cg_proxy_new(&w->loop, cfg, (unsigned)w->id, w->rbuf, sizeof w->rbuf, on_upstream_error, w);
  if (!w->proxy) return -2; /* the loop is whole: it runs only to stop */
  return plugins_init(w) == 0 ? 0 : -2;
}

/* The workers serving one config. A reload starts a new generation on the
 * same listening sockets and retires the current one: its workers stop
 * accepting, finish what they are doing and hand their connections over.
 * The config and workers of a generation are freed once its threads end. */
typedef struct gen {
  cg_worker_t *workers;
  int n, started;
  cg_config_t *cfg; /* freed with the generation; NULL: the caller's */
  const cg_config_t *conf;
  uv_async_t exited; /* a worker's loop ended */
  struct gen *next;  /* retiring generations */
  cg_dstore_t *store; /* the workers' shared decisions (NULL: no route has a plugin) */
} gen_t;

/* The decisions the generation's workers share, when a route has a plugin
 * (without memory for it, each worker keeps its own). */
static void make_store(gen_t *g, const cg_config_t *cfg) {
  int plugins = 0;
  for (int i = 0; i < cfg->n_routes; i++) plugins |= cfg->routes[i].plugin != NULL;
  if (plugins) g->store = cg_dstore_new(cfg->cache.max_entries, cfg->cache.stale_limit_ms);
  for (int i = 0; i < g->n; i++) g->workers[i].dstore = g->store;
}

static uv_signal_t sig_term, sig_int, sig_hup;
static uv_loop_t main_loop;
static gen_t *current;
static gen_t *retiring;
static unsigned generation_no;

static void gen_free(gen_t *g) {
  /* only started workers are whole (a failed start is left as it is) */
  for (int i = 0; i < g->started; i++) {
    cg_worker_t *w = &g->workers[i];
    uv_mutex_destroy(&w->rpc_mu);
    uv_cond_destroy(&w->rpc_cv);
    if (w->store_made) uv_mutex_destroy(&w->store_mu);
    cg_metrics_free(&w->metrics);
    free(w->adopt);
  }
  free(g->workers);
  cg_dstore_free(g->store);
  cg_config_free(g->cfg);
  free(g);
}

static void on_gen_closed(uv_handle_t *h) { gen_free(h->data); }

/* Joins the threads whose loops ended; a generation whose threads all ended
 * is unlinked and freed. */
static void on_gen_exited(uv_async_t *a) {
  gen_t *g = a->data;
  int live = 0;
  for (int i = 0; i < g->started; i++) {
    cg_worker_t *w = &g->workers[i];
    uv_mutex_lock(&w->rpc_mu);
    int done = w->exited;
    uv_mutex_unlock(&w->rpc_mu);
    if (!done) live++;
  }
  if (live) return;
  for (int i = 0; i < g->started; i++) uv_thread_join(&g->workers[i].thread);
  for (gen_t **p = &retiring; *p; p = &(*p)->next)
    if (*p == g) {
      *p = g->next;
      cg_log_info("reload: the previous config's workers are done");
      break;
    }
  if (g == current) current = NULL;
  uv_close((uv_handle_t *)&g->exited, on_gen_closed);
}

/* Sets up a generation for cfg; listen_fds (or NULL: new sockets) are the
 * listeners to inherit. Returns NULL (logged) when a worker cannot start;
 * inherited sockets are then left to their owner. */
static gen_t *gen_new(const cg_config_t *cfg, cg_config_t *owned, const int *listen_fds) {
  int nl = cfg->n_listeners;
  gen_t *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->n = cfg->workers;
  g->conf = cfg;
  g->workers = calloc((size_t)g->n, sizeof *g->workers);
  if (!g->workers) {
    free(g);
    return NULL;
  }
  uv_async_init(&main_loop, &g->exited, on_gen_exited);
  g->exited.data = g;
  make_store(g, cfg);
  for (int i = 0; i < g->n; i++) {
    int fds[CG_MAX_LISTENERS], ok = 1;
    for (int j = 0; listen_fds && j < nl && ok; j++)
      if ((fds[j] = fcntl(listen_fds[i * nl + j], F_DUPFD_CLOEXEC, 0)) < 0) {
        cg_log_error("reload: cannot share the listener: %s", strerror(errno));
        for (int k = 0; k < j; k++) close(fds[k]);
        ok = 0;
      }
    if (!ok) break;
    cg_worker_t *w = &g->workers[i];
    w->on_exit = &g->exited;
    int rc = cg_worker_init_fd(w, i, cfg, listen_fds ? fds : NULL);
    if (rc == -1) break; /* before its loop was whole: nothing to run (a rare leak on a failing reload) */
    if (rc != 0) {
      /* its plugins failed: the loop is whole, so it runs only to stop */
      uv_thread_create(&w->thread, worker_main, w);
      g->started++;
      break;
    }
    /* a started thread cleans up after itself; so does a failed generation */
    uv_thread_create(&w->thread, worker_main, w);
    g->started++;
  }
  g->cfg = owned;
  if (g->started < g->n) {
    /* stop what started; the generation frees itself (with its config) */
    for (int i = 0; i < g->started; i++) {
      cg_worker_t *w = &g->workers[i];
      uv_mutex_lock(&w->rpc_mu);
      w->retire = 1;
      uv_mutex_unlock(&w->rpc_mu);
      uv_async_send(&w->wake);
    }
    g->next = retiring;
    retiring = g;
    if (g->started == 0) uv_async_send(&g->exited);
    return NULL;
  }
  return g;
}

static void stop_generation(gen_t *g, gen_t *successor) {
  for (int i = 0; i < g->started; i++) {
    cg_worker_t *w = &g->workers[i];
    uv_mutex_lock(&w->rpc_mu);
    w->retire = 1;
    w->successor = successor && i < successor->n ? &successor->workers[i] : NULL;
    uv_mutex_unlock(&w->rpc_mu);
    uv_async_send(&w->wake);
  }
}

/* The same listening addresses, in the same order (a listener's TLS may
 * change: its certificates are read again at each reload). */
static int same_addr(const cg_config_t *a, const cg_config_t *b) {
  if (a->n_listeners != b->n_listeners) return 0;
  for (int i = 0; i < a->n_listeners; i++) {
    const cg_listener_conf_t *x = &a->listeners[i], *y = &b->listeners[i];
    if (x->addrlen != y->addrlen || memcmp(&x->addr, &y->addr, x->addrlen) != 0 || !x->tls_ctx != !y->tls_ctx)
      return 0;
  }
  return 1;
}

/* A reload, told to systemd (RELOADING=1 then READY=1, whatever the
 * outcome: the old config serves on after a refused one). */
static int reload(char **errors);

static unsigned reloads; /* attempts, taken or refused: `corsgate reload` waits for it to move */

int cg_server_reload(char **errors) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int stopping = atomic_load(&stop_requested);
  if (!stopping)
    cg_notify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading\n",
              (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
  int rc = reload(errors);
  if (!stopping) /* after STOPPING=1, no READY=1 */
    cg_notify("READY=1\nSTATUS=%s config #%u, %d route(s)\n", rc == 0 ? "reloaded: serving" : "reload refused: serving",
              generation_no + 1, current ? current->conf->n_routes : 0);
  cg_notify_reload_status(++reloads, rc == 0 ? NULL : *errors && **errors ? *errors : "refused (see the log)");
  return rc;
}

static int reload(char **errors) {
  *errors = NULL;
  if (atomic_load(&stop_requested) || !current) {
    *errors = strdup("the server is stopping");
    return -1;
  }
  const cg_config_t *old = current->conf;
  cg_diag_t d;
  cg_diag_init(&d);
  const char *file = strcmp(old->source, "(demo)") == 0 ? NULL : old->source;
  cg_config_t *cfg = cg_config_load(file, &cg_lua_plugin_finder, &d);
  if (cfg && d.errors == 0) {
    if (!same_addr(cfg, old)) cg_diag_error(&d, "listen", "changing it needs a restart (serving %s)", old->listen);
    if (cfg->workers != old->workers)
      cg_diag_error(&d, "workers", "changing it needs a restart (serving with %d)", old->workers);
    if ((cfg->admin_listen == NULL) != (old->admin_listen == NULL) ||
        (cfg->admin_listen && strcmp(cfg->admin_listen, old->admin_listen) != 0))
      cg_diag_error(&d, "admin.listen", "changing it needs a restart");
  }
  if (!cfg || d.errors) {
    size_t len = 0;
    for (int i = 0; i < d.count; i++) len += strlen(d.items[i].text) + 1;
    char *text = malloc(len + 1), *p = text;
    for (int i = 0; text && i < d.count; i++) {
      if (d.items[i].level != CG_DIAG_ERROR) continue;
      cg_log_error("reload refused: %s: %s", old->source, d.items[i].text);
      p += sprintf(p, "%s\n", d.items[i].text);
    }
    if (text) *p = 0;
    *errors = text;
    cg_diag_free(&d);
    cg_config_free(cfg);
    return -1;
  }
  for (int i = 0; i < d.count; i++) cg_log_warn("reload: %s: %s", old->source, d.items[i].text);
  cg_diag_free(&d);
  int fds[256 * CG_MAX_LISTENERS];
  for (int i = 0; i < current->n; i++)
    for (int j = 0; j < current->workers[i].n_listeners; j++)
      fds[i * current->workers[i].n_listeners + j] = current->workers[i].listeners[j].fd;
  cg_log_set_level(cfg->log_level);
  gen_t *g = gen_new(cfg, cfg, fds);
  if (!g) {
    *errors = strdup("a worker could not start with the new config (see the log)");
    return -1;
  }
  gen_t *prev = current;
  current = g;
  stop_generation(prev, g);
  prev->next = retiring;
  retiring = prev;
  cg_admin_update(cfg, g->workers, g->n);
  cg_fleet_update(cfg);
  generation_no++;
  cg_log_info("reload: %s loaded (%d route(s)), config #%u serving; the previous one drains", cfg->source,
              cfg->n_routes, generation_no + 1);
  return 0;
}

static void on_signal(uv_signal_t *s, int signum) {
  if (signum == SIGHUP) {
    cg_log_info("received SIGHUP: reloading");
    char *errors = NULL;
    cg_server_reload(&errors);
    free(errors);
    return;
  }
  if (atomic_exchange(&stop_requested, 1)) return;
  cg_notify("STOPPING=1\nSTATUS=draining\n");
  cg_log_info("received %s: draining (up to %llu ms)", signum == SIGINT ? "SIGINT" : "SIGTERM",
              (unsigned long long)current->conf->timeouts.drain);
  stop_generation(current, NULL);
  uv_close((uv_handle_t *)&sig_term, NULL);
  uv_close((uv_handle_t *)&sig_int, NULL);
  uv_close((uv_handle_t *)&sig_hup, NULL);
  cg_admin_stop();
  cg_fleet_stop();
  (void)s;
}

int cg_server_run(const cg_config_t *cfg) {
  signal(SIGPIPE, SIG_IGN);
  cg_log_set_level(cfg->log_level);
  uv_loop_init(&main_loop);
  /* The signals are caught before a port opens: a SIGHUP (a reload) or a
   * SIGTERM sent as soon as the port answers is handled once the loop runs,
   * instead of ending the process by its default action. */
  uv_signal_init(&main_loop, &sig_term);
  uv_signal_init(&main_loop, &sig_int);
  uv_signal_init(&main_loop, &sig_hup);
  uv_signal_start(&sig_term, on_signal, SIGTERM);
  uv_signal_start(&sig_int, on_signal, SIGINT);
  uv_signal_start(&sig_hup, on_signal, SIGHUP);
  /* Everything that can fail is set up before any thread starts. */
  gen_t *g = calloc(1, sizeof *g);
  if (!g) return 1;
  g->n = cfg->workers;
  g->conf = cfg;
  g->workers = calloc((size_t)g->n, sizeof *g->workers);
  /* The admin listener first: once the main port answers, /healthz does too
   * (its requests are served once the main loop runs, below). */
  if (!g->workers || cg_admin_start(&main_loop, cfg, g->workers, g->n) != 0) {
    free(g->workers);
    free(g);
    return 1;
  }
  cg_fleet_start(&main_loop, cfg);
  make_store(g, cfg);
  for (int i = 0; i < g->n; i++)
    if (cg_worker_init(&g->workers[i], i, cfg) != 0) return 1;
  uv_async_init(&main_loop, &g->exited, on_gen_exited);
  g->exited.data = g;
  current = g;
  for (int i = 0; i < g->n; i++) {
    g->workers[i].on_exit = &g->exited;
    uv_thread_create(&g->workers[i].thread, worker_main, &g->workers[i]);
    g->started++;
  }
  cg_log_info("corsgate listening on %s with %d worker(s), %d route(s)", cfg->listen, g->n, cfg->n_routes);
  cg_notify("READY=1\nMAINPID=%ld\nSTATUS=serving config #1, %d route(s) on %s\n", (long)getpid(), cfg->n_routes,
            cfg->listen);
  cg_notify_reload_status(0, NULL);
  /* runs until the signals are closed and every generation has ended */
  uv_run(&main_loop, UV_RUN_DEFAULT);
  uv_loop_close(&main_loop);
  cg_log_info("stopped");
  return 0;
}
