/* The console: one page, its script and its style, embedded in the binary
 * (core/server/console/) and served by the admin listener without a token:
 * they hold no data, and every call the page makes sends the token. */
#include <stddef.h>
#include <string.h>

#include "server/internal.h"

extern const char cg_console_html[], cg_console_js[], cg_console_css[];
extern const size_t cg_console_html_len, cg_console_js_len, cg_console_css_len;

int cg_console_asset(const char *path, size_t path_len, const char **type, const char **body, size_t *len) {
  static const struct {
    const char *path, *type;
    const char *body;
    const size_t *len;
  } assets[] = {
      {"/", "text/html; charset=utf-8", cg_console_html, &cg_console_html_len},
      {"/console.js", "text/javascript; charset=utf-8", cg_console_js, &cg_console_js_len},
      {"/console.css", "text/css; charset=utf-8", cg_console_css, &cg_console_css_len},
  };
  for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++) {
    if (strlen(assets[i].path) != path_len || memcmp(assets[i].path, path, path_len) != 0) continue;
    *type = assets[i].type;
    *body = assets[i].body;
    *len = *assets[i].len;
    return 1;
  }
  return 0;
}
