#ifndef CG_SERVER_NOTIFY_H
#define CG_SERVER_NOTIFY_H
/* Telling the service manager what the gateway is doing.
 *
 * systemd's notification protocol (sd_notify(3)) without libsystemd: one
 * datagram of "KEY=value" lines to the AF_UNIX socket $NOTIFY_SOCKET names.
 * Without the variable (not under systemd) it does nothing. Used for READY=1
 * once the workers listen, RELOADING=1 ... READY=1 around a reload, STOPPING=1
 * on SIGTERM.
 *
 * And a reload that can be waited for: Debian 12's systemd (252) returns from
 * `systemctl reload` as soon as ExecReload's command exits, and has no
 * Type=notify-reload. So each reload's outcome is written to the file
 * "reload" in $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=), one line
 * "PID N ok" or "PID N refused: why", N counting this process's reloads (0
 * at start); `corsgate reload --pid PID` sends SIGHUP and waits for N to move. */
#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

/* Sends the formatted lines; 0, or -1 when there is no socket or it failed. */
int cg_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The gateway's side: records reload number n (0: started) and its outcome
 * (why NULL: taken) in $RUNTIME_DIRECTORY/reload, when the variable is set. */
void cg_notify_reload_status(unsigned n, const char *why);

/* The CLI's side: SIGHUP to pid, then wait up to timeout seconds for its
 * outcome in dir (NULL: $RUNTIME_DIRECTORY). Writes the outcome (or what went
 * wrong) into msg. Returns 0 (reloaded), 1 (refused) or -1 (no answer, no
 * such process, no directory). */
int cg_notify_reload_request(pid_t pid, const char *dir, double timeout, char *msg, size_t n);

#endif
