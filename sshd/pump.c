/*
 * Streams between nginx's Unix connections and forwarded-tcpip channels
 * (see pump.h).  Channel callbacks only write to the Unix socket and set
 * flags; every libssh call that writes, opens or closes happens from our
 * own handlers or the session's process pass, never from a callback.
 *
 * libssh 0.10.6 has no "open confirmed" nor "window grew" callback: each
 * process pass re-calls ssh_channel_open_reverse_forward on opening
 * channels and re-checks ssh_channel_window_size on stalled ones.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "forward.h"
#include "log.h"
#include "metrics.h"
#include "pump.h"
#include "session.h"


/*
 * nginx -> client: read at most two whole SSH packets' worth.  libssh
 * 0.10.6 cuts a channel write into packets of the peer's maximum packet
 * less 10 bytes; OpenSSH's is 32,768, so 64 KB read and written at once
 * went out as 32,758 + 32,758 + 20 bytes: three packets (three
 * encryptions, three writes on the client) where two do
 * (t/033-upload-packets.t).
 */
#define TNL_STREAM_UP_MAX    (2 * (32768 - 10))
#define TNL_PUMP_UNFLUSHED   TNL_STREAM_UP_MAX /* flush at once from
                                                this on: one full read
                                                from nginx is bulk */
#define TNL_STREAM_SNDBUF    (256 * 1024) /* toward nginx (the kernel
                                             doubles it) */
#define TNL_STREAM_DOWN_MAX  (64 * 1024)
#define TNL_STREAM_HELD_MAX  (2 * 1024 * 1024) /* libssh's window 1.28 MB,
                                                 plus a packet's slack */
#define TNL_PUMP_ACCEPTS     64
#define TNL_STREAM_REFUSED_MS  1000  /* wait for nginx's request, at most */
#define TNL_STREAM_OPEN_MS     10000 /* the client answers an open within */


static void tnl_stream_io_handler(tnl_io_t *io, uint32_t events);
static void tnl_stream_update_io(tnl_stream_t *st);
static void tnl_stream_refused_read(tnl_stream_t *st);
static void tnl_stream_log_record(void *data,
    const tnl_httplog_record_t *r);


/* channel callbacks: no libssh calls, no frees */

static int
tnl_stream_chan_data(ssh_session session, ssh_channel channel, void *data,
    uint32_t len, int is_stderr, void *userdata)
{
    tnl_stream_t  *st = userdata;
    ssize_t        n;

    (void) session;
    (void) channel;

    if (is_stderr || st->fd == -1 || st->unix_shut
        || st->state == TNL_STREAM_CLOSED)
    {
        st->down_pending = 0;
        return (int) len;                  /* nobody to give it to */
    }

    /*
     * libssh 0.10.6 accepts data beyond the window it granted ("Data
     * packet too big for our window": it keeps it anyway) and hands us
     * all it holds; what we leave, it keeps.  A client that respects the
     * window never has more than libssh's window (1,280,000 bytes) held
     * here; one that ignores it would grow this without bound while
     * nginx does not read: the session is closed and the bytes dropped.
     */

    if (len > TNL_STREAM_HELD_MAX) {
        st->down_pending = 0;
        tnl_session_abuse(st->session, "channel data beyond the window "
                          "this server granted");
        return (int) len;
    }

    /* libssh hands us everything it holds: what we leave, it keeps */

    if (st->down_blocked || st->down_len > 0) {
        st->down_pending = len;
        return 0;
    }

    n = write(st->fd, data, len);

    if (n == -1) {
        if (errno != EAGAIN && errno != EINTR) {
            st->down_pending = 0;
            tnl_stream_abort(st);          /* marks only: see abort */
            return (int) len;
        }
        n = 0;
    }

    if (n > 0) {
        tnl_httplog_response(&st->http, data, (size_t) n, tnl_now_ms());
        st->bytes_down += (uint64_t) n;
        if (st->forward != NULL) {
            st->forward->bytes_in += (uint64_t) n;
            tnl_metric_add(TNL_M_BYTES_IN, (uint64_t) n);
        }
    }

    st->down_pending = len - (uint32_t) n;

    if (st->down_pending > 0) {
        st->down_blocked = 1;
        tnl_stream_update_io(st);
    }

    return (int) n;
}


