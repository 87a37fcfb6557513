
/*
 * Per-worker Redis links driven by nginx's event loop: hiredis 0.14 async
 * contexts whose fd is wrapped in a borrowed ngx_connection_t.
 *
 * Two links per worker, opened in init_process (never in the master):
 *   - the command link carries route lookups (HGETALL) for
 *     ngx_http_tunnel_lookup.c;
 *   - the subscriber link is SUBSCRIBEd to tunnel:invalidate and drops
 *     routes from the cache; while it is not subscribed the cache is off.
 * A lost link is re-opened from a timer with exponential backoff; while a
 * link is down, commands are refused at once (the caller answers 503).
 *
 * Ownership: hiredis owns each context and its fd and closes the fd itself;
 * nginx only borrows it, so the cleanup hook deletes the events, frees the
 * connection and sets c->fd = -1, and never calls ngx_close_connection()
 * (that would close the fd a second time).  The links are static per-worker
 * state of this file.  It does not know about requests: callers pass their
 * own privdata.
 *
 * hiredis 0.14 quirks relied on here: it has no timer hook (connect and
 * command deadlines are ours); it reads at most 16 KiB per read event, so the
 * events are registered level-triggered; onConnect is only called on the
 * first read/write event, so a write event is added right after connecting;
 * onDisconnect is not called when the connect itself fails, so the reconnect
 * is scheduled from the cleanup hook, which runs for every context that dies.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_tunnel_redis.h"
#include "ngx_http_tunnel_cache.h"


#define NGX_HTTP_TUNNEL_REDIS_BACKOFF_MIN      100
#define NGX_HTTP_TUNNEL_REDIS_BACKOFF_MAX      5000
#define NGX_HTTP_TUNNEL_REDIS_CONNECT_TIMEOUT  3000


typedef struct {
    const char                    *role;
    redisAsyncContext             *ac;
    ngx_connection_t              *conn;
    ngx_event_t                    retry;     /* reconnect, after backoff */
    ngx_event_t                    deadline;  /* connect must finish */
    ngx_msec_t                     backoff;
    ngx_uint_t                     subscriber;
    ngx_uint_t                     watcher;   /* on a sentinel */
    ngx_uint_t                     up;        /* answered on this socket */
    ngx_uint_t                     failed;    /* since it was last up */

    /* tunnel_redis_sentinel: the master's address, asked on each connect */
    ngx_uint_t                     sentinel;  /* the one asked next */
    ngx_uint_t                     asking;    /* ac is a sentinel link */
    ngx_uint_t                     have_master;
    u_char                         host[NGX_SOCKADDR_STRLEN + 1];
    int                            port;
} ngx_http_tunnel_redis_link_t;


static void ngx_http_tunnel_redis_connect(ngx_http_tunnel_redis_link_t *link);
static void ngx_http_tunnel_redis_schedule(
    ngx_http_tunnel_redis_link_t *link);
static void ngx_http_tunnel_redis_next_sentinel(
    ngx_http_tunnel_redis_link_t *link);
