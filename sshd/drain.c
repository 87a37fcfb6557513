/*
 * Read drain for libssh's socket reads: see drain.h and docs/INTERNALS.md.
 *
 * The rules that keep libssh's state machine as it would be with the
 * real calls:
 *
 *  - bytes reach libssh in the order, and with the EOF or error, the
 *    kernel gave them; only when and how many per call change;
 *  - poll reports a socket readable without asking the kernel only while
 *    bytes, an EOF or an error wait in its read-ahead (then libssh's next
 *    recv returns at once, as after a real POLLIN);
 *  - a session that reads little (an interactive or idle tunnel) holds
 *    no buffer: read-ahead starts once a read filled libssh's 4 KB, or
 *    for the one poll after epoll reported the socket readable
 *    (tnl_drain_hint), and the buffer goes back to a small per-process
 *    cache when it has been emptied by a read that did not fill it;
 *  - poll reports a socket writable without asking the kernel only
 *    while the kernel's last word (a poll through ours, or epoll:
 *    tnl_drain_hint_write) was "writable" and no send since was refused
 *    (EAGAIN) or cut short; a send the kernel refuses returns 0 ("nothing
 *    taken"), never EAGAIN, which libssh would take for a dead
 *    connection: libssh keeps the bytes in its own output buffer, asks
 *    for POLLOUT and reports SSH_AGAIN, exactly as after a short write,
 *    so nothing is held here and nothing can be reordered or lost; any
 *    other error reaches libssh as it came;
 *  - a poll with timeout 0 (all of tunneld's) finds a socket not
 *    readable without asking the kernel after a read of it came back
 *    short (a stream socket returns all it holds) and until epoll, level
 *    triggered, reports it readable (tnl_drain_hint, tnl_drain_ready) or
 *    a kernel's poll says POLLIN: libssh's ssh_message_get polls once per
 *    packet parsed, and would otherwise ask the kernel what the read just
 *    told;
 *  - closing an fd (libssh closes its socket itself on EOF or error)
 *    forgets its read-ahead before the number can be reused.
 *
 * Only the thread that attached a socket (the worker's loop) uses the
 * table: another thread (resolve.c's getaddrinfo, whose NSS modules may
 * call poll, recv, send or close) goes straight to libc, so it never reads the
 * table while the loop reallocates it.  The libc functions are looked up
 * before main (a constructor), not lazily from two threads.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "drain.h"


#define TNL_DRAIN_SIZE   65536   /* one recv from the client's socket */
#define TNL_DRAIN_CACHE  8       /* free buffers kept per process */
#define TNL_DRAIN_QUICKACK  32    /* first reads of a connection: its
                                     handshake (tnl_drain_quickack) */


typedef int (*tnl_poll_pt)(struct pollfd *fds, nfds_t nfds, int timeout);
typedef int (*tnl_close_pt)(int fd);

static tnl_poll_pt     tnl_real_poll;
static tnl_close_pt    tnl_real_close;

static tnl_drain_t   **tnl_drains;      /* indexed by fd */
static int             tnl_drains_n;
static int             tnl_drains_attached;

static unsigned char  *tnl_drain_cache[TNL_DRAIN_CACHE];
static int             tnl_drain_cached;

static __thread int    tnl_drain_owner;   /* this thread attached sockets */


__attribute__((constructor)) static void
tnl_drain_resolve(void)
{
    tnl_real_poll = (tnl_poll_pt) dlsym(RTLD_NEXT, "poll");
    tnl_real_close = (tnl_close_pt) dlsym(RTLD_NEXT, "close");

    if (tnl_real_poll == NULL || tnl_real_close == NULL) {
        abort();   /* no libc poll/close: nothing can work */
    }
}


static tnl_drain_t *
tnl_drain_find(int fd)
{
    if (!tnl_drain_owner || tnl_drains_attached == 0 || fd < 0
        || fd >= tnl_drains_n)
    {
        return NULL;
    }

    return tnl_drains[fd];
}


static void
tnl_drain_release(tnl_drain_t *d)
{
    if (d->buf == NULL) {
        return;
    }

    if (tnl_drain_cached < TNL_DRAIN_CACHE) {
        tnl_drain_cache[tnl_drain_cached++] = d->buf;

    } else {
        free(d->buf);
    }

    d->buf = NULL;
    d->pos = 0;
    d->len = 0;
}


