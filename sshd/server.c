/*
 * Listening sockets and accept (see server.h).  Owns the listeners, their
 * ios and pause timers, and the ssh_bind (host key, no config files);
 * hands each accepted, tuned, non-blocking fd to tnl_session_accept.  Does
 * not know anything about what happens on a session, nor which worker it
 * is: only whether other processes share its listening sockets.
 */

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <libssh/server.h>

#include "log.h"
#include "metrics.h"
#include "server.h"
#include "session.h"
#include "startups.h"
#include "worker.h"


#define TNL_SERVER_BACKLOG       4096
#define TNL_SERVER_ACCEPTS       64    /* per wake-up and listener */
#define TNL_SERVER_PAUSE_MS      250   /* after EMFILE/ENFILE */
#define TNL_SERVER_FULL_PAUSE_MS 1000  /* at the fd reserve, with peers */
#define TNL_SERVER_EXCLUSIVE     8     /* more sharing workers: no herd */


typedef struct {
    int           fd;
    tnl_io_t      io;
    tnl_timer_t   pause;
    unsigned      paused:1;    /* out of epoll until the timer */
    unsigned      grace:1;     /* resumed after a reserve pause: takes
                                  one batch even if still short */
    char          name[80];
} tnl_listener_t;


tnl_conf_t  tnl_conf;

static ssh_bind         tnl_bind;
static tnl_listener_t   tnl_listeners[TNL_LISTEN_MAX];
static int              tnl_nlisteners;
static int              tnl_accepting;
static uint32_t         tnl_listen_events = EPOLLIN;
static uint64_t         tnl_refused_logged_ms;


/* "0.0.0.0:2222", "[::]:2222", ":2222", "2222" */
static int
tnl_server_parse(const char *spec, char *host, size_t hsize, char *port,
    size_t psize)
{
    const char  *colon, *end;

    if (spec[0] == '[') {
        end = strchr(spec, ']');
        if (end == NULL || end[1] != ':') {
            return -1;
        }
        snprintf(host, hsize, "%.*s", (int) (end - spec - 1), spec + 1);
        snprintf(port, psize, "%s", end + 2);
        return 0;
    }

    colon = strrchr(spec, ':');
    if (colon == NULL) {
        snprintf(host, hsize, "0.0.0.0");
        snprintf(port, psize, "%s", spec);
        return 0;
    }

    if (colon == spec) {
        snprintf(host, hsize, "0.0.0.0");
    } else {
        snprintf(host, hsize, "%.*s", (int) (colon - spec), spec);
    }
    snprintf(port, psize, "%s", colon + 1);

    return 0;
}


/*
 * Dead peers are found by the kernel, on the --keepalive period K (60 s by
 * default): data unacknowledged for K seconds drops the connection
 * (TCP_USER_TIMEOUT), and tunneld sends a keepalive@openssh.com request
 * (an SSH_MSG_IGNORE where a request cannot go) every K seconds,
 * so a client whose packets stop arriving (unplugged, its network gone) is
 * dropped within 2 K, with its tunnels and their open requests (which then
 * end cut short for the browser: t/177-fault-client-vanish.t).  TCP
 * keepalive probes after K idle seconds cover a session our timer has not
 * reached yet.
 */
static void
tnl_server_tune(int fd)
{
    int  on = 1, idle, intvl, cnt = 3;
    int  uto;

    idle = tnl_conf.keepalive;
    intvl = idle < 30 ? (idle + 2) / 3 : 10;
    uto = idle * 1000;

    /* latency first */
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    (void) setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    (void) setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void) setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void) setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    (void) setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto));
}


static void
tnl_server_peer(const struct sockaddr_storage *ss, char *out, size_t size)
{
    char  ip[INET6_ADDRSTRLEN];

    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6  *sin6 = (const void *) ss;

        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(out, size, "[%s]:%u", ip, ntohs(sin6->sin6_port));
        return;
    }

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in  *sin = (const void *) ss;

        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(out, size, "%s:%u", ip, ntohs(sin->sin_port));
        return;
    }

    snprintf(out, size, "unknown");
}


static void
tnl_server_watch(tnl_listener_t *l)
{
    if (l->fd == -1 || l->paused || !tnl_accepting) {
        return;
    }

    if (tnl_io_set(&l->io, tnl_listen_events) == -1) {
        tnl_log_error("epoll (listener %s): %s", l->name, strerror(errno));
    }
}


/*
 * Out of epoll, not merely silent: with EPOLLEXCLUSIVE the kernel would
 * keep choosing a silent listener, and only ADD may carry that flag.
 */
static void
tnl_server_pause(tnl_listener_t *l, uint64_t ms)
{
    tnl_io_del(&l->io);
    l->paused = 1;
    tnl_timer_add(&l->pause, ms);
}


