/* A self-healing Redis connection on a libuv loop; see redis.h.
 *
 * hiredis owns the redisAsyncContext and frees it itself when the connection
 * fails or ends, calling every waiting reply callback with a NULL reply
 * first. We give up a context in exactly one place (drop), and a context we
 * gave up has ac->data = NULL, so its late callbacks know it is no longer
 * ours. */
#include "redis/redis.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/list.h"
#include "util/log.h"

enum { R_DOWN, R_DISCOVERING, R_CONNECTING, R_UP, R_CLOSED };
/* With sentinels the backoff stays short: the primary comes back elsewhere
 * as soon as a failover ends, and each attempt asks the sentinels anew. */
enum { BACKOFF_MIN_MS = 100, BACKOFF_MAX_MS = 5000, SENTINEL_BACKOFF_MAX_MS = 500, KEEPALIVE_S = 5 };

typedef struct pending {
  cg_list_t link;
  struct cg_redis *r;
  uint64_t deadline;
  cg_redis_cb cb; /* NULL: forgotten */
  void *arg;
} pending_t;

struct cg_redis {
  uv_loop_t *loop;
  redisAsyncContext *ac;
  uv_timer_t timer; /* connect deadline, the oldest command's deadline, or the next attempt */
  int state;
  int subscribed;
  uint64_t backoff_ms;
  unsigned failures; /* attempts since the connection was last up */
  cg_list_t pending; /* oldest first: replies come in this order */
  char host[64]; /* the server: as configured, or the primary the sentinels named */
  int port, db;
  char *password, *channel;
  /* sentinels: asked in turn (si) for master's address before each connect */
  cg_redis_node_t sentinels[CG_MAX_SENTINELS];
  int n_sentinels, si;
  char *master;
  char *sentinel_password;
  redisAsyncContext *sac; /* asking a sentinel */
  redisAsyncContext *wac; /* a subscriber's watch: +switch-master on a sentinel */
  uv_timer_t watch_timer; /* the watch's next attempt, when it ended */
  int wi;                 /* the sentinel watched */
  int handles;            /* open timers, for the free */
  uint64_t gen;           /* the process's failover count when this connection came up */
  uint64_t timeout_ms, connect_timeout_ms;
  cg_redis_msg_cb on_msg;
  cg_redis_state_cb on_state;
  void *arg;
  /* the gauges it counts in: the workers' pools' (cg_redis_stats), or ones
   * of its own (the admin API's connection: /healthz reads the pools) */
  _Atomic uint64_t *g_conns, *g_up;
  _Atomic uint64_t own_conns, own_up;
};

static _Atomic uint64_t st_conns, st_commands, st_errors, st_timeouts, st_reconnects, st_up, st_subs, st_subs_up, st_inval,
    st_invalidated, st_failovers;
/* The primary the sentinels named last ("ip:port"), for /healthz and the
 * count of failovers: a change of it is one. */
static uv_mutex_t primary_mu;
static uv_once_t primary_once = UV_ONCE_INIT;
static char primary_now[80];
static char primary_master[128]; /* the master_name primary_now is the primary of */
static void primary_init(void) { uv_mutex_init(&primary_mu); }

