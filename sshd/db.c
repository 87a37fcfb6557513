/*
 * tunneld's PostgreSQL link (see db.h): one libpq connection driven by the
 * loop, as an explicit state machine (DOWN -> CONNECTING -> READY <-> BUSY)
 * with one dispatcher choosing the next query: LISTEN first after every
 * connect, then the key table load when wanted, then other parts' queries
 * (tnl_db_query: a person may be waiting), then the audit queue and the
 * last-used times, in turns.
 * Only PQconnectStart/PQconnectPoll, PQsendQueryParams, PQflush,
 * PQconsumeInput, PQisBusy and PQgetResult: nothing here blocks (except
 * tnl_db_stop(), a bounded poll() at shutdown).
 *
 * Writes are batched: one INSERT ... SELECT FROM unnest() per up to
 * TNL_DB_BATCH audit rows (a burst of 20,000 sessions is a few dozen
 * statements), and one UPDATE ... WHERE fingerprint = ANY() per up to
 * TNL_DB_BATCH distinct keys, repeated logins of one key folded into one.
 * A batch that fails (say one row PostgreSQL refuses) is retried row by
 * row, so only the bad row is lost.
 *
 * Ownership: libpq owns the connection and its socket (PQfinish closes
 * it); we only register the fd with the loop.  Queued rows are owned by
 * the queue, pending fingerprints by the key set; the batch in flight is
 * owned by tnl_db.inflight and goes back to the head of the queue (the
 * set) if the connection drops before PostgreSQL answered (so a row may
 * be written twice, never silently lost while we run).  Another part's
 * query (tnl_db_query) is owned here until its handler has run or it was
 * cancelled; the PGresult a handler gets is freed when it returns.
 * Does not decide
 * what a key means: keys.c holds the table.
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
#include "resolve.h"


#define TNL_DB_CONNECT_TIMEOUT_MS  5000
#define TNL_DB_RESOLVE_TIMEOUT_MS  10000     /* glibc: 5 s x 2 tries */
#define TNL_DB_QUERY_TIMEOUT_MS    10000
#define TNL_DB_BACKOFF_MIN_MS      100
#define TNL_DB_BACKOFF_MAX_MS      2000
#define TNL_DB_DEBOUNCE_MS         100
#define TNL_DB_LOAD_RETRY_MS       2000
#define TNL_DB_NAG_MS              10000

/*
 * Rows per statement: 500 rows are about 100 KB of parameters and a few
 * milliseconds of PostgreSQL time.  The queue holds 65,536 rows (about
 * 250 bytes each: 16 MB at most, reached only while PostgreSQL is down),
 * enough for the auth and open rows of a burst of 20,000 logins on one
 * worker even if nothing were written meanwhile.
 */
#define TNL_DB_BATCH               500
#define TNL_DB_QUEUE_MIN           1024
#define TNL_DB_QUEUE_MAX           65536
#define TNL_DB_KEYS_MAX            65536
#define TNL_DB_KEY_BUCKETS         1024
#define TNL_DB_BUF_KEEP            (64 * 1024)

/* tunnel_events columns we fill, node aside (one value per worker) */
#define TNL_DB_COLS                11


#define TNL_DB_CHANNELS            4

/*
 * One statement, one snapshot: keys, reserved and system names agree.
 * Keys of disabled users come too ('d'): they are refused, not offered
 * an activation code as unknown keys are.
 */
static const char  tnl_db_sql_load[] =
    "SELECT CASE WHEN u.disabled THEN 'd' ELSE 'k' END, k.fingerprint,"
    " k.user_id, u.name"
    " FROM ssh_keys k JOIN users u ON u.id = k.user_id"
    " UNION ALL"
    " SELECT 'r', name, user_id, NULL::text FROM reserved_names"
    " UNION ALL"
    " SELECT 's', name, 0, NULL::text FROM system_names";

/* $1..$11: arrays of the columns in tnl_db_log_event's order; $12: node */
static const char  tnl_db_sql_events[] =
    "INSERT INTO tunnel_events (event, name, user_id, fingerprint,"
    " client_addr, session, node, bytes_in, bytes_out, streams, detail, at)"
    " SELECT e, n, u, f, c, s, $12, bi, bo, st, d, a"
    " FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[],"
    " $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[],"
    " $10::text[], $11::timestamptz[])"
    " AS t(e, n, u, f, c, s, bi, bo, st, d, a)";

/* $1 node, $2 session id prefix, $3 before (sql/004_audit.sql) */
static const char  tnl_db_sql_node_lost[] =
    "SELECT tunnel_events_node_lost($1, $2, $3)";

static const char  tnl_db_sql_keys_used[] =
    "UPDATE ssh_keys SET last_used_at = now()"
    " WHERE fingerprint = ANY($1::text[])";


typedef enum {
    TNL_DB_DOWN = 0,           /* retry timer running (or stopped) */
    TNL_DB_CONNECTING,
    TNL_DB_READY,              /* connected, nothing in flight */
    TNL_DB_BUSY,               /* one query in flight */
} tnl_db_state_e;


typedef enum {
    TNL_DB_Q_LISTEN = 0,
    TNL_DB_Q_LOAD,
    TNL_DB_Q_EVENTS,
    TNL_DB_Q_KEYS_USED,
    TNL_DB_Q_NODE_LOST,
    TNL_DB_Q_CALL,             /* another part's (tnl_db_query) */
} tnl_db_query_e;


