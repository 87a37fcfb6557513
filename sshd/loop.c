/*
 * epoll + timer heap (see loop.h).  Level-triggered on purpose: libssh and
 * hiredis read a bounded amount per call, so a level-triggered fd keeps
 * waking us while bytes remain and nobody has to re-post reads by hand.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"


#define TNL_LOOP_EVENTS  256


typedef struct tnl_post_s  tnl_post_t;

struct tnl_post_s {
    void         (*fn)(void *data);
    void          *data;
    tnl_post_t    *next;
};


struct tnl_loop_s {
    int            epfd;
    tnl_post_t    *posted;
    tnl_post_t   **posted_last;
    int            stop;
    tnl_timer_t  **heap;
    int            nheap;
    int            heap_cap;
    int            nios;         /* ios in epoll: about the fds in use */
};


static __thread uint64_t  tnl_cached_ms;


uint64_t
tnl_now_ms(void)
{
    if (tnl_cached_ms == 0) {
        tnl_time_update();
    }

    return tnl_cached_ms;
}


void
tnl_time_update(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    tnl_cached_ms = (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


tnl_loop_t *
tnl_loop_create(void)
{
    tnl_loop_t  *loop;

    loop = calloc(1, sizeof(tnl_loop_t));
    if (loop == NULL) {
        return NULL;
    }

    loop->posted_last = &loop->posted;

    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd == -1) {
        free(loop);
        return NULL;
    }

    return loop;
}


void
tnl_loop_destroy(tnl_loop_t *loop)
{
    if (loop == NULL) {
        return;
    }

    close(loop->epfd);
    free(loop->heap);
    free(loop);
}


void
tnl_io_init(tnl_io_t *io, tnl_loop_t *loop, int fd,
    tnl_io_handler_pt handler, void *data)
{
    memset(io, 0, sizeof(tnl_io_t));
    io->fd = fd;
    io->loop = loop;
    io->handler = handler;
    io->data = data;
}


int
tnl_io_set(tnl_io_t *io, uint32_t events)
{
    struct epoll_event  ev;

    if (io->active && io->events == events) {
        return 0;
    }

    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = io;

    if (epoll_ctl(io->loop->epfd, io->active ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
                  io->fd, &ev) == -1)
    {
        return -1;
    }

    if (!io->active) {
        io->loop->nios++;
    }

    io->active = 1;
    io->events = events;

    return 0;
}


void
tnl_io_forget(tnl_io_t *io)
{
    if (!io->active) {
        return;
    }

    /* closed already: the kernel dropped it from epoll by itself */
    io->loop->nios--;
    io->active = 0;
    io->events = 0;
}


void
tnl_io_del(tnl_io_t *io)
{
    if (!io->active) {
        return;
    }

    (void) epoll_ctl(io->loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->loop->nios--;
    io->active = 0;
    io->events = 0;
}


int
tnl_loop_ios(tnl_loop_t *loop)
{
    return loop->nios;
}


/* timer heap */

static void
tnl_heap_swap(tnl_loop_t *loop, int a, int b)
{
    tnl_timer_t  *t;

    t = loop->heap[a];
    loop->heap[a] = loop->heap[b];
    loop->heap[b] = t;
    loop->heap[a]->index = a;
    loop->heap[b]->index = b;
}


static void
tnl_heap_up(tnl_loop_t *loop, int i)
{
    while (i > 0 && loop->heap[(i - 1) / 2]->when > loop->heap[i]->when) {
        tnl_heap_swap(loop, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}


static void
tnl_heap_down(tnl_loop_t *loop, int i)
{
    int  l, r, m;

    for ( ;; ) {
        l = 2 * i + 1;
        r = l + 1;
        m = i;

        if (l < loop->nheap && loop->heap[l]->when < loop->heap[m]->when) {
            m = l;
        }

        if (r < loop->nheap && loop->heap[r]->when < loop->heap[m]->when) {
            m = r;
        }

        if (m == i) {
            return;
        }

        tnl_heap_swap(loop, i, m);
        i = m;
    }
}


void
tnl_timer_init(tnl_timer_t *t, tnl_loop_t *loop,
    tnl_timer_handler_pt handler, void *data)
{
    memset(t, 0, sizeof(tnl_timer_t));
    t->index = -1;
    t->loop = loop;
    t->handler = handler;
    t->data = data;
}


int
tnl_timer_is_set(const tnl_timer_t *t)
{
    return t->index >= 0;
}


void
tnl_timer_del(tnl_timer_t *t)
{
    tnl_loop_t  *loop;
    int          i;

    if (t->index < 0) {
        return;
    }

    loop = t->loop;
    i = t->index;
    t->index = -1;

    loop->nheap--;

    if (i == loop->nheap) {
        return;
    }

    loop->heap[i] = loop->heap[loop->nheap];
    loop->heap[i]->index = i;
    tnl_heap_up(loop, i);
    tnl_heap_down(loop, loop->heap[i]->index);
}


void
tnl_timer_add(tnl_timer_t *t, uint64_t ms)
{
    tnl_loop_t    *loop;
    tnl_timer_t  **heap;
    int            cap;

    tnl_timer_del(t);

    loop = t->loop;

    if (loop->nheap == loop->heap_cap) {
        cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        heap = realloc(loop->heap, cap * sizeof(tnl_timer_t *));
        if (heap == NULL) {
            abort();    /* a lost timer would hang a session forever */
        }
        loop->heap = heap;
        loop->heap_cap = cap;
    }

    t->when = tnl_now_ms() + ms;
    t->index = loop->nheap;
    loop->heap[loop->nheap++] = t;
    tnl_heap_up(loop, t->index);
}


static void
tnl_loop_expire_timers(tnl_loop_t *loop)
{
    tnl_timer_t  *t;
    uint64_t      now;

    now = tnl_now_ms();

    while (loop->nheap > 0 && loop->heap[0]->when <= now) {
        t = loop->heap[0];
        tnl_timer_del(t);
        t->handler(t);
    }
}


int
tnl_loop_post(tnl_loop_t *loop, void (*fn)(void *data), void *data)
{
    tnl_post_t  *p;

    p = malloc(sizeof(tnl_post_t));
    if (p == NULL) {
        return -1;
    }

    p->fn = fn;
    p->data = data;
    p->next = NULL;

    *loop->posted_last = p;
    loop->posted_last = &p->next;

    return 0;
}


static void
tnl_loop_run_posted(tnl_loop_t *loop)
{
    tnl_post_t  *p;

    /* fn may post more work: it runs in this same sweep */

    while (loop->posted != NULL) {
        p = loop->posted;
        loop->posted = p->next;
        if (loop->posted == NULL) {
            loop->posted_last = &loop->posted;
        }

        p->fn(p->data);
        free(p);
    }
}


int
tnl_loop_once(tnl_loop_t *loop, int max_ms)
{
    struct epoll_event  events[TNL_LOOP_EVENTS];
    tnl_io_t           *io;
    int                 n, i, timeout;
    uint64_t            now;

    tnl_time_update();

    timeout = (loop->posted != NULL) ? 0 : max_ms;

    if (loop->nheap > 0) {
        now = tnl_now_ms();
        if (loop->heap[0]->when <= now) {
            timeout = 0;

        } else if (timeout < 0
                   || loop->heap[0]->when - now < (uint64_t) timeout)
        {
            timeout = (int) (loop->heap[0]->when - now);
        }
    }

    n = epoll_wait(loop->epfd, events, TNL_LOOP_EVENTS, timeout);

    tnl_time_update();

    if (n == -1) {
        if (errno != EINTR) {
            return -1;
        }
        n = 0;
    }

    for (i = 0; i < n; i++) {
        io = events[i].data.ptr;
        io->handler(io, events[i].events);
    }

    tnl_loop_run_posted(loop);

    tnl_loop_expire_timers(loop);

    tnl_loop_run_posted(loop);

    return 0;
}


int
tnl_loop_run(tnl_loop_t *loop)
{
    while (!loop->stop) {
        if (tnl_loop_once(loop, -1) == -1) {
            return -1;
        }
    }

    return 0;
}


void
tnl_loop_stop(tnl_loop_t *loop)
{
    loop->stop = 1;
}
