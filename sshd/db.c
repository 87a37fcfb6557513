/*
 * tunneld's PostgreSQL link (see db.h): one libpq connection driven by the
 * loop, as an explicit state machine (DOWN -> CONNECTING -> READY <-> BUSY)
 * with one dispatcher choosing the next query: LISTEN first after every
 * connect, then the key table load when wanted, then the audit queue.
 * Only PQconnectStart/PQconnectPoll, PQsendQueryParams, PQflush,
 * PQconsumeInput, PQisBusy and PQgetResult: nothing here blocks (except
 * tnl_db_stop(), a bounded poll() at shutdown).
 *
 * Ownership: libpq owns the connection and its socket (PQfinish closes
 * it); we only register the fd with the loop.  Queued rows are owned by
 * the queue; the row in flight is owned by tnl_db.inflight and goes back to
 * the head of the queue if the connection drops before PostgreSQL answered
 * (so a row may be written twice, never silently lost while we run).
 * Does not decide what a key means: keys.c holds the table.
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "db.h"
#include "keys.h"
#include "log.h"


#define TNL_DB_CONNECT_TIMEOUT_MS  5000
#define TNL_DB_QUERY_TIMEOUT_MS    10000
#define TNL_DB_BACKOFF_MIN_MS      100
#define TNL_DB_BACKOFF_MAX_MS      2000
#define TNL_DB_DEBOUNCE_MS         100
#define TNL_DB_LOAD_RETRY_MS       2000
#define TNL_DB_QUEUE_MAX           4096
#define TNL_DB_NAG_MS              10000
#define TNL_DB_MAX_PARAMS          12


static const char  tnl_db_sql_listen[] = "LISTEN tunnel_keys";

/* one statement, one snapshot: keys and reserved names agree */
static const char  tnl_db_sql_load[] =
    "SELECT 'k', k.fingerprint, k.user_id, u.name"
    " FROM ssh_keys k JOIN users u ON u.id = k.user_id"
    " WHERE NOT u.disabled"
    " UNION ALL"
    " SELECT 'r', name, user_id, NULL::text FROM reserved_names";

static const char  tnl_db_sql_event[] =
    "INSERT INTO tunnel_events (event, name, user_id, fingerprint,"
    " client_addr, session, node, bytes_in, bytes_out, streams, detail, at)"
    " VALUES ($1, $2, $3::bigint, $4, $5, $6, $7, $8::bigint, $9::bigint,"
    " $10::bigint, $11, $12::timestamptz)";

static const char  tnl_db_sql_key_used[] =
    "UPDATE ssh_keys SET last_used_at = now() WHERE fingerprint = $1";


typedef enum {
    TNL_DB_DOWN = 0,           /* retry timer running (or stopped) */
    TNL_DB_CONNECTING,
    TNL_DB_READY,              /* connected, nothing in flight */
    TNL_DB_BUSY,               /* one query in flight */
} tnl_db_state_e;


typedef enum {
    TNL_DB_Q_LISTEN = 0,
    TNL_DB_Q_LOAD,
    TNL_DB_Q_EVENT,
    TNL_DB_Q_KEY_USED,
} tnl_db_query_e;


typedef struct {
    tnl_db_query_e    kind;        /* EVENT or KEY_USED */
    int               nparams;
    char             *params[TNL_DB_MAX_PARAMS];   /* NULL = SQL NULL */
} tnl_db_item_t;


static struct {
    tnl_loop_t         *loop;
    char               *conninfo;
    char               *node;
    PGconn             *conn;
    tnl_io_t            io;
    tnl_db_state_e      state;
    tnl_db_query_e      query;         /* in flight while BUSY */
    ExecStatusType      result;        /* first non-OK status seen */
    char               *error;         /* its message */
    tnl_keys_build_t   *build;
    int                 nkeys;
    int                 nreserved;
    tnl_timer_t         timer;         /* connect, query or retry */
    tnl_timer_t         reload;        /* debounce, load retry */
    uint64_t            backoff;
    uint64_t            nagged;
    unsigned            listening:1;
    unsigned            load_wanted:1;
    unsigned            failing:1;
    unsigned            stopping:1;
    unsigned            started:1;

