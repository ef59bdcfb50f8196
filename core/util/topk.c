/* A space-saving summary of refusals; see topk.h. */
#include "util/topk.h"

#include <string.h>

/* FNV-1a. Unkeyed on purpose: a chain holds at most CG_TOPK_K items
 * whatever a client chooses, so colliding origins cost a bounded walk, and a
 * refusal stays cheap. */
static uint32_t fnv(uint32_t h, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

void cg_topk_init(cg_topk_t *t) {
  memset(t, 0, sizeof *t);
  memset(t->head, 0xff, sizeof t->head);
  memset(t->next, 0xff, sizeof t->next);
  t->low = -1;
  for (int b = 0; b <= CG_TOPK_K; b++) t->buckets[b].next = (int16_t)(b < CG_TOPK_K ? b + 1 : -1);
  t->spare = 0;
}

/* --- counts: buckets of equal count, in a list ordered by count -------------- */

/* A bucket for count, placed right after bucket `after` (-1: first). */
static int bucket_new(cg_topk_t *t, uint64_t count, int after) {
  int b = t->spare;
  cg_topk_bucket_t *k = &t->buckets[b];
  t->spare = k->next;
  k->count = count;
  k->first = -1;
  k->prev = (int16_t)after;
  k->next = after >= 0 ? t->buckets[after].next : t->low;
  if (k->next >= 0) t->buckets[k->next].prev = (int16_t)b;
  if (after >= 0) t->buckets[after].next = (int16_t)b;
  else t->low = (int16_t)b;
  return b;
}

static void bucket_free(cg_topk_t *t, int b) {
  cg_topk_bucket_t *k = &t->buckets[b];
  if (k->prev >= 0) t->buckets[k->prev].next = k->next;
  else t->low = k->next;
  if (k->next >= 0) t->buckets[k->next].prev = k->prev;
  k->next = t->spare;
  t->spare = (int16_t)b;
}

/* Item i leaves its bucket, the bucket goes with its last item. */
static void leave(cg_topk_t *t, int i) {
  cg_topk_item_t *it = &t->items[i];
  cg_topk_bucket_t *k = &t->buckets[it->bucket];
  if (it->prev >= 0) t->items[it->prev].next = it->next;
  else k->first = it->next;
  if (it->next >= 0) t->items[it->next].prev = it->prev;
  if (k->first < 0) bucket_free(t, it->bucket);
}

static void join(cg_topk_t *t, int i, int b) {
  cg_topk_item_t *it = &t->items[i];
  cg_topk_bucket_t *k = &t->buckets[b];
  it->bucket = (int16_t)b;
  it->prev = -1;
  it->next = k->first;
  if (k->first >= 0) t->items[k->first].prev = (int16_t)i;
  k->first = (int16_t)i;
  it->count = k->count;
}

/* Item i counts one more: into the next bucket, made when none holds that
 * count (before its own may go, so the list stays in order). */
static void bump(cg_topk_t *t, int i) {
  int b = t->items[i].bucket;
  uint64_t c = t->buckets[b].count + 1;
  int nb = t->buckets[b].next;
  if (nb < 0 || t->buckets[nb].count != c) nb = bucket_new(t, c, b);
  leave(t, i);
  join(t, i, nb);
}

/* Copies n bytes of s into a field of cap bytes, cut to fit, NUL-ended. */
static void put(char *dst, size_t cap, const char *s, size_t n) {
  if (!s) n = 0;
  if (n >= cap) n = cap - 1;
  if (n) memcpy(dst, s, n);
  dst[n] = 0;
}

int cg_topk_same(const cg_topk_item_t *a, const cg_topk_item_t *b) {
  return a->hash == b->hash && a->route == b->route && a->reason == b->reason && a->origin_len == b->origin_len &&
         a->detail_len == b->detail_len && memcmp(a->origin, b->origin, a->origin_len) == 0 &&
         memcmp(a->detail, b->detail, a->detail_len) == 0;
}

static void unchain(cg_topk_t *t, int i) {
  int16_t *p = &t->head[t->items[i].hash & 255];
  while (*p >= 0 && *p != i) p = &t->next[*p];
  if (*p == i) *p = t->next[i];
  t->next[i] = -1;
}

static void chain(cg_topk_t *t, int i) {
  int b = (int)(t->items[i].hash & 255);
  t->next[i] = t->head[b];
  t->head[b] = (int16_t)i;
}

void cg_topk_add(cg_topk_t *t, int route, int reason, const char *origin, size_t origin_len, const char *detail,
                 size_t detail_len, const char *tenant, const cg_topk_sample_t *sample, uint64_t now_ms) {
  /* the key as kept: cut to the fields' size */
  if (!origin) origin = "", origin_len = 0;
  if (!detail) detail = "", detail_len = 0;
  if (origin_len >= CG_TOPK_ORIGIN) origin_len = CG_TOPK_ORIGIN - 1;
  if (detail_len >= CG_TOPK_DETAIL) detail_len = CG_TOPK_DETAIL - 1;
  uint32_t h = fnv(fnv(2166136261u ^ (uint32_t)(route * 31 + reason), origin, origin_len), detail, detail_len);
  for (int i = t->head[h & 255]; i >= 0; i = t->next[i]) {
    cg_topk_item_t *it = &t->items[i];
    if (it->hash == h && it->route == route && it->reason == reason && it->origin_len == origin_len &&
        it->detail_len == detail_len && memcmp(it->origin, origin, origin_len) == 0 &&
        memcmp(it->detail, detail, detail_len) == 0) {
      bump(t, i);
      it->last_ms = now_ms;
      if (tenant && *tenant) put(it->tenant, sizeof it->tenant, tenant, strlen(tenant));
      return;
    }
  }
  int i;
  uint64_t base = 0;
  if (t->n < CG_TOPK_K) {
    i = t->n++;
    /* a count of 0 to start from, just before the smallest held (never below 1) */
    join(t, i, bucket_new(t, 0, -1));
  } else {
    /* the smallest counter makes room, and passes its count on */
    i = t->buckets[t->low].first;
    base = t->items[i].count;
    unchain(t, i);
  }
  bump(t, i);
  cg_topk_item_t *it = &t->items[i];
  it->error = base;
  it->first_ms = it->last_ms = now_ms;
  it->hash = h;
  it->route = route;
  it->reason = reason;
  put(it->origin, sizeof it->origin, origin, origin_len);
  put(it->detail, sizeof it->detail, detail, detail_len);
  it->origin_len = (uint16_t)origin_len;
  it->detail_len = (uint16_t)detail_len;
  put(it->tenant, sizeof it->tenant, tenant, tenant ? strlen(tenant) : 0);
  put(it->path, sizeof it->path, sample ? sample->path : NULL, sample ? sample->path_len : 0);
  put(it->host, sizeof it->host, sample ? sample->host : NULL, sample ? sample->host_len : 0);
  chain(t, i);
}

uint64_t cg_topk_floor(const cg_topk_t *t) {
  if (t->n < CG_TOPK_K) return 0; /* not full: what it does not hold, it never saw */
  return t->buckets[t->low].count;
}
