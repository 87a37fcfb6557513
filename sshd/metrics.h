/*
 * Counters and gauges for GET /metrics, shared by every worker: one slot
 * per worker in a MAP_SHARED anonymous mapping made by main before the
 * fork, so any worker's API answer sums the whole daemon.  Each worker
 * writes only its own slot (no locks: one writer per slot, aligned 64-bit
 * stores); readers add the slots up.  The supervisor zeroes a dead
 * worker's gauges; counters stay, and its successor keeps adding to them,
 * so totals never go backwards.
 */

#ifndef TNL_METRICS_H
#define TNL_METRICS_H

#include <stdint.h>


typedef enum {
    /* counters (monotonic) */
    TNL_M_CONNECTIONS = 0,        /* TCP connections accepted */
    TNL_M_HANDSHAKES,             /* key exchanges completed */
    TNL_M_AUTH_OK,
    TNL_M_AUTH_UNKNOWN_KEY,       /* auth failures, by reason */
    TNL_M_AUTH_NOT_READY,         /* no key table yet */
    TNL_M_AUTH_OTHER,             /* password, none, keyboard-interactive */
    TNL_M_TUNNELS_OPENED,
    TNL_M_TUNNELS_REFUSED,
    TNL_M_TUNNELS_KICKED,
    TNL_M_BYTES_IN,               /* client -> nginx */
    TNL_M_BYTES_OUT,              /* nginx -> client */
    TNL_M_STREAMS,
    TNL_M_REQUESTS,
    TNL_M_STARTUPS_FULL,          /* refused at accept: --max-startups */
    TNL_M_STARTUPS_SOURCE,        /* ... --per-source-max-startups */
    TNL_M_LOGIN_GRACE_EXPIRED,    /* closed unauthenticated by the timer */
    TNL_M_STARTUPS_EVICTED,       /* gave its place, --max-startups full */
    TNL_M_ALIVE_PROBES,           /* client-alive requests sent */
    TNL_M_COUNTERS,               /* the gauges follow */

    /* gauges */
    TNL_M_TUNNELS_UP = TNL_M_COUNTERS,
    TNL_M_SESSIONS,
    TNL_M_REDIS_UP,
    TNL_M_POSTGRES_UP,
    TNL_M_HEARTBEAT_LAG_MS,       /* how late the last heartbeat tick was */
    TNL_M_UNAUTHENTICATED,        /* connections not authenticated yet */
    TNL_M_N
} tnl_metric_e;


/* main, before any fork: one slot per worker (and one for --workers 1) */
int tnl_metrics_init(int nworkers);

/* a worker uses slot number (0 for --workers 1, else 1..N) */
void tnl_metrics_use_slot(int number);

/* the supervisor, after a worker died */
void tnl_metrics_clear_gauges(int number);

void tnl_metric_add(tnl_metric_e m, uint64_t n);
void tnl_metric_set(tnl_metric_e m, uint64_t v);

/* the sum over every slot */
uint64_t tnl_metric_total(tnl_metric_e m);

/* the largest value in any slot (the worst heartbeat lag) */
uint64_t tnl_metric_max(tnl_metric_e m);

#endif /* TNL_METRICS_H */
