/*
 * Live routes in Redis (see routes.h and docs/INTERNALS.md "Redis"):
 * claim.lua, refresh.lua and release.lua run by EVALSHA (SHA from SCRIPT
 * LOAD at each connect, EVAL until then and on NOSCRIPT), the heartbeat,
 * re-registration when the connection comes back, and the tunnel:kick
 * subscription on a second connection (a subscribed hiredis context
 * accepts no other command).
 *
 * Heartbeat: refresh.lua takes many routes per call.  A cursor goes round
 * the held list: every tick refreshes the routes from the cursor on, in
 * batches of at most TNL_ROUTE_BATCH; ticks are spaced so that the cursor
 * goes round once per TNL_ROUTE_HEARTBEAT_MS, in up to TNL_ROUTE_SLICES
 * slices, so 20,000 routes cost a few calls every 100 ms rather than
 * 20,000 calls every 3 s.  A heartbeat sends only each route's session and
 * the script answers only for the routes it did not simply refresh; a
 * route whose key is gone ("missing") is sent again at once with its
 * fields, which re-creates it.  After a reconnect every route is sent with
 * its fields.
 *
 * Ownership: routes.c owns every tnl_route_t.  A route is reference
 * counted: one reference for the caller (dropped by tnl_route_release) and
 * one per Redis command in flight that names it (a claim, a release, or a
 * refresh batch), so a reply arriving after release finds the route alive
 * but marked released and never calls back into the caller.  Does not
 * create sockets or close sessions: callers do.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tnl_embedded.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "routes.h"


#define TNL_ROUTE_CMD_TIMEOUT_MS  2000
#define TNL_ROUTE_KEY_PREFIX      "tunnel:route:"
#define TNL_ROUTE_KICK_CHANNEL    "tunnel:kick"
#define TNL_ROUTE_CLOSE_CHANNEL   "tunnel:close"
#define TNL_ROUTES_FLUSH_MS       1000

/*
 * Heartbeat batches: at most TNL_ROUTE_BATCH routes per refresh.lua call
 * (about 2,000 arguments with fields, a few hundred microseconds of Redis
 * time: other clients are never held up for long); the list goes round in
 * at most TNL_ROUTE_SLICES ticks per period (100 ms apart), fewer when
 * there are fewer than TNL_ROUTE_SLICE_MIN routes per tick, so an almost
 * idle worker wakes up once per period.
 */
#define TNL_ROUTE_BATCH           256
#define TNL_ROUTE_SLICES          30
#define TNL_ROUTE_SLICE_MIN       64

#define TNL_ROUTES_STR_(x)        #x
#define TNL_ROUTES_STR(x)         TNL_ROUTES_STR_(x)
#define TNL_ROUTES_TTL_STR        TNL_ROUTES_STR(TNL_ROUTE_TTL_MS)


extern const tnl_embedded_t  tnl_redis_scripts[];


typedef enum {
    TNL_ROUTE_NEW = 0,         /* never claimed, or claim refused */
    TNL_ROUTE_CLAIMING,        /* claim.lua in flight */
    TNL_ROUTE_HELD,            /* in the held list, heartbeated */
    TNL_ROUTE_LOST,            /* another session holds the name */
} tnl_route_state_e;


struct tnl_route_s {
    tnl_route_t         *prev;         /* held list */
    tnl_route_t         *next;
    int                  refs;
    tnl_route_state_e    state;
    unsigned             released:1;   /* the caller let go */
    unsigned             refreshing:1; /* refresh.lua in flight */
    unsigned             uncertain:1;  /* claim sent, answer lost */
    tnl_claim_pt         claim_cb;
    tnl_route_lost_pt    lost;
    void                *data;
    char                *name;
    char                *key;
    char                *socket;
    char                *user;
    char                *session;
    char                *node;
    char                *client;
    size_t               key_len;
    size_t               session_len;
    char                 user_id[24];
    char                 started[24];
    uint64_t             stats_sum;    /* live.c: last counters published */
};


typedef enum {
    TNL_SCRIPT_CLAIM = 0,
    TNL_SCRIPT_REFRESH,
    TNL_SCRIPT_RELEASE,
    TNL_SCRIPT_STATS,          /* live.c, through tnl_routes_script */
    TNL_SCRIPT_KICK,
    TNL_SCRIPT_LIST,
    TNL_SCRIPT_N
} tnl_script_e;


/* one script call: claim and release name one route, refresh up to
 * TNL_ROUTE_BATCH */

