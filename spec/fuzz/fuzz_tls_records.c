/* libFuzzer target: the TLS 1.3 records corsgate opens itself after the
 * handshake (core/tls/record.c, and the engine's reading of records that
 * reads cut anywhere). A simulated client seals application data, key
 * updates, alerts and garbage in an order the input chooses; the bytes reach
 * the server's engine in pieces of the sizes the input chooses, and the
 * server's own records go back to the client to be opened.
 *
 * Invariants: what the server hands out is exactly the prefix of what the
 * client sealed (forged or damaged bytes never come out as plaintext, and
 * nothing sealed is lost or reordered while the stream is whole); what the
 * client opens of the server's records is what the server was given; a
 * connection that reported a broken stream or a close_notify stays over.
 * (A flood of empty records is refused like a forged one.)
 *
 * Input: byte 0 picks the suite; then commands, each an opcode byte and its
 * operands. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "tls/record.h"
#include "tls/tls_internal.h"

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
  int forged = 0, over = 0, empties = 0;
  static unsigned char plain[CG_TLS_READ_CAP], opened[CG_TLS_OPEN_CAP];
  size_t i = 1;
  while (i < size && !over) {
    uint8_t op = data[i++];
    size_t n = i < size ? data[i++] : 0;
    n = n * 67 % 20000; /* up to past one record's worth */
    if (n > size - i) n = size - i;
    const uint8_t *arg = data + i;
    switch (op % 6) {
    case 0: /* the client sends application data */
      reserve_into = &wire;
      CHECK(cg_tls_rec_seal(&client, 23, arg, n, client_reserve) == 0);
      /* more than 32 empty records in a row is a flood the server refuses */
      empties = n ? 0 : empties + 1;
      if (empties > 32) forged = 1;
      put(&sent, arg, n);
      i += n;
      break;
    case 1: /* bytes no key sealed, or a sealed record damaged */
      if (n == 0 && wire.len) wire.p[wire.len - 1] ^= 1, forged = 1;
      else if (n) put(&wire, arg, n), forged = 1;
      i += n;
      break;
    case 2: { /* the wire's next n * 13 bytes (or all) reach the server */
      size_t k = n * 13 < wire.len ? n * 13 : wire.len;
      cg_tls_input(server, wire.p, k);
      for (;;) {
        ssize_t r = cg_tls_read(server, plain, sizeof plain);
        if (r == 0) break;
        if (r < 0) {
          over = 1;
          break;
        }
        put(&got, plain, (size_t)r);
      }
      if (!over) CHECK(cg_tls_input_done(server) == 0);
      if (k) memmove(wire.p, wire.p + k, wire.len - k);
      wire.len -= k;
      break;
    }
    case 3: { /* a KeyUpdate, asking for the server's or not */
      unsigned char ku[5] = {24, 0, 0, 1, (unsigned char)(n & 1)};
      reserve_into = &wire;
      CHECK(cg_tls_rec_seal(&client, 22, ku, sizeof ku, client_reserve) == 0);
      CHECK(cg_tls_rec_update(&client, &client.wr) == 0);
      break;
    }
    case 4: { /* the server sends n bytes; the client opens them */
      CHECK(cg_tls_write(server, arg, n) == 0);
      i += n;
      const char *out;
      size_t olen = cg_tls_output(server, &out), off = 0;
      bytes_t back = {0};
      while (off < olen) {
        size_t rl = cg_tls_rec_length((const unsigned char *)out + off);
        CHECK(rl && off + rl <= olen);
        uint8_t type;
        ssize_t r = cg_tls_rec_open(&client, (const unsigned char *)out + off, rl, opened, &type);
        CHECK(r >= 0);
        if (type == 22) { /* the server's KeyUpdate, answering one asked for */
          CHECK(r == 5 && opened[0] == 24 && opened[4] == 0);
          CHECK(cg_tls_rec_update(&client, &client.rd) == 0);
        } else if (type == 23) {
          put(&back, opened, (size_t)r);
        } else {
          CHECK(type == 21); /* an alert before a failure the next read reports */
        }
        off += rl;
      }
      cg_tls_output_clear(server);
      CHECK(back.len == n && (n == 0 || memcmp(back.p, arg, n) == 0));
      free(back.p);
      break;
    }
    case 5: { /* close_notify */
      static const unsigned char cn[2] = {1, 0};
      reserve_into = &wire;
      CHECK(cg_tls_rec_seal(&client, 21, cn, 2, client_reserve) == 0);
      forged = 1; /* nothing after it is read */
      break;
    }
    }
  }
  cg_tls_output_clear(server);
  /* never more than was sealed, never other bytes */
  CHECK(got.len <= sent.len);
  CHECK(got.len == 0 || memcmp(got.p, sent.p, got.len) == 0);
  /* a whole stream delivered is read whole */
  if (!forged && !over) {
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