    tnl_db_item_t      *inflight;
    tnl_db_item_t     **queue;         /* ring of TNL_DB_QUEUE_MAX */
    size_t              qhead;
    size_t              qlen;
    uint64_t            dropped;
    uint64_t            drop_logged;
} tnl_db;


static void tnl_db_connect(void);
static void tnl_db_dispatch(void);
static void tnl_db_io_handler(tnl_io_t *io, uint32_t events);


/* the audit queue */

static void
tnl_db_item_free(tnl_db_item_t *item)
{
    int  i;

    if (item == NULL) {
        return;
    }

    for (i = 0; i < item->nparams; i++) {
        free(item->params[i]);
    }

    free(item);
}


static void
tnl_db_queue_push(tnl_db_item_t *item)
{
    if (tnl_db.queue == NULL) {
        tnl_db.queue = calloc(TNL_DB_QUEUE_MAX, sizeof(tnl_db_item_t *));
        if (tnl_db.queue == NULL) {
            tnl_db_item_free(item);
            return;
        }
    }

    if (tnl_db.qlen == TNL_DB_QUEUE_MAX) {
        tnl_db_item_free(tnl_db.queue[tnl_db.qhead]);
        tnl_db.qhead = (tnl_db.qhead + 1) % TNL_DB_QUEUE_MAX;
        tnl_db.qlen--;
        tnl_db.dropped++;

        if (tnl_now_ms() - tnl_db.drop_logged >= TNL_DB_NAG_MS
            || tnl_db.drop_logged == 0)
        {
            tnl_log_warn("db: audit queue full (%d rows), dropping the "
                         "oldest; %llu dropped so far", TNL_DB_QUEUE_MAX,
                         (unsigned long long) tnl_db.dropped);
            tnl_db.drop_logged = tnl_now_ms();
        }
    }

    tnl_db.queue[(tnl_db.qhead + tnl_db.qlen) % TNL_DB_QUEUE_MAX] = item;
    tnl_db.qlen++;
}


static tnl_db_item_t *
tnl_db_queue_pop(void)
{
    tnl_db_item_t  *item;

    if (tnl_db.qlen == 0) {
        return NULL;
    }

    item = tnl_db.queue[tnl_db.qhead];
    tnl_db.qhead = (tnl_db.qhead + 1) % TNL_DB_QUEUE_MAX;
    tnl_db.qlen--;

    return item;
}


/* the row in flight goes back first, unless the queue filled meanwhile */

static void
tnl_db_queue_unpop(tnl_db_item_t *item)
{
    if (tnl_db.qlen == TNL_DB_QUEUE_MAX) {
        tnl_db.dropped++;
        tnl_db_item_free(item);
        return;
    }

    tnl_db.qhead = (tnl_db.qhead + TNL_DB_QUEUE_MAX - 1) % TNL_DB_QUEUE_MAX;
    tnl_db.queue[tnl_db.qhead] = item;
    tnl_db.qlen++;
}


static int
tnl_db_item_set(tnl_db_item_t *item, int i, const char *value)
{
    item->params[i] = NULL;

    if (value == NULL) {
        return 0;
    }

    item->params[i] = strdup(value);

    return item->params[i] ? 0 : -1;
}


static int
tnl_db_item_set_int(tnl_db_item_t *item, int i, int64_t value)
{
    char  buf[24];

    snprintf(buf, sizeof(buf), "%lld", (long long) value);

    return tnl_db_item_set(item, i, buf);
}


/* wall-clock time of the event, not of the (maybe much later) insert */

static void
tnl_db_now_text(char *buf, size_t size)
{
    struct timespec  ts;
    struct tm        tm;
    size_t           n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);

    n = strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%06ld+00", ts.tv_nsec / 1000);
}


