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
#define TNL_REDIS_SENTINELS_MAX       16


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

    /*
     * Sentinel mode ("sentinel://H:P,H:P/NAME"): host and port are the
     * master's, asked anew before every connect (see tnl_redis_sentinel_*)
     */
    char                *master;       /* NULL: plain mode */
    char                *sentinel_host[TNL_REDIS_SENTINELS_MAX];
    int                  sentinel_port[TNL_REDIS_SENTINELS_MAX];
    int                  nsentinels;
    int                  sentinel;     /* the one asked next */
    unsigned             asking:1;     /* ac is a sentinel connection */
    unsigned             have_master:1;  /* host:port fresh from it */
    tnl_redis_t         *watch;        /* on a sentinel: +switch-master */
    tnl_redis_t         *parent;       /* set in a watch connection */
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
static void tnl_redis_open(tnl_redis_t *rc, const char *addr,
    int port);
static void tnl_redis_up(tnl_redis_t *rc);
static int tnl_redis_sentinel_parse(tnl_redis_t *rc, const char *url);
static void tnl_redis_sentinel_ask(redisAsyncContext *ac);
static void tnl_redis_sentinel_role(redisAsyncContext *ac);
static int tnl_redis_sentinel_cleanup(tnl_redis_t *rc);
static void tnl_redis_sentinel_free(tnl_redis_t *rc);
static void tnl_redis_sentinel_watch(tnl_redis_t *rc);
static void tnl_redis_sentinel_rotate(tnl_redis_t *watch);


static int
tnl_redis_parse_url(tnl_redis_t *rc, const char *url)
{
    const char  *p, *colon;
    char        *end;
    long         port;
    size_t       len;

    if (strncmp(url, "sentinel://", 11) == 0) {
        return tnl_redis_sentinel_parse(rc, url + 11);
    }

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

    if (rc->master != NULL && tnl_redis_sentinel_cleanup(rc)) {
        return;
    }

    if (rc->parent != NULL) {
        tnl_redis_sentinel_rotate(rc);
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

    if (status != REDIS_OK) {
        tnl_timer_del(&rc->connect_timer);

        if (!rc->failing) {
            tnl_log_warn("redis %s: cannot connect%s: %s", rc->tag,
                         rc->asking ? " to the sentinel" : "", ac->errstr);
            rc->failing = 1;
            rc->nagged = tnl_now_ms();
        }

        /* hiredis frees ac next; tnl_redis_cleanup() plans the retry */
        return;
    }

    /* sentinel mode: the connect timer also bounds these answers */

    if (rc->asking) {
        tnl_redis_sentinel_ask((redisAsyncContext *) ac);
        return;
    }

    if (rc->master != NULL) {
        tnl_redis_sentinel_role((redisAsyncContext *) ac);
        return;
    }

    tnl_timer_del(&rc->connect_timer);
    tnl_redis_up(rc);
}


static void
tnl_redis_up(tnl_redis_t *rc)
{
    tnl_log_info("redis %s: connected%s%s", rc->tag,
                 rc->master ? " to the master of " : "",
                 rc->master ? rc->master : "");

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

    tnl_redis_open(rc, addrs, rc->port);
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

    if (rc->master != NULL) {
        /* ask a sentinel first, every time: the master may have moved */
        rc->asking = !rc->have_master;
        rc->have_master = 0;
    }

    if (rc->asking) {
        /* sentinel addresses are numeric (checked when parsed) */
        tnl_redis_open(rc, rc->sentinel_host[rc->sentinel],
                       rc->sentinel_port[rc->sentinel]);
        return;
    }

    if (rc->path == NULL && !tnl_resolve_is_numeric(rc->host)) {
        tnl_redis_resolve(rc);
        return;
    }

    tnl_redis_open(rc, rc->host, rc->port);
}


/* addr: numeric, for a TCP connection */

static void
tnl_redis_open(tnl_redis_t *rc, const char *addr, int port)
{
    redisAsyncContext  *ac;

    ac = rc->path && !rc->asking ? redisAsyncConnectUnix(rc->path)
                                 : redisAsyncConnect(addr, port);

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

        if (rc->asking) {
            rc->asking = 0;
            rc->sentinel = (rc->sentinel + 1) % rc->nsentinels;
        }

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
        tnl_log_error("redis: bad url \"%s\": expected unix:/path, "
                      "redis://host:port or sentinel://IP:PORT,IP:PORT/NAME",
                      url ? url : "");
        tnl_redis_sentinel_free(rc);
        free(rc->tag);
        free(rc->path);
        free(rc->host);
        free(rc);
        return NULL;
    }

    tnl_redis_connect(rc);

    if (rc->master != NULL) {
        tnl_redis_sentinel_watch(rc);
    }

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
    tnl_redis_t      *rc;

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

    rc = cmd->rc;
    free(cmd);

    /* a demoted master: a sentinel knows the new one */

    if (rc->master != NULL && r != NULL
        && ((redisReply *) r)->type == REDIS_REPLY_ERROR
        && strncmp(((redisReply *) r)->str, "READONLY", 8) == 0)
    {
        tnl_log_warn("redis %s: the master of %s became a replica, "
                     "asking the sentinels again", rc->tag, rc->master);
        tnl_redis_reset(rc);
    }
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

    tnl_redis_destroy(rc->watch);

    tnl_timer_del(&rc->retry_timer);
    tnl_timer_del(&rc->connect_timer);

    if (rc->resolving != NULL) {
        tnl_redis_resolve_abort(rc);
    }

    if (rc->ac != NULL) {
        redisAsyncFree(rc->ac);
    }

    tnl_redis_sentinel_free(rc);
    free(rc->tag);
    free(rc->path);
    free(rc->host);
    free(rc);
}