void
tnl_drain_init(tnl_drain_t *d)
{
    memset(d, 0, sizeof(tnl_drain_t));
    d->fd = -1;
}


int
tnl_drain_attach(tnl_drain_t *d, int fd)
{
    tnl_drain_t  **p;
    int            n;

    tnl_drain_owner = 1;

    if (fd < 0) {
        return -1;
    }

    if (fd >= tnl_drains_n) {
        n = tnl_drains_n ? tnl_drains_n : 1024;
        while (n <= fd) {
            n *= 2;
        }

        p = realloc(tnl_drains, n * sizeof(tnl_drain_t *));
        if (p == NULL) {
            return -1;   /* the session reads 4 KB at a time, as before */
        }

        memset(p + tnl_drains_n, 0,
               (n - tnl_drains_n) * sizeof(tnl_drain_t *));
        tnl_drains = p;
        tnl_drains_n = n;
    }

    if (tnl_drains[fd] != NULL) {
        tnl_drain_detach(tnl_drains[fd]);   /* stale: cannot happen */
    }

    tnl_drain_init(d);
    d->fd = fd;
    d->quickack = TNL_DRAIN_QUICKACK;
    tnl_drains[fd] = d;
    tnl_drains_attached++;

    return 0;
}


void
tnl_drain_detach(tnl_drain_t *d)
{
    if (d->fd >= 0 && d->fd < tnl_drains_n && tnl_drains[d->fd] == d) {
        tnl_drains[d->fd] = NULL;
        tnl_drains_attached--;
    }

    tnl_drain_release(d);
    tnl_drain_init(d);
}


/*
 * During the handshake, ACK what was read at once.  A client that has not
 * asked for TCP_NODELAY (OpenSSH's ssh without a terminal) holds its small
 * KEX_ECDH_INIT (Nagle) until the server ACKs its KEXINIT; tunneld sends
 * its own KEXINIT at accept, before reading the client's, so it has
 * nothing to send that would carry the ACK, and the kernel, seeing
 * a conversation, delays it: 40 ms more on every login (docs/BENCHMARKS.md,
 * workload d).  TCP_QUICKACK is not sticky, hence after every read, and
 * only for the first reads: afterwards ACKs ride on the answers.
 */
static void
tnl_drain_quickack(tnl_drain_t *d)
{
    int  on = 1;

    if (setsockopt(d->fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof(on)) == -1)
    {
        d->quickack = 0;   /* not TCP: nothing to do */
        return;
    }

    d->quickack--;
}


/*
 * POLLOUT can be answered without the kernel: it last said writable, no
 * send since was refused or cut short, and libssh's sends come through
 * ours (one that sent another way would meet a full socket with nobody
 * to turn EAGAIN into 0)
 */
#define tnl_drain_writable(d)  ((d)->writable && (d)->sent)


/* what a read of the socket told: whether it holds more */
static void
tnl_drain_read(tnl_drain_t *d, ssize_t n, size_t asked)
{
    if (n > 0 && d->quickack) {
        tnl_drain_quickack(d);
    }

    if (n > 0) {
        d->empty = ((size_t) n < asked);

    } else if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        d->empty = 1;

    } else {
        d->empty = 0;   /* EOF or error: kept for libssh (buffered) */
    }
}


/*
 * Reads ahead into d's buffer (the caller saw it empty).  Returns what
 * recv returned; an EOF or error is kept for libssh's next recv unless
 * report is set (then the caller returns it itself).
 */
static ssize_t
tnl_drain_fill(tnl_drain_t *d)
{
    ssize_t  n;

    if (d->before_read != NULL) {
        d->before_read(d->before_data);
    }

    if (d->buf == NULL) {
        if (tnl_drain_cached > 0) {
            d->buf = tnl_drain_cache[--tnl_drain_cached];

        } else {
            d->buf = malloc(TNL_DRAIN_SIZE);
            if (d->buf == NULL) {
                d->bulk = 0;
                errno = EAGAIN;
                return -2;   /* read straight into libssh's buffer */
            }
        }
    }

    d->pos = 0;
    d->len = 0;

    n = recvfrom(d->fd, d->buf, TNL_DRAIN_SIZE, MSG_DONTWAIT, NULL, NULL);
    if (n > 0) {
        d->len = n;
    }

    tnl_drain_read(d, n, TNL_DRAIN_SIZE);

    return n;
}


