/*
 * Live routes in Redis: claiming a tunnel name for a session, heartbeat,
 * release, and the pub/sub kick channel.  One hiredis async context driven
 * by the loop (redis.c adapter).  Owns every tnl_route_t it hands out:
 * callers create a route, claim it, and later release it, which frees it;
 * a reply arriving after release is ignored, never delivered to a freed
 * caller.
 *
 * While Redis is down: claims fail at once with TNL_CLAIM_UNAVAILABLE
 * (the user is told to retry), existing routes stay registered here, and
 * when the connection comes back every route is re-registered with
 * refresh.lua.  A route refresh that answers "lost" calls the lost
 * handler: another session took the name while we were cut off.
 */

#ifndef TNL_ROUTES_H
#define TNL_ROUTES_H

#include <stdint.h>

#include "loop.h"
#include "redis.h"


#define TNL_ROUTE_TTL_MS        10000
#define TNL_ROUTE_HEARTBEAT_MS  3000


typedef enum {
    TNL_CLAIM_CLAIMED = 0,     /* name was free (or ours) */
    TNL_CLAIM_TAKEOVER,        /* our user's older session held it */
    TNL_CLAIM_TAKEN,           /* another user holds it: detail = user */
    TNL_CLAIM_UNAVAILABLE,     /* Redis down, slow (timeout) or error */
} tnl_claim_status_e;


typedef struct tnl_route_s  tnl_route_t;

/* result of a claim; detail is valid only during the call */
typedef void (*tnl_claim_pt)(tnl_route_t *route, tnl_claim_status_e status,
    const char *detail, void *data);

/* a route we held was taken by someone else; the caller must close it */
typedef void (*tnl_route_lost_pt)(tnl_route_t *route, void *data);

/* another node (or a takeover) asked to close a session by id */
typedef void (*tnl_session_kick_pt)(const char *session_id);


/* connects (and keeps reconnecting with backoff); 0, or -1 on a bad URL */
int tnl_routes_start(tnl_loop_t *loop, const char *redis_url,
    tnl_session_kick_pt kick_handler);

/* 1 while the Redis connection is up */
int tnl_routes_available(void);

/*
 * A route for name (validated, lower case), owned by session_id.  Strings
 * are copied.  data is passed back to the claim and lost callbacks.
 */
tnl_route_t *tnl_route_new(const char *name, const char *socket_path,
    const char *user, int64_t user_id, const char *session_id,
    const char *client, tnl_route_lost_pt lost, void *data);

/* runs claim.lua with a timeout (2 s); cb is called exactly once */
void tnl_route_claim(tnl_route_t *route, tnl_claim_pt cb);

/* releases (release.lua, fire and forget) if claimed, and frees route */
void tnl_route_release(tnl_route_t *route);

const char *tnl_route_name(const tnl_route_t *route);

/*
 * A tunnel:close message (kick.lua): close name of session_id (or, with
 * whole_session, the whole session) and tell its client reason (may be
 * empty); by says who asked.  Runs from the loop, never inside hiredis.
 */
typedef void (*tnl_routes_close_pt)(const char *session_id, const char *name,
    int whole_session, const char *by, const char *reason);

void tnl_routes_on_close(tnl_routes_close_pt handler);

/* the command connection, for readers of the live state (api_tunnels.c) */
tnl_redis_t *tnl_routes_redis(void);

/* calls fn for every held route with its data (live.c: counters) */
void tnl_routes_each(void (*fn)(tnl_route_t *route, void *data, void *arg),
    void *arg);
int tnl_routes_count(void);
const char *tnl_route_key(const tnl_route_t *route, size_t *len);
const char *tnl_route_session(const tnl_route_t *route, size_t *len);

/* 1 if sum differs from the last one given for route (then stored) */
int tnl_route_stats_changed(tnl_route_t *route, uint64_t sum);

/*
 * Runs one of the embedded scripts (stats.lua, kick.lua) by EVALSHA, with
 * a NOSCRIPT retry by EVAL: argv (the keys, then the arguments) is
 * copied.  cb gets NULL on a timeout (2 s) or when Redis is down.  0, or
 * -1 for an unknown script or no memory.
 */
int tnl_routes_script(const char *file, int nkeys, int argc,
    const char **argv, const size_t *lens, tnl_redis_reply_pt cb,
    void *data);

/* closes the connection at shutdown (routes are released by callers) */
void tnl_routes_stop(void);

#endif /* TNL_ROUTES_H */