static void
tnl_stream_chan_eof(ssh_session session, ssh_channel channel, void *userdata)
{
    tnl_stream_t  *st = userdata;

    (void) session;
    (void) channel;

    st->chan_eof = 1;
    tnl_session_post_process(st->session);
}


static void
tnl_stream_chan_close(ssh_session session, ssh_channel channel,
    void *userdata)
{
    tnl_stream_t  *st = userdata;

    (void) session;
    (void) channel;

    st->chan_closed = 1;
    st->chan_eof = 1;
    tnl_session_post_process(st->session);
}


/* the Unix side */

static void
tnl_stream_close_unix(tnl_stream_t *st)
{
    if (st->fd == -1) {
        return;
    }

    tnl_io_del(&st->io);
    close(st->fd);
    st->fd = -1;
}


/*
 * Tells nginx why nothing answers, while nothing went to it yet on this
 * connection: a 502 response carrying X-Tunnel-Error (refused, timeout,
 * closed, failed), which nginx's offline page turns into a sentence
 * (proxy_intercept_errors; the header is hidden from browsers).  Without
 * it nginx would only see a connection closed without a byte.
 */
static void
tnl_stream_answer_error(tnl_stream_t *st, const char *cause)
{
    char  buf[192];
    int   n;

    if (st->fd == -1 || st->bytes_down != 0 || st->unix_shut) {
        return;
    }

    n = snprintf(buf, sizeof(buf), "HTTP/1.1 502 Bad Gateway\r\n"
                 "X-Tunnel-Error: %s\r\n"
                 "Content-Length: 0\r\n"
                 "Connection: close\r\n"
                 "\r\n", cause);

    /* nothing was written: the socket buffer takes it whole */
    if (write(st->fd, buf, (size_t) n) == n) {
        st->bytes_down += (uint64_t) n;
    }
}


/* the reason of a refused forwarded-tcpip open, from libssh's error text */
static const char *
tnl_stream_open_cause(tnl_session_t *s)
{
    const char  *err;

    /* "Channel opening failure: channel 43 error (2) Connection refused" */

    err = ssh_get_error(s->ssh);

    if (err != NULL && strcasestr(err, "refused") != NULL) {
        return "refused";
    }

    if (err != NULL && strcasestr(err, "timed out") != NULL) {
        return "timeout";
    }

    return "failed";
}


static void
tnl_stream_update_io(tnl_stream_t *st)
{
    tnl_session_t  *s = st->session;
    uint32_t        ev = 0;

    if (st->fd == -1) {
        return;
    }

    if (st->refused) {
        ev = EPOLLIN;              /* waiting for the request: see opened */

    } else if (!st->unix_eof && st->up_len < TNL_STREAM_UP_MAX
               && !s->write_blocked
               && (st->state == TNL_STREAM_OPENING
                   || (st->state == TNL_STREAM_OPEN && !st->chan_closed)))
    {
        ev |= EPOLLIN;
    }

    if (st->down_blocked) {
        ev |= EPOLLOUT;
    }

    /*
     * A hung-up socket reports EPOLLHUP even with no interest at all: keep
     * it out of epoll while we have nothing to do with it, or a
     * level-triggered loop spins
     */

    if (ev == 0 && st->io.active) {
        tnl_io_del(&st->io);
        return;
    }

    if (ev != 0 && tnl_io_set(&st->io, ev) == -1) {
        tnl_log_error("epoll (stream): %s", strerror(errno));
        tnl_stream_abort(st);
    }
}