static void
tnl_server_resume(tnl_timer_t *t)
{
    tnl_listener_t  *l = t->data;

    l->paused = 0;
    l->grace = 1;
    tnl_server_watch(l);
}


/*
 * Past --max-startups or --per-source-max-startups a connection is
 * closed at once, before any allocation or libssh: a flood costs an
 * accept, one write into an empty socket buffer and a close.  The line
 * is allowed before the version string (RFC 4253, 4.2) and "ssh -v"
 * shows it; the client then reports the closed connection.  0: counted
 * (token for tnl_startups_release), -1: refused and closed.
 */
static int
tnl_server_admit(int fd, const struct sockaddr_storage *ss, uint32_t *token)
{
    static const char  full[] = "The tunnel server has too many logins in "
                                "progress; try again in a minute.\r\n";
    static const char  source[] = "Too many logins in progress from your "
                                  "address; try again in a minute.\r\n";
    tnl_startup_e      rc;
    unsigned           load;
    char               peer[64];
    ssize_t            n;

    rc = tnl_startups_admit(ss, tnl_conf.max_startups,
                            tnl_conf.per_source_max_startups, token);

    /*
     * Full: a source holding clearly more gives up a place; a source at
     * its own limit cannot take one (no other holds two more), so a
     * flood that reconnects what was closed stops at once.
     */

    if (rc == TNL_STARTUP_FULL) {
        load = tnl_startups_source_load(ss);

        if (load + 2 <= (unsigned) tnl_conf.per_source_max_startups + 1
            && tnl_sessions_evict_startup(load))
        {
            tnl_metric_add(TNL_M_STARTUPS_EVICTED, 1);
            rc = tnl_startups_admit(ss, tnl_conf.max_startups,
                                    tnl_conf.per_source_max_startups, token);
        }
    }

    if (rc == TNL_STARTUP_OK) {
        return 0;
    }

    if (rc == TNL_STARTUP_FULL) {
        tnl_metric_add(TNL_M_STARTUPS_FULL, 1);
        n = write(fd, full, sizeof(full) - 1);
    } else {
        tnl_metric_add(TNL_M_STARTUPS_SOURCE, 1);
        n = write(fd, source, sizeof(source) - 1);
    }
    (void) n;

    close(fd);

    /* one line a second at most: the counters tell the rest */

    if (tnl_now_ms() - tnl_refused_logged_ms > 1000) {
        tnl_refused_logged_ms = tnl_now_ms();
        tnl_server_peer(ss, peer, sizeof(peer));

        if (rc == TNL_STARTUP_FULL) {
            tnl_log_warn("refusing %s: %d connections are not authenticated "
                         "yet (--max-startups)", peer, tnl_conf.max_startups);
        } else {
            tnl_log_warn("refusing %s: its address has %d connections not "
                         "authenticated yet (--per-source-max-startups)",
                         peer, tnl_conf.per_source_max_startups);
        }
    }

    return -1;
}


static void
tnl_server_accept(tnl_io_t *io, uint32_t events)
{
    tnl_listener_t           *l = io->data;
    struct sockaddr_storage   ss;
    socklen_t                 len;
    struct sockaddr_storage   local;
    char                      peer[64];
    uint32_t                  token;
    int                       i, fd, port;

    (void) events;

    /*
     * Near the descriptor limit, leave new connections to the workers
     * that have room; every second take one batch anyway, so when all
     * are full the clients still hear "at capacity" instead of waiting
     * in the backlog.
     */

    if (tnl_worker_fds_short() && tnl_worker_has_peers() && !l->grace) {
        tnl_worker_log_fd_shortage("descriptor reserve reached: leaving "
                                   "new connections to other workers", 0);
        tnl_server_pause(l, TNL_SERVER_FULL_PAUSE_MS);
        return;
    }

    l->grace = 0;

    for (i = 0; i < TNL_SERVER_ACCEPTS; i++) {
        len = sizeof(ss);
        fd = accept4(l->fd, (struct sockaddr *) &ss, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }

            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS
                || errno == ENOMEM)
            {
                /* level-triggered: stop listening a moment, or we spin */
                tnl_worker_log_fd_shortage("accept on the SSH listener",
                                           errno);
                tnl_server_pause(l, TNL_SERVER_PAUSE_MS);

            } else if (errno != EAGAIN) {
                tnl_log_error("accept on %s: %s", l->name, strerror(errno));
            }

            return;
        }

        if (tnl_server_admit(fd, &ss, &token) != 0) {
            continue;
        }

        tnl_server_peer(&ss, peer, sizeof(peer));

        tnl_server_tune(fd);

        port = 0;
        len = sizeof(local);
        if (getsockname(fd, (struct sockaddr *) &local, &len) == 0) {
            port = ntohs(local.ss_family == AF_INET6
                         ? ((struct sockaddr_in6 *) &local)->sin6_port
                         : ((struct sockaddr_in *) &local)->sin_port);
        }

        tnl_metric_add(TNL_M_CONNECTIONS, 1);
        if (tnl_session_accept(io->loop, tnl_bind, fd, peer, port, token)
            != 0)
        {
            tnl_startups_release(token);
        }
    }
}


