
/*
 * The per-worker pool of non-blocking PostgreSQL connections of the admin
 * pages.
 *
 * Each connection is a PGconn driven by nginx events on a borrowed
 * ngx_connection_t: PQconnectStart/PQconnectPoll to connect,
 * PQsendQueryParams + PQflush to send (values are always parameters, never
 * spliced into SQL), PQconsumeInput/PQisBusy/PQgetResult to read, draining
 * every result to NULL before the connection is reused.  Events are
 * registered level-triggered: libpq reads in pieces and may say "wait for
 * write" right after a connect completed, which an edge-triggered
 * registration would never report again.
 *
 * A query is a record in the request's pool.  Its r->pool cleanup detaches
 * it (from the waiting queue or from its connection) when the client goes
 * away; a detached query's result is still drained and thrown away.  Every
 * query has a timer; on expiry the connection is finished (the server then
 * cancels the statement) and the pool reconnects by itself, with backoff,
 * and at once when a request finds no connection alive.
 *
 * Ownership: the connections array and the PGconn objects are heap memory
 * of this worker.  libpq owns the sockets: the ngx_connection_t wrapping one
 * is released with ngx_free_connection() before PQfinish() closes the fd,
 * never with ngx_close_connection().  This file does not know any SQL.
 */

#include "ngx_http_tunnel_admin_module.h"


typedef struct ngx_http_tunnel_admin_pg_s  ngx_http_tunnel_admin_pg_t;
typedef struct ngx_http_tunnel_admin_pg_query_s
    ngx_http_tunnel_admin_pg_query_t;


typedef enum {
    NGX_HTTP_TUNNEL_ADMIN_PG_OFF = 0,      /* closed; maybe a retry timer */
    NGX_HTTP_TUNNEL_ADMIN_PG_CONNECTING,
    NGX_HTTP_TUNNEL_ADMIN_PG_IDLE,
    NGX_HTTP_TUNNEL_ADMIN_PG_BUSY          /* a statement in flight */
} ngx_http_tunnel_admin_pg_state_e;


struct ngx_http_tunnel_admin_pg_s {
    PGconn                             *pg;
    ngx_connection_t                   *conn;
    ngx_http_tunnel_admin_pg_state_e    state;
    ngx_http_tunnel_admin_pg_query_t   *query;     /* NULL if detached */
    PGresult                           *res;       /* kept while draining */
    ngx_event_t                         timer;     /* connect / retry */
    ngx_msec_t                          backoff;
    unsigned                            writing:1;
    unsigned                            flushing:1;
};


/* in r->pool; never touched by this file after its cleanup ran */
struct ngx_http_tunnel_admin_pg_query_s {
    ngx_http_request_t                 *request;
    ngx_http_tunnel_admin_pg_t         *pg;        /* while sent */
    ngx_queue_t                         queue;     /* while waiting */
    ngx_event_t                         timer;
    ngx_event_t                         done;      /* posted on completion */
    PGresult                           *res;       /* until delivered */
    ngx_int_t                           rc;
    const char                         *sql;
    int                                 nparams;
    const char                *values[NGX_HTTP_TUNNEL_ADMIN_MAX_PARAMS];
    unsigned                            queued:1;
    unsigned                            retried:1;
};


typedef struct {
    ngx_http_tunnel_admin_main_conf_t  *conf;
    ngx_http_tunnel_admin_pg_t         *conns;
    ngx_uint_t                          n;
    ngx_queue_t                         waiting;
    ngx_msec_t                          last_kick;
    ngx_log_t                          *log;
} ngx_http_tunnel_admin_pool_t;


static ngx_http_tunnel_admin_pool_t  ngx_http_tunnel_admin_pool;


#define NGX_HTTP_TUNNEL_ADMIN_PG_BACKOFF_MIN  250
#define NGX_HTTP_TUNNEL_ADMIN_PG_BACKOFF_MAX  5000