/* nginx -> client: write what the window allows */
static void
tnl_stream_flush_up(tnl_stream_t *st)
{
    tnl_session_t  *s = st->session;
    uint32_t        win;
    size_t          n;
    int             rc;

    if (st->state != TNL_STREAM_OPEN) {
        return;
    }

    if (st->chan_closed) {
        st->up_len = 0;            /* the client is gone: drop */
        return;
    }

    while (st->up_len > 0) {
        win = ssh_channel_window_size(st->chan);
        if (win == 0) {
            break;                 /* re-checked after each poll */
        }

        n = st->up_len < win ? st->up_len : win;

        rc = ssh_channel_write(st->chan, st->up, (uint32_t) n);
        if (rc == SSH_ERROR) {
            tnl_log_debug("stream: channel write: %s",
                          ssh_get_error(s->ssh));
            tnl_stream_abort(st);
            return;
        }

        if (rc == 0) {
            break;                 /* re-key in progress: not an error */
        }

        st->up_len -= (size_t) rc;
        if (st->up_len > 0) {
            memmove(st->up, st->up + rc, st->up_len);
        }

        s->unflushed += (size_t) rc;

        st->bytes_up += (uint64_t) rc;
        if (st->forward != NULL) {
            st->forward->bytes_out += (uint64_t) rc;
            tnl_metric_add(TNL_M_BYTES_OUT, (uint64_t) rc);
        }
    }

    if (st->unix_eof && st->up_len == 0 && !st->eof_sent) {
        (void) ssh_channel_send_eof(st->chan);
        st->eof_sent = 1;
    }

    /*
     * The packets usually leave at the end of the session's pass, with
     * those of the other streams served in this loop iteration, in one
     * write: every caller runs in a pass or posts one.  Bulk leaves at
     * once, and pauses reading from nginx while the socket is full:
     * libssh's buffer never holds much more than TNL_PUMP_UNFLUSHED.
     */

    if (s->unflushed >= TNL_PUMP_UNFLUSHED && !s->write_blocked) {
        s->unflushed = 0;

        if (ssh_blocking_flush(s->ssh, 0) == SSH_AGAIN) {
            s->write_blocked = 1;
            tnl_pump_update_interest(s);
        }
    }
}


/*
 * A read shorter than asked emptied the socket (a stream socket returns
 * what it holds): the next read would only say EAGAIN, and anything that
 * comes later, EOF included, makes the socket readable again.
 */
static void
tnl_stream_read_up(tnl_stream_t *st)
{
    ssize_t  n;
    size_t   want;

    while (st->up_len < TNL_STREAM_UP_MAX && !st->unix_eof) {
        want = TNL_STREAM_UP_MAX - st->up_len;
        n = read(st->fd, st->up + st->up_len, want);

        if (n > 0) {
            tnl_httplog_request(&st->http, st->up + st->up_len, (size_t) n,
                                tnl_now_ms());
            st->up_len += (size_t) n;

            if ((size_t) n < want) {
                break;
            }
            continue;
        }

        if (n == 0) {
            st->unix_eof = 1;
            break;
        }

        if (errno == EINTR) {
            continue;
        }

        if (errno != EAGAIN) {
            tnl_stream_abort(st);
            return;
        }

        break;
    }

    tnl_stream_flush_up(st);
}


/*
 * client -> nginx: what libssh kept while the Unix socket was full.
 *
 * libssh 0.10.6 re-opens the whole window (1.28 MB) on every
 * ssh_channel_read as soon as less than half of it is left, however much
 * it already holds: reading it piecemeal would let a fast client pile up
 * megabytes behind a slow reader.  So we take everything it holds in one
 * go, only when our own buffer is empty, and leave the rest of the flow
 * control to the window: while our buffer is not empty the data callback
 * takes nothing, and libssh stops re-opening the window for what it holds.
 * Bound per stream: about two windows.
 */
