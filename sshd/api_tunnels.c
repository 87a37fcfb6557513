/*
 * /tunnels: the live tunnels of the whole cluster, read from Redis (the
 * route hashes every node writes, see live.h), and kicks.  Nothing here
 * looks at this worker's own sessions: any worker of any node answers the
 * same.
 *
 *   GET    /tunnels[?user=&node=&name=PREFIX&limit=N&cursor=C]
 *   GET    /tunnels/NAME
 *   DELETE /tunnels/NAME[?session=1&reason=TEXT&by=WHO]
 *
 * Without limit the whole list is streamed (chunked), a list.lua page at
 * a time, never held in one string.  Each job below is heap memory owned
 * by this file; its connection pointer is cleared by the abort callback
 * when the client goes away, and the job is freed when its last Redis
 * reply has come back.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_handlers.h"
#include "forward.h"
#include "log.h"
#include "redis.h"
#include "routes.h"
#include "server.h"
#include "tnl_name.h"


#define TNL_API_PAGE_DEFAULT   100
#define TNL_API_PAGE_MAX       1000
#define TNL_API_SCAN_BUDGET    1000     /* index entries per list.lua */
#define TNL_API_STREAM_PAGE    500
#define TNL_API_REASON_MAX     200
#define TNL_API_KICK_TOMB_MS   "15000"
#define TNL_API_LISTS_MAX      8        /* list jobs at once per worker */


typedef struct {
    tnl_api_conn_t  *c;              /* NULL: the client went away */
    unsigned         inflight:1;
    unsigned         stream:1;       /* no limit: chunked, everything */
    unsigned         first:1;        /* no item written yet (stream) */
    unsigned         counted:1;      /* in tnl_api_lists */
    int              limit;
    int              found;
    json_t          *items;          /* page mode */
    char             after[TNL_NAME_MAX + 1];
    char             prefix[TNL_NAME_MAX + 1];
    char             user[64];
    char             node[256];
    char             name[TNL_NAME_MAX + 1];
    char             by[160];        /* kick: who asked */
    char             expect[128];    /* kick: only if this session holds
                                        the name ("" any) */
    char             reason[4 * TNL_API_REASON_MAX + 1];
} tnl_api_job_t;


static void tnl_api_list_next(tnl_api_job_t *job);
static void tnl_api_job_free(tnl_api_job_t *job);

/*
 * List jobs running in this worker.  Each one's Redis replies share the
 * command connection with claims and heartbeats: a few clients that ask
 * for the whole list and never read it must not crowd those out (seen:
 * 50 stalled streams made heartbeats time out).  Beyond the cap: 503.
 */
static unsigned  tnl_api_lists;


static void
tnl_api_job_abort(tnl_api_conn_t *c, void *data)
{
    tnl_api_job_t  *job = data;

    (void) c;

    job->c = NULL;

    if (!job->inflight) {
        tnl_api_job_free(job);
    }
}


/* the job is done with its connection: forget it */
static void
tnl_api_job_free(tnl_api_job_t *job)
{
    if (job->counted) {
        tnl_api_lists--;
    }

    json_decref(job->items);
    free(job);
}


static void
tnl_api_time(json_t *o, const char *key, const char *unix_key, time_t t)
{
    struct tm  tm;
    char       buf[32];

    if (t <= 0) {
        json_object_set_new(o, key, json_null());
        json_object_set_new(o, unix_key, json_null());
        return;
    }

    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);

    json_object_set_new(o, key, json_string(buf));
    json_object_set_new(o, unix_key, json_integer((json_int_t) t));
}


static json_int_t
tnl_api_int(const char *s)
{
    return s ? (json_int_t) strtoll(s, NULL, 10) : 0;
}


/*
 * The JSON object of one tunnel from its route hash (a flat {field,
 * value, ...} array, as HGETALL answers).  NULL if malformed.
 */
