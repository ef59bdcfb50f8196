/* Worker threads: each has its own loop, its own SO_REUSEPORT listener and
 * its own upstream pools, so no lock is taken on the request path. The main
 * thread only waits for signals and tells the workers to drain. */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lua/host.h"
#include "server/admin.h"
#include "server/internal.h"
#include "server/server.h"
#include "util/log.h"

static atomic_int stop_requested;

static void on_connection(uv_stream_t *server, int status) {
  cg_worker_t *w = container_of((uv_tcp_t *)server, cg_worker_t, listener);
  if (status < 0) {
    cg_log_warn("worker %d: accept: %s", w->id, uv_strerror(status));
    return;
  }
  if (w->n_conns >= w->cfg->limits.max_connections) {
    /* Not accepting here makes libuv stop polling the listener: further
     * connections wait in the kernel's backlog until a slot frees up. */
    w->accept_waiting = 1;
    return;
  }
  cg_conn_accept(w);
}

static void on_handle_closed(uv_handle_t *h) { (void)h; }

static void plugins_free(cg_worker_t *w) {
  /* the host first: hooks it stops report to the cache */
  cg_lua_host_free(w->lua);
  w->lua = NULL;
  cg_dcache_free(w->dcache);
  w->dcache = NULL;
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

static void finish_if_drained(cg_worker_t *w) {
  if (!w->draining || w->n_conns > 0) return;
  rpc_close(w);
  cg_proxy_worker_close_idle(w);
  plugins_free(w);
  if (!uv_is_closing((uv_handle_t *)&w->drain_timer)) uv_close((uv_handle_t *)&w->drain_timer, on_handle_closed);
  if (!uv_is_closing((uv_handle_t *)&w->wake)) uv_close((uv_handle_t *)&w->wake, on_handle_closed);
}

void cg_worker_conn_closed(cg_worker_t *w) {
  w->n_conns--;
  w->metrics.connections_open--;
  if (w->accept_waiting && !w->draining) {
    w->accept_waiting = 0;
    cg_conn_accept(w);
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
  if (!atomic_load(&stop_requested) || w->draining) return;
  w->draining = 1;
  if (!w->listener_closed) {
    w->listener_closed = 1;
    uv_close((uv_handle_t *)&w->listener, on_handle_closed);
  }
  cg_proxy_worker_close_idle(w);
  /* Idle connections close now; busy ones after their current response. */
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
  cg_proxy_worker_free(w);
  for (int i = 0; i < w->cfg->n_routes; i++) {
    if (w->deny_ov) cg_cors_override_free(w->deny_ov[i]);
    if (w->allow_ov) cg_cors_override_free(w->allow_ov[i]);
  }
  free(w->deny_ov);
  free(w->allow_ov);
  free(w->has_expose);
  if (uv_loop_close(&w->loop) != 0) cg_log_debug("worker %d: loop closed with handles open", w->id);
}

static int open_listener(const cg_config_t *cfg) {
  int fd = socket(cfg->listen_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  /* One listening socket per worker: the kernel spreads connections over
   * them, and no worker waits on another's accept. */
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
      bind(fd, (const struct sockaddr *)&cfg->listen_addr, cfg->listen_addrlen) < 0) {
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
  int any = 0;
  for (int i = 0; i < cfg->n_routes; i++) any |= cfg->routes[i].plugin != NULL;
  if (!any) return 0;
  w->lua = cg_lua_host_new(&w->loop, cfg);
  w->dcache = cg_dcache_new(cfg->cache.max_entries, cfg->cache.stale_limit_ms);
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

int cg_worker_init(cg_worker_t *w, int id, const cg_config_t *cfg) {
  w->id = id;
  w->cfg = cfg;
  w->listen_fd = open_listener(cfg);
  if (w->listen_fd < 0) {
    cg_log_error("cannot listen on %s: %s", cfg->listen, strerror(-w->listen_fd));
    return -1;
  }
  uv_loop_init(&w->loop);
  cg_list_init(&w->conns);
  uv_tcp_init(&w->loop, &w->listener);
  int rc = uv_tcp_open(&w->listener, w->listen_fd);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&w->listener, 1024, on_connection);
  if (rc < 0) {
    cg_log_error("cannot listen on %s: %s", cfg->listen, uv_strerror(rc));
    return -1;
  }
  if (cg_metrics_init(&w->metrics, cfg->n_routes) != 0) return -1;
  uv_async_init(&w->loop, &w->wake, on_wake);
  uv_async_init(&w->loop, &w->rpc_async, rpc_run);
  uv_mutex_init(&w->rpc_mu);
  uv_cond_init(&w->rpc_cv);
  uv_timer_init(&w->loop, &w->drain_timer);
  cg_proxy_worker_init(w);
  return plugins_init(w);
}

static uv_signal_t sig_term, sig_int;
static cg_worker_t *all_workers;
static int n_workers;

static void on_signal(uv_signal_t *s, int signum) {
  if (atomic_exchange(&stop_requested, 1)) return;
  cg_log_info("received %s: draining (up to %llu ms)", signum == SIGINT ? "SIGINT" : "SIGTERM",
              (unsigned long long)all_workers[0].cfg->timeouts.drain);
  for (int i = 0; i < n_workers; i++) uv_async_send(&all_workers[i].wake);
  uv_close((uv_handle_t *)&sig_term, NULL);
  uv_close((uv_handle_t *)&sig_int, NULL);
  cg_admin_stop();
  (void)s;
}

int cg_server_run(const cg_config_t *cfg) {
  signal(SIGPIPE, SIG_IGN);
  cg_log_set_level(cfg->log_level);
  n_workers = cfg->workers;
  all_workers = calloc((size_t)n_workers, sizeof *all_workers);
  if (!all_workers) return 1;
  /* Everything that can fail is set up before any thread starts. */
  for (int i = 0; i < n_workers; i++)
    if (cg_worker_init(&all_workers[i], i, cfg) != 0) return 1;
  uv_loop_t main_loop;
  uv_loop_init(&main_loop);
  uv_signal_init(&main_loop, &sig_term);
  uv_signal_init(&main_loop, &sig_int);
  uv_signal_start(&sig_term, on_signal, SIGTERM);
  uv_signal_start(&sig_int, on_signal, SIGINT);
  if (cg_admin_start(&main_loop, cfg, all_workers, n_workers) != 0) return 1;
  for (int i = 0; i < n_workers; i++) uv_thread_create(&all_workers[i].thread, worker_main, &all_workers[i]);
  cg_log_info("corsgate listening on %s with %d worker(s), %d route(s)", cfg->listen, n_workers, cfg->n_routes);
  uv_run(&main_loop, UV_RUN_DEFAULT);
  for (int i = 0; i < n_workers; i++) {
    cg_worker_t *w = &all_workers[i];
    uv_thread_join(&w->thread);
    uv_mutex_destroy(&w->rpc_mu);
    uv_cond_destroy(&w->rpc_cv);
    cg_metrics_free(&w->metrics);
  }
  uv_loop_close(&main_loop);
  free(all_workers);
  cg_log_info("stopped");
  return 0;
}
