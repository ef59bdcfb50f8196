#ifndef CG_CONFIG_LISTEN_CONFIG_H
#define CG_CONFIG_LISTEN_CONFIG_H
/* `listen`: one address as a string (plain HTTP), or a list of them, where
 * an entry may be a table naming TLS for its address:
 *
 *   listen = { "127.0.0.1:8080",
 *              { address = "0.0.0.0:443",
 *                tls = { certificates = { { cert = "api.pem", key = "api.key" } },
 *                        min_version = "1.2",
 *                        plugin = "tenant_certs", plugin_config = { ... } } } }
 *
 * A TLS listener's certificates are loaded and checked here, so a config with
 * a broken one is refused at load (and at a reload, the old one serves on). */
#include <lua.h>

#include "config/config.h"
#include "config/schema.h"

/* stack: unchanged. Reads the value at idx (nil: 127.0.0.1:8080) into
 * c->listeners and c->listen; each problem goes to d with its path. */
void cg_listen_config_load(lua_State *L, int idx, cg_config_t *c, cg_diag_t *d);
/* Once the rest of the config is read (plugin_paths, redis): each TLS
 * listener's certificate plugin (tls.plugin) found and checked, problems
 * under "listen[N].tls". */
void cg_listen_config_plugins(cg_loader_t *ld, cg_config_t *c);
/* Frees what cg_listen_config_load put in c. */
void cg_listen_config_free(cg_config_t *c);

#endif