static int
tnl_stream_take_pending(tnl_stream_t *st)
{
    char    *p;
    size_t   cap;
    int      rc;

    cap = st->down_pending > TNL_STREAM_DOWN_MAX
          ? st->down_pending : TNL_STREAM_DOWN_MAX;

    if (st->down == NULL || st->down_cap < cap) {
        p = realloc(st->down, cap);
        if (p == NULL) {
            return -1;
        }
        st->down = p;
        st->down_cap = cap;
    }

    st->down_off = 0;
    st->down_len = 0;

    while (st->down_pending > 0) {
        /* libssh's buffer is not empty, so this never polls the socket */
        rc = ssh_channel_read_nonblocking(st->chan, st->down + st->down_len,
                                          (uint32_t) st->down_pending, 0);
        if (rc <= 0) {
            st->down_pending = 0;
            break;
        }

        st->down_len += (size_t) rc;
        st->down_pending -= (size_t) rc;
    }

    return 0;
}


static void
tnl_stream_drain_down(tnl_stream_t *st)
{
    ssize_t  n;

    for ( ;; ) {
        if (st->down_len > 0) {
            n = write(st->fd, st->down + st->down_off, st->down_len);

            if (n == -1) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno == EAGAIN) {
                    st->down_blocked = 1;
                    return;
                }
                tnl_stream_abort(st);
                return;
            }

            tnl_httplog_response(&st->http, st->down + st->down_off,
                                 (size_t) n, tnl_now_ms());
            st->down_off += (size_t) n;
            st->down_len -= (size_t) n;
            st->bytes_down += (uint64_t) n;
            if (st->forward != NULL) {
                st->forward->bytes_in += (uint64_t) n;
                tnl_metric_add(TNL_M_BYTES_IN, (uint64_t) n);
            }
            continue;
        }

        if (st->down_pending == 0 || st->state != TNL_STREAM_OPEN) {
            break;
        }

        if (tnl_stream_take_pending(st) == -1) {
            tnl_stream_abort(st);
            return;
        }
    }

    st->down_blocked = 0;

    if (st->down_cap > TNL_STREAM_DOWN_MAX) {
        free(st->down);             /* a burst is over: give it back */
        st->down = NULL;
        st->down_cap = 0;
    }
}


static void
tnl_stream_io_handler(tnl_io_t *io, uint32_t events)
{
    tnl_stream_t   *st = io->data;
    tnl_session_t  *s = st->session;

    if (st->refused) {
        tnl_stream_refused_read(st);
        return;
    }

    if (st->fd == -1 || st->state == TNL_STREAM_CLOSED) {
        return;
    }

    if (events & EPOLLOUT) {
        tnl_stream_drain_down(st);
    }

    if (st->fd != -1 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        && (st->io.events & EPOLLIN))
    {
        tnl_stream_read_up(st);
    }

    tnl_stream_update_io(st);
    tnl_session_post_process(s);
}


/* streams: open, finish */

static void
tnl_stream_opened(tnl_stream_t *st, int rc)
{
    if (rc == SSH_AGAIN) {
        return;
    }

    tnl_timer_del(&st->timer);           /* the open timeout */

    if (rc == SSH_OK) {
        st->state = TNL_STREAM_OPEN;

        if (st->abandoned) {
            (void) ssh_channel_send_eof(st->chan);
            (void) ssh_channel_close(st->chan);
            st->state = TNL_STREAM_CLOSED;
            tnl_session_post_sweep(st->session);
            return;
        }

        tnl_stream_flush_up(st);
        return;
    }

    /*
     * The client refused (nothing listens on its local port, or it does
     * not know this forward): closing nginx's connection without a byte
     * makes nginx answer 502.  The refusal can beat nginx's request (a
     * closed local port answers within a round trip): the 502 line names
     * the request, so we close once it came, or after a second.
     */

    st->failed = 1;
    st->cause = tnl_stream_open_cause(st->session);
    st->state = TNL_STREAM_CLOSED;

    if (st->fd != -1 && st->http.up_total == 0) {
        st->refused = 1;
        tnl_timer_add(&st->timer, TNL_STREAM_REFUSED_MS);
        tnl_stream_update_io(st);
        return;
    }

    tnl_stream_refused_read(st);
}