/* another part's query: one allocation, params and sql follow */
struct tnl_db_query_s {
    tnl_db_query_t   *next;
    tnl_db_query_pt   handler;     /* NULL: cancelled, or already told */
    void             *data;
    tnl_timer_t       timer;
    unsigned          inflight:1;
    int               nparams;
    char            **params;
    char             *sql;
};


/* an audit row: one allocation, the values follow the struct */
typedef struct {
    unsigned          solo:1;      /* its batch failed: sent alone */
    char             *col[TNL_DB_COLS];    /* NULL = SQL NULL */
} tnl_db_row_t;


/* a fingerprint waiting for its last_used_at update */
typedef struct tnl_db_key_s  tnl_db_key_t;

struct tnl_db_key_s {
    tnl_db_key_t     *bucket_next;
    tnl_db_key_t     *fifo_next;
    char              fp[];
};


/* text of one PostgreSQL array parameter being built */
typedef struct {
    char             *data;
    size_t            len;
    size_t            size;
} tnl_db_buf_t;


static struct {
    tnl_loop_t         *loop;
    char               *conninfo;
    char               *node;
    PGconn             *conn;
    tnl_resolve_t      *resolving;     /* host name being resolved */
    tnl_io_t            io;
    tnl_db_state_e      state;
    tnl_db_query_e      query;         /* in flight while BUSY */
    ExecStatusType      result;        /* first non-OK status seen */
    char               *error;         /* its message */
    tnl_keys_build_t   *build;
    int                 nkeys;
    int                 nreserved;
    int                 nsystem;
    tnl_timer_t         timer;         /* connect, query or retry */
    tnl_timer_t         reload;        /* debounce, load retry */
    uint64_t            backoff;
    uint64_t            nagged;
    unsigned            listening:1;
    unsigned            load_wanted:1;
    unsigned            failing:1;
    unsigned            stopping:1;
    unsigned            started:1;
    unsigned            keys_turn:1;   /* last-used times go next */

    /* the batch in flight: rows (EVENTS) or fingerprints (KEYS_USED) */
    tnl_db_row_t       *inflight[TNL_DB_BATCH];
    tnl_db_key_t       *inflight_keys;
    int                 ninflight;

    tnl_db_row_t      **queue;         /* ring, power of two, grows */
    size_t              qsize;
    size_t              qhead;
    size_t              qlen;
    uint64_t            dropped;
    uint64_t            drop_logged;

    tnl_db_key_t      **keys;          /* TNL_DB_KEY_BUCKETS chains */
    tnl_db_key_t       *keys_head;     /* oldest first */
    tnl_db_key_t       *keys_tail;
    size_t              nkeys_used;

    tnl_db_buf_t        bufs[TNL_DB_COLS];

    /* the node-lost sweep, until it succeeds once (tnl_db_node_lost) */
    char               *lost_prefix;
    char                lost_before[64];
    int                 nlost;

    /* other parts' queries: a FIFO, and the one in flight */
    tnl_db_query_t     *calls_head;
    tnl_db_query_t     *calls_tail;
    tnl_db_query_t     *call;
    PGresult           *call_res;

    /* LISTEN channels beyond tunnel_keys */
    const char         *channels[TNL_DB_CHANNELS];
    tnl_db_notify_pt    notify[TNL_DB_CHANNELS];
    int                 nchannels;
} tnl_db;


static void tnl_db_connect(void);
static void tnl_db_open(const char *hostaddr);
static void tnl_db_drop(const char *why);
static void tnl_db_resolve_cancel(void);
static void tnl_db_dispatch(void);
static void tnl_db_io_handler(tnl_io_t *io, uint32_t events);
static void tnl_db_inflight_return(int solo);
static void tnl_db_dispatch_posted(void *data);
static void tnl_db_call_lost(void);


/* the audit queue */

static int
tnl_db_queue_grow(void)
{
    tnl_db_row_t  **q;
    size_t          size, i;

    size = tnl_db.qsize ? tnl_db.qsize * 2 : TNL_DB_QUEUE_MIN;

    q = malloc(size * sizeof(tnl_db_row_t *));
    if (q == NULL) {
        return -1;
    }

    for (i = 0; i < tnl_db.qlen; i++) {
        q[i] = tnl_db.queue[(tnl_db.qhead + i) & (tnl_db.qsize - 1)];
    }

    free(tnl_db.queue);
    tnl_db.queue = q;
    tnl_db.qsize = size;
    tnl_db.qhead = 0;

    return 0;
}


static void
tnl_db_dropped(uint64_t n)
{
    tnl_db.dropped += n;

    if (tnl_now_ms() - tnl_db.drop_logged >= TNL_DB_NAG_MS
        || tnl_db.drop_logged == 0)
    {
        tnl_log_warn("db: audit queue full (%d rows), dropping the "
                     "oldest; %llu dropped so far", TNL_DB_QUEUE_MAX,
                     (unsigned long long) tnl_db.dropped);
        tnl_db.drop_logged = tnl_now_ms();
    }
}


static void
tnl_db_queue_push(tnl_db_row_t *row)
{
    if (tnl_db.qlen == tnl_db.qsize
        && (tnl_db.qsize == TNL_DB_QUEUE_MAX || tnl_db_queue_grow() == -1))
    {
        if (tnl_db.qlen == 0) {
            tnl_log_error("db: out of memory, audit row dropped");
            free(row);
            return;
        }

        /* full (or no memory to grow): the oldest row goes */
        free(tnl_db.queue[tnl_db.qhead]);
        tnl_db.qhead = (tnl_db.qhead + 1) & (tnl_db.qsize - 1);
        tnl_db.qlen--;
        tnl_db_dropped(1);
    }

    tnl_db.queue[(tnl_db.qhead + tnl_db.qlen) & (tnl_db.qsize - 1)] = row;
    tnl_db.qlen++;
}