static json_t *
tnl_api_tunnel_json(const char *name, redisReply *h)
{
    const char  *f[16] = { NULL };
    const char  *names[] = { "socket", "user", "user_id", "session",
                             "node", "started", "client", "fingerprint",
                             "bytes_in", "bytes_out", "requests",
                             "streams", "open_streams", "last_request",
                             NULL };
    json_t      *o;
    char         url[512];
    size_t       i;
    int          k;

    if (h->type != REDIS_REPLY_ARRAY || h->elements % 2 != 0) {
        return NULL;
    }

    for (i = 0; i + 1 < h->elements; i += 2) {
        if (h->element[i]->type != REDIS_REPLY_STRING
            || h->element[i + 1]->type != REDIS_REPLY_STRING)
        {
            return NULL;
        }

        for (k = 0; names[k] != NULL; k++) {
            if (strcmp(h->element[i]->str, names[k]) == 0) {
                f[k] = h->element[i + 1]->str;
                break;
            }
        }
    }

    tnl_forward_public_url(name, url, sizeof(url));

    o = json_object();
    if (o == NULL) {
        return NULL;
    }

    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "url", json_string(url));
    json_object_set_new(o, "user", json_string(f[1] ? f[1] : ""));
    json_object_set_new(o, "user_id", json_integer(tnl_api_int(f[2])));
    json_object_set_new(o, "fingerprint",
                        f[7] && f[7][0] ? json_string(f[7]) : json_null());
    json_object_set_new(o, "client", json_string(f[6] ? f[6] : ""));
    json_object_set_new(o, "node", json_string(f[4] ? f[4] : ""));
    json_object_set_new(o, "session", json_string(f[3] ? f[3] : ""));
    tnl_api_time(o, "started", "started_unix",
                 (time_t) tnl_api_int(f[5]));
    json_object_set_new(o, "bytes_in", json_integer(tnl_api_int(f[8])));
    json_object_set_new(o, "bytes_out", json_integer(tnl_api_int(f[9])));
    json_object_set_new(o, "requests", json_integer(tnl_api_int(f[10])));
    json_object_set_new(o, "streams", json_integer(tnl_api_int(f[11])));
    json_object_set_new(o, "open_streams",
                        json_integer(tnl_api_int(f[12])));
    tnl_api_time(o, "last_request", "last_request_unix",
                 (time_t) tnl_api_int(f[13]));

    return o;
}


/* 503: Redis is down or did not answer in time */
static void
tnl_api_unavailable(tnl_api_conn_t *c, int kick)
{
    tnl_api_error(c, 503, "redis_unavailable", kick
                  ? "the live state (Redis) did not answer: nothing was "
                    "closed; try again in a moment"
                  : "the live state (Redis) did not answer: try again in a "
                    "moment", NULL);
}


/* GET /tunnels */