static void primary_seen(const char *host, int port, const char *master) {
  char addr[80];
  snprintf(addr, sizeof addr, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
  uv_once(&primary_once, primary_init);
  uv_mutex_lock(&primary_mu);
  if (strcmp(primary_master, master) != 0) { /* another deployment (a reload): no failover */
    snprintf(primary_master, sizeof primary_master, "%s", master);
    primary_now[0] = 0;
  }
  int moved = primary_now[0] && strcmp(primary_now, addr) != 0;
  if (!primary_now[0] || moved) snprintf(primary_now, sizeof primary_now, "%s", addr);
  uv_mutex_unlock(&primary_mu);
  if (moved) {
    atomic_fetch_add(&st_failovers, 1);
    cg_log_warn("redis: the sentinels name a new primary: %s", addr);
  }
}

void cg_redis_primary(char *out, size_t n) {
  uv_once(&primary_once, primary_init);
  uv_mutex_lock(&primary_mu);
  snprintf(out, n, "%s", primary_now);
  uv_mutex_unlock(&primary_mu);
}

static void start_connect(cg_redis_t *r);
static void start_watch(cg_redis_t *r);
static void watch_ended(cg_redis_t *r);
static void sentinel_auth(cg_redis_t *r, redisAsyncContext *ac);
static void on_timer(uv_timer_t *t);

static void arm(cg_redis_t *r) {
  if (r->state == R_CLOSED) return;
  if (r->state == R_UP) {
    if (cg_list_empty(&r->pending)) {
      uv_timer_stop(&r->timer);
      return;
    }
    pending_t *head = container_of(r->pending.next, pending_t, link);
    uint64_t now = uv_now(r->loop);
    uv_timer_start(&r->timer, on_timer, head->deadline > now ? head->deadline - now : 0, 0);
  }
}

/* Leaves the up gauges (an up connection, or a subscribed subscriber). */
static void count_down(cg_redis_t *r) {
  if (r->channel) {
    if (r->subscribed) atomic_fetch_sub(&st_subs_up, 1);
    r->subscribed = 0;
  } else {
    atomic_fetch_sub(r->g_up, 1);
  }
}

/* The connection is gone (whoever noticed): tell, and try again later. */
static void lost(cg_redis_t *r, const char *why) {
  if (r->state == R_CLOSED) return;
  int was_up = r->state == R_UP;
  if (was_up) count_down(r);
  r->state = R_DOWN;
  if (was_up) {
    cg_log_warn("redis %s:%d: connection lost (%s); reconnecting", r->host, r->port, why);
    if (r->on_state) r->on_state(r->arg, 0);
  } else if (r->failures == 0) {
    if (r->n_sentinels)
      cg_log_warn("redis (primary of %s, through sentinels): cannot connect (%s); retrying with backoff", r->master,
                  why);
    else
      cg_log_warn("redis %s:%d: cannot connect (%s); retrying with backoff", r->host, r->port, why);
  }
  r->failures++;
  if (r->n_sentinels) r->si = (r->si + 1) % r->n_sentinels; /* the next one asked, should this one be the trouble */
  /* jitter spreads the reconnects of many workers and replicas */
  uint64_t wait = r->backoff_ms + uv_hrtime() % (r->backoff_ms / 2 + 1);
  /* a failover ends in seconds: retried often for a while, then as with one
   * address (a wrong master_name, a password the sentinels refuse) */
  uint64_t max = r->n_sentinels && r->failures <= 20 ? SENTINEL_BACKOFF_MAX_MS : BACKOFF_MAX_MS;
  r->backoff_ms = r->backoff_ms * 2 > max ? max : r->backoff_ms * 2;
  uv_timer_start(&r->timer, on_timer, wait, 0);
}

/* Gives the context back to hiredis. Waiting commands fail ("connection
 * lost") from inside redisAsyncFree; a call from inside a hiredis callback is
 * deferred by hiredis until that callback returns. */
static redisAsyncContext *detach(cg_redis_t *r) {
  redisAsyncContext *ac = r->ac;
  r->ac = NULL;
  if (ac) ac->data = NULL;
  return ac;
}

/* The sentinel contexts (asking, watching): given back to hiredis. */
static void drop_sentinels(cg_redis_t *r) {
  redisAsyncContext *s[2] = {r->sac, r->wac};
  r->sac = r->wac = NULL;
  for (int i = 0; i < 2; i++)
    if (s[i]) {
      s[i]->data = NULL;
      redisAsyncFree(s[i]);
    }
}

static void drop(cg_redis_t *r, const char *why) {
  redisAsyncContext *ac = detach(r);
  if (ac) redisAsyncFree(ac);
  drop_sentinels(r);
  lost(r, why);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  pending_t *p = privdata;
  cg_redis_t *r = p->r;
  int was_head = r->pending.next == &p->link;
  cg_list_remove(&p->link);
  cg_redis_cb cb = p->cb;
  void *arg = p->arg;
  free(p);
  const redisReply *rep = reply;
  if (rep && rep->type == REDIS_REPLY_ERROR) atomic_fetch_add(&st_errors, 1);
  if (was_head && ac->data) arm(r);
  /* a primary turned replica under us (a failover it missed): find the new one */
  int moved = rep && ac->data && r->n_sentinels && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "READONLY", 8) == 0;
  if (cb) cb(arg, rep, rep ? NULL : (r->state == R_CLOSED ? "closed" : "connection lost"));
  if (moved && r->ac == ac) drop(r, "the server is a replica now (READONLY)");
}

