/* The per-origin decision cache: a chained hash table for lookups, an
 * intrusive LRU list for eviction, and the tenants decisions name, each with
 * the list of its decisions (purges by tenant). One malloc per entry (the key
 * lives at its end), so a cached origin costs about 120 bytes plus its name. */
#include "cache/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/hash.h"

enum {
  F_VALUE = 1,      /* has a decision (possibly expired) */
  F_ALLOW = 2,      /* that decision allows */
  F_RUNNING = 4,    /* a hook is deciding or refreshing it */
  F_DETACHED = 8,   /* out of the table (purged while busy: freed when idle) */
  F_WAKING = 16     /* its waiters are being called */
};

/* A failed refresh is retried at most this often while stale serving lasts. */
enum { RETRY_MS = 1000 };

/* A tenant that decisions name, kept once however many origins it owns, with
 * the list of the decisions in the table that name it: a purge by tenant (an
 * invalidation from the fleet) walks those, not the whole cache. */
typedef struct tenant {
  struct tenant *next; /* in its slot of the tenant table */
  cg_list_t entries;   /* cg_dcache_entry.tlink of the entries in the table naming it */
  size_t refs;         /* entries naming it, in the table or detached */
  uint32_t hash;
  char name[];
} tenant_t;

struct cg_dcache_entry {
  cg_dcache_entry_t *hnext;
  cg_list_t lru;
  cg_list_t waiters;
  void *val; /* the answer's value: a cg_cors_override_t, or what the cache was made for */
  tenant_t *tenant;
  cg_list_t tlink; /* in tenant->entries while the entry is in the table */
  uint64_t expires;
  uint64_t retry_at; /* after a failed refresh: no new refresh before this */
  uint32_t hash, route;
  uint16_t key_len;
  uint8_t flags;
  char key[];
};

struct cg_dcache {
  cg_dcache_entry_t **slots;
  size_t nslots; /* power of two */
  size_t count, max;
  uint64_t stale_limit;
  cg_list_t lru; /* least recently used first */
  tenant_t **tslots;
  size_t ntslots, ntenants; /* ntslots: a power of two */
  uint32_t nroutes;         /* one past the highest route an entry has had */
  /* What the entries in the table hold, kept as they change: summing it on
   * demand walked every entry, 24 ms with a million of them, a stall of the
   * worker's loop at every scrape of /metrics. */
  uint64_t entry_bytes;
  cg_dcache_stats_t st;
  void (*free_val)(void *);
  size_t (*size_val)(const void *);
  int stale_allowed_only; /* a refusal or failure is never served stale */
};

/* Keyed (util/hash.h): the origins are the client's choice, and with an
 * unkeyed hash a client could put thousands of them in one chain. */
static uint32_t hash_key(uint32_t route, const char *s, size_t n) { return (uint32_t)cg_hash(s, n, route); }

static void tenants_grow(cg_dcache_t *c);

static cg_dcache_entry_t *find(const cg_dcache_t *c, uint32_t route, const char *origin, size_t len, uint32_t h) {
  cg_dcache_entry_t *e = c->slots[h & (c->nslots - 1)];
  while (e && !(e->hash == h && e->route == route && e->key_len == len && memcmp(e->key, origin, len) == 0))
    e = e->hnext;
  return e;
}

static void free_override(void *v) { cg_cors_override_free(v); }
static size_t size_override(const void *v) { return cg_cors_override_size(v); }

static cg_dcache_t *make(size_t max_entries, uint64_t stale_limit_ms, void (*free_val)(void *),
                         size_t (*size_val)(const void *), int stale_allowed_only) {
  cg_dcache_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->stale_allowed_only = stale_allowed_only;
  c->free_val = free_val;
  c->size_val = size_val;
  c->nslots = 64;
  c->slots = calloc(c->nslots, sizeof *c->slots);
  if (!c->slots) {
    free(c);
    return NULL;
  }
  tenants_grow(c); /* both tables from the start (a failure here only defers it) */
  c->max = max_entries ? max_entries : 1;
  c->stale_limit = stale_limit_ms;
  cg_list_init(&c->lru);
  return c;
}

/* Origin decisions: denials and allowances alike serve stale. */
cg_dcache_t *cg_dcache_new(size_t max_entries, uint64_t stale_limit_ms) {
  return make(max_entries, stale_limit_ms, free_override, size_override, 0);
}

cg_dcache_t *cg_dcache_new_values(size_t max_entries, uint64_t stale_limit_ms, void (*free_val)(void *),
                                  size_t (*size_val)(const void *)) {
  return make(max_entries, stale_limit_ms, free_val, size_val, 1);
}

