#ifndef CG_CONFIG_UPSTREAM_CONFIG_H
#define CG_CONFIG_UPSTREAM_CONFIG_H
/* Reading `upstreams = { NAME = { targets, keepalive, fail_timeout, tls } }`:
 * the targets, and for an HTTPS upstream its client context (core/tls).
 * Problems carry the field's path: "upstreams.billing.tls.ca: ...". */
#include "config/config.h"
#include "config/schema.h"

void cg_upstream_config_load(cg_loader_t *ld, int tidx, cg_config_t *c);
void cg_upstream_config_free(cg_config_t *c);

#endif
