#ifndef CG_SERVER_NOTIFY_H
#define CG_SERVER_NOTIFY_H
/* systemd's service notification protocol (sd_notify(3)) without libsystemd:
 * one datagram of "KEY=value" lines to the AF_UNIX socket $NOTIFY_SOCKET
 * names. Without the variable (not under systemd) it does nothing. Used for
 * READY=1 once the workers listen, RELOADING=1 ... READY=1 around a reload
 * (so `systemctl reload` waits for the new config), STOPPING=1 on SIGTERM. */
#include <stdarg.h>

/* Sends the formatted lines; 0, or -1 when there is no socket or it failed. */
int cg_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