static void
tnl_api_list_reply(tnl_redis_t *rc, redisReply *reply, void *data)
{
    tnl_api_job_t  *job = data;
    redisReply     *e;
    json_t         *o, *page;
    char           *s;
    size_t          i;

    (void) rc;

    job->inflight = 0;

    if (job->c == NULL) {
        tnl_api_job_free(job);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        if (job->stream) {
            /* the 200 is out: end the JSON with an error member */
            tnl_log_warn("API: tunnel list cut short: %s",
                         reply && reply->type == REDIS_REPLY_ERROR
                         ? reply->str : "redis unavailable or slow");
            s = "\n],\"next_cursor\":null,\"error\":\"redis_unavailable\","
                "\"message\":\"the list is incomplete: the live state "
                "(Redis) did not answer\"}\n";
            tnl_api_stream_write(job->c, s, strlen(s));
            tnl_api_stream_end(job->c);
            tnl_api_job_free(job);
            return;
        }

        tnl_api_error(job->c, 503, "redis_unavailable", "the live state "
                      "(Redis) did not answer: try again in a moment",
                      NULL);
        tnl_api_job_free(job);
        return;
    }

    for (i = 1; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
            || e->element[0]->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        o = tnl_api_tunnel_json(e->element[0]->str, e->element[1]);
        if (o == NULL) {
            continue;
        }

        job->found++;

        if (!job->stream) {
            json_array_append_new(job->items, o);
            continue;
        }

        s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(o);
        if (s == NULL) {
            continue;
        }

        if (job->first) {
            job->first = 0;
        } else {
            tnl_api_stream_write(job->c, ",\n", 2);
        }
        tnl_api_stream_write(job->c, s, strlen(s));
        free(s);
    }

    snprintf(job->after, sizeof(job->after), "%s",
             reply->element[0]->str);

    if (job->stream) {
        if (job->after[0] == '\0') {
            tnl_api_stream_write(job->c, "\n],\"next_cursor\":null}\n", 23);
            tnl_api_stream_end(job->c);
            tnl_api_job_free(job);
            return;
        }

        if (tnl_api_stream_full(job->c)) {
            return;     /* tnl_api_list_more runs when it has drained */
        }

        tnl_api_list_next(job);
        return;
    }

    if (job->found < job->limit && job->after[0] != '\0') {
        tnl_api_list_next(job);
        return;
    }

    page = json_pack("{s:O, s:i, s:s?}", "tunnels", job->items,
                     "count", job->found,
                     "next_cursor",
                     job->found == job->limit && job->after[0] != '\0'
                     ? job->after : NULL);

    tnl_api_json(job->c, 200, page);
    tnl_api_job_free(job);
}


static void
tnl_api_list_next(tnl_api_job_t *job)
{
    const char  *argv[6];
    size_t       lens[6];
    char         limit[16], budget[16];
    int          i;

    snprintf(limit, sizeof(limit), "%d",
             job->stream ? TNL_API_STREAM_PAGE : job->limit - job->found);
    snprintf(budget, sizeof(budget), "%d", TNL_API_SCAN_BUDGET);

    argv[0] = job->after;
    argv[1] = job->prefix;
    argv[2] = job->user;
    argv[3] = job->node;
    argv[4] = limit;
    argv[5] = budget;

    for (i = 0; i < 6; i++) {
        lens[i] = strlen(argv[i]);
    }

    job->inflight = 1;

    if (tnl_routes_script("list.lua", 0, 6, argv, lens, tnl_api_list_reply,
                          job)
        == -1)
    {
        job->inflight = 0;
        tnl_api_list_reply(NULL, NULL, job);
    }
}


static void
tnl_api_list_more(tnl_api_conn_t *c, void *data)
{
    tnl_api_job_t  *job = data;

    (void) c;

    if (!job->inflight && job->c != NULL) {
        tnl_api_list_next(job);
    }
}


/* a query parameter that must be a plain value of at most size - 1 */
static int
tnl_api_param(tnl_api_conn_t *c, const char *name, char *buf, size_t size,
    int required_label)
{
    char         tmp[512], folded[TNL_NAME_MAX + 1];
    const char  *v, *err;
    char         msg[160];

    v = tnl_api_query(c, name, tmp, sizeof(tmp));
    buf[0] = '\0';

    if (v == NULL) {
        return 0;
    }

    if (v == tnl_api_bad_param) {
        goto bad;
    }

    if (strlen(v) >= size) {
        goto bad;
    }

    if (required_label && v[0] != '\0') {
        if (tnl_name_validate(v, strlen(v), folded, &err) == -1) {
            goto bad;
        }
        v = folded;
    }

    snprintf(buf, size, "%s", v);
    return 0;

bad:

    snprintf(msg, sizeof(msg), "the %s parameter is not valid", name);
    tnl_api_error(c, 400, "bad_parameter", msg, NULL);
    return -1;
}


