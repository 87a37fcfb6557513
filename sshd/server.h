/*
 * tunneld's configuration and its SSH listening sockets.  The listeners
 * are our own non-blocking sockets (libssh's ssh_bind_accept is blocking
 * and ssh_bind_set_blocking does nothing in 0.10.6): main.c creates them
 * before any worker starts (tnl_server_listen), every worker watches the
 * same ones and accept4()s with SOCK_NONBLOCK, refuses past --max-startups
 * or --per-source-max-startups unauthenticated connections (startups.h;
 * before anything is allocated), tunes the TCP socket, and hands the fd
 * to session.c.  The ssh_bind here only carries the host key and
 * options: it never listens.
 *
 * Descriptor limit: EMFILE/ENFILE on accept stops accepting for a moment
 * (a level-triggered listener would otherwise spin); a worker within its
 * reserve of the limit lets other workers take new connections first.
 *
 * main.c owns the listening fds until a worker starts; then the worker's
 * server.c owns them (and its ios) and the ssh_bind; sessions own their
 * accepted fds.
 */

#ifndef TNL_SERVER_H
#define TNL_SERVER_H

#include <stdint.h>
#include <sys/types.h>

#include <libssh/libssh.h>

#include "loop.h"


#define TNL_LISTEN_MAX  8


typedef struct {
    const char  *listen[TNL_LISTEN_MAX];  /* "ADDR:PORT", "[V6]:PORT" */
    int          nlisten;
    const char  *host_key;
    const char  *socket_dir;
    const char  *socket_group;    /* NULL: the directory's group */
    gid_t        socket_gid;      /* resolved; (gid_t) -1: leave as is */
    const char  *domain;
    const char  *public_url;      /* template, "%s" = tunnel name */
    const char  *admin_url;       /* web UI base (no trailing /), or NULL */
    const char  *database_url;
    const char  *redis_url;
    const char  *node;
    const char  *node_address;    /* --node-address IP:PORT, or NULL */
    int          max_forwards;    /* per session */
    int          max_channels;    /* channel opens per session */
    int          max_pending;     /* forward requests unanswered */
    int          max_requests;    /* requests per minute, per session */
    int          login_grace;     /* seconds */
    int          max_startups;    /* unauthenticated connections, in all
                                     (every worker) */
    int          per_source_max_startups;   /* ... per IPv4 address or
                                               IPv6 /64 */
    int          keepalive;       /* seconds between keepalive requests */
    int          keepalive_count; /* intervals without a packet from the
                                     client before it is dropped */
    int          workers;         /* processes accepting (1: no fork) */
    const char  *api_listen;      /* --api HOST:PORT, or NULL */
    const char  *api_token_file;  /* --api-token-file, or NULL */
} tnl_conf_t;


/* filled by main.c before anything starts, read-only afterwards */
extern tnl_conf_t  tnl_conf;


/*
 * Creates the listening socket of every --listen (non-blocking, close on
 * exec) into fds[tnl_conf.nlisten], in --listen order; 0, or -1 (logged,
 * the ones made are closed).
 */
int tnl_server_listen(int *fds);

/*
 * Takes ownership of hostkey and fds (even on failure); watches the fds
 * but accepts only after tnl_server_accept_start().  shared: other
 * processes accept from the same fds.  0, or -1 (logged).
 */
int tnl_server_start(tnl_loop_t *loop, ssh_key hostkey, const int *fds,
    int nfds, int shared);

/* starts accepting (idempotent): the key table is loaded, or late */
void tnl_server_accept_start(void);

/* stops accepting (shutdown); live sessions are not touched */
void tnl_server_stop_listening(void);

/* frees the ssh_bind after every session is gone */
void tnl_server_free(void);

#endif /* TNL_SERVER_H */