void
tnl_db_log_event(const tnl_db_event_t *ev)
{
    tnl_db_item_t  *item;
    char            at[64];
    int             rc;

    if (!tnl_db.started || tnl_db.stopping) {
        return;
    }

    item = calloc(1, sizeof(tnl_db_item_t));
    if (item == NULL) {
        tnl_log_error("db: out of memory, audit row dropped");
        return;
    }

    item->kind = TNL_DB_Q_EVENT;
    item->nparams = 12;

    tnl_db_now_text(at, sizeof(at));

    rc = tnl_db_item_set(item, 0, ev->event ? ev->event : "unknown");
    rc |= tnl_db_item_set(item, 1, ev->name);
    rc |= ev->user_id ? tnl_db_item_set_int(item, 2, ev->user_id) : 0;
    rc |= tnl_db_item_set(item, 3, ev->fingerprint);
    rc |= tnl_db_item_set(item, 4, ev->client);
    rc |= tnl_db_item_set(item, 5, ev->session);
    rc |= tnl_db_item_set(item, 6, tnl_db.node);
    rc |= tnl_db_item_set_int(item, 7, ev->bytes_in);
    rc |= tnl_db_item_set_int(item, 8, ev->bytes_out);
    rc |= tnl_db_item_set_int(item, 9, ev->streams);
    rc |= tnl_db_item_set(item, 10, ev->detail);
    rc |= tnl_db_item_set(item, 11, at);

    if (rc != 0) {
        tnl_log_error("db: out of memory, audit row dropped");
        tnl_db_item_free(item);
        return;
    }

    tnl_db_queue_push(item);
    tnl_db_dispatch();
}


void
tnl_db_key_used(const char *fingerprint)
{
    tnl_db_item_t  *item;

    if (!tnl_db.started || tnl_db.stopping || fingerprint == NULL) {
        return;
    }

    item = calloc(1, sizeof(tnl_db_item_t));
    if (item == NULL || tnl_db_item_set(item, 0, fingerprint) == -1) {
        tnl_log_error("db: out of memory, last-used time dropped");
        free(item);
        return;
    }

    item->kind = TNL_DB_Q_KEY_USED;
    item->nparams = 1;

    tnl_db_queue_push(item);
    tnl_db_dispatch();
}


/* connection management */

static void
tnl_db_schedule(void)
{
    tnl_db.state = TNL_DB_DOWN;

    if (tnl_db.stopping) {
        return;
    }

    tnl_db.backoff = tnl_db.backoff ? tnl_db.backoff * 2
                                    : TNL_DB_BACKOFF_MIN_MS;
    if (tnl_db.backoff > TNL_DB_BACKOFF_MAX_MS) {
        tnl_db.backoff = TNL_DB_BACKOFF_MAX_MS;
    }

    tnl_timer_add(&tnl_db.timer, tnl_db.backoff);
}


static void
tnl_db_clear_result(void)
{
    free(tnl_db.error);
    tnl_db.error = NULL;
    tnl_db.result = PGRES_COMMAND_OK;
}


/* libpq messages end with a newline (and may hold several lines) */

static const char *
tnl_db_trim(const char *msg, char *buf, size_t size)
{
    size_t  len;

    snprintf(buf, size, "%s", msg ? msg : "");

    len = strlen(buf);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ')) {
        buf[--len] = '\0';
    }

    for ( ; len > 0; len--) {
        if ((unsigned char) buf[len - 1] < 0x20) {
            buf[len - 1] = ' ';
        }
    }

    return buf;
}


/* server notices (and a FATAL while idle): libpq would print them raw */

static void
tnl_db_notice(void *arg, const char *message)
{
    char  buf[512];

    (void) arg;

    tnl_log_info("db: %s", tnl_db_trim(message, buf, sizeof(buf)));
}


/* closes the connection (libpq closes the fd) and plans a reconnect */