static void ngx_http_tunnel_admin_pg_connect(ngx_http_tunnel_admin_pg_t *pc);
static void ngx_http_tunnel_admin_pg_connect_poll(
    ngx_http_tunnel_admin_pg_t *pc);
static ngx_int_t ngx_http_tunnel_admin_pg_attach(
    ngx_http_tunnel_admin_pg_t *pc);
static void ngx_http_tunnel_admin_pg_detach(ngx_http_tunnel_admin_pg_t *pc,
    ngx_uint_t fd_closed);
static void ngx_http_tunnel_admin_pg_want_write(
    ngx_http_tunnel_admin_pg_t *pc, ngx_uint_t on);
static void ngx_http_tunnel_admin_pg_close(ngx_http_tunnel_admin_pg_t *pc,
    ngx_uint_t retry);
static void ngx_http_tunnel_admin_pg_failed(ngx_http_tunnel_admin_pg_t *pc,
    ngx_uint_t level, const char *what);
static void ngx_http_tunnel_admin_pg_event(ngx_event_t *ev);
static void ngx_http_tunnel_admin_pg_timer(ngx_event_t *ev);
static void ngx_http_tunnel_admin_pg_read(ngx_http_tunnel_admin_pg_t *pc);
static void ngx_http_tunnel_admin_pg_idle(ngx_http_tunnel_admin_pg_t *pc);
static void ngx_http_tunnel_admin_pg_send(ngx_http_tunnel_admin_pg_t *pc,
    ngx_http_tunnel_admin_pg_query_t *q);
static void ngx_http_tunnel_admin_pg_dispatch(void);
static ngx_uint_t ngx_http_tunnel_admin_pg_alive(void);
static void ngx_http_tunnel_admin_pg_fail_waiting(void);
static void ngx_http_tunnel_admin_pg_deliver(
    ngx_http_tunnel_admin_pg_query_t *q, PGresult *res, ngx_int_t rc);
static void ngx_http_tunnel_admin_pg_done(ngx_event_t *ev);
static void ngx_http_tunnel_admin_pg_query_timeout(ngx_event_t *ev);
static void ngx_http_tunnel_admin_pg_query_cleanup(void *data);
static void ngx_http_tunnel_admin_pg_notice(void *arg, const char *message);


ngx_int_t
ngx_http_tunnel_admin_pg_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                          i;
    ngx_http_tunnel_admin_pg_t         *pc;
    ngx_http_tunnel_admin_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_tunnel_admin_module);
    if (amcf == NULL || !amcf->enabled) {
        return NGX_OK;
    }

    ngx_http_tunnel_admin_pool.conf = amcf;
    ngx_http_tunnel_admin_pool.log = cycle->log;
    ngx_http_tunnel_admin_pool.n = amcf->pool_size;
    ngx_queue_init(&ngx_http_tunnel_admin_pool.waiting);

    pc = ngx_calloc(amcf->pool_size * sizeof(ngx_http_tunnel_admin_pg_t),
                    cycle->log);
    if (pc == NULL) {
        return NGX_ERROR;
    }

    ngx_http_tunnel_admin_pool.conns = pc;

    for (i = 0; i < amcf->pool_size; i++) {
        pc[i].timer.handler = ngx_http_tunnel_admin_pg_timer;
        pc[i].timer.data = &pc[i];
        pc[i].timer.log = cycle->log;
        pc[i].timer.cancelable = 1;
        pc[i].backoff = NGX_HTTP_TUNNEL_ADMIN_PG_BACKOFF_MIN;

        ngx_http_tunnel_admin_pg_connect(&pc[i]);
    }

    return NGX_OK;
}


void
ngx_http_tunnel_admin_pg_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t  i;

    if (ngx_http_tunnel_admin_pool.conns == NULL) {
        return;
    }

    for (i = 0; i < ngx_http_tunnel_admin_pool.n; i++) {
        ngx_http_tunnel_admin_pg_close(&ngx_http_tunnel_admin_pool.conns[i],
                                       0);
    }

    ngx_free(ngx_http_tunnel_admin_pool.conns);
    ngx_http_tunnel_admin_pool.conns = NULL;
}