static void ngx_http_tunnel_redis_retry_handler(ngx_event_t *ev);
static void ngx_http_tunnel_redis_deadline_handler(ngx_event_t *ev);
static void ngx_http_tunnel_redis_read_handler(ngx_event_t *rev);
static void ngx_http_tunnel_redis_write_handler(ngx_event_t *wev);
static void ngx_http_tunnel_redis_add_read(void *data);
static void ngx_http_tunnel_redis_del_read(void *data);
static void ngx_http_tunnel_redis_add_write(void *data);
static void ngx_http_tunnel_redis_del_write(void *data);
static void ngx_http_tunnel_redis_cleanup(void *data);
static void ngx_http_tunnel_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_tunnel_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_http_tunnel_redis_up(ngx_http_tunnel_redis_link_t *link);
static void ngx_http_tunnel_redis_pong(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_tunnel_redis_message(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_tunnel_redis_sentinel_answer(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_tunnel_redis_role(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_tunnel_redis_switch(redisAsyncContext *ac, void *reply,
    void *privdata);


static ngx_http_tunnel_main_conf_t   *ngx_http_tunnel_redis_conf;
static ngx_log_t                     *ngx_http_tunnel_redis_log;
static ngx_uint_t                     ngx_http_tunnel_redis_exiting;
static ngx_http_tunnel_redis_link_t   ngx_http_tunnel_redis_cmd;
static ngx_http_tunnel_redis_link_t   ngx_http_tunnel_redis_sub;
static ngx_http_tunnel_redis_link_t   ngx_http_tunnel_redis_watch;


ngx_int_t
ngx_http_tunnel_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_tunnel_main_conf_t *tmcf)
{
    ngx_uint_t                     i, n;
    ngx_http_tunnel_redis_link_t  *link, *links[3];

    ngx_http_tunnel_redis_conf = tmcf;
    ngx_http_tunnel_redis_log = cycle->log;
    ngx_http_tunnel_redis_exiting = 0;

    links[0] = &ngx_http_tunnel_redis_cmd;
    links[1] = &ngx_http_tunnel_redis_sub;
    links[2] = &ngx_http_tunnel_redis_watch;

    /* with sentinels, a third link watches them for +switch-master */

    n = tmcf->sentinels ? 3 : 2;

    for (i = 0; i < n; i++) {
        link = links[i];

        ngx_memzero(link, sizeof(ngx_http_tunnel_redis_link_t));

        link->role = (i == 0) ? "command" : (i == 1) ? "subscriber"
                                                     : "sentinel";
        link->subscriber = (i == 1);
        link->watcher = (i == 2);
        link->backoff = NGX_HTTP_TUNNEL_REDIS_BACKOFF_MIN;

        /* cancelable: a pending reconnect must not delay a graceful exit */

        link->retry.handler = ngx_http_tunnel_redis_retry_handler;
        link->retry.data = link;
        link->retry.log = cycle->log;
        link->retry.cancelable = 1;

        link->deadline.handler = ngx_http_tunnel_redis_deadline_handler;
        link->deadline.data = link;
        link->deadline.log = cycle->log;
        link->deadline.cancelable = 1;

        ngx_http_tunnel_redis_connect(link);
    }

    return NGX_OK;
}


/*
 * Idle Redis links never keep a worker alive (only timers do, and ours are
 * cancelable), so they are closed here rather than marked idle: freeing the
 * contexts runs every pending callback with a NULL reply and the cleanup
 * hook, which returns the borrowed connections before nginx checks for
 * sockets left open.
 */

void
ngx_http_tunnel_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                     i, n;
    ngx_http_tunnel_redis_link_t  *link, *links[3];

    if (ngx_http_tunnel_redis_conf == NULL) {
        return;
    }

    ngx_http_tunnel_redis_exiting = 1;

    links[0] = &ngx_http_tunnel_redis_cmd;
    links[1] = &ngx_http_tunnel_redis_sub;
    links[2] = &ngx_http_tunnel_redis_watch;

    n = ngx_http_tunnel_redis_conf->sentinels ? 3 : 2;

    for (i = 0; i < n; i++) {
        link = links[i];

        if (link->retry.timer_set) {
            ngx_del_timer(&link->retry);
        }

        if (link->ac) {
            redisAsyncFree(link->ac);
        }
    }

    ngx_http_tunnel_redis_conf = NULL;
}


ngx_uint_t
ngx_http_tunnel_redis_closing(void)
{
    return ngx_http_tunnel_redis_exiting;
}


ngx_int_t
ngx_http_tunnel_redis_command(redisCallbackFn *fn, void *privdata, int argc,
    const char **argv, const size_t *argvlen)
{
    redisAsyncContext  *ac;

    ac = ngx_http_tunnel_redis_cmd.ac;

    /* while asking a sentinel, ac is the sentinel's */

    if (ac == NULL
        || ngx_http_tunnel_redis_exiting
        || ngx_http_tunnel_redis_cmd.asking
        || (ac->c.flags & (REDIS_DISCONNECTING|REDIS_FREEING)))
    {
        return NGX_DECLINED;
    }

    if (redisAsyncCommandArgv(ac, fn, privdata, argc, argv, argvlen)
        != REDIS_OK)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static void
ngx_http_tunnel_redis_connect(ngx_http_tunnel_redis_link_t *link)
{
    ngx_log_t                    *log;
    ngx_connection_t             *c;
    redisAsyncContext            *ac;
    ngx_http_tunnel_main_conf_t  *tmcf;

    static const char  *sub_argv[] = { "SUBSCRIBE",
                                       NGX_HTTP_TUNNEL_INVALIDATE };
    static const char  *ping_argv[] = { "PING" };
    static const char  *sentinel_argv[] = { "SENTINEL",
                                            "get-master-addr-by-name",
                                            NULL };
    static size_t       sentinel_argvlen[] = {
                            sizeof("SENTINEL") - 1,
                            sizeof("get-master-addr-by-name") - 1, 0 };

    static const char  *role_argv[] = { "ROLE" };
    static const char  *switch_argv[] = { "SUBSCRIBE", "+switch-master" };

    ngx_http_tunnel_sentinel_t  *sentinel;

    tmcf = ngx_http_tunnel_redis_conf;
    log = ngx_http_tunnel_redis_log;

    /* sentinels: ask one for the master first, on every (re)connect */

    link->asking = (tmcf->sentinels != NULL && !link->have_master
                    && !link->watcher);
    link->have_master = 0;

    if (link->asking || link->watcher) {
        sentinel = tmcf->sentinels->elts;
        sentinel += link->sentinel;
        ac = redisAsyncConnect((char *) sentinel->host, sentinel->port);

    } else if (tmcf->sentinels != NULL) {
        ac = redisAsyncConnect((char *) link->host, link->port);

    } else if (tmcf->redis_path.len) {
        ac = redisAsyncConnectUnix((char *) tmcf->redis_path.data);

    } else {
        ac = redisAsyncConnect((char *) tmcf->redis_host.data,
                               (int) tmcf->redis_port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "tunnel: redis %s link to \"%V\": out of memory",
                      link->role, &tmcf->redis);
        link->failed++;
        ngx_http_tunnel_redis_schedule(link);
        return;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "tunnel: redis %s link to \"%V\" failed: %s",
                      link->role, &tmcf->redis, ac->errstr);
        redisAsyncFree(ac);
        link->failed++;
        ngx_http_tunnel_redis_next_sentinel(link);
        ngx_http_tunnel_redis_schedule(link);
        return;
    }

    if (tmcf->redis_path.len == 0) {
        /* notices a peer that vanished without a FIN */
        (void) redisEnableKeepAlive(&ac->c);
    }

    c = ngx_get_connection(ac->c.fd, log);
    if (c == NULL) {
        redisAsyncFree(ac);
        link->failed++;
        ngx_http_tunnel_redis_schedule(link);
        return;
    }

    c->data = link;
    c->read->handler = ngx_http_tunnel_redis_read_handler;
    c->write->handler = ngx_http_tunnel_redis_write_handler;
    c->read->log = log;
    c->write->log = log;

    link->ac = ac;
    link->conn = c;
    link->up = 0;

    ac->data = link;
    ac->ev.data = link;
    ac->ev.addRead = ngx_http_tunnel_redis_add_read;
    ac->ev.delRead = ngx_http_tunnel_redis_del_read;
    ac->ev.addWrite = ngx_http_tunnel_redis_add_write;
    ac->ev.delWrite = ngx_http_tunnel_redis_del_write;
    ac->ev.cleanup = ngx_http_tunnel_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_http_tunnel_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_http_tunnel_redis_on_disconnect);

    ngx_add_timer(&link->deadline, NGX_HTTP_TUNNEL_REDIS_CONNECT_TIMEOUT);

    /*
     * The first command is queued now and flushed once the socket is
     * writable, which also tells hiredis the connect has completed.  Its
     * reply marks the link up.  A sentinel link asks for the master; a
     * master found through one must first say it is a master (ROLE).
     */

    if (link->watcher) {
        (void) redisAsyncCommandArgv(ac, ngx_http_tunnel_redis_switch, link,
                                     2, switch_argv, NULL);
        ngx_http_tunnel_redis_add_write(link);
        return;
    }

    if (link->asking) {
        sentinel_argv[2] = (const char *) tmcf->redis_master.data;
        sentinel_argvlen[2] = tmcf->redis_master.len;

        (void) redisAsyncCommandArgv(ac,
                                     ngx_http_tunnel_redis_sentinel_answer,
                                     link, 3, sentinel_argv,
                                     sentinel_argvlen);
        ngx_http_tunnel_redis_add_write(link);
        return;
    }

    if (tmcf->sentinels != NULL) {
        (void) redisAsyncCommandArgv(ac, ngx_http_tunnel_redis_role, link,
                                     1, role_argv, NULL);
    }

    if (link->subscriber) {
        (void) redisAsyncCommandArgv(ac, ngx_http_tunnel_redis_message, link,
                                     2, sub_argv, NULL);

    } else {
        (void) redisAsyncCommandArgv(ac, ngx_http_tunnel_redis_pong, link,
                                     1, ping_argv, NULL);
    }

    ngx_http_tunnel_redis_add_write(link);
}


static void
ngx_http_tunnel_redis_next_sentinel(ngx_http_tunnel_redis_link_t *link)
{
    if (link->asking) {
        link->asking = 0;
        link->sentinel = (link->sentinel + 1)
                         % ngx_http_tunnel_redis_conf->sentinels->nelts;
    }
}


static void
ngx_http_tunnel_redis_schedule(ngx_http_tunnel_redis_link_t *link)
{
    if (ngx_http_tunnel_redis_exiting || ngx_terminate) {
        return;
    }

    if (!link->retry.timer_set) {
        ngx_add_timer(&link->retry, link->backoff);
    }

    link->backoff *= 2;

    if (link->backoff > NGX_HTTP_TUNNEL_REDIS_BACKOFF_MAX) {
        link->backoff = NGX_HTTP_TUNNEL_REDIS_BACKOFF_MAX;
    }
}


static void
ngx_http_tunnel_redis_retry_handler(ngx_event_t *ev)
{
    ngx_http_tunnel_redis_link_t  *link = ev->data;

    if (ngx_http_tunnel_redis_exiting || link->ac != NULL) {
        return;
    }

    ngx_http_tunnel_redis_connect(link);
}


static void
ngx_http_tunnel_redis_deadline_handler(ngx_event_t *ev)
{
    ngx_http_tunnel_redis_link_t  *link = ev->data;

    /* a sentinel link stays under the deadline until it answers */

    if (link->ac == NULL
        || ((link->ac->c.flags & REDIS_CONNECTED) && !link->asking))
    {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_http_tunnel_redis_log, NGX_ETIMEDOUT,
                  "tunnel: redis %s link to \"%V\" timed out connecting",
                  link->role, &ngx_http_tunnel_redis_conf->redis);

    /* not inside a hiredis callback: freeing at once is safe */

    redisAsyncFree(link->ac);
}


/*
 * Event handlers.  hiredis may free the context (and run the cleanup hook,
 * which frees c) inside these calls: nothing is touched afterwards.
 */

static void
ngx_http_tunnel_redis_read_handler(ngx_event_t *rev)
{
    ngx_connection_t              *c = rev->data;
    ngx_http_tunnel_redis_link_t  *link = c->data;

    if (link->ac) {
        redisAsyncHandleRead(link->ac);
    }
}


static void
ngx_http_tunnel_redis_write_handler(ngx_event_t *wev)
{
    ngx_connection_t              *c = wev->data;
    ngx_http_tunnel_redis_link_t  *link = c->data;

    if (link->ac) {
        redisAsyncHandleWrite(link->ac);
    }
}


/*
 * Adapter hooks, idempotent as hiredis requires.  Level-triggered: hiredis
 * reads one buffer per call and would strand the rest of a pipelined reply
 * under edge-triggered epoll.
 */

static void
ngx_http_tunnel_redis_add_read(void *data)
{
    ngx_http_tunnel_redis_link_t  *link = data;

    if (link->conn && !link->conn->read->active) {
        if (ngx_add_event(link->conn->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, ngx_http_tunnel_redis_log, 0,
                          "tunnel: redis %s link: adding read event failed",
                          link->role);
        }
    }
}


static void
ngx_http_tunnel_redis_del_read(void *data)
{
    ngx_http_tunnel_redis_link_t  *link = data;

    if (link->conn && link->conn->read->active) {
        (void) ngx_del_event(link->conn->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_tunnel_redis_add_write(void *data)
{
    ngx_http_tunnel_redis_link_t  *link = data;

    if (link->conn && !link->conn->write->active) {
        if (ngx_add_event(link->conn->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, ngx_http_tunnel_redis_log, 0,
                          "tunnel: redis %s link: adding write event failed",
                          link->role);
        }
    }
}


static void
ngx_http_tunnel_redis_del_write(void *data)
{
    ngx_http_tunnel_redis_link_t  *link = data;

    if (link->conn && link->conn->write->active) {
        (void) ngx_del_event(link->conn->write, NGX_WRITE_EVENT, 0);
    }
}


/*
 * The context is being freed (error, EOF, connect failure, timeout or exit);
 * hiredis closes the fd right after this returns.  Return the borrowed
 * connection without closing anything, and plan the reconnect.
 */

static void
ngx_http_tunnel_redis_cleanup(void *data)
{
    ngx_http_tunnel_redis_link_t  *link = data;

    ngx_connection_t  *c;

    c = link->conn;

    if (c) {
        if (c->read->active) {
            (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
        }

        if (c->write->active) {
            (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
        }

        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        if (c->write->posted) {
            ngx_delete_posted_event(c->write);
        }

        /* ngx_free_connection() still reads c->fd: clear it afterwards */

        ngx_free_connection(c);
        c->fd = (ngx_socket_t) -1;
    }

    if (link->deadline.timer_set) {
        ngx_del_timer(&link->deadline);
    }

    link->ac = NULL;
    link->conn = NULL;

    if (link->asking) {

        if (link->have_master) {
            link->asking = 0;

            /* on to the master it named, without backoff */

            if (!ngx_http_tunnel_redis_exiting && !ngx_terminate
                && !link->retry.timer_set)
            {
                ngx_add_timer(&link->retry, 1);
            }

            return;
        }

        /* this sentinel failed us: the next one, next time */
        ngx_http_tunnel_redis_next_sentinel(link);
    }

    if (link->watcher) {
        link->sentinel = (link->sentinel + 1)
                         % ngx_http_tunnel_redis_conf->sentinels->nelts;
    }

    if (link->subscriber) {
        ngx_http_tunnel_cache_enable(0);
    }

    if (link->up) {
        link->failed = 0;
    }

    link->failed++;
    link->ac = NULL;
    link->conn = NULL;
    link->up = 0;

    ngx_http_tunnel_redis_schedule(link);
}


static void
ngx_http_tunnel_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_http_tunnel_redis_link_t  *link = ac->data;

    if (status == REDIS_OK) {
        if (link->deadline.timer_set && !link->asking) {
            ngx_del_timer(&link->deadline);
        }

        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_http_tunnel_redis_log, 0,
                  "tunnel: redis %s link to \"%V\" failed: %s",
                  link->role, &ngx_http_tunnel_redis_conf->redis,
                  ac->errstr);
}


static void
ngx_http_tunnel_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_http_tunnel_redis_link_t  *link = ac->data;

    if (status == REDIS_OK) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_http_tunnel_redis_log, 0,
                  "tunnel: redis %s link to \"%V\" lost: %s",
                  link->role, &ngx_http_tunnel_redis_conf->redis,
                  ac->errstr ? ac->errstr : "connection closed");
}


static void
ngx_http_tunnel_redis_up(ngx_http_tunnel_redis_link_t *link)
{
    if (link->up) {
        return;
    }

    link->up = 1;
    link->backoff = NGX_HTTP_TUNNEL_REDIS_BACKOFF_MIN;

    if (link->failed) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_http_tunnel_redis_log, 0,
                      "tunnel: redis %s link to \"%V\" is back",
                      link->role, &ngx_http_tunnel_redis_conf->redis);
        link->failed = 0;
    }
}


static void
ngx_http_tunnel_redis_pong(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply                    *rr = reply;
    ngx_http_tunnel_redis_link_t  *link = privdata;

    if (rr == NULL) {
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_tunnel_redis_log, 0,
                      "tunnel: redis %s link to \"%V\": PING failed: %*s",
                      link->role, &ngx_http_tunnel_redis_conf->redis,
                      (size_t) rr->len, rr->str);
        return;
    }

    ngx_http_tunnel_redis_up(link);
}


