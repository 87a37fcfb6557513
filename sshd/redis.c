/*
 * hiredis 0.14 async adapter on tunneld's loop, plus connect/command
 * timeouts and reconnection (see redis.h).  Does not interpret replies.
 *
 * hiredis calls the ev hooks (addRead, delRead, addWrite, delWrite,
 * cleanup) with ev.data = our tnl_redis_t.  The hooks are idempotent and
 * map to tnl_io_set on ac->c.fd; with no interest left the fd leaves epoll
 * altogether (a silent but registered fd would still report EPOLLHUP, and
 * level-triggered, spin).  cleanup runs inside __redisAsyncFree, before
 * hiredis closes the fd: that is where we forget ac and plan the reconnect.
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>

#include "log.h"
#include "redis.h"
#include "resolve.h"


#define TNL_REDIS_CONNECT_TIMEOUT_MS  2000
#define TNL_REDIS_RESOLVE_TIMEOUT_MS  10000  /* glibc: 5 s x 2 tries */
#define TNL_REDIS_BACKOFF_MIN_MS      100
#define TNL_REDIS_BACKOFF_MAX_MS      1000
#define TNL_REDIS_NAG_MS              60000


struct tnl_redis_s {
    tnl_loop_t          *loop;
    redisAsyncContext   *ac;           /* NULL while disconnected */
    tnl_io_t             io;
    uint32_t             want;         /* EPOLLIN | EPOLLOUT wanted */
    tnl_timer_t          connect_timer;
    tnl_timer_t          retry_timer;
    uint64_t             backoff;
    uint64_t             nagged;       /* last "still down" log line */
    int                  pending;      /* commands awaiting a reply */
    unsigned             up:1;
    unsigned             failing:1;    /* logged a failure since last up */
    unsigned             destroying:1;
    tnl_redis_state_pt   on_state;
    void                *data;
    char                *tag;
    char                *path;         /* unix socket, or NULL */
    char                *host;
    int                  port;
    tnl_resolve_t       *resolving;    /* host name being resolved */
};


typedef struct {
    tnl_redis_t         *rc;
    tnl_redis_reply_pt   cb;
    void                *data;
    tnl_timer_t          timer;
    unsigned             answered:1;
    unsigned             subscribe:1;
} tnl_redis_cmd_t;


static void tnl_redis_connect(tnl_redis_t *rc);
static void tnl_redis_schedule(tnl_redis_t *rc);
static void tnl_redis_io_handler(tnl_io_t *io, uint32_t events);
static void tnl_redis_open(tnl_redis_t *rc, const char *addr);


static int
tnl_redis_parse_url(tnl_redis_t *rc, const char *url)
{
    const char  *p, *colon;
    char        *end;
    long         port;
    size_t       len;

    if (strncmp(url, "unix:", 5) == 0) {
        p = url + 5;
        if (strncmp(p, "//", 2) == 0) {
            p += 2;
        }
        if (*p != '/') {
            return -1;
        }
        rc->path = strdup(p);
        return rc->path ? 0 : -1;
    }

    if (url[0] == '/') {
        rc->path = strdup(url);
        return rc->path ? 0 : -1;
    }

    p = url;
    if (strncmp(p, "redis://", 8) == 0) {
        p += 8;
    }

    if (strchr(p, '@') != NULL) {
        return -1;      /* AUTH is not supported */
    }

    port = 6379;

    if (*p == '[') {
        colon = strchr(p, ']');
        if (colon == NULL) {
            return -1;
        }
        len = colon - p - 1;
        p++;
        colon = (colon[1] == ':') ? colon + 1 : NULL;

    } else {
        colon = strchr(p, ':');
        len = colon ? (size_t) (colon - p) : strcspn(p, "/");
    }

    if (colon != NULL) {
        errno = 0;
        port = strtol(colon + 1, &end, 10);
        if (errno || end == colon + 1 || (*end != '\0' && *end != '/')
            || port < 1 || port > 65535)
        {
            return -1;
        }
    }

    if (len == 0) {
        return -1;
    }

    rc->host = strndup(p, len);
    rc->port = (int) port;

    return rc->host ? 0 : -1;
}