static void on_message(redisAsyncContext *ac, void *reply, void *privdata) {
  cg_redis_t *r = privdata;
  const redisReply *rep = reply;
  if (!rep || !ac->data || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3) return;
  const redisReply *kind = rep->element[0];
  if (kind->type != REDIS_REPLY_STRING) return;
  if (strcasecmp(kind->str, "subscribe") == 0 && !r->subscribed) {
    r->subscribed = 1;
    atomic_fetch_add(&st_subs_up, 1);
    cg_log_info("redis %s:%d: listening on channel %s", r->host, r->port, r->channel);
    if (r->on_state) r->on_state(r->arg, 1);
  } else if (strcasecmp(kind->str, "message") == 0 && rep->element[2]->type == REDIS_REPLY_STRING) {
    if (r->on_msg) r->on_msg(r->arg, rep->element[2]->str, rep->element[2]->len);
  }
}

/* The setup commands (AUTH, SELECT, then PING) answer in order: the PING's
 * answer means the connection is ready for commands. */
static void on_setup(redisAsyncContext *ac, void *reply, void *privdata) {
  cg_redis_t *r = ac->data;
  const redisReply *rep = reply;
  const char *what = privdata;
  if (!r || !rep) return; /* the connection is going: lost() reports it */
  if (rep->type == REDIS_REPLY_ERROR && strcmp(what, "ROLE") == 0 && strncmp(rep->str, "NOPERM", 6) == 0) {
    /* an ACL user without +role: the sentinels' word is taken */
    cg_log_warn("redis %s:%d: ROLE is not permitted for this user (add +role): the primary is not checked", r->host,
                r->port);
    return;
  }
  if (rep->type == REDIS_REPLY_ERROR) {
    char why[160];
    snprintf(why, sizeof why, "%s refused: %.120s", what, rep->str);
    drop(r, why);
    return;
  }
  if (strcmp(what, "ROLE") == 0) { /* with sentinels: what they named must still be the primary */
    const char *role = rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 && rep->element[0]->type == REDIS_REPLY_STRING
                           ? rep->element[0]->str
                           : "?";
    if (strcmp(role, "master") != 0) {
      char why[120];
      snprintf(why, sizeof why, "not the primary (its role: %.20s)", role);
      drop(r, why);
    }
    return;
  }
  if (strcmp(what, "PING") != 0) return;
  if (r->failures) cg_log_info("redis %s:%d: connected again after %u failed attempt(s)", r->host, r->port, r->failures);
  if (r->n_sentinels) {
    primary_seen(r->host, r->port, r->master); /* what ROLE confirmed */
    r->gen = atomic_load(&st_failovers);
  }
  r->state = R_UP;
  r->failures = 0;
  r->backoff_ms = BACKOFF_MIN_MS;
  uv_timer_stop(&r->timer);
  if (r->channel) {
    const char *argv[] = {"SUBSCRIBE", r->channel};
    size_t lens[] = {9, strlen(r->channel)};
    if (redisAsyncCommandArgv(ac, on_message, r, 2, argv, lens) != REDIS_OK) drop(r, "cannot subscribe");
    else start_watch(r);
    return;
  }
  atomic_fetch_add(r->g_up, 1);
  arm(r);
  if (r->on_state) r->on_state(r->arg, 1);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  cg_redis_t *r = ac->data;
  if (!r || status == REDIS_OK) return;
  /* hiredis frees the context when this returns */
  ((redisAsyncContext *)ac)->data = NULL;
  r->ac = NULL;
  lost(r, ac->errstr[0] ? ac->errstr : "connect failed");
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  cg_redis_t *r = ac->data;
  (void)status;
  if (!r) return;
  r->ac = NULL;
  lost(r, ac->err ? ac->errstr : "closed by the server");
}

