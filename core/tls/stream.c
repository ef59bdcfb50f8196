/* A TLS 1.3 connection's records once OpenSSL has gone (engine.c hands it
 * over after the handshake): records read whole out of the input however
 * the reads cut them, opened, and what they carry sorted: application data
 * to the caller, a close_notify, a KeyUpdate (RFC 8446 4.6.3), anything else
 * an error answered with a fatal alert. After an alert either way, or a
 * close_notify, the stream stays ended: nothing more is read, and after an
 * error or our close_notify nothing more is sent. Floods of records that
 * carry nothing (empty records, key updates, warnings) are cut off. */
#include <stdio.h>
#include <string.h>

#include "tls/engine_internal.h"

enum {
  ALERT_CLOSE_NOTIFY = 0,
  ALERT_UNEXPECTED_MESSAGE = 10,
  ALERT_BAD_RECORD_MAC = 20,
  ALERT_RECORD_OVERFLOW = 22,
  ALERT_ILLEGAL_PARAMETER = 47,
  ALERT_DECODE_ERROR = 50,
  ALERT_INTERNAL_ERROR = 80,
  ALERT_USER_CANCELED = 90,
};
/* Records that carry nothing, in a row, before the stream is cut off. */
enum { MAX_EMPTY = 32, MAX_KEY_UPDATES = 32, MAX_WARNINGS = 5 };
/* AES-GCM's limit per key (RFC 8446 5.5) is 2^24.5 full records: ours
 * change key well before. */
#define REKEY_AFTER ((uint64_t)1 << 24)

/* Ends the stream with a fatal alert (sealed unless the stream is already
 * over): -2, for cg_tls_read. */
static ssize_t fail(cg_tls_conn_t *t, unsigned char alert, const char *why) {
  if (!t->failed && !t->sent_close) {
    unsigned char a[2] = {2, alert};
    size_t mark = cg_tls_out_mark();
    if (cg_tls_rec_seal(&t->rec, 21, a, sizeof a, cg_tls_out_reserve) < 0) cg_tls_out_rollback(mark);
  }
  t->failed = 1;
  snprintf(t->err, sizeof t->err, "%s", why);
  return -2;
}

/* The next whole record: out of left first (a record an earlier read cut),
 * then straight out of this read. NULL when more bytes are needed, or with
 * *alert set when the header is not a record's. */
static const unsigned char *next_record(cg_tls_conn_t *t, size_t *len, int *alert) {
  size_t rl;
  *alert = 0;
  if (t->left_len) {
    if (t->left_len < 5) {
      size_t take = 5 - t->left_len < t->in_len ? 5 - t->left_len : t->in_len;
      if (cg_tls_left_add(t, t->in, take) < 0) return *alert = ALERT_INTERNAL_ERROR, NULL;
      t->in += take;
      t->in_len -= take;
      if (t->left_len < 5) return NULL;
    }
    const unsigned char *h = (const unsigned char *)t->left + t->left_off;
    if ((*alert = cg_tls_rec_header(h, &rl)) != 0) return NULL;
    if (t->left_len < rl) {
      size_t take = rl - t->left_len < t->in_len ? rl - t->left_len : t->in_len;
      if (cg_tls_left_add(t, t->in, take) < 0) return *alert = ALERT_INTERNAL_ERROR, NULL;
      t->in += take;
      t->in_len -= take;
      if (t->left_len < rl) return NULL;
    }
    const unsigned char *p = (const unsigned char *)t->left + t->left_off;
    t->left_off += rl; /* handed out: read before the next call */
    t->left_len -= rl;
    if (t->left_len == 0) t->left_off = 0;
    *len = rl;
    return p;
  }
  if (t->in_len < 5) return NULL;
  if ((*alert = cg_tls_rec_header((const unsigned char *)t->in, &rl)) != 0) return NULL;
  if (t->in_len < rl) return NULL;
  const unsigned char *p = (const unsigned char *)t->in;
  t->in += rl;
  t->in_len -= rl;
  *len = rl;
  return p;
}

/* A KeyUpdate: the only message a client may send after the handshake,
 * alone in its record (RFC 8446 5.1: it ends one). 0, or -2 (failed). */
static int key_update(cg_tls_conn_t *t, const unsigned char *m, size_t n) {
  if (n != 5 || m[0] != 24 || m[1] != 0 || m[2] != 0 || m[3] != 1)
    return (int)fail(t, ALERT_UNEXPECTED_MESSAGE, "a handshake message other than one KeyUpdate after the handshake");
  if (m[4] > 1) return (int)fail(t, ALERT_ILLEGAL_PARAMETER, "a KeyUpdate with a request other than 0 or 1");
  if (++t->ku_run > MAX_KEY_UPDATES) return (int)fail(t, ALERT_UNEXPECTED_MESSAGE, "a flood of key updates");
  if (cg_tls_rec_update(&t->rec, &t->rec.rd) < 0) return (int)fail(t, ALERT_INTERNAL_ERROR, "cannot update keys");
  if (m[4] == 1) t->ku_owed = 1; /* one answer, however many asked, before our next record */
  return 0;
}