/* the ev hooks */

static void
tnl_redis_update(tnl_redis_t *rc, uint32_t want)
{
    rc->want = want;

    if (rc->ac == NULL) {
        return;
    }

    if (want == 0) {
        tnl_io_del(&rc->io);
        return;
    }

    if (tnl_io_set(&rc->io, want) == -1) {
        tnl_log_error("redis %s: epoll_ctl failed: %s", rc->tag,
                      strerror(errno));
    }
}


static void
tnl_redis_add_read(void *privdata)
{
    tnl_redis_t  *rc = privdata;

    tnl_redis_update(rc, rc->want | EPOLLIN);
}


static void
tnl_redis_del_read(void *privdata)
{
    tnl_redis_t  *rc = privdata;

    tnl_redis_update(rc, rc->want & ~EPOLLIN);
}


static void
tnl_redis_add_write(void *privdata)
{
    tnl_redis_t  *rc = privdata;

    tnl_redis_update(rc, rc->want | EPOLLOUT);
}


static void
tnl_redis_del_write(void *privdata)
{
    tnl_redis_t  *rc = privdata;

    tnl_redis_update(rc, rc->want & ~EPOLLOUT);
}


/* hiredis is about to free ac and close its fd */

static void
tnl_redis_cleanup(void *privdata)
{
    tnl_redis_t  *rc = privdata;
    int           was_up;

    tnl_io_del(&rc->io);
    tnl_timer_del(&rc->connect_timer);

    was_up = rc->up;
    rc->ac = NULL;
    rc->up = 0;
    rc->want = 0;

    if (rc->destroying) {
        return;
    }

    tnl_redis_schedule(rc);

    if (was_up && rc->on_state) {
        rc->on_state(rc, 0, rc->data);
    }
}


static void
tnl_redis_on_connect(const redisAsyncContext *ac, int status)
{
    tnl_redis_t  *rc = ac->ev.data;

    tnl_timer_del(&rc->connect_timer);

    if (status != REDIS_OK) {
        if (!rc->failing) {
            tnl_log_warn("redis %s: cannot connect: %s", rc->tag,
                         ac->errstr);
            rc->failing = 1;
            rc->nagged = tnl_now_ms();
        }

        /* hiredis frees ac next; tnl_redis_cleanup() plans the retry */
        return;
    }

    tnl_log_info("redis %s: connected", rc->tag);

    rc->up = 1;
    rc->failing = 0;
    rc->backoff = 0;

    if (rc->on_state) {
        rc->on_state(rc, 1, rc->data);
    }
}


static void
tnl_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    tnl_redis_t  *rc = ac->ev.data;

    if (status != REDIS_OK && !rc->destroying) {
        tnl_log_warn("redis %s: connection lost: %s", rc->tag,
                     ac->errstr);
        rc->failing = 1;
        rc->nagged = tnl_now_ms();
    }
}


static void
tnl_redis_io_handler(tnl_io_t *io, uint32_t events)
{
    tnl_redis_t  *rc = io->data;

    if (rc->ac && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        && ((rc->want & EPOLLIN) || !(rc->want & EPOLLOUT)))
    {
        redisAsyncHandleRead(rc->ac);
    }

    /* the read may have freed ac (EOF, error): cleanup set it to NULL */

    if (rc->ac && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        && (rc->want & EPOLLOUT))
    {
        redisAsyncHandleWrite(rc->ac);
    }
}


/*
 * hiredis resolves a host name with a blocking getaddrinfo() inside
 * redisAsyncConnect: a name is resolved on a thread (resolve.h) first, on
 * every reconnect (the address may have moved), and hiredis gets the
 * number.  The connect timer covers the lookup (with its own, longer
 * budget: a resolver's timeout is 5 s) and then the connect.
 */

