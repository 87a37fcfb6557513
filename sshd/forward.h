/*
 * Remote forwards ("ssh -R NAME:80:localhost:3000"): the tcpip-forward
 * request picks and checks a tunnel name, creates the tunnel's Unix
 * listening socket DIR/t-<16 hex>.sock, claims the name in Redis and
 * answers the request only once the claim has answered.  Keeps the
 * per-tunnel counters and writes the audit rows.
 *
 * Replies: SSH answers global requests strictly in order (OpenSSH matches
 * each reply to its oldest unanswered request), but a claim answers later
 * and a refusal is held back, so every tcpip-forward and
 * cancel-tcpip-forward gets a tnl_reply_t queued on its session in arrival
 * order; a decided reply goes out once all before it went out.  A refusal
 * that has text for the person waits until that text reached the client
 * (see tnl_forward_replies_run): with ExitOnForwardFailure OpenSSH exits
 * on the reply, and would otherwise never show why.
 *
 * A forward belongs to its session (s->forwards).  Its route belongs to
 * routes.c until tnl_route_release.  A reply, and the ssh_message in it,
 * belongs to the session's queue (s->replies) until it is sent, or until
 * the session closes (then dropped unanswered by the sweep); the forward
 * only points to its reply until it decides it.  Closing a forward marks
 * it; the session's sweep frees it (its listening io may still be in the
 * current epoll batch).
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


typedef enum {
    TNL_REPLY_WAITING = 0,     /* undecided: the claim is in flight */
    TNL_REPLY_SUCCESS,         /* sent as soon as it is first in line */
    TNL_REPLY_FAILURE,         /* likewise: nothing to show first */
    TNL_REPLY_REFUSED,         /* held until its explanation was shown */
} tnl_reply_state_e;


struct tnl_reply_s {
    tnl_session_t        *session;
    ssh_message           request;     /* tcpip-forward or cancel */
    tnl_reply_state_e     state;
    uint16_t              port;        /* for a success to "-R 0:" */
    uint64_t              asked_ms;    /* when the request came */
    uint64_t              shown_ms;    /* refused: when its text was seen
                                          written and flushed, or 0 */
    tnl_timer_t           timer;       /* refused: next look at the hold */
    unsigned              forward:1;   /* a tcpip-forward, not a cancel */
    char                  what[72];    /* forward: the name asked, for the
                                          list of refused ones */
    tnl_reply_t          *next;
};


struct tnl_forward_s {
    tnl_session_t        *session;
    tnl_forward_state_e   state;
    tnl_reply_t          *reply;       /* its undecided reply, or NULL */
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
    tnl_timer_t           pause;       /* accept paused: out of fds */

    /* counters, for the dashboard and the "tunnel down" line */
    uint64_t              bytes_in;    /* client -> nginx (responses) */
    uint64_t              bytes_out;   /* nginx -> client (requests) */
    uint64_t              streams;     /* connections served */
    uint64_t              requests;    /* HTTP exchanges seen (httplog) */
    unsigned              open_streams;
    time_t                started;
    time_t                last_request;  /* 0: none yet */

    tnl_forward_t        *next;
};


/* handles a tcpip-forward request; takes msg */
void tnl_forward_request(tnl_session_t *s, ssh_message msg);

/* handles a cancel-tcpip-forward request; takes msg */
void tnl_forward_cancel(tnl_session_t *s, ssh_message msg);

/* releases the route, unlinks the socket, closes its streams, logs */
void tnl_forward_close(tnl_forward_t *f, const char *reason);

/*
 * accept() on the tunnel's socket failed with EMFILE/ENFILE (err): stop
 * watching it for a moment instead of spinning on a readable listener
 */
void tnl_forward_accept_pause(tnl_forward_t *f, int err);

/* frees forwards marked closed (called by the session sweep) */
void tnl_forward_sweep(tnl_session_t *s);

/*
 * Once the shell is up and every tcpip-forward asked so far is answered
 * (OpenSSH sends them all before it opens the session channel): prints
 * each tunnel that is up, the names refused, and how to stop; with none
 * up, says so and marks the session to close with exit status 1 once the
 * refusals went out.  Call in each session pass; does it once.
 */
void tnl_forward_summary(tnl_session_t *s);

/* the public URL of a tunnel name, from --public-url */
void tnl_forward_public_url(const char *name, char *out, size_t size);

/*
 * Sends the decided replies at the head of the queue, in order; call after
 * each session pass (the session channel's text was flushed).  Does nothing
 * once the session is closing: the sweep drops what is left.
 */
void tnl_forward_replies_run(tnl_session_t *s);

/*
 * The counters of a live tunnel (data: the forward a route was made for)
 * for live.c; -1 when it is not live.
 */
struct tnl_live_stats_s;
int tnl_forward_live_stats(void *data, struct tnl_live_stats_s *st);

#endif /* TNL_FORWARD_H */