static tnl_db_row_t *
tnl_db_queue_pop(void)
{
    tnl_db_row_t  *row;

    if (tnl_db.qlen == 0) {
        return NULL;
    }

    row = tnl_db.queue[tnl_db.qhead];
    tnl_db.qhead = (tnl_db.qhead + 1) & (tnl_db.qsize - 1);
    tnl_db.qlen--;

    return row;
}


/*
 * The batch in flight goes back to the head, in order; rows that no
 * longer fit are the oldest, so they are the ones dropped.
 */

static void
tnl_db_queue_unpop(tnl_db_row_t **rows, int n, int solo)
{
    int  i;

    for (i = n - 1; i >= 0; i--) {
        if (tnl_db.qlen == tnl_db.qsize
            && (tnl_db.qsize == TNL_DB_QUEUE_MAX
                || tnl_db_queue_grow() == -1))
        {
            tnl_db_dropped(i + 1);

            for ( ; i >= 0; i--) {
                free(rows[i]);
            }

            return;
        }

        if (solo) {
            rows[i]->solo = 1;
        }

        tnl_db.qhead = (tnl_db.qhead + tnl_db.qsize - 1) & (tnl_db.qsize - 1);
        tnl_db.queue[tnl_db.qhead] = rows[i];
        tnl_db.qlen++;
    }
}


/* wall-clock time of the event, not of the (maybe much later) insert */

static void
tnl_db_time_text(const struct timespec *ts, char *buf, size_t size)
{
    struct tm  tm;
    size_t     n;

    gmtime_r(&ts->tv_sec, &tm);

    n = strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%06ld+00", ts->tv_nsec / 1000);
}


static void
tnl_db_now_text(char *buf, size_t size)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    tnl_db_time_text(&ts, buf, size);
}


void
tnl_db_log_event(const tnl_db_event_t *ev)
{
    tnl_db_row_t  *row;
    const char    *v[TNL_DB_COLS];
    char           user_id[24], bytes_in[24], bytes_out[24], streams[24];
    char           at[64], *p;
    size_t         size, len;
    int            i;

    if (!tnl_db.started || tnl_db.stopping) {
        return;
    }

    snprintf(user_id, sizeof(user_id), "%lld", (long long) ev->user_id);
    snprintf(bytes_in, sizeof(bytes_in), "%lld", (long long) ev->bytes_in);
    snprintf(bytes_out, sizeof(bytes_out), "%lld",
             (long long) ev->bytes_out);
    snprintf(streams, sizeof(streams), "%lld", (long long) ev->streams);
    tnl_db_now_text(at, sizeof(at));

    v[0] = ev->event ? ev->event : "unknown";
    v[1] = ev->name;
    v[2] = ev->user_id ? user_id : NULL;
    v[3] = ev->fingerprint;
    v[4] = ev->client;
    v[5] = ev->session;
    v[6] = bytes_in;
    v[7] = bytes_out;
    v[8] = streams;
    v[9] = ev->detail;
    v[10] = at;

    size = sizeof(tnl_db_row_t);
    for (i = 0; i < TNL_DB_COLS; i++) {
        size += v[i] ? strlen(v[i]) + 1 : 0;
    }

    row = malloc(size);
    if (row == NULL) {
        tnl_log_error("db: out of memory, audit row dropped");
        return;
    }

    row->solo = 0;
    p = (char *) (row + 1);

    for (i = 0; i < TNL_DB_COLS; i++) {
        if (v[i] == NULL) {
            row->col[i] = NULL;
            continue;
        }

        len = strlen(v[i]) + 1;
        memcpy(p, v[i], len);
        row->col[i] = p;
        p += len;
    }

    tnl_db_queue_push(row);
    tnl_db_dispatch();
}


/* the fingerprints waiting for last_used_at: a set in arrival order */

static size_t
tnl_db_key_bucket(const char *fp)
{
    size_t  h;

    /* FNV-1a; fingerprints are SHA-256 already, any mix will do */
    for (h = 2166136261u; *fp; fp++) {
        h = (h ^ (unsigned char) *fp) * 16777619u;
    }

    return h % TNL_DB_KEY_BUCKETS;
}


/* adds fp unless already waiting; 0, or -1 when the set is full */

static int
tnl_db_keys_add(const char *fp)
{
    tnl_db_key_t  *k, **bucket;
    size_t         len;

    if (tnl_db.keys == NULL) {
        tnl_db.keys = calloc(TNL_DB_KEY_BUCKETS, sizeof(tnl_db_key_t *));
        if (tnl_db.keys == NULL) {
            return -1;
        }
    }

    bucket = &tnl_db.keys[tnl_db_key_bucket(fp)];

    for (k = *bucket; k != NULL; k = k->bucket_next) {
        if (strcmp(k->fp, fp) == 0) {
            return 0;
        }
    }

    if (tnl_db.nkeys_used == TNL_DB_KEYS_MAX) {
        return -1;
    }

    len = strlen(fp) + 1;
    k = malloc(sizeof(tnl_db_key_t) + len);
    if (k == NULL) {
        return -1;
    }

    memcpy(k->fp, fp, len);
    k->bucket_next = *bucket;
    *bucket = k;

    k->fifo_next = NULL;
    if (tnl_db.keys_tail) {
        tnl_db.keys_tail->fifo_next = k;
    } else {
        tnl_db.keys_head = k;
    }
    tnl_db.keys_tail = k;
    tnl_db.nkeys_used++;

    return 0;
}


