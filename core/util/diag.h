#ifndef CG_UTIL_DIAG_H
#define CG_UTIL_DIAG_H
/* Config diagnostics: every problem carries the path of the field it is about
 * ("routes[1].upstream") so an operator can find it without reading code.
 * Errors refuse the config; warnings are printed and the config is accepted.
 * Messages are owned by the diag and freed by cg_diag_free. */
#include <stddef.h>

typedef enum { CG_DIAG_ERROR = 0, CG_DIAG_WARNING = 1 } cg_diag_level_t;

typedef struct cg_diag_item {
  cg_diag_level_t level;
  char *text; /* "path: message" */
} cg_diag_item_t;

typedef struct cg_diag {
  cg_diag_item_t *items;
  int count, cap;
  int errors, warnings;
} cg_diag_t;

void cg_diag_init(cg_diag_t *d);
void cg_diag_free(cg_diag_t *d);
/* path may be NULL or "" for problems about the whole file. */
void cg_diag_add(cg_diag_t *d, cg_diag_level_t level, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define cg_diag_error(d, path, ...) cg_diag_add((d), CG_DIAG_ERROR, (path), __VA_ARGS__)
#define cg_diag_warn(d, path, ...) cg_diag_add((d), CG_DIAG_WARNING, (path), __VA_ARGS__)

#endif