static void
tnl_db_drop(const char *why)
{
    char  buf[512];

    if (!tnl_db.failing || tnl_now_ms() - tnl_db.nagged >= TNL_DB_NAG_MS) {
        tnl_log_warn("db: %s%s%s", why,
                     tnl_db.conn ? ": " : "",
                     tnl_db.conn ? tnl_db_trim(PQerrorMessage(tnl_db.conn),
                                               buf, sizeof(buf))
                                 : "");
        tnl_db.failing = 1;
        tnl_db.nagged = tnl_now_ms();
    }

    tnl_io_del(&tnl_db.io);
    tnl_timer_del(&tnl_db.timer);

    if (tnl_db.conn) {
        PQfinish(tnl_db.conn);
        tnl_db.conn = NULL;
    }

    if (tnl_db.inflight) {
        tnl_db_queue_unpop(tnl_db.inflight);
        tnl_db.inflight = NULL;
    }

    if (tnl_db.build) {
        tnl_keys_build_abort(tnl_db.build);
        tnl_db.build = NULL;
    }

    tnl_db_clear_result();

    tnl_db.listening = 0;
    tnl_db.load_wanted = 1;     /* changes may have been missed meanwhile */

    tnl_db_schedule();
}


static void
tnl_db_timer_handler(tnl_timer_t *t)
{
    (void) t;

    switch (tnl_db.state) {

    case TNL_DB_DOWN:
        tnl_db_connect();
        break;

    case TNL_DB_CONNECTING:
        tnl_db_drop("connect timed out");
        break;

    default:
        tnl_db_drop("query timed out");
        break;
    }
}


static void
tnl_db_reload_handler(tnl_timer_t *t)
{
    (void) t;

    tnl_db.load_wanted = 1;
    tnl_db_dispatch();
}


/* libpq may switch sockets while connecting (next address, SSL retry) */

static int
tnl_db_watch(uint32_t events)
{
    int  fd;

    fd = PQsocket(tnl_db.conn);
    if (fd < 0) {
        return -1;
    }

    if (fd != tnl_db.io.fd) {
        tnl_io_del(&tnl_db.io);
        tnl_io_init(&tnl_db.io, tnl_db.loop, fd, tnl_db_io_handler, NULL);
    }

    if (tnl_io_set(&tnl_db.io, events) == 0) {
        return 0;
    }

    /* the same fd number reopened: the old one left epoll when closed */
    if (errno == ENOENT) {
        tnl_db.io.active = 0;
        return tnl_io_set(&tnl_db.io, events);
    }

    return -1;
}


static void
tnl_db_connected(void)
{
    tnl_timer_del(&tnl_db.timer);

    if (PQsetnonblocking(tnl_db.conn, 1) == -1) {
        tnl_db_drop("cannot make the connection non-blocking");
        return;
    }

    tnl_log_info("db: connected");

    tnl_db.state = TNL_DB_READY;
    tnl_db.failing = 0;
    tnl_db.backoff = 0;
    tnl_db.listening = 0;
    tnl_db.load_wanted = 1;

    if (tnl_db_watch(EPOLLIN) == -1) {
        tnl_db_drop("epoll_ctl failed");
        return;
    }

    tnl_db_dispatch();
}


static void
tnl_db_connect_poll(void)
{
    PostgresPollingStatusType  st;
    int                        repoll;

    for (repoll = 0; repoll < 4; repoll++) {

        st = PQconnectPoll(tnl_db.conn);

        switch (st) {

        case PGRES_POLLING_OK:
            tnl_db_connected();
            return;

        case PGRES_POLLING_FAILED:
            tnl_db_drop("cannot connect");
            return;

        case PGRES_POLLING_READING:
            if (tnl_db_watch(EPOLLIN) == -1) {
                tnl_db_drop("cannot watch the connection");
            }
            return;

        default:    /* PGRES_POLLING_WRITING */

            /*
             * CONNECTION_MADE: the socket is connected and writable now;
             * polling again sends the startup packet without another trip
             * through epoll (ngx_postgres does the same).
             */
            if (PQstatus(tnl_db.conn) == CONNECTION_MADE) {
                continue;
            }

            if (tnl_db_watch(EPOLLOUT) == -1) {
                tnl_db_drop("cannot watch the connection");
            }
            return;
        }
    }

    if (tnl_db_watch(EPOLLOUT) == -1) {
        tnl_db_drop("cannot watch the connection");
    }
}