ssize_t cg_tls_stream_read(cg_tls_conn_t *t, unsigned char *buf, size_t cap) {
  if (t->failed) return -2;
  if (t->peer_closed) return -1;
  if (cap < CG_TLS_OPEN_CAP) return fail(t, ALERT_INTERNAL_ERROR, "the read buffer is too small for a record");
  for (;;) {
    size_t len;
    int alert;
    const unsigned char *rec = next_record(t, &len, &alert);
    if (!rec) return alert ? fail(t, (unsigned char)alert, "a record header out of bounds") : 0;
    uint8_t type;
    ssize_t n = cg_tls_rec_open(&t->rec, rec, len, buf, &type);
    if (n == CG_TLS_OPEN_BAD_MAC) return fail(t, ALERT_BAD_RECORD_MAC, "a record failed to decrypt");
    if (n == CG_TLS_OPEN_OVERFLOW) return fail(t, ALERT_RECORD_OVERFLOW, "a record's content over 2^14 bytes");
    if (n < 0) return fail(t, ALERT_UNEXPECTED_MESSAGE, "a record without a content type");
    switch (type) {
    case 23: /* application_data */
      if (n > 0) {
        t->rec.empty_run = t->ku_run = t->warn_run = 0;
        return n;
      }
      if (++t->rec.empty_run > MAX_EMPTY) return fail(t, ALERT_UNEXPECTED_MESSAGE, "a flood of empty records");
      continue;
    case 21: /* alert */
      if (n != 2) return fail(t, ALERT_DECODE_ERROR, "an alert record of the wrong size");
      if (buf[1] == ALERT_CLOSE_NOTIFY) {
        t->peer_closed = 1;
        return -1;
      }
      if (buf[0] == 1 && buf[1] == ALERT_USER_CANCELED) {
        if (++t->warn_run > MAX_WARNINGS) return fail(t, ALERT_UNEXPECTED_MESSAGE, "a flood of warning alerts");
        continue;
      }
      /* the client ended it: no alert goes back */
      t->failed = 1;
      snprintf(t->err, sizeof t->err, "the client sent alert %d", buf[1]);
      return -2;
    case 22: /* handshake */
      if (key_update(t, buf, (size_t)n) < 0) return -2;
      continue;
    default:
      return fail(t, ALERT_UNEXPECTED_MESSAGE, "a record of an unexpected type after the handshake");
    }
  }
}

/* Our KeyUpdate (update_not_requested), then the new write key: owed to a
 * client that asked, or due before a key wears out. 0 or -1. */
static int send_key_update(cg_tls_conn_t *t) {
  static const unsigned char ku[5] = {24, 0, 0, 1, 0};
  if (cg_tls_rec_seal(&t->rec, 22, ku, sizeof ku, cg_tls_out_reserve) < 0 ||
      cg_tls_rec_update(&t->rec, &t->rec.wr) < 0)
    return -1;
  t->ku_owed = 0;
  return 0;
}

int cg_tls_stream_write(cg_tls_conn_t *t, const unsigned char *p, size_t n) {
  if (t->failed || t->sent_close) {
    snprintf(t->err, sizeof t->err, "the TLS stream has ended");
    return -1;
  }
  size_t mark = cg_tls_out_mark();
  if (((t->ku_owed || t->rec.wr.seq >= REKEY_AFTER) && send_key_update(t) < 0) ||
      cg_tls_rec_seal(&t->rec, 23, p, n, cg_tls_out_reserve) < 0) {
    /* nothing of it leaves: not the plaintext copied in, not a header */
    cg_tls_out_rollback(mark);
    t->failed = 1;
    snprintf(t->err, sizeof t->err, "cannot seal a record");
    return -1;
  }
  return 0;
}

void cg_tls_stream_close_notify(cg_tls_conn_t *t) {
  if (t->failed || t->sent_close) return;
  static const unsigned char cn[2] = {1, ALERT_CLOSE_NOTIFY};
  size_t mark = cg_tls_out_mark();
  if (cg_tls_rec_seal(&t->rec, 21, cn, sizeof cn, cg_tls_out_reserve) < 0) cg_tls_out_rollback(mark);
  t->sent_close = 1;
}
