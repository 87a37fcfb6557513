/*
 * One SSH session per client connection: key exchange, public-key auth
 * against the in-memory key table, the optional "session" channel (text
 * for the person: URLs, one line per request), refusal of everything a
 * tunnel server does not do (exec, sftp, x11, agent, -L/-D/-W), keepalive,
 * and orderly teardown.  Port forwards are in forward.c, byte pumping in
 * pump.c; both hang off this struct.
 *
 * Each session has its own ssh_event holding only its own socket, polled
 * with timeout 0 when our epoll loop says the socket is ready (libssh polls
 * internally; a shared event would make every session pay for all).
 *
 * Requests are taken from libssh's message queue (no server callbacks, no
 * message callback): libssh frees a message as soon as a callback returns,
 * but a tcpip-forward must be answered only after the Redis claim answers,
 * so we need to own the message until then.
 *
 * The data path spends few system calls: libssh reads 4 KB per poll, so a
 * wake-up polls only while reads come back full (per-session libssh
 * counters tell); the message queue is read only when packets came in; the
 * socket is watched for writing only while libssh holds unsent bytes;
 * what the streams write in one loop iteration goes out in one write, at
 * the end of the pass (tnl_session_update_io).
 * Request log lines for the person wait a few milliseconds and go out
 * together (one packet, one wake-up of the client, per batch).
 *
 * Cipher offer: an OpenSSH client (6.2 or later) is offered AES-GCM only,
 * any other client every cipher, AES-GCM first (see tnl_session_offer in
 * session.c); never compression.  tnl_session_set_ciphers overrides it.
 *
 * Ownership: the session owns its ssh_session, ssh_event, channels,
 * forwards and streams.  Nothing is freed inside a libssh callback: a
 * closed session is marked and freed from a posted sweep.
 */

#ifndef TNL_SESSION_H
#define TNL_SESSION_H

#include <stdint.h>

#include <libssh/libssh.h>
#include <libssh/server.h>
#include <libssh/callbacks.h>

#include "drain.h"
#include "keys.h"
#include "loop.h"


typedef struct tnl_session_s  tnl_session_t;
typedef struct tnl_forward_s  tnl_forward_t;
typedef struct tnl_stream_s   tnl_stream_t;
typedef struct tnl_reply_s    tnl_reply_t;
typedef struct tnl_activation_s  tnl_activation_t;


typedef enum {
    TNL_AUTH_NONE = 0,     /* key exchange or userauth in progress */
    TNL_AUTH_PENDING,      /* unknown key parked for approval (device
                              flow, activation.c); never a tunnel */
    TNL_AUTH_OK,           /* key found: user and user_id are set */
} tnl_auth_state_e;


struct tnl_session_s {
    ssh_session         ssh;
    ssh_event           event;
    tnl_loop_t         *loop;
    tnl_io_t            io;
    tnl_drain_t         drain;        /* read-ahead of io.fd (drain.h) */
    tnl_timer_t         timer;        /* login grace, keepalive, linger */
    tnl_timer_t         text_timer;   /* request lines wait for it */

    /* libssh counts into these: bytes read, packets parsed */
    struct ssh_counter_struct  sock_count;
    struct ssh_counter_struct  pkt_count;
    uint64_t            msg_packets;  /* pkt_count.in_packets when the
                                         message queue was last empty */
    uint64_t            alive_packets; /* pkt_count.in_packets at the
                                          last keepalive tick */
    unsigned            alive_missed;  /* ticks in a row without one */
    uint64_t            alive_step;    /* the alive tick due (session.c) */
    tnl_session_t      *alive_next;    /* in the alive wheel's slot */
    tnl_session_t     **alive_pprev;   /* NULL: not in the wheel */
    size_t              unflushed;    /* channel bytes written since the
                                         last flush (pump.c) */