/*
 * Subscriber replies: ["subscribe", channel, n] once subscribed (the cache
 * may be used from now on), ["message", channel, name] per invalidation.
 */

static void
ngx_http_tunnel_redis_message(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply                    *rr = reply, *kind, *payload;
    ngx_str_t                      name;
    ngx_http_tunnel_redis_link_t  *link = privdata;
    char                           buf[TNL_NAME_MAX + 1];

    if (rr == NULL) {
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_tunnel_redis_log, 0,
                      "tunnel: redis %s link to \"%V\": SUBSCRIBE failed: %*s",
                      link->role, &ngx_http_tunnel_redis_conf->redis,
                      (size_t) rr->len, rr->str);
        return;
    }

    if (rr->type != REDIS_REPLY_ARRAY || rr->elements < 3) {
        return;
    }

    kind = rr->element[0];
    payload = rr->element[2];

    if (kind->type != REDIS_REPLY_STRING) {
        return;
    }

    if (kind->len == sizeof("subscribe") - 1
        && ngx_strncasecmp((u_char *) kind->str, (u_char *) "subscribe",
                           kind->len) == 0)
    {
        ngx_http_tunnel_redis_up(link);
        ngx_http_tunnel_cache_enable(1);
        return;
    }

    if (kind->len != sizeof("message") - 1
        || ngx_strncasecmp((u_char *) kind->str, (u_char *) "message",
                           kind->len) != 0
        || payload->type != REDIS_REPLY_STRING)
    {
        return;
    }

    if (tnl_name_validate(payload->str, payload->len, buf, NULL) != 0) {
        ngx_log_error(NGX_LOG_WARN, ngx_http_tunnel_redis_log, 0,
                      "tunnel: ignored invalidation of a bad name \"%*s\"",
                      ngx_min((size_t) payload->len, (size_t) 64),
                      payload->str);
        return;
    }

    name.data = (u_char *) buf;
    name.len = ngx_strlen(buf);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_http_tunnel_redis_log, 0,
                   "tunnel: invalidated \"%V\"", &name);

    ngx_http_tunnel_cache_remove(&name);
}