/*
 * Sentinel mode.  Every connect goes through a sentinel: connect to one
 * (asynchronously, like any connection), ask SENTINEL
 * get-master-addr-by-name, drop it, connect to the address it named and
 * check with ROLE that it is still a master before calling it up.  A lost
 * master connection, a master that turned replica (ROLE, or a -READONLY
 * reply) or a failed sentinel simply reconnects, which asks again: after a
 * failover the sentinels kill the old master's clients, so following
 * +switch-master needs no subscription of our own.  Sentinel addresses are
 * numeric (hiredis would resolve a name with a blocking call).
 */

static int
tnl_redis_sentinel_parse(tnl_redis_t *rc, const char *url)
{
    const char  *slash, *p, *end, *colon;
    char         host[64], *e;
    long         port;
    size_t       len;

    slash = strrchr(url, '/');
    if (slash == NULL || slash[1] == '\0' || strchr(slash, '@') != NULL) {
        return -1;
    }

    rc->master = strdup(slash + 1);
    if (rc->master == NULL) {
        return -1;
    }

    for (p = url; p < slash; p = end + 1) {
        end = memchr(p, ',', slash - p);
        if (end == NULL) {
            end = slash;
        }

        if (rc->nsentinels == TNL_REDIS_SENTINELS_MAX) {
            return -1;
        }

        colon = NULL;
        if (*p == '[') {
            colon = memchr(p, ']', end - p);
            if (colon == NULL || colon[1] != ':') {
                return -1;
            }
            len = colon - p - 1;
            p++;
            colon++;

        } else {
            colon = memchr(p, ':', end - p);
            if (colon == NULL) {
                return -1;
            }
            len = colon - p;
        }

        if (len == 0 || len >= sizeof(host)) {
            return -1;
        }

        memcpy(host, p, len);
        host[len] = '\0';

        /* sentinels are asked on every reconnect: never resolve there */
        if (!tnl_resolve_is_numeric(host)) {
            tnl_log_error("redis: sentinel \"%s\" is not a numeric IP "
                          "address; give sentinels as IP:PORT", host);
            return -1;
        }

        errno = 0;
        port = strtol(colon + 1, &e, 10);
        if (errno || e != end || port < 1 || port > 65535) {
            return -1;
        }

        rc->sentinel_host[rc->nsentinels] = strdup(host);
        if (rc->sentinel_host[rc->nsentinels] == NULL) {
            return -1;
        }
        rc->sentinel_port[rc->nsentinels++] = (int) port;
    }

    return rc->nsentinels ? 0 : -1;
}