static void
tnl_db_connect(void)
{
    if (tnl_db.conn != NULL || tnl_db.stopping) {
        return;
    }

    tnl_db.conn = PQconnectStart(tnl_db.conninfo);

    if (tnl_db.conn == NULL) {
        tnl_log_error("db: out of memory");
        tnl_db_schedule();
        return;
    }

    if (PQstatus(tnl_db.conn) == CONNECTION_BAD) {
        tnl_db_drop("cannot connect");
        return;
    }

    (void) PQsetNoticeProcessor(tnl_db.conn, tnl_db_notice, NULL);

    tnl_db.state = TNL_DB_CONNECTING;
    tnl_io_init(&tnl_db.io, tnl_db.loop, -1, tnl_db_io_handler, NULL);
    tnl_timer_add(&tnl_db.timer, TNL_DB_CONNECT_TIMEOUT_MS);

    /* as if PQconnectPoll had answered PGRES_POLLING_WRITING */
    if (tnl_db_watch(EPOLLOUT) == -1) {
        tnl_db_drop("cannot watch the connection");
    }
}


/* queries */

static void
tnl_db_send(tnl_db_query_e kind, const char *sql, int nparams,
    char *const *params)
{
    int  rc;

    tnl_db_clear_result();

    if (PQsendQueryParams(tnl_db.conn, sql, nparams, NULL,
                          (const char *const *) params, NULL, NULL, 0)
        == 0)
    {
        tnl_db_drop("cannot send a query");
        return;
    }

    tnl_db.state = TNL_DB_BUSY;
    tnl_db.query = kind;
    tnl_timer_add(&tnl_db.timer, TNL_DB_QUERY_TIMEOUT_MS);

    rc = PQflush(tnl_db.conn);
    if (rc == -1) {
        tnl_db_drop("cannot send a query");
        return;
    }

    if (tnl_db_watch(rc == 1 ? EPOLLIN | EPOLLOUT : EPOLLIN) == -1) {
        tnl_db_drop("epoll_ctl failed");
    }
}


static void
tnl_db_dispatch(void)
{
    if (tnl_db.state != TNL_DB_READY) {
        return;
    }

    if (!tnl_db.listening && !tnl_db.stopping) {
        tnl_db_send(TNL_DB_Q_LISTEN, tnl_db_sql_listen, 0, NULL);
        return;
    }

    if (tnl_db.load_wanted && !tnl_db.stopping) {
        tnl_db.load_wanted = 0;
        tnl_db.nkeys = 0;
        tnl_db.nreserved = 0;
        tnl_db.build = tnl_keys_build_start();
        if (tnl_db.build == NULL) {
            tnl_log_error("db: out of memory, reload postponed");
            tnl_timer_add(&tnl_db.reload, TNL_DB_LOAD_RETRY_MS);
            return;
        }

        tnl_db_send(TNL_DB_Q_LOAD, tnl_db_sql_load, 0, NULL);
        return;
    }

    tnl_db.inflight = tnl_db_queue_pop();
    if (tnl_db.inflight == NULL) {
        return;
    }

    if (tnl_db.inflight->kind == TNL_DB_Q_EVENT) {
        tnl_db_send(TNL_DB_Q_EVENT, tnl_db_sql_event,
                    tnl_db.inflight->nparams, tnl_db.inflight->params);

    } else {
        tnl_db_send(TNL_DB_Q_KEY_USED, tnl_db_sql_key_used,
                    tnl_db.inflight->nparams, tnl_db.inflight->params);
    }
}


static void
tnl_db_load_rows(PGresult *res)
{
    int          i, n;
    const char  *kind, *s;
    int64_t      user_id;

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        kind = PQgetvalue(res, i, 0);
        s = PQgetvalue(res, i, 1);
        user_id = strtoll(PQgetvalue(res, i, 2), NULL, 10);

        if (kind[0] == 'k') {
            if (tnl_keys_build_add_key(tnl_db.build, s, user_id,
                                       PQgetvalue(res, i, 3))
                == -1)
            {
                tnl_log_warn("db: key \"%s\" skipped (bad fingerprint or "
                             "user name, or out of memory)", s);
                continue;
            }
            tnl_db.nkeys++;

        } else {
            if (tnl_keys_build_add_reserved(tnl_db.build, s, user_id) == -1)
            {
                tnl_log_warn("db: reserved name \"%s\" skipped (not a "
                             "valid tunnel name)", s);
                continue;
            }
            tnl_db.nreserved++;
        }
    }
}