/* a refused stream: reads what nginx sent (for the log line), closes */
static void
tnl_stream_refused_read(tnl_stream_t *st)
{
    ssize_t  n;

    if (st->fd != -1 && st->up_len < TNL_STREAM_UP_MAX) {
        n = read(st->fd, st->up + st->up_len, TNL_STREAM_UP_MAX - st->up_len);
        if (n > 0) {
            tnl_httplog_request(&st->http, st->up + st->up_len, (size_t) n,
                                tnl_now_ms());

        } else if (n == -1 && errno == EAGAIN && st->refused
                   && tnl_timer_is_set(&st->timer))
        {
            return;                /* spurious wake-up: keep waiting */
        }
    }

    st->refused = 0;
    tnl_timer_del(&st->timer);
    tnl_stream_answer_error(st, st->cause != NULL ? st->cause : "failed");
    tnl_stream_close_unix(st);
    tnl_session_post_sweep(st->session);
}


static void
tnl_stream_refused_timer(tnl_timer_t *t)
{
    tnl_stream_t  *st = t->data;

    if (st->state == TNL_STREAM_OPENING) {
        /*
         * the client did not answer the open: nginx is told so, and the
         * channel is closed once the open resolves (never freed before)
         */
        tnl_log_info("tunnel %s: the client did not answer a channel open "
                     "within %d s", st->name, TNL_STREAM_OPEN_MS / 1000);
        st->failed = 1;
        st->cause = "timeout";
        tnl_stream_answer_error(st, st->cause);
        tnl_stream_abort(st);
        return;
    }

    st->refused = 0;               /* nginx sent nothing: close as is */
    tnl_stream_answer_error(st, st->cause != NULL ? st->cause : "failed");
    tnl_stream_close_unix(st);
    tnl_session_post_sweep(st->session);
}


static void
tnl_stream_start(tnl_forward_t *f, int fd)
{
    tnl_session_t  *s = f->session;
    tnl_stream_t   *st;
    int             rc, size;

    st = calloc(1, sizeof(tnl_stream_t));
    if (st == NULL) {
        close(fd);
        return;
    }

    st->up = malloc(TNL_STREAM_UP_MAX);
    st->chan = ssh_channel_new(s->ssh);

    if (st->up == NULL || st->chan == NULL) {
        tnl_log_error("tunnel %s: cannot create a stream: %s", f->name,
                      st->chan == NULL ? ssh_get_error(s->ssh) : "no memory");
        if (st->chan != NULL) {
            ssh_channel_free(st->chan);
        }
        free(st->up);
        free(st);
        close(fd);
        return;
    }

    /*
     * Room toward nginx: with the default 208 KB, a 1 GiB download moved
     * about 20 % less here (measured: 480-550 against 590-700 MB/s with
     * 256 KB to 1 MB asked; nginx reads 4 KB at a time without proxy
     * buffering, and a fuller socket lets each side do more per wake-up).
     * Kernel memory, used only while nginx lags behind; capped by
     * net.core.wmem_max.
     */

    size = TNL_STREAM_SNDBUF;
    (void) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));

    st->session = s;
    st->forward = f;
    st->fd = fd;
    st->state = TNL_STREAM_OPENING;
    st->started_ms = tnl_now_ms();
    st->origin_port = 1024 + (int) (s->next_origin_port++ % 64000);
    snprintf(st->name, sizeof(st->name), "%s", f->name);
    tnl_httplog_init(&st->http, tnl_stream_log_record, st);

    st->cb.userdata = st;
    st->cb.channel_data_function = tnl_stream_chan_data;
    st->cb.channel_eof_function = tnl_stream_chan_eof;
    st->cb.channel_close_function = tnl_stream_chan_close;
    ssh_callbacks_init(&st->cb);
    ssh_set_channel_callbacks(st->chan, &st->cb);

    tnl_io_init(&st->io, s->loop, fd, tnl_stream_io_handler, st);
    tnl_timer_init(&st->timer, s->loop, tnl_stream_refused_timer, st);
    tnl_timer_add(&st->timer, TNL_STREAM_OPEN_MS);

    st->next = s->streams;
    if (s->streams != NULL) {
        s->streams->prev = st;
    }
    s->streams = st;
    s->nstreams++;

    f->streams++;
    tnl_metric_add(TNL_M_STREAMS, 1);
    f->open_streams++;

    /* echo exactly what the client asked for, or it will not match */
    rc = ssh_channel_open_reverse_forward(st->chan, f->bind_address,
                                          f->bind_port, "127.0.0.1",
                                          st->origin_port);
    st->open_packets = s->pkt_count.in_packets;
    tnl_stream_opened(st, rc);
    tnl_stream_update_io(st);
}