/*
 * Starts a query for the request.  Returns WAIT: the dispatcher is resumed
 * with ctx->res / ctx->db_rc set; or READY when the database is known to be
 * down (the 503 page is composed).  params with data == NULL are SQL NULLs.
 * A new result replaces (and frees) ctx->res: callers copy what they keep.
 */
ngx_int_t
ngx_http_tunnel_admin_query(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *sql, int nparams,
    ngx_str_t *params)
{
    int                                i;
    u_char                            *p;
    ngx_uint_t                         k;
    ngx_pool_cleanup_t                *cln;
    ngx_http_tunnel_admin_pg_t        *pc;
    ngx_http_tunnel_admin_pg_query_t  *q;

    if (nparams > NGX_HTTP_TUNNEL_ADMIN_MAX_PARAMS
        || ngx_http_tunnel_admin_pool.conns == NULL)
    {
        return NGX_ERROR;
    }

    q = ngx_pcalloc(r->pool, sizeof(ngx_http_tunnel_admin_pg_query_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (q == NULL || cln == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < nparams; i++) {
        if (params[i].data == NULL) {
            continue;
        }

        p = ngx_pnalloc(r->pool, params[i].len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        *ngx_cpymem(p, params[i].data, params[i].len) = '\0';
        q->values[i] = (const char *) p;
    }

    q->request = r;
    q->sql = sql;
    q->nparams = nparams;
    q->timer.handler = ngx_http_tunnel_admin_pg_query_timeout;
    q->timer.data = q;
    q->timer.log = r->connection->log;
    q->done.handler = ngx_http_tunnel_admin_pg_done;
    q->done.data = q;
    q->done.log = r->connection->log;

    cln->handler = ngx_http_tunnel_admin_pg_query_cleanup;
    cln->data = q;

    ctx->db_rc = NGX_OK;

    if (!ngx_http_tunnel_admin_pg_alive()
        && ngx_current_msec - ngx_http_tunnel_admin_pool.last_kick >= 1000)
    {
        /* nothing is up: try one connection now rather than at backoff */
        ngx_http_tunnel_admin_pool.last_kick = ngx_current_msec;

        for (k = 0; k < ngx_http_tunnel_admin_pool.n; k++) {
            pc = &ngx_http_tunnel_admin_pool.conns[k];
            if (pc->state == NGX_HTTP_TUNNEL_ADMIN_PG_OFF) {
                ngx_http_tunnel_admin_pg_connect(pc);
                break;
            }
        }
    }

    if (!ngx_http_tunnel_admin_pg_alive()) {
        ctx->db_rc = NGX_DECLINED;
        return ngx_http_tunnel_admin_unavailable(r, ctx);
    }

    ngx_add_timer(&q->timer, ngx_http_tunnel_admin_pool.conf->db_timeout);

    ngx_queue_insert_tail(&ngx_http_tunnel_admin_pool.waiting, &q->queue);
    q->queued = 1;

    ngx_http_tunnel_admin_pg_dispatch();

    return NGX_HTTP_TUNNEL_ADMIN_WAIT;
}


/* a boolean query parameter: "t" or "f" */
void
ngx_http_tunnel_admin_bool_param(ngx_str_t *param, ngx_uint_t value)
{
    if (value) {
        ngx_str_set(param, "t");

    } else {
        ngx_str_set(param, "f");
    }
}


/* a number as a query parameter, in pool */
ngx_int_t
ngx_http_tunnel_admin_number_param(ngx_pool_t *pool, int64_t n,
    ngx_str_t *param)
{
    param->data = ngx_pnalloc(pool, NGX_INT64_LEN);
    if (param->data == NULL) {
        return NGX_ERROR;
    }

    param->len = ngx_sprintf(param->data, "%L", n) - param->data;

    return NGX_OK;
}


/* hands waiting queries to idle connections */
static void
ngx_http_tunnel_admin_pg_dispatch(void)
{
    ngx_uint_t                         i;
    ngx_queue_t                       *qq;
    ngx_http_tunnel_admin_pg_t        *pc;
    ngx_http_tunnel_admin_pg_query_t  *q;

    for (i = 0; i < ngx_http_tunnel_admin_pool.n; i++) {

        if (ngx_queue_empty(&ngx_http_tunnel_admin_pool.waiting)) {
            return;
        }

        pc = &ngx_http_tunnel_admin_pool.conns[i];
        if (pc->state != NGX_HTTP_TUNNEL_ADMIN_PG_IDLE) {
            continue;
        }

        qq = ngx_queue_head(&ngx_http_tunnel_admin_pool.waiting);
        ngx_queue_remove(qq);
        q = ngx_queue_data(qq, ngx_http_tunnel_admin_pg_query_t, queue);
        q->queued = 0;

        ngx_http_tunnel_admin_pg_send(pc, q);

        /* a failed send closed pc and may have requeued q: go round */
        if (pc->state != NGX_HTTP_TUNNEL_ADMIN_PG_BUSY) {
            i = (ngx_uint_t) -1;
        }
    }
}


static void
ngx_http_tunnel_admin_pg_send(ngx_http_tunnel_admin_pg_t *pc,
    ngx_http_tunnel_admin_pg_query_t *q)
{
    int  rc;

    if (!PQsendQueryParams(pc->pg, q->sql, q->nparams, NULL, q->values,
                           NULL, NULL, 0))
    {
        ngx_http_tunnel_admin_pg_failed(pc, NGX_LOG_ERR,
                                        "cannot send a query to the database");

        if (!q->retried && ngx_http_tunnel_admin_pg_alive()) {
            /* a connection that died while idle: once more elsewhere */
            q->retried = 1;
            ngx_queue_insert_head(&ngx_http_tunnel_admin_pool.waiting,
                                  &q->queue);
            q->queued = 1;
            return;
        }

        ngx_http_tunnel_admin_pg_deliver(q, NULL, NGX_DECLINED);
        return;
    }

    pc->state = NGX_HTTP_TUNNEL_ADMIN_PG_BUSY;
    pc->query = q;
    pc->conn->idle = 0;
    q->pg = pc;

    rc = PQflush(pc->pg);

    if (rc == 1) {
        pc->flushing = 1;
        ngx_http_tunnel_admin_pg_want_write(pc, 1);

    } else if (rc == -1) {
        /* closing tells q the database is unavailable */
        ngx_http_tunnel_admin_pg_failed(pc, NGX_LOG_ERR,
                                        "cannot send a query to the database");
    }
}


static void
ngx_http_tunnel_admin_pg_connect(ngx_http_tunnel_admin_pg_t *pc)
{
    ngx_http_tunnel_admin_main_conf_t  *amcf;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    amcf = ngx_http_tunnel_admin_pool.conf;

    /*
     * PQconnectStart would resolve a host name with the blocking resolver:
     * the conninfo carries hostaddr= for every name, resolved at load time
     * (ngx_http_tunnel_admin_check_conninfo).
     */
    pc->pg = PQconnectStart((const char *) amcf->conninfo.data);

    if (pc->pg == NULL || PQstatus(pc->pg) == CONNECTION_BAD) {
        ngx_http_tunnel_admin_pg_failed(pc, NGX_LOG_ERR,
                                        "cannot connect to the database");
        return;
    }

    PQsetNoticeProcessor(pc->pg, ngx_http_tunnel_admin_pg_notice, NULL);

    if (PQsetnonblocking(pc->pg, 1) != 0
        || ngx_http_tunnel_admin_pg_attach(pc) != NGX_OK)
    {
        ngx_http_tunnel_admin_pg_close(pc, 1);
        return;
    }

    pc->state = NGX_HTTP_TUNNEL_ADMIN_PG_CONNECTING;
    ngx_add_timer(&pc->timer, amcf->db_timeout);

    ngx_http_tunnel_admin_pg_connect_poll(pc);
}


static void
ngx_http_tunnel_admin_pg_connect_poll(ngx_http_tunnel_admin_pg_t *pc)
{
    PostgresPollingStatusType  st;

    st = PQconnectPoll(pc->pg);

    /* libpq may have moved on to the next address: a new socket */
    if (st != PGRES_POLLING_FAILED
        && (pc->conn == NULL || PQsocket(pc->pg) != pc->conn->fd))
    {
        ngx_http_tunnel_admin_pg_detach(pc, 1);

        if (ngx_http_tunnel_admin_pg_attach(pc) != NGX_OK) {
            ngx_http_tunnel_admin_pg_close(pc, 1);
            return;
        }
    }

    switch (st) {

    case PGRES_POLLING_READING:
        ngx_http_tunnel_admin_pg_want_write(pc, 0);
        return;

    case PGRES_POLLING_WRITING:
        ngx_http_tunnel_admin_pg_want_write(pc, 1);
        return;

    case PGRES_POLLING_OK:
        ngx_log_error(NGX_LOG_INFO, ngx_http_tunnel_admin_pool.log, 0,
                      "tunnel: admin: connected to the database");

        if (pc->timer.timer_set) {
            ngx_del_timer(&pc->timer);
        }

        ngx_http_tunnel_admin_pg_want_write(pc, 0);
        pc->backoff = NGX_HTTP_TUNNEL_ADMIN_PG_BACKOFF_MIN;
        pc->state = NGX_HTTP_TUNNEL_ADMIN_PG_IDLE;
        pc->conn->idle = 1;

        ngx_http_tunnel_admin_pg_dispatch();
        return;

    default: /* PGRES_POLLING_FAILED */
        ngx_http_tunnel_admin_pg_failed(pc, NGX_LOG_ERR,
                                        "cannot connect to the database");
        return;
    }
}


static ngx_int_t
ngx_http_tunnel_admin_pg_attach(ngx_http_tunnel_admin_pg_t *pc)
{
    int                fd;
    ngx_connection_t  *c;

    fd = PQsocket(pc->pg);
    if (fd == -1) {
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, ngx_http_tunnel_admin_pool.log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = pc;
    c->read->handler = ngx_http_tunnel_admin_pg_event;
    c->write->handler = ngx_http_tunnel_admin_pg_event;
    c->read->log = c->log;
    c->write->log = c->log;

    pc->conn = c;
    pc->writing = 0;

    if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_http_tunnel_admin_pg_detach(pc, 0);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* gives the ngx_connection_t back; the fd stays libpq's */
static void
ngx_http_tunnel_admin_pg_detach(ngx_http_tunnel_admin_pg_t *pc,
    ngx_uint_t fd_closed)
{
    ngx_uint_t         flags;
    ngx_connection_t  *c;

    c = pc->conn;
    if (c == NULL) {
        return;
    }

    /* a socket libpq already closed has left epoll by itself */
    flags = fd_closed ? NGX_CLOSE_EVENT : 0;

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, flags);
    }

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, flags);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    pc->conn = NULL;
    pc->writing = 0;
}


static void
ngx_http_tunnel_admin_pg_want_write(ngx_http_tunnel_admin_pg_t *pc,
    ngx_uint_t on)
{
    if (pc->conn == NULL || pc->writing == on) {
        return;
    }

    if (on) {
        if (ngx_add_event(pc->conn->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            return;
        }

    } else {
        ngx_del_event(pc->conn->write, NGX_WRITE_EVENT, 0);
    }

    pc->writing = on;
}


/*
 * Finishes the connection.  A query in flight on it is told the database is
 * unavailable.  With retry, a reconnect is scheduled after the backoff.
 */
static void
ngx_http_tunnel_admin_pg_close(ngx_http_tunnel_admin_pg_t *pc,
    ngx_uint_t retry)
{
    ngx_http_tunnel_admin_pg_query_t  *q;

    /*
     * libpq closes the socket itself when it sees the connection fail
     * (PQsocket() is -1 then): that fd has already left epoll
     */
    ngx_http_tunnel_admin_pg_detach(pc, pc->conn
                                        && (pc->pg == NULL
                                            || PQsocket(pc->pg)
                                               != pc->conn->fd));

    if (pc->res) {
        PQclear(pc->res);
        pc->res = NULL;
    }

    if (pc->pg) {
        PQfinish(pc->pg);
        pc->pg = NULL;
    }

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    pc->state = NGX_HTTP_TUNNEL_ADMIN_PG_OFF;
    pc->flushing = 0;

    q = pc->query;
    pc->query = NULL;

    if (retry && !ngx_exiting && !ngx_terminate && !ngx_quit) {
        ngx_add_timer(&pc->timer, pc->backoff);
        pc->backoff = ngx_min(pc->backoff * 2,
                              NGX_HTTP_TUNNEL_ADMIN_PG_BACKOFF_MAX);
    }

    if (q) {
        q->pg = NULL;
        ngx_http_tunnel_admin_pg_deliver(q, NULL, NGX_DECLINED);
    }

    if (!ngx_http_tunnel_admin_pg_alive()) {
        ngx_http_tunnel_admin_pg_fail_waiting();
    }
}


/*
 * Logs what failed with libpq's reason, then closes the connection (the
 * query on it, if any, is told the database is unavailable) and schedules
 * a reconnect.
 */
static void
ngx_http_tunnel_admin_pg_failed(ngx_http_tunnel_admin_pg_t *pc,
    ngx_uint_t level, const char *what)
{
    ngx_log_error(level, ngx_http_tunnel_admin_pool.log, 0,
                  "tunnel: admin: %s: %s", what,
                  pc->pg ? PQerrorMessage(pc->pg) : "out of memory");

    ngx_http_tunnel_admin_pg_close(pc, 1);
}


static void
ngx_http_tunnel_admin_pg_timer(ngx_event_t *ev)
{
    ngx_http_tunnel_admin_pg_t  *pc = ev->data;

    if (pc->state == NGX_HTTP_TUNNEL_ADMIN_PG_CONNECTING) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_tunnel_admin_pool.log, 0,
                      "tunnel: admin: connecting to the database timed out");
        ngx_http_tunnel_admin_pg_close(pc, 1);
        return;
    }

    if (pc->state == NGX_HTTP_TUNNEL_ADMIN_PG_BUSY && pc->query == NULL) {
        ngx_log_error(NGX_LOG_WARN, ngx_http_tunnel_admin_pool.log, 0,
                      "tunnel: admin: the database did not finish an "
                      "abandoned query in time, reconnecting");
        ngx_http_tunnel_admin_pg_close(pc, 1);
        return;
    }

    if (pc->state == NGX_HTTP_TUNNEL_ADMIN_PG_OFF) {
        ngx_http_tunnel_admin_pg_connect(pc);
    }
}


static void
ngx_http_tunnel_admin_pg_event(ngx_event_t *ev)
{
    ngx_connection_t            *c;
    ngx_http_tunnel_admin_pg_t  *pc;

    c = ev->data;
    pc = c->data;

    if (c->close) {
        /* graceful shutdown closes idle connections */
        ngx_http_tunnel_admin_pg_close(pc, 0);
        return;
    }

    switch (pc->state) {

    case NGX_HTTP_TUNNEL_ADMIN_PG_CONNECTING:
        ngx_http_tunnel_admin_pg_connect_poll(pc);
        return;

    case NGX_HTTP_TUNNEL_ADMIN_PG_IDLE:
        ngx_http_tunnel_admin_pg_idle(pc);
        return;

    case NGX_HTTP_TUNNEL_ADMIN_PG_BUSY:
        if (pc->flushing) {
            switch (PQflush(pc->pg)) {
            case 0:
                pc->flushing = 0;
                ngx_http_tunnel_admin_pg_want_write(pc, 0);
                break;
            case 1:
                break;
            default:
                ngx_http_tunnel_admin_pg_failed(pc, NGX_LOG_ERR,
                                       "cannot send a query to the database");
                return;
            }
        }

        ngx_http_tunnel_admin_pg_read(pc);
        return;

    default:
        return;
    }
}


/* an idle connection speaks: a notice, or the server going away */
static void
ngx_http_tunnel_admin_pg_idle(ngx_http_tunnel_admin_pg_t *pc)
{
    PGresult  *res;
    PGnotify  *n;

    ngx_http_tunnel_admin_pg_want_write(pc, 0);

    if (!PQconsumeInput(pc->pg) || PQstatus(pc->pg) == CONNECTION_BAD) {
        ngx_http_tunnel_admin_pg_failed(pc, NGX_LOG_WARN,
                                        "database connection lost");
        return;
    }

    while ((n = PQnotifies(pc->pg)) != NULL) {
        PQfreemem(n);
    }

    while (!PQisBusy(pc->pg) && (res = PQgetResult(pc->pg)) != NULL) {
        PQclear(res);
    }
}


static void
ngx_http_tunnel_admin_pg_read(ngx_http_tunnel_admin_pg_t *pc)
{
    ngx_int_t                          rc;
    PGresult                          *res;
    ExecStatusType                     st;
    ngx_http_tunnel_admin_pg_query_t  *q;

    if (!PQconsumeInput(pc->pg)) {
        ngx_http_tunnel_admin_pg_failed(pc, NGX_LOG_ERR,
                                        "database connection lost");
        return;
    }

    for ( ;; ) {
        if (PQisBusy(pc->pg)) {
            return;
        }

        res = PQgetResult(pc->pg);
        if (res == NULL) {
            break;
        }

        /* one statement per query: keep the first result, drain the rest */
        if (pc->res == NULL) {
            pc->res = res;

        } else {
            PQclear(res);
        }
    }

    res = pc->res;
    pc->res = NULL;
    q = pc->query;
    pc->query = NULL;

    if (PQstatus(pc->pg) == CONNECTION_BAD) {
        if (res) {
            PQclear(res);
        }

        pc->query = q;
        ngx_http_tunnel_admin_pg_failed(pc, NGX_LOG_ERR,
                                        "database connection lost");
        return;
    }

    pc->state = NGX_HTTP_TUNNEL_ADMIN_PG_IDLE;
    pc->conn->idle = 1;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        rc = NGX_OK;

    } else {
        ngx_log_error(NGX_LOG_ERR, ngx_http_tunnel_admin_pool.log, 0,
                      "tunnel: admin: query failed: %s",
                      res ? PQresultErrorMessage(res) : "no result");
        rc = NGX_ERROR;
    }

    if (q) {
        q->pg = NULL;
        ngx_http_tunnel_admin_pg_deliver(q, res, rc);

    } else if (res) {
        PQclear(res);
    }

    ngx_http_tunnel_admin_pg_dispatch();
}


