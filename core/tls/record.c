/* TLS 1.3 records after the handshake (see record.h): RFC 8446 sections
 * 5.2 (AEAD protection, padding, the inner content type), 5.3 (the per-record
 * nonce: the static IV XOR the sequence number), 7.1 (HKDF-Expand-Label)
 * and 7.2 (the next secret of a KeyUpdate). The AEAD itself is OpenSSL's. */
#include "tls/record.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <pthread.h>
#include <string.h>

static const struct {
  uint16_t id;
  const char *cipher;
  int sha384;
  size_t key_len;
} suites[] = {
    {0x1301, "AES-128-GCM", 0, 16},
    {0x1302, "AES-256-GCM", 1, 32},
    {0x1303, "ChaCha20-Poly1305", 0, 32},
};
enum { N_SUITES = sizeof suites / sizeof suites[0], TAG = 16 };

static EVP_CIPHER *ciphers[N_SUITES];
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch(void) {
  for (int i = 0; i < N_SUITES; i++) ciphers[i] = EVP_CIPHER_fetch(NULL, suites[i].cipher, NULL);
}

static int suite_of(uint16_t id) {
  for (int i = 0; i < N_SUITES; i++)
    if (suites[i].id == id) return i;
  return -1;
}

static const EVP_MD *md_of(int s) { return suites[s].sha384 ? EVP_sha384() : EVP_sha256(); }
static size_t hash_len(int s) { return suites[s].sha384 ? 48 : 32; }

size_t cg_tls_rec_secret_len(uint16_t suite_id) {
  int s = suite_of(suite_id);
  return s < 0 ? 0 : hash_len(s);
}

/* HKDF-Expand-Label(secret, label, "", len) for len up to the hash's length:
 * one HMAC block, T(1) = HMAC(secret, HkdfLabel || 0x01). */
static int expand_label(int s, const unsigned char *secret, const char *label, unsigned char *out, size_t len) {
  unsigned char info[64], t[EVP_MAX_MD_SIZE];
  size_t ll = strlen(label), n = 0;
  unsigned int tl = 0;
  info[n++] = (unsigned char)(len >> 8);
  info[n++] = (unsigned char)len;
  info[n++] = (unsigned char)(6 + ll);
  memcpy(info + n, "tls13 ", 6);
  n += 6;
  memcpy(info + n, label, ll);
  n += ll;
  info[n++] = 0; /* no context */
  info[n++] = 1; /* T(1) */
  int ok = HMAC(md_of(s), secret, (int)hash_len(s), info, n, t, &tl) != NULL && tl >= len;
  if (ok) memcpy(out, t, len);
  OPENSSL_cleanse(t, sizeof t);
  return ok ? 0 : -1;
}

/* The direction's key and IV from its secret; a context it has takes the new key. */
static int derive(int s, cg_tls_keys_t *k) {
  if (expand_label(s, k->secret, "key", k->key, suites[s].key_len) < 0 ||
      expand_label(s, k->secret, "iv", k->iv, sizeof k->iv) < 0)
    return -1;
  if (k->ctx && !EVP_CipherInit_ex2(k->ctx, NULL, k->key, NULL, -1, NULL)) return -1;
  return 0;
}

/* The direction's AEAD context, made when first needed after an idle spell. */
static EVP_CIPHER_CTX *ctx_of(int s, cg_tls_keys_t *k, int enc) {
  if (k->ctx) return k->ctx;
  if (!ciphers[s]) return NULL;
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  if (!c || !EVP_CipherInit_ex2(c, ciphers[s], k->key, NULL, enc, NULL)) {
    EVP_CIPHER_CTX_free(c);
    return NULL;
  }
  k->ctx = c;
  return c;
}

/* The AEAD tag, read after sealing or set before opening: as a parameter
 * (EVP_CIPHER_CTX_ctrl turns itself into one, at a cost per record). */
static int tag(EVP_CIPHER_CTX *c, unsigned char *t, int get) {
  OSSL_PARAM p[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, t, TAG), OSSL_PARAM_END};
  return get ? EVP_CIPHER_CTX_get_params(c, p) : EVP_CIPHER_CTX_set_params(c, p);
}

/* This record's nonce: the IV with the sequence number XORed into its end.
 * -1 when the sequence is spent (2^64 records: the connection ends). */
static int nonce(cg_tls_keys_t *k, unsigned char out[12]) {
  if (k->seq == UINT64_MAX) return -1;
  memcpy(out, k->iv, 12);
  for (int i = 0; i < 8; i++) out[4 + i] ^= (unsigned char)(k->seq >> (56 - 8 * i));
  return 0;
}

int cg_tls_rec_start(cg_tls_rec_t *r, uint16_t suite_id, const unsigned char *client_secret,
                     const unsigned char *server_secret, size_t secret_len, uint64_t wr_seq) {
  pthread_once(&fetch_once, fetch);
  memset(r, 0, sizeof *r);
  int s = suite_of(suite_id);
  if (s < 0 || !ciphers[s] || secret_len != hash_len(s)) return -1;
  r->suite = s;
  memcpy(r->rd.secret, client_secret, secret_len);
  memcpy(r->wr.secret, server_secret, secret_len);
  r->wr.seq = wr_seq;
  if (derive(s, &r->rd) < 0 || derive(s, &r->wr) < 0) {
    cg_tls_rec_clear(r);
    return -1;
  }
  return 0;
}

