/*
 * Live counters into Redis and kicks out of it, and the Redis half of the
 * node-lost sweep (see live.h).
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "live.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "routes.h"
#include "session.h"
#include "tnl_embedded.h"
#include "tnl_name.h"


#define TNL_LIVE_BATCH   256      /* routes per stats.lua call */
#define TNL_LIVE_FIELDS  8        /* per route, after its key */
#define TNL_LIVE_LOST_BUDGET    "1000"  /* index entries per node_lost.lua */
#define TNL_LIVE_LOST_RETRY_MS  500     /* Redis not up, or the call failed */
#define TNL_LIVE_LOST_TIMEOUT   5000


extern const tnl_embedded_t  tnl_redis_scripts[];


typedef struct {
    int            n;
    const char    *argv[TNL_LIVE_BATCH * (TNL_LIVE_FIELDS + 1)];
    size_t         lens[TNL_LIVE_BATCH * (TNL_LIVE_FIELDS + 1)];
    char           nums[TNL_LIVE_BATCH][6][24];
} tnl_live_batch_t;


static struct {
    tnl_loop_t        *loop;
    tnl_timer_t        timer;
    tnl_live_batch_t  *batch;
    unsigned           failed_logged:1;

    /* the node-lost sweep: until it went through the index once */
    tnl_timer_t        lost_timer;
    char              *lost_prefix;      /* NULL: nothing to sweep */
    char               lost_before[24];
    char               lost_after[TNL_NAME_MAX + 1];
    unsigned           lost_removed;
    unsigned           lost_busy:1;      /* a call in flight */
    unsigned           lost_failed_logged:1;
} tnl_live;


static void tnl_live_lost_send(tnl_timer_t *t);


static void
tnl_live_stats_done(tnl_redis_t *rc, redisReply *reply, void *data)
{
    (void) rc;
    (void) data;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        if (!tnl_live.failed_logged) {
            tnl_live.failed_logged = 1;
            tnl_log_warn("live: publishing tunnel counters failed: %s",
                         reply ? reply->str : "redis unavailable or slow");
        }
        return;
    }

    tnl_live.failed_logged = 0;
}


static void
tnl_live_batch_send(tnl_live_batch_t *b)
{
    const char  *argv[TNL_LIVE_BATCH * (TNL_LIVE_FIELDS + 1)];
    size_t       lens[TNL_LIVE_BATCH * (TNL_LIVE_FIELDS + 1)];
    int          i, j, a;

    if (b->n == 0) {
        return;
    }

    /* stats.lua wants the n keys first, then n groups of 8 fields */

    a = 0;
    for (i = 0; i < b->n; i++) {
        argv[a] = b->argv[i * (TNL_LIVE_FIELDS + 1)];
        lens[a++] = b->lens[i * (TNL_LIVE_FIELDS + 1)];
    }

    for (i = 0; i < b->n; i++) {
        for (j = 1; j <= TNL_LIVE_FIELDS; j++) {
            argv[a] = b->argv[i * (TNL_LIVE_FIELDS + 1) + j];
            lens[a++] = b->lens[i * (TNL_LIVE_FIELDS + 1) + j];
        }
    }

    if (tnl_routes_script("stats.lua", b->n, a, argv, lens,
                          tnl_live_stats_done, NULL)
        == -1)
    {
        tnl_log_warn("live: out of memory, counters not published");
    }

    b->n = 0;
}


static uint64_t
tnl_live_sum(const tnl_live_stats_t *st)
{
    uint64_t  h = 1469598103934665603ULL;

    /* FNV-1a over the numbers: "did anything change" */
#define TNL_LIVE_MIX(x)  do { h ^= (uint64_t) (x); h *= 1099511628211ULL; } \
                         while (0)
    TNL_LIVE_MIX(st->bytes_in);
    TNL_LIVE_MIX(st->bytes_out);
    TNL_LIVE_MIX(st->requests);
    TNL_LIVE_MIX(st->streams);
    TNL_LIVE_MIX(st->open_streams);
    TNL_LIVE_MIX(st->last_request);
#undef TNL_LIVE_MIX

    return h | 1;     /* never 0, the value of a route never published */
}


static void
tnl_live_route(tnl_route_t *route, void *data, void *arg)
{
    tnl_live_batch_t  *b = arg;
    tnl_live_stats_t   st;
    const char       **argv;
    size_t            *lens;
    uint64_t           v[6];
    int                i;

    (void) route;

    memset(&st, 0, sizeof(st));
    if (tnl_forward_live_stats(data, &st) == -1) {
        return;
    }

    if (!tnl_route_stats_changed(route, tnl_live_sum(&st))) {
        return;
    }

    argv = &b->argv[b->n * (TNL_LIVE_FIELDS + 1)];
    lens = &b->lens[b->n * (TNL_LIVE_FIELDS + 1)];

    argv[0] = tnl_route_key(route, &lens[0]);
    argv[1] = tnl_route_session(route, &lens[1]);
    argv[2] = st.fingerprint ? st.fingerprint : "";
    lens[2] = strlen(argv[2]);

    v[0] = st.bytes_in;
    v[1] = st.bytes_out;
    v[2] = st.requests;
    v[3] = st.streams;
    v[4] = st.open_streams;
    v[5] = (uint64_t) st.last_request;

    for (i = 0; i < 6; i++) {
        lens[3 + i] = (size_t) snprintf(b->nums[b->n][i], 24, "%" PRIu64,
                                        v[i]);
        argv[3 + i] = b->nums[b->n][i];
    }

    if (++b->n == TNL_LIVE_BATCH) {
        tnl_live_batch_send(b);
    }
}


