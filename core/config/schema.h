#ifndef CG_CONFIG_SCHEMA_H
#define CG_CONFIG_SCHEMA_H
/* Walking the config's Lua table against a schema: the helpers every part
 * of the loader (config.c, and a file a section) reads fields with. Each
 * problem is reported to the loader's diagnostics with the field's path,
 * and reading goes on. */
#include <lua.h>
#include <stddef.h>

#include "cors/cors.h"
#include "util/diag.h"

struct cg_plugin_finder;
typedef struct cg_loader {
  lua_State *L;
  cg_diag_t *d;
  cg_psl_t *psl;
  const struct cg_plugin_finder *plugins; /* config.h */
} cg_loader_t;

/* strdup and calloc that abort when memory runs out (a config load at
 * startup has nothing sensible to do without it). */
char *cg_cfg_strdup(const char *s);
void *cg_cfg_calloc(size_t n, size_t size);

/* "parent.key", or "key" at the top. */
void cg_cfg_join_path(char *out, size_t cap, const char *parent, const char *key);
/* Reports keys of the table at idx that known does not list (with a
 * suggestion for a near miss). stack: unchanged */
void cg_cfg_check_keys(cg_loader_t *ld, int idx, const char *path, const char *const *known);
/* Length of the list at idx, or -1 (reported) when it is not a list. */
int cg_cfg_list_len(cg_loader_t *ld, int idx, const char *path);
/* Pushes t[key]; returns its Lua type. stack: +1 */
int cg_cfg_field(lua_State *L, int tidx, const char *key);
/* 1 when the value on top of the stack has type, else 0 (reported: expected what). */
int cg_cfg_want_type(cg_loader_t *ld, int type, const char *path, const char *what);

/* Each get reads t[key] into *out when present and valid; returns 1 when
 * set, 0 when absent (a required one is reported), -1 when invalid
 * (reported). stack: unchanged. A string stays anchored by the config
 * table, which outlives the walk. */
int cg_cfg_get_string(cg_loader_t *ld, int tidx, const char *parent, const char *key, int required,
                      const char **out);
int cg_cfg_get_number(cg_loader_t *ld, int tidx, const char *parent, const char *key, double lo, double hi,
                      double *out);
int cg_cfg_get_int(cg_loader_t *ld, int tidx, const char *parent, const char *key, double lo, double hi,
                   double *out);
int cg_cfg_get_bool(cg_loader_t *ld, int tidx, const char *parent, const char *key, int *out);
/* Pushes t[key] when it is a table (returns 1); else pushes nothing and
 * returns 0 (absent) or -1 (wrong type, reported). */
int cg_cfg_get_table(cg_loader_t *ld, int tidx, const char *parent, const char *key);

/* t.plugin_config (parent: t's path) as Lua source of a table, for every
 * worker's state to rebuild ("{}" when absent); NULL when it is no table or
 * holds what a config cannot (functions, ...: reported). malloc'd. */
char *cg_cfg_plugin_config(cg_loader_t *ld, int t, const char *parent);

#endif
