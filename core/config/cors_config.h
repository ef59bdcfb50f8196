#ifndef CG_CONFIG_CORS_CONFIG_H
#define CG_CONFIG_CORS_CONFIG_H
/* Reading a route's `cors = { ... }` table from the Lua config into a compiled
 * policy. Types and unknown keys are reported here (with the field's path);
 * what the values mean is checked by cg_cors_compile. */
#include <lua.h>

#include "cors/cors.h"
#include "util/diag.h"

/* Reads the table at idx (left where it is; the stack is balanced on return)
 * without running any Lua: raw reads only, so the strings it borrows stay
 * anchored in the table for the whole call and nothing is kept afterwards.
 * path names the table ("routes[1].cors"). On success *out owns a policy and 0
 * is returned; otherwise *out is NULL, d holds the errors, and the return value
 * is CG_CORS_E_INVALID (or CG_CORS_E_NOMEM). */
int cg_cors_config_load(lua_State *L, int idx, const char *path, const cg_psl_t *psl, cg_diag_t *d,
                        cg_cors_policy_t **out);
/* The same for a route whose plugin decides origins (origins and
 * origin_patterns are refused there). */
int cg_cors_config_load_plugin(lua_State *L, int idx, const char *path, const cg_psl_t *psl, int by_plugin,
                               cg_diag_t *d, cg_cors_policy_t **out);

#endif
