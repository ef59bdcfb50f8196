#ifndef CG_UTIL_HASH_H
#define CG_UTIL_HASH_H
/* Hashing of strings a client chooses (origins): SipHash, keyed with a
 * secret drawn once per process. An unkeyed hash (FNV-1a, as the decision
 * cache had) lets a client compute thousands of origins that share one hash
 * value and so one chain of the cache: every lookup then walks all of them.
 * Without the key, colliding origins can only be guessed. */
#include <stddef.h>
#include <stdint.h>

/* SipHash-1-3 of p[0..len) under the process key, with tweak folded into the
 * key (a route number, say: the same origin hashes apart per route). */
uint64_t cg_hash(const void *p, size_t len, uint64_t tweak);

/* SipHash-2-4 under an explicit key: the variant the SipHash paper gives test
 * vectors for, so the shared implementation can be checked against them. */
uint64_t cg_siphash24(uint64_t k0, uint64_t k1, const void *p, size_t len);

#endif
