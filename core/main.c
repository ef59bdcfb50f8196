/* corsgate's command line: run, check, explain, version. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <llhttp.h>
#include <uv.h>

#include "config/config.h"
#include "lua/host.h"
#include "server/notify.h"
#include "server/server.h"
#include "util/diag.h"

/* build_info.c, written at every build */
extern const char cg_build_version[], cg_build_commit[];

/* The version, the commit, and the libraries as this process runs them (libuv
 * and LuaJIT are shared libraries: their own answer; llhttp is compiled in,
 * hiredis says only what it was built as). */
static void print_version(void) {
  char luajit[64];
  cg_lua_runtime_version(luajit, sizeof luajit);
  const char *plugins = cg_lua_shipped_plugins_dir();
  printf("corsgate %s (commit %s)\n", cg_build_version, cg_build_commit);
  printf("libuv %s, %s, llhttp %d.%d.%d, hiredis %d.%d.%d\n", uv_version_string(), luajit, LLHTTP_VERSION_MAJOR,
         LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH, HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
  printf("shipped plugins: %s\n", plugins ? plugins : "(none found)");
}

static void usage(FILE *out) {
  fputs("usage: corsgate COMMAND [options]\n"
        "\n"
        "commands:\n"
        "  run [-c FILE]     serve FILE (without -c: a built-in demo on 127.0.0.1:8080)\n"
        "  check -c FILE     validate FILE, print its problems; exit 0 (ok) or 2\n"
        "  explain -c FILE --origin O [--method M] [--header H]... [--path P] [--host H] [--json]\n"
        "                    why a page on O can (exit 0) or cannot (exit 1) read the answer:\n"
        "                    route, origin, rule or plugin, preflight and headers, step by step\n"
        "  reload --pid PID [--dir DIR] [--timeout S]\n"
        "                    reload the running gateway PID (SIGHUP) and wait for the outcome:\n"
        "                    exit 0 once the new config serves, 1 when it was refused; what\n"
        "                    systemd's ExecReload runs (DIR: $RUNTIME_DIRECTORY by default)\n"
        "  version           print the version, the commit and the libraries'\n"
        "\n"
        "options:\n"
        "  -c, --config FILE the config: a Lua file returning a table\n"
        "  -h, --help        this text\n",
        out);
}

/* corsgate reload --pid PID [--dir DIR] [--timeout S] */
static int reload_command(int argc, char **argv) {
  long pid = 0;
  double timeout = 90;
  const char *dir = NULL;
  for (int i = 2; i < argc; i++) {
    int has_value = i + 1 < argc;
    char *end = NULL;
    if (strcmp(argv[i], "--pid") == 0 && has_value) {
      pid = strtol(argv[++i], &end, 10);
      if (*end || pid <= 1) pid = -1;
    } else if (strcmp(argv[i], "--dir") == 0 && has_value) {
      dir = argv[++i];
    } else if (strcmp(argv[i], "--timeout") == 0 && has_value) {
      timeout = strtod(argv[++i], &end);
      if (*end || timeout <= 0) timeout = -1;
    } else {
      fprintf(stderr, "corsgate reload: unexpected argument \"%s\"\n", argv[i]);
      return 2;
    }
  }
  if (pid <= 1 || timeout <= 0) {
    fprintf(stderr, "corsgate reload: --pid PID is required (a process id above 1), --timeout takes seconds\n");
    return 2;
  }
  char msg[700];
  int rc = cg_notify_reload_request((pid_t)pid, dir, timeout, msg, sizeof msg);
  if (rc == 0) printf("corsgate: reloaded: the new config serves\n");
  else fprintf(stderr, "corsgate: %s%s\n", rc == 1 ? "reload " : "reload failed: ", msg);
  return rc == 0 ? 0 : 1;
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
    print_version();
    return 0;
  }
  if (strcmp(cmd, "reload") == 0) return reload_command(argc, argv);
  int explain = strcmp(cmd, "explain") == 0;
  cg_explain_req_t q = {0};
  const char *headers[64];
  q.headers = headers;
  if (strcmp(cmd, "run") != 0 && strcmp(cmd, "check") != 0 && !explain) {
    fprintf(stderr, "corsgate: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
  }
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    int has_value = i + 1 < argc;
    if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && has_value) {
      file = argv[++i];
    } else if (explain && strcmp(a, "--origin") == 0 && has_value) {
      q.origin = argv[++i];
    } else if (explain && strcmp(a, "--method") == 0 && has_value) {
      q.method = argv[++i];
    } else if (explain && strcmp(a, "--path") == 0 && has_value) {
      q.path = argv[++i];
    } else if (explain && strcmp(a, "--host") == 0 && has_value) {
      q.host = argv[++i];
    } else if (explain && strcmp(a, "--header") == 0 && has_value && q.n_headers < 64) {
      headers[q.n_headers++] = argv[++i];
    } else if (explain && strcmp(a, "--json") == 0) {
      q.json = 1;
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
  if ((check || explain) && !file) {
    fprintf(stderr, "corsgate %s: -c FILE is required\n", cmd);
    return 2;
  }
  if (explain && !q.origin) {
    fprintf(stderr, "corsgate explain: --origin ORIGIN is required\n");
    return 2;
  }
  cg_diag_t d;
  cg_diag_init(&d);
  cg_config_t *cfg = cg_config_load(file, &cg_lua_plugin_finder, &d);
  const char *name = file ? file : "(demo)";
  int errors = report(name, &d);
  cg_diag_free(&d);
  if (!cfg || errors) {
    cg_config_free(cfg);
    return 2;
  }
  if (explain) {
    int rc = cg_explain(cfg, &q, stdout);
    cg_config_free(cfg);
    return rc;
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