/* one PGresult of the query in flight */

static void
tnl_db_result(PGresult *res)
{
    ExecStatusType  st;
    char            buf[512];

    st = PQresultStatus(res);

    if (st == PGRES_TUPLES_OK && tnl_db.query == TNL_DB_Q_LOAD
        && tnl_db.build != NULL)
    {
        tnl_db_load_rows(res);
    }

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK
        && tnl_db.error == NULL)
    {
        tnl_db.result = st;
        tnl_db.error = strdup(tnl_db_trim(PQresultErrorMessage(res), buf,
                                          sizeof(buf)));
    }
}


/* the query in flight answered (PQgetResult returned NULL) */

static void
tnl_db_query_done(void)
{
    const char  *err;
    int          ok;

    tnl_timer_del(&tnl_db.timer);
    tnl_db.state = TNL_DB_READY;

    ok = (tnl_db.error == NULL);
    err = ok ? "" : tnl_db.error;

    switch (tnl_db.query) {

    case TNL_DB_Q_LISTEN:
        if (!ok) {
            tnl_log_error("db: LISTEN tunnel_keys failed: %s", err);
            tnl_db_drop("reconnecting");
            return;
        }
        tnl_db.listening = 1;
        break;

    case TNL_DB_Q_LOAD:
        if (!ok) {
            tnl_log_error("db: loading keys failed: %s", err);
            tnl_keys_build_abort(tnl_db.build);
            tnl_db.build = NULL;
            tnl_timer_add(&tnl_db.reload, TNL_DB_LOAD_RETRY_MS);
            break;
        }

        tnl_log_info("db: loaded %d key(s), %d reserved name(s)",
                     tnl_db.nkeys, tnl_db.nreserved);
        tnl_keys_build_commit(tnl_db.build);    /* frees build */
        tnl_db.build = NULL;
        break;

    default:
        if (!ok) {
            tnl_log_error("db: %s failed, row dropped: %s",
                          tnl_db.query == TNL_DB_Q_EVENT
                          ? "audit insert" : "last-used update", err);
        }
        tnl_db_item_free(tnl_db.inflight);
        tnl_db.inflight = NULL;
        break;
    }

    tnl_db_clear_result();
}


static void
tnl_db_notifies(void)
{
    PGnotify  *n;
    int        got;

    got = 0;

    while ((n = PQnotifies(tnl_db.conn)) != NULL) {
        PQfreemem(n);
        got = 1;
    }

    /* a burst of changes (tunnelctl in a loop) reloads once */
    if (got && !tnl_timer_is_set(&tnl_db.reload)) {
        tnl_timer_add(&tnl_db.reload, TNL_DB_DEBOUNCE_MS);
    }
}


static void
tnl_db_io_handler(tnl_io_t *io, uint32_t events)
{
    PGresult  *res;
    int        rc;

    (void) io;

    if (tnl_db.state == TNL_DB_CONNECTING) {
        tnl_db_connect_poll();
        return;
    }

    if (tnl_db.conn == NULL) {
        return;
    }

    if (events & EPOLLOUT) {
        rc = PQflush(tnl_db.conn);
        if (rc == -1) {
            tnl_db_drop("connection lost");
            return;
        }

        if (rc == 0 && tnl_db_watch(EPOLLIN) == -1) {
            tnl_db_drop("epoll_ctl failed");
            return;
        }
    }

    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
        return;
    }

    if (PQconsumeInput(tnl_db.conn) == 0) {
        tnl_db_drop("connection lost");
        return;
    }

    while (tnl_db.state == TNL_DB_BUSY && !PQisBusy(tnl_db.conn)) {
        res = PQgetResult(tnl_db.conn);

        if (res == NULL) {
            tnl_db_query_done();
            break;
        }

        tnl_db_result(res);
        PQclear(res);
    }

    if (tnl_db.conn == NULL) {
        return;
    }

    if (PQstatus(tnl_db.conn) == CONNECTION_BAD) {
        tnl_db_drop("connection lost");
        return;
    }

    tnl_db_notifies();

    tnl_db_dispatch();
}