/* A server that vanished without a word (a partition, a dead host) is
 * noticed within about 11 s even by a subscriber, which never sends. */
static void keepalive(int fd) {
  int on = 1, idle = KEEPALIVE_S, intvl = 2, cnt = 3;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

/* A context to host:port on r's loop, or NULL with why. */
static redisAsyncContext *open_ctx(cg_redis_t *r, const char *host, int port, char *why, size_t n) {
  redisAsyncContext *ac = redisAsyncConnect(host, port);
  if (!ac || ac->err) {
    snprintf(why, n, "%s", ac ? ac->errstr : "out of memory");
    if (ac) redisAsyncFree(ac);
    return NULL;
  }
  if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
    /* the adapter set its hooks before failing, with no data for them */
    memset(&ac->ev, 0, sizeof ac->ev);
    redisAsyncFree(ac);
    snprintf(why, n, "cannot watch the socket");
    return NULL;
  }
  keepalive(ac->c.fd);
  return ac;
}

static void connect_server(cg_redis_t *r);

/* A context to host:port made r's *slot, its callbacks set; or NULL (when
 * report, the attempt is reported lost). */
static redisAsyncContext *open_slot(cg_redis_t *r, const char *host, int port, redisAsyncContext **slot,
                                    redisConnectCallback *on_conn, redisDisconnectCallback *on_disc, int report) {
  char why[200];
  redisAsyncContext *ac = open_ctx(r, host, port, why, sizeof why);
  if (!ac) {
    if (report) lost(r, why);
    return NULL;
  }
  ac->data = r;
  *slot = ac;
  redisAsyncSetConnectCallback(ac, on_conn);
  redisAsyncSetDisconnectCallback(ac, on_disc);
  return ac;
}

/* The sentinel's answer to SENTINEL get-master-addr-by-name: connect there. */
static void on_master_addr(redisAsyncContext *ac, void *reply, void *privdata) {
  cg_redis_t *r = ac->data;
  const redisReply *rep = reply;
  (void)privdata;
  if (!r || r->sac != ac) return;
  r->sac = NULL;
  ac->data = NULL;
  redisAsyncFree(ac); /* deferred by hiredis until this returns */
  /* an IP literal and a port: a host name would need a resolver, which the
   * workers' loops do not run */
  unsigned char ab[16];
  int port = 0;
  int good = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
             rep->element[0]->type == REDIS_REPLY_STRING && rep->element[1]->type == REDIS_REPLY_STRING &&
             rep->element[0]->len < sizeof r->host &&
             (inet_pton(AF_INET, rep->element[0]->str, ab) == 1 || inet_pton(AF_INET6, rep->element[0]->str, ab) == 1) &&
             (port = atoi(rep->element[1]->str)) > 0 && port < 65536;
  if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && !good) {
    char why[200];
    snprintf(why, sizeof why, "sentinel %s:%d names a primary that is not an IP address and port (announce-hostnames?)",
             r->sentinels[r->si].host, r->sentinels[r->si].port);
    lost(r, why);
    return;
  }
  if (!good) {
    char why[200];
    snprintf(why, sizeof why, "sentinel %s:%d does not name a primary for %s%s%.100s",
             r->sentinels[r->si].host, r->sentinels[r->si].port, r->master,
             rep && rep->type == REDIS_REPLY_ERROR ? ": " : "", rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "");
    lost(r, why);
    return;
  }
  snprintf(r->host, sizeof r->host, "%s", rep->element[0]->str);
  r->port = port;
  connect_server(r);
}

