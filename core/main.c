/* corsgate's command line: run, check, version. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "server/server.h"
#include "util/diag.h"

#ifndef CORSGATE_VERSION
#define CORSGATE_VERSION "0.0.0"
#endif

static void usage(FILE *out) {
  fputs("usage: corsgate COMMAND [options]\n"
        "\n"
        "commands:\n"
        "  run [-c FILE]     serve FILE (without -c: a built-in demo on 127.0.0.1:8080)\n"
        "  check -c FILE     validate FILE, print its problems; exit 0 (ok) or 2\n"
        "  version           print the version\n"
        "\n"
        "options:\n"
        "  -c, --config FILE the config: a Lua file returning a table\n"
        "  -h, --help        this text\n",
        out);
}

/* Prints every problem as "FILE: path: message". Returns the error count. */
static int report(const char *file, const cg_diag_t *d) {
  for (int i = 0; i < d->count; i++)
    fprintf(stderr, "%s: %s%s\n", file, d->items[i].level == CG_DIAG_WARNING ? "warning: " : "", d->items[i].text);
  return d->errors;
}

int main(int argc, char **argv) {
  const char *cmd = argc > 1 ? argv[1] : NULL;
  const char *file = NULL;
  if (!cmd) {
    usage(stderr);
    return 2;
  }
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
    printf("corsgate %s\n", CORSGATE_VERSION);
    return 0;
  }
  if (strcmp(cmd, "run") != 0 && strcmp(cmd, "check") != 0) {
    fprintf(stderr, "corsgate: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
  }
  for (int i = 2; i < argc; i++) {
    if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
      file = argv[++i];
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "corsgate %s: unexpected argument \"%s\"\n", cmd, argv[i]);
      usage(stderr);
      return 2;
    }
  }
  int check = strcmp(cmd, "check") == 0;
  if (check && !file) {
    fprintf(stderr, "corsgate check: -c FILE is required\n");
    return 2;
  }
  cg_diag_t d;
  cg_diag_init(&d);
  cg_config_t *cfg = cg_config_load(file, &d);
  const char *name = file ? file : "(demo)";
  int errors = report(name, &d);
  cg_diag_free(&d);
  if (!cfg || errors) {
    cg_config_free(cfg);
    return 2;
  }
  if (check) {
    printf("%s: ok\n", name);
    cg_config_free(cfg);
    return 0;
  }
  int rc = cg_server_run(cfg);
  cg_config_free(cfg);
  return rc;
}