void
tnl_pump_accept_handler(tnl_io_t *io, uint32_t events)
{
    tnl_forward_t  *f = io->data;
    tnl_session_t  *s = f->session;
    int             i, fd;

    (void) events;

    if (f->state != TNL_FORWARD_ACTIVE || s->closing) {
        return;
    }

    for (i = 0; i < TNL_PUMP_ACCEPTS; i++) {
        fd = accept4(f->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }

            if (errno == EMFILE || errno == ENFILE) {
                tnl_forward_accept_pause(f, errno);     /* or it spins */
            } else if (errno != EAGAIN) {
                tnl_log_error("tunnel %s: accept: %s", f->name,
                              strerror(errno));
            }
            break;
        }

        tnl_stream_start(f, fd);

        if (s->closing) {
            break;
        }
    }

    tnl_session_post_process(s);
}


void
tnl_stream_abort(tnl_stream_t *st)
{
    if (st->state == TNL_STREAM_CLOSED) {
        return;
    }

    /*
     * May run inside the data callback (write failed): only the Unix side
     * is closed here; the channel is closed by the next process pass
     */

    tnl_stream_close_unix(st);
    st->unix_eof = 1;
    st->unix_shut = 1;
    st->abandoned = 1;
    st->up_len = 0;
    st->down_len = 0;
    st->down_blocked = 0;

    tnl_session_post_process(st->session);
    tnl_session_post_sweep(st->session);
}


/* decides whether an open stream is finished; closes its channel if so */
static void
tnl_stream_check_done(tnl_stream_t *st)
{
    if (st->state != TNL_STREAM_OPEN) {
        return;
    }

    if (st->abandoned) {
        (void) ssh_channel_send_eof(st->chan);
        (void) ssh_channel_close(st->chan);
        st->state = TNL_STREAM_CLOSED;
        tnl_session_post_sweep(st->session);
        return;
    }

    /* the client's EOF goes on to nginx once its bytes are delivered */

    if (st->chan_eof && !st->unix_shut && st->down_len == 0
        && st->down_pending == 0 && st->fd != -1)
    {
        /* the app took a request and closed without a byte of answer */
        if (st->bytes_down == 0 && st->bytes_up > 0) {
            tnl_stream_answer_error(st, "closed");
        }

        (void) shutdown(st->fd, SHUT_WR);
        st->unix_shut = 1;
    }

    if ((st->chan_closed && st->unix_shut) || (st->eof_sent && st->unix_shut))
    {
        tnl_stream_close_unix(st);
        (void) ssh_channel_send_eof(st->chan);
        (void) ssh_channel_close(st->chan);
        st->state = TNL_STREAM_CLOSED;
        tnl_session_post_sweep(st->session);
    }
}