/* takes the oldest fingerprint out of the set (the caller frees it) */

static tnl_db_key_t *
tnl_db_keys_pop(void)
{
    tnl_db_key_t  *k, **pp;

    k = tnl_db.keys_head;
    if (k == NULL) {
        return NULL;
    }

    tnl_db.keys_head = k->fifo_next;
    if (tnl_db.keys_head == NULL) {
        tnl_db.keys_tail = NULL;
    }

    for (pp = &tnl_db.keys[tnl_db_key_bucket(k->fp)]; *pp != k;
         pp = &(*pp)->bucket_next)
    {
        /* void */
    }

    *pp = k->bucket_next;
    k->fifo_next = NULL;
    k->bucket_next = NULL;
    tnl_db.nkeys_used--;

    return k;
}


static void
tnl_db_keys_free(tnl_db_key_t *k)
{
    tnl_db_key_t  *next;

    for ( ; k != NULL; k = next) {
        next = k->fifo_next;
        free(k);
    }
}


void
tnl_db_key_used(const char *fingerprint)
{
    if (!tnl_db.started || tnl_db.stopping || fingerprint == NULL) {
        return;
    }

    if (tnl_db_keys_add(fingerprint) == -1) {
        tnl_log_error("db: out of memory (or %d keys waiting), last-used "
                      "time dropped", TNL_DB_KEYS_MAX);
        return;
    }

    tnl_db_dispatch();
}


/* PostgreSQL array literals: {"a","b\"c",NULL} */

static int
tnl_db_buf_reserve(tnl_db_buf_t *b, size_t more)
{
    char    *data;
    size_t   size;

    if (b->len + more <= b->size) {
        return 0;
    }

    size = b->size ? b->size : 4096;
    while (size < b->len + more) {
        size *= 2;
    }

    data = realloc(b->data, size);
    if (data == NULL) {
        return -1;
    }

    b->data = data;
    b->size = size;

    return 0;
}


/* appends one element (NULL: SQL NULL); first: no comma before it */

static int
tnl_db_buf_element(tnl_db_buf_t *b, const char *s, int first)
{
    const char  *p;

    /* worst case: every byte escaped, quotes, comma, "}" and NUL */
    if (tnl_db_buf_reserve(b, (s ? 2 * strlen(s) : 4) + 5) == -1) {
        return -1;
    }

    if (!first) {
        b->data[b->len++] = ',';
    }

    if (s == NULL) {
        memcpy(b->data + b->len, "NULL", 4);
        b->len += 4;
        return 0;
    }

    b->data[b->len++] = '"';

    for (p = s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            b->data[b->len++] = '\\';
        }
        b->data[b->len++] = *p;
    }

    b->data[b->len++] = '"';

    return 0;
}


static void
tnl_db_buf_start(tnl_db_buf_t *b)
{
    b->len = 0;

    if (tnl_db_buf_reserve(b, 2) == 0) {
        b->data[b->len++] = '{';
    }
}


static int
tnl_db_buf_end(tnl_db_buf_t *b)
{
    if (b->size == 0 || tnl_db_buf_reserve(b, 2) == -1) {
        return -1;
    }

    b->data[b->len++] = '}';
    b->data[b->len] = '\0';

    return 0;
}


static void
tnl_db_bufs_free(void)
{
    int  i;

    for (i = 0; i < TNL_DB_COLS; i++) {
        free(tnl_db.bufs[i].data);
        tnl_db.bufs[i].data = NULL;
        tnl_db.bufs[i].len = 0;
        tnl_db.bufs[i].size = 0;
    }
}




/* other parts' queries */

/* takes q out of the FIFO of queries not sent yet */

static void
tnl_db_calls_unlink(tnl_db_query_t *q)
{
    tnl_db_query_t  **pp, *prev;

    prev = NULL;

    for (pp = &tnl_db.calls_head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == q) {
            *pp = q->next;
            if (tnl_db.calls_tail == q) {
                tnl_db.calls_tail = prev;
            }
            q->next = NULL;
            return;
        }
        prev = *pp;
    }
}


static void
tnl_db_call_timer_handler(tnl_timer_t *t)
{
    tnl_db_query_t   *q = t->data;
    tnl_db_query_pt   handler;
    void             *data;

    handler = q->handler;
    data = q->data;
    q->handler = NULL;

    /* in flight: freed when its answer comes (tnl_db_call_done) */
    if (!q->inflight) {
        tnl_db_calls_unlink(q);
        free(q);
    }

    if (handler) {
        handler(data, NULL, "the database did not answer in time");
    }
}


tnl_db_query_t *
tnl_db_query(const char *sql, int nparams, const char *const *params,
    int timeout_ms, tnl_db_query_pt handler, void *data)
{
    tnl_db_query_t  *q;
    size_t           size, len;
    char            *p;
    int              i;

    if (!tnl_db.started || tnl_db.stopping) {
        return NULL;
    }

    size = sizeof(tnl_db_query_t) + nparams * sizeof(char *)
           + strlen(sql) + 1;
    for (i = 0; i < nparams; i++) {
        size += params[i] ? strlen(params[i]) + 1 : 0;
    }

    q = calloc(1, size);
    if (q == NULL) {
        return NULL;
    }

    q->params = (char **) (q + 1);
    p = (char *) (q->params + nparams);

    for (i = 0; i < nparams; i++) {
        if (params[i] == NULL) {
            q->params[i] = NULL;
            continue;
        }
        len = strlen(params[i]) + 1;
        memcpy(p, params[i], len);
        q->params[i] = p;
        p += len;
    }

    len = strlen(sql) + 1;
    memcpy(p, sql, len);
    q->sql = p;
    q->nparams = nparams;
    q->handler = handler;
    q->data = data;

    tnl_timer_init(&q->timer, tnl_db.loop, tnl_db_call_timer_handler, q);
    tnl_timer_add(&q->timer, (uint64_t) timeout_ms);

    if (tnl_db.calls_tail) {
        tnl_db.calls_tail->next = q;
    } else {
        tnl_db.calls_head = q;
    }
    tnl_db.calls_tail = q;

    /* sent at the end of this loop iteration: never inside the caller */
    if (tnl_db.state == TNL_DB_READY) {
        (void) tnl_loop_post(tnl_db.loop, tnl_db_dispatch_posted, NULL);
    }

    return q;
}