    tnl_auth_state_e    auth;
    int                 auth_failures;
    ssh_message         auth_msg;     /* a signed request held unanswered
                                         while its key waits for approval */
    tnl_activation_t   *activation;   /* its code (activation.c) */
    unsigned            closing:1;    /* teardown started: accept nothing */
    unsigned            finished:1;   /* ssh side gone; waiting for sweep */
    unsigned            sweep_posted:1;
    unsigned            process_posted:1;
    unsigned            write_blocked:1; /* libssh's out buffer is not
                                            flushed: nginx reads paused */
    unsigned            pty:1;
    unsigned            shell:1;
    unsigned            chan_closed:1;   /* client closed the channel */
    unsigned            quit:1;          /* Ctrl-C typed in the channel */
    unsigned            key_banner:1;    /* told about an unknown key */
    unsigned            offer_pending:1; /* client banner not seen yet */
    unsigned            msg_check:1;     /* read the message queue even
                                            without new packets */
    unsigned            text_hold:1;     /* text may wait for text_timer */
    unsigned            summary_done:1;  /* the shell was told which
                                            tunnels are up (forward.c) */
    unsigned            no_tunnel:1;     /* none is: close once the
                                            replies went out */
    unsigned            kex_counted:1;   /* in tunneld_handshakes_total */
    unsigned            abusive:1;       /* closed for breaking a limit:
                                            no linger, no more reads */
    unsigned            msg_backlog:1;   /* messages left in libssh's
                                            queue: parse no more yet */
    unsigned            startup:1;       /* counted in startups.h */

    uint32_t            startup_token;   /* for tnl_startups_release */

    char                id[128];      /* "<node>/<pid>/<counter>" */
    char                client[64];   /* "ip:port" */
    int                 local_port;   /* our port it connected to */
    char                fingerprint[64];
    char                user[64];
    char                close_reason[320]; /* in the DISCONNECT message */
    int64_t             user_id;
    uint64_t            started_ms;
    int                 exit_status;  /* sent on the session channel */

    /* tcpip-forward requests: asked, answered with success, refused */
    unsigned            fw_asked;
    unsigned            fw_up;
    unsigned            fw_refused;
    char                refused_names[256];  /* "www, Bad_Name" */

    ssh_channel         chan;         /* the "session" channel, or NULL */
    struct ssh_channel_callbacks_struct  chan_cb;
    char               *text;         /* for chan, waiting for its window */
    size_t              text_len;
    unsigned            text_dropped;

    tnl_forward_t      *forwards;
    int                 nforwards;
    tnl_reply_t        *replies;      /* forward requests to answer, in
                                         the order they came (forward.c) */
    unsigned            nreplies;
    tnl_stream_t       *streams;      /* of every forward of the session */
    unsigned            nstreams;
    uint32_t            next_origin_port;

    /* what the signed-in client asked: the per-session limits */
    unsigned            chan_opens;   /* channel opens, of any kind */
    uint64_t            req_credit;   /* requests it may still make,
                                         x 60,000 (refills per ms) */
    uint64_t            req_refill_ms;

    tnl_session_t      *next;
    tnl_session_t      *prev;
};


/*
 * Takes fd (closed on failure); returns 0 or -1.  startup_token: what
 * tnl_startups_admit counted; the session gives it back when it leaves
 * TNL_AUTH_NONE (the caller does on failure).  The login grace timer
 * runs from here: a client that never sends a byte is closed by it.
 */
int tnl_session_accept(tnl_loop_t *loop, ssh_bind bind, int fd,
    const char *client, int local_port, uint32_t startup_token);

/*
 * Starts teardown: releases every route, closes streams, shows text (if
 * not NULL) on the session channel, then disconnects once that is flushed
 * (at most about a second later).  Safe from any context, even a libssh
 * callback; idempotent.
 */
void tnl_session_close(tnl_session_t *s, const char *text,
    const char *reason);