static void on_sentinel_connect(const redisAsyncContext *ac, int status) {
  cg_redis_t *r = ac->data;
  if (!r || status == REDIS_OK) return;
  ((redisAsyncContext *)ac)->data = NULL; /* hiredis frees it */
  if (r->sac == ac) {
    r->sac = NULL;
    char why[200];
    snprintf(why, sizeof why, "sentinel %s:%d: %s", r->sentinels[r->si].host, r->sentinels[r->si].port,
             ac->errstr[0] ? ac->errstr : "connect failed");
    lost(r, why);
  } else if (r->wac == ac) {
    r->wac = NULL;
    watch_ended(r);
  }
}

static void on_sentinel_disconnect(const redisAsyncContext *ac, int status) {
  cg_redis_t *r = ac->data;
  (void)status;
  if (!r) return;
  if (r->sac == ac) {
    r->sac = NULL;
    lost(r, "the sentinel closed the connection");
  } else if (r->wac == ac) {
    r->wac = NULL;
    watch_ended(r);
  }
}

/* Asks sentinel si where the primary is; connects there on the answer. */
static void start_discover(cg_redis_t *r) {
  const cg_redis_node_t *s = &r->sentinels[r->si];
  redisAsyncContext *ac = open_slot(r, s->host, s->port, &r->sac, on_sentinel_connect, on_sentinel_disconnect, 1);
  if (!ac) return;
  r->state = R_DISCOVERING;
  sentinel_auth(r, ac);
  const char *argv[] = {"SENTINEL", "get-master-addr-by-name", r->master};
  size_t lens[] = {8, 23, strlen(r->master)};
  redisAsyncCommandArgv(ac, on_master_addr, NULL, 3, argv, lens);
  uv_timer_start(&r->timer, on_timer, r->connect_timeout_ms, 0);
}

/* The watch ended (its sentinel went away, refused it, or never answered):
 * it starts again on the next sentinel, after a pause. */
static void on_watch_timer(uv_timer_t *t) {
  cg_redis_t *r = t->data;
  start_watch(r);
}

static void watch_ended(cg_redis_t *r) {
  if (r->state == R_CLOSED || !r->channel) return;
  r->wi = (r->wi + 1) % r->n_sentinels;
  uv_timer_start(&r->watch_timer, on_watch_timer, 1000, 0);
}

/* +switch-master on the watch: the subscriber moves to the new primary. */
static void on_switch(redisAsyncContext *ac, void *reply, void *privdata) {
  cg_redis_t *r = ac->data;
  const redisReply *rep = reply;
  (void)privdata;
  if (!r || !rep) return;
  if (rep->type == REDIS_REPLY_ERROR) { /* SUBSCRIBE refused (NOAUTH...): try again elsewhere */
    cg_log_warn("redis: sentinel %s:%d refused the +switch-master watch: %.120s", r->sentinels[r->wi].host,
                r->sentinels[r->wi].port, rep->str);
    r->wac = NULL;
    ac->data = NULL;
    redisAsyncFree(ac);
    watch_ended(r);
    return;
  }
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3) return;
  const redisReply *kind = rep->element[0], *msg = rep->element[2];
  if (kind->type != REDIS_REPLY_STRING || strcasecmp(kind->str, "message") != 0 || msg->type != REDIS_REPLY_STRING)
    return;
  /* "<name> <old-ip> <old-port> <new-ip> <new-port>" */
  char name[128], oldh[64], newh[64];
  int oldp, newp;
  if (sscanf(msg->str, "%127s %63s %d %63s %d", name, oldh, &oldp, newh, &newp) != 5 || strcmp(name, r->master) != 0)
    return;
  if (strcmp(newh, r->host) != 0 || newp != r->port) {
    r->backoff_ms = BACKOFF_MIN_MS;
    r->failures = 1; /* ask the sentinels, not the primary known before */
    drop(r, "the sentinels failed over to another primary");
  }
}

/* AUTH to a sentinel first, when they want one (redis.sentinel_password). */
static void sentinel_auth(cg_redis_t *r, redisAsyncContext *ac) {
  if (!r->sentinel_password) return;
  const char *argv[] = {"AUTH", r->sentinel_password};
  size_t lens[] = {4, strlen(r->sentinel_password)};
  redisAsyncCommandArgv(ac, NULL, NULL, 2, argv, lens);
}

