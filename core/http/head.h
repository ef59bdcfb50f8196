#ifndef CG_HTTP_HEAD_H
#define CG_HTTP_HEAD_H
/* A message head (a request's or a response's): its bytes in one bounded
 * store, its headers as offsets into it, the names the gateway reads
 * recognized once. Both the client side and the upstream side parse into
 * one; it knows nothing of connections or protocols. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/ascii.h"

/* The header names the gateway itself reads, recognized once when the name
 * is complete so that lookups compare a byte instead of the name. */
enum {
  CG_H_OTHER = 0,
  CG_H_HOST,
  CG_H_ORIGIN,
  CG_H_EXPECT,
  CG_H_VARY,
  CG_H_ACRM, /* Access-Control-Request-Method */
  CG_H_ACRH, /* Access-Control-Request-Headers */
  CG_H_ACRPN, /* Access-Control-Request-Private-Network */
  CG_H_CONTENT_LENGTH,
  CG_H_X_FORWARDED_FOR,
  CG_H_X_FORWARDED_HOST,
  CG_H_X_FORWARDED_PROTO,
  CG_H_VIA,
  /* hop-by-hop (RFC 9110 7.6.1), never forwarded: from here to the end */
  CG_H_CONNECTION,
  CG_H_KEEP_ALIVE,
  CG_H_PROXY_CONNECTION,
  CG_H_TE,
  CG_H_TRAILER,
  CG_H_TRANSFER_ENCODING,
  CG_H_UPGRADE,
  CG_H_PROXY_AUTHENTICATE,
  CG_H_PROXY_AUTHORIZATION,
  CG_H_COUNT
};
_Static_assert(CG_H_COUNT <= 32, "cg_head_t.multi is a 32-bit mask of these");

/* One header: offsets into cg_head_t.buf, which may move when it grows. */
typedef struct cg_hdr {
  uint32_t name_off, name_len, val_off, val_len;
  uint8_t id; /* CG_H_*, set once the value begins */
} cg_hdr_t;

/* A parsed head (request or response). llhttp hands over fields in pieces
 * that may straddle reads, so the head's bytes are copied here: once per
 * read, by cg_head_sync, which the parser's owner calls when llhttp_execute
 * returns and when the head is complete (no string may be read before). The
 * store is bounded by max_bytes / max_headers and keeps its memory between
 * requests of a connection. */
typedef struct cg_head {
  char *buf;
  size_t len, cap, max_bytes;
  cg_hdr_t *hdrs;
  int n, hcap, max_headers;
  uint32_t url_off, url_len;     /* request target, or the reason phrase of a response */
  uint32_t method_off, method_len;
  int in_value;       /* the last piece was a value: a field piece starts a new header */
  int value_complete; /* the value of the last header has ended */
  int overflow;       /* 1: too many bytes, 2: too many headers */
  int obs_fold;       /* a continuation line was seen (refused) */
  const char *exec_start; /* start of the buffer llhttp is parsing now */
  const char *mark, *mark_end; /* the current read's bytes to copy (mark NULL: none) */
  size_t mark_off;             /* the store offset mark maps to */
  /* Where the CG_H_* names are, noted as they are recognized: a preflight
   * looks up eight of them, and scanning every header for each cost more
   * than recognizing the names. first[id] is 1 + the index of the first
   * header with that id (0: none); multi has bit id set when several do. */
  uint16_t first[CG_H_COUNT];
  uint32_t multi;
} cg_head_t;

void cg_head_init(cg_head_t *h, size_t max_bytes, int max_headers);
void cg_head_reset(cg_head_t *h);
void cg_head_free(cg_head_t *h);
int cg_head_on_url(cg_head_t *h, const char *at, size_t len);
int cg_head_on_method(cg_head_t *h, const char *at, size_t len);
int cg_head_on_field(cg_head_t *h, const char *at, size_t len);
int cg_head_on_value(cg_head_t *h, const char *at, size_t len);
void cg_head_on_value_complete(cg_head_t *h);
/* Copies what the current read holds of the head into the store. */
void cg_head_sync(cg_head_t *h);
/* The same for a protocol that hands strings over whole (HTTP/2's decoded
 * fields): each is copied at once. 0, or -1 when the head would pass its
 * bounds (overflow says which). */
int cg_head_put_method(cg_head_t *h, const char *at, size_t len);
int cg_head_put_url(cg_head_t *h, const char *at, size_t len);
int cg_head_put_header(cg_head_t *h, const char *name, size_t name_len, const char *value, size_t value_len);
/* A string that is no header (HTTP/2's :authority), stored at *off. */
int cg_head_put_string(cg_head_t *h, const char *at, size_t len, uint32_t *off);
/* Rewrites an absolute-form http(s) target (RFC 9112 3.2.2) into origin-form
 * in place, and says where its authority now lies in buf. 0, or -1 when the
 * target is not one (another scheme, no host, userinfo, a bad port). The head
 * must be synced. */
int cg_head_origin_form(cg_head_t *h, uint32_t *auth_off, uint32_t *auth_len);
/* Makes buf[off..off+len) the Host header's value, adding the header when
 * the head has none. 0, or -1 when there is no room for it. */
int cg_head_set_host(cg_head_t *h, uint32_t off, uint32_t len);
static inline const char *cg_head_name(const cg_head_t *h, int i) { return h->buf + h->hdrs[i].name_off; }
static inline const char *cg_head_value(const cg_head_t *h, int i) { return h->buf + h->hdrs[i].val_off; }
/* Index of the first header named name (case-insensitive) at or after from, or -1. */
int cg_head_find(const cg_head_t *h, const char *name, size_t name_len, int from);
/* The same for one of the CG_H_* names. */
static inline int cg_head_find_id(const cg_head_t *h, int id, int from) {
  int i = h->first[id] - 1;
  if (i < 0 || i >= h->n) return -1; /* none, or only in a header cut off (n lowered in a copy) */
  if (from <= i) return i;
  if (!((h->multi >> id) & 1)) return -1;
  for (i = from; i < h->n; i++)
    if (h->hdrs[i].id == id) return i;
  return -1;
}
static inline int cg_head_count_id(const cg_head_t *h, int id) {
  if (cg_head_find_id(h, id, 0) < 0) return 0;
  if (!((h->multi >> id) & 1)) return 1;
  int n = 0;
  for (int i = 0; i < h->n; i++) n += h->hdrs[i].id == id;
  return n;
}
static inline int cg_name_eq(const char *a, size_t alen, const char *b, size_t blen) {
  return cg_ascii_ieq(a, alen, b, blen);
}
/* Hop-by-hop per RFC 9110 7.6.1, plus any name the Connection header lists. */
int cg_head_is_hop_by_hop(const cg_head_t *h, int i);

#endif