typedef struct {
    tnl_script_e         script;
    unsigned             retried:1;    /* NOSCRIPT: resent with EVAL */
    unsigned             full:1;       /* refresh: with the route fields */
    int                  n;
    tnl_route_t         *routes[];     /* n, each holding a reference */
} tnl_route_op_t;


typedef struct {
    const char          *file;
    const char          *text;
    char                 sha[41];      /* "" until SCRIPT LOAD answered */
} tnl_script_t;


static tnl_script_t  tnl_scripts[TNL_SCRIPT_N] = {
    { "claim.lua", NULL, "" },
    { "refresh.lua", NULL, "" },
    { "release.lua", NULL, "" },
    { "stats.lua", NULL, "" },
    { "kick.lua", NULL, "" },
    { "list.lua", NULL, "" },
};


/* a tnl_routes_script call: its arguments are copied, for a NOSCRIPT
 * retry with the script's text */

typedef struct {
    tnl_script_e         script;
    unsigned             retried:1;
    tnl_redis_reply_pt   cb;
    void                *data;
    int                  argc;         /* after the script and key count */
    const char         **argv;         /* argc + 3 slots; [0..2] ours */
    size_t              *lens;
} tnl_script_call_t;


static struct {
    tnl_loop_t            *loop;
    tnl_redis_t           *cmd;        /* claims, refreshes, releases */
    tnl_redis_t           *sub;        /* SUBSCRIBE tunnel:kick, :close */
    tnl_session_kick_pt    kick;
    tnl_routes_close_pt    close;
    tnl_timer_t            heartbeat;
    tnl_route_t           *held;       /* HELD routes, oldest first */
    tnl_route_t           *tail;
    tnl_route_t           *cursor;     /* refreshed next; NULL: held */
    int                    nheld;
} tnl_routes;


static void tnl_route_send(tnl_route_op_t *op);


static void
tnl_route_unref(tnl_route_t *route)
{
    if (--route->refs > 0) {
        return;
    }

    free(route->name);
    free(route->key);
    free(route->socket);
    free(route->user);
    free(route->session);
    free(route->node);
    free(route->client);
    free(route);
}


static void
tnl_route_list_add(tnl_route_t *route)
{
    route->next = NULL;
    route->prev = tnl_routes.tail;
    if (tnl_routes.tail) {
        tnl_routes.tail->next = route;
    } else {
        tnl_routes.held = route;
    }
    tnl_routes.tail = route;
    tnl_routes.nheld++;
}


static void
tnl_route_list_del(tnl_route_t *route)
{
    if (tnl_routes.cursor == route) {
        tnl_routes.cursor = route->next;
    }

    if (route->prev) {
        route->prev->next = route->next;
    } else {
        tnl_routes.held = route->next;
    }

    if (route->next) {
        route->next->prev = route->prev;
    } else {
        tnl_routes.tail = route->prev;
    }

    route->prev = NULL;
    route->next = NULL;
    tnl_routes.nheld--;
}


/* status and detail of a {status, detail} script reply; NULL if malformed */

static const char *
tnl_route_reply_status(redisReply *reply, const char **detail)
{
    *detail = "";

    if (reply == NULL) {
        return NULL;
    }

    if (reply->type == REDIS_REPLY_STATUS
        || reply->type == REDIS_REPLY_STRING)
    {
        return reply->str;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        return NULL;
    }

    if (reply->elements > 1 && reply->element[1]->type == REDIS_REPLY_STRING)
    {
        *detail = reply->element[1]->str;
    }

    return reply->element[0]->str;
}


static const char *
tnl_route_reply_error(redisReply *reply)
{
    if (reply == NULL) {
        return tnl_routes_available() ? "timed out" : "redis unavailable";
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        return reply->str;
    }

    return "unexpected reply";
}


static tnl_route_op_t *
tnl_route_op_new(tnl_script_e script, int size)
{
    tnl_route_op_t  *op;

    op = calloc(1, sizeof(tnl_route_op_t) + size * sizeof(tnl_route_t *));
    if (op == NULL) {
        tnl_log_error("routes: out of memory");
        return NULL;
    }

    op->script = script;

    return op;
}


static void
tnl_route_op_start(tnl_route_t *route, tnl_script_e script)
{
    tnl_route_op_t  *op;

    op = tnl_route_op_new(script, 1);
    if (op == NULL) {
        return;
    }

    op->routes[op->n++] = route;
    route->refs++;

    tnl_route_send(op);
}


