/* libFuzzer target: the TLS 1.3 records corsgate opens itself after the
 * handshake (core/tls/stream.c and record.c). A simulated client seals
 * application data, key updates, alerts, raw inner plaintexts of any type
 * and padding, and garbage, in an order the input chooses; the bytes reach
 * the server's engine in pieces of the sizes the input chooses; the server's
 * own records go back to the client to be opened; the server's contexts are
 * dropped as an idle connection's are.
 *
 * Invariants:
 * - what the server hands out is exactly a prefix of the application data the
 *   client sealed: forged or damaged bytes never come out as plaintext, and
 *   nothing is lost or reordered while the stream is whole;
 * - a stream the client sealed whole and well-formed is read whole;
 * - what the client opens of the server's records is what the server was
 *   given, after the server's KeyUpdate when one was asked for;
 * - once the server reports the stream over (close_notify or a failure),
 *   later reads report the same and hand out nothing; after a failure the
 *   server sends nothing more than its one fatal alert, and writes fail.
 *
 * Input: byte 0 picks the suite; then commands, each an opcode byte and its
 * operands. The client side is record.c too, so this checks the stream's
 * logic and parsing, not the cryptography against another implementation:
 * spec/integration/tls_spec.lua and spec/browser do that (OpenSSL, BoringSSL). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "tls/engine_internal.h"

typedef struct {
  unsigned char *p;
  size_t len, cap;
} bytes_t;

static void put(bytes_t *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    b->p = realloc(b->p, cap);
    CHECK(b->p);
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, p, n);
  b->len += n;
}

static bytes_t *reserve_into; /* where the client's records go */
static unsigned char *client_reserve(size_t n) {
  size_t at = reserve_into->len;
  if (reserve_into->len + n > reserve_into->cap) {
    size_t cap = reserve_into->cap ? reserve_into->cap : 256;
    while (cap < reserve_into->len + n) cap *= 2;
    reserve_into->p = realloc(reserve_into->p, cap);
    CHECK(reserve_into->p);
    reserve_into->cap = cap;
  }
  reserve_into->len += n;
  return reserve_into->p + at;
}

static void seal(cg_tls_rec_t *client, bytes_t *wire, uint8_t type, const uint8_t *p, size_t n) {
  reserve_into = wire;
  CHECK(cg_tls_rec_seal(client, type, p, n, client_reserve) == 0);
}

/* The server's output, opened by the client: its application data into
 * back; the KeyUpdates it answers with applied; 1 if an alert came. */