static int
tnl_server_listen_one(const char *spec)
{
    struct addrinfo   hints, *res = NULL, *ai;
    char              host[64], port[16];
    int               fd = -1, on = 1, rc;

    if (tnl_server_parse(spec, host, sizeof(host), port, sizeof(port))) {
        tnl_log_error("bad --listen \"%s\": use ADDR:PORT or [ADDR]:PORT",
                      spec);
        return -1;
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;

    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        tnl_log_error("bad --listen \"%s\": %s", spec, gai_strerror(rc));
        return -1;
    }

    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd == -1) {
            continue;
        }

        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));

        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0
            && listen(fd, TNL_SERVER_BACKLOG) == 0)
        {
            break;
        }

        tnl_log_error("listen on %s: %s", spec, strerror(errno));
        close(fd);
        fd = -1;
    }

    freeaddrinfo(res);

    if (fd != -1) {
        tnl_log_info("listening on %s", spec);
    }

    return fd;
}


int
tnl_server_listen(int *fds)
{
    int  i, j;

    for (i = 0; i < tnl_conf.nlisten; i++) {
        fds[i] = tnl_server_listen_one(tnl_conf.listen[i]);

        if (fds[i] == -1) {
            for (j = 0; j < i; j++) {
                close(fds[j]);
                fds[j] = -1;
            }
            return -1;
        }
    }

    return 0;
}


int
tnl_server_start(tnl_loop_t *loop, ssh_key hostkey, const int *fds,
    int nfds, int shared)
{
    tnl_listener_t  *l;
    bool             no = false;
    int              i;

    /* ours from here on, whatever happens below */

    for (i = 0; i < nfds && i < TNL_LISTEN_MAX; i++) {
        l = &tnl_listeners[tnl_nlisteners++];
        l->fd = fds[i];
        snprintf(l->name, sizeof(l->name), "%s",
                 i < tnl_conf.nlisten ? tnl_conf.listen[i] : "?");
        tnl_io_init(&l->io, loop, l->fd, tnl_server_accept, l);
        tnl_timer_init(&l->pause, loop, tnl_server_resume, l);
    }

    /*
     * Several processes on one listening socket: a few of them are all
     * woken per connection, and whichever is least busy wins, which
     * spreads sessions; with many, EPOLLEXCLUSIVE wakes one (the first
     * idle one, so sessions pile up in one worker until it is busy).
     */

    if (shared && tnl_conf.workers > TNL_SERVER_EXCLUSIVE) {
        tnl_listen_events = EPOLLIN | EPOLLEXCLUSIVE;
    }

    tnl_bind = ssh_bind_new();
    if (tnl_bind == NULL) {
        ssh_key_free(hostkey);
        return -1;
    }

    /* /etc/libssh/libssh_server.config must not change our behaviour */
    if (ssh_bind_options_set(tnl_bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no)
        != SSH_OK)
    {
        tnl_log_error("libssh: cannot disable config processing: %s",
                      ssh_get_error(tnl_bind));
        ssh_key_free(hostkey);
        return -1;
    }

    /* the bind takes the key */
    if (ssh_bind_options_set(tnl_bind, SSH_BIND_OPTIONS_IMPORT_KEY, hostkey)
        != SSH_OK)
    {
        tnl_log_error("libssh: cannot use the host key: %s",
                      ssh_get_error(tnl_bind));
        ssh_key_free(hostkey);
        return -1;
    }

    return 0;
}


void
tnl_server_accept_start(void)
{
    int  i;

    if (tnl_accepting) {
        return;
    }

    tnl_accepting = 1;

    for (i = 0; i < tnl_nlisteners; i++) {
        tnl_server_watch(&tnl_listeners[i]);
    }
}


void
tnl_server_stop_listening(void)
{
    int  i;

    tnl_accepting = 0;

    for (i = 0; i < tnl_nlisteners; i++) {
        if (tnl_listeners[i].fd != -1) {
            tnl_timer_del(&tnl_listeners[i].pause);
            tnl_io_del(&tnl_listeners[i].io);
            close(tnl_listeners[i].fd);
            tnl_listeners[i].fd = -1;
        }
    }
}


void
tnl_server_free(void)
{
    tnl_server_stop_listening();

    if (tnl_bind != NULL) {
        ssh_bind_free(tnl_bind);
        tnl_bind = NULL;
    }
}
