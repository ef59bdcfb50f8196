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
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/list.h"
#include "util/log.h"

enum { R_DOWN, R_CONNECTING, R_UP, R_CLOSED };
enum { BACKOFF_MIN_MS = 100, BACKOFF_MAX_MS = 5000, KEEPALIVE_S = 5 };

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
  char host[64];
  int port, db;
  char *password, *channel;
  uint64_t timeout_ms, connect_timeout_ms;
  cg_redis_msg_cb on_msg;
  cg_redis_state_cb on_state;
  void *arg;
};

static _Atomic uint64_t st_conns, st_commands, st_errors, st_timeouts, st_reconnects, st_up, st_subs, st_subs_up, st_inval,
    st_invalidated;

static void start_connect(cg_redis_t *r);
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
    atomic_fetch_sub(&st_up, 1);
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
    cg_log_warn("redis %s:%d: cannot connect (%s); retrying with backoff", r->host, r->port, why);
  }
  r->failures++;
  /* jitter spreads the reconnects of many workers and replicas */
  uint64_t wait = r->backoff_ms + uv_hrtime() % (r->backoff_ms / 2 + 1);
  r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
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

static void drop(cg_redis_t *r, const char *why) {
  redisAsyncContext *ac = detach(r);
  if (ac) redisAsyncFree(ac);
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
  if (cb) cb(arg, rep, rep ? NULL : (r->state == R_CLOSED ? "closed" : "connection lost"));
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
  if (rep->type == REDIS_REPLY_ERROR) {
    char why[160];
    snprintf(why, sizeof why, "%s refused: %.120s", what, rep->str);
    drop(r, why);
    return;
  }
  if (strcmp(what, "PING") != 0) return;
  if (r->failures) cg_log_info("redis %s:%d: connected again after %u failed attempt(s)", r->host, r->port, r->failures);
  r->state = R_UP;
  r->failures = 0;
  r->backoff_ms = BACKOFF_MIN_MS;
  uv_timer_stop(&r->timer);
  if (r->channel) {
    const char *argv[] = {"SUBSCRIBE", r->channel};
    size_t lens[] = {9, strlen(r->channel)};
    if (redisAsyncCommandArgv(ac, on_message, r, 2, argv, lens) != REDIS_OK) drop(r, "cannot subscribe");
    return;
  }
  atomic_fetch_add(&st_up, 1);
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

static void start_connect(cg_redis_t *r) {
  redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
  if (!ac || ac->err) {
    char why[128];
    snprintf(why, sizeof why, "%s", ac ? ac->errstr : "out of memory");
    if (ac) redisAsyncFree(ac);
    lost(r, why);
    return;
  }
  if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
    /* the adapter set its hooks before failing, with no data for them */
    memset(&ac->ev, 0, sizeof ac->ev);
    redisAsyncFree(ac);
    lost(r, "cannot watch the socket");
    return;
  }
  ac->data = r;
  r->ac = ac;
  keepalive(ac->c.fd);
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
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

cg_redis_t *cg_redis_new(uv_loop_t *loop, const cg_redis_conf_t *conf, const char *channel, cg_redis_msg_cb on_msg,
                         cg_redis_state_cb on_state, void *arg) {
  cg_redis_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->loop = loop;
  snprintf(r->host, sizeof r->host, "%s", conf->host);
  r->port = conf->port;
  r->db = conf->db;
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
  atomic_fetch_add(channel ? &st_subs : &st_conns, 1);
  start_connect(r);
  return r;
}

static void on_closed(uv_handle_t *h) {
  cg_redis_t *r = h->data;
  free(r->password);
  free(r->channel);
  free(r);
}

void cg_redis_free(cg_redis_t *r) {
  if (!r) return;
  if (r->state == R_UP) count_down(r);
  atomic_fetch_sub(r->channel ? &st_subs : &st_conns, 1);
  r->state = R_CLOSED;
  redisAsyncContext *ac = r->ac;
  r->ac = NULL;
  if (ac) {
    ac->data = NULL;
    redisAsyncFree(ac); /* waiting commands fail with "closed" */
  }
  uv_close((uv_handle_t *)&r->timer, on_closed);
}

int cg_redis_up(const cg_redis_t *r) { return r && r->state == R_UP && r->ac && (!r->channel || r->subscribed); }

int cg_redis_matches(const cg_redis_t *r, const cg_redis_conf_t *c, const char *channel) {
  int same_pw = (!r->password && !c->password) || (r->password && c->password && strcmp(r->password, c->password) == 0);
  int same_ch = (!r->channel && !channel) || (r->channel && channel && strcmp(r->channel, channel) == 0);
  return strcmp(r->host, c->host) == 0 && r->port == c->port && r->db == c->db && same_pw && same_ch &&
         r->timeout_ms == c->timeout_ms && r->connect_timeout_ms == c->connect_timeout_ms;
}

int cg_redis_connecting(const cg_redis_t *r) { return r && r->state == R_CONNECTING && r->ac; }

int cg_redis_command(cg_redis_t *r, int argc, const char **argv, const size_t *lens, cg_redis_cb cb, void *arg,
                     void **handle) {
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
}

void cg_redis_count_invalidation(uint64_t n) {
  atomic_fetch_add(&st_inval, 1);
  atomic_fetch_add(&st_invalidated, n);
}
