/*
 * Unauthenticated connections counted per worker slot, in all and per
 * source (see startups.h).  Without the mapping (mmap failed) only this
 * process's own counts are used: limits then apply per worker.
 */

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "startups.h"


#define TNL_STARTUPS_MASK  (TNL_STARTUPS_WIDTH - 1)


typedef struct {
    volatile uint32_t  total;
    volatile uint16_t  row[2][TNL_STARTUPS_WIDTH];
} tnl_startups_slot_t;


static tnl_startups_slot_t   tnl_startups_local;
static tnl_startups_slot_t  *tnl_startups_slots = &tnl_startups_local;
static int                   tnl_startups_nslots = 1;
static tnl_startups_slot_t  *tnl_startups_mine = &tnl_startups_local;
static uint64_t              tnl_startups_key[2];


int
tnl_startups_init(int nworkers)
{
    tnl_startups_slot_t  *slots;
    size_t                size;

    /* the hash key: not guessable, or an attacker could aim at a victim */
    if (getrandom(tnl_startups_key, sizeof(tnl_startups_key), GRND_NONBLOCK)
        != (ssize_t) sizeof(tnl_startups_key))
    {
        tnl_startups_key[0] = (uint64_t) time(NULL) * 0x9e3779b97f4a7c15ULL;
        tnl_startups_key[1] = (uint64_t) getpid() * 0xbf58476d1ce4e5b9ULL
                              ^ (uint64_t) (uintptr_t) &size;
    }

    size = sizeof(tnl_startups_slot_t) * (size_t) (nworkers + 1);

    slots = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (slots == MAP_FAILED) {
        tnl_log_warn("no shared memory for --max-startups (%s): the limits "
                     "apply per worker", strerror(errno));
        return -1;
    }

    memset(slots, 0, size);
    tnl_startups_slots = slots;
    tnl_startups_nslots = nworkers + 1;
    tnl_startups_mine = &slots[0];

    return 0;
}


void
tnl_startups_use_slot(int number)
{
    if (number >= 0 && number < tnl_startups_nslots) {
        tnl_startups_mine = &tnl_startups_slots[number];
    }
}


void
tnl_startups_clear(int number)
{
    if (number >= 0 && number < tnl_startups_nslots
        && tnl_startups_slots != &tnl_startups_local)
    {
        memset((void *) &tnl_startups_slots[number], 0,
               sizeof(tnl_startups_slot_t));
    }
}


/* splitmix64's finaliser: every input bit moves every output bit */
static uint64_t
tnl_startups_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}


/* IPv4 (also mapped into IPv6) by address, IPv6 by its /64 */
static uint64_t
tnl_startups_source(const struct sockaddr_storage *ss)
{
    const struct sockaddr_in6  *sin6;
    const struct sockaddr_in   *sin;
    const uint8_t              *a;
    uint64_t                    v;
    int                         i;

    if (ss->ss_family == AF_INET) {
        sin = (const struct sockaddr_in *) ss;
        return (uint64_t) ntohl(sin->sin_addr.s_addr) | (4ULL << 56);
    }

    if (ss->ss_family == AF_INET6) {
        sin6 = (const struct sockaddr_in6 *) ss;
        a = sin6->sin6_addr.s6_addr;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            return ((uint64_t) a[12] << 24 | (uint64_t) a[13] << 16
                    | (uint64_t) a[14] << 8 | a[15]) | (4ULL << 56);
        }

        for (v = 0, i = 0; i < 8; i++) {
            v = v << 8 | a[i];
        }
        /* a /64 and an IPv4 address never meet: one more mixing round */
        return tnl_startups_mix(v ^ 0x6a09e667f3bcc908ULL);
    }

    return 0;
}


static unsigned
tnl_startups_count(unsigned row, unsigned col)
{
    unsigned  sum = 0;
    int       i;

    for (i = 0; i < tnl_startups_nslots; i++) {
        sum += tnl_startups_slots[i].row[row][col];
    }

    return sum;
}


int
tnl_startups_total(void)
{
    int  sum = 0, i;

    for (i = 0; i < tnl_startups_nslots; i++) {
        sum += (int) tnl_startups_slots[i].total;
    }

    return sum;
}


tnl_startup_e
tnl_startups_admit(const struct sockaddr_storage *ss, int max_total,
    int max_per_source, uint32_t *token)
{
    uint64_t  src;
    unsigned  c0, c1, n0, n1;

    if (tnl_startups_total() >= max_total) {
        return TNL_STARTUP_FULL;
    }

    src = tnl_startups_source(ss);
    c0 = (unsigned) tnl_startups_mix(src ^ tnl_startups_key[0])
         & TNL_STARTUPS_MASK;
    c1 = (unsigned) tnl_startups_mix(src ^ tnl_startups_key[1])
         & TNL_STARTUPS_MASK;

    n0 = tnl_startups_count(0, c0);
    n1 = tnl_startups_count(1, c1);

    if ((n0 < n1 ? n0 : n1) >= (unsigned) max_per_source) {
        return TNL_STARTUP_SOURCE_FULL;
    }

    /* a 16-bit counter of one worker: the limit is far below */
    if (tnl_startups_mine->row[0][c0] == UINT16_MAX
        || tnl_startups_mine->row[1][c1] == UINT16_MAX)
    {
        return TNL_STARTUP_SOURCE_FULL;
    }

    tnl_startups_mine->total++;
    tnl_startups_mine->row[0][c0]++;
    tnl_startups_mine->row[1][c1]++;

    *token = c0 | c1 << 16;
    tnl_metric_set(TNL_M_UNAUTHENTICATED, tnl_startups_mine->total);

    return TNL_STARTUP_OK;
}


/*
 * How many unauthenticated connections the source of ss holds now (the
 * count-min sketch: never less than the truth).
 */
unsigned
tnl_startups_source_load(const struct sockaddr_storage *ss)
{
    uint64_t  src;
    unsigned  c0, c1, n0, n1;

    src = tnl_startups_source(ss);
    c0 = (unsigned) tnl_startups_mix(src ^ tnl_startups_key[0])
         & TNL_STARTUPS_MASK;
    c1 = (unsigned) tnl_startups_mix(src ^ tnl_startups_key[1])
         & TNL_STARTUPS_MASK;

    n0 = tnl_startups_count(0, c0);
    n1 = tnl_startups_count(1, c1);

    return n0 < n1 ? n0 : n1;
}


/* the same for the source of a counted connection, by its token */
unsigned
tnl_startups_token_load(uint32_t token)
{
    unsigned  n0, n1;

    n0 = tnl_startups_count(0, token & TNL_STARTUPS_MASK);
    n1 = tnl_startups_count(1, (token >> 16) & TNL_STARTUPS_MASK);

    return n0 < n1 ? n0 : n1;
}


void
tnl_startups_release(uint32_t token)
{
    unsigned  c0, c1;

    c0 = token & TNL_STARTUPS_MASK;
    c1 = (token >> 16) & TNL_STARTUPS_MASK;

    /* a slot cleared by the supervisor is never ours: ours is alive */
    if (tnl_startups_mine->total > 0) {
        tnl_startups_mine->total--;
    }
    if (tnl_startups_mine->row[0][c0] > 0) {
        tnl_startups_mine->row[0][c0]--;
    }
    if (tnl_startups_mine->row[1][c1] > 0) {
        tnl_startups_mine->row[1][c1]--;
    }

    tnl_metric_set(TNL_M_UNAUTHENTICATED, tnl_startups_mine->total);
}