static void
tnl_redis_sentinel_answer(redisAsyncContext *ac, void *r, void *privdata)
{
    tnl_redis_t  *rc = privdata;
    redisReply   *reply = r, *h, *p;
    char         *host, *end;
    long          port;

    if (reply == NULL) {
        return;     /* the context is going away: cleanup moves on */
    }

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
        && reply->element[0]->type == REDIS_REPLY_STRING
        && reply->element[1]->type == REDIS_REPLY_STRING)
    {
        h = reply->element[0];
        p = reply->element[1];

        errno = 0;
        port = strtol(p->str, &end, 10);
        host = strndup(h->str, h->len);

        if (host != NULL && errno == 0 && *end == '\0' && port > 0
            && port < 65536)
        {
            free(rc->host);
            rc->host = host;
            rc->port = (int) port;
            rc->have_master = 1;

        } else {
            free(host);
        }
    }

    if (!rc->have_master && !rc->failing) {
        tnl_log_warn("redis %s: sentinel %s:%d does not know a master "
                     "\"%s\"%s%.*s", rc->tag,
                     rc->sentinel_host[rc->sentinel],
                     rc->sentinel_port[rc->sentinel], rc->master,
                     reply->type == REDIS_REPLY_ERROR ? ": " : "",
                     reply->type == REDIS_REPLY_ERROR ? (int) reply->len : 0,
                     reply->type == REDIS_REPLY_ERROR ? reply->str : "");
        rc->failing = 1;
        rc->nagged = tnl_now_ms();
    }

    redisAsyncFree(ac);     /* deferred by hiredis; cleanup connects on */
}


static void
tnl_redis_sentinel_ask(redisAsyncContext *ac)
{
    tnl_redis_t  *rc = ac->ev.data;
    const char   *argv[3];

    argv[0] = "SENTINEL";
    argv[1] = "get-master-addr-by-name";
    argv[2] = rc->master;

    if (redisAsyncCommandArgv(ac, tnl_redis_sentinel_answer, rc, 3, argv,
                              NULL)
        != REDIS_OK)
    {
        redisAsyncFree(ac);
    }
}


static void
tnl_redis_sentinel_role_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    tnl_redis_t  *rc = privdata;
    redisReply   *reply = r, *role;

    if (reply == NULL) {
        return;
    }

    role = (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0)
           ? reply->element[0] : NULL;

    if (role != NULL && role->type == REDIS_REPLY_STRING
        && role->len == 6 && memcmp(role->str, "master", 6) == 0)
    {
        tnl_timer_del(&rc->connect_timer);
        tnl_redis_up(rc);
        return;
    }

    if (!rc->failing) {
        tnl_log_warn("redis %s: %s:%d, named master of \"%s\" by a "
                     "sentinel, is not a master (yet): asking again",
                     rc->tag, rc->host, rc->port, rc->master);
        rc->failing = 1;
        rc->nagged = tnl_now_ms();
    }

    redisAsyncFree(ac);
}


static void
tnl_redis_sentinel_role(redisAsyncContext *ac)
{
    tnl_redis_t  *rc = ac->ev.data;
    const char   *argv[1];

    argv[0] = "ROLE";

    if (redisAsyncCommandArgv(ac, tnl_redis_sentinel_role_reply, rc, 1, argv,
                              NULL)
        != REDIS_OK)
    {
        redisAsyncFree(ac);
    }
}


/* from the cleanup hook: 1 when it planned the next connect itself */

static int
tnl_redis_sentinel_cleanup(tnl_redis_t *rc)
{
    if (!rc->asking) {
        return 0;
    }

    rc->asking = 0;

    if (rc->have_master) {
        tnl_timer_add(&rc->retry_timer, 0);     /* on to the master */
        return 1;
    }

    rc->sentinel = (rc->sentinel + 1) % rc->nsentinels;

    return 0;
}


static void
tnl_redis_sentinel_free(tnl_redis_t *rc)
{
    int  i;

    for (i = 0; i < rc->nsentinels; i++) {
        free(rc->sentinel_host[i]);
    }

    rc->nsentinels = 0;
    free(rc->master);
    rc->master = NULL;
}


/*
 * The watch: a plain connection to one sentinel (the next one after it
 * fails), subscribed to +switch-master.  A failover with the old master
 * still up leaves our connection on it until the sentinels demote it,
 * which takes seconds (their INFO period), meanwhile writes land on a
 * master that is about to lose them: the message moves us at once.  On
 * every (re)connect of the watch the master is asked too, since a switch
 * may have happened while the watch was down.
 */