void
tnl_db_query_cancel(tnl_db_query_t *q)
{
    if (q == NULL) {
        return;
    }

    q->handler = NULL;

    if (q->inflight) {
        return;                  /* freed when its answer comes */
    }

    tnl_timer_del(&q->timer);
    tnl_db_calls_unlink(q);
    free(q);
}


int
tnl_db_listen(const char *channel, tnl_db_notify_pt handler)
{
    if (tnl_db.nchannels == TNL_DB_CHANNELS) {
        return -1;
    }

    tnl_db.channels[tnl_db.nchannels] = channel;
    tnl_db.notify[tnl_db.nchannels] = handler;
    tnl_db.nchannels++;

    return 0;
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
    tnl_db_resolve_cancel();

    if (tnl_db.conn) {
        PQfinish(tnl_db.conn);
        tnl_db.conn = NULL;
    }

    tnl_db_inflight_return(0);

    if (tnl_db.build) {
        tnl_keys_build_abort(tnl_db.build);
        tnl_db.build = NULL;
    }

    tnl_db_clear_result();

    tnl_db.listening = 0;
    tnl_db_call_lost();

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
        tnl_db_drop(tnl_db.resolving ? "resolving the host timed out"
                                     : "connect timed out");
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
        /* libpq closed the old socket: its number may be someone else's */
        tnl_io_forget(&tnl_db.io);
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


/*
 * PQconnectStart resolves a host name with a blocking getaddrinfo(): a
 * name in host= is resolved on a thread (resolve.h) first, on every
 * reconnect, and handed to libpq as hostaddr= (host= stays, for TLS
 * verification and the password file).  The connect timer covers it.
 */

static void
tnl_db_resolved(const char *addrs, const char *err, void *data)
{
    char  buf[512];

    (void) data;

    tnl_db.resolving = NULL;
    tnl_timer_del(&tnl_db.timer);

    if (addrs == NULL) {
        snprintf(buf, sizeof(buf), "%s; check host= in the database URL "
                 "and the resolver, retrying", err);
        tnl_db_drop(buf);
        return;
    }

    tnl_db_open(addrs);
}


/* 1: a resolve was started (or failed and a retry is planned) */

static int
tnl_db_resolve(void)
{
    int                 started;
    char               *err;
    const char         *hosts;
    PQconninfoOption   *opts, *o;

    err = NULL;
    opts = PQconninfoParse(tnl_db.conninfo, &err);
    if (opts == NULL) {
        PQfreemem(err);
        return 0;                   /* libpq reports it */
    }

    hosts = NULL;
    started = 0;

    for (o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "hostaddr") == 0 && o->val && o->val[0]) {
            goto done;              /* libpq will not resolve */
        }

        if (strcmp(o->keyword, "host") == 0) {
            hosts = o->val;
        }
    }

    if (hosts == NULL || tnl_resolve_list_is_numeric(hosts)) {
        goto done;
    }

    started = 1;
    tnl_db.state = TNL_DB_CONNECTING;
    tnl_db.resolving = tnl_resolve_start(tnl_db.loop, hosts, tnl_db_resolved,
                                         NULL);
    if (tnl_db.resolving == NULL) {
        tnl_db_drop("cannot resolve the database host");
        goto done;
    }

    tnl_timer_add(&tnl_db.timer, TNL_DB_RESOLVE_TIMEOUT_MS);

done:

    PQconninfoFree(opts);

    return started;
}


/* conninfo with hostaddr= set (a name was resolved), or as given */

static PGconn *
tnl_db_start_conn(const char *hostaddr)
{
    int                 n;
    char               *err;
    PGconn             *conn;
    const char         *keys[64], *vals[64];
    PQconninfoOption   *opts, *o;

    if (hostaddr == NULL) {
        return PQconnectStart(tnl_db.conninfo);
    }

    err = NULL;
    opts = PQconninfoParse(tnl_db.conninfo, &err);
    if (opts == NULL) {
        PQfreemem(err);
        return PQconnectStart(tnl_db.conninfo);
    }

    n = 0;
    for (o = opts; o->keyword && n < 62; o++) {
        if (o->val && strcmp(o->keyword, "hostaddr") != 0) {
            keys[n] = o->keyword;
            vals[n++] = o->val;
        }
    }

    keys[n] = "hostaddr";
    vals[n++] = hostaddr;
    keys[n] = NULL;
    vals[n] = NULL;

    conn = PQconnectStartParams(keys, vals, 0);

    PQconninfoFree(opts);

    return conn;
}


static void
tnl_db_resolve_cancel(void)
{
    if (tnl_db.resolving) {
        tnl_resolve_cancel(tnl_db.resolving);
        tnl_db.resolving = NULL;
    }
}