int cg_tls_rec_seal(cg_tls_rec_t *r, uint8_t type, const unsigned char *p, size_t n,
                    unsigned char *(*reserve)(size_t)) {
  EVP_CIPHER_CTX *c = ctx_of(r->suite, &r->wr, 1);
  if (!c) return -1;
  do {
    size_t chunk = n > CG_TLS_MAX_PLAIN ? CG_TLS_MAX_PLAIN : n, clen = chunk + 1 + TAG;
    unsigned char iv[12], *o = reserve(5 + clen);
    int l;
    if (!o || nonce(&r->wr, iv) < 0) return -1;
    o[0] = 23; /* application_data outside, the real type inside */
    o[1] = 3;
    o[2] = 3;
    o[3] = (unsigned char)(clen >> 8);
    o[4] = (unsigned char)clen;
    /* the plaintext and its type in place, then encrypted there in one pass */
    if (chunk) memcpy(o + 5, p, chunk);
    o[5 + chunk] = type;
    if (!EVP_CipherInit_ex2(c, NULL, NULL, iv, 1, NULL) || !EVP_CipherUpdate(c, NULL, &l, o, 5) ||
        !EVP_CipherUpdate(c, o + 5, &l, o + 5, (int)chunk + 1) || !EVP_CipherFinal_ex(c, o + 5 + chunk + 1, &l) ||
        !tag(c, o + 5 + chunk + 1, 1))
      return -1;
    r->wr.seq++;
    p += chunk;
    n -= chunk;
  } while (n > 0);
  return 0;
}

int cg_tls_rec_header(const unsigned char *hdr, size_t *len) {
  /* after the handshake every record is application_data outside; the
   * version bytes are legacy (only the major one is checked) */
  if (hdr[0] != 23 || hdr[1] != 3) return 10;
  size_t l = (size_t)hdr[3] << 8 | hdr[4];
  if (l > CG_TLS_OPEN_CAP) return 22;
  if (l < 1 + TAG) return 50;
  *len = 5 + l;
  return 0;
}

/* Opens rec (whole, header included) with k at its sequence number. */
static ssize_t open_with(int s, cg_tls_keys_t *k, const unsigned char *rec, size_t len, unsigned char *out,
                         uint8_t *type) {
  EVP_CIPHER_CTX *c = ctx_of(s, k, 0);
  if (!c || len < 5 + 1 + TAG || len - 5 - TAG > CG_TLS_OPEN_CAP) return CG_TLS_OPEN_BAD_MAC;
  size_t plen = len - 5 - TAG;
  unsigned char iv[12];
  int l, l2;
  if (nonce(k, iv) < 0 || !EVP_CipherInit_ex2(c, NULL, NULL, iv, 0, NULL) ||
      !EVP_CipherUpdate(c, NULL, &l, rec, 5) || !EVP_CipherUpdate(c, out, &l, rec + 5, (int)plen) ||
      !tag(c, (unsigned char *)(rec + 5 + plen), 0) || EVP_CipherFinal_ex(c, out + l, &l2) <= 0)
    return CG_TLS_OPEN_BAD_MAC;
  k->seq++;
  /* the content type is the last non-zero byte; zeros after it are padding */
  size_t i = plen;
  while (i > 0 && out[i - 1] == 0) i--;
  if (i == 0) return CG_TLS_OPEN_NO_TYPE;
  *type = out[--i];
  if (i > CG_TLS_MAX_PLAIN) return CG_TLS_OPEN_OVERFLOW;
  return (ssize_t)i;
}

ssize_t cg_tls_rec_open(cg_tls_rec_t *r, const unsigned char *rec, size_t len, unsigned char *out, uint8_t *type) {
  return open_with(r->suite, &r->rd, rec, len, out, type);
}

int cg_tls_rec_take_tickets(cg_tls_rec_t *r, const unsigned char *p, size_t n) {
  /* our own records, opened with a copy of the write keys (decrypting) */
  cg_tls_keys_t k = r->wr;
  k.ctx = NULL;
  static __thread unsigned char out[CG_TLS_OPEN_CAP];
  int rc = 0;
  size_t off = 0;
  while (off < n && rc == 0) {
    size_t rl;
    uint8_t type;
    if (n - off < 5 || cg_tls_rec_header(p + off, &rl) != 0 || rl > n - off) {
      rc = -1;
      break;
    }
    ssize_t m = open_with(r->suite, &k, p + off, rl, out, &type);
    /* one NewSessionTicket (type 4), whole: its 24-bit length says the rest */
    if (m < 4 || type != 22 || out[0] != 4 || ((size_t)out[1] << 16 | (size_t)out[2] << 8 | out[3]) + 4 != (size_t)m)
      rc = -1;
    off += rl;
  }
  if (rc == 0) r->wr.seq = k.seq;
  EVP_CIPHER_CTX_free(k.ctx);
  OPENSSL_cleanse(&k, sizeof k);
  OPENSSL_cleanse(out, sizeof out);
  return rc;
}

int cg_tls_rec_update(cg_tls_rec_t *r, cg_tls_keys_t *k) {
  unsigned char next[CG_TLS_MAX_SECRET];
  size_t hl = hash_len(r->suite);
  if (expand_label(r->suite, k->secret, "traffic upd", next, hl) < 0) return -1;
  memcpy(k->secret, next, hl);
  OPENSSL_cleanse(next, sizeof next);
  k->seq = 0;
  return derive(r->suite, k);
}

void cg_tls_rec_idle(cg_tls_rec_t *r) {
  EVP_CIPHER_CTX_free(r->rd.ctx);
  EVP_CIPHER_CTX_free(r->wr.ctx);
  r->rd.ctx = r->wr.ctx = NULL;
}

void cg_tls_rec_clear(cg_tls_rec_t *r) {
  cg_tls_rec_idle(r);
  OPENSSL_cleanse(r, sizeof *r);
}