static ngx_uint_t
ngx_http_tunnel_admin_pg_alive(void)
{
    ngx_uint_t  i;

    for (i = 0; i < ngx_http_tunnel_admin_pool.n; i++) {
        if (ngx_http_tunnel_admin_pool.conns[i].state
            != NGX_HTTP_TUNNEL_ADMIN_PG_OFF)
        {
            return 1;
        }
    }

    return 0;
}


static void
ngx_http_tunnel_admin_pg_fail_waiting(void)
{
    ngx_queue_t                       *qq;
    ngx_http_tunnel_admin_pg_query_t  *q;

    while (!ngx_queue_empty(&ngx_http_tunnel_admin_pool.waiting)) {
        qq = ngx_queue_head(&ngx_http_tunnel_admin_pool.waiting);
        ngx_queue_remove(qq);
        q = ngx_queue_data(qq, ngx_http_tunnel_admin_pg_query_t, queue);
        q->queued = 0;

        ngx_http_tunnel_admin_pg_deliver(q, NULL, NGX_DECLINED);
    }
}


/*
 * Completes a query: rc is NGX_OK, NGX_ERROR (the statement failed) or
 * NGX_DECLINED (no database).  The request is resumed from a posted event,
 * never from inside the call that may have started the query.
 */
static void
ngx_http_tunnel_admin_pg_deliver(ngx_http_tunnel_admin_pg_query_t *q,
    PGresult *res, ngx_int_t rc)
{
    if (q->timer.timer_set) {
        ngx_del_timer(&q->timer);
    }

    q->pg = NULL;

    if (q->request == NULL) {
        if (res) {
            PQclear(res);
        }

        return;
    }

    q->res = res;
    q->rc = rc;

    ngx_post_event(&q->done, &ngx_posted_events);
}