ssize_t
recv(int fd, void *buf, size_t len, int flags)
{
    tnl_drain_t  *d;
    ssize_t       n;
    size_t        avail;

    d = tnl_drain_find(fd);

    if (d != NULL && flags == 0 && d->before_read != NULL) {
        d->before_read(d->before_data);
    }

    if (d == NULL || flags != 0) {
        return recvfrom(fd, buf, len, flags, NULL, NULL);
    }

    if (d->len == d->pos) {

        if (d->eof) {
            d->eof = 0;
            return 0;
        }

        if (d->err) {
            errno = d->err;
            d->err = 0;
            return -1;
        }

        /*
         * read ahead only if libssh's polls come through ours: bytes read
         * ahead are invisible to the kernel's poll
         */
        if (!d->bulk || !d->polled || len >= TNL_DRAIN_SIZE) {
            tnl_drain_release(d);
            n = recvfrom(fd, buf, len, 0, NULL, NULL);
            tnl_drain_read(d, n, len);
            d->bulk = (n > 0 && (size_t) n == len);
            return n;
        }

        n = tnl_drain_fill(d);

        if (n == -2) {
            n = recvfrom(fd, buf, len, 0, NULL, NULL);
            tnl_drain_read(d, n, len);
            return n;
        }

        if (n <= 0) {
            /* nothing read ahead: libssh sees what recv saw */
            d->bulk = 0;
            tnl_drain_release(d);
            return n;
        }

        /* a read-ahead that did not fill libssh's read: socket drained */
        d->bulk = ((size_t) n > len);
    }

    avail = d->len - d->pos;
    if (len > avail) {
        len = avail;
    }

    memcpy(buf, d->buf + d->pos, len);
    d->pos += len;

    if (d->pos == d->len && !d->bulk) {
        tnl_drain_release(d);
    }

    return len;
}


/*
 * libssh 0.10.6 sends in ssh_socket_unbuffered_write (src/socket.c):
 * send(fd, buf, len, MSG_NOSIGNAL) of its whole output buffer, only after
 * a poll reported POLLOUT; it keeps what a short write left and asks for
 * POLLOUT again, but takes any -1, EAGAIN included, for a dead
 * connection.  For an attached socket a refused send is therefore
 * reported as 0 bytes taken, and a refused or short send ends what poll
 * may assume (the kernel is asked again).
 */
ssize_t
send(int fd, const void *buf, size_t len, int flags)
{
    tnl_drain_t  *d;
    ssize_t       n;

    n = sendto(fd, buf, len, flags, NULL, 0);

    d = tnl_drain_find(fd);
    if (d == NULL) {
        return n;
    }

    d->sent = 1;

    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        d->writable = 0;
        return 0;
    }

    if (n < 0 || (size_t) n < len) {
        d->writable = 0;
    }

    return n;
}


/*
 * What poll can answer for an attached socket without the kernel:
 * POLLIN while its read-ahead holds bytes (or an EOF or error), POLLOUT
 * while it is known writable; 0 if the kernel must be asked, or if
 * nothing asked is ready (tnl_drain_idle).
 */
static short
tnl_drain_known(tnl_drain_t *d, short events)
{
    short  known = 0;

    if ((events & POLLIN) && tnl_drain_buffered(d)) {
        known |= POLLIN;
    }

    if ((events & POLLOUT) && tnl_drain_writable(d)) {
        known |= POLLOUT;
    }

    return known;
}


/*
 * Whether a poll that must not wait can find nothing asked of an attached
 * socket ready without the kernel: nothing to read since a short read,
 * and POLLOUT not asked (whether it is writable only the kernel knows)
 */
static int
tnl_drain_idle(tnl_drain_t *d, short events)
{
    return !(events & POLLOUT)
           && (!(events & POLLIN) || (d->empty && !tnl_drain_buffered(d)));
}


