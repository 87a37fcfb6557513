/*
 * The service manager's readiness protocol (sd_notify(3)) without
 * libsystemd: one datagram of "KEY=VALUE" lines to the Unix socket named
 * by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
 * Without NOTIFY_SOCKET every call does nothing, so tunneld behaves the
 * same outside systemd (and under Type=simple).
 *
 * Who sends: the process systemd started (main.c's process: the single
 * worker, or the supervisor once every worker has said it is ready), so
 * the unit needs no NotifyAccess=all.
 */

#ifndef TNL_NOTIFY_H
#define TNL_NOTIFY_H


/* sends state (e.g. "READY=1\nSTATUS=..."); 0, 1 without a socket, -1 */
int tnl_notify(const char *state);


#endif /* TNL_NOTIFY_H */
