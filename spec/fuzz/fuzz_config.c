/* libFuzzer target: the config loader. The input is a config file's text
 * (seeds are real configs, so mutations stay mostly valid Lua and reach the
 * checks of every field): loading either gives a config or errors, each
 * error naming its field; it never crashes, leaks (LeakSanitizer at exit of
 * each run), loops forever or takes unbounded memory (the loader's own
 * instruction and memory budgets).
 *
 * Invariants: a NULL config comes with at least one error; a loaded config
 * has routes with names and valid listen addresses; diagnostics are
 * non-empty single lines. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lua/host.h"
#include "util/diag.h"
#include "util/log.h"

#include "fuzz_check.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  cg_log_set_level(CG_LOG_ERROR);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cg_diag_t d;
  cg_diag_init(&d);
  cg_config_t *c = cg_config_load_buffer("fuzz", (const char *)data, size, &cg_lua_plugin_finder, &d);
  if (!c) CHECK(d.errors > 0);
  for (int i = 0; i < d.count; i++) {
    const char *t = d.items[i].text;
    CHECK(t && *t);
  }
  if (c) {
    CHECK(d.errors == 0);
    CHECK(c->listen && c->n_listeners >= 1 && c->workers >= 1);
    for (int i = 0; i < c->n_routes; i++) CHECK(c->routes[i].name && c->routes[i].prefix);
    cg_config_free(c);
  }
  cg_diag_free(&d);
  return 0;
}
