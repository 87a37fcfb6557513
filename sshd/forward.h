/*
 * Remote forwards ("ssh -R NAME:80:localhost:3000"): the tcpip-forward
 * request picks and checks a tunnel name, creates the tunnel's Unix
 * listening socket DIR/t-<16 hex>.sock, claims the name in Redis and
 * answers the request only once the claim has answered.  Keeps the
 * per-tunnel counters and writes the audit rows.
 *
 * A forward belongs to its session (s->forwards).  Its route belongs to
 * routes.c until tnl_route_release.  The pending ssh_message belongs to
 * the forward until it is answered.  Closing a forward marks it; the
 * session's sweep frees it (its listening io may still be in the current
 * epoll batch).
 */

#ifndef TNL_FORWARD_H
#define TNL_FORWARD_H

#include <stdint.h>
#include <sys/un.h>
#include <time.h>

#include <libssh/libssh.h>

#include "tnl_name.h"
#include "loop.h"
#include "routes.h"
#include "session.h"


typedef enum {
    TNL_FORWARD_CLAIMING = 0,  /* waiting for Redis; request unanswered */
    TNL_FORWARD_ACTIVE,        /* answered, socket accepting */
    TNL_FORWARD_CLOSED,        /* released; freed by the sweep */
} tnl_forward_state_e;


struct tnl_forward_s {
    tnl_session_t        *session;
    tnl_forward_state_e   state;
    ssh_message           request;     /* tcpip-forward awaiting an answer */
    tnl_route_t          *route;       /* NULL once released */

    char                  name[TNL_NAME_MAX + 1];
    char                 *bind_address; /* exactly as the client sent it */
    int                   bind_port;    /* as sent, or 80 when it sent 0 */
    int                   asked_port;   /* as sent */
    unsigned              auto_name:1;  /* we picked it: retry when taken */
    unsigned              tries;

    char                  socket_path[sizeof(((struct sockaddr_un *) 0)
                                             ->sun_path)];
    int                   fd;          /* listening Unix socket, or -1 */
    tnl_io_t              io;

    /* counters, for the dashboard and the "tunnel down" line */
    uint64_t              bytes_in;    /* client -> nginx (responses) */
    uint64_t              bytes_out;   /* nginx -> client (requests) */
    uint64_t              streams;     /* connections served */
    uint64_t              requests;    /* HTTP exchanges seen (httplog) */
    unsigned              open_streams;
    time_t                started;

    tnl_forward_t        *next;
};


/* handles a tcpip-forward request; takes msg */
void tnl_forward_request(tnl_session_t *s, ssh_message msg);

/* handles a cancel-tcpip-forward request; takes msg */
void tnl_forward_cancel(tnl_session_t *s, ssh_message msg);

/* releases the route, unlinks the socket, closes its streams, logs */
void tnl_forward_close(tnl_forward_t *f, const char *reason);

/* frees forwards marked closed (called by the session sweep) */
void tnl_forward_sweep(tnl_session_t *s);

/* prints the public URL of every active forward on the session channel */
void tnl_forward_print_urls(tnl_session_t *s);

#endif /* TNL_FORWARD_H */