static uint64_t value_bytes(const cg_dcache_t *c, const cg_dcache_entry_t *e) {
  return e->val ? c->size_val(e->val) : 0;
}

/* Only entries in the table count: a detached one was taken off when it left. */
static int counted(const cg_dcache_entry_t *e) { return !(e->flags & F_DETACHED); }

static uint32_t tenant_hash(const char *name, size_t len) { return (uint32_t)cg_hash(name, len, 0x7e4a47u); }

static tenant_t **tenant_slot(cg_dcache_t *c, const char *name, size_t len, uint32_t h) {
  tenant_t **pp = &c->tslots[h & (c->ntslots - 1)];
  while (*pp && !((*pp)->hash == h && strncmp((*pp)->name, name, len) == 0 && (*pp)->name[len] == 0))
    pp = &(*pp)->next;
  return pp;
}

static void tenants_grow(cg_dcache_t *c) {
  size_t n = c->ntslots ? c->ntslots * 2 : 16;
  tenant_t **slots = calloc(n, sizeof *slots);
  if (!slots) return; /* longer chains, still correct */
  for (size_t i = 0; i < c->ntslots; i++) {
    for (tenant_t *t = c->tslots[i], *next; t; t = next) {
      next = t->next;
      t->next = slots[t->hash & (n - 1)];
      slots[t->hash & (n - 1)] = t;
    }
  }
  free(c->tslots);
  c->tslots = slots;
  c->ntslots = n;
}

/* The tenant called name, made if new, with one more reference; NULL when
 * memory ran out (the decision then names no tenant). */
static tenant_t *tenant_ref(cg_dcache_t *c, const char *name) {
  size_t len = strlen(name);
  if (c->ntenants >= c->ntslots) tenants_grow(c);
  if (!c->tslots) return NULL;
  uint32_t h = tenant_hash(name, len);
  tenant_t **pp = tenant_slot(c, name, len, h);
  if (!*pp) {
    tenant_t *t = malloc(sizeof *t + len + 1);
    if (!t) return NULL;
    t->next = NULL;
    cg_list_init(&t->entries);
    t->refs = 0;
    t->hash = h;
    memcpy(t->name, name, len + 1);
    *pp = t;
    c->ntenants++;
    c->entry_bytes += sizeof *t + len + 1;
  }
  (*pp)->refs++;
  return *pp;
}

static void tenant_unref(cg_dcache_t *c, tenant_t *t) {
  if (--t->refs > 0) return;
  size_t len = strlen(t->name);
  tenant_t **pp = tenant_slot(c, t->name, len, t->hash);
  if (*pp == t) *pp = t->next;
  c->ntenants--;
  c->entry_bytes -= sizeof *t + len + 1;
  free(t);
}

/* Out of the tenant's list (when e leaves the table); it still names it. */
static void tenant_unlink(cg_dcache_entry_t *e) {
  if (e->tlink.next) cg_list_remove(&e->tlink);
  e->tlink.next = e->tlink.prev = NULL;
}

/* c is NULL when the whole cache is being freed (its tenants go with it). */
static void drop_value(cg_dcache_t *c, cg_dcache_entry_t *e) {
  if (c && counted(e)) c->entry_bytes -= value_bytes(c, e);
  if (e->val && c) c->free_val(e->val); /* without c: cg_dcache_free freed it */
  e->val = NULL;
  if (e->tenant && c) { /* else the list's neighbours may be freed already */
    tenant_unlink(e);
    tenant_unref(c, e->tenant);
  }
  e->tenant = NULL;
  e->flags &= (uint8_t) ~(F_VALUE | F_ALLOW);
}

static void entry_free(cg_dcache_t *c, cg_dcache_entry_t *e) {
  drop_value(c, e);
  /* waiters left behind belong to requests that are gone or to a cache being freed */
  while (!cg_list_empty(&e->waiters)) cg_list_remove(e->waiters.next);
  free(e);
}

static void unlink_entry(cg_dcache_t *c, cg_dcache_entry_t *e) {
  cg_dcache_entry_t **pp = &c->slots[e->hash & (c->nslots - 1)];
  while (*pp && *pp != e) pp = &(*pp)->hnext;
  if (*pp) *pp = e->hnext;
  e->hnext = NULL;
  cg_list_remove(&e->lru);
  tenant_unlink(e);
  c->count--;
  c->entry_bytes -= sizeof *e + e->key_len + 1 + value_bytes(c, e);
  e->flags |= F_DETACHED; /* counted for nothing from here on */
}

