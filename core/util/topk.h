#ifndef CG_UTIL_TOPK_H
#define CG_UTIL_TOPK_H
/* The heavy hitters of a stream of refusals, in fixed memory: a
 * space-saving summary (Metwally et al.) of CG_TOPK_K counters keyed by
 * (route, reason, origin, detail). A key it holds counts up; a new key takes
 * the smallest counter's place and starts from its count (so counts may
 * over-estimate by at most `error`, and any key seen more than N/K times in
 * N adds is held). One worker's: single-threaded. An add is O(1) whatever
 * the keys: a hash lookup, and the counters kept in buckets of equal count
 * ordered by count (the paper's stream-summary), so a count moves up by one
 * bucket and the smallest is the first bucket's. */
#include <stddef.h>
#include <stdint.h>

enum { CG_TOPK_K = 100, CG_TOPK_ORIGIN = 128, CG_TOPK_DETAIL = 64, CG_TOPK_TENANT = 64, CG_TOPK_PATH = 96,
       CG_TOPK_HOST = 64 };

typedef struct cg_topk_item {
  uint64_t count, error; /* error: what the count may over-state */
  uint64_t first_ms, last_ms; /* the caller's clock */
  uint32_t hash;
  uint16_t origin_len, detail_len;
  int route;
  int reason;
  char origin[CG_TOPK_ORIGIN]; /* cut to fit; bytes as sent */
  char detail[CG_TOPK_DETAIL]; /* the method or header refused, or "" */
  char tenant[CG_TOPK_TENANT]; /* the tenant a plugin named, or "" */
  /* a request that was refused so, to explain it again: the first one's */
  char path[CG_TOPK_PATH], host[CG_TOPK_HOST];
  int16_t bucket, prev, next; /* its count's bucket, its neighbours there (-1 ends) */
} cg_topk_item_t;

/* What a refusal's request was, kept with a new key only. */
typedef struct cg_topk_sample {
  const char *path, *host;
  size_t path_len, host_len;
} cg_topk_sample_t;

/* The items of one count, and the buckets of the next smaller and larger
 * counts held. */
typedef struct cg_topk_bucket {
  uint64_t count;
  int16_t prev, next, first;
} cg_topk_bucket_t;

typedef struct cg_topk {
  cg_topk_item_t items[CG_TOPK_K];
  int n;
  int16_t head[256], next[CG_TOPK_K]; /* hash chains of item indexes, -1 ends */
  /* at most K counts held, and one more while an item moves to a new one */
  cg_topk_bucket_t buckets[CG_TOPK_K + 1];
  int16_t low;   /* the bucket of the smallest count; -1 when empty */
  int16_t spare; /* unused buckets, chained by next */
} cg_topk_t;

void cg_topk_init(cg_topk_t *t);
void cg_topk_add(cg_topk_t *t, int route, int reason, const char *origin, size_t origin_len, const char *detail,
                 size_t detail_len, const char *tenant, const cg_topk_sample_t *sample, uint64_t now_ms);
/* 1 when a and b are for the same key (route, reason, origin, detail). */
int cg_topk_same(const cg_topk_item_t *a, const cg_topk_item_t *b);
/* What a key t does not hold may still have been seen up to this many times
 * (its smallest count when full, else 0): a merge adds it to such a key's
 * count and error. */
uint64_t cg_topk_floor(const cg_topk_t *t);

#endif