/* a refresh batch: routes are added with tnl_route_batch_add */

static tnl_route_op_t *
tnl_route_batch_new(int full)
{
    tnl_route_op_t  *op;

    op = tnl_route_op_new(TNL_SCRIPT_REFRESH, TNL_ROUTE_BATCH);
    if (op != NULL) {
        op->full = full ? 1 : 0;
    }

    return op;
}


/* adds route; sends the batch when full (then *opp is NULL) */

static void
tnl_route_batch_add(tnl_route_op_t **opp, tnl_route_t *route)
{
    tnl_route_op_t  *op = *opp;

    route->refs++;
    route->refreshing = 1;
    op->routes[op->n++] = route;

    if (op->n == TNL_ROUTE_BATCH) {
        *opp = NULL;
        tnl_route_send(op);
    }
}


static void
tnl_route_batch_send(tnl_route_op_t *op)
{
    if (op == NULL) {
        return;
    }

    if (op->n == 0) {
        free(op);
        return;
    }

    tnl_route_send(op);
}


static void
tnl_route_claim_done(tnl_route_op_t *op, redisReply *reply)
{
    tnl_route_t         *route = op->routes[0];
    tnl_claim_status_e   status;
    const char          *s, *detail;

    s = tnl_route_reply_status(reply, &detail);

    if (s != NULL && strcmp(s, "claimed") == 0) {
        status = TNL_CLAIM_CLAIMED;

    } else if (s != NULL && strcmp(s, "takeover") == 0) {
        status = TNL_CLAIM_TAKEOVER;

    } else if (s != NULL && strcmp(s, "taken") == 0) {
        status = TNL_CLAIM_TAKEN;
        route->uncertain = 0;

    } else {
        status = TNL_CLAIM_UNAVAILABLE;
        detail = tnl_route_reply_error(reply);

        /* the script may have run: release.lua at release time is safe */
        route->uncertain = 1;

        tnl_log_warn("routes: claim of \"%s\" failed: %s", route->name,
                     detail);
    }

    if (status == TNL_CLAIM_CLAIMED || status == TNL_CLAIM_TAKEOVER) {
        route->state = TNL_ROUTE_HELD;
        route->uncertain = 0;

        if (route->released) {
            /* the caller left while the claim was in flight: undo it */
            route->state = TNL_ROUTE_NEW;
            tnl_route_op_start(route, TNL_SCRIPT_RELEASE);
            return;
        }

        tnl_route_list_add(route);

    } else {
        route->state = TNL_ROUTE_NEW;
    }

    if (!route->released && route->claim_cb) {
        route->claim_cb(route, status, detail, route->data);
    }
}


/*
 * One route the script did not simply refresh: "lost", "missing" or
 * "claimed" (re-created).  0, or -1 if the answer is malformed.
 */

static int
tnl_route_refreshed(tnl_route_t *route, redisReply *status,
    redisReply *detail, tnl_route_op_t **again)
{
    if (status->type != REDIS_REPLY_STRING
        || detail->type != REDIS_REPLY_STRING)
    {
        return -1;
    }

    if (strcmp(status->str, "refreshed") == 0) {
        return 0;
    }

    if (strcmp(status->str, "claimed") == 0) {
        /* re-created without the live fields: live.c publishes them again */
        route->stats_sum = 0;
        return 0;
    }

    if (strcmp(status->str, "missing") == 0) {

        /* expired or flushed: send it again with its fields */

        if (*again == NULL) {
            *again = tnl_route_batch_new(1);
            if (*again == NULL) {
                return 0;       /* the next round retries */
            }
        }

        tnl_route_batch_add(again, route);
        return 0;
    }

    if (strcmp(status->str, "lost") != 0) {
        return -1;
    }

    tnl_log_warn("routes: tunnel \"%s\" of session \"%s\" was taken over "
                 "by session \"%s\"", route->name, route->session,
                 detail->str);

    route->state = TNL_ROUTE_LOST;
    tnl_route_list_del(route);

    if (route->lost) {
        route->lost(route, route->data);
    }

    return 0;
}


/*
 * The answer is {index, status, detail, ...} for the routes that were not
 * simply refreshed (index into KEYS, from 1): empty when all were.
 */