static int busy(const cg_dcache_entry_t *e) { return (e->flags & (F_RUNNING | F_WAKING)) != 0; }

/* Removes e from the cache: freed now, or when its hook reports. */
static void purge_entry(cg_dcache_t *c, cg_dcache_entry_t *e) {
  unlink_entry(c, e);
  if (!busy(e)) entry_free(c, e);
}

void cg_dcache_drop(cg_dcache_t *c, cg_dcache_entry_t *e) {
  if (e && !(e->flags & F_DETACHED)) purge_entry(c, e);
}

void cg_dcache_free(cg_dcache_t *c) {
  if (!c) return;
  for (size_t i = 0; i < c->nslots; i++) {
    cg_dcache_entry_t *e = c->slots[i];
    while (e) {
      cg_dcache_entry_t *next = e->hnext;
      if (e->val) c->free_val(e->val);
      e->val = NULL;
      entry_free(NULL, e);
      e = next;
    }
  }
  for (size_t i = 0; i < c->ntslots; i++) {
    for (tenant_t *t = c->tslots[i], *next; t; t = next) {
      next = t->next;
      free(t);
    }
  }
  free(c->tslots);
  free(c->slots);
  free(c);
}

static void grow(cg_dcache_t *c) {
  size_t n = c->nslots * 2;
  cg_dcache_entry_t **slots = calloc(n, sizeof *slots);
  if (!slots) return; /* longer chains, still correct */
  for (size_t i = 0; i < c->nslots; i++) {
    cg_dcache_entry_t *e = c->slots[i];
    while (e) {
      cg_dcache_entry_t *next = e->hnext;
      e->hnext = slots[e->hash & (n - 1)];
      slots[e->hash & (n - 1)] = e;
      e = next;
    }
  }
  free(c->slots);
  c->slots = slots;
  c->nslots = n;
}

static void evict(cg_dcache_t *c) {
  /* Oldest first; busy entries are skipped, a bounded number of them. */
  cg_list_t *l = c->lru.next;
  for (int scanned = 0; c->count > c->max && l != &c->lru && scanned < 64; scanned++) {
    cg_dcache_entry_t *e = container_of(l, cg_dcache_entry_t, lru);
    l = l->next;
    if (busy(e)) continue;
    purge_entry(c, e);
    c->st.evictions++;
  }
}

/* Frees the least recently used entries that are too old to serve even
 * stale, a couple per insertion: origins seen once do not stay until the
 * size bound pushes them out. */
static void sweep(cg_dcache_t *c, uint64_t now) {
  for (int i = 0; i < 2 && !cg_list_empty(&c->lru); i++) {
    cg_dcache_entry_t *e = container_of(c->lru.next, cg_dcache_entry_t, lru);
    if (busy(e) || !(e->flags & F_VALUE) || now < e->expires || now - e->expires <= c->stale_limit) return;
    purge_entry(c, e);
    c->st.expired++;
  }
}

int cg_dcache_get(cg_dcache_t *c, uint32_t route, const char *origin, size_t len, uint64_t now,
                  cg_dcache_entry_t **out) {
  *out = NULL;
  if (len > UINT16_MAX) len = UINT16_MAX;
  uint32_t h = hash_key(route, origin, len);
  cg_dcache_entry_t *e = find(c, route, origin, len, h);
  if (!e) {
    c->st.misses++;
    sweep(c, now);
    e = malloc(sizeof *e + len + 1);
    if (!e) return CG_DC_MISS_RUN;
    memset(e, 0, sizeof *e);
    e->hash = h;
    e->route = route;
    e->key_len = (uint16_t)len;
    memcpy(e->key, origin, len);
    e->key[len] = 0;
    e->flags = F_RUNNING;
    cg_list_init(&e->waiters);
    size_t slot = h & (c->nslots - 1);
    e->hnext = c->slots[slot];
    c->slots[slot] = e;
    cg_list_push(&c->lru, &e->lru);
    c->count++;
    c->entry_bytes += sizeof *e + len + 1;
    if (route >= c->nroutes) c->nroutes = route + 1;
    if (c->count > c->max) evict(c);
    if (c->count > c->nslots) grow(c);
    *out = e;
    return CG_DC_MISS_RUN;
  }
  *out = e;
  cg_list_remove(&e->lru);
  cg_list_push(&c->lru, &e->lru);
  if (!(e->flags & F_VALUE)) return CG_DC_PENDING;
  if (now < e->expires) {
    c->st.hits++;
    return CG_DC_FRESH;
  }
  if (now - e->expires > c->stale_limit || (c->stale_allowed_only && !(e->flags & F_ALLOW))) {
    /* too old to serve (or not to be served stale): everyone waits for a new decision */
    c->st.misses++;
    if (e->flags & F_RUNNING) return CG_DC_PENDING;
    e->flags |= F_RUNNING;
    c->st.refreshes++;
    return CG_DC_MISS_RUN;
  }
  c->st.stale++;
  if ((e->flags & F_RUNNING) || now < e->retry_at) return CG_DC_STALE;
  e->flags |= F_RUNNING;
  c->st.refreshes++;
  return CG_DC_STALE_REFRESH;
}