static void
tnl_redis_resolved(const char *addrs, const char *err, void *data)
{
    tnl_redis_t  *rc = data;

    rc->resolving = NULL;
    tnl_timer_del(&rc->connect_timer);

    if (addrs == NULL) {
        if (!rc->failing) {
            tnl_log_warn("redis %s: %s; check the host in the redis URL "
                         "and the resolver, retrying", rc->tag, err);
            rc->failing = 1;
            rc->nagged = tnl_now_ms();
        }

        tnl_redis_schedule(rc);
        return;
    }

    tnl_redis_open(rc, addrs);
}


static void
tnl_redis_resolve(tnl_redis_t *rc)
{
    rc->resolving = tnl_resolve_start(rc->loop, rc->host, tnl_redis_resolved,
                                      rc);
    if (rc->resolving == NULL) {
        tnl_redis_schedule(rc);
        return;
    }

    tnl_timer_add(&rc->connect_timer, TNL_REDIS_RESOLVE_TIMEOUT_MS);
}


static void
tnl_redis_resolve_abort(tnl_redis_t *rc)
{
    tnl_resolve_cancel(rc->resolving);
    rc->resolving = NULL;

    if (!rc->destroying) {
        tnl_redis_schedule(rc);
    }
}


static void
tnl_redis_connect_timeout(tnl_timer_t *t)
{
    tnl_redis_t  *rc = t->data;

    if (!rc->failing) {
        tnl_log_warn("redis %s: %s timed out", rc->tag,
                     rc->resolving ? "resolving the host" : "connect");
        rc->failing = 1;
        rc->nagged = tnl_now_ms();
    }

    if (rc->resolving) {
        tnl_redis_resolve_abort(rc);
        return;
    }

    if (rc->ac) {
        redisAsyncFree(rc->ac);     /* -> cleanup -> retry */
    }
}


static void
tnl_redis_retry(tnl_timer_t *t)
{
    tnl_redis_connect(t->data);
}


static void
tnl_redis_schedule(tnl_redis_t *rc)
{
    rc->backoff = rc->backoff ? rc->backoff * 2 : TNL_REDIS_BACKOFF_MIN_MS;
    if (rc->backoff > TNL_REDIS_BACKOFF_MAX_MS) {
        rc->backoff = TNL_REDIS_BACKOFF_MAX_MS;
    }

    tnl_timer_add(&rc->retry_timer, rc->backoff);
}


static void
tnl_redis_connect(tnl_redis_t *rc)
{
    if (rc->ac != NULL || rc->resolving != NULL || rc->destroying) {
        return;
    }

    if (rc->failing && tnl_now_ms() - rc->nagged >= TNL_REDIS_NAG_MS) {
        tnl_log_warn("redis %s: still unreachable, retrying", rc->tag);
        rc->nagged = tnl_now_ms();
    }

    if (rc->path == NULL && !tnl_resolve_is_numeric(rc->host)) {
        tnl_redis_resolve(rc);
        return;
    }

    tnl_redis_open(rc, rc->host);
}


/* addr: numeric, for a TCP connection */

