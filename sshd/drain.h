/*
 * Read drain: libssh 0.10.6 reads its socket 4 KB at a time (MAX_BUF_SIZE
 * in src/socket.c), one poll(2) + recv(2) pair per 4 KB, and exports no
 * way to read more (its poll handles and socket callbacks are not in
 * libssh.map).  tunneld therefore defines poll, recv and close itself
 * (the dynamic linker binds libssh's calls to them, as to any symbol the
 * executable defines): for an SSH session's socket, recv reads up to
 * TNL_DRAIN_SIZE at once into a read-ahead buffer and hands libssh its
 * 4 KB from there, and poll reports the socket readable without a system
 * call while that buffer holds bytes.  It defines send too: poll reports
 * the socket writable without a system call while the kernel last said
 * so and no send has been refused or cut short since, and a send the
 * kernel refuses (EAGAIN) tells libssh "0 bytes taken" (it keeps them
 * and waits for POLLOUT, as after a short write) instead of an error it
 * would take for a dead connection.  A poll that must not wait finds an
 * attached socket "not readable" without a system call after a read of it
 * came back short, until epoll reports it readable.  Every other fd
 * passes straight through.  See docs/INTERNALS.md, "Read drain".
 */

#ifndef TNL_DRAIN_H
#define TNL_DRAIN_H

#include <stddef.h>


typedef struct {
    int             fd;        /* -1: not attached */
    unsigned        bulk:1;    /* the last read filled what was asked */
    unsigned        eof:1;     /* read-ahead saw EOF: report it next */
    unsigned        polled:1;  /* libssh's poll came through ours */
    unsigned        readable:1; /* epoll said readable: the next poll
                                   reads ahead instead of polling */
    unsigned        sent:1;    /* libssh's send came through ours */
    unsigned        writable:1; /* the kernel said writable, and no send
                                   since was refused or cut short */
    unsigned        quickack:6; /* kernel reads left that ACK at once */
    unsigned        empty:1;   /* a read came back short: nothing to read
                                  until epoll or the kernel's poll says */
    int             err;       /* read-ahead saw this errno: report it */

    /*
     * Called before any read of the socket for libssh, while set: the
     * session chooses its cipher offer from the client's identification
     * line (a MSG_PEEK, which passes through) before libssh can take it
     */
    void          (*before_read)(void *data);
    void           *before_data;
    unsigned char  *buf;       /* read-ahead, NULL while not bulk */
    size_t          pos;
    size_t          len;
} tnl_drain_t;


void tnl_drain_init(tnl_drain_t *d);
int tnl_drain_attach(tnl_drain_t *d, int fd);
void tnl_drain_detach(tnl_drain_t *d);

/*
 * epoll has just reported the socket readable (or hung up): libssh's next
 * poll of it reads ahead (one recv) instead of asking the kernel again;
 * cleared by that poll or by tnl_drain_unhint() at the end of the pass
 */
#define tnl_drain_hint(d)                                                    \
    ((d)->readable = ((d)->fd >= 0), (d)->empty = 0)

/* epoll has reported the socket readable (or hung up), reading paused */
#define tnl_drain_ready(d)   (d)->empty = 0
#define tnl_drain_unhint(d)  (d)->readable = 0

/*
 * epoll has just reported the socket writable: libssh's next poll for
 * POLLOUT is answered without asking the kernel (until a send is refused
 * or cut short)
 */
#define tnl_drain_hint_write(d)  (d)->writable = ((d)->fd >= 0)

/* bytes (or an EOF or error) read ahead that libssh has not taken */
#define tnl_drain_buffered(d)  ((d)->len > (d)->pos || (d)->eof || (d)->err)

#endif /* TNL_DRAIN_H */