static void
tnl_live_tick(tnl_timer_t *t)
{
    tnl_timer_add(t, TNL_LIVE_STATS_MS);

    tnl_metric_set(TNL_M_REDIS_UP, (uint64_t) tnl_routes_available());
    tnl_metric_set(TNL_M_TUNNELS_UP, (uint64_t) tnl_routes_count());
    tnl_metric_set(TNL_M_SESSIONS, (uint64_t) tnl_sessions_count());

    if (!tnl_routes_available() || tnl_routes_count() == 0) {
        return;
    }

    tnl_live.batch->n = 0;
    tnl_routes_each(tnl_live_route, tnl_live.batch);
    tnl_live_batch_send(tnl_live.batch);
}


/*
 * The node-lost sweep in Redis: the routes of a killed process of this
 * node (tnl_live_node_lost) are deleted, a page of tunnel:index at a time,
 * once Redis answers; retried until it went through once.  A route of a
 * live process never matches: other pid, or claimed after `before`.
 */

static void
tnl_live_lost_done(tnl_redis_t *rc, redisReply *reply, void *data)
{
    redisReply  *next, *n;

    (void) rc;
    (void) data;

    tnl_live.lost_busy = 0;

    if (tnl_live.lost_prefix == NULL) {
        return;                          /* stopped meanwhile */
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_INTEGER
        || reply->element[0]->len >= sizeof(tnl_live.lost_after))
    {
        if (!tnl_live.lost_failed_logged) {
            tnl_live.lost_failed_logged = 1;
            tnl_log_warn("live: removing the routes of the killed process "
                         "(%s) failed: %s; retrying (else they expire by "
                         "TTL)", tnl_live.lost_prefix,
                         (reply && reply->type == REDIS_REPLY_ERROR)
                         ? reply->str : "redis unavailable or slow");
        }
        tnl_timer_add(&tnl_live.lost_timer, TNL_LIVE_LOST_RETRY_MS);
        return;
    }

    next = reply->element[0];
    n = reply->element[1];

    tnl_live.lost_removed += (unsigned) n->integer;
    memcpy(tnl_live.lost_after, next->str, next->len);
    tnl_live.lost_after[next->len] = '\0';

    if (next->len > 0) {
        tnl_timer_add(&tnl_live.lost_timer, 0);
        return;
    }

    if (tnl_live.lost_removed > 0) {
        tnl_log_info("live: removed %u route%s left in Redis by the killed "
                     "process (%s)", tnl_live.lost_removed,
                     tnl_live.lost_removed == 1 ? "" : "s",
                     tnl_live.lost_prefix);
    }

    free(tnl_live.lost_prefix);
    tnl_live.lost_prefix = NULL;
}


static void
tnl_live_lost_send(tnl_timer_t *t)
{
    const char  *text, *argv[7];
    size_t       lens[7];
    int          i;

    if (tnl_live.lost_prefix == NULL || tnl_live.lost_busy) {
        return;
    }

    text = tnl_embedded_find(tnl_redis_scripts, "node_lost.lua");

    if (text == NULL || !tnl_routes_available()) {
        tnl_timer_add(t, TNL_LIVE_LOST_RETRY_MS);
        return;
    }

    argv[0] = "EVAL";
    argv[1] = text;
    argv[2] = "0";
    argv[3] = tnl_live.lost_prefix;
    argv[4] = tnl_live.lost_before;
    argv[5] = tnl_live.lost_after;
    argv[6] = TNL_LIVE_LOST_BUDGET;

    for (i = 0; i < 7; i++) {
        lens[i] = strlen(argv[i]);
    }

    if (tnl_redis_command(tnl_routes_redis(), 7, argv, lens,
                          TNL_LIVE_LOST_TIMEOUT, tnl_live_lost_done, NULL)
        == -1)
    {
        tnl_timer_add(t, TNL_LIVE_LOST_RETRY_MS);
        return;
    }

    tnl_live.lost_busy = 1;
}


void
tnl_live_node_lost(const char *prefix, time_t before)
{
    free(tnl_live.lost_prefix);

    tnl_live.lost_prefix = strdup(prefix);
    if (tnl_live.lost_prefix == NULL) {
        tnl_log_warn("live: out of memory: the routes of the killed "
                     "process expire by TTL");
        return;
    }

    snprintf(tnl_live.lost_before, sizeof(tnl_live.lost_before), "%lld",
             (long long) before);
    tnl_live.lost_after[0] = '\0';
    tnl_live.lost_removed = 0;
    tnl_live.lost_failed_logged = 0;

    tnl_timer_add(&tnl_live.lost_timer, 0);
}


int
tnl_live_start(tnl_loop_t *loop)
{
    tnl_live.batch = calloc(1, sizeof(tnl_live_batch_t));
    if (tnl_live.batch == NULL) {
        return -1;
    }

    tnl_live.loop = loop;
    tnl_timer_init(&tnl_live.timer, loop, tnl_live_tick, NULL);
    tnl_timer_add(&tnl_live.timer, TNL_LIVE_STATS_MS);
    tnl_timer_init(&tnl_live.lost_timer, loop, tnl_live_lost_send, NULL);

    tnl_routes_on_close(tnl_session_close_tunnel);

    return 0;
}


void
tnl_live_stop(void)
{
    tnl_timer_del(&tnl_live.timer);
    tnl_timer_del(&tnl_live.lost_timer);
    free(tnl_live.lost_prefix);
    tnl_live.lost_prefix = NULL;
    tnl_routes_on_close(NULL);
    free(tnl_live.batch);
    tnl_live.batch = NULL;
}