/* the result belongs to the request context from now on */
static void
ngx_http_tunnel_admin_pg_done(ngx_event_t *ev)
{
    ngx_connection_t                  *c;
    ngx_http_request_t                *r;
    ngx_http_tunnel_admin_ctx_t       *ctx;
    ngx_http_tunnel_admin_pg_query_t  *q = ev->data;

    r = q->request;
    q->request = NULL;

    ctx = ngx_http_get_module_ctx(r, ngx_http_tunnel_admin_module);

    if (ctx->res) {
        PQclear(ctx->res);
    }

    ctx->res = q->res;
    ctx->db_rc = q->rc;
    q->res = NULL;

    c = r->connection;

    ngx_http_tunnel_admin_resume(r);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_tunnel_admin_pg_query_timeout(ngx_event_t *ev)
{
    ngx_http_tunnel_admin_pg_t        *pc;
    ngx_http_tunnel_admin_pg_query_t  *q = ev->data;

    ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                  "tunnel: admin: the database did not answer in time");

    if (q->queued) {
        ngx_queue_remove(&q->queue);
        q->queued = 0;
    }

    pc = q->pg;

    if (pc) {
        /* finishing the connection is what cancels the statement */
        q->pg = NULL;
        pc->query = NULL;
        ngx_http_tunnel_admin_pg_close(pc, 1);
    }

    ngx_http_tunnel_admin_pg_deliver(q, NULL, NGX_DECLINED);
}


static void
ngx_http_tunnel_admin_pg_query_cleanup(void *data)
{
    ngx_http_tunnel_admin_pg_query_t  *q = data;

    if (q->timer.timer_set) {
        ngx_del_timer(&q->timer);
    }

    if (q->queued) {
        ngx_queue_remove(&q->queue);
        q->queued = 0;
    }

    if (q->pg) {
        /*
         * the connection drains the result and throws it away, but not
         * for longer than a query may take
         */
        q->pg->query = NULL;

        if (!q->pg->timer.timer_set) {
            ngx_add_timer(&q->pg->timer,
                          ngx_http_tunnel_admin_pool.conf->db_timeout);
        }

        q->pg = NULL;
    }

    if (q->done.posted) {
        ngx_delete_posted_event(&q->done);
    }

    if (q->res) {
        PQclear(q->res);
        q->res = NULL;
    }

    q->request = NULL;
}


static void
ngx_http_tunnel_admin_pg_notice(void *arg, const char *message)
{
    ngx_log_error(NGX_LOG_INFO, ngx_http_tunnel_admin_pool.log, 0,
                  "tunnel: admin: database notice: %s", message);
}
