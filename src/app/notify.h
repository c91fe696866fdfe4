/*
 * The service manager's readiness protocol (sd_notify(3)) without libsystemd:
 * one datagram of "KEY=value\n" lines to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). Called by
 * the main thread only, a handful of times per run (READY, STATUS, STOPPING).
 */
#ifndef RW_NOTIFY_H
#define RW_NOTIFY_H

/*
 * Send state (e.g. "READY=1\nSTATUS=listening on ...") to $NOTIFY_SOCKET.
 * Returns 1 when sent, 0 when NOTIFY_SOCKET is unset or empty (not run by a
 * service manager: nothing to do), -EAFNOSUPPORT for an address that is
 * neither a path nor '@', -ENAMETOOLONG, or the -errno of socket/sendto.
 */
int rw__notify(const char *state);

/* rw__notify with a printf format; states longer than 1 KiB are cut. */
__attribute__((format(printf, 1, 2))) int rw__notifyf(const char *fmt, ...);

#endif
