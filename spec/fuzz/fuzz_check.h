#ifndef CG_FUZZ_CHECK_H
#define CG_FUZZ_CHECK_H
/* An invariant of a fuzz target: a violation names itself and aborts, which
 * libFuzzer reports as a crash with the input that caused it. */
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                         \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__); \
      abort();                                                              \
    }                                                                       \
  } while (0)

#endif