void cg_dcache_wait(cg_dcache_entry_t *e, cg_dcache_waiter_t *w) {
  cg_list_push(&e->waiters, &w->link);
}

void cg_dcache_cancel(cg_dcache_waiter_t *w) {
  if (w->link.next && w->link.next != &w->link) cg_list_remove(&w->link);
}

void cg_dcache_take_waiters(cg_dcache_entry_t *e, cg_list_t *out) {
  while (!cg_list_empty(&e->waiters)) {
    cg_list_t *l = e->waiters.next;
    cg_list_remove(l);
    cg_list_push(out, l);
  }
}

static void wake(cg_dcache_t *c, cg_dcache_entry_t *e) {
  e->flags = (uint8_t)((e->flags & ~F_RUNNING) | F_WAKING);
  /* A woken request may start others (pipelining) that look this entry up
   * again or evict: F_WAKING keeps it alive until the last waiter is done. */
  while (!cg_list_empty(&e->waiters)) {
    cg_list_t *l = e->waiters.next;
    cg_list_remove(l);
    cg_dcache_waiter_t *w = container_of(l, cg_dcache_waiter_t, link);
    w->cb(w, e);
  }
  if (e->flags & F_DETACHED) {
    e->flags &= (uint8_t)~F_WAKING;
    entry_free(c, e);
    return;
  }
  /* still busy while the bound is enforced: the entry just decided is what
   * its caller reads next, whatever the cache's size */
  if (c->count > c->max) evict(c);
  e->flags &= (uint8_t)~F_WAKING;
}

void cg_dcache_set(cg_dcache_t *c, cg_dcache_entry_t *e, int allow, cg_cors_override_t *ov, const char *tenant,
                   uint64_t ttl_ms, uint64_t now) {
  cg_dcache_set_value(c, e, allow, ov, tenant, ttl_ms, now);
}

/* e's answer becomes (allow, val, tenant), expiring at `expires`. */
static void put_value(cg_dcache_t *c, cg_dcache_entry_t *e, int allow, void *val, const char *tenant,
                      uint64_t expires) {
  /* the new tenant first: a refresh naming the same one keeps it alive */
  tenant_t *t = tenant && *tenant ? tenant_ref(c, tenant) : NULL;
  drop_value(c, e);
  e->val = val;
  e->tenant = t;
  if (e->tenant && counted(e)) cg_list_push(&e->tenant->entries, &e->tlink);
  if (counted(e)) c->entry_bytes += value_bytes(c, e);
  e->flags |= F_VALUE | (allow ? F_ALLOW : 0);
  e->expires = expires;
  e->retry_at = 0;
}

void cg_dcache_set_value(cg_dcache_t *c, cg_dcache_entry_t *e, int allow, void *val, const char *tenant,
                         uint64_t ttl_ms, uint64_t now) {
  if (!e) {
    if (val) c->free_val(val);
    return;
  }
  put_value(c, e, allow, val, tenant, now + ttl_ms);
  wake(c, e);
}

void cg_dcache_seed(cg_dcache_t *c, cg_dcache_entry_t *e, int allow, cg_cors_override_t *ov, const char *tenant,
                    uint64_t expires) {
  if (!e || (e->flags & F_VALUE) || !(e->flags & F_RUNNING)) {
    if (ov) c->free_val(ov);
    return;
  }
  put_value(c, e, allow, ov, tenant, expires);
}

void cg_dcache_fail(cg_dcache_t *c, cg_dcache_entry_t *e, uint64_t deny_ttl_ms, uint64_t now) {
  if (!e) return;
  c->st.failures++;
  if ((e->flags & F_VALUE) && now >= e->expires && now - e->expires <= c->stale_limit &&
      (!c->stale_allowed_only || (e->flags & F_ALLOW))) {
    /* keep the last answer while it may still be served stale */
    e->retry_at = now + (deny_ttl_ms < RETRY_MS ? deny_ttl_ms : RETRY_MS);
  } else if (!(e->flags & F_VALUE) || now >= e->expires) {
    drop_value(c, e);
    e->flags |= F_VALUE;
    e->expires = now + deny_ttl_ms;
  }
  wake(c, e);
}