/* public */

int
tnl_db_start(tnl_loop_t *loop, const char *conninfo, const char *node)
{
    PQconninfoOption  *opts;
    char              *err;
    char               buf[512];

    if (conninfo == NULL) {
        tnl_log_error("db: no database url (--database-url or "
                      "DATABASE_URL)");
        return -1;
    }

    err = NULL;
    opts = PQconninfoParse(conninfo, &err);
    if (opts == NULL) {
        tnl_log_error("db: bad database url: %s",
                      err ? tnl_db_trim(err, buf, sizeof(buf))
                          : "out of memory");
        PQfreemem(err);
        return -1;
    }
    PQconninfoFree(opts);

    tnl_db.loop = loop;
    tnl_db.conninfo = strdup(conninfo);
    tnl_db.node = strdup(node ? node : "");
    if (tnl_db.conninfo == NULL || tnl_db.node == NULL) {
        return -1;
    }

    tnl_timer_init(&tnl_db.timer, loop, tnl_db_timer_handler, NULL);
    tnl_timer_init(&tnl_db.reload, loop, tnl_db_reload_handler, NULL);
    tnl_io_init(&tnl_db.io, loop, -1, tnl_db_io_handler, NULL);

    tnl_db.started = 1;
    tnl_db.load_wanted = 1;

    tnl_db_connect();

    return 0;
}


void
tnl_db_stop(int ms)
{
    struct pollfd  pfd;
    uint64_t       deadline, now;
    size_t         left;
    int            n;

    if (!tnl_db.started) {
        return;
    }

    /* no new LISTEN or load: only what is queued */
    tnl_db.stopping = 1;
    tnl_timer_del(&tnl_db.reload);

    tnl_time_update();
    deadline = tnl_now_ms() + ms;

    while (tnl_db.conn != NULL
           && (tnl_db.state == TNL_DB_BUSY || tnl_db.state == TNL_DB_CONNECTING
               || tnl_db.qlen > 0))
    {
        now = tnl_now_ms();
        if (now >= deadline) {
            break;
        }

        tnl_db_dispatch();

        pfd.fd = PQsocket(tnl_db.conn);
        pfd.events = (tnl_db.io.events & EPOLLOUT) ? POLLOUT | POLLIN
                                                   : POLLIN;
        pfd.revents = 0;

        n = poll(&pfd, 1, (int) (deadline - now));
        tnl_time_update();

        if (n == -1 && errno != EINTR) {
            break;
        }

        if (n > 0) {
            tnl_db_io_handler(&tnl_db.io,
                ((pfd.revents & POLLIN) ? EPOLLIN : 0)
                | ((pfd.revents & POLLOUT) ? EPOLLOUT : 0)
                | ((pfd.revents & POLLERR) ? EPOLLERR : 0)
                | ((pfd.revents & POLLHUP) ? EPOLLHUP : 0));
        }
    }

    left = tnl_db.qlen + (tnl_db.inflight ? 1 : 0);
    if (left > 0) {
        tnl_log_warn("db: %zu audit row(s) not written at shutdown", left);
    }

    tnl_io_del(&tnl_db.io);
    tnl_timer_del(&tnl_db.timer);

    if (tnl_db.conn) {
        PQfinish(tnl_db.conn);
        tnl_db.conn = NULL;
    }

    tnl_db_item_free(tnl_db.inflight);
    tnl_db.inflight = NULL;

    while (tnl_db.qlen > 0) {
        tnl_db_item_free(tnl_db_queue_pop());
    }

    free(tnl_db.queue);
    tnl_db.queue = NULL;

    if (tnl_db.build) {
        tnl_keys_build_abort(tnl_db.build);
        tnl_db.build = NULL;
    }

    tnl_db_clear_result();
    free(tnl_db.conninfo);
    free(tnl_db.node);
    tnl_db.conninfo = NULL;
    tnl_db.node = NULL;
    tnl_db.state = TNL_DB_DOWN;
    tnl_db.started = 0;
}
