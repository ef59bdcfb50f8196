/* Message heads: the bytes llhttp hands over, copied into one bounded store. */
#include <stdlib.h>
#include <string.h>

#include "http/head.h"
#include "util/authority.h"

void cg_head_init(cg_head_t *h, size_t max_bytes, int max_headers) {
  memset(h, 0, sizeof *h);
  h->max_bytes = max_bytes;
  h->max_headers = max_headers;
}

void cg_head_reset(cg_head_t *h) {
  h->len = 0;
  h->n = 0;
  h->url_off = h->url_len = 0;
  h->method_off = h->method_len = 0;
  h->in_value = 0;
  h->value_complete = 0;
  h->overflow = 0;
  h->obs_fold = 0;
  h->mark = h->mark_end = NULL;
  h->mark_off = 0;
  memset(h->first, 0, sizeof h->first);
  h->multi = 0;
}

void cg_head_free(cg_head_t *h) {
  free(h->buf);
  free(h->hdrs);
  h->buf = NULL;
  h->hdrs = NULL;
  h->cap = 0;
  h->hcap = 0;
  cg_head_reset(h);
}

/* Makes the store hold at least need bytes. */
static int room(cg_head_t *h, size_t need) {
  if (need <= h->cap) return 0;
  if (need > h->max_bytes) {
    h->overflow = 1;
    return -1;
  }
  size_t cap = h->cap ? h->cap : 1024;
  while (cap < need) cap *= 2;
  if (cap > h->max_bytes) cap = h->max_bytes;
  char *p = realloc(h->buf, cap);
  if (!p) {
    h->overflow = 1;
    return -1;
  }
  h->buf = p;
  h->cap = cap;
  return 0;
}

/* The store mirrors the head as it came on the wire, from its first piece:
 * each piece llhttp hands over only records where its string lies, and the
 * bytes of a read are copied once, in one block, when llhttp is done with
 * the read or the head is complete (cg_head_sync). Copying each piece as it
 * came had cost more than llhttp's parsing of it.
 *
 * h->mark is where the current read's mirrored bytes begin, h->mark_off the
 * store offset it maps to. A string going on from the previous read
 * continues right where that read's bytes stopped; a new one starts one past
 * the end of the store, keeping the slot for the previous string's NUL. */
static int extend(cg_head_t *h, uint32_t *off, uint32_t *slen, const char *at, size_t len) {
  if (!h->mark) {
    /* mark_end starts here too: if this very piece overflows, sync must not
     * copy up to an end left over from an earlier read (another buffer, or
     * an earlier place in this one: a negative length) */
    h->mark = h->mark_end = at;
    h->mark_off = h->len + (*slen == 0 && h->len > 0);
  }
  size_t pos = h->mark_off + (size_t)(at - h->mark);
  if (pos + len + 1 > h->max_bytes) {
    h->overflow = 1;
    return -1;
  }
  if (*slen == 0) *off = (uint32_t)pos;
  *slen += (uint32_t)len;
  h->mark_end = at + len;
  return 0;
}

static void terminate(char *buf, uint32_t off, uint32_t len) {
  if (len) buf[off + len] = 0;
}

void cg_head_sync(cg_head_t *h) {
  if (!h->mark) return;
  size_t n = (size_t)(h->mark_end - h->mark), end = h->mark_off + n;
  if (room(h, end + 1) < 0) {
    /* no memory for a head within max_bytes: keep no string that would
     * point past what is stored (the request is refused as too large) */
    h->n = 0;
    h->method_len = h->url_len = 0;
    h->mark = NULL;
    return;
  }
  if (h->mark_off > h->len) h->buf[h->len] = 0;
  memcpy(h->buf + h->mark_off, h->mark, n);
  h->len = end;
  h->buf[end] = 0;
  h->mark = NULL;
  /* Strings end on a separator of the wire format (SP, ':', CR): a NUL in
   * its place in the copy keeps each one a C string too. */
  terminate(h->buf, h->method_off, h->method_len);
  terminate(h->buf, h->url_off, h->url_len);
  for (int i = 0; i < h->n; i++) {
    terminate(h->buf, h->hdrs[i].name_off, h->hdrs[i].name_len);
    terminate(h->buf, h->hdrs[i].val_off, h->hdrs[i].val_len);
  }
}

