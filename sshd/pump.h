/*
 * Streams: one connection from nginx on a tunnel's Unix socket, carried
 * over one "forwarded-tcpip" channel to the client, bytes both ways with
 * flow control and half-close.  Nothing on the data path waits on a timer.
 *
 * Toward the client: bytes read from nginx wait in the stream's own buffer
 * until the channel window takes them; reading from nginx pauses while
 * that buffer is full, the channel is still opening, or libssh's output is
 * not flushed (session write_blocked).  Toward nginx: the channel data
 * callback writes straight to the non-blocking Unix socket and returns
 * only what it wrote; libssh keeps the rest (and stops growing the window
 * for it), and once the socket is writable again we take all of it at
 * once with ssh_channel_read_nonblocking (see tnl_stream_drain_down).
 *
 * Each stream feeds copies of the bytes both ways to an HTTP observer
 * (httplog.h), which reports one record per request even when nginx keeps
 * the connection alive: a line in the session channel (if the client has
 * one) and at debug level in tunneld's log.
 *
 * A stream belongs to its session (s->streams); its forward pointer is
 * cleared when the forward closes.  A finished stream is marked dead and
 * freed by the session sweep, and never while its channel is still
 * opening (a freed opening channel stays half-open in the client).
 */

#ifndef TNL_PUMP_H
#define TNL_PUMP_H

#include <stdint.h>

#include <libssh/libssh.h>
#include <libssh/server.h>
#include <libssh/callbacks.h>

#include "httplog.h"
#include "loop.h"
#include "session.h"


typedef enum {
    TNL_STREAM_OPENING = 0,    /* channel open sent, no answer yet */
    TNL_STREAM_OPEN,
    TNL_STREAM_CLOSED,         /* finished or failed: waiting for sweep */
} tnl_stream_state_e;


struct tnl_stream_s {
    tnl_session_t        *session;
    tnl_forward_t        *forward;     /* NULL once the forward closed */
    tnl_stream_state_e    state;
    ssh_channel           chan;
    struct ssh_channel_callbacks_struct  cb;
    int                   fd;          /* nginx's connection, -1 if closed */
    tnl_io_t              io;
    tnl_timer_t           timer;       /* opening: bounds the open;
                                          refused: bounds the wait */
    int                   origin_port; /* what we told the client */
    uint64_t              open_packets; /* session's packets parsed when
                                           the open was last asked */
    char                  name[64];    /* the tunnel's, for the log */

    unsigned              unix_eof:1;  /* nginx shut its write side */
    unsigned              eof_sent:1;  /* ... and we passed it on */
    unsigned              chan_eof:1;  /* the client sent EOF */
    unsigned              unix_shut:1; /* ... and we passed it on */
    unsigned              chan_closed:1; /* the client sent CLOSE */
    unsigned              abandoned:1; /* Unix side gone while opening */
    unsigned              failed:1;    /* client refused the open */
    unsigned              refused:1;   /* ... and we wait for nginx's
                                          request before closing (timer) */
    unsigned              logged:1;
    const char           *cause;       /* failed: "refused", "timeout",
                                          "failed" (X-Tunnel-Error) */

    char                 *up;          /* nginx -> client, own buffer */
    size_t                up_len;
    char                 *down;        /* client -> nginx, drained by us */
    size_t                down_cap;
    size_t                down_off;
    size_t                down_len;
    size_t                down_pending; /* bytes libssh still holds */
    unsigned              down_blocked:1; /* Unix socket would block */

    tnl_httplog_t         http;        /* one log line per request */
    unsigned              records;     /* ... reported so far */

    uint64_t              started_ms;
    uint64_t              bytes_up;
    uint64_t              bytes_down;

    tnl_stream_t         *next;
    tnl_stream_t         *prev;
};


/* io handler of a forward's listening socket (io->data = forward) */
void tnl_pump_accept_handler(tnl_io_t *io, uint32_t events);

/*
 * After each poll of the session: resolves opening channels, writes what
 * the windows now allow, drains, finishes streams.
 */
void tnl_pump_process(tnl_session_t *s);

/* re-evaluates every stream's epoll interest (write_blocked changed) */
void tnl_pump_update_interest(tnl_session_t *s);

/* abort a stream (forward or session closing) */
void tnl_stream_abort(tnl_stream_t *st);

/* frees dead streams whose channel is not opening; all if final */
void tnl_pump_sweep(tnl_session_t *s, int final);

#endif /* TNL_PUMP_H */