static void
tnl_route_refresh_done(tnl_route_op_t *op, redisReply *reply)
{
    tnl_route_op_t  *again;
    tnl_route_t     *route;
    redisReply     **e;
    long long        idx;
    size_t           i;
    int              failed;

    for (i = 0; i < (size_t) op->n; i++) {
        op->routes[i]->refreshing = 0;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements % 3 != 0)
    {
        /* the routes stay held: the next round (or reconnect) retries */
        tnl_log_warn("routes: refresh of %d tunnel(s) failed: %s", op->n,
                     tnl_route_reply_error(reply));
        return;
    }

    again = NULL;
    failed = 0;
    e = reply->element;

    for (i = 0; i < reply->elements; i += 3) {
        idx = (e[i]->type == REDIS_REPLY_INTEGER) ? e[i]->integer : 0;

        if (idx < 1 || idx > op->n) {
            failed++;
            continue;
        }

        route = op->routes[idx - 1];

        /* a lost handler may have released routes further on */
        if (route->released || route->state != TNL_ROUTE_HELD) {
            continue;
        }

        if (tnl_route_refreshed(route, e[i + 1], e[i + 2], &again) == -1) {
            failed++;
        }
    }

    if (failed) {
        tnl_log_warn("routes: refresh of %d tunnel(s) failed: unexpected "
                     "reply", failed);
    }

    tnl_route_batch_send(again);
}


static void
tnl_route_release_done(tnl_route_op_t *op, redisReply *reply)
{
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        tnl_log_warn("routes: release of \"%s\" failed: %s (it expires "
                     "in %d s)", op->routes[0]->name,
                     tnl_route_reply_error(reply),
                     TNL_ROUTE_TTL_MS / 1000);
    }
}


static void
tnl_route_op_done(tnl_route_op_t *op, redisReply *reply)
{
    int  i;

    switch (op->script) {

    case TNL_SCRIPT_CLAIM:
        tnl_route_claim_done(op, reply);
        break;

    case TNL_SCRIPT_REFRESH:
        tnl_route_refresh_done(op, reply);
        break;

    default:
        tnl_route_release_done(op, reply);
        break;
    }

    for (i = 0; i < op->n; i++) {
        tnl_route_unref(op->routes[i]);
    }

    free(op);
}


static void
tnl_route_op_reply(tnl_redis_t *rc, redisReply *reply, void *data)
{
    tnl_route_op_t  *op = data;

    (void) rc;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR
        && strncmp(reply->str, "NOSCRIPT", 8) == 0 && !op->retried)
    {
        /* SCRIPT FLUSH or a restarted Redis: send the text this time */
        tnl_scripts[op->script].sha[0] = '\0';
        op->retried = 1;
        tnl_route_send(op);
        return;
    }

    tnl_route_op_done(op, reply);
}


/* posted: a command that could not be sent fails outside the caller */

static void
tnl_route_op_fail(void *data)
{
    tnl_route_op_done(data, NULL);
}


/*
 * A script call's arguments, built here and copied out by hiredis before
 * the next call (one loop per process): at most the command, its script,
 * the key count, TNL_ROUTE_BATCH keys, two arguments and 7 fields per key.
 */

static const char  *tnl_route_argv[5 + TNL_ROUTE_BATCH * 8];
static size_t       tnl_route_argvlen[5 + TNL_ROUTE_BATCH * 8];


static int
tnl_route_arg(int argc, const char *s, size_t len)
{
    tnl_route_argv[argc] = s;
    tnl_route_argvlen[argc] = len;

    return argc + 1;
}


/* the fields claim.lua and a full refresh.lua take, in their order */

static int
tnl_route_fields(int argc, const tnl_route_t *route)
{
    argc = tnl_route_arg(argc, route->socket, strlen(route->socket));
    argc = tnl_route_arg(argc, route->user, strlen(route->user));
    argc = tnl_route_arg(argc, route->user_id, strlen(route->user_id));
    argc = tnl_route_arg(argc, route->session, route->session_len);
    argc = tnl_route_arg(argc, route->node, strlen(route->node));
    argc = tnl_route_arg(argc, route->started, strlen(route->started));

    return tnl_route_arg(argc, route->client, strlen(route->client));
}