static void
tnl_db_connect(void)
{
    if (tnl_db.conn != NULL || tnl_db.resolving != NULL || tnl_db.stopping) {
        return;
    }

    if (tnl_db_resolve()) {
        return;
    }

    tnl_db_open(NULL);
}


static void
tnl_db_open(const char *hostaddr)
{
    tnl_db.conn = tnl_db_start_conn(hostaddr);

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

    /* LISTEN is several statements: the simple protocol, no parameters */
    if ((kind == TNL_DB_Q_LISTEN
         ? PQsendQuery(tnl_db.conn, sql)
         : PQsendQueryParams(tnl_db.conn, sql, nparams, NULL,
                             (const char *const *) params, NULL, NULL, 0))
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


/*
 * The batch in flight goes back where it came from (connection lost, or
 * solo: its statement failed and each row is retried alone).
 */

static void
tnl_db_inflight_return(int solo)
{
    tnl_db_key_t  *k;

    if (tnl_db.ninflight > 0) {
        tnl_db_queue_unpop(tnl_db.inflight, tnl_db.ninflight, solo);
        tnl_db.ninflight = 0;
    }

    for (k = tnl_db.inflight_keys; k != NULL; k = k->fifo_next) {
        (void) tnl_db_keys_add(k->fp);
    }

    tnl_db_keys_free(tnl_db.inflight_keys);
    tnl_db.inflight_keys = NULL;
}


static void
tnl_db_inflight_free(void)
{
    int  i;

    for (i = 0; i < tnl_db.ninflight; i++) {
        free(tnl_db.inflight[i]);
    }

    tnl_db.ninflight = 0;

    tnl_db_keys_free(tnl_db.inflight_keys);
    tnl_db.inflight_keys = NULL;
}


/* up to TNL_DB_BATCH rows in one INSERT; a row that failed goes alone */

static void
tnl_db_send_events(void)
{
    tnl_db_row_t  *row;
    const char    *params[TNL_DB_COLS + 1];
    int            i, n, rc;

    n = (tnl_db.queue[tnl_db.qhead]->solo) ? 1 : TNL_DB_BATCH;

    for (i = 0; i < TNL_DB_COLS; i++) {
        tnl_db_buf_start(&tnl_db.bufs[i]);
    }

    rc = 0;

    while (tnl_db.ninflight < n && tnl_db.qlen > 0) {
        row = tnl_db_queue_pop();
        tnl_db.inflight[tnl_db.ninflight] = row;

        for (i = 0; i < TNL_DB_COLS; i++) {
            rc |= tnl_db_buf_element(&tnl_db.bufs[i], row->col[i],
                                     tnl_db.ninflight == 0);
        }

        tnl_db.ninflight++;
    }

    for (i = 0; i < TNL_DB_COLS; i++) {
        rc |= tnl_db_buf_end(&tnl_db.bufs[i]);
        params[i] = tnl_db.bufs[i].data;
    }

    params[TNL_DB_COLS] = tnl_db.node;

    if (rc != 0) {
        tnl_log_error("db: out of memory building an audit insert");
        tnl_db_drop("reconnecting");    /* the rows go back; retried */
        return;
    }

    tnl_db_send(TNL_DB_Q_EVENTS, tnl_db_sql_events, TNL_DB_COLS + 1,
                (char *const *) params);

    /* libpq copied the text: rows with long details leave no big buffers */
    for (i = 0; i < TNL_DB_COLS; i++) {
        if (tnl_db.bufs[i].size > TNL_DB_BUF_KEEP) {
            tnl_db_bufs_free();
            break;
        }
    }
}


/* up to TNL_DB_BATCH distinct fingerprints in one UPDATE */

static void
tnl_db_send_keys(void)
{
    tnl_db_key_t  *k, **tail;
    tnl_db_buf_t  *b = &tnl_db.bufs[0];
    const char    *params[1];
    int            n, rc;

    tnl_db_buf_start(b);

    rc = 0;
    tail = &tnl_db.inflight_keys;

    for (n = 0; n < TNL_DB_BATCH && tnl_db.keys_head != NULL; n++) {
        k = tnl_db_keys_pop();
        *tail = k;
        tail = &k->fifo_next;

        rc |= tnl_db_buf_element(b, k->fp, n == 0);
    }

    rc |= tnl_db_buf_end(b);
    params[0] = b->data;

    if (rc != 0) {
        tnl_log_error("db: out of memory building a last-used update");
        tnl_db_drop("reconnecting");
        return;
    }

    tnl_db_send(TNL_DB_Q_KEYS_USED, tnl_db_sql_keys_used, 1,
                (char *const *) params);
}


/* LISTEN tunnel_keys and the other parts' channels, in one round trip */

static void
tnl_db_send_listen(void)
{
    char  sql[512];
    int   i, n;

    n = snprintf(sql, sizeof(sql), "LISTEN tunnel_keys");

    for (i = 0; i < tnl_db.nchannels && (size_t) n < sizeof(sql); i++) {
        /* our own constant names, quoted as identifiers all the same */
        n += snprintf(sql + n, sizeof(sql) - n, "; LISTEN \"%s\"",
                      tnl_db.channels[i]);
    }

    tnl_db_send(TNL_DB_Q_LISTEN, sql, 0, NULL);
}


static void
tnl_db_dispatch_posted(void *data)
{
    (void) data;

    tnl_db_dispatch();
}


static void
tnl_db_dispatch(void)
{
    tnl_db_query_t  *q;
    char            *params[3];

    if (tnl_db.state != TNL_DB_READY) {
        return;
    }

    if (!tnl_db.listening && !tnl_db.stopping) {
        tnl_db_send_listen();
        return;
    }

    if (tnl_db.lost_prefix != NULL && !tnl_db.stopping
        && !tnl_db.load_wanted)
    {
        params[0] = tnl_db.node;
        params[1] = tnl_db.lost_prefix;
        params[2] = tnl_db.lost_before;
        tnl_db_send(TNL_DB_Q_NODE_LOST, tnl_db_sql_node_lost, 3, params);
        return;
    }

    if (tnl_db.load_wanted && !tnl_db.stopping) {
        tnl_db.load_wanted = 0;
        tnl_db.nkeys = 0;
        tnl_db.nreserved = 0;
        tnl_db.nsystem = 0;
        tnl_db.build = tnl_keys_build_start();
        if (tnl_db.build == NULL) {
            tnl_log_error("db: out of memory, reload postponed");
            tnl_timer_add(&tnl_db.reload, TNL_DB_LOAD_RETRY_MS);
            return;
        }

        tnl_db_send(TNL_DB_Q_LOAD, tnl_db_sql_load, 0, NULL);
        return;
    }

    /* other parts' queries: a person may be waiting for them */

    if (tnl_db.calls_head != NULL) {
        q = tnl_db.calls_head;
        tnl_db.calls_head = q->next;
        if (tnl_db.calls_head == NULL) {
            tnl_db.calls_tail = NULL;
        }
        q->next = NULL;
        q->inflight = 1;
        tnl_db.call = q;
        tnl_db_send(TNL_DB_Q_CALL, q->sql, q->nparams, q->params);
        return;
    }

    /* audit rows and last-used times take turns */

    if (tnl_db.qlen > 0 && !(tnl_db.keys_turn && tnl_db.keys_head)) {
        tnl_db.keys_turn = 1;
        tnl_db_send_events();
        return;
    }

    if (tnl_db.keys_head != NULL) {
        tnl_db.keys_turn = 0;
        tnl_db_send_keys();
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

        if (kind[0] == 'k' || kind[0] == 'd') {
            if (tnl_keys_build_add_key(tnl_db.build, s, user_id,
                                       PQgetvalue(res, i, 3), kind[0] == 'd')
                == -1)
            {
                tnl_log_warn("db: key \"%s\" skipped (bad fingerprint or "
                             "user name, or out of memory)", s);
                continue;
            }
            tnl_db.nkeys++;

        } else if (kind[0] == 's') {
            if (tnl_keys_build_add_system(tnl_db.build, s) == -1) {
                tnl_log_warn("db: system name \"%s\" skipped (not a "
                             "valid tunnel name, or out of memory)", s);
                continue;
            }
            tnl_db.nsystem++;

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


/* one PGresult of the query in flight; 1 if it was kept (not to clear) */

static int
tnl_db_result(PGresult *res)
{
    ExecStatusType  st;
    char            buf[512];
    int             kept;

    st = PQresultStatus(res);
    kept = 0;

    if (st == PGRES_TUPLES_OK && tnl_db.query == TNL_DB_Q_CALL) {
        /* the last set of rows is the answer */
        if (tnl_db.call_res != NULL) {
            PQclear(tnl_db.call_res);
        }
        tnl_db.call_res = res;
        kept = 1;
    }

    if (st == PGRES_TUPLES_OK && tnl_db.query == TNL_DB_Q_LOAD
        && tnl_db.build != NULL)
    {
        tnl_db_load_rows(res);
    }

    if (st == PGRES_TUPLES_OK && tnl_db.query == TNL_DB_Q_NODE_LOST
        && PQntuples(res) == 1)
    {
        tnl_db.nlost = atoi(PQgetvalue(res, 0, 0));
    }

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK
        && tnl_db.error == NULL)
    {
        tnl_db.result = st;
        tnl_db.error = strdup(tnl_db_trim(PQresultErrorMessage(res), buf,
                                          sizeof(buf)));
    }

    return kept;
}


/*
 * The call in flight is over (answered, failed, or the connection went):
 * its handler runs last, once db.c's own state is settled, since it may
 * queue another query.
 */

static void
tnl_db_call_done(const char *err)
{
    tnl_db_query_t   *q;
    tnl_db_query_pt   handler;
    PGresult         *res;
    char              buf[512];

    q = tnl_db.call;
    res = tnl_db.call_res;
    tnl_db.call = NULL;
    tnl_db.call_res = NULL;

    snprintf(buf, sizeof(buf), "%s", err ? err : "");
    tnl_db_clear_result();

    if (q == NULL) {
        PQclear(res);
        return;
    }

    handler = q->handler;
    tnl_timer_del(&q->timer);

    if (handler != NULL) {
        if (err == NULL && res == NULL) {
            handler(q->data, NULL, "the database returned no rows");
        } else {
            handler(q->data, err ? NULL : res, err ? buf : NULL);
        }
    }

    PQclear(res);
    free(q);
}


static void
tnl_db_call_lost_posted(void *data)
{
    tnl_db_query_t   *q = data;
    tnl_db_query_pt   handler;
    void             *hdata;

    handler = q->handler;
    hdata = q->data;
    tnl_timer_del(&q->timer);
    free(q);

    if (handler != NULL) {
        handler(hdata, NULL, "connection to the database lost");
    }
}


/*
 * The connection dropped with a call in flight: the statement may have
 * run, so it is not sent again; its part is told (from a posted function:
 * a drop can happen deep inside another part's call into db.c).
 */

static void
tnl_db_call_lost(void)
{
    tnl_db_query_t  *q;

    q = tnl_db.call;
    tnl_db.call = NULL;

    if (tnl_db.call_res != NULL) {
        PQclear(tnl_db.call_res);
        tnl_db.call_res = NULL;
    }

    if (q != NULL && tnl_loop_post(tnl_db.loop, tnl_db_call_lost_posted, q)
                     != 0)
    {
        q->inflight = 0;         /* no memory: its timer tells, and frees */
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

        tnl_log_info("db: loaded %d key(s), %d reserved name(s), %d system "
                     "name(s)", tnl_db.nkeys, tnl_db.nreserved,
                     tnl_db.nsystem);
        tnl_keys_build_commit(tnl_db.build);    /* frees build */
        tnl_db.build = NULL;
        break;

    case TNL_DB_Q_NODE_LOST:
        if (!ok) {
            tnl_log_error("db: closing the tunnels of a lost node in the "
                          "audit log failed: %s", err);
        } else {
            tnl_log_info("db: %d tunnel(s) left open by a lost process of "
                         "this node (sessions \"%s*\") closed in the audit "
                         "log", tnl_db.nlost, tnl_db.lost_prefix);
        }

        /* once: a statement PostgreSQL refuses would fail again */
        free(tnl_db.lost_prefix);
        tnl_db.lost_prefix = NULL;
        break;

    case TNL_DB_Q_EVENTS:
        if (!ok && tnl_db.ninflight > 1) {
            tnl_log_warn("db: audit insert of %d rows failed, retrying "
                         "them one by one: %s", tnl_db.ninflight, err);
            tnl_db_inflight_return(1);
            break;
        }

        if (!ok) {
            tnl_log_error("db: audit insert failed, row dropped: %s", err);
        }

        tnl_db_inflight_free();
        break;

    case TNL_DB_Q_CALL:
        tnl_db_call_done(ok ? NULL : err);
        return;

    default:
        if (!ok) {
            tnl_log_error("db: last-used update failed: %s", err);
        }

        tnl_db_inflight_free();
        break;
    }

    tnl_db_clear_result();
}


static void
tnl_db_notifies(void)
{
    PGnotify  *n;
    int        got, i;

    got = 0;

    while ((n = PQnotifies(tnl_db.conn)) != NULL) {
        for (i = 0; i < tnl_db.nchannels; i++) {
            if (strcmp(n->relname, tnl_db.channels[i]) == 0) {
                break;
            }
        }

        if (i < tnl_db.nchannels) {
            tnl_db.notify[i](n->extra);
        } else {
            got = 1;             /* tunnel_keys */
        }

        PQfreemem(n);

        if (tnl_db.conn == NULL) {
            return;
        }
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

        if (!tnl_db_result(res)) {
            PQclear(res);
        }
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

    /* no new LISTEN or load: only what is queued (say the cancels of
       activation codes whose sessions just closed) */
    tnl_db.stopping = 1;
    tnl_timer_del(&tnl_db.reload);

    tnl_time_update();
    deadline = tnl_now_ms() + ms;

    while (tnl_db.conn != NULL
           && (tnl_db.state == TNL_DB_BUSY || tnl_db.state == TNL_DB_CONNECTING
               || tnl_db.qlen > 0 || tnl_db.keys_head != NULL
               || tnl_db.calls_head != NULL))
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

    left = tnl_db.qlen + tnl_db.ninflight;
    if (left > 0) {
        tnl_log_warn("db: %zu audit row(s) not written at shutdown", left);
    }

    tnl_io_del(&tnl_db.io);
    tnl_timer_del(&tnl_db.timer);
    tnl_db_resolve_cancel();

    if (tnl_db.conn) {
        PQfinish(tnl_db.conn);
        tnl_db.conn = NULL;
    }

    tnl_db_inflight_free();

    /* shutdown: the parts waiting for these are closing too */
    if (tnl_db.call != NULL) {
        tnl_db.call->handler = NULL;
    }
    tnl_db_call_lost();
    while (tnl_db.calls_head != NULL) {
        tnl_db_query_cancel(tnl_db.calls_head);
    }

    while (tnl_db.qlen > 0) {
        free(tnl_db_queue_pop());
    }

    free(tnl_db.queue);
    tnl_db.queue = NULL;
    tnl_db.qsize = 0;
    tnl_db.qhead = 0;

    while (tnl_db.keys_head != NULL) {
        free(tnl_db_keys_pop());
    }

    free(tnl_db.keys);
    tnl_db.keys = NULL;
    tnl_db_bufs_free();

    if (tnl_db.build) {
        tnl_keys_build_abort(tnl_db.build);
        tnl_db.build = NULL;
    }

    tnl_db_clear_result();
    free(tnl_db.lost_prefix);
    tnl_db.lost_prefix = NULL;
    free(tnl_db.conninfo);
    free(tnl_db.node);
    tnl_db.conninfo = NULL;
    tnl_db.node = NULL;
    tnl_db.state = TNL_DB_DOWN;
    tnl_db.started = 0;
}


void
tnl_db_node_lost(const char *session_prefix, const struct timespec *before)
{
    if (!tnl_db.started || tnl_db.stopping) {
        return;
    }

    free(tnl_db.lost_prefix);

    tnl_db.lost_prefix = strdup(session_prefix);
    if (tnl_db.lost_prefix == NULL) {
        tnl_log_error("db: out of memory, node-lost sweep skipped");
        return;
    }

    tnl_db_time_text(before, tnl_db.lost_before, sizeof(tnl_db.lost_before));

    tnl_db_dispatch();
}


int
tnl_db_is_up(void)
{
    return tnl_db.state == TNL_DB_READY || tnl_db.state == TNL_DB_BUSY;
}