/*
 * Sentinel mode.  The answer to SENTINEL get-master-addr-by-name is
 * ["IP", "PORT"]: remember it and drop the sentinel link; the cleanup hook
 * connects on to the master at once.  The master must answer ROLE with
 * "master" before the PING or SUBSCRIBE queued behind it marks the link up:
 * otherwise (a failover under way, a stale answer) the link is dropped and
 * the next attempt asks a sentinel again.  A master demoted later has its
 * clients killed by the sentinels, which lands here again as well.
 */

static void
ngx_http_tunnel_redis_sentinel_answer(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply                    *rr = reply, *h, *p;
    ngx_int_t                      port;
    ngx_http_tunnel_redis_link_t  *link = privdata;
#if (NGX_HAVE_INET6)
    u_char                         ip6[16];
#endif

    if (rr == NULL) {
        return;
    }

    if (rr->type == REDIS_REPLY_ARRAY && rr->elements == 2
        && rr->element[0]->type == REDIS_REPLY_STRING
        && rr->element[1]->type == REDIS_REPLY_STRING
        && rr->element[0]->len > 0
        && rr->element[0]->len <= NGX_SOCKADDR_STRLEN)
    {
        h = rr->element[0];
        p = rr->element[1];

        port = ngx_atoi((u_char *) p->str, p->len);

        /* a host name would be resolved by hiredis, blocking the worker */
        if (ngx_inet_addr((u_char *) h->str, h->len) == INADDR_NONE
#if (NGX_HAVE_INET6)
            && ngx_inet6_addr((u_char *) h->str, h->len, ip6) != NGX_OK
#endif
            )
        {
            ngx_log_error(NGX_LOG_ERR, ngx_http_tunnel_redis_log, 0,
                          "tunnel: redis %s link: the sentinels name the "
                          "master by host name \"%*s\"; configure them "
                          "with \"sentinel announce-hostnames no\" so "
                          "they give its IP address", link->role,
                          (size_t) h->len, h->str);
            port = 0;
        }

        if (port > 0 && port < 65536) {
            ngx_memcpy(link->host, h->str, h->len);
            link->host[h->len] = '\0';
            link->port = (int) port;
            link->have_master = 1;
        }
    }

    if (!link->have_master) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_tunnel_redis_log, 0,
                      "tunnel: redis %s link: a sentinel does not know "
                      "\"%V\"%s%*s", link->role,
                      &ngx_http_tunnel_redis_conf->redis_master,
                      rr->type == REDIS_REPLY_ERROR ? ": " : "",
                      rr->type == REDIS_REPLY_ERROR ? (size_t) rr->len : 0,
                      rr->type == REDIS_REPLY_ERROR ? rr->str : "");
    }

    redisAsyncFree(ac);     /* deferred: we are inside a callback */
}