/* A subscriber watches a sentinel for +switch-master, so it follows a
 * failover at once: a primary that stopped answering (stalled, cut off)
 * can hold its subscribers' connections open, and they would hear nothing.
 * When the watch ends it starts again on the next sentinel. */
static void start_watch(cg_redis_t *r) {
  if (!r->n_sentinels || !r->channel || r->wac || r->state == R_CLOSED) return;
  const cg_redis_node_t *s = &r->sentinels[r->wi];
  redisAsyncContext *ac = open_slot(r, s->host, s->port, &r->wac, on_sentinel_connect, on_sentinel_disconnect, 0);
  if (!ac) {
    watch_ended(r);
    return;
  }
  sentinel_auth(r, ac);
  const char *argv[] = {"SUBSCRIBE", "+switch-master"};
  size_t lens[] = {9, 14};
  redisAsyncCommandArgv(ac, on_switch, NULL, 2, argv, lens);
}

/* The primary the process last confirmed (ROLE), into host and port: 0, or
 * -1 when none is known. */
static int known_primary(const char *master, char *host, size_t n, int *port) {
  char addr[80];
  uv_once(&primary_once, primary_init);
  uv_mutex_lock(&primary_mu);
  snprintf(addr, sizeof addr, "%s", strcmp(primary_master, master) == 0 ? primary_now : "");
  uv_mutex_unlock(&primary_mu);
  char *colon = strrchr(addr, ':');
  if (!addr[0] || !colon) return -1;
  *colon = 0;
  const char *h = addr;
  if (h[0] == '[') {
    h++;
    char *end = strchr(addr, ']');
    if (end) *end = 0;
  }
  size_t hl = strlen(h);
  if (hl >= n) return -1;
  memcpy(host, h, hl + 1);
  *port = atoi(colon + 1);
  return 0;
}

static void start_connect(cg_redis_t *r) {
  /* With sentinels, a first attempt goes straight to the primary another
   * connection of the process confirmed (commands queue behind it, as with
   * one address); later attempts, or none known, ask the sentinels. */
  if (r->n_sentinels && (r->failures > 0 || known_primary(r->master, r->host, sizeof r->host, &r->port) != 0)) start_discover(r);
  else connect_server(r);
}

static void connect_server(cg_redis_t *r) {
  redisAsyncContext *ac = open_slot(r, r->host, r->port, &r->ac, on_connect, on_disconnect, 1);
  if (!ac) return;
  r->state = R_CONNECTING;
  if (r->password) {
    const char *argv[] = {"AUTH", r->password};
    size_t lens[] = {4, strlen(r->password)};
    redisAsyncCommandArgv(ac, on_setup, "AUTH", 2, argv, lens);
  }
  if (r->db && !r->channel) {
    char db[16];
    int n = snprintf(db, sizeof db, "%d", r->db);
    const char *argv[] = {"SELECT", db};
    size_t lens[] = {6, (size_t)n};
    redisAsyncCommandArgv(ac, on_setup, "SELECT", 2, argv, lens);
  }
  if (r->n_sentinels) {
    const char *argv[] = {"ROLE"};
    size_t lens[] = {4};
    redisAsyncCommandArgv(ac, on_setup, "ROLE", 1, argv, lens);
  }
  const char *argv[] = {"PING"};
  size_t lens[] = {4};
  redisAsyncCommandArgv(ac, on_setup, "PING", 1, argv, lens);
  uv_timer_start(&r->timer, on_timer, r->connect_timeout_ms, 0);
}