static int client_reads(cg_tls_conn_t *server, cg_tls_rec_t *client, bytes_t *back, int *updates) {
  static unsigned char opened[CG_TLS_OPEN_CAP];
  const char *out;
  size_t olen = cg_tls_output(server, &out), off = 0;
  int alert = 0;
  while (off < olen) {
    size_t rl;
    CHECK(cg_tls_rec_header((const unsigned char *)out + off, &rl) == 0 && off + rl <= olen);
    uint8_t type;
    ssize_t r = cg_tls_rec_open(client, (const unsigned char *)out + off, rl, opened, &type);
    CHECK(r >= 0);
    if (type == 22) {
      CHECK(r == 5 && opened[0] == 24 && opened[4] == 0); /* only ever update_not_requested */
      CHECK(cg_tls_rec_update(client, &client->rd) == 0);
      (*updates)++;
    } else if (type == 23) {
      CHECK(!alert); /* nothing after an alert */
      put(back, opened, (size_t)r);
    } else {
      CHECK(type == 21 && r == 2 && !alert);
      alert = 1;
    }
    off += rl;
  }
  cg_tls_output_clear(server);
  return alert;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  static const uint16_t suites[] = {0x1301, 0x1302, 0x1303};
  uint16_t suite = suites[data[0] % 3];
  size_t slen = cg_tls_rec_secret_len(suite);
  unsigned char cs[CG_TLS_MAX_SECRET], ss[CG_TLS_MAX_SECRET];
  memset(cs, 0x11, sizeof cs);
  memset(ss, 0x22, sizeof ss);
  cg_tls_conn_t *server = cg_tls_conn_new_records(suite, cs, ss, slen);
  CHECK(server);
  cg_tls_rec_t client; /* reads what the server seals, seals what it reads */
  CHECK(cg_tls_rec_start(&client, suite, ss, cs, slen, 0) == 0);

  bytes_t wire = {0}, sent = {0}, got = {0};
  int tainted = 0; /* the stream is not one a correct server reads whole */
  int empties = 0, updates = 0;
  ssize_t over = 0; /* what ended the stream: -1 close_notify, -2 failure */
  int answered = 0; /* the server's KeyUpdates */
  static unsigned char plain[CG_TLS_READ_CAP];
  size_t i = 1;
  while (i < size) {
    uint8_t op = data[i++];
    size_t n = i < size ? data[i++] : 0;
    n = n * 67 % 20000; /* up to past one record's worth */
    if (n > size - i) n = size - i;
    const uint8_t *arg = data + i;
    switch (op % 8) {
    case 0: /* the client sends application data */
      seal(&client, &wire, 23, arg, n);
      empties = n ? 0 : empties + 1;
      if (empties > 32) tainted = 1; /* a flood the server refuses */
      if (n) updates = 0;
      put(&sent, arg, n);
      i += n;
      break;
    case 1: /* bytes no key sealed, or the last byte sealed damaged */
      if (n == 0 && wire.len) wire.p[wire.len - 1] ^= 1, tainted = 1;
      else if (n) put(&wire, arg, n), tainted = 1;
      i += n;
      break;
    case 2: { /* the wire's next n * 13 bytes (or all) reach the server */
      size_t k = n * 13 < wire.len ? n * 13 : wire.len;
      cg_tls_input(server, wire.p, k);
      for (;;) {
        ssize_t r = cg_tls_read(server, plain, sizeof plain);
        if (r == 0) break;
        if (r < 0) {
          CHECK(!over || r == over); /* over stays over, the same way */
          over = r;
          break;
        }
        CHECK(!over); /* nothing is handed out after the end */
        put(&got, plain, (size_t)r);
      }
      CHECK(cg_tls_input_done(server) == 0);
      if (k) memmove(wire.p, wire.p + k, wire.len - k);
      wire.len -= k;
      break;
    }
    case 3: { /* a KeyUpdate, asking for the server's or not */
      unsigned char ku[5] = {24, 0, 0, 1, (unsigned char)(n & 1)};
      seal(&client, &wire, 22, ku, sizeof ku);
      CHECK(cg_tls_rec_update(&client, &client.wr) == 0);
      if (++updates > 32) tainted = 1;
      break;
    }
    case 4: { /* the server sends n bytes; the client opens them */
      bytes_t back = {0};
      int rc = cg_tls_write(server, arg, n);
      i += n;
      int before = answered;
      int alert = client_reads(server, &client, &back, &answered);
      if (over == -2 || rc < 0) {
        /* a failed stream sends nothing, and says so */
        CHECK(n == 0 || rc < 0);
        CHECK(back.len == 0);
      } else {
        CHECK(rc == 0 && !alert);
        CHECK(back.len == n && (n == 0 || memcmp(back.p, arg, n) == 0));
        /* at most one answer, however many asked */
        CHECK(answered <= before + 1);
      }
      free(back.p);
      break;
    }
    case 5: { /* an alert: close_notify, user_canceled, or any other */
      unsigned char a[2] = {(unsigned char)(n & 1 ? 1 : 2), (unsigned char)(n % 3 == 0 ? 0 : n % 3 == 1 ? 90 : n)};
      seal(&client, &wire, 21, a, 2);
      tainted = 1; /* nothing after it is read, or it may fail */
      break;
    }
    case 6: { /* a raw inner plaintext: content, type and padding as the input says */
      if (n == 0) break;
      if (n > CG_TLS_MAX_PLAIN + 1) n = CG_TLS_MAX_PLAIN + 1; /* one record */
      seal(&client, &wire, arg[n - 1], arg, n - 1); /* inner = arg[0 .. n-2] || arg[n-1] */
      /* what a correct server makes of it: application data when the last
       * non-zero byte is 23, else (a type, padding only) the stream may end */
      size_t j = n;
      while (j > 0 && arg[j - 1] == 0) j--;
      if (j > 0 && arg[j - 1] == 23 && j - 1 <= CG_TLS_MAX_PLAIN) {
        put(&sent, arg, j - 1);
        if (j - 1) updates = 0;
      } else {
        tainted = 1;
      }
      i += n;
      break;
    }
    case 7: /* the connection idles: its contexts go */
      cg_tls_idle(server);
      break;
    }
  }
  /* never more than was sealed, never other bytes */
  CHECK(got.len <= sent.len);
  CHECK(got.len == 0 || memcmp(got.p, sent.p, got.len) == 0);
  /* a whole stream delivered is read whole */
  if (!tainted && !over) {
    cg_tls_input(server, wire.p, wire.len);
    ssize_t r;
    while ((r = cg_tls_read(server, plain, sizeof plain)) > 0) put(&got, plain, (size_t)r);
    CHECK(r == 0);
    CHECK(cg_tls_input_done(server) == 0);
    CHECK(got.len == sent.len && (got.len == 0 || memcmp(got.p, sent.p, got.len) == 0));
  }
  cg_tls_output_clear(server);
  cg_tls_conn_free(server);
  cg_tls_rec_clear(&client);
  free(wire.p);
  free(sent.p);
  free(got.p);
  return 0;
}
