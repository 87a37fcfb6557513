/*
 * Live counters into Redis and kicks out of it (see live.h).
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


#define TNL_LIVE_BATCH   256      /* routes per stats.lua call */
#define TNL_LIVE_FIELDS  8        /* per route, after its key */


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
} tnl_live;


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

    tnl_routes_on_close(tnl_session_close_tunnel);

    return 0;
}


void
tnl_live_stop(void)
{
    tnl_timer_del(&tnl_live.timer);
    tnl_routes_on_close(NULL);
    free(tnl_live.batch);
    tnl_live.batch = NULL;
}
