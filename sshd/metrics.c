/*
 * Shared counters (see metrics.h).  The mapping is made once in main and
 * inherited by every worker; it is never unmapped (it lives as long as
 * the daemon).  Without it (mmap failed) every call is a no-op and
 * /metrics shows zeros rather than failing.
 */

#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "metrics.h"


typedef struct {
    volatile uint64_t  v[TNL_M_N];
} tnl_metrics_slot_t;


static tnl_metrics_slot_t  *tnl_metrics_slots;
static int                  tnl_metrics_nslots;
static tnl_metrics_slot_t  *tnl_metrics_mine;


int
tnl_metrics_init(int nworkers)
{
    size_t  size;

    tnl_metrics_nslots = nworkers + 1;
    size = sizeof(tnl_metrics_slot_t) * (size_t) tnl_metrics_nslots;

    tnl_metrics_slots = mmap(NULL, size, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (tnl_metrics_slots == MAP_FAILED) {
        tnl_metrics_slots = NULL;
        tnl_metrics_nslots = 0;
        tnl_log_warn("metrics: no shared memory, /metrics shows zeros");
        return -1;
    }

    memset(tnl_metrics_slots, 0, size);
    tnl_metrics_mine = &tnl_metrics_slots[0];

    return 0;
}


void
tnl_metrics_use_slot(int number)
{
    if (number >= 0 && number < tnl_metrics_nslots) {
        tnl_metrics_mine = &tnl_metrics_slots[number];
    }
}


void
tnl_metrics_clear_gauges(int number)
{
    int  m;

    if (number < 0 || number >= tnl_metrics_nslots) {
        return;
    }

    for (m = TNL_M_COUNTERS; m < TNL_M_N; m++) {
        tnl_metrics_slots[number].v[m] = 0;
    }
}


void
tnl_metric_add(tnl_metric_e m, uint64_t n)
{
    if (tnl_metrics_mine != NULL) {
        tnl_metrics_mine->v[m] += n;
    }
}


void
tnl_metric_set(tnl_metric_e m, uint64_t v)
{
    if (tnl_metrics_mine != NULL) {
        tnl_metrics_mine->v[m] = v;
    }
}


uint64_t
tnl_metric_total(tnl_metric_e m)
{
    uint64_t  sum = 0;
    int       i;

    for (i = 0; i < tnl_metrics_nslots; i++) {
        sum += tnl_metrics_slots[i].v[m];
    }

    return sum;
}


uint64_t
tnl_metric_max(tnl_metric_e m)
{
    uint64_t  max = 0;
    int       i;

    for (i = 0; i < tnl_metrics_nslots; i++) {
        if (tnl_metrics_slots[i].v[m] > max) {
            max = tnl_metrics_slots[i].v[m];
        }
    }

    return max;
}