void
tnl_api_tunnels_list(tnl_api_conn_t *c, const tnl_api_request_t *r)
{
    tnl_api_job_t  *job;
    char            limit[16], *end;
    long            n;

    job = calloc(1, sizeof(tnl_api_job_t));
    if (job == NULL) {
        tnl_api_error(c, 503, "no_memory", "out of memory", NULL);
        return;
    }

    if (tnl_api_param(c, "user", job->user, sizeof(job->user), 0) == -1
        || tnl_api_param(c, "node", job->node, sizeof(job->node), 0) == -1
        || tnl_api_param(c, "name", job->prefix, sizeof(job->prefix), 0)
           == -1
        || tnl_api_param(c, "cursor", job->after, sizeof(job->after), 1)
           == -1
        || tnl_api_param(c, "limit", limit, sizeof(limit), 0) == -1)
    {
        free(job);
        return;
    }

    /* a name prefix: the characters of a name, lower case */
    for (end = job->prefix; *end; end++) {
        if (*end >= 'A' && *end <= 'Z') {
            *end = (char) (*end - 'A' + 'a');
        }
        if (!((*end >= 'a' && *end <= 'z') || (*end >= '0' && *end <= '9')
              || *end == '-'))
        {
            free(job);
            tnl_api_error(c, 400, "bad_parameter", "name= takes the start "
                          "of a tunnel name (a-z, 0-9, '-')", NULL);
            return;
        }
    }

    if (limit[0] != '\0') {
        n = strtol(limit, &end, 10);
        if (*end != '\0' || n < 1 || n > TNL_API_PAGE_MAX) {
            free(job);
            tnl_api_error(c, 400, "bad_parameter", "limit= takes a number "
                          "from 1 to 1000", NULL);
            return;
        }
        job->limit = (int) n;

    } else if (job->after[0] != '\0') {
        job->limit = TNL_API_PAGE_DEFAULT;

    } else {
        job->stream = 1;
        job->first = 1;
    }

    job->c = c;

    if (!tnl_routes_available()) {
        free(job);
        tnl_api_unavailable(c, 0);
        return;
    }

    if (tnl_api_lists >= TNL_API_LISTS_MAX) {
        free(job);
        tnl_api_error(c, 503, "busy", "too many tunnel lists are being "
                      "read at once: try again in a moment",
                      "Retry-After: 1\r\n");
        return;
    }

    if (job->stream && strcmp(r->method, "HEAD") == 0) {
        /* the length is unknown until the list is read: headers only */
        free(job);
        tnl_api_text(c, 200, "application/json", "", 0);
        return;
    }

    job->counted = 1;
    tnl_api_lists++;

    if (job->stream) {
        tnl_api_stream_start(c, "application/json", tnl_api_list_more,
                             tnl_api_job_abort, job);
        tnl_api_stream_write(c, "{\"tunnels\":[\n", 13);
        tnl_api_list_next(job);
        return;
    }

    job->items = json_array();
    tnl_api_hold(c, tnl_api_job_abort, job);
    tnl_api_list_next(job);
}


/* GET /tunnels/NAME */

static void
tnl_api_get_reply(tnl_redis_t *rc, redisReply *reply, void *data)
{
    tnl_api_job_t  *job = data;
    json_t         *o;
    char            msg[128];

    (void) rc;

    job->inflight = 0;

    if (job->c == NULL) {
        tnl_api_job_free(job);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        tnl_api_error(job->c, 503, "redis_unavailable", "the live state "
                      "(Redis) did not answer: try again in a moment",
                      NULL);

    } else if (reply->elements == 0) {
        snprintf(msg, sizeof(msg), "no live tunnel is named \"%s\"",
                 job->name);
        tnl_api_error(job->c, 404, "not_found", msg, NULL);

    } else {
        o = tnl_api_tunnel_json(job->name, reply);
        if (o == NULL) {
            tnl_api_error(job->c, 500, "bad_route", "the route record is "
                          "malformed", NULL);
        } else {
            tnl_api_json(job->c, 200, o);
        }
    }

    tnl_api_job_free(job);
}