static void
tnl_redis_open(tnl_redis_t *rc, const char *addr)
{
    redisAsyncContext  *ac;

    ac = rc->path ? redisAsyncConnectUnix(rc->path)
                  : redisAsyncConnect(addr, rc->port);

    if (ac == NULL) {
        tnl_log_error("redis %s: cannot allocate a context", rc->tag);
        tnl_redis_schedule(rc);
        return;
    }

    if (ac->err) {
        if (!rc->failing) {
            tnl_log_warn("redis %s: cannot connect: %s", rc->tag,
                         ac->errstr);
            rc->failing = 1;
            rc->nagged = tnl_now_ms();
        }

        redisAsyncFree(ac);     /* no hooks attached yet */
        tnl_redis_schedule(rc);
        return;
    }

    /* a subscriber only reads: keepalive notices a vanished peer */
    if (rc->path == NULL) {
        (void) redisEnableKeepAlive(&ac->c);
    }

    rc->ac = ac;
    rc->want = 0;
    tnl_io_init(&rc->io, rc->loop, ac->c.fd, tnl_redis_io_handler, rc);

    ac->ev.data = rc;
    ac->ev.addRead = tnl_redis_add_read;
    ac->ev.delRead = tnl_redis_del_read;
    ac->ev.addWrite = tnl_redis_add_write;
    ac->ev.delWrite = tnl_redis_del_write;
    ac->ev.cleanup = tnl_redis_cleanup;

    redisAsyncSetDisconnectCallback(ac, tnl_redis_on_disconnect);

    /* hiredis waits for the first write event to call this: adds write */
    redisAsyncSetConnectCallback(ac, tnl_redis_on_connect);

    tnl_timer_add(&rc->connect_timer, TNL_REDIS_CONNECT_TIMEOUT_MS);
}


tnl_redis_t *
tnl_redis_create(tnl_loop_t *loop, const char *url, const char *tag,
    tnl_redis_state_pt on_state, void *data)
{
    tnl_redis_t  *rc;

    rc = calloc(1, sizeof(tnl_redis_t));
    if (rc == NULL) {
        return NULL;
    }

    rc->loop = loop;
    rc->on_state = on_state;
    rc->data = data;
    rc->tag = strdup(tag ? tag : "");

    tnl_timer_init(&rc->connect_timer, loop, tnl_redis_connect_timeout, rc);
    tnl_timer_init(&rc->retry_timer, loop, tnl_redis_retry, rc);

    if (url == NULL || rc->tag == NULL
        || tnl_redis_parse_url(rc, url) == -1)
    {
        tnl_log_error("redis: bad url \"%s\": expected unix:/path or "
                      "redis://host:port", url ? url : "");
        free(rc->tag);
        free(rc->path);
        free(rc->host);
        free(rc);
        return NULL;
    }

    tnl_redis_connect(rc);

    return rc;
}


int
tnl_redis_is_up(const tnl_redis_t *rc)
{
    return rc != NULL && rc->up;
}


/* every command's hiredis callback: exactly once per command, or per
 * subscription message */

static void
tnl_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    tnl_redis_cmd_t  *cmd = privdata;

    (void) ac;

    if (cmd->subscribe && r != NULL) {
        cmd->cb(cmd->rc, r, cmd->data);
        return;
    }

    tnl_timer_del(&cmd->timer);

    if (!cmd->subscribe) {
        cmd->rc->pending--;
    }

    if (!cmd->answered) {
        cmd->answered = 1;
        cmd->cb(cmd->rc, r, cmd->data);
    }

    free(cmd);
}


static void
tnl_redis_cmd_timeout(tnl_timer_t *t)
{
    tnl_redis_cmd_t     *cmd = t->data;
    tnl_redis_t         *rc = cmd->rc;
    tnl_redis_reply_pt   cb = cmd->cb;
    void                *data = cmd->data;

    cmd->answered = 1;

    tnl_log_warn("redis %s: command timed out, reconnecting", rc->tag);

    /* replies come in order: one lost answer desynchronizes the rest */
    tnl_redis_reset(rc);     /* frees cmd through tnl_redis_reply() */

    cb(rc, NULL, data);
}


static tnl_redis_cmd_t *
tnl_redis_cmd_new(tnl_redis_t *rc, tnl_redis_reply_pt cb, void *data)
{
    tnl_redis_cmd_t  *cmd;

    cmd = calloc(1, sizeof(tnl_redis_cmd_t));
    if (cmd == NULL) {
        return NULL;
    }

    cmd->rc = rc;
    cmd->cb = cb;
    cmd->data = data;
    tnl_timer_init(&cmd->timer, rc->loop, tnl_redis_cmd_timeout, cmd);

    return cmd;
}


