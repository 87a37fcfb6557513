/*
 * tunneld's configuration and its SSH listening sockets.  The listeners
 * are our own non-blocking sockets (libssh's ssh_bind_accept is blocking
 * and ssh_bind_set_blocking does nothing in 0.10.6): we accept4() with
 * SOCK_NONBLOCK, tune the TCP socket, refuse past --max-startups
 * unauthenticated connections, and hand the fd to session.c.  The
 * ssh_bind here only carries the host key and options: it never listens.
 * Owns the listeners and the ssh_bind; sessions own their accepted fds.
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
    const char  *database_url;
    const char  *redis_url;
    const char  *node;
    const char  *reserved_names;  /* comma-separated */
    int          max_forwards;    /* per session */
    int          login_grace;     /* seconds */
    int          max_startups;    /* unauthenticated connections */
    int          keepalive;       /* seconds between SSH_MSG_IGNOREs */
} tnl_conf_t;


/* filled by main.c before anything starts, read-only afterwards */
extern tnl_conf_t  tnl_conf;


/* takes ownership of hostkey (even on failure); 0, or -1 (logged) */
int tnl_server_start(tnl_loop_t *loop, ssh_key hostkey);

/* stops accepting (shutdown); live sessions are not touched */
void tnl_server_stop_listening(void);

/* frees the ssh_bind after every session is gone */
void tnl_server_free(void);

#endif /* TNL_SERVER_H */