static void
tnl_redis_watch_check(tnl_redis_t *rc, const char *host, size_t hlen,
    const char *port, size_t plen)
{
    char  buf[8];

    if (!rc->up || plen == 0 || plen >= sizeof(buf)) {
        return;
    }

    memcpy(buf, port, plen);
    buf[plen] = '\0';

    if (strlen(rc->host) == hlen && memcmp(rc->host, host, hlen) == 0
        && atoi(buf) == rc->port)
    {
        return;
    }

    tnl_log_info("redis %s: the sentinels moved master %s to %.*s:%s, "
                 "reconnecting", rc->tag, rc->master, (int) hlen, host, buf);

    tnl_redis_reset(rc);
}


static void
tnl_redis_watch_answer(tnl_redis_t *watch, redisReply *reply, void *data)
{
    tnl_redis_t  *rc = data;

    (void) watch;

    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == 2
        && reply->element[0]->type == REDIS_REPLY_STRING
        && reply->element[1]->type == REDIS_REPLY_STRING)
    {
        tnl_redis_watch_check(rc, reply->element[0]->str,
                              reply->element[0]->len,
                              reply->element[1]->str,
                              reply->element[1]->len);
    }
}


/* ["message", "+switch-master", "NAME OLDIP OLDPORT NEWIP NEWPORT"] */

static void
tnl_redis_watch_message(tnl_redis_t *watch, redisReply *reply, void *data)
{
    tnl_redis_t  *rc = data;
    redisReply   *m;
    const char   *f[5], *p, *end;
    size_t        flen[5], n;
    int           i;

    (void) watch;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 3
        || reply->element[2]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    m = reply->element[2];
    p = m->str;
    end = m->str + m->len;

    for (i = 0; i < 5; i++) {
        while (p < end && *p == ' ') {
            p++;
        }
        f[i] = p;
        n = 0;
        while (p < end && *p != ' ') {
            p++;
            n++;
        }
        flen[i] = n;
        if (n == 0) {
            return;
        }
    }

    if (flen[0] != strlen(rc->master)
        || memcmp(f[0], rc->master, flen[0]) != 0)
    {
        return;
    }

    tnl_redis_watch_check(rc, f[3], flen[3], f[4], flen[4]);
}


static void
tnl_redis_watch_state(tnl_redis_t *watch, int up, void *data)
{
    tnl_redis_t  *rc = data;
    const char   *argv[3];

    if (!up) {
        return;
    }

    /* replies to plain commands come before any pub/sub message */

    argv[0] = "SENTINEL";
    argv[1] = "get-master-addr-by-name";
    argv[2] = rc->master;

    (void) tnl_redis_command(watch, 3, argv, NULL, 2000,
                             tnl_redis_watch_answer, rc);

    (void) tnl_redis_subscribe(watch, "+switch-master",
                               tnl_redis_watch_message, rc);
}


static void
tnl_redis_sentinel_watch(tnl_redis_t *rc)
{
    char  url[128];

    snprintf(url, sizeof(url), strchr(rc->sentinel_host[0], ':')
             ? "[%s]:%d" : "%s:%d", rc->sentinel_host[0],
             rc->sentinel_port[0]);

    snprintf(url + 64, 64, "%s sentinel", rc->tag);

    rc->watch = tnl_redis_create(rc->loop, url, url + 64,
                                 tnl_redis_watch_state, rc);
    if (rc->watch != NULL) {
        rc->watch->parent = rc;
    }
}


/* the watch lost its sentinel, or never reached it: on to the next one */

static void
tnl_redis_sentinel_rotate(tnl_redis_t *watch)
{
    tnl_redis_t  *rc = watch->parent;
    char         *host;
    int           i;

    for (i = 0; i < rc->nsentinels; i++) {
        if (strcmp(rc->sentinel_host[i], watch->host) == 0
            && rc->sentinel_port[i] == watch->port)
        {
            break;
        }
    }

    i = (i + 1) % rc->nsentinels;

    host = strdup(rc->sentinel_host[i]);
    if (host == NULL) {
        return;
    }

    free(watch->host);
    watch->host = host;
    watch->port = rc->sentinel_port[i];
}
