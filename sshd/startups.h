/*
 * Admission of new SSH connections: how many are unauthenticated at once,
 * in all and per source address, over every worker (--max-startups,
 * --per-source-max-startups).  Like metrics.c, one slot per worker in a
 * MAP_SHARED anonymous mapping made by main before the fork; each worker
 * writes only its own slot and readers add the slots up, so no locks,
 * and the supervisor zeroes a dead worker's slot (what it held is gone
 * with its sockets).  Counts are read a little stale across workers: a
 * limit may be passed by the few connections accepted at the same
 * instant in other workers, which is harmless.
 *
 * Sources are counted in a count-min sketch: each address (IPv4, or the
 * /64 prefix of an IPv6 address, since one host or one customer usually
 * holds a whole /64) picks two counters out of two rows of
 * TNL_STARTUPS_WIDTH through a hash keyed with a secret chosen at start;
 * its count is the smaller of its two.  A count is never too small, so an
 * attacker cannot get past the limit; it is too large only when both
 * counters are shared with busy sources, which an attacker cannot aim
 * for without the key.  Fixed memory (16 KiB per worker), no allocation
 * or lookup cost that grows with the number of sources.
 *
 * What it does not: close anything (server.c refuses, session.c releases
 * when a connection authenticates or ends).
 */

#ifndef TNL_STARTUPS_H
#define TNL_STARTUPS_H

#include <stdint.h>
#include <sys/socket.h>


#define TNL_STARTUPS_WIDTH  4096     /* counters per row, power of two */


typedef enum {
    TNL_STARTUP_OK = 0,
    TNL_STARTUP_FULL,          /* --max-startups reached */
    TNL_STARTUP_SOURCE_FULL    /* --per-source-max-startups reached */
} tnl_startup_e;


/* main, before any fork: one slot per worker (and one for --workers 1) */
int tnl_startups_init(int nworkers);

/* a worker uses slot number (0 for --workers 1, else 1..N) */
void tnl_startups_use_slot(int number);

/* the supervisor, after a worker died */
void tnl_startups_clear(int number);

/*
 * At accept: counts the connection from ss and returns TNL_STARTUP_OK
 * with *token set (give it back to tnl_startups_release), or refuses
 * with the limit that was reached (nothing counted).
 */
tnl_startup_e tnl_startups_admit(const struct sockaddr_storage *ss,
    int max_total, int max_per_source, uint32_t *token);

/* the connection authenticated, waits for approval, or ended */
void tnl_startups_release(uint32_t token);

/*
 * Unauthenticated connections held now by the source of ss, and by the
 * source of a counted connection (--max-startups full: the newcomer may
 * take the place of a connection whose source holds clearly more, see
 * tnl_sessions_evict_startup).
 */
unsigned tnl_startups_source_load(const struct sockaddr_storage *ss);
unsigned tnl_startups_token_load(uint32_t token);

/* unauthenticated connections counted now, over every worker */
int tnl_startups_total(void);

#endif /* TNL_STARTUPS_H */