int cg_head_on_method(cg_head_t *h, const char *at, size_t len) {
  return extend(h, &h->method_off, &h->method_len, at, len);
}

int cg_head_on_url(cg_head_t *h, const char *at, size_t len) {
  return extend(h, &h->url_off, &h->url_len, at, len);
}

/* Makes room for one more header (n below max_headers). */
static int hdr_room(cg_head_t *h) {
  if (h->n < h->hcap) return 0;
  int cap = h->hcap ? h->hcap * 2 : 16;
  if (cap > h->max_headers) cap = h->max_headers;
  cg_hdr_t *p = realloc(h->hdrs, (size_t)cap * sizeof *p);
  if (!p) {
    h->overflow = 2;
    return -1;
  }
  h->hdrs = p;
  h->hcap = cap;
  return 0;
}

int cg_head_on_field(cg_head_t *h, const char *at, size_t len) {
  if (h->n == 0 || h->in_value) {
    if (h->n >= h->max_headers) {
      h->overflow = 2;
      return -1;
    }
    if (hdr_room(h) < 0) return -1;
    memset(&h->hdrs[h->n], 0, sizeof h->hdrs[h->n]);
    h->n++;
    h->in_value = 0;
    h->value_complete = 0;
  }
  cg_hdr_t *x = &h->hdrs[h->n - 1];
  return extend(h, &x->name_off, &x->name_len, at, len);
}

/* Inlined in both callers: the request path's begin_value among them. */
__attribute__((always_inline)) static inline uint8_t classify(const char *n, size_t len) {
  switch (len) {
  case 2:
    if (cg_ascii_token_is(n, len, "te", 2)) return CG_H_TE;
    break;
  case 7:
    if (cg_ascii_token_is(n, len, "trailer", 7)) return CG_H_TRAILER;
    if (cg_ascii_token_is(n, len, "upgrade", 7)) return CG_H_UPGRADE;
    break;
  case 10:
    if (cg_ascii_token_is(n, len, "connection", 10)) return CG_H_CONNECTION;
    if (cg_ascii_token_is(n, len, "keep-alive", 10)) return CG_H_KEEP_ALIVE;
    break;
  case 14:
    if (cg_ascii_token_is(n, len, "content-length", 14)) return CG_H_CONTENT_LENGTH;
    break;
  case 15:
    if (cg_ascii_token_is(n, len, "x-forwarded-for", 15)) return CG_H_X_FORWARDED_FOR;
    break;
  case 16:
    if (cg_ascii_token_is(n, len, "x-forwarded-host", 16)) return CG_H_X_FORWARDED_HOST;
    if (cg_ascii_token_is(n, len, "proxy-connection", 16)) return CG_H_PROXY_CONNECTION;
    break;
  case 17:
    if (cg_ascii_token_is(n, len, "x-forwarded-proto", 17)) return CG_H_X_FORWARDED_PROTO;
    if (cg_ascii_token_is(n, len, "transfer-encoding", 17)) return CG_H_TRANSFER_ENCODING;
    break;
  case 18:
    if (cg_ascii_token_is(n, len, "proxy-authenticate", 18)) return CG_H_PROXY_AUTHENTICATE;
    break;
  case 19:
    if (cg_ascii_token_is(n, len, "proxy-authorization", 19)) return CG_H_PROXY_AUTHORIZATION;
    break;
  case 3:
    if (cg_ascii_token_is(n, len, "via", 3)) return CG_H_VIA;
    break;
  case 4:
    if (cg_ascii_token_is(n, len, "host", 4)) return CG_H_HOST;
    if (cg_ascii_token_is(n, len, "vary", 4)) return CG_H_VARY;
    break;
  case 6:
    if (cg_ascii_token_is(n, len, "origin", 6)) return CG_H_ORIGIN;
    if (cg_ascii_token_is(n, len, "expect", 6)) return CG_H_EXPECT;
    break;
  case 29:
    if (cg_ascii_token_is(n, len, "access-control-request-method", 29)) return CG_H_ACRM;
    break;
  case 30:
    if (cg_ascii_token_is(n, len, "access-control-request-headers", 30)) return CG_H_ACRH;
    break;
  case 38:
    if (cg_ascii_token_is(n, len, "access-control-request-private-network", 38)) return CG_H_ACRPN;
    break;
  }
  return CG_H_OTHER;
}