/* text for the person on the session channel (dropped without one) */
void tnl_session_printf(tnl_session_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * The same for lines that may wait a few milliseconds (one per proxied
 * request): they go out in batches, or with the next tnl_session_printf
 */
void tnl_session_printf_later(tnl_session_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Ciphers offered to every client instead of the automatic choice (NULL
 * or "" restores it); a comma-separated list of libssh cipher names, e.g.
 * from a command-line option.  Returns 0, or -1 if libssh knows none of
 * them.  Call before sessions are accepted.
 */
int tnl_session_set_ciphers(const char *list);

/*
 * The key exchange, MAC and host key algorithms offered to every client
 * instead of libssh's defaults (NULL or "" restores them): a comma-
 * separated list, every entry of which libssh must support.  Returns 0,
 * or -1 with err naming the bad entry and the supported ones.  Call
 * before sessions are accepted.
 */
typedef enum {
    TNL_ALGO_KEX = 0,
    TNL_ALGO_MACS,
    TNL_ALGO_HOSTKEYS,
    TNL_ALGO_N
} tnl_algo_e;

int tnl_session_set_algorithms(tnl_algo_e kind, const char *list,
    char *err, size_t size);

/*
 * 0 if the host key can sign with one of the --hostkey-algorithms, else
 * -1 with err saying what to add
 */
int tnl_session_hostkey_usable(ssh_key key, char *err, size_t size);

/*
 * The signed-in client broke a per-session limit (too many channels or
 * requests, data beyond its window): logs it and closes the session at
 * once (no linger), the DISCONNECT message saying why.  Safe from a
 * libssh callback.
 */
void tnl_session_abuse(tnl_session_t *s, const char *why);

/* line end for text on the session channel */
const char *tnl_session_eol(tnl_session_t *s);

/*
 * Call after using the libssh session outside its own poll (from a Unix
 * socket handler, a Redis reply): libssh may have read and queued packets
 * that no epoll event will announce, so a process pass is posted.
 */
void tnl_session_post_process(tnl_session_t *s);

/* posts the sweep that frees dead streams and forwards (and s if closed) */
void tnl_session_post_sweep(tnl_session_t *s);

/* routes.h kick handler: closes the session with this id, if ours */
void tnl_session_kick(const char *session_id);

/* keys.h change handler: closes sessions whose key is no longer valid */
void tnl_sessions_keys_changed(void);

/*
 * A kick (tunnel:close, see live.h): closes tunnel name of session_id,
 * telling its client why; the whole session when whole_session or when
 * it was the session's last tunnel (a -N client then exits, showing the
 * text in the disconnect message).  Unknown ids are someone else's.
 */
void tnl_session_close_tunnel(const char *session_id, const char *name,
    int whole_session, const char *by, const char *reason);

/*
 * The device flow (activation.c) answers the held auth request: the code
 * is issued (text: the banner that shows it; the session waits), none can
 * be (why: one line before today's refusal of an unknown key), approved
 * (signed in as the key's user, as for a registered key), or ended
 * (denied, expired: text is the one line the client shows, then the
 * session closes).  detach: activation.c let go of s->activation.
 */
void tnl_session_activation_pending(tnl_session_t *s, const char *text);
void tnl_session_activation_refused(tnl_session_t *s, const char *why);
void tnl_session_activation_approved(tnl_session_t *s,
    const tnl_key_t *key);
void tnl_session_activation_ended(tnl_session_t *s, const char *text);
void tnl_session_activation_detach(tnl_session_t *s);

/* unauthenticated sessions, those waiting for approval left out */
int tnl_sessions_unauthenticated(void);
int tnl_sessions_count(void);

/* --max-startups full: free a place for a source holding load (1 if so) */
int tnl_sessions_evict_startup(unsigned load);

/* shutdown: every session closes (routes released) */
void tnl_sessions_close_all(const char *text, const char *reason);

#endif /* TNL_SESSION_H */