void
tnl_api_tunnel_get(tnl_api_conn_t *c, const tnl_api_request_t *r,
    const char *name)
{
    tnl_api_job_t  *job;
    const char     *argv[2];
    size_t          lens[2];
    char            key[TNL_NAME_MAX + 16];

    (void) r;

    job = calloc(1, sizeof(tnl_api_job_t));
    if (job == NULL) {
        tnl_api_error(c, 503, "no_memory", "out of memory", NULL);
        return;
    }

    snprintf(job->name, sizeof(job->name), "%s", name);
    snprintf(key, sizeof(key), "tunnel:route:%s", name);

    argv[0] = "HGETALL";
    argv[1] = key;
    lens[0] = 7;
    lens[1] = strlen(key);

    job->c = c;
    job->inflight = 1;

    if (tnl_redis_command(tnl_routes_redis(), 2, argv, lens, 2000,
                          tnl_api_get_reply, job)
        == -1)
    {
        free(job);
        tnl_api_unavailable(c, 0);
        return;
    }

    tnl_api_hold(c, tnl_api_job_abort, job);
}


/* DELETE /tunnels/NAME */

/*
 * Copies in to out (size bytes) without control characters; -1 if it has
 * more than max characters or does not fit.
 */
static int
tnl_api_clean(const char *in, char *out, size_t size, size_t max)
{
    size_t  o = 0, chars = 0;

    for ( ; *in != '\0'; in++) {
        if ((unsigned char) *in < 0x20 || *in == 0x7f) {
            continue;
        }

        /* count characters, not UTF-8 continuation bytes */
        if (((unsigned char) *in & 0xc0) != 0x80) {
            chars++;
        }

        if (chars > max || o + 1 >= size) {
            return -1;
        }

        out[o++] = *in;
    }

    out[o] = '\0';

    return 0;
}


static void
tnl_api_kick_reply(tnl_redis_t *rc, redisReply *reply, void *data)
{
    tnl_api_job_t  *job = data;
    redisReply    **e;
    json_t         *o;
    char            msg[128];

    (void) rc;

    job->inflight = 0;

    if (job->c == NULL) {
        tnl_api_job_free(job);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        tnl_api_unavailable(job->c, 1);
        tnl_api_job_free(job);
        return;
    }

    e = reply->element;

    if (e[0]->integer == 2) {
        tnl_api_error(job->c, 409, "changed_hands", "the name is held by "
                      "another session than the one given: nothing was "
                      "closed", NULL);
        tnl_api_job_free(job);
        return;
    }

    if (e[0]->integer == 0 || reply->elements < 4) {
        snprintf(msg, sizeof(msg), "no live tunnel is named \"%s\"",
                 job->name);
        o = json_pack("{s:b, s:s, s:s, s:s}", "found", 0, "name", job->name,
                      "error", "not_found", "message", msg);
        tnl_api_json(job->c, 404, o);
        tnl_api_job_free(job);
        return;
    }

    tnl_log_info("API: tunnel %s of user \"%s\" (session %s on node "
                 "\"%s\") kicked by %s%s%s", job->name, e[3]->str,
                 e[1]->str, e[2]->str, job->by[0] ? job->by : "the API",
                 job->reason[0] ? ": " : "", job->reason);

    o = json_pack("{s:b, s:s, s:s, s:s, s:s, s:s}", "found", 1,
                  "name", job->name, "user", e[3]->str,
                  "session", e[1]->str, "node", e[2]->str,
                  "scope", job->stream ? "session" : "tunnel");
    tnl_api_json(job->c, 200, o);
    tnl_api_job_free(job);
}


