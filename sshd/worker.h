/*
 * tunneld's processes.  With --workers 1 the one process runs everything
 * (tnl_worker_run).  With more, a small supervisor (tnl_supervisor_run)
 * forks N workers from the state main.c prepared (host key, socket
 * directory, listening sockets), forwards SIGTERM/SIGINT to them, waits
 * for them (bounded) and restarts one that dies unexpectedly, with
 * backoff; it gives up, and exits non-zero, when workers keep dying right
 * after they start.  Each worker is a whole tunneld: its own loop,
 * PostgreSQL and Redis connections, key table, sessions and tunnel
 * sockets; all of them accept from the same listening sockets.  Nothing
 * is shared between workers but those sockets and what goes through
 * Redis (claims, kicks), so a takeover across workers is the same as one
 * across nodes.
 *
 * Also the worker's descriptor budget: the soft RLIMIT_NOFILE is raised
 * to the hard limit at start, and tnl_worker_fds_short() tells the
 * forward and accept code when fewer than TNL_WORKER_FD_RESERVE
 * descriptors are left, so they refuse or pause instead of failing half
 * way (the count comes from the loop's io count, never from a syscall).
 *
 * Owns the supervisor's table of worker processes; a worker owns its
 * loop.  The host key and listening fds are main.c's until handed over.
 */

#ifndef TNL_WORKER_H
#define TNL_WORKER_H

#include <libssh/libssh.h>


#define TNL_WORKERS_MAX        64
/*
 * Kept free for requests: more than nginx keeps alive to tunnels in all
 * its workers (keepalive 64 each in the shipped config) plus a margin.
 */
#define TNL_WORKER_FD_RESERVE  256

/* a worker's exit status that means "do not restart: fix the setup" */
#define TNL_WORKER_EXIT_CONFIG  2


/*
 * Runs one tunneld until SIGTERM/SIGINT; number is 1..N under a
 * supervisor, 0 for the single process.  Takes key.  Returns the exit
 * status (0 after a clean shutdown).
 */
int tnl_worker_run(int number, int nworkers, ssh_key key, const int *fds,
    int nfds);

/* forks and supervises nworkers workers; returns the exit status */
int tnl_supervisor_run(int nworkers, ssh_key key, const int *fds, int nfds);

/* 1 when the worker has fewer than TNL_WORKER_FD_RESERVE fds to spare */
int tnl_worker_fds_short(void);

/* descriptors left before the limit (estimate, see above) */
int tnl_worker_fds_left(void);

/* 1 when other workers could take a connection this one should not */
int tnl_worker_has_peers(void);

/*
 * Logs "what: strerror(err)" about running out of descriptors, at most
 * once every 10 s per kind, with the number of times it happened since:
 * a process at its limit must not write a line per failure.
 */
void tnl_worker_log_fd_shortage(const char *what, int err);

#endif /* TNL_WORKER_H */