/*
 * While the read-ahead of a socket polled for POLLIN holds bytes (or an
 * EOF or error), it is readable; while the kernel's last word on a socket
 * polled for POLLOUT was "writable" and no send since was refused or cut
 * short, it is writable.  When every fd polled is an attached socket
 * with such an answer (libssh polls one socket per session event), poll
 * answers at once; otherwise it asks the kernel (without waiting if some
 * answer is known) and adds POLLIN where bytes are read ahead.
 *
 * An answer without the kernel may leave out what the kernel would have
 * added (POLLIN for bytes not read ahead yet, POLLOUT while not known
 * writable, POLLHUP): as if it had come a moment later.  Epoll, level
 * triggered, still reports the socket, and a refused send costs nothing
 * but the kernel's poll that follows.  POLLOUT is not reported while
 * unknown: libssh keeps it asked for as long as every poll also reports
 * POLLIN (its socket callback forgets the poll handle after handing data
 * on, so it cannot clear it), i.e. during a whole download.  A bulk
 * socket with an empty read-ahead is read ahead here (one recv instead
 * of poll + recv) when POLLOUT is not asked or known: otherwise a steady
 * stream would never let a real poll report POLLOUT, and libssh's window
 * adjustments would wait until the client ran out of window.
 */
int
poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    tnl_drain_t  *d;
    nfds_t        i;
    ssize_t       n;
    int           ready, rc, only;

    if (tnl_real_poll == NULL) {
        tnl_drain_resolve();
    }

    if (!tnl_drain_owner || tnl_drains_attached == 0 || nfds == 0) {
        return tnl_real_poll(fds, nfds, timeout);
    }

    ready = 0;
    only = 1;

    for (i = 0; i < nfds; i++) {
        d = tnl_drain_find(fds[i].fd);

        if (d == NULL) {
            only = 0;
            continue;
        }

        if (fds[i].events & POLLIN) {
            d->polled = 1;

            /*
             * a socket epoll has just reported readable is read ahead at
             * once, POLLOUT asked or not: the recv that follows a real
             * poll would come anyway, the poll itself is saved (a small
             * request costs one recv per wake-up, not poll + recv)
             */
            if (!tnl_drain_buffered(d)
                && (d->readable
                    || (d->bulk
                        && (!(fds[i].events & POLLOUT)
                            || tnl_drain_writable(d)))))
            {
                n = tnl_drain_fill(d);

                if (n == 0) {
                    d->eof = 1;

                } else if (n == -1 && errno != EAGAIN
                           && errno != EWOULDBLOCK)
                {
                    d->err = errno;

                } else if (n < 0) {
                    d->bulk = 0;    /* drained: the kernel tells from now */
                    tnl_drain_release(d);
                }
            }

            d->readable = 0;
        }

        if (tnl_drain_known(d, fds[i].events)) {
            ready++;

        } else if (timeout != 0 || !tnl_drain_idle(d, fds[i].events)) {
            only = 0;
        }
    }

    if (ready == 0 && !only) {
        rc = tnl_real_poll(fds, nfds, timeout);
        goto polled;
    }

    if (only) {
        for (i = 0; i < nfds; i++) {
            fds[i].revents = tnl_drain_known(tnl_drain_find(fds[i].fd),
                                             fds[i].events);
        }

        return ready;
    }

    rc = tnl_real_poll(fds, nfds, 0);

polled:

    if (rc < 0) {
        return rc;
    }

    rc = 0;

    for (i = 0; i < nfds; i++) {
        d = tnl_drain_find(fds[i].fd);

        if (d != NULL) {

            /* the kernel's word is the latest */
            if (fds[i].events & POLLOUT) {
                d->writable = ((fds[i].revents
                                & (POLLOUT | POLLERR | POLLHUP)) == POLLOUT);
            }

            if (fds[i].events & POLLIN) {
                d->empty = !(fds[i].revents & (POLLIN | POLLERR | POLLHUP));
            }

            if ((fds[i].events & POLLIN) && tnl_drain_buffered(d)) {
                fds[i].revents |= POLLIN;
            }
        }

        if (fds[i].revents) {
            rc++;
        }
    }

    return rc;
}


int
close(int fd)
{
    tnl_drain_t  *d;

    if (tnl_real_close == NULL) {
        tnl_drain_resolve();
    }

    d = tnl_drain_find(fd);
    if (d != NULL) {
        tnl_drain_detach(d);
    }

    return tnl_real_close(fd);
}
