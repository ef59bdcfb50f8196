/* Session tickets: a client that was here before resumes with a ticket the
 * server encrypted for itself, instead of a full handshake. The keys are
 * the process's, not a context's: every worker shares its listener's
 * contexts, and a reload makes new contexts that must still read the old
 * tickets. A key is made when the first ticket is due, issues tickets for an
 * hour, and is accepted until two hours after it was made; none outlives the
 * process, and a key that ages out is wiped. */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "tls/tls_internal.h"

enum { ROTATE_SECONDS = 3600 };

typedef struct key {
  unsigned char name[16], aes[32], hmac[32];
  time_t born; /* 0: none */
} key_t_;

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t mu;
static key_t_ current, previous;

static void init(void) { uv_mutex_init(&mu); }

static int fresh(key_t_ *k, time_t now) {
  if (RAND_bytes(k->name, sizeof k->name) != 1 || RAND_bytes(k->aes, sizeof k->aes) != 1 ||
      RAND_bytes(k->hmac, sizeof k->hmac) != 1)
    return -1;
  k->born = now;
  return 0;
}

/* The key to issue with now (rotating when it is due), under mu. */
static const key_t_ *issuing(time_t now) {
  if (!current.born || now - current.born >= ROTATE_SECONDS) {
    key_t_ next;
    if (fresh(&next, now) == 0) {
      OPENSSL_cleanse(&previous, sizeof previous);
      previous = current;
      current = next;
    }
    OPENSSL_cleanse(&next, sizeof next);
  }
  return current.born ? &current : NULL;
}

static int use(const key_t_ *k, const unsigned char iv[16], EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc) {
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof k->hmac),
                         OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                         OSSL_PARAM_construct_end()};
  if (!EVP_MAC_CTX_set_params(hctx, params)) return -1;
  int ok = enc ? EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv)
               : EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv);
  return ok ? 0 : -1;
}

int cg_tls_ticket_cb(SSL *s, unsigned char key_name[16], unsigned char iv[16], EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc) {
  (void)s;
  uv_once(&once, init);
  time_t now = time(NULL);
  uv_mutex_lock(&mu);
  int rc;
  if (enc) {
    const key_t_ *k = issuing(now);
    if (!k || RAND_bytes(iv, 16) != 1 || use(k, iv, cctx, hctx, 1) < 0) {
      rc = 0; /* no ticket this time; the handshake goes on */
    } else {
      memcpy(key_name, k->name, 16);
      rc = 1;
    }
  } else {
    issuing(now); /* rotates if due: an old key ages out even without new tickets */
    const key_t_ *k = current.born && memcmp(key_name, current.name, 16) == 0 ? &current
                      : previous.born && memcmp(key_name, previous.name, 16) == 0 && now - previous.born < 2 * ROTATE_SECONDS
                          ? &previous
                          : NULL;
    /* 2: accepted, and the client gets a ticket under the current key */
    rc = !k ? 0 : use(k, iv, cctx, hctx, 0) < 0 ? -1 : k == &current ? 1 : 2;
  }
  uv_mutex_unlock(&mu);
  return rc;
}
