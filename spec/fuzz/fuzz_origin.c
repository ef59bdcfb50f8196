/* libFuzzer target: the Origin parser. Whatever it accepts must normalize to a
 * fixed point with no byte a header line could be split on. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cors/cors.h"
#include "cors/cors_internal.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* A heap copy of exactly size bytes, so ASan sees any read past the end. */
  char *in = malloc(size ? size : 1);
  if (!in) return 0;
  if (size) memcpy(in, data, size);
  char norm[CG_CORS_ORIGIN_MAX + 1];
  cg_origin_t o;
  int rc = cg_cors_origin_parse(in, size, &o, norm, sizeof norm);

  /* The fast path for canonical origins answers exactly as the general parser. */
  char gnorm[CG_CORS_ORIGIN_MAX + 1];
  cg_origin_t g;
  CHECK(cg_cors_origin_parse_general(in, size, &g, gnorm, sizeof gnorm) == rc);
  if (rc == 0) {
    CHECK(g.is_null == o.is_null && g.noncanonical == o.noncanonical && g.loopback == o.loopback);
    CHECK(g.is_ip == o.is_ip && g.port == o.port && g.norm_len == o.norm_len);
    CHECK(memcmp(g.norm, o.norm, o.norm_len) == 0);
    if (!o.is_null) {
      CHECK(g.scheme_len == o.scheme_len && g.host_len == o.host_len);
      CHECK(g.scheme - g.norm == o.scheme - o.norm && g.host - g.norm == o.host - o.norm);
    }
  }
  if (rc != 0) {
    CHECK(rc < 0 && rc >= CG_ORIGIN_E_FRAGMENT);
    free(in);
    return 0;
  }
  CHECK(o.norm == norm && o.norm_len > 0 && o.norm_len <= size);
  for (size_t i = 0; i < o.norm_len; i++) {
    unsigned char c = (unsigned char)o.norm[i];
    CHECK(c > 0x20 && c < 0x7f); /* no CR, LF, space, control or non-ASCII */
    CHECK(!(c >= 'A' && c <= 'Z'));
  }
  if (!o.noncanonical) CHECK(o.norm_len == size && memcmp(o.norm, in, size) == 0);
  if (o.is_null) {
    CHECK(o.norm_len == 4 && memcmp(o.norm, "null", 4) == 0);
  } else {
    CHECK(o.scheme == norm && o.host > norm && o.host + o.host_len <= norm + o.norm_len);
    CHECK(o.port == -1 || (o.port >= 0 && o.port <= 65535));
  }

  /* The normalized form is a fixed point. */
  char again[CG_CORS_ORIGIN_MAX + 1];
  cg_origin_t o2;
  CHECK(cg_cors_origin_parse(o.norm, o.norm_len, &o2, again, sizeof again) == 0);
  CHECK(o2.norm_len == o.norm_len && memcmp(o2.norm, o.norm, o.norm_len) == 0);
  CHECK(!o2.noncanonical && o2.is_null == o.is_null && o2.port == o.port && o2.loopback == o.loopback);

  /* A buffer one byte short is reported, never overrun. */
  char *tight = malloc(o.norm_len);
  if (tight) {
    CHECK(cg_cors_origin_parse(in, size, &o2, tight, o.norm_len - 1) == CG_ORIGIN_E_BUFFER);
    CHECK(cg_cors_origin_parse(in, size, &o2, tight, o.norm_len) == 0);
    free(tight);
  }
  free(in);
  return 0;
}