static void
tnl_route_send(tnl_route_op_t *op)
{
    tnl_route_t   *route;
    tnl_script_t  *script = &tnl_scripts[op->script];
    char           nkeys[16];
    int            argc, i;

    if (script->sha[0] != '\0') {
        argc = tnl_route_arg(0, "EVALSHA", 7);
        argc = tnl_route_arg(argc, script->sha, 40);

    } else {
        argc = tnl_route_arg(0, "EVAL", 4);
        argc = tnl_route_arg(argc, script->text, strlen(script->text));
    }

    argc = tnl_route_arg(argc, nkeys,
                         snprintf(nkeys, sizeof(nkeys), "%d", op->n));

    for (i = 0; i < op->n; i++) {
        route = op->routes[i];
        argc = tnl_route_arg(argc, route->key, route->key_len);
    }

    route = op->routes[0];

    switch (op->script) {

    case TNL_SCRIPT_RELEASE:
        argc = tnl_route_arg(argc, route->session, route->session_len);
        break;

    case TNL_SCRIPT_CLAIM:
        argc = tnl_route_fields(argc, route);
        argc = tnl_route_arg(argc, TNL_ROUTES_TTL_STR,
                             sizeof(TNL_ROUTES_TTL_STR) - 1);
        break;

    default:
        argc = tnl_route_arg(argc, TNL_ROUTES_TTL_STR,
                             sizeof(TNL_ROUTES_TTL_STR) - 1);
        argc = tnl_route_arg(argc, op->full ? "7" : "1", 1);

        for (i = 0; i < op->n; i++) {
            route = op->routes[i];

            if (op->full) {
                argc = tnl_route_fields(argc, route);

            } else {
                argc = tnl_route_arg(argc, route->session,
                                     route->session_len);
            }
        }

        break;
    }

    if (tnl_redis_command(tnl_routes.cmd, argc, tnl_route_argv,
                          tnl_route_argvlen, TNL_ROUTE_CMD_TIMEOUT_MS,
                          tnl_route_op_reply, op)
        == 0)
    {
        return;
    }

    if (tnl_loop_post(tnl_routes.loop, tnl_route_op_fail, op) == -1) {
        tnl_route_op_done(op, NULL);    /* out of memory: answer now */
    }
}


/* heartbeat and re-registration */

/*
 * Refreshes the next count routes from the cursor (wrapping round at the
 * tail), in batches; full: with their fields (re-registration).  A route
 * whose refresh is still in flight is passed over.
 */

static void
tnl_routes_refresh(int count, int full)
{
    tnl_route_op_t  *op;
    tnl_route_t     *route;

    if (!tnl_redis_is_up(tnl_routes.cmd)) {
        return;
    }

    op = NULL;
    route = tnl_routes.cursor ? tnl_routes.cursor : tnl_routes.held;

    for ( ; count > 0 && route != NULL; count--) {

        tnl_routes.cursor = route->next;    /* NULL: the next tick wraps */

        if (route->refreshing) {
            route = route->next ? route->next : tnl_routes.held;
            continue;
        }

        if (op == NULL) {
            op = tnl_route_batch_new(full);
            if (op == NULL) {
                return;     /* logged; the next tick retries */
            }
        }

        tnl_route_batch_add(&op, route);

        route = route->next ? route->next : tnl_routes.held;
    }

    tnl_route_batch_send(op);
}


/* how many ticks one round of the held list takes */

static int
tnl_routes_slices(void)
{
    int  slices;

    slices = (tnl_routes.nheld + TNL_ROUTE_SLICE_MIN - 1)
             / TNL_ROUTE_SLICE_MIN;

    if (slices < 1) {
        return 1;
    }

    return slices > TNL_ROUTE_SLICES ? TNL_ROUTE_SLICES : slices;
}


static void
tnl_routes_heartbeat(tnl_timer_t *t)
{
    uint64_t  now;
    int       slices;

    /* a busy loop runs timers late: that delay is the heartbeat's lag */
    now = tnl_now_ms();
    tnl_metric_set(TNL_M_HEARTBEAT_LAG_MS, now > t->when ? now - t->when : 0);

    slices = tnl_routes_slices();

    tnl_timer_add(t, TNL_ROUTE_HEARTBEAT_MS / slices);

    /* a round per period whatever the list did since the last tick */
    tnl_routes_refresh((tnl_routes.nheld + slices - 1) / slices, 0);
}


static void
tnl_routes_script_loaded(tnl_redis_t *rc, redisReply *reply, void *data)
{
    tnl_script_t  *script = data;

    (void) rc;

    if (reply == NULL || reply->type != REDIS_REPLY_STRING
        || reply->len != 40)
    {
        tnl_log_warn("routes: SCRIPT LOAD %s failed: %s", script->file,
                     tnl_route_reply_error(reply));
        return;
    }

    memcpy(script->sha, reply->str, 40);
    script->sha[40] = '\0';
}