static void
ngx_http_tunnel_redis_role(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply                    *rr = reply, *role;
    ngx_http_tunnel_redis_link_t  *link = privdata;

    if (rr == NULL) {
        return;
    }

    role = (rr->type == REDIS_REPLY_ARRAY && rr->elements > 0)
           ? rr->element[0] : NULL;

    if (role != NULL && role->type == REDIS_REPLY_STRING && role->len == 6
        && ngx_strncmp(role->str, "master", 6) == 0)
    {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ngx_http_tunnel_redis_log, 0,
                  "tunnel: redis %s link: %s:%d, named master of \"%V\" by "
                  "a sentinel, is not a master: asking again", link->role,
                  link->host, link->port,
                  &ngx_http_tunnel_redis_conf->redis_master);

    redisAsyncFree(ac);
}


/*
 * The sentinel link: SUBSCRIBEd to +switch-master on one sentinel (the
 * next one after a failure).  A failover with the old master still up
 * would leave the links on it until the sentinels demote it (seconds: their
 * INFO period), meanwhile reading routes it no longer gets and missing the
 * invalidations published on the new master.  "NAME OLDIP OLDPORT NEWIP
 * NEWPORT" for our master drops both links, which then ask a sentinel.
 */

static void
ngx_http_tunnel_redis_switch(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply                    *rr = reply, *kind, *m;
    u_char                        *p, *end;
    ngx_str_t                     *name;
    ngx_uint_t                     i;
    ngx_http_tunnel_redis_link_t  *link = privdata, *links[2];

    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY || rr->elements < 3) {
        return;
    }

    kind = rr->element[0];
    m = rr->element[2];

    if (kind->type != REDIS_REPLY_STRING) {
        return;
    }

    if (kind->len == sizeof("subscribe") - 1
        && ngx_strncasecmp((u_char *) kind->str, (u_char *) "subscribe",
                           kind->len) == 0)
    {
        ngx_http_tunnel_redis_up(link);
        return;
    }

    if (m->type != REDIS_REPLY_STRING) {
        return;
    }

    name = &ngx_http_tunnel_redis_conf->redis_master;
    p = (u_char *) m->str;
    end = p + m->len;

    if ((size_t) (end - p) <= name->len || p[name->len] != ' '
        || ngx_strncmp(p, name->data, name->len) != 0)
    {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_http_tunnel_redis_log, 0,
                  "tunnel: the sentinels switched masters: \"%*s\", "
                  "reconnecting", (size_t) m->len, m->str);

    links[0] = &ngx_http_tunnel_redis_cmd;
    links[1] = &ngx_http_tunnel_redis_sub;

    /* other contexts than ac: freeing them at once is safe */

    for (i = 0; i < 2; i++) {
        if (links[i]->ac != NULL && !links[i]->asking) {
            redisAsyncFree(links[i]->ac);
        }
    }
}
