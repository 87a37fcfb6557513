/*
 * The live state of this worker's tunnels, made visible to the cluster:
 * every second the counters of the tunnels whose counters changed are
 * written into their route hashes (stats.lua, in batches), so any node's
 * management API and the dashboard read the same picture within about
 * 2 s; idle tunnels cost nothing.  Also the receiving end of a kick
 * (tunnel:close from kick.lua): the session that holds the tunnel is
 * told why and the tunnel (or the whole session) is closed.
 *
 * Owns no tunnel: reads counters through tnl_forward_live_stats and
 * closes through session.c.
 *
 * And the Redis half of the node-lost sweep (db.c's tnl_db_node_lost
 * closes the audit rows): the routes a SIGKILLed process left are deleted
 * when its replacement starts, so the dashboard, /admin/users and nginx
 * stop showing them at once rather than after their TTL.
 */

#ifndef TNL_LIVE_H
#define TNL_LIVE_H

#include <stdint.h>
#include <time.h>

#include "loop.h"


#define TNL_LIVE_STATS_MS  1000


typedef struct tnl_live_stats_s {
    const char  *fingerprint;
    uint64_t     bytes_in;       /* client -> nginx (responses) */
    uint64_t     bytes_out;      /* nginx -> client (requests) */
    uint64_t     requests;
    uint64_t     streams;
    unsigned     open_streams;
    time_t       last_request;   /* 0: none yet */
} tnl_live_stats_t;


/* starts the stats timer and takes tunnel:close messages; 0 or -1 */
int tnl_live_start(tnl_loop_t *loop);
void tnl_live_stop(void);

/*
 * After tnl_live_start, in a process that replaces a killed one: deletes
 * from Redis the routes of sessions whose id starts with prefix ("NODE/"
 * or "NODE/PID/") claimed before `before` (node_lost.lua), once Redis
 * answers, instead of letting them wait for their TTL.
 */
void tnl_live_node_lost(const char *prefix, time_t before);

#endif /* TNL_LIVE_H */