int
tnl_redis_command(tnl_redis_t *rc, int argc, const char **argv,
    const size_t *argvlen, uint64_t timeout_ms, tnl_redis_reply_pt cb,
    void *data)
{
    tnl_redis_cmd_t  *cmd;

    if (!tnl_redis_is_up(rc) || rc->ac == NULL) {
        return -1;
    }

    cmd = tnl_redis_cmd_new(rc, cb, data);
    if (cmd == NULL) {
        return -1;
    }

    if (redisAsyncCommandArgv(rc->ac, tnl_redis_reply, cmd, argc, argv,
                              argvlen)
        != REDIS_OK)
    {
        free(cmd);
        return -1;
    }

    rc->pending++;

    if (timeout_ms) {
        tnl_timer_add(&cmd->timer, timeout_ms);
    }

    return 0;
}


int
tnl_redis_subscribe(tnl_redis_t *rc, const char *channel,
    tnl_redis_reply_pt cb, void *data)
{
    tnl_redis_cmd_t  *cmd;
    const char       *argv[2];

    if (!tnl_redis_is_up(rc) || rc->ac == NULL) {
        return -1;
    }

    cmd = tnl_redis_cmd_new(rc, cb, data);
    if (cmd == NULL) {
        return -1;
    }

    cmd->subscribe = 1;

    argv[0] = "SUBSCRIBE";
    argv[1] = channel;

    if (redisAsyncCommandArgv(rc->ac, tnl_redis_reply, cmd, 2, argv, NULL)
        != REDIS_OK)
    {
        free(cmd);
        return -1;
    }

    return 0;
}


int
tnl_redis_flush(tnl_redis_t *rc, int ms)
{
    struct pollfd  pfd;
    uint64_t       deadline, now;
    int            n;

    if (rc == NULL) {
        return 0;
    }

    tnl_time_update();
    deadline = tnl_now_ms() + ms;

    while (rc->ac != NULL && rc->pending > 0) {
        now = tnl_now_ms();
        if (now >= deadline) {
            break;
        }

        pfd.fd = rc->ac->c.fd;
        pfd.events = 0;
        pfd.revents = 0;
        if (rc->want & EPOLLIN) {
            pfd.events |= POLLIN;
        }
        if (rc->want & EPOLLOUT) {
            pfd.events |= POLLOUT;
        }

        n = poll(&pfd, 1, (int) (deadline - now));
        tnl_time_update();

        if (n == -1 && errno != EINTR) {
            break;
        }

        if (n > 0) {
            tnl_redis_io_handler(&rc->io,
                ((pfd.revents & POLLIN) ? EPOLLIN : 0)
                | ((pfd.revents & POLLOUT) ? EPOLLOUT : 0)
                | ((pfd.revents & POLLERR) ? EPOLLERR : 0)
                | ((pfd.revents & POLLHUP) ? EPOLLHUP : 0));
        }
    }

    return rc->ac ? rc->pending : 0;
}


void
tnl_redis_reset(tnl_redis_t *rc)
{
    if (rc->ac != NULL) {
        redisAsyncFree(rc->ac);     /* -> callbacks(NULL) -> cleanup */
    }
}


void
tnl_redis_destroy(tnl_redis_t *rc)
{
    if (rc == NULL) {
        return;
    }

    rc->destroying = 1;

    tnl_timer_del(&rc->retry_timer);
    tnl_timer_del(&rc->connect_timer);

    if (rc->resolving != NULL) {
        tnl_redis_resolve_abort(rc);
    }

    if (rc->ac != NULL) {
        redisAsyncFree(rc->ac);
    }

    free(rc->tag);
    free(rc->path);
    free(rc->host);
    free(rc);
}
