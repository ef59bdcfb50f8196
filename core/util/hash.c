/* SipHash (Aumasson and Bernstein, 2012), written from the paper's
 * description. SipHash-1-3 for the tables: the round counts Python and Rust
 * use for their hash tables, and on a 22-byte origin about as many
 * instructions as the byte-at-a-time FNV-1a it replaces. */
#include "util/hash.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

#define SIPROUND                                                                                                       \
  do {                                                                                                                 \
    v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);                                                          \
    v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;                                                                             \
    v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;                                                                             \
    v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);                                                          \
  } while (0)

/* Words are read little-endian, as the paper defines them (x86 and arm64 are). */
static inline uint64_t load64(const unsigned char *p) {
  uint64_t w;
  memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  w = __builtin_bswap64(w);
#endif
  return w;
}

static inline __attribute__((always_inline)) uint64_t siphash(uint64_t k0, uint64_t k1, const void *data, size_t len,
                                                              int c, int d) {
  const unsigned char *p = data;
  uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
  uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
  size_t whole = len & ~(size_t)7;
  for (size_t i = 0; i < whole; i += 8) {
    uint64_t m = load64(p + i);
    v3 ^= m;
    for (int r = 0; r < c; r++) SIPROUND;
    v0 ^= m;
  }
  /* the last word: the remaining bytes, and the length's low byte on top */
  uint64_t m = (uint64_t)len << 56;
  for (size_t i = 0; i < (len & 7); i++) m |= (uint64_t)p[whole + i] << (8 * i);
  v3 ^= m;
  for (int r = 0; r < c; r++) SIPROUND;
  v0 ^= m;
  v2 ^= 0xff;
  for (int r = 0; r < d; r++) SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t cg_siphash24(uint64_t k0, uint64_t k1, const void *p, size_t len) { return siphash(k0, k1, p, len, 2, 4); }

static uint64_t key[2];
static int key_ready;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void draw_key(void) {
  if (getrandom(key, sizeof key, 0) == (ssize_t)sizeof key) {
    __atomic_store_n(&key_ready, 1, __ATOMIC_RELEASE);
    return;
  }
  /* No kernel randomness (a seccomp filter, an ancient kernel): a key that
   * differs per process and start time is still not one a client can know. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  key[0] = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)&key;
  key[1] = ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)&ts;
  key[1] = siphash(key[0], key[1], &ts, sizeof ts, 2, 4);
  __atomic_store_n(&key_ready, 1, __ATOMIC_RELEASE);
}

uint64_t cg_hash(const void *p, size_t len, uint64_t tweak) {
  if (!__atomic_load_n(&key_ready, __ATOMIC_ACQUIRE)) pthread_once(&key_once, draw_key);
  return siphash(key[0], key[1] ^ tweak, p, len, 1, 3);
}