/* Where a recorded string's bytes are now: in the current read, or in the
 * store (a string begun in an earlier read is synced whole first). NULL when
 * that sync found no memory (the strings are dropped, the head refused). */
static const char *bytes_of(cg_head_t *h, uint32_t off, uint32_t len) {
  if (h->mark && off >= h->mark_off) return h->mark + (off - h->mark_off);
  if (h->mark && off + len > h->len) {
    cg_head_sync(h);
    if (off + len > h->len) return NULL;
  }
  return h->buf + off;
}

/* The value begins (its bytes are extended next): the name is whole. */
static void begin_value(cg_head_t *h, cg_hdr_t *x) {
  h->in_value = 1;
  const char *name = x->name_len ? bytes_of(h, x->name_off, x->name_len) : NULL;
  x->id = name ? classify(name, x->name_len) : CG_H_OTHER;
  if (x->id != CG_H_OTHER) {
    if (!h->first[x->id]) h->first[x->id] = (uint16_t)h->n; /* x is hdrs[n - 1] */
    else h->multi |= 1u << x->id;
  }
  x->val_off = 0;
  x->val_len = 0;
}

int cg_head_on_value(cg_head_t *h, const char *at, size_t len) {
  if (h->n == 0) return -1;
  cg_hdr_t *x = &h->hdrs[h->n - 1];
  if (h->in_value && at != h->exec_start) {
    /* llhttp (8.x) passes an obs-fold continuation line as another piece of
     * the same value. A value is only legitimately split at the start of a
     * new read, so a second piece inside one buffer is a fold: a smuggling
     * vector (RFC 9112 5.2), refused. */
    h->obs_fold = 1;
    return -1;
  }
  if (!h->in_value) begin_value(h, x);
  return extend(h, &x->val_off, &x->val_len, at, len);
}

void cg_head_on_value_complete(cg_head_t *h) {
  if (h->n > 0 && !h->in_value) {
    /* value callbacks never came: an empty value, pointed at the name's NUL */
    cg_hdr_t *x = &h->hdrs[h->n - 1];
    begin_value(h, x);
    x->val_off = x->name_off + x->name_len;
  }
  h->value_complete = 1;
}

int cg_head_find(const cg_head_t *h, const char *name, size_t name_len, int from) {
  for (int i = from; i < h->n; i++)
    if (cg_name_eq(cg_head_name(h, i), h->hdrs[i].name_len, name, name_len)) return i;
  return -1;
}

static int listed_in_connection(const cg_head_t *h, const char *name, size_t name_len) {
  for (int i = cg_head_find_id(h, CG_H_CONNECTION, 0); i >= 0; i = cg_head_find_id(h, CG_H_CONNECTION, i + 1)) {
    const char *v = cg_head_value(h, i), *end = v + h->hdrs[i].val_len;
    while (v < end) {
      while (v < end && (*v == ' ' || *v == '\t' || *v == ',')) v++;
      const char *s = v;
      while (v < end && *v != ',' && *v != ' ' && *v != '\t') v++;
      if (v > s && cg_name_eq(s, (size_t)(v - s), name, name_len)) return 1;
    }
  }
  return 0;
}

int cg_head_is_hop_by_hop(const cg_head_t *h, int i) {
  if (h->hdrs[i].id >= CG_H_CONNECTION) return 1;
  return listed_in_connection(h, cg_head_name(h, i), h->hdrs[i].name_len);
}

/* RFC 9112 3.2.2: an absolute-form target ("http://host:port/path?q") names the
 * authority itself. The target's bytes are rewritten in place, where
 * "http://" frees the room: "host:port\0" then the origin-form "/path?q\0"
 * (a '/' put before a bare query or an empty path). */