static void on_timer(uv_timer_t *t) {
  cg_redis_t *r = t->data;
  switch (r->state) {
  case R_DOWN:
    atomic_fetch_add(&st_reconnects, 1);
    start_connect(r);
    break;
  case R_CONNECTING:
    drop(r, "connect timeout");
    break;
  case R_DISCOVERING:
    drop(r, "the sentinel did not answer in time");
    break;
  case R_UP: {
    if (cg_list_empty(&r->pending)) break;
    pending_t *head = container_of(r->pending.next, pending_t, link);
    if (head->deadline > uv_now(r->loop)) {
      arm(r);
      break;
    }
    /* the server stopped answering: this command fails as a timeout, the
     * others queued behind it as a lost connection */
    atomic_fetch_add(&st_timeouts, 1);
    cg_redis_cb cb = head->cb;
    void *arg = head->arg;
    head->cb = NULL;
    /* down before anyone hears of it, so what cb runs next picks another
     * connection; the context (and head) are freed last */
    redisAsyncContext *ac = detach(r);
    lost(r, "a command timed out");
    if (cb) cb(arg, NULL, "timeout");
    if (ac) redisAsyncFree(ac);
    break;
  }
  default:
    break;
  }
}

static cg_redis_t *make(uv_loop_t *loop, const cg_redis_conf_t *conf, const char *channel, cg_redis_msg_cb on_msg,
                        cg_redis_state_cb on_state, void *arg, int counted) {
  cg_redis_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->g_conns = counted ? &st_conns : &r->own_conns;
  r->g_up = counted ? &st_up : &r->own_up;
  r->loop = loop;
  snprintf(r->host, sizeof r->host, "%s", conf->host);
  r->port = conf->port;
  r->db = conf->db;
  r->n_sentinels = conf->n_sentinels;
  memcpy(r->sentinels, conf->sentinels, sizeof r->sentinels);
  r->master = conf->master_name ? strdup(conf->master_name) : NULL;
  r->sentinel_password = conf->sentinel_password ? strdup(conf->sentinel_password) : NULL;
  if (r->n_sentinels) r->si = (int)(uv_hrtime() % (uint64_t)r->n_sentinels); /* spread over the sentinels */
  r->password = conf->password ? strdup(conf->password) : NULL;
  r->channel = channel ? strdup(channel) : NULL;
  r->timeout_ms = conf->timeout_ms;
  r->connect_timeout_ms = conf->connect_timeout_ms;
  r->on_msg = on_msg;
  r->on_state = on_state;
  r->arg = arg;
  r->backoff_ms = BACKOFF_MIN_MS;
  cg_list_init(&r->pending);
  uv_timer_init(loop, &r->timer);
  r->timer.data = r;
  uv_timer_init(loop, &r->watch_timer);
  r->watch_timer.data = r;
  r->handles = 2;
  r->wi = r->si;
  atomic_fetch_add(channel ? &st_subs : r->g_conns, 1);
  start_connect(r);
  return r;
}

cg_redis_t *cg_redis_new(uv_loop_t *loop, const cg_redis_conf_t *conf, const char *channel, cg_redis_msg_cb on_msg,
                         cg_redis_state_cb on_state, void *arg) {
  return make(loop, conf, channel, on_msg, on_state, arg, 1);
}

cg_redis_t *cg_redis_new_own(uv_loop_t *loop, const cg_redis_conf_t *conf) {
  return make(loop, conf, NULL, NULL, NULL, NULL, 0);
}

static void on_closed(uv_handle_t *h) {
  cg_redis_t *r = h->data;
  if (--r->handles > 0) return;
  free(r->password);
  free(r->sentinel_password);
  free(r->channel);
  free(r->master);
  free(r);
}

void cg_redis_free(cg_redis_t *r) {
  if (!r) return;
  if (r->state == R_UP) count_down(r);
  atomic_fetch_sub(r->channel ? &st_subs : r->g_conns, 1);
  r->state = R_CLOSED;
  drop_sentinels(r);
  redisAsyncContext *ac = r->ac;
  r->ac = NULL;
  if (ac) {
    ac->data = NULL;
    redisAsyncFree(ac); /* waiting commands fail with "closed" */
  }
  uv_close((uv_handle_t *)&r->timer, on_closed);
  uv_close((uv_handle_t *)&r->watch_timer, on_closed);
}

int cg_redis_up(const cg_redis_t *r) { return r && r->state == R_UP && r->ac && (!r->channel || r->subscribed); }