static void
tnl_routes_cmd_state(tnl_redis_t *rc, int up, void *data)
{
    const char  *argv[3];
    int          i;

    (void) data;

    for (i = 0; i < TNL_SCRIPT_N; i++) {
        tnl_scripts[i].sha[0] = '\0';
    }

    if (!up) {
        return;
    }

    for (i = 0; i < TNL_SCRIPT_N; i++) {
        argv[0] = "SCRIPT";
        argv[1] = "LOAD";
        argv[2] = tnl_scripts[i].text;

        (void) tnl_redis_command(rc, 3, argv, NULL, TNL_ROUTE_CMD_TIMEOUT_MS,
                                 tnl_routes_script_loaded, &tnl_scripts[i]);
    }

    if (tnl_routes.nheld > 0) {
        tnl_log_info("routes: re-registering %d tunnel(s)",
                     tnl_routes.nheld);
        tnl_routes_refresh(tnl_routes.nheld, 1);
    }
}


/* kicks */

static void
tnl_routes_kick_posted(void *data)
{
    if (tnl_routes.kick) {
        tnl_routes.kick(data);
    }

    free(data);
}


static void
tnl_routes_close_posted(void *data)
{
    char  *msg = data, *f[5], *p;
    int    i;

    /* "<session>\t<name>\t<scope>\t<by>\t<reason>" (kick.lua) */

    p = msg;
    for (i = 0; i < 5; i++) {
        f[i] = p;
        p = (i < 4) ? strchr(p, '\t') : NULL;
        if (i < 4) {
            if (p == NULL) {
                tnl_log_warn("routes: malformed close message ignored");
                free(msg);
                return;
            }
            *p++ = '\0';
        }
    }

    if (tnl_routes.close) {
        tnl_routes.close(f[0], f[1], strcmp(f[2], "session") == 0, f[3],
                         f[4]);
    }

    free(msg);
}


static void
tnl_routes_kick_message(tnl_redis_t *rc, redisReply *reply, void *data)
{
    redisReply  *payload, *channel;
    char        *msg;
    int          close;

    (void) rc;
    (void) data;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING
        || strcmp(reply->element[0]->str, "message") != 0)
    {
        return;     /* the "subscribe" confirmation, or the end */
    }

    channel = reply->element[1];
    payload = reply->element[2];
    if (payload->type != REDIS_REPLY_STRING || payload->len == 0
        || channel->type != REDIS_REPLY_STRING)
    {
        return;
    }

    close = strcmp(channel->str, TNL_ROUTE_CLOSE_CHANNEL) == 0;

    /* the handlers close sessions: run them outside hiredis */
    msg = strndup(payload->str, payload->len);
    if (msg == NULL
        || tnl_loop_post(tnl_routes.loop, close ? tnl_routes_close_posted
                                                : tnl_routes_kick_posted,
                         msg)
           == -1)
    {
        free(msg);
        tnl_log_error("routes: out of memory, %s \"%.*s\" dropped",
                      close ? "close" : "kick", (int) payload->len,
                      payload->str);
    }
}


static void
tnl_routes_sub_state(tnl_redis_t *rc, int up, void *data)
{
    (void) data;

    if (up && (tnl_redis_subscribe(rc, TNL_ROUTE_KICK_CHANNEL,
                                   tnl_routes_kick_message, NULL) == -1
               || tnl_redis_subscribe(rc, TNL_ROUTE_CLOSE_CHANNEL,
                                      tnl_routes_kick_message, NULL) == -1))
    {
        tnl_log_error("routes: cannot subscribe to %s and %s, reconnecting",
                      TNL_ROUTE_KICK_CHANNEL, TNL_ROUTE_CLOSE_CHANNEL);
        tnl_redis_reset(rc);
    }
}


/* public */

int
tnl_routes_start(tnl_loop_t *loop, const char *redis_url,
    tnl_session_kick_pt kick_handler)
{
    int  i;

    for (i = 0; i < TNL_SCRIPT_N; i++) {
        tnl_scripts[i].text = tnl_embedded_find(tnl_redis_scripts,
                                                tnl_scripts[i].file);
        if (tnl_scripts[i].text == NULL) {
            tnl_log_error("routes: script %s is not embedded",
                          tnl_scripts[i].file);
            return -1;
        }
        tnl_scripts[i].sha[0] = '\0';
    }

    tnl_routes.loop = loop;
    tnl_routes.kick = kick_handler;

    tnl_routes.cmd = tnl_redis_create(loop, redis_url, "routes",
                                      tnl_routes_cmd_state, NULL);
    if (tnl_routes.cmd == NULL) {
        return -1;
    }

    tnl_routes.sub = tnl_redis_create(loop, redis_url, "kick",
                                      tnl_routes_sub_state, NULL);
    if (tnl_routes.sub == NULL) {
        tnl_redis_destroy(tnl_routes.cmd);
        tnl_routes.cmd = NULL;
        return -1;
    }

    tnl_timer_init(&tnl_routes.heartbeat, loop, tnl_routes_heartbeat, NULL);
    tnl_timer_add(&tnl_routes.heartbeat, TNL_ROUTE_HEARTBEAT_MS);

    return 0;
}


