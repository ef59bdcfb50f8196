/* A set of byte strings with a small value each: exact origins of a policy,
 * rules of the public suffix list. Built once at load, read per request, so it
 * favours lookup: open addressing, load factor kept under one half. */
#include "cors/cors_internal.h"
#include "util/hash.h"

#include <stdlib.h>
#include <string.h>

/* The set is built from the config, but looked up with what clients send:
 * keyed, so that no lookup's probe sequence can be aimed at a long cluster. */
static uint32_t hash_bytes(const char *s, size_t len) { return (uint32_t)cg_hash(s, len, 0); }

void cg_strset_init(cg_strset_t *s) { memset(s, 0, sizeof *s); }

void cg_strset_free(cg_strset_t *s) {
  free(s->slots);
  free(s->entries);
  free(s->pool);
  memset(s, 0, sizeof *s);
}

static uint32_t *find_slot(const cg_strset_t *s, const char *key, size_t len) {
  uint32_t mask = s->nslots - 1;
  for (uint32_t i = hash_bytes(key, len) & mask;; i = (i + 1) & mask) {
    uint32_t e = s->slots[i];
    if (e == 0) return &s->slots[i];
    const struct cg_strset_entry *en = &s->entries[e - 1];
    if (en->len == len && memcmp(s->pool + en->off, key, len) == 0) return &s->slots[i];
  }
}

static int grow_slots(cg_strset_t *s) {
  uint32_t n = s->nslots ? s->nslots * 2 : 16;
  uint32_t *slots = calloc(n, sizeof *slots);
  if (!slots) return CG_CORS_E_NOMEM;
  free(s->slots);
  s->slots = slots;
  s->nslots = n;
  for (uint32_t i = 0; i < s->count; i++) {
    const struct cg_strset_entry *en = &s->entries[i];
    *find_slot(s, s->pool + en->off, en->len) = i + 1;
  }
  return 0;
}

int cg_strset_put(cg_strset_t *s, const char *key, size_t len, unsigned val) {
  if ((s->count + 1) * 2 > s->nslots && grow_slots(s) < 0) return CG_CORS_E_NOMEM;
  uint32_t *slot = find_slot(s, key, len);
  if (*slot) {
    s->entries[*slot - 1].val |= val;
    return 0;
  }
  if (s->count == s->cap) {
    uint32_t cap = s->cap ? s->cap * 2 : 16;
    void *e = realloc(s->entries, cap * sizeof *s->entries);
    if (!e) return CG_CORS_E_NOMEM;
    s->entries = e;
    s->cap = cap;
  }
  if (s->pool_len + len > s->pool_cap) {
    size_t cap = s->pool_cap ? s->pool_cap * 2 : 256;
    while (cap < s->pool_len + len) cap *= 2;
    char *pool = realloc(s->pool, cap);
    if (!pool) return CG_CORS_E_NOMEM;
    s->pool = pool;
    s->pool_cap = cap;
  }
  memcpy(s->pool + s->pool_len, key, len);
  s->entries[s->count] = (struct cg_strset_entry){(uint32_t)s->pool_len, (uint32_t)len, val};
  s->pool_len += len;
  *slot = ++s->count;
  return 0;
}

int cg_strset_get(const cg_strset_t *s, const char *key, size_t len, unsigned *val) {
  if (s->count == 0) return 0;
  uint32_t e = *find_slot(s, key, len);
  if (!e) return 0;
  if (val) *val = s->entries[e - 1].val;
  return 1;
}