void
tnl_pump_process(tnl_session_t *s)
{
    tnl_stream_t    *st;
    tnl_forward_t   *f;
    int              rc;

    for (st = s->streams; st != NULL; st = st->next) {

        /*
         * the answer to an open comes in a packet: asking again before
         * one was parsed would only cost a poll
         */

        if (st->state == TNL_STREAM_OPENING
            && st->open_packets != s->pkt_count.in_packets)
        {
            f = st->forward;
            rc = ssh_channel_open_reverse_forward(st->chan,
                     f != NULL ? f->bind_address : "localhost",
                     f != NULL ? f->bind_port : 80,
                     "127.0.0.1", st->origin_port);
            st->open_packets = s->pkt_count.in_packets;
            tnl_stream_opened(st, rc);
        }

        if (st->state == TNL_STREAM_OPEN) {
            if (st->fd != -1 && !st->down_blocked
                && (st->down_len > 0 || st->down_pending > 0))
            {
                tnl_stream_drain_down(st);
            }

            tnl_stream_flush_up(st);
            tnl_stream_check_done(st);
        }

        tnl_stream_update_io(st);
    }
}


void
tnl_pump_update_interest(tnl_session_t *s)
{
    tnl_stream_t  *st;

    for (st = s->streams; st != NULL; st = st->next) {
        tnl_stream_update_io(st);
    }
}


/* "512 B", "1.5 KB", "12.0 MB" */
static const char *
tnl_stream_size(char *buf, size_t size, uint64_t bytes)
{
    double  b = (double) bytes;

    if (bytes < 1024) {
        snprintf(buf, size, "%llu B", (unsigned long long) bytes);
    } else if (b < 1024 * 1024) {
        snprintf(buf, size, "%.1f KB", b / 1024);
    } else if (b < 1024.0 * 1024 * 1024) {
        snprintf(buf, size, "%.1f MB", b / (1024 * 1024));
    } else {
        snprintf(buf, size, "%.1f GB", b / (1024.0 * 1024 * 1024));
    }

    return buf;
}


static const char *
tnl_stream_cause_text(tnl_stream_t *st)
{
    if (st->cause != NULL && strcmp(st->cause, "timeout") == 0) {
        return "your ssh client did not open the connection to your local "
               "app in time";
    }

    if (st->cause != NULL && strcmp(st->cause, "failed") == 0) {
        return "your ssh client could not connect to your local app";
    }

    return "your local app refused the connection (is it running?)";
}


/*
 * One record of the stream's HTTP observer: a line for the person on the
 * session channel, and for tunneld's debug log.  Runs from the observer,
 * which may be inside a channel data callback: it only formats and queues
 * text (tnl_session_printf_later: the lines of a burst of requests go out
 * together, a few milliseconds later).
 */