int cg_dcache_entry_allow(const cg_dcache_entry_t *e) { return (e->flags & F_ALLOW) != 0; }
const cg_cors_override_t *cg_dcache_entry_override(const cg_dcache_entry_t *e) { return e->val; }
const void *cg_dcache_entry_value(const cg_dcache_entry_t *e) { return e->val; }
const char *cg_dcache_entry_tenant(const cg_dcache_entry_t *e) { return e->tenant ? e->tenant->name : NULL; }
uint64_t cg_dcache_entry_expires(const cg_dcache_entry_t *e) { return (e->flags & F_VALUE) ? e->expires : 0; }
int cg_dcache_entry_running(const cg_dcache_entry_t *e) { return (e->flags & F_RUNNING) != 0; }

size_t cg_dcache_purge_all(cg_dcache_t *c) {
  size_t n = 0;
  while (!cg_list_empty(&c->lru)) {
    purge_entry(c, container_of(c->lru.next, cg_dcache_entry_t, lru));
    n++;
  }
  return n;
}

/* One lookup per route an entry has had, not a walk of the cache. */
size_t cg_dcache_purge_origin(cg_dcache_t *c, const char *origin, size_t len) {
  if (len > UINT16_MAX) return 0;
  size_t n = 0;
  for (uint32_t route = 0; route < c->nroutes; route++) {
    cg_dcache_entry_t *e = find(c, route, origin, len, hash_key(route, origin, len));
    if (!e) continue;
    purge_entry(c, e);
    n++;
  }
  return n;
}

size_t cg_dcache_purge_if(cg_dcache_t *c, int (*match)(const char *key, size_t len, void *arg), void *arg) {
  size_t n = 0;
  for (size_t i = 0; i < c->nslots; i++) {
    cg_dcache_entry_t *e = c->slots[i];
    while (e) {
      cg_dcache_entry_t *next = e->hnext; /* purge_entry unlinks e */
      if (match(e->key, e->key_len, arg)) {
        purge_entry(c, e);
        n++;
      }
      e = next;
    }
  }
  return n;
}

size_t cg_dcache_purge_tenant(cg_dcache_t *c, const char *tenant) {
  if (!tenant || !c->tslots) return 0;
  size_t len = strlen(tenant);
  tenant_t *t = *tenant_slot(c, tenant, len, tenant_hash(tenant, len));
  if (!t) return 0;
  /* purging the last entry may free t: count what there is first */
  size_t n = 0;
  for (cg_list_t *l = t->entries.next; l != &t->entries; l = l->next) n++;
  for (size_t i = 0; i < n; i++) purge_entry(c, container_of(t->entries.next, cg_dcache_entry_t, tlink));
  return n;
}

size_t cg_dcache_expire_all(cg_dcache_t *c, uint64_t now) {
  size_t n = 0;
  for (cg_list_t *l = c->lru.next; l != &c->lru; l = l->next) {
    cg_dcache_entry_t *e = container_of(l, cg_dcache_entry_t, lru);
    if (!(e->flags & F_VALUE) || e->expires <= now) continue;
    e->expires = now;
    e->retry_at = 0;
    n++;
  }
  return n;
}

void cg_dcache_peek(const cg_dcache_t *c, uint32_t route, const char *origin, size_t len, uint64_t now,
                    cg_dcache_info_t *out) {
  memset(out, 0, sizeof *out);
  if (len > UINT16_MAX) return;
  const cg_dcache_entry_t *e = find(c, route, origin, len, hash_key(route, origin, len));
  if (!e) return;
  out->present = 1;
  out->pending = !(e->flags & F_VALUE);
  out->allow = (e->flags & F_ALLOW) != 0;
  out->expires_in_ms = (int64_t)e->expires - (int64_t)now;
  if (e->tenant) snprintf(out->tenant, sizeof out->tenant, "%s", e->tenant->name);
}

void cg_dcache_stats(const cg_dcache_t *c, cg_dcache_stats_t *out) {
  *out = c->st;
  out->entries = c->count;
  out->bytes = sizeof *c + c->nslots * sizeof *c->slots + c->ntslots * sizeof *c->tslots + c->entry_bytes;
}

size_t cg_dcache_longest_chain(const cg_dcache_t *c) {
  size_t longest = 0;
  for (size_t i = 0; i < c->nslots; i++) {
    size_t n = 0;
    for (const cg_dcache_entry_t *e = c->slots[i]; e; e = e->hnext) n++;
    if (n > longest) longest = n;
  }
  return longest;
}