int
tnl_routes_available(void)
{
    return tnl_redis_is_up(tnl_routes.cmd);
}


static char *
tnl_route_node_of(const char *session_id)
{
    const char  *slash;
    char         host[256];

    /* session ids are "<node>/<pid>/<counter>" (docs/INTERNALS.md) */

    slash = strchr(session_id, '/');
    if (slash != NULL && slash != session_id) {
        return strndup(session_id, slash - session_id);
    }

    if (gethostname(host, sizeof(host)) == -1) {
        strcpy(host, "unknown");
    }
    host[sizeof(host) - 1] = '\0';

    return strdup(host);
}


tnl_route_t *
tnl_route_new(const char *name, const char *socket_path,
    const char *user, int64_t user_id, const char *session_id,
    const char *client, tnl_route_lost_pt lost, void *data)
{
    tnl_route_t  *route;

    route = calloc(1, sizeof(tnl_route_t));
    if (route == NULL) {
        return NULL;
    }

    route->refs = 1;
    route->lost = lost;
    route->data = data;

    route->name = strdup(name);
    route->socket = strdup(socket_path);
    route->user = strdup(user ? user : "");
    route->session = strdup(session_id);
    route->client = strdup(client ? client : "");
    route->node = tnl_route_node_of(session_id);
    route->key = malloc(sizeof(TNL_ROUTE_KEY_PREFIX) + strlen(name));

    snprintf(route->user_id, sizeof(route->user_id), "%lld",
             (long long) user_id);
    snprintf(route->started, sizeof(route->started), "%lld",
             (long long) time(NULL));

    if (route->name == NULL || route->socket == NULL || route->user == NULL
        || route->session == NULL || route->client == NULL
        || route->node == NULL || route->key == NULL)
    {
        tnl_route_unref(route);
        return NULL;
    }

    strcpy(route->key, TNL_ROUTE_KEY_PREFIX);
    strcat(route->key, name);

    route->key_len = strlen(route->key);
    route->session_len = strlen(route->session);

    return route;
}


void
tnl_route_claim(tnl_route_t *route, tnl_claim_pt cb)
{
    route->claim_cb = cb;

    if (route->state != TNL_ROUTE_NEW) {
        tnl_log_error("routes: \"%s\" claimed twice", route->name);
        return;
    }

    route->state = TNL_ROUTE_CLAIMING;
    route->uncertain = 1;

    tnl_route_op_start(route, TNL_SCRIPT_CLAIM);
}


void
tnl_route_release(tnl_route_t *route)
{
    if (route == NULL) {
        return;
    }

    route->released = 1;

    if (route->state == TNL_ROUTE_HELD) {
        tnl_route_list_del(route);
        route->state = TNL_ROUTE_NEW;
        route->uncertain = 1;
    }

    /*
     * CLAIMING: the claim reply undoes a success.  Otherwise release.lua
     * deletes the key only if this session still holds it, so sending it
     * after an unanswered claim is safe.
     */
    if (route->uncertain && route->state != TNL_ROUTE_CLAIMING
        && tnl_redis_is_up(tnl_routes.cmd))
    {
        route->uncertain = 0;
        tnl_route_op_start(route, TNL_SCRIPT_RELEASE);
    }

    tnl_route_unref(route);
}


const char *
tnl_route_name(const tnl_route_t *route)
{
    return route->name;
}


void
tnl_routes_stop(void)
{
    int  left;

    tnl_timer_del(&tnl_routes.heartbeat);

    /* let the releases the callers just sent reach Redis */
    left = tnl_redis_flush(tnl_routes.cmd, TNL_ROUTES_FLUSH_MS);
    if (left > 0) {
        tnl_log_warn("routes: %d command(s) unanswered at shutdown", left);
    }

    tnl_redis_destroy(tnl_routes.cmd);
    tnl_redis_destroy(tnl_routes.sub);
    tnl_routes.cmd = NULL;
    tnl_routes.sub = NULL;
}