int cg_head_origin_form(cg_head_t *h, uint32_t *auth_off, uint32_t *auth_len) {
  char *t = h->buf + h->url_off;
  size_t n = h->url_len, skip;
  if (n > 7 && cg_ascii_ieq(t, 7, "http://", 7)) skip = 7;
  else if (n > 8 && cg_ascii_ieq(t, 8, "https://", 8)) skip = 8;
  else return -1;
  const char *a = t + skip, *end = t + n, *rest = a;
  while (rest < end && *rest != '/' && *rest != '?') rest++;
  size_t alen = (size_t)(rest - a), rlen = (size_t)(end - rest);
  if (alen == 0 || cg_authority_parse(a, alen) <= 0) return -1; /* a host is required here */
  int slash = rlen == 0 || *rest != '/';
  memmove(t, a, alen);
  t[alen] = 0;
  char *path = t + alen + 1;
  memmove(path + slash, rest, rlen); /* rest lies at or right of its new place */
  if (slash) path[0] = '/';
  path[slash + rlen] = 0;
  *auth_off = h->url_off;
  *auth_len = (uint32_t)alen;
  h->url_off += (uint32_t)alen + 1;
  h->url_len = (uint32_t)(slash + rlen);
  return 0;
}

int cg_head_set_host(cg_head_t *h, uint32_t off, uint32_t len) {
  int i = cg_head_find_id(h, CG_H_HOST, 0);
  if (i < 0) {
    /* HTTP/1.0 may send none: one is added, its name stored after the head
     * (one past max_headers: it is the gateway's, not the client's) */
    if (h->n == UINT16_MAX) return -1;
    if (h->n == h->hcap) {
      cg_hdr_t *p = realloc(h->hdrs, (size_t)(h->hcap + 1) * sizeof *p);
      if (!p) return -1;
      h->hdrs = p;
      h->hcap++;
    }
    size_t name = h->len + 1;
    if (room(h, name + 5) < 0) return -1;
    memcpy(h->buf + name, "Host", 5);
    h->len = name + 4;
    i = h->n++;
    h->hdrs[i] = (cg_hdr_t){.name_off = (uint32_t)name, .name_len = 4, .id = CG_H_HOST};
    h->first[CG_H_HOST] = (uint16_t)(i + 1);
    h->in_value = h->value_complete = 1; /* a whole header, the last one */
  }
  h->hdrs[i].val_off = off;
  h->hdrs[i].val_len = len;
  return 0;
}

/* --- whole strings -------------------------------------------------------- */

/* Stores a string handed over whole (HTTP/2's decoded fields), NUL-ended,
 * where the next string of the store begins. */
static int put(cg_head_t *h, const char *at, size_t len, uint32_t *off) {
  size_t pos = h->len + (h->len > 0);
  if (pos + len + 1 > h->max_bytes || room(h, pos + len + 1) < 0) {
    h->overflow = 1;
    return -1;
  }
  if (len) memcpy(h->buf + pos, at, len);
  h->buf[pos + len] = 0;
  h->len = pos + len;
  *off = (uint32_t)pos;
  return 0;
}

int cg_head_put_method(cg_head_t *h, const char *at, size_t len) {
  if (put(h, at, len, &h->method_off) < 0) return -1;
  h->method_len = (uint32_t)len;
  return 0;
}

int cg_head_put_url(cg_head_t *h, const char *at, size_t len) {
  if (put(h, at, len, &h->url_off) < 0) return -1;
  h->url_len = (uint32_t)len;
  return 0;
}

int cg_head_put_string(cg_head_t *h, const char *at, size_t len, uint32_t *off) { return put(h, at, len, off); }

int cg_head_put_header(cg_head_t *h, const char *name, size_t name_len, const char *value, size_t value_len) {
  if (h->n >= h->max_headers) {
    h->overflow = 2;
    return -1;
  }
  if (hdr_room(h) < 0) return -1;
  cg_hdr_t x = {0};
  if (put(h, name, name_len, &x.name_off) < 0 || put(h, value, value_len, &x.val_off) < 0) return -1;
  x.name_len = (uint32_t)name_len;
  x.val_len = (uint32_t)value_len;
  x.id = classify(h->buf + x.name_off, name_len);
  h->hdrs[h->n++] = x;
  if (x.id != CG_H_OTHER) {
    if (!h->first[x.id]) h->first[x.id] = (uint16_t)h->n;
    else h->multi |= 1u << x.id;
  }
  h->in_value = h->value_complete = 1;
  return 0;
}