static void
tnl_stream_log_record(void *data, const tnl_httplog_record_t *r)
{
    static const char  *kinds[] = { "done", "incomplete", "upgraded", "raw" };

    tnl_stream_t       *st = data;
    tnl_session_t      *s = st->session;
    const char         *method, *path, *eol;
    char                status[8], body[32], up[32], down[32];
    unsigned long long  ms;

    st->records++;

    if (st->forward != NULL) {
        st->forward->requests++;
        st->forward->last_request = time(NULL);
    }

    tnl_metric_add(TNL_M_REQUESTS, 1);

    method = r->method[0] ? r->method : "-";
    path = r->path[0] ? r->path : "-";
    ms = (unsigned long long) r->ms;

    if (r->status != 0) {
        snprintf(status, sizeof(status), "%d", r->status);
    } else {
        snprintf(status, sizeof(status), "%s", st->failed ? "502" : "-");
    }

    tnl_log_debug("tunnel %s: %s %s %s %s%s%s body %llu up %llu down %llu "
                  "%llums", st->name, kinds[r->kind], method, path, status,
                  r->upgrade[0] ? " " : "", r->upgrade,
                  (unsigned long long) r->body, (unsigned long long) r->up,
                  (unsigned long long) r->down, ms);

    if (!s->shell || s->closing) {
        return;
    }

    eol = tnl_session_eol(s);

    switch (r->kind) {

    case TNL_HTTPLOG_DONE:
        tnl_session_printf_later(s, "%s %s %s %s %llu ms%s", method, path,
                                 status,
                                 tnl_stream_size(body, sizeof(body), r->body),
                                 ms, eol);
        return;

    case TNL_HTTPLOG_UPGRADED:
        tnl_session_printf_later(s, "%s %s %s %s, %s to your app, %s from "
                                 "it, %llu ms%s", method, path, status,
                                 r->upgrade,
                                 tnl_stream_size(up, sizeof(up), r->up),
                                 tnl_stream_size(down, sizeof(down), r->down),
                                 ms, eol);
        return;

    case TNL_HTTPLOG_INCOMPLETE:
        if (st->failed) {
            tnl_session_printf_later(s, "%s %s -> 502: %s%s", method, path,
                                     tnl_stream_cause_text(st), eol);

        } else if (r->status != 0) {
            tnl_session_printf_later(s, "%s %s %s %s %llu ms (cut short)%s",
                                     method, path, status,
                                     tnl_stream_size(body, sizeof(body),
                                                     r->body),
                                     ms, eol);

        } else {
            tnl_session_printf_later(s, "%s %s - no answer, closed after "
                                     "%llu ms%s", method, path, ms, eol);
        }
        return;

    default:
        tnl_session_printf_later(s, "%s %s %s (not HTTP) %s to your app, %s "
                                 "from it, %llu ms%s", method, path, status,
                                 tnl_stream_size(up, sizeof(up), r->up),
                                 tnl_stream_size(down, sizeof(down), r->down),
                                 ms, eol);
        return;
    }
}


/* at the end of a stream: what its observer still holds */
static void
tnl_stream_log(tnl_stream_t *st)
{
    tnl_session_t  *s = st->session;

    if (st->logged) {
        return;
    }

    st->logged = 1;

    (void) tnl_httplog_close(&st->http, tnl_now_ms());

    tnl_log_debug("tunnel %s: stream closed: %u requests, up %llu down %llu "
                  "%llums", st->name, st->records,
                  (unsigned long long) st->bytes_up,
                  (unsigned long long) st->bytes_down,
                  (unsigned long long) (tnl_now_ms() - st->started_ms));

    if (st->failed && st->records == 0 && s->shell && !s->closing) {
        /* refused before nginx sent a byte */
        tnl_session_printf_later(s, "- - -> 502: %s%s",
                                 tnl_stream_cause_text(st),
                                 tnl_session_eol(s));
    }
}


void
tnl_pump_sweep(tnl_session_t *s, int final)
{
    tnl_stream_t  *st, *next;

    for (st = s->streams; st != NULL; st = next) {
        next = st->next;

        if (!final && (st->state != TNL_STREAM_CLOSED || st->refused)) {
            continue;
        }

        tnl_timer_del(&st->timer);
        tnl_stream_log(st);
        tnl_stream_close_unix(st);

        if (st->chan != NULL) {
            ssh_remove_channel_callbacks(st->chan, &st->cb);
            ssh_channel_free(st->chan);
            st->chan = NULL;
        }

        if (st->forward != NULL && st->forward->open_streams > 0) {
            st->forward->open_streams--;
        }

        if (st->prev != NULL) {
            st->prev->next = st->next;
        } else {
            s->streams = st->next;
        }
        if (st->next != NULL) {
            st->next->prev = st->prev;
        }
        s->nstreams--;

        free(st->up);
        free(st->down);
        free(st);
    }
}