int cg_redis_matches(const cg_redis_t *r, const cg_redis_conf_t *c, const char *channel) {
  int same_pw = (!r->password && !c->password) || (r->password && c->password && strcmp(r->password, c->password) == 0);
  int same_ch = (!r->channel && !channel) || (r->channel && channel && strcmp(r->channel, channel) == 0);
  if (r->n_sentinels != c->n_sentinels) return 0;
  int same_spw = (!r->sentinel_password && !c->sentinel_password) ||
                 (r->sentinel_password && c->sentinel_password && strcmp(r->sentinel_password, c->sentinel_password) == 0);
  if (!same_spw) return 0;
  if (r->n_sentinels) {
    /* host and port are whatever the sentinels named: compare what was configured */
    if (memcmp(r->sentinels, c->sentinels, sizeof r->sentinels) != 0 || !c->master_name ||
        strcmp(r->master, c->master_name) != 0)
      return 0;
  } else if (strcmp(r->host, c->host) != 0 || r->port != c->port) {
    return 0;
  }
  return r->db == c->db && same_pw && same_ch && r->timeout_ms == c->timeout_ms &&
         r->connect_timeout_ms == c->connect_timeout_ms;
}

int cg_redis_connecting(const cg_redis_t *r) { return r && r->state == R_CONNECTING && r->ac; }

int cg_redis_command(cg_redis_t *r, int argc, const char **argv, const size_t *lens, cg_redis_cb cb, void *arg,
                     void **handle) {
  /* Another connection of the process confirmed a new primary since this
   * one came up (a failover its own connection may not notice: a stalled
   * primary closes nothing): connect there first, the command queued behind
   * the handshake. Only when idle, so no caller hears of it from in here. */
  if (r->n_sentinels && r->state == R_UP && r->ac && cg_list_empty(&r->pending) &&
      r->gen != atomic_load(&st_failovers)) {
    redisAsyncContext *ac = detach(r);
    count_down(r);
    r->state = R_DOWN;
    redisAsyncFree(ac); /* nothing waits on it */
    cg_log_info("redis %s:%d: the primary moved; reconnecting", r->host, r->port);
    start_connect(r);
  }
  /* while connecting, commands queue behind the handshake; while down they
   * fail at once, so a caller never waits on a server known to be gone */
  if ((r->state != R_UP && r->state != R_CONNECTING) || !r->ac || r->channel) return -1;
  pending_t *p = malloc(sizeof *p);
  if (!p) return -1;
  p->r = r;
  p->cb = cb;
  p->arg = arg;
  p->deadline = uv_now(r->loop) + r->timeout_ms;
  int first = cg_list_empty(&r->pending);
  cg_list_push(&r->pending, &p->link);
  if (redisAsyncCommandArgv(r->ac, on_reply, p, argc, argv, lens) != REDIS_OK) {
    cg_list_remove(&p->link);
    free(p);
    return -1;
  }
  atomic_fetch_add(&st_commands, 1);
  if (first) arm(r);
  if (handle) *handle = p;
  return 0;
}

void cg_redis_forget(void *handle) {
  pending_t *p = handle;
  if (p) p->cb = NULL;
}

void cg_redis_stats(cg_redis_stats_t *out) {
  out->connections = atomic_load(&st_conns);
  out->commands = atomic_load(&st_commands);
  out->errors = atomic_load(&st_errors);
  out->timeouts = atomic_load(&st_timeouts);
  out->reconnects = atomic_load(&st_reconnects);
  out->connections_up = atomic_load(&st_up);
  out->subscribers = atomic_load(&st_subs);
  out->subscribers_up = atomic_load(&st_subs_up);
  out->invalidations = atomic_load(&st_inval);
  out->invalidated = atomic_load(&st_invalidated);
  out->failovers = atomic_load(&st_failovers);
}

void cg_redis_count_invalidation(uint64_t n) {
  atomic_fetch_add(&st_inval, 1);
  atomic_fetch_add(&st_invalidated, n);
}
