/*
 * tunneld's event loop: epoll for readiness plus a binary min-heap of
 * timers.  One loop per worker thread; every object registered with a loop
 * belongs to that loop's thread.  The loop owns no fd and no callback data:
 * whoever adds an io removes it before closing the fd.
 */

#ifndef TNL_LOOP_H
#define TNL_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>


typedef struct tnl_loop_s   tnl_loop_t;
typedef struct tnl_io_s     tnl_io_t;
typedef struct tnl_timer_s  tnl_timer_t;

typedef void (*tnl_io_handler_pt)(tnl_io_t *io, uint32_t events);
typedef void (*tnl_timer_handler_pt)(tnl_timer_t *t);


struct tnl_io_s {
    int                   fd;
    uint32_t              events;      /* EPOLLIN | EPOLLOUT ... as added */
    unsigned              active:1;    /* in epoll */
    tnl_io_handler_pt     handler;
    void                 *data;
    tnl_loop_t           *loop;
};


struct tnl_timer_s {
    uint64_t              when;        /* tnl_now_ms() deadline */
    int                   index;       /* in the heap, -1 when not set */
    tnl_timer_handler_pt  handler;
    void                 *data;
    tnl_loop_t           *loop;
};


tnl_loop_t *tnl_loop_create(void);
void tnl_loop_destroy(tnl_loop_t *loop);

/* runs until tnl_loop_stop(); returns 0, or -1 if epoll_wait failed */
int tnl_loop_run(tnl_loop_t *loop);
void tnl_loop_stop(tnl_loop_t *loop);

/* runs one iteration waiting at most max_ms (for tests and shutdown) */
int tnl_loop_once(tnl_loop_t *loop, int max_ms);

/*
 * Registers or changes io->fd's interest; events are EPOLLIN/EPOLLOUT
 * (level-triggered).  tnl_io_set with events == 0 keeps the fd registered
 * but silent.  tnl_io_del is idempotent.  Returns 0 or -1 (errno set).
 */
void tnl_io_init(tnl_io_t *io, tnl_loop_t *loop, int fd,
    tnl_io_handler_pt handler, void *data);
int tnl_io_set(tnl_io_t *io, uint32_t events);
/*
 * The fd was closed by the library that owns it (libssh on EOF or error,
 * libpq switching sockets): the kernel removed it from epoll when it was
 * closed, and its number may already belong to a new connection, so this
 * only marks io inactive and never calls epoll_ctl on that number (which
 * would remove or change the new owner's registration).
 */
void tnl_io_forget(tnl_io_t *io);
void tnl_io_del(tnl_io_t *io);

/*
 * How many ios are in epoll (silent ones included): nearly every fd a
 * worker holds is, so this is its descriptor count without a syscall.
 */
int tnl_loop_ios(tnl_loop_t *loop);

/* timers: add (re)arms after ms; del is idempotent; both O(log n) */
void tnl_timer_init(tnl_timer_t *t, tnl_loop_t *loop,
    tnl_timer_handler_pt handler, void *data);
void tnl_timer_add(tnl_timer_t *t, uint64_t ms);
void tnl_timer_del(tnl_timer_t *t);
int tnl_timer_is_set(const tnl_timer_t *t);

/*
 * Deferred work: fn(data) runs once at the end of the current iteration,
 * after every ready fd was handled.  This is where objects registered with
 * the loop are freed: an fd handler must never free another io that may
 * still be in this iteration's ready list (mark, then sweep here).
 * Returns 0 or -1 (no memory).
 */
int tnl_loop_post(tnl_loop_t *loop, void (*fn)(void *data), void *data);

/* monotonic milliseconds, cached per loop iteration by the loop */
uint64_t tnl_now_ms(void);
void tnl_time_update(void);

#endif /* TNL_LOOP_H */
