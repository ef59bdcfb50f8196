#ifndef CG_SERVER_H
#define CG_SERVER_H
#include "config/config.h"

/* Serves cfg until SIGTERM or SIGINT, then drains. Returns the process exit
 * code: 0 after a graceful shutdown, 1 when the listener cannot be set up. */
int cg_server_run(const cg_config_t *cfg);

#endif