void
tnl_api_tunnel_delete(tnl_api_conn_t *c, const tnl_api_request_t *r,
    const char *name)
{
    tnl_api_job_t  *job;
    json_t         *body, *v;
    json_error_t    jerr;
    const char     *argv[6];
    size_t          lens[6];
    char            key[TNL_NAME_MAX + 16], tmp[1024], scope[8];
    const char     *reason = NULL, *p;
    int             i;

    job = calloc(1, sizeof(tnl_api_job_t));
    if (job == NULL) {
        tnl_api_error(c, 503, "no_memory", "out of memory", NULL);
        return;
    }

    snprintf(job->name, sizeof(job->name), "%s", name);

    p = tnl_api_query(c, "session", scope, sizeof(scope));
    job->stream = p != NULL && (strcmp(p, "1") == 0 || strcmp(p, "true") == 0);

    reason = tnl_api_query(c, "reason", tmp, sizeof(tmp));
    if (reason == tnl_api_bad_param) {
        free(job);
        tnl_api_error(c, 400, "bad_parameter", "the reason parameter is not "
                      "valid (a bad %-escape, or far too long)", NULL);
        return;
    }

    body = NULL;
    if (r->body_len > 0) {
        body = json_loadb(r->body, r->body_len, 0, &jerr);
        if (body == NULL || !json_is_object(body)) {
            json_decref(body);
            free(job);
            tnl_api_error(c, 400, "bad_json", "the body must be a JSON "
                          "object such as {\"reason\": \"...\"}", NULL);
            return;
        }

        v = json_object_get(body, "reason");
        if (v != NULL && json_is_string(v)) {
            snprintf(tmp, sizeof(tmp), "%s", json_string_value(v));
            reason = tmp;
        } else if (v != NULL && !json_is_null(v)) {
            json_decref(body);
            free(job);
            tnl_api_error(c, 400, "bad_json", "\"reason\" must be a string",
                          NULL);
            return;
        }

        v = json_object_get(body, "session");
        if (json_is_true(v)) {
            job->stream = 1;
        }

        v = json_object_get(body, "by");
        if (json_is_string(v)) {
            (void) tnl_api_clean(json_string_value(v), job->by,
                                 sizeof(job->by), 64);
        }

        json_decref(body);
    }

    if (reason != NULL
        && tnl_api_clean(reason, job->reason, sizeof(job->reason),
                         TNL_API_REASON_MAX) == -1)
    {
        free(job);
        tnl_api_error(c, 400, "reason_too_long", "the reason is longer "
                      "than 200 characters", NULL);
        return;
    }

    if (job->by[0] == '\0'
        && (p = tnl_api_query(c, "by", tmp, sizeof(tmp))) != NULL
        && p != tnl_api_bad_param)
    {
        (void) tnl_api_clean(p, job->by, sizeof(job->by), 64);
    }

    p = tnl_api_query(c, "session_id", tmp, sizeof(tmp));
    if (p == tnl_api_bad_param || (p != NULL && strlen(p) >= sizeof(job->expect)))
    {
        free(job);
        tnl_api_error(c, 400, "bad_parameter", "session_id is not a "
                      "session id", NULL);
        return;
    }
    snprintf(job->expect, sizeof(job->expect), "%s", p ? p : "");

    snprintf(key, sizeof(key), "tunnel:route:%s", name);

    argv[0] = key;
    argv[1] = job->stream ? "session" : "tunnel";
    argv[2] = job->reason;
    argv[3] = job->by[0] ? job->by : "the API";
    argv[4] = TNL_API_KICK_TOMB_MS;
    argv[5] = job->expect;

    for (i = 0; i < 6; i++) {
        lens[i] = strlen(argv[i]);
    }

    if (!tnl_routes_available()) {
        free(job);
        tnl_api_unavailable(c, 1);
        return;
    }

    job->c = c;
    job->inflight = 1;

    if (tnl_routes_script("kick.lua", 1, 6, argv, lens, tnl_api_kick_reply,
                          job)
        == -1)
    {
        free(job);
        tnl_api_error(c, 503, "no_memory", "out of memory", NULL);
        return;
    }

    tnl_api_hold(c, tnl_api_job_abort, job);
}