void
tnl_routes_on_close(tnl_routes_close_pt handler)
{
    tnl_routes.close = handler;
}


tnl_redis_t *
tnl_routes_redis(void)
{
    return tnl_routes.cmd;
}


void
tnl_routes_each(void (*fn)(tnl_route_t *route, void *data, void *arg),
    void *arg)
{
    tnl_route_t  *route, *next;

    for (route = tnl_routes.held; route != NULL; route = next) {
        next = route->next;
        fn(route, route->data, arg);
    }
}


int
tnl_routes_count(void)
{
    return tnl_routes.nheld;
}


const char *
tnl_route_key(const tnl_route_t *route, size_t *len)
{
    *len = route->key_len;
    return route->key;
}


const char *
tnl_route_session(const tnl_route_t *route, size_t *len)
{
    *len = route->session_len;
    return route->session;
}


/* generic script calls (stats.lua, kick.lua) */

static void tnl_routes_script_send(tnl_script_call_t *call);


static void
tnl_routes_script_reply(tnl_redis_t *rc, redisReply *reply, void *data)
{
    tnl_script_call_t  *call = data;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR
        && strncmp(reply->str, "NOSCRIPT", 8) == 0 && !call->retried)
    {
        tnl_scripts[call->script].sha[0] = '\0';
        call->retried = 1;
        tnl_routes_script_send(call);
        return;
    }

    call->cb(rc, reply, call->data);
    free(call);
}


static void
tnl_routes_script_fail(void *data)
{
    tnl_script_call_t  *call = data;

    call->cb(tnl_routes.cmd, NULL, call->data);
    free(call);
}


static void
tnl_routes_script_send(tnl_script_call_t *call)
{
    tnl_script_t  *script = &tnl_scripts[call->script];

    if (script->sha[0] != '\0') {
        call->argv[0] = "EVALSHA";
        call->argv[1] = script->sha;
        call->lens[1] = 40;
    } else {
        call->argv[0] = "EVAL";
        call->argv[1] = script->text;
        call->lens[1] = strlen(script->text);
    }
    call->lens[0] = strlen(call->argv[0]);

    if (tnl_redis_command(tnl_routes.cmd, call->argc + 2, call->argv,
                          call->lens, TNL_ROUTE_CMD_TIMEOUT_MS,
                          tnl_routes_script_reply, call)
        == 0)
    {
        return;
    }

    if (tnl_loop_post(tnl_routes.loop, tnl_routes_script_fail, call) == -1) {
        call->cb(tnl_routes.cmd, NULL, call->data);
        free(call);
    }
}


int
tnl_routes_script(const char *file, int nkeys, int argc, const char **argv,
    const size_t *lens, tnl_redis_reply_pt cb, void *data)
{
    tnl_script_call_t  *call;
    size_t              size, n;
    char               *p;
    int                 i, script;

    for (script = 0; script < TNL_SCRIPT_N; script++) {
        if (strcmp(tnl_scripts[script].file, file) == 0) {
            break;
        }
    }

    if (script == TNL_SCRIPT_N) {
        return -1;
    }

    /* one block: the call, argv, lens, the key count, copies of args */

    size = sizeof(tnl_script_call_t)
           + (argc + 3) * (sizeof(char *) + sizeof(size_t)) + 16;
    for (i = 0; i < argc; i++) {
        size += lens[i] + 1;
    }

    call = malloc(size);
    if (call == NULL) {
        return -1;
    }

    memset(call, 0, sizeof(tnl_script_call_t));
    call->script = (tnl_script_e) script;
    call->cb = cb;
    call->data = data;
    call->argc = argc + 1;
    call->argv = (const char **) (call + 1);
    call->lens = (size_t *) (call->argv + argc + 3);

    p = (char *) (call->lens + argc + 3);
    n = (size_t) snprintf(p, 16, "%d", nkeys);
    call->argv[2] = p;
    call->lens[2] = n;
    p += 16;

    for (i = 0; i < argc; i++) {
        memcpy(p, argv[i], lens[i]);
        p[lens[i]] = '\0';
        call->argv[3 + i] = p;
        call->lens[3 + i] = lens[i];
        p += lens[i] + 1;
    }

    tnl_routes_script_send(call);

    return 0;
}


int
tnl_route_stats_changed(tnl_route_t *route, uint64_t sum)
{
    if (route->stats_sum == sum) {
        return 0;
    }

    route->stats_sum = sum;
    return 1;
}
